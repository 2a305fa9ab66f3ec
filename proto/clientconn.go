package proto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"bankwire/proto/wire"
)

// clientConn is one handshaken connection of a Client, built like Go's
// net/rpc client: a map of pending calls keyed by request id, callers that
// write their REQUEST and wait on their call's channel, and one reader that
// routes every answer to its call. Added to net/rpc's design: deadlines and
// cancellation, streams, drain, and a liveness check.
//
// Goroutines of a connection:
//   - readLoop, the only reader of the socket: it routes RESPONSE, ERROR and
//     EVENT by request id, PONG to the ping waiting for it, answers PING,
//     and handles DRAIN and FATAL. When reading fails it closes the
//     connection, which fails every pending call.
//   - checkAlive, run by the alive timer: it sends PING when the connection
//     has been silent too long and closes it when the PING goes unanswered.
//   - the callers (roundTrip, ping, Subscription.Close), each on its own
//     goroutine; they write frames and wait, never read.
//
// Locks, always taken in this order: the frameWriter's lock (w.lock: a
// request's id is chosen while it is held, so ids reach the wire in
// increasing order, §4.1), then mu. A Client's endpoint lock is taken
// before mu, never after it. Nobody writes to the socket while holding mu.
type clientConn struct {
	c     *Client
	ep    *endpoint
	nc    net.Conn
	in    *arrivals    // nc's reading side, noting when bytes arrive
	fr    *wire.Framer // used by readLoop only
	w     *frameWriter
	hello wire.Hello
	trace func(sent bool, f wire.Frame) // ClientConfig.Trace with this connection's name; nil if unset

	forStreams   bool // a connection for streams only (see Client.Subscribe)
	maxInFlight  int  // HELLO's max_in_flight: more pending ids are never sent
	pingInterval time.Duration

	mu        sync.Mutex // guards the fields below
	nextID    uint32
	pending   map[uint32]*call // sent and not yet answered with a terminal frame, given up or not
	pingSeq   uint32
	pings     map[uint32]chan struct{} // ping waiting for the PONG with that id
	draining  bool                     // DRAIN arrived: no new requests
	drainLast uint32                   // DRAIN's last id: answers for higher ids are dropped
	retiring  bool                     // no new requests; close once no caller waits
	closed    bool
	closeErr  error
	done      chan struct{} // closed by close
	unhook    func() bool   // stops closing this connection when the client closes

	// Liveness (checkAlive); times are durations since in.born.
	alive      *time.Timer
	aliveAt    time.Duration // when alive fires next
	awaitSince time.Duration // when pending last became non-empty
	pingedAt   time.Duration // when our unanswered PING went out; 0: none
	pingGrace  time.Duration // how long that PING may go unanswered
}

// arrivals is the reading side of a connection; it notes when bytes last
// arrived, which is what the liveness check asks: has anything at all come
// in (a frame that is still arriving counts).
type arrivals struct {
	net.Conn
	born time.Time
	last atomic.Int64 // time.Duration since born of the last read that returned bytes
}

func (a *arrivals) Read(p []byte) (int, error) {
	n, err := a.Conn.Read(p)
	if n > 0 {
		a.last.Store(int64(time.Since(a.born)))
	}
	return n, err
}

// Failure detection (§7.1, §11). A unary connection on which an answer is
// awaited and nothing has arrived for probeAfter sends PING; if nothing at
// all arrives within probeTimeout after it, the server is declared dead:
// the connection is closed (its calls fail UNAVAILABLE) and its endpoint
// ejected like one that refused a dial. A slow handler is not a dead
// server: the server answers PING while handlers run. Any connection
// otherwise pings after pingInterval of silence and gives that PING
// max(pingInterval, 2s).
const (
	probeAfter   = 300 * time.Millisecond
	probeTimeout = 500 * time.Millisecond
)

