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

// serverConn is one accepted connection. Its reading goroutine (serve)
// does the handshake, then reads frames and dispatches them by type; the
// answers go out through w, which many goroutines share.
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

	closing    atomic.Bool    // the last frame (FATAL) was sent; reads only discard now
	evicted    atomic.Bool    // made to leave the handshake for a newcomer (admitLocked)
	handlersWG sync.WaitGroup // one count per admitted request until it is answered

	preAuth bool // counted in the server's handshake budget; guarded by srv.mu
	authed  bool // counted as authenticated; guarded by srv.mu

	// Owned by the reading goroutine.
	start    time.Time
	client   string     // the name the client sent in AUTH
	level    slog.Level // of the connection's opened and closed lines (ServerConfig.Quiet)
	unlogged bool       // it failed the handshake and its lines were rate-limited away
	requests int
	lastRecv time.Time   // when the last frame arrived
	held     bool        // inline answers wait in w, to be flushed before the next wait for the peer
	rtt      rttEstimate // the round trip deadlines are reduced by
	inline   inlineState // inline.go

	mu       sync.Mutex // guards the fields below; taken after w's lock (sendDrain)
	ready    bool       // the handshake succeeded
	inflight map[uint32]*serverReq
	active   int    // requests (refused ones too) whose terminal frame is not written yet; a draining connection closes at 0
	lastID   uint32 // the highest request id read: ids must increase
	lastKept uint32 // the highest id answered or being answered: DRAIN names it
	draining bool
	drained  bool // DRAIN written: from now on the last request to finish closes the connection
}

// serverReq is one request from its REQUEST frame to its terminal frame.
// It is in its connection's inflight map, counted against MaxInFlight,
// until that frame is in the writer (forget): a handler waiting for room
// to write its answer still holds its slot, so a peer that stops reading
// cannot pile up handlers.
type serverReq struct {
	Request
	ctx    context.Context
	cancel context.CancelCauseFunc // ends ctx with a cause: errClientCancel, errDraining, or nil once answered
	stop   context.CancelFunc      // releases ctx's deadline; nil without one
	handler
	flush     flushMode // how its terminal frame leaves; flushHold only for an inline run
	answering bool      // its handler returned: CANCEL and drain no longer end ctx; guarded by c.mu
}

// Cancellation causes, so that a request knows why its context ended.
var (
	errClientCancel = errors.New("canceled by client")
	errDraining     = errors.New("server shutting down")
)

func (s *Server) newConn(nc net.Conn) *serverConn {
	c := &serverConn{
		srv:      s,
		nc:       nc,
		id:       "c" + strconv.FormatUint(s.nextConn.Add(1), 10),
		remote:   nc.RemoteAddr().String(),
		inflight: map[uint32]*serverReq{},
		level:    slog.LevelInfo,
		fr:       wire.NewFramer(nc, nil),
	}
	c.ip = c.remote
	if host, _, err := net.SplitHostPort(c.remote); err == nil {
		c.ip = host
	}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.inline.watchdog = time.AfterFunc(time.Hour, c.watchdogFired)
	c.inline.watchdog.Stop()
	c.w = newFrameWriter(nc, s.cfg.WriteTimeout, func(err error) {
		// This runs on a goroutine of its own, which Close does not wait
		// for: a write that failed because the server closed the
		// connection itself (end, Close: both cancel c.ctx first) is not
		// news, and must not be logged after Close returned.
		if c.ctx.Err() != nil {
			nc.Close()
			return
		}
		// Before READY it is a stranger's connection: logged at a rate.
		c.mu.Lock()
		ready := c.ready
		c.mu.Unlock()
		if ready {
			s.log.Warn("write failed, closing connection", "conn", c.id, "remote", c.remote, "err", err)
		} else {
			s.logRefusal(slog.LevelWarn, "write failed, closing connection", "conn", c.id, "remote", c.remote, "err", err)
		}
		nc.Close()
	})
	return c
}

func (c *serverConn) serve() {
	c.start = time.Now()
	if reason := c.handshake(); reason != "" {
		c.srv.leavePreAuth(c, false)
		// Strangers are logged at a rate, so that a flood cannot flood the log.
		c.unlogged = !c.srv.logRefusal(c.level, "connection opened", "conn", c.id, "remote", c.remote, "client", c.client)
		c.end(reason)
		return
	}
	c.srv.log.Log(context.Background(), c.level, "connection opened", "conn", c.id, "remote", c.remote, "client", c.client)
	c.readLoop()
}

