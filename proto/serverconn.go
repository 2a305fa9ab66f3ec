package proto

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"bankwire/proto/wire"
)

// serverConn is one accepted connection. Its goroutine (serve) does the
// handshake, then reads frames and dispatches them by type; every request
// runs on a goroutine of its own and writes its answer through w, which
// serialises the writers.
type serverConn struct {
	srv    *Server
	nc     net.Conn
	id     string
	remote string
	ip     string // remote without its port
	fr     *wire.Framer
	w      *frameWriter

	ctx    context.Context // parent of every request's context; canceled when the connection ends
	cancel context.CancelFunc

	closing    atomic.Bool    // the last frame (FATAL) was sent; only discard reads now
	evicted    atomic.Bool    // made to leave the handshake for a newcomer (see admitLocked)
	handlersWG sync.WaitGroup // one count per request goroutine

	preAuth bool // counted in the server's handshake budget; protected by srv.mu
	authed  bool // counted as authenticated; protected by srv.mu

	// Owned by the reading goroutine.
	start    time.Time
	client   string     // the name the client sent in AUTH
	level    slog.Level // of the connection's opened and closed lines (see ServerConfig.Quiet)
	unlogged bool       // a connection that failed the handshake and the log limiter skipped
	requests int
	lastRecv time.Time // when the last frame arrived
	held     bool      // inline answers wait in w for the flush before the next read (inline.go)
	rtt      rttEstimate

	inline inlineState // see inline.go

	mu        sync.Mutex // protects the fields below
	ready     bool       // the handshake succeeded
	inflight  map[uint32]*serverReq
	active    int // requests not finished writing their terminal frame; drain completes at 0
	lastID    uint32
	draining  bool
	drainLast uint32
}

// serverReq is one request from its REQUEST frame to its terminal frame.
// It is in its connection's inflight map (counted against MaxInFlight)
// until just before that frame is written.
type serverReq struct {
	Request
	ctx    context.Context
	cancel context.CancelCauseFunc // ends ctx with a cause: errClientCancel, errDraining, or nil once answered
	stop   context.CancelFunc      // releases ctx's deadline; nil without one
	unary  HandlerFunc             // one of unary and stream is set
	stream StreamHandlerFunc
	flush  flushMode // how its terminal frame leaves; flushHold only for an inline run (inline.go)
}

// Cancellation causes, so that a request knows why its context ended.
var (
	errClientCancel = errors.New("canceled by client")
	errDraining     = errors.New("server shutting down")
)

// expired reports whether ctx (a request context or one derived from it)
// ended because the request's deadline passed.
func expired(ctx context.Context) bool {
	return ctx.Err() != nil && context.Cause(ctx) == context.DeadlineExceeded
}

func (s *Server) newConn(nc net.Conn) *serverConn {
	c := &serverConn{
		srv:      s,
		nc:       nc,
		id:       "c" + strconv.FormatUint(s.nextConn.Add(1), 10),
		remote:   nc.RemoteAddr().String(),
		inflight: map[uint32]*serverReq{},
		level:    slog.LevelInfo,
	}
	c.ip = c.remote
	if host, _, err := net.SplitHostPort(c.remote); err == nil {
		c.ip = host
	}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.inline.watchdog = time.AfterFunc(time.Hour, c.watchdogFired)
	c.inline.watchdog.Stop()
	c.fr = wire.NewFramer(nc, nil)
	c.w = newFrameWriter(nc, s.cfg.WriteTimeout, func(err error) {
		s.log.Warn("write failed, closing connection", "conn", c.id, "remote", c.remote, "err", err)
		nc.Close()
	})
	return c
}

func (c *serverConn) serve() {
	s := c.srv
	c.start = time.Now()
	reason := c.handshake()
	// Logged once the client is known. A connection that fails the
	// handshake is logged too, but at a rate: a flood of strangers must
	// not flood the log.
	if reason != "" {
		s.leavePreAuth(c, false)
		allowed, suppressed := s.refusals.allow()
		c.unlogged = !allowed
		if allowed {
			s.log.Log(context.Background(), c.level, "connection opened", "conn", c.id, "remote", c.remote, "client", c.client, "suppressed", suppressed)
		}
		c.end(reason)
		return
	}
	s.log.Log(context.Background(), c.level, "connection opened", "conn", c.id, "remote", c.remote, "client", c.client)
	c.readLoop()
}