var (
	// errNotStarted marks a request the server provably never started: it
	// was never written, or a DRAIN named a lower last id. Such requests
	// are retried.
	errNotStarted = errors.New("proto: request not started")

	// errConnFull marks a request not sent because its connection already
	// has max_in_flight requests in flight; it goes to another connection.
	errConnFull = errors.New("proto: connection at max_in_flight")

	// errNotResponding is why a connection whose server stopped answering
	// is closed; its endpoint is ejected.
	errNotResponding = &wire.Error{Code: wire.Unavailable, Message: "app tier not responding"}

	// errStreamEnded is what Subscription.Next returns after the server
	// ended the stream normally.
	errStreamEnded = io.EOF
)

// subscriptionBuffer is how many events a subscription holds for a slow
// reader before it is ended with RESOURCE_EXHAUSTED; the connection's reader
// never blocks on one consumer.
const subscriptionBuffer = 256

// call is one request awaiting its terminal frame.
type call struct {
	id        uint32
	res       chan callResult // buffered 1: the answer of a unary call, or a stream's opening
	sub       *Subscription   // non-nil for a stream
	opened    bool            // stream: the opening RESPONSE arrived (guarded by mu)
	abandoned bool            // the caller gave up; the entry stays until the terminal frame so the id is not "unknown" (guarded by mu)
}

type callResult struct {
	f   wire.Frame
	err error
}

// newClientConn starts the reader and the liveness timer of a handshaken
// connection. It runs on a goroutine counted in c.wg (a dial), so that
// Client.Close waits for the reader too.
func newClientConn(c *Client, ep *endpoint, in *arrivals, fr *wire.Framer, hello wire.Hello, forStreams bool, trace func(bool, wire.Frame)) *clientConn {
	cc := &clientConn{
		c: c, ep: ep, nc: in.Conn, in: in, fr: fr, hello: hello, trace: trace,
		forStreams:  forStreams,
		maxInFlight: hello.MaxInFlight,
		pending:     map[uint32]*call{},
		pings:       map[uint32]chan struct{}{},
		done:        make(chan struct{}),
	}
	// Ping well inside the server's idle timeout so a healthy idle
	// connection is never cut, and so a dead server is noticed.
	cc.pingInterval = 15 * time.Second
	if hello.IdleTimeoutMs > 0 {
		cc.pingInterval = min(cc.pingInterval, time.Duration(hello.IdleTimeoutMs)*time.Millisecond/3)
	}
	cc.pingInterval = max(cc.pingInterval, 10*time.Millisecond)
	cc.w = newFrameWriter(cc.nc, c.cfg.WriteTimeout, func(err error) {
		cc.close(unavailable(fmt.Errorf("write: %w", err)))
	})
	cc.mu.Lock()
	cc.aliveAt = cc.now() + cc.pingInterval
	cc.alive = time.AfterFunc(cc.pingInterval, cc.checkAlive)
	cc.unhook = context.AfterFunc(c.ctx, func() { cc.close(errClientClosed) })
	cc.mu.Unlock()
	c.wg.Add(1)
	go cc.readLoop()
	return cc
}

// now is the time on the connection's clock (see arrivals).
func (cc *clientConn) now() time.Duration { return time.Since(cc.in.born) }

// roundTrip sends one request and waits for its answer or the end of ctx,
// which has a deadline for unary calls. sub is non-nil when opening a
// stream: the wait then ends at the stream's opening RESPONSE.
func (cc *clientConn) roundTrip(ctx context.Context, op wire.Op, trace string, body []byte, sub *Subscription) (wire.Frame, error) {
	cl := &call{res: make(chan callResult, 1), sub: sub}
	if err := cc.w.lock(); err != nil {
		return wire.Frame{}, errNotStarted
	}
	var deadlineMs uint32
	if dl, ok := ctx.Deadline(); ok && sub == nil {
		// The time left when the request is written (§4.2).
		left := time.Until(dl)
		if left <= 0 {
			cc.w.unlock()
			return wire.Frame{}, ctxError(context.DeadlineExceeded)
		}
		deadlineMs = uint32(min(int64((left+time.Millisecond-1)/time.Millisecond), math.MaxUint32))
	}
	if err := cc.register(cl); err != nil {
		cc.w.unlock()
		return wire.Frame{}, err
	}
	off := cc.w.beginFrame()
	cc.w.buf = wire.AppendRequest(cc.w.buf, wire.RequestHeader{Op: op, DeadlineMs: deadlineMs, TraceID: trace}, body)
	cc.w.endFrame(off, wire.FrameRequest, 0, cl.id)
	if t := cc.trace; t != nil {
		t(true, wire.Frame{Type: wire.FrameRequest, ID: cl.id, Payload: append([]byte(nil), cc.w.buf[off+wire.HeaderLen:]...)})
	}
	_ = cc.w.unlock() // a failed write closes the connection, which answers the call

	select {
	case r := <-cl.res:
		return r.f, r.err
	case <-ctx.Done():
		// CANCEL goes out on a deadline too (§4.2): the server's timer
		// counts from when it read the request, so a request held up on
		// the way would otherwise run after its caller gave up.
		if cc.abandon(cl) {
			_ = cc.writeTraced(wire.FrameCancel, cl.id, nil)
		}
		return wire.Frame{}, ctxError(ctx.Err())
	}
}