// readLoop reads until the connection ends, then ends it; or, when the
// watchdog handed reading to another goroutine during an inline run, until
// that run is answered.
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
	// Eviction and drain cut the handshake's read short with a deadline;
	// one that came before the deadline above was set is seen here.
	if c.evicted.Load() {
		return c.fatal(wire.TooManyConnections, evictedReason)
	}
	if c.isDraining() {
		return c.fatal(wire.ShuttingDown, "server shutting down")
	}
	if err := c.w.write(wire.FrameHello, 0, 0, c.srv.hello); err != nil {
		return "write HELLO: " + err.Error()
	}
	c.fr.SetMaxPayload(wire.HandshakeMaxPayload)
	f, err := c.fr.ReadFrame()
	if err != nil {
		code, msg := wire.HandshakeTimeout, fmt.Sprintf("no AUTH within %s", cfg.HandshakeTimeout)
		if c.evicted.Load() {
			code, msg = wire.TooManyConnections, evictedReason
		} else if c.isDraining() {
			code, msg = wire.ShuttingDown, "server shutting down"
		}
		return c.readEnded(err, code, msg)
	}
	if f.Type != wire.FrameAuth {
		return c.fatal(wire.ProtocolError, fmt.Sprintf("expected AUTH, got %s", f.Type))
	}
	a, err := wire.ParseAuth(f.Payload)
	if err != nil {
		e := err.(*wire.Error)
		return c.fatal(e.Code, e.Message)
	}
	// Comparing hashes keeps the comparison constant-time in the secret's length too.
	if sum := sha256.Sum256([]byte(a.Secret)); subtle.ConstantTimeCompare(sum[:], c.srv.secretSum[:]) != 1 {
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
	if err := c.w.write(wire.FrameReady, 0, 0, ready); err != nil {
		return "write READY: " + err.Error()
	}
	c.fr.SetMaxPayload(cfg.MaxPayload)
	// Only now may a drain write DRAIN (and FATAL) itself: they must
	// follow READY. One that began before is sent here.
	c.mu.Lock()
	c.ready = true
	draining := c.draining
	c.mu.Unlock()
	if draining {
		c.sendDrain()
	}
	return ""
}

func (c *serverConn) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
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
		// The next frame's first byte may take the idle timeout (Peek
		// consumes nothing), the rest of it the read timeout.
		if !c.armRead(cfg.IdleTimeout) {
			return c.linger()
		}
		if _, err := br.Peek(1); err != nil {
			return c.readEnded(err, wire.IdleTimeout, fmt.Sprintf("no frame received for %s", cfg.IdleTimeout))
		}
		if !c.armRead(cfg.ReadTimeout) {
			return c.linger()
		}
		f, err := c.fr.ReadFrame()
		if err != nil {
			return c.readEnded(err, wire.ProtocolError, fmt.Sprintf("frame not completed within %s", cfg.ReadTimeout))
		}
		c.lastRecv = time.Now()
		if reason := c.handleFrame(f); reason != "" {
			return reason
		}
	}
}

// armRead sets the read deadline d from now and reports whether the
// connection is still open for reading: once closing, the deadline belongs
// to sendLast and the reader must linger instead.
func (c *serverConn) armRead(d time.Duration) bool {
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	return !c.closing.Load()
}