// readLoop reads until the connection ends, then ends it; or, when the
// watchdog handed reading to another goroutine during an inline run, until
// that run is answered (inline.go).
func (c *serverConn) readLoop() {
	if reason := c.read(); reason != lostReading {
		c.end(reason)
		return
	}
	c.srv.connWG.Done()
}

// end closes the connection once reading stopped, waits for its handlers
// and logs why it ended.
func (c *serverConn) end(reason string) {
	s := c.srv
	c.inline.watchdog.Stop()
	c.w.flush() // held inline answers
	c.cancel()
	c.nc.Close()
	c.handlersWG.Wait()
	s.mu.Lock()
	delete(s.conns, c)
	if c.authed {
		c.authed = false
		s.authed--
	}
	s.mu.Unlock()
	if !c.unlogged {
		s.log.Log(context.Background(), c.level, "connection closed", "conn", c.id, "remote", c.remote, "client", c.client,
			"requests", c.requests, "duration", time.Since(c.start).Round(time.Millisecond), "reason", reason)
	}
	s.connWG.Done()
}

// handshake greets the client and checks its AUTH. It returns why the
// connection must end, or "" once it is ready for requests.
func (c *serverConn) handshake() string {
	cfg := &c.srv.cfg
	_ = c.nc.SetReadDeadline(time.Now().Add(cfg.HandshakeTimeout))
	if c.evicted.Load() { // evicted before this goroutine set its deadline
		return c.fatal(wire.TooManyConnections, evictedReason)
	}
	if err := c.w.write(wire.FrameHello, 0, 0, c.srv.hello); err != nil {
		return "write HELLO: " + err.Error()
	}
	c.fr.SetMaxPayload(wire.HandshakeMaxPayload)
	f, err := c.fr.ReadFrame()
	if err != nil {
		if e, ok := wire.AsFatal(err); ok {
			return c.fatal(e.Code, e.Message)
		}
		if !isTimeout(err) {
			return "handshake: " + readEndReason(err)
		}
		// Evicted or drained (both cut the read short), or just too slow.
		c.mu.Lock()
		draining := c.draining
		c.mu.Unlock()
		switch {
		case c.evicted.Load():
			return c.fatal(wire.TooManyConnections, evictedReason)
		case draining:
			return c.fatal(wire.ShuttingDown, "server shutting down")
		}
		return c.fatal(wire.HandshakeTimeout, fmt.Sprintf("no AUTH within %s", cfg.HandshakeTimeout))
	}
	if f.Type != wire.FrameAuth {
		return c.fatal(wire.ProtocolError, fmt.Sprintf("expected AUTH, got %s", f.Type))
	}
	a, err := wire.ParseAuth(f.Payload)
	if err != nil {
		e := err.(*wire.Error)
		return c.fatal(e.Code, e.Message)
	}
	// Hash both sides so the comparison is constant-time in the secret's
	// length too.
	sum := sha256.Sum256([]byte(a.Secret))
	if subtle.ConstantTimeCompare(sum[:], c.srv.secretSum[:]) != 1 {
		return c.fatal(wire.BadSecret, "bad secret")
	}
	if !c.srv.leavePreAuth(c, true) {
		return c.fatal(wire.TooManyConnections, evictedReason)
	}
	c.client = a.Client
	if cfg.Quiet != nil && cfg.Quiet(a.Client) {
		c.level = slog.LevelDebug
	}
	ready, _ := json.Marshal(wire.Ready{Version: wire.Version, ConnID: c.id})
	c.mu.Lock()
	c.ready = true
	draining := c.draining
	c.mu.Unlock()
	if err := c.w.write(wire.FrameReady, 0, 0, ready); err != nil {
		return "write READY: " + err.Error()
	}
	c.fr.SetMaxPayload(cfg.MaxPayload)
	if draining { // Shutdown began during the handshake
		c.sendDrain()
	}
	return ""
}