// register gives cl the next request id and makes it pending, unless the
// connection takes no new requests (errNotStarted) or is at max_in_flight
// (errConnFull). Called under the writer's lock.
func (cc *clientConn) register(cl *call) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.closed || cc.draining || cc.retiring {
		return errNotStarted
	}
	if cc.nextID == math.MaxUint32 {
		cc.retiring = true // ids are exhausted: new requests go to a new connection
		go cc.ep.detach(cc)
		return errNotStarted
	}
	if len(cc.pending) >= cc.maxInFlight {
		// The server would refuse it (§4.1): the server counts an id from
		// reading it to its terminal frame, this side from writing it to
		// reading that frame, so this count is never the lower.
		return errConnFull
	}
	cc.nextID++
	cl.id = cc.nextID
	if cl.sub != nil {
		cl.sub.cc, cl.sub.id = cc, cl.id
	}
	if len(cc.pending) == 0 && !cc.forStreams {
		// An answer is awaited from now on: silence is suspect after
		// probeAfter.
		now := cc.now()
		cc.awaitSince = now
		if cc.aliveAt > now+probeAfter {
			cc.scheduleLocked(now, now+probeAfter)
		}
	}
	cc.pending[cl.id] = cl
	return nil
}

// abandon marks cl as given up, keeping its id known until the server's
// terminal frame. It reports whether a CANCEL is worth sending.
func (cc *clientConn) abandon(cl *call) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.pending[cl.id] != cl || cl.abandoned {
		return false
	}
	cl.abandoned = true
	cc.maybeFinishLocked()
	return !cc.closed
}

func (cc *clientConn) writeTraced(t wire.FrameType, id uint32, payload []byte) error {
	if tr := cc.trace; tr != nil {
		tr(true, wire.Frame{Type: t, ID: id, Payload: payload})
	}
	return cc.w.write(t, 0, id, payload)
}

// hasRoom reports whether a new request may be sent on cc now.
func (cc *clientConn) hasRoom() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return !cc.closed && !cc.draining && !cc.retiring && len(cc.pending) < cc.maxInFlight
}

// ping sends PING and waits for the PONG with the same id.
func (cc *clientConn) ping(ctx context.Context) error {
	cc.mu.Lock()
	if cc.closed {
		defer cc.mu.Unlock()
		return cc.closeErr
	}
	cc.pingSeq++
	id := cc.pingSeq
	ch := make(chan struct{})
	cc.pings[id] = ch
	cc.mu.Unlock()
	defer func() {
		cc.mu.Lock()
		delete(cc.pings, id)
		cc.mu.Unlock()
	}()
	if err := cc.writeTraced(wire.FramePing, id, nil); err != nil {
		return unavailable(err)
	}
	select {
	case <-ch:
		return nil
	case <-cc.done:
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return cc.closeErr
	case <-ctx.Done():
		return ctxError(ctx.Err())
	}
}