// readEnded ends the connection after a failed read and returns why; a
// deadline's expiry is answered FATAL code with msg.
func (c *serverConn) readEnded(err error, code wire.Code, msg string) string {
	if e, ok := wire.AsFatal(err); ok {
		return c.fatal(e.Code, e.Message)
	}
	switch {
	case c.closing.Load():
		return c.linger()
	case isTimeout(err):
		return c.fatal(code, msg)
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
		if r != nil && !r.answering {
			r.cancel(errClientCancel)
		}
		c.mu.Unlock()
		return ""
	case wire.FramePing:
		if len(f.Payload) > wire.MaxPingPayload {
			return c.fatal(wire.ProtocolError, "PING payload over 64 bytes")
		}
		if err := c.w.write(wire.FramePong, 0, f.ID, f.Payload); err != nil {
			return c.writeFailed(err)
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
		msg := e.Message
		if len(msg) > 256 { // it goes into the log: the server bounds its size
			msg = msg[:256] + "..."
		}
		return "client FATAL " + e.Code.String() + ": " + msg
	}
	return c.fatal(wire.ProtocolError, fmt.Sprintf("unexpected %s frame from client", f.Type))
}

// fatal sends FATAL as the connection's last frame and lingers, unless the
// connection was evicted, which must make room at once. It returns the
// reason for the log.
func (c *serverConn) fatal(code wire.Code, reason string) string {
	c.sendLast(code, reason)
	if !c.evicted.Load() {
		c.linger()
	}
	return code.String() + ": " + reason
}

// sendLast sends FATAL once, as the connection's last frame (PROTOCOL.md
// §6.2), and half-closes. Its read deadline ends the reader's wait, and
// the reader lingers.
func (c *serverConn) sendLast(code wire.Code, reason string) {
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	c.w.writeLast(wire.FrameFatal, wire.AppendFatal(nil, code, reason))
	c.w.waitIdle()
	closeWrite(c.nc)
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
}

// writeFailed is why the connection ends after the reader's own write
// failed: a drain's FATAL may have sealed the writer meanwhile, and then
// the reader lingers as after any last frame.
func (c *serverConn) writeFailed(err error) string {
	if c.closing.Load() {
		return c.linger()
	}
	return "write: " + err.Error()
}

func (c *serverConn) linger() string {
	linger(c.nc, c.fr.Reader())
	return "closed after final frame"
}

// handleRequest admits a REQUEST and runs its handler, or answers it at once.
func (c *serverConn) handleRequest(f wire.Frame) string {
	s := c.srv
	h, body, err := wire.ParseRequest(f.Payload)
	if err != nil {
		return c.fatal(wire.ProtocolError, err.(*wire.Error).Message)
	}
	var budget time.Duration
	if h.DeadlineMs > 0 {
		budget = time.Duration(h.DeadlineMs)*time.Millisecond - c.networkBudget()
	}
	c.requests++
	op := s.ops[h.Op]
	c.mu.Lock()
	if last := c.lastID; f.ID <= last {
		_, dup := c.inflight[f.ID]
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
	case op.unary == nil && op.stream == nil:
		reject = &wire.Error{Code: wire.Unimplemented, Message: "unknown operation " + h.Op.String()}
	case h.DeadlineMs > 0 && budget <= 0:
		reject = &wire.Error{Code: wire.DeadlineExceeded, Message: "deadline exceeded"}
	}
	if reject != nil && c.draining && !c.drained {
		// DRAIN is about to be written and will name a lower last id: the
		// client retries this request elsewhere, so it gets no answer
		// (§7.3).
		c.mu.Unlock()
		return ""
	}
	c.lastKept = f.ID
	if reject != nil {
		// Counted as active until its ERROR is in the writer: DRAIN may
		// name it from now on, and the drain's FATAL must not overtake it.
		c.active++
		c.mu.Unlock()
		if s.cfg.Observe != nil {
			known := h.Op
			if op.unary == nil && op.stream == nil {
				known = 0
			}
			s.cfg.Observe(known, reject.Code, 0)
		}
		err := c.w.write(wire.FrameError, 0, f.ID, wire.AppendError(nil, reject))
		c.deactivate()
		if err != nil {
			return c.writeFailed(err)
		}
		return ""
	}
	// The request's context ends with the connection's, on CANCEL (cause
	// errClientCancel), at its deadline and, for a stream only, on drain
	// (cause errDraining, sendDrain); unary requests in flight finish.
	r := &serverReq{Request: Request{Op: h.Op, ID: f.ID, TraceID: h.TraceID, Payload: body}, handler: op}
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
	if op.unary != nil && s.inline(h.Op) {
		return c.runInline(r)
	}
	go c.run(r)
	return ""
}

func (c *serverConn) run(r *serverReq) {
	defer c.handlersWG.Done()
	if r.stream != nil {
		c.runStream(r)
		return
	}
	resp, err, d := c.callUnary(r)
	c.answer(r, resp, err, d)
}

// callUnary runs r's handler and reports how long it took. A request that
// ended (CANCEL, deadline) before its handler started does not start.
func (c *serverConn) callUnary(r *serverReq) (resp any, err error, d time.Duration) {
	if err := r.ctx.Err(); err != nil {
		return nil, err, 0
	}
	start := time.Now()
	defer func() {
		d = time.Since(start)
		if err != errMalformedBody { // a flood of those must not make a slow op inline
			c.srv.observeCost(r.Op, d)
		}
	}()
	defer c.recoverHandler(r, &err)
	resp, err = r.unary(r.ctx, &r.Request)
	return resp, err, 0 // d is set on the way out
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

// answer writes a unary request's terminal frame and finishes it.
func (c *serverConn) answer(r *serverReq, resp any, err error, d time.Duration) {
	c.answering(r)
	var code wire.Code
	if err == nil {
		code = c.writeResult(r, wire.FrameResponse, 0, resp)
	} else {
		code = c.writeError(r, err)
	}
	c.finish(r, code, d)
}

// writeResult encodes v and sends it as a RESPONSE (or EVENT) frame for r.
// A value that cannot be encoded is logged and returns INTERNAL; a unary
// request is then answered ERROR INTERNAL, while a stream's frame is
// skipped and runStream writes its one terminal frame.
func (c *serverConn) writeResult(r *serverReq, t wire.FrameType, flags uint16, v any) wire.Code {
	terminal := t == wire.FrameResponse && flags&wire.FlagStream == 0
	if err := c.w.lock(); err != nil {
		if terminal {
			c.forget(r.ID)
		}
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
		_ = c.w.unlockMode(flushBatched)
		c.srv.log.ErrorContext(r.ctx, "encode response", "conn", c.id, "op", r.Op.String(), "id", r.ID, "trace", r.TraceID, "err", err)
		if r.stream != nil {
			return wire.Internal
		}
		return c.writeError(r, &wire.Error{Code: wire.Internal, Message: "internal error"})
	}
	c.w.endFrame(off, t, flags, r.ID)
	if terminal {
		c.forget(r.ID)
	}
	if c.w.unlockMode(r.flush) != nil {
		return wire.Unavailable
	}
	return wire.OK
}

// writeError sends err, as the caller may see it, as r's terminal ERROR
// frame and returns its code.
func (c *serverConn) writeError(r *serverReq, err error) wire.Code {
	e := c.wireError(r, err)
	c.writeTerminalError(r, e)
	return e.Code
}

// writeTerminalError sends e as r's terminal ERROR frame.
func (c *serverConn) writeTerminalError(r *serverReq, e *wire.Error) {
	if c.w.lock() != nil {
		c.forget(r.ID)
		return
	}
	off := c.w.beginFrame()
	c.w.buf = wire.AppendError(c.w.buf, e)
	c.w.endFrame(off, wire.FrameError, 0, r.ID)
	c.forget(r.ID)
	_ = c.w.unlockMode(r.flush)
}

// wireError maps a handler error to what the caller may see: an *Error as
// is, the end of the request's context by its cause, anything else INTERNAL
// (logged; internal error text never leaves the server). Once the deadline
// passed, whatever a handler made of its context's end (Canceled from a
// wrapping context, an *Error of its own) is DEADLINE_EXCEEDED.
func (c *serverConn) wireError(r *serverReq, err error) *wire.Error {
	ctxErr := errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
	var e *wire.Error
	isErr := errors.As(err, &e)
	expired := r.ctx.Err() != nil && context.Cause(r.ctx) == context.DeadlineExceeded
	switch {
	case expired && (ctxErr || isErr && (e.Code == wire.Canceled || e.Code == wire.DeadlineExceeded)):
		return &wire.Error{Code: wire.DeadlineExceeded, Message: "deadline exceeded"}
	case isErr && e.Code != wire.OK && !e.Code.Fatal():
		return e
	case ctxErr && r.ctx.Err() != nil:
		return endedError(r.ctx)
	}
	c.srv.log.ErrorContext(r.ctx, "request failed", "conn", c.id, "op", r.Op.String(), "id", r.ID, "trace", r.TraceID, "err", err)
	return &wire.Error{Code: wire.Internal, Message: "internal error"}
}

// endedError is the terminal error of a request whose context ended, by
// the cause: the client's CANCEL, the deadline, or the server draining or
// closing (a closed connection ends it too, but then nothing is written).
func endedError(ctx context.Context) *wire.Error {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errClientCancel):
		return &wire.Error{Code: wire.Canceled, Message: "canceled"}
	case cause == context.DeadlineExceeded:
		return &wire.Error{Code: wire.DeadlineExceeded, Message: "deadline exceeded"}
	}
	return &wire.Error{Code: wire.Unavailable, Message: "server shutting down"}
}