// read reads and dispatches frames until the connection ends, and returns
// why it ended.
func (c *serverConn) read() string {
	cfg := &c.srv.cfg
	br := c.fr.Reader()
	for {
		if c.held && !frameBuffered(br) { // about to wait: send held inline answers first
			c.held = false
			c.w.flush()
		}
		// Wait for the next frame's first byte under the idle timeout
		// (Peek consumes nothing), then give the rest of it the read
		// timeout.
		if !c.armRead(cfg.IdleTimeout) {
			return c.linger()
		}
		if _, err := br.Peek(1); err != nil {
			switch {
			case c.closing.Load():
				return c.linger()
			case isTimeout(err):
				return c.fatal(wire.IdleTimeout, fmt.Sprintf("no frame received for %s", cfg.IdleTimeout))
			}
			return readEndReason(err)
		}
		if !c.armRead(cfg.ReadTimeout) {
			return c.linger()
		}
		f, err := c.fr.ReadFrame()
		if err != nil {
			if e, ok := wire.AsFatal(err); ok {
				return c.fatal(e.Code, e.Message)
			}
			switch {
			case c.closing.Load():
				return c.linger()
			case isTimeout(err):
				return c.fatal(wire.ProtocolError, fmt.Sprintf("frame not completed within %s", cfg.ReadTimeout))
			}
			return readEndReason(err)
		}
		c.lastRecv = time.Now()
		if reason := c.handleFrame(f); reason != "" {
			return reason
		}
	}
}

// armRead sets the read deadline d from now. Once the connection is
// closing, the deadline belongs to sendLast and linger: armRead then
// reports false, and the caller lingers (which sets its own deadline).
func (c *serverConn) armRead(d time.Duration) bool {
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	return !c.closing.Load()
}

func readEndReason(err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return "peer closed"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "peer closed mid-frame"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	}
	return "read error: " + err.Error()
}

// handleFrame processes one frame after the handshake. It returns why the
// connection must end, or "".
func (c *serverConn) handleFrame(f wire.Frame) string {
	switch f.Type {
	case wire.FrameRequest:
		return c.handleRequest(f)
	case wire.FrameCancel:
		c.mu.Lock()
		r := c.inflight[f.ID] // not in flight: already answered, ignored (PROTOCOL.md §4.2)
		c.mu.Unlock()
		if r != nil {
			r.cancel(errClientCancel)
		}
		return ""
	case wire.FramePing:
		if len(f.Payload) > wire.MaxPingPayload {
			return c.fatal(wire.ProtocolError, "PING payload over 64 bytes")
		}
		if err := c.w.write(wire.FramePong, 0, f.ID, f.Payload); err != nil {
			return "write: " + err.Error()
		}
		return ""
	case wire.FramePong:
		c.pongReceived(f.Payload)
		return ""
	case wire.FrameFatal:
		e, err := wire.ParseFatal(f.Payload)
		if err != nil {
			return "client sent undecodable FATAL"
		}
		return "client FATAL " + e.Code.String() + ": " + e.Message
	}
	return c.fatal(wire.ProtocolError, fmt.Sprintf("unexpected %s frame from client", f.Type))
}

// fatal sends FATAL as the connection's last frame and lingers. It returns
// the reason for the log.
func (c *serverConn) fatal(code wire.Code, reason string) string {
	c.sendLast(code, reason)
	if !c.evicted.Load() { // an evicted connection makes room at once
		c.linger()
	}
	return code.String() + ": " + reason
}

// sendLast sends FATAL once, as the connection's last frame (PROTOCOL.md
// §6.2), then half-closes (FIN) and bounds the reader's linger.
func (c *serverConn) sendLast(code wire.Code, reason string) {
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	c.w.writeLast(wire.FrameFatal, wire.AppendFatal(nil, code, reason))
	c.w.waitIdle()
	if cw, ok := c.nc.(closeWriter); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
}

// linger reads and discards until the peer closes or lingerTimeout passes,
// so our close does not reset frames the peer has yet to read.
func (c *serverConn) linger() string {
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.fr.Reader(), 1<<20))
	return "closed after final frame"
}