// checkAlive runs when the alive timer fires. It pings a connection that
// has been silent too long and closes one whose PING went unanswered
// (see probeAfter), then sets the timer for the next moment to look.
func (cc *clientConn) checkAlive() {
	cc.mu.Lock()
	if cc.closed {
		cc.mu.Unlock()
		return
	}
	now, last := cc.now(), time.Duration(cc.in.last.Load())
	if last >= cc.pingedAt {
		cc.pingedAt = 0 // heard from since our PING
	}
	awaiting := !cc.forStreams && len(cc.pending) > 0
	quiet := last // silence counts from here
	if awaiting {
		quiet = max(last, cc.awaitSince)
	}
	ping, dead := false, false
	switch {
	case cc.pingedAt > 0:
		deadAt := cc.pingedAt + cc.pingGrace
		if awaiting {
			deadAt = min(deadAt, quiet+probeAfter+probeTimeout)
		}
		dead = now >= deadAt
		cc.scheduleLocked(now, min(deadAt, now+cc.pingInterval)) // the PING may be answered meanwhile
	case awaiting && now >= quiet+probeAfter:
		ping = true
		cc.pingLocked(now, probeTimeout)
	case now >= last+cc.pingInterval:
		ping = true
		cc.pingLocked(now, max(cc.pingInterval, 2*time.Second)) // a busy server is not a dead one
	case awaiting:
		cc.scheduleLocked(now, min(last+cc.pingInterval, quiet+probeAfter))
	default:
		cc.scheduleLocked(now, last+cc.pingInterval)
	}
	cc.mu.Unlock()
	if dead {
		cc.close(errNotResponding)
	} else if ping {
		_ = cc.writeTraced(wire.FramePing, 0, nil) // a failed write closes the connection
	}
}

// probe pings the connection at once, unless a PING is unanswered already,
// and closes it if nothing arrives within probeTimeout.
func (cc *clientConn) probe() {
	cc.mu.Lock()
	ping := !cc.closed && cc.pingedAt == 0
	if ping {
		cc.pingLocked(cc.now(), probeTimeout)
	}
	cc.mu.Unlock()
	if ping {
		_ = cc.writeTraced(wire.FramePing, 0, nil)
	}
}

// pingLocked notes a PING sent now that may go unanswered for grace.
func (cc *clientConn) pingLocked(now, grace time.Duration) {
	cc.pingedAt, cc.pingGrace = now, grace
	cc.scheduleLocked(now, now+min(grace, cc.pingInterval))
}

// scheduleLocked sets the alive timer to fire at at.
func (cc *clientConn) scheduleLocked(now, at time.Duration) {
	cc.aliveAt = at
	cc.alive.Reset(at - now)
}

// readLoop is the connection's reader (see clientConn).
func (cc *clientConn) readLoop() {
	defer cc.c.wg.Done()
	for {
		f, err := cc.fr.ReadFrame()
		if err != nil {
			if e, ok := wire.AsFatal(err); ok {
				err = cc.protocolError(e.Code, e.Message)
			}
			cc.close(connLost(err))
			return
		}
		if t := cc.trace; t != nil {
			t(false, f)
		}
		if err := cc.handle(f); err != nil {
			cc.close(err)
			return
		}
	}
}

func connLost(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return &wire.Error{Code: wire.Unavailable, Message: "connection lost"}
	}
	return unavailable(err)
}

// protocolError tells the server what it did wrong and ends the connection.
func (cc *clientConn) protocolError(code wire.Code, reason string) error {
	cc.c.log.Error("app tier protocol error", "addr", cc.ep.addr, "code", code.String(), "reason", reason)
	_ = cc.writeTraced(wire.FrameFatal, 0, wire.AppendFatal(nil, code, reason))
	cc.w.waitIdle() // the FATAL must leave before the connection closes
	return &wire.Error{Code: wire.Unavailable, Message: "app tier protocol error"}
}