// answering marks a request whose handler returned: from then on its
// answer is decided, and a CANCEL or a drain no longer ends its context.
func (c *serverConn) answering(r *serverReq) {
	c.mu.Lock()
	r.answering = true
	c.mu.Unlock()
}

// forget takes a request out of the in-flight set once its terminal frame
// is in the writer (under the writer's lock, before the frame can leave):
// from then on its slot is free.
func (c *serverConn) forget(id uint32) {
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
	c.deactivate()
}

// deactivate counts one request's terminal frame as written; the last one
// on a drained connection closes it.
func (c *serverConn) deactivate() {
	c.mu.Lock()
	c.active--
	done := c.drained && c.active == 0
	c.mu.Unlock()
	if done {
		c.sendLast(wire.ShuttingDown, "server shutting down")
	}
}

// drain starts a graceful close: DRAIN names the last request id that will
// be answered; streams end at once; the connection closes when idle. A
// connection still in the handshake has its read cut short, and answers
// FATAL SHUTTING_DOWN.
func (c *serverConn) drain() {
	c.mu.Lock()
	first, ready := !c.draining, c.ready
	c.draining = true
	c.mu.Unlock()
	if first && ready {
		c.sendDrain()
	} else if first {
		_ = c.nc.SetReadDeadline(time.Now())
	}
}