// handleRequest admits a REQUEST and starts its handler on a goroutine of
// its own (bounded by MaxInFlight per connection), or answers it at once:
// UNAVAILABLE while draining, RESOURCE_EXHAUSTED over the in-flight limit,
// UNIMPLEMENTED for an unknown operation, DEADLINE_EXCEEDED when no time is
// left.
func (c *serverConn) handleRequest(f wire.Frame) string {
	s := c.srv
	h, body, err := wire.ParseRequest(f.Payload)
	if err != nil {
		return c.fatal(wire.ProtocolError, err.(*wire.Error).Message)
	}
	var budget time.Duration
	if h.DeadlineMs > 0 {
		// Relative to the frame's arrival, less the connection's round
		// trip: the time the REQUEST spent on its way here and its answer
		// will spend on the way back is no time to work in.
		budget = time.Duration(h.DeadlineMs)*time.Millisecond - c.networkBudget()
	}
	c.requests++
	unary, stream := s.unary[h.Op], s.stream[h.Op]
	c.mu.Lock()
	if f.ID <= c.lastID {
		_, dup := c.inflight[f.ID]
		last := c.lastID
		c.mu.Unlock()
		if dup {
			return c.fatal(wire.ProtocolError, fmt.Sprintf("duplicate request id %d in flight", f.ID))
		}
		return c.fatal(wire.ProtocolError, fmt.Sprintf("request id %d not greater than previous id %d", f.ID, last))
	}
	c.lastID = f.ID
	var reject *wire.Error
	switch {
	case c.draining:
		reject = &wire.Error{Code: wire.Unavailable, Message: "server is shutting down"}
	case len(c.inflight) >= s.cfg.MaxInFlight:
		reject = &wire.Error{Code: wire.ResourceExhausted, Message: fmt.Sprintf("too many requests in flight on this connection (max %d)", s.cfg.MaxInFlight)}
	case unary == nil && stream == nil:
		reject = &wire.Error{Code: wire.Unimplemented, Message: "unknown operation " + h.Op.String()}
	case h.DeadlineMs > 0 && budget <= 0:
		reject = &wire.Error{Code: wire.DeadlineExceeded, Message: "deadline exceeded"}
	}
	if reject != nil {
		c.mu.Unlock()
		if s.cfg.Observe != nil {
			s.cfg.Observe(h.Op, reject.Code, 0)
		}
		if err := c.w.write(wire.FrameError, 0, f.ID, wire.AppendError(nil, reject)); err != nil {
			return "write: " + err.Error()
		}
		return ""
	}
	// The request's context ends with the connection's, on CANCEL or drain
	// (with the cause), and at its deadline.
	r := &serverReq{Request: Request{Op: h.Op, ID: f.ID, TraceID: h.TraceID, Payload: body}, unary: unary, stream: stream}
	r.ctx, r.cancel = context.WithCancelCause(c.ctx)
	if h.TraceID != "" {
		r.ctx = context.WithValue(r.ctx, traceKey{}, h.TraceID)
	}
	if h.DeadlineMs > 0 {
		r.ctx, r.stop = context.WithDeadline(r.ctx, c.lastRecv.Add(budget))
	}
	c.inflight[f.ID] = r
	c.active++
	c.handlersWG.Add(1)
	c.mu.Unlock()
	if unary != nil && s.costs.quick(h.Op, s.inlineBudget) {
		return c.runInline(r)
	}
	go c.run(r)
	return ""
}

// run is a request's goroutine.
func (c *serverConn) run(r *serverReq) {
	defer c.handlersWG.Done()
	if r.stream != nil {
		c.runStream(r)
		return
	}
	resp, err, d := c.callUnary(r)
	c.answer(r, resp, err, d)
}

// callUnary runs r's handler and reports how long it took. A request
// canceled (or out of time) before its handler started is not started:
// nobody waits for its work.
func (c *serverConn) callUnary(r *serverReq) (resp any, err error, d time.Duration) {
	start := time.Now()
	if err := r.ctx.Err(); err != nil {
		return nil, err, 0
	}
	defer func() {
		d = time.Since(start)
		c.srv.costs.observe(r.Op, d)
	}()
	defer c.recoverHandler(r, &err)
	resp, err = r.unary(r.ctx, &r.Request)
	return resp, err, 0 // d is set on the way out
}

// answer writes a unary request's terminal frame and finishes it.
func (c *serverConn) answer(r *serverReq, resp any, err error, d time.Duration) {
	c.release(r.ID)
	var code wire.Code
	if err == nil {
		code = c.writeResult(r, wire.FrameResponse, 0, resp)
	} else {
		code = c.writeError(r, err)
	}
	c.finish(r, code, d)
}