// handle acts on one frame from the server; an error ends the connection.
func (cc *clientConn) handle(f wire.Frame) error {
	switch f.Type {
	case wire.FrameResponse, wire.FrameError, wire.FrameEvent:
		return cc.route(f)
	case wire.FramePong:
		cc.mu.Lock()
		ch := cc.pings[f.ID]
		delete(cc.pings, f.ID)
		cc.mu.Unlock()
		if ch != nil {
			close(ch)
		}
		return nil
	case wire.FramePing:
		if len(f.Payload) > wire.MaxPingPayload {
			return cc.protocolError(wire.ProtocolError, "PING payload over 64 bytes")
		}
		_ = cc.writeTraced(wire.FramePong, f.ID, f.Payload)
		return nil
	case wire.FrameDrain:
		last, err := wire.ParseDrain(f.Payload)
		if err != nil {
			return cc.protocolError(wire.ProtocolError, "malformed DRAIN")
		}
		cc.onDrain(last)
		return nil
	case wire.FrameFatal:
		e, err := wire.ParseFatal(f.Payload)
		if err != nil {
			return &wire.Error{Code: wire.Unavailable, Message: "connection closed by app tier"}
		}
		if e.Code != wire.ShuttingDown {
			cc.c.log.Warn("app tier closed the connection", "addr", cc.ep.addr, "code", e.Code.String(), "reason", e.Message)
		}
		return &wire.Error{Code: wire.Unavailable, Message: "connection closed by app tier: " + e.Code.String()}
	}
	return cc.protocolError(wire.ProtocolError, "unexpected "+f.Type.String()+" frame from server")
}

// route delivers a RESPONSE, ERROR or EVENT to its call.
func (cc *clientConn) route(f wire.Frame) error {
	var ferr *wire.Error
	if f.Type == wire.FrameError {
		e, err := wire.ParseError(f.Payload)
		if err != nil {
			return cc.protocolError(wire.ProtocolError, "undecodable ERROR payload")
		}
		ferr = e
	}
	cc.mu.Lock()
	cl := cc.pending[f.ID]
	if cl == nil {
		drop := cc.draining && f.ID > cc.drainLast // a late answer to a request retried elsewhere
		cc.mu.Unlock()
		if drop {
			return nil
		}
		return cc.protocolError(wire.ProtocolError, fmt.Sprintf("%s for unknown request id %d", f.Type, f.ID))
	}
	switch {
	case f.Type == wire.FrameEvent:
		if cl.sub == nil || !cl.opened {
			cc.mu.Unlock()
			return cc.protocolError(wire.ProtocolError, fmt.Sprintf("EVENT for request id %d, which is not an open stream", f.ID))
		}
		abandoned := cl.abandoned
		cc.mu.Unlock()
		if !abandoned {
			cl.sub.push(f.Payload)
		}
		return nil
	case f.Type == wire.FrameResponse && f.Flags&wire.FlagStream != 0:
		if cl.sub == nil || cl.opened {
			cc.mu.Unlock()
			return cc.protocolError(wire.ProtocolError, fmt.Sprintf("stream RESPONSE for request id %d, which is not a subscription", f.ID))
		}
		cl.opened = true
		abandoned := cl.abandoned
		cc.mu.Unlock()
		if !abandoned {
			cl.res <- callResult{f: f}
		}
		return nil
	}
	// Terminal frame: the id is free again.
	delete(cc.pending, f.ID)
	abandoned, opened := cl.abandoned, cl.opened
	cl.abandoned = true // no second delivery
	cc.maybeFinishLocked()
	cc.mu.Unlock()
	res := callResult{f: f}
	if ferr != nil {
		res = callResult{err: ferr}
	}
	switch {
	case cl.sub != nil && opened:
		if res.err == nil || wire.ErrorCode(res.err) == wire.OK {
			res.err = errStreamEnded
		}
		cl.sub.finish(res.err)
	case !abandoned:
		cl.res <- res
	}
	return nil
}

// onDrain handles the server's DRAIN: no new requests on this connection;
// pending requests above last were never started and are retried elsewhere.
func (cc *clientConn) onDrain(last uint32) {
	cc.ep.detach(cc)
	cc.mu.Lock()
	cc.draining = true
	cc.drainLast = last
	var retry []*call
	for id, cl := range cc.pending {
		if id > last && !cl.abandoned {
			delete(cc.pending, id) // a late answer is dropped (see route)
			retry = append(retry, cl)
		}
	}
	cc.maybeFinishLocked()
	cc.mu.Unlock()
	for _, cl := range retry {
		cl.res <- callResult{err: errNotStarted}
	}
}