// testHookBeforeDrain, set only by tests, runs just before DRAIN is written.
var testHookBeforeDrain func()

// sendDrain runs exactly once per draining connection, after READY. DRAIN
// is appended to the writer and drained set under both locks: a request
// read before that is above DRAIN's last id and left unanswered
// (handleRequest), one read after is answered UNAVAILABLE behind DRAIN.
// Streams end, and a request may close the connection (finish waits for
// drained), only after DRAIN, so it precedes their ERRORs and the FATAL.
// Once draining is set no request is admitted, so lastKept cannot grow.
func (c *serverConn) sendDrain() {
	if testHookBeforeDrain != nil {
		testHookBeforeDrain()
	}
	locked := c.w.lock() == nil
	c.mu.Lock()
	if locked {
		off := c.w.beginFrame()
		c.w.buf = wire.AppendDrain(c.w.buf, c.lastKept)
		c.w.endFrame(off, wire.FrameDrain, 0, 0)
	}
	c.drained = true
	idle := c.active == 0
	c.mu.Unlock()
	if locked {
		_ = c.w.unlockMode(flushNow)
	}
	c.mu.Lock()
	for _, r := range c.inflight {
		if r.stream != nil && !r.answering {
			r.cancel(errDraining)
		}
	}
	c.mu.Unlock()
	if idle {
		c.sendLast(wire.ShuttingDown, "server shutting down")
	}
}

// A REQUEST's deadline is reduced by the connection's round trip
// (PROTOCOL.md §4.2), which the server measures with PINGs of its own,
// their payload rttPingMagic and the send time: one at a time (a lost one
// blocks the next for pingLost), when a REQUEST with a deadline finds the
// last sample older than rttRefresh. The estimate is the smallest of the
// last rttSamples samples, as a PING can only overstate the link's delay.
const (
	rttRefresh   = time.Second
	pingLost     = 10 * time.Second
	rttSamples   = 4
	rttPingMagic = "bwrtt"
)

// rttEstimate is a connection's round trip; the reading goroutine owns it.
type rttEstimate struct {
	est      time.Duration // 0 until the first sample
	at       time.Time     // of the last sample
	pingSent time.Time     // of the outstanding PING; zero: none
	samples  [rttSamples]time.Duration
	n        int // samples taken so far
}

// networkBudget returns the round trip to take off a deadline, and sends a
// PING if the last measurement is stale.
func (c *serverConn) networkBudget() time.Duration {
	r := &c.rtt
	if now := time.Now(); now.Sub(r.at) >= rttRefresh && (r.pingSent.IsZero() || now.Sub(r.pingSent) >= pingLost) {
		r.pingSent = now
		_ = c.w.write(wire.FramePing, 0, 0, binary.BigEndian.AppendUint64([]byte(rttPingMagic), uint64(now.UnixNano())))
	}
	return r.est
}

// pongReceived takes a sample from the PONG to the outstanding PING and
// ignores any other PONG.
func (c *serverConn) pongReceived(p []byte) {
	r := &c.rtt
	want := binary.BigEndian.AppendUint64([]byte(rttPingMagic), uint64(r.pingSent.UnixNano()))
	if r.pingSent.IsZero() || string(p) != string(want) {
		return
	}
	r.at = time.Now()
	r.samples[r.n%rttSamples] = r.at.Sub(r.pingSent)
	r.n++
	r.est = slices.Min(r.samples[:min(r.n, rttSamples)])
	r.pingSent = time.Time{}
}