// recoverHandler, deferred around a handler call, turns a panic into
// INTERNAL for that request only.
func (c *serverConn) recoverHandler(r *serverReq, err *error) {
	if p := recover(); p != nil {
		c.srv.log.ErrorContext(r.ctx, "handler panic", "conn", c.id, "op", r.Op.String(), "id", r.ID, "trace", r.TraceID,
			"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		*err = &wire.Error{Code: wire.Internal, Message: "internal error"}
	}
}

// writeResult encodes v and sends it as a RESPONSE (or EVENT) frame for r.
// A value that cannot be encoded is logged and answered INTERNAL.
func (c *serverConn) writeResult(r *serverReq, t wire.FrameType, flags uint16, v any) wire.Code {
	if err := c.w.lock(); err != nil {
		return wire.Unavailable
	}
	off := c.w.beginFrame()
	var err error
	c.w.buf, err = wire.Marshal(c.w.buf, v)
	if n := len(c.w.buf) - off - wire.HeaderLen; err == nil && n > c.srv.cfg.MaxPayload {
		err = fmt.Errorf("encoded response of %d bytes is over the %d-byte payload limit", n, c.srv.cfg.MaxPayload)
	}
	if err != nil {
		c.w.buf = c.w.buf[:off]
		c.w.unlock()
		c.srv.log.ErrorContext(r.ctx, "encode response", "conn", c.id, "op", r.Op.String(), "id", r.ID, "trace", r.TraceID, "err", err)
		return c.writeError(r, &wire.Error{Code: wire.Internal, Message: "internal error"})
	}
	c.w.endFrame(off, t, flags, r.ID)
	if err := c.w.unlockMode(r.flush); err != nil {
		return wire.Unavailable
	}
	return wire.OK
}

// writeError sends err as the terminal ERROR frame of r and returns its code.
func (c *serverConn) writeError(r *serverReq, err error) wire.Code {
	e := c.wireError(r, err)
	if c.w.lock() == nil {
		off := c.w.beginFrame()
		c.w.buf = wire.AppendError(c.w.buf, e)
		c.w.endFrame(off, wire.FrameError, 0, r.ID)
		_ = c.w.unlockMode(r.flush)
	}
	return e.Code
}

// wireError maps a handler error to what the caller may see: an *Error as
// is, the end of the request's context by its cause, anything else INTERNAL
// (logged; internal error text never leaves the server).
func (c *serverConn) wireError(r *serverReq, err error) *wire.Error {
	ctx := r.ctx
	var e *wire.Error
	isErr := errors.As(err, &e)
	// Once the deadline passed, whatever a handler made of its context's
	// end (Canceled from a wrapping context, an *Error of its own) is
	// DEADLINE_EXCEEDED.
	if expired(ctx) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		isErr && (e.Code == wire.Canceled || e.Code == wire.DeadlineExceeded)) {
		return &wire.Error{Code: wire.DeadlineExceeded, Message: "deadline exceeded"}
	}
	if isErr && e.Code != wire.OK && !e.Code.Fatal() {
		return e
	}
	if (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) && ctx.Err() != nil {
		return endedError(ctx)
	}
	c.srv.log.ErrorContext(ctx, "request failed", "conn", c.id, "op", r.Op.String(), "id", r.ID, "trace", r.TraceID, "err", err)
	return &wire.Error{Code: wire.Internal, Message: "internal error"}
}

// endedError is the terminal error of a request whose context ended, by
// the cause: the client's CANCEL, the request's deadline, or the server
// draining or closing (the connection closing ends it the same way, but
// then nothing can be written anyway).
func endedError(ctx context.Context) *wire.Error {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errClientCancel):
		return &wire.Error{Code: wire.Canceled, Message: "canceled"}
	case cause == context.DeadlineExceeded:
		return &wire.Error{Code: wire.DeadlineExceeded, Message: "deadline exceeded"}
	}
	return &wire.Error{Code: wire.Unavailable, Message: "server shutting down"}
}

// release takes a request out of the in-flight set just before its terminal
// frame is written: from then on its slot is free and a CANCEL for it is
// ignored, as PROTOCOL.md says.
func (c *serverConn) release(id uint32) {
	c.mu.Lock()
	delete(c.inflight, id)
	c.mu.Unlock()
}