// retireWhenIdle stops new requests and closes the connection once nothing
// is pending (an endpoint that vanished from DNS).
func (cc *clientConn) retireWhenIdle() {
	cc.mu.Lock()
	cc.retiring = true
	cc.maybeFinishLocked()
	cc.mu.Unlock()
}

// maybeFinishLocked closes a draining or retiring connection once no
// caller waits for an answer on it.
func (cc *clientConn) maybeFinishLocked() {
	if !cc.draining && !cc.retiring || cc.closed {
		return
	}
	for _, cl := range cc.pending {
		if !cl.abandoned {
			return
		}
	}
	go cc.close(&wire.Error{Code: wire.Unavailable, Message: "connection drained"})
}

// close ends the connection and fails every pending call: UNAVAILABLE, or a
// retry for ids above a DRAIN's last id.
func (cc *clientConn) close(reason error) {
	cc.mu.Lock()
	if cc.closed {
		cc.mu.Unlock()
		return
	}
	cc.closed = true
	cc.closeErr = unavailable(reason)
	pending := cc.pending
	cc.pending = map[uint32]*call{}
	draining, last := cc.draining, cc.drainLast
	close(cc.done)
	cc.alive.Stop()
	cc.unhook()
	cc.mu.Unlock()
	cc.nc.Close()
	cc.ep.detach(cc)
	if reason == errNotResponding {
		cc.ep.eject(reason)
	}
	for id, cl := range pending {
		if cl.abandoned {
			continue
		}
		switch {
		case cl.sub != nil && cl.opened:
			cl.sub.finish(cc.closeErr)
		case draining && id > last:
			cl.res <- callResult{err: errNotStarted}
		default:
			cl.res <- callResult{err: cc.closeErr}
		}
	}
}

// Subscription is the client side of a stream opened by Subscribe.
type Subscription struct {
	cc     *clientConn
	id     uint32
	events chan []byte

	mu   sync.Mutex
	err  error         // why it ended; guarded by mu
	done chan struct{} // closed when err is set
}

// push hands an event to the subscriber without ever blocking the
// connection's reader; a subscriber too slow to keep up is ended.
func (s *Subscription) push(p []byte) {
	select {
	case <-s.done:
		return
	default:
	}
	select {
	case s.events <- p:
	default:
		s.finish(&wire.Error{Code: wire.ResourceExhausted, Message: "subscriber too slow: events dropped"})
		s.sendCancel()
	}
}

// finish ends the subscription with err (set once).
func (s *Subscription) finish(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
		close(s.done)
	}
}

// Next blocks for the next event and decodes it into v. It returns
// UNAVAILABLE when the connection is lost or the server shuts down, CANCELED
// after Close, io.EOF when the server ended the stream normally, and the
// server's error if it ended the stream with one. Events that arrived before
// the end are delivered first.
func (s *Subscription) Next(ctx context.Context, v any) error {
	select {
	case p := <-s.events:
		return decodeEvent(p, v)
	case <-s.done:
		select {
		case p := <-s.events:
			return decodeEvent(p, v)
		default:
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.err
	case <-ctx.Done():
		return ctxError(ctx.Err())
	}
}

func decodeEvent(p []byte, v any) error {
	if v == nil {
		return nil
	}
	if err := wire.Unmarshal(p, v); err != nil {
		return &wire.Error{Code: wire.Internal, Message: "undecodable event"}
	}
	return nil
}

// Close ends the subscription: it sends CANCEL, and Next returns CANCELED.
func (s *Subscription) Close() error {
	s.finish(&wire.Error{Code: wire.Canceled, Message: "subscription closed"})
	s.sendCancel()
	return nil
}

func (s *Subscription) sendCancel() {
	if s.cc == nil {
		return
	}
	cc := s.cc
	cc.mu.Lock()
	cl := cc.pending[s.id]
	cc.mu.Unlock()
	if cl != nil && cc.abandon(cl) {
		_ = cc.writeTraced(wire.FrameCancel, s.id, nil)
	}
}