// finish records a request whose terminal frame has been written; the last
// one to finish on a draining connection closes it.
func (c *serverConn) finish(r *serverReq, code wire.Code, d time.Duration) {
	r.cancel(nil)
	if r.stop != nil {
		r.stop()
	}
	s := c.srv
	if s.cfg.Observe != nil {
		s.cfg.Observe(r.Op, code, d)
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("request", "conn", c.id, "op", r.Op.String(), "id", r.ID, "trace", r.TraceID, "code", code.String(), "duration", d)
	}
	c.mu.Lock()
	c.active--
	done := c.draining && c.active == 0
	c.mu.Unlock()
	if done {
		c.sendLast(wire.ShuttingDown, "server shutting down")
	}
}

// drain starts a graceful close: DRAIN names the last request id that will
// be answered; streams end at once; the connection closes when idle.
func (c *serverConn) drain() {
	c.mu.Lock()
	if c.draining {
		c.mu.Unlock()
		return
	}
	c.draining = true
	ready := c.ready
	c.mu.Unlock()
	if ready {
		c.sendDrain()
		return
	}
	// Still in the handshake, so no request was sent yet: interrupt the
	// handshake read; it answers FATAL SHUTTING_DOWN.
	_ = c.nc.SetReadDeadline(time.Now())
}

// sendDrain runs exactly once per draining connection, after READY.
func (c *serverConn) sendDrain() {
	c.mu.Lock()
	c.drainLast = c.lastID
	last := c.drainLast
	idle := c.active == 0
	for _, r := range c.inflight {
		if r.stream != nil {
			r.cancel(errDraining)
		}
	}
	c.mu.Unlock()
	_ = c.w.write(wire.FrameDrain, 0, 0, wire.AppendDrain(nil, last))
	if idle {
		c.sendLast(wire.ShuttingDown, "server shutting down")
	}
}

// End-to-end deadlines (PROTOCOL.md §4.2). A REQUEST's deadline_ms is the
// caller's remaining budget when it wrote the frame; the frame may then
// wait in the network and in queues before the server reads it, and the
// answer takes time to travel back. Clocks of the two sides are not
// compared; instead the server measures the connection's round-trip time
// with its own PINGs, whose payload carries their send time, and gives a
// handler deadline_ms minus that round trip from the frame's arrival.
const (
	// rttRefresh is how old the last sample may be before a REQUEST with a
	// deadline triggers a new PING.
	rttRefresh = time.Second
	// pingLost is how long an unanswered PING blocks the next one.
	pingLost = 10 * time.Second
	// rttSamples is how many samples the estimate is the minimum of. A
	// PING's round trip can only overstate the link's delay (it may wait
	// behind other frames, or for a busy peer to read it), so one slow
	// sample must not make every request on the connection look late.
	rttSamples = 4
	// rttPingMagic starts the payload of the server's own PINGs, so a PONG
	// is matched to them and not to anything else.
	rttPingMagic = "bwrtt"
)

// rttEstimate is a connection's round-trip time. Only the reading
// goroutine uses it.
type rttEstimate struct {
	est      time.Duration // the smallest of the last rttSamples samples; 0 until the first
	at       time.Time     // when the last sample came
	pingSent time.Time     // when the outstanding PING went out; zero: none
	samples  [rttSamples]time.Duration
	n        int // samples taken so far
}

// networkBudget returns the round-trip time to subtract from a deadline,
// and sends a PING if the last measurement is stale.
func (c *serverConn) networkBudget() time.Duration {
	r := &c.rtt
	if now := time.Now(); now.Sub(r.at) >= rttRefresh && (r.pingSent.IsZero() || now.Sub(r.pingSent) >= pingLost) {
		r.pingSent = now
		_ = c.w.write(wire.FramePing, 0, 0, binary.BigEndian.AppendUint64([]byte(rttPingMagic), uint64(now.UnixNano())))
	}
	return r.est
}

// pongReceived takes a round-trip sample from the PONG to the server's
// outstanding PING; it ignores any other PONG (a stale or forged one).
func (c *serverConn) pongReceived(p []byte) {
	r := &c.rtt
	if len(p) != len(rttPingMagic)+8 || string(p[:len(rttPingMagic)]) != rttPingMagic ||
		r.pingSent.IsZero() || binary.BigEndian.Uint64(p[len(rttPingMagic):]) != uint64(r.pingSent.UnixNano()) {
		return
	}
	r.at = time.Now()
	r.samples[r.n%rttSamples] = r.at.Sub(r.pingSent)
	r.n++
	r.est = slices.Min(r.samples[:min(r.n, rttSamples)])
	r.pingSent = time.Time{}
}
