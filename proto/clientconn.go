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

// errNotStarted marks a request the server provably never started: it was
// never written, or a DRAIN named a lower last id. Such requests are retried.
var errNotStarted = errors.New("proto: request not started")

// subscriptionBuffer is how many events a subscription holds for a slow
// reader before it is ended with RESOURCE_EXHAUSTED; the connection's reader
// never blocks on one consumer.
const subscriptionBuffer = 256

// clientConn is one handshaken connection: net/rpc's design (a pending map
// keyed by request id, and one reader routing answers) plus deadlines,
// cancellation, streams and drain.
//
// The reader is a role, not a goroutine ("leader/follower"). A unary call
// that finds nobody reading reads the connection itself until its own
// answer arrives, routing whatever else comes meanwhile. Alone on a
// connection, a round trip then runs on one goroutine from write to
// answer, with no hand-off: no other goroutine (on an idle machine, no
// other core) to wake, which would cost more than the round trip itself.
// Calls that find a reader wait for their answer on a channel, as in
// net/rpc. When the leading caller is done and others still wait (or a
// stream is open, or a PING), a background reader takes over at once;
// when nobody waits, one starts after idleReaderDelay, so an idle
// connection still answers PINGs, notices DRAIN and EOF, and sends its
// keepalive PINGs.
type clientConn struct {
	c     *Client
	ep    *endpoint
	nc    net.Conn
	fr    *wire.Framer
	w     *frameWriter
	hello wire.Hello
	trace func(sent bool, f wire.Frame) // ClientConfig.Trace with this connection's name; nil if unset

	forStreams   bool // a connection for streams only (see Subscribe)
	pingInterval time.Duration
	lastRecv     atomic.Int64 // monoNanos
	lastSent     atomic.Int64 // monoNanos of the last PING, PONG or CANCEL sent (see readStep)
	awaitSince   atomic.Int64 // monoNanos when pending last became non-empty

	mu        sync.Mutex // guards these fields and the reading role; taken after endpoint.mu
	nextID    uint32
	pending   map[uint32]*call
	bounced   map[uint32]struct{} // ids above a DRAIN's last id, handed back for retry; their late answers are dropped
	live      int                 // pending calls not abandoned
	pingSeq   uint32
	pings     map[uint32]chan struct{}
	draining  bool
	drainLast uint32
	retiring  bool
	closed    bool
	closeErr  error // why it closed; set before done is closed
	done      chan struct{}

	// The reading role; guarded by mu.
	reader    readerRole
	streams   int         // stream calls in pending, abandoned or not: they need a reader at all times
	idleT     *time.Timer // starts a background reader once the role has been free for idleReaderDelay
	idleArmed bool
	unhook    func() bool // stops closing this connection on Client.Close

	// Owned by whoever holds the reading role (handed over under mu).
	pinged   bool      // a PING is unanswered
	pingDead time.Time // when pinged: without a frame by then, the server is dead
	dl       time.Time // the read deadline armed on nc; zero: must be re-armed

	// Waking the reader in its wait for the peer (see kick).
	kmu     sync.Mutex
	peeking bool // the reader waits in Peek: kick may move the read deadline
	kicked  bool
}

type readerRole uint8

const (
	readerNone       readerRole = iota
	readerCaller                // a unary call reads until its answer arrives
	readerBackground            // readLoop
)

// idleReaderDelay is how long the reading role stays free before a
// background reader takes it: short enough for DRAIN and EOF to be noticed
// at once, long enough that back-to-back calls on an idle connection keep
// reading for themselves.
const idleReaderDelay = 2 * time.Millisecond

// Fast failure detection (§11): a unary connection on which an answer is
// awaited and nothing has been heard for probeAfter sends PING; if nothing
// at all arrives within probeTimeout after it, the server is declared dead:
// the connection is closed (its calls fail UNAVAILABLE) and its endpoint
// ejected like one that refused a dial. A slow handler is not a dead
// server: the server answers PING while handlers run.
const (
	probeAfter   = 300 * time.Millisecond
	probeTimeout = 500 * time.Millisecond
)

// errNotResponding is why a connection whose server stopped answering is
// closed; its endpoint is ejected.
var errNotResponding = &wire.Error{Code: wire.Unavailable, Message: "app tier not responding"}

// errConnFull marks a request not sent because its connection already has
// max_in_flight requests in flight; it goes to another connection.
var errConnFull = errors.New("proto: connection at max_in_flight")

// Reasons readStep returns without a frame.
var (
	errStopRead     = errors.New("proto: reader stopped")
	errCallDeadline = errors.New("proto: call deadline passed")
	errPartialFrame = errors.New("proto: frame not yet complete")
)

// call is one request awaiting its terminal frame.
type call struct {
	id        uint32
	res       chan callResult // buffered 1; unary calls and stream opening
	sub       *Subscription
	opened    bool // stream: the opening RESPONSE arrived
	abandoned bool // the caller gave up; the entry stays until the terminal frame so the id is not "unknown"
}

type callResult struct {
	f   wire.Frame
	err error
}

var callPool = sync.Pool{New: func() any { return &call{res: make(chan callResult, 1)} }}

func newClientConn(c *Client, ep *endpoint, nc net.Conn, fr *wire.Framer, hello wire.Hello, trace func(bool, wire.Frame), forStreams bool) *clientConn {
	cc := &clientConn{
		c: c, ep: ep, nc: nc, fr: fr, hello: hello, trace: trace,
		forStreams: forStreams,
		pending:    map[uint32]*call{},
		bounced:    map[uint32]struct{}{},
		pings:      map[uint32]chan struct{}{},
		done:       make(chan struct{}),
	}
	// Ping well inside the server's idle timeout so a healthy idle
	// connection is never cut, and so a dead server is noticed.
	cc.pingInterval = 15 * time.Second
	if hello.IdleTimeoutMs > 0 {
		cc.pingInterval = min(cc.pingInterval, time.Duration(hello.IdleTimeoutMs)*time.Millisecond/3)
	}
	cc.pingInterval = max(cc.pingInterval, 10*time.Millisecond)
	cc.lastRecv.Store(monoNanos())
	cc.lastSent.Store(monoNanos())
	cc.w = newFrameWriter(nc, c.cfg.WriteTimeout, func(err error) {
		cc.close(unavailable(fmt.Errorf("write: %w", err)))
	})
	cc.idleT = time.AfterFunc(time.Hour, cc.idleFired)
	cc.idleT.Stop()
	// Open connections count in the client's WaitGroup until they close,
	// so that Client.Close also waits for those it closes through unhook
	// (detached ones). Called from a dial, itself counted.
	c.wg.Add(1)
	cc.mu.Lock() // before AfterFunc: a closed client's f runs at once, and close reads unhook
	// Client.Close ends every connection, also those its endpoint set no
	// longer holds (retired, replaced) that still carry a stream.
	cc.unhook = context.AfterFunc(c.ctx, func() { cc.close(errClientClosed) })
	cc.releaseLocked() // a reader starts once the connection has been idle a moment
	cc.mu.Unlock()
	return cc
}

// roundTrip sends one request and waits for its answer, until dl at the
// latest. sub is non-nil when opening a stream. A request not sent returns
// errConnFull or errNotStarted, which do retries elsewhere, or
// INVALID_ARGUMENT when it is over the server's max_payload.
func (cc *clientConn) roundTrip(ctx context.Context, op wire.Op, trace string, body []byte, sub *Subscription, dl time.Time) (wire.Frame, error) {
	cl := callPool.Get().(*call)
	cl.sub, cl.opened, cl.abandoned = sub, false, false
	if err := cc.w.lock(); err != nil {
		callPool.Put(cl)
		return wire.Frame{}, errNotStarted
	}
	// The payload goes into the writer's buffer first: deadline_ms is the
	// time left once lock has found room, and a request over the server's
	// max_payload is refused here, before it could cost the connection.
	var deadlineMs uint32
	if sub == nil {
		ms := (time.Until(dl) + time.Millisecond - 1) / time.Millisecond
		deadlineMs = uint32(min(max(int64(ms), 0), math.MaxUint32))
	}
	off := cc.w.beginFrame()
	cc.w.buf = wire.AppendRequest(cc.w.buf, wire.RequestHeader{Op: op, DeadlineMs: deadlineMs, TraceID: trace}, body)
	notSent := func(err error) (wire.Frame, error) {
		cc.w.buf = cc.w.buf[:off]
		_ = cc.w.unlockMode(flushNow) // nothing of its own to batch
		callPool.Put(cl)
		return wire.Frame{}, err
	}
	if n := len(cc.w.buf) - off - wire.HeaderLen; n > cc.hello.MaxPayload {
		return notSent(&wire.Error{Code: wire.InvalidArgument,
			Message: fmt.Sprintf("request of %d bytes is over the app tier's limit of %d", n, cc.hello.MaxPayload)})
	}
	if sub == nil && deadlineMs == 0 {
		return notSent(ctxError(context.DeadlineExceeded))
	}
	cc.mu.Lock()
	if len(cc.pending) >= cc.hello.MaxInFlight && !cc.closed {
		// The server would refuse it (§4.1): the server counts an id
		// from reading it to its terminal frame, this side from writing
		// it to reading that frame, so this count is never the lower.
		cc.mu.Unlock()
		return notSent(errConnFull)
	}
	if cc.closed || cc.draining || cc.retiring || cc.nextID == math.MaxUint32 {
		// Ids exhausted: new requests go elsewhere, and the connection
		// closes once its last call is done. It leaves its endpoint's
		// set before the retry looks for a connection.
		exhausted := cc.nextID == math.MaxUint32 && !cc.closed && !cc.retiring
		if exhausted {
			cc.retiring = true
			cc.maybeFinishLocked()
		}
		cc.mu.Unlock()
		f, err := notSent(errNotStarted)
		if exhausted {
			cc.ep.detach(cc)
		}
		return f, err
	}
	cc.nextID++
	cl.id = cc.nextID
	// The first awaited answer: a background reader waiting at the
	// keepalive's pace must arm the probe for a silent server (§11).
	nudge := len(cc.pending) == 0 && cc.reader == readerBackground && !cc.forStreams
	if len(cc.pending) == 0 {
		cc.awaitSince.Store(monoNanos())
	}
	cc.pending[cl.id] = cl
	cc.live++
	if sub != nil {
		cc.streams++
	}
	// Alone, write at once; with other calls in flight, let them add
	// their frames to this write (see flushBatched).
	mode := flushNow
	if cc.live > 1 {
		mode = flushBatched
	}
	cc.mu.Unlock()
	if sub != nil {
		sub.cc, sub.cl = cc, cl
	}
	cc.w.endFrame(off, wire.FrameRequest, 0, cl.id)
	if t := cc.trace; t != nil {
		t(true, wire.Frame{Type: wire.FrameRequest, ID: cl.id, Payload: append([]byte(nil), cc.w.buf[off+wire.HeaderLen:]...)})
	}
	_ = cc.w.unlockMode(mode) // a failed write closes the conn, which fails the call
	if nudge {
		cc.kick()
	}

	cc.mu.Lock()
	lead := cc.reader == readerNone && cc.streams == 0 && !cc.closed
	if lead {
		cc.reader = readerCaller
	} else if cc.reader == readerNone && !cc.closed {
		cc.startReaderLocked() // a stream's opening: streams need a reader at all times
	}
	cc.mu.Unlock()
	if lead {
		return cc.lead(ctx, cl, dl)
	}
	return cc.follow(ctx, cl, dl)
}

// follow waits for cl's answer while somebody else reads.
func (cc *clientConn) follow(ctx context.Context, cl *call, dl time.Time) (wire.Frame, error) {
	var expiry <-chan time.Time
	if _, ok := ctx.Deadline(); !ok {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		expiry = t.C
	}
	select {
	case r := <-cl.res:
		if cl.sub == nil { // a stream's call stays in pending until it ends
			callPool.Put(cl)
		}
		return r.f, r.err
	case <-ctx.Done():
		return wire.Frame{}, cc.giveUp(cl, ctx.Err())
	case <-expiry:
		return wire.Frame{}, cc.giveUp(cl, context.DeadlineExceeded)
	}
}

// giveUp abandons cl because of err, a context error, and returns the
// caller's error. CANCEL goes out on a deadline too (§4.2): the server's
// timer counts from when it read the request, so a request held up on the
// way would otherwise run after its caller gave up.
func (cc *clientConn) giveUp(cl *call, err error) error {
	if cc.abandon(cl) {
		_ = cc.writeTraced(wire.FrameCancel, cl.id, nil)
	}
	return ctxError(err)
}

// lead is a unary call holding the reading role: it reads and routes
// frames until its own answer arrives, its context ends or dl passes, then
// hands the role on. A frame that has only partly arrived (a big one, or a
// slow peer) is left to a background reader, and the call waits for its
// answer like any other: its context can only interrupt a wait between
// frames, and it must not be held up by someone else's frame.
func (cc *clientConn) lead(ctx context.Context, cl *call, dl time.Time) (wire.Frame, error) {
	var stop, unkick func() bool
	if ctx.Done() != nil { // a context that can end: it must be able to interrupt the read
		stop = func() bool { return ctx.Err() != nil }
		unkick = context.AfterFunc(ctx, cc.kick)
	}
	var res callResult
	var failed error // why the call was given up
	handOff := false
	for {
		select {
		case res = <-cl.res:
		default:
			err := cc.readStep(dl, true, stop)
			switch {
			case err == nil:
				continue
			case errors.Is(err, errStopRead):
				failed = ctx.Err()
			case errors.Is(err, errCallDeadline):
				failed = context.DeadlineExceeded
			case errors.Is(err, errPartialFrame):
				handOff = true
			default:
				// The connection failed; closing it answers every
				// pending call, this one too.
				cc.close(err)
				res = <-cl.res
			}
		}
		break
	}
	if unkick != nil {
		unkick()
	}
	cc.mu.Lock()
	cc.reader = readerNone
	cc.releaseLocked() // this call is still live when handing off: a reader starts at once
	cc.mu.Unlock()
	if handOff {
		return cc.follow(ctx, cl, dl)
	}
	if failed != nil {
		return wire.Frame{}, cc.giveUp(cl, failed)
	}
	callPool.Put(cl)
	return res.f, res.err
}

// kick interrupts the reader's wait for the peer: a leading caller's
// context ended, or a background reader must arm the probe for a newly
// awaited answer. The read deadline is moved only while the reader is in
// Peek, which consumes nothing, so no frame is ever cut in half.
func (cc *clientConn) kick() {
	cc.kmu.Lock()
	cc.kicked = true
	if cc.peeking {
		_ = cc.nc.SetReadDeadline(time.Now())
	}
	cc.kmu.Unlock()
}

// setPeeking marks whether the leader is about to wait in Peek (on) or is
// not waiting, and reports (and clears) a kick that came meanwhile. After
// a kick the armed read deadline is unknown. A kicked leader does not
// start to peek: it checks why it was kicked first.
func (cc *clientConn) setPeeking(on bool) (kicked bool) {
	cc.kmu.Lock()
	kicked = cc.kicked
	cc.kicked = false
	cc.peeking = on && !kicked
	cc.kmu.Unlock()
	if kicked {
		cc.dl = time.Time{}
	}
	return kicked
}

// startReaderLocked hands the reading role to a new background reader.
func (cc *clientConn) startReaderLocked() {
	cc.reader = readerBackground
	cc.c.wg.Add(1) // under mu, after the closed check: Client.Close waits for it
	go cc.readLoop()
}

// needReaderLocked reports whether someone waits for a frame other than a
// leader reading for itself.
func (cc *clientConn) needReaderLocked() bool {
	return cc.live > 0 || cc.streams > 0 || len(cc.pings) > 0
}

// releaseLocked is called when the reading role became free: a background
// reader takes it at once if anybody waits, else after idleReaderDelay.
func (cc *clientConn) releaseLocked() {
	if cc.closed {
		return
	}
	if cc.needReaderLocked() {
		cc.startReaderLocked()
		return
	}
	if !cc.idleArmed {
		cc.idleArmed = true
		cc.idleT.Reset(idleReaderDelay)
	}
}

// idleFired starts a background reader once no frame has arrived for
// idleReaderDelay (the role is freed right after a frame, so that is how
// long it has been free); the timer is left armed across calls rather than
// moved by each (moving it would cost more than the round trip).
func (cc *clientConn) idleFired() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.idleArmed = false
	if cc.closed || cc.reader != readerNone {
		return // whoever holds the role re-arms it on release
	}
	if left := idleReaderDelay - time.Duration(monoNanos()-cc.lastRecv.Load()); left > 0 {
		cc.idleArmed = true
		cc.idleT.Reset(left)
		return
	}
	cc.startReaderLocked()
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
	cc.live--
	cc.maybeFinishLocked()
	return !cc.closed
}

func (cc *clientConn) writeTraced(t wire.FrameType, id uint32, payload []byte) error {
	if tr := cc.trace; tr != nil {
		tr(true, wire.Frame{Type: t, ID: id, Payload: payload})
	}
	cc.lastSent.Store(monoNanos())
	return cc.w.write(t, 0, id, payload)
}

// ping sends PING and waits for the PONG with the same id.
func (cc *clientConn) ping(ctx context.Context) error {
	cc.mu.Lock()
	if cc.closed {
		cc.mu.Unlock()
		return cc.closeErr
	}
	cc.pingSeq++
	id := cc.pingSeq
	ch := make(chan struct{})
	cc.pings[id] = ch
	if cc.reader == readerNone {
		cc.startReaderLocked()
	}
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
		return cc.closeErr // set before done is closed
	case <-ctx.Done():
		return ctxError(ctx.Err())
	}
}

func neverStop() bool { return false }

// readLoop is the background reader: it routes frames while anybody but a
// leading caller waits for one, then gives the role back (see clientConn).
// When the connection fails it closes it, failing every pending call.
func (cc *clientConn) readLoop() {
	defer cc.c.wg.Done()
	for {
		// A kick (see roundTrip) makes it re-arm its read deadline.
		if err := cc.readStep(time.Time{}, false, neverStop); err != nil {
			cc.close(err)
			return
		}
		cc.mu.Lock()
		if !cc.needReaderLocked() && cc.fr.Reader().Buffered() == 0 {
			cc.reader = readerNone
			cc.releaseLocked()
			cc.mu.Unlock()
			return
		}
		cc.mu.Unlock()
	}
}

// readStep waits for one frame and handles it. While waiting it keeps the
// connection alive: after pingInterval without a frame received, or
// without a PING (or PONG, CANCEL) sent, it sends PING, and without an
// answer to that it fails the connection. The server's idle timeout counts
// only what it receives, and a stream connection only receives; requests
// do not count as sent (that would read the clock per call), so a busy
// connection pings once per interval. A leading caller
// (lead) passes its deadline as want (errCallDeadline once passed) and, if
// its context can end, stop, checked when kicked (errStopRead); a context
// that cannot end never kicks, so its leader skips the kick bookkeeping.
//
// Read deadlines are set lazily: re-armed only when the armed one is later
// than wanted, and rechecked when they fire (early is harmless), so small
// frames arriving whole cost no deadline updates.
func (cc *clientConn) readStep(want time.Time, lead bool, stop func() bool) error {
	br := cc.fr.Reader()
	if stop != nil && cc.setPeeking(false) && stop() {
		return errStopRead
	}
	for br.Buffered() == 0 {
		// act is when to send PING, or, once one is unanswered, when to
		// declare the server dead.
		awaiting := cc.awaiting(lead)
		last := monoTime(min(cc.lastRecv.Load(), cc.lastSent.Load()))
		act := last.Add(cc.pingInterval)
		if cc.pinged {
			act = cc.pingDead
		}
		if awaiting {
			// An answer is due: silence is suspect much sooner.
			quiet := monoTime(max(cc.lastRecv.Load(), cc.awaitSince.Load()))
			wait := probeAfter
			if cc.pinged {
				wait += probeTimeout
			}
			if at := quiet.Add(wait); at.Before(act) {
				act = at
			}
		}
		target := act
		if !want.IsZero() && want.Before(target) {
			target = want
		}
		if cc.dl.IsZero() || cc.dl.After(target) {
			cc.setReadDeadline(target)
		}
		if stop != nil && cc.setPeeking(true) {
			if stop() {
				return errStopRead
			}
			continue // a kick meant for an earlier leader
		}
		_, err := br.Peek(1)
		if stop != nil && cc.setPeeking(false) && stop() {
			return errStopRead
		}
		if err == nil {
			break
		}
		if !isTimeout(err) || cc.isClosed() {
			return connLost(err)
		}
		cc.dl = time.Time{} // it has passed
		now := time.Now()
		switch {
		case !want.IsZero() && !now.Before(want):
			return errCallDeadline
		case now.Before(act):
			// Early: a kick, or a deadline armed for an earlier wish.
		case cc.pinged:
			return errNotResponding
		default:
			cc.pinged = true
			// An idle connection's keepalive PING gets at least a couple
			// of seconds (a busy server is not a dead one); a probe for
			// an overdue answer gets probeTimeout.
			grace := max(cc.pingInterval, 2*time.Second)
			if awaiting {
				grace = probeTimeout
			}
			cc.pingDead = now.Add(grace)
			if err := cc.writeTraced(wire.FramePing, 0, nil); err != nil {
				return connLost(err)
			}
		}
	}
	var f wire.Frame
	var err error
	if !frameBuffered(br) {
		if lead {
			return errPartialFrame // a leader does not wait for the rest (see lead)
		}
		f, err = cc.readRest()
	} else {
		f, err = cc.fr.ReadFrame()
	}
	if err != nil {
		if errors.Is(err, errStalled) {
			return errNotResponding
		}
		if e, ok := wire.AsFatal(err); ok {
			return cc.protocolError(e.Code, e.Message)
		}
		return connLost(err)
	}
	cc.lastRecv.Store(monoNanos())
	cc.pinged = false
	if t := cc.trace; t != nil {
		t(false, f)
	}
	return cc.handle(f)
}

// awaiting reports whether this connection waits for an answer to a unary
// call, given up or not: that is when it probes a silent server quickly.
// Stream connections keep the keepalive pace: a stream may be quiet for
// hours.
func (cc *clientConn) awaiting(lead bool) bool {
	if lead || cc.forStreams {
		return lead // only unary connections have leaders
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.pending) > 0
}

// hasRoom reports whether a new request may be sent on cc now.
func (cc *clientConn) hasRoom() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return !cc.closed && !cc.draining && !cc.retiring && len(cc.pending) < cc.hello.MaxInFlight
}

func (cc *clientConn) setReadDeadline(t time.Time) {
	cc.dl = t
	_ = cc.nc.SetReadDeadline(t)
}

// frameReadTimeout bounds how long the rest of a started frame may take.
const frameReadTimeout = 30 * time.Second

// readRest reads a frame that has only partly arrived, within
// frameReadTimeout. While an answer is awaited, a server from which no
// byte arrives for probeAfter+probeTimeout in the middle of the frame is
// dead (errStalled), as one silent between frames is (§11): a PING would
// not help, its PONG would come after the frame.
func (cc *clientConn) readRest() (wire.Frame, error) {
	now := time.Now()
	sr, _ := cc.nc.(*stallReader)
	if sr == nil || !cc.awaiting(false) {
		cc.setReadDeadline(now.Add(frameReadTimeout))
		return cc.fr.ReadFrame()
	}
	sr.hard, sr.stall, sr.last = now.Add(frameReadTimeout), probeAfter+probeTimeout, now
	sr.rest = true
	cc.setReadDeadline(now.Add(sr.stall))
	f, err := cc.fr.ReadFrame()
	sr.rest = false
	cc.dl = time.Time{} // sr moved it
	return f, err
}

// errStalled: no byte of a started frame arrived for stallReader.stall.
var errStalled = errors.New("proto: server silent in the middle of a frame")

// stallReader is a client connection as its Framer reads it. While rest
// is set (readRest, by the reading role), a read that times out is
// retried as long as bytes keep arriving, up to hard; a gap of stall
// without a byte fails it with errStalled. Otherwise reads pass through.
type stallReader struct {
	net.Conn
	rest  bool
	hard  time.Time
	stall time.Duration
	last  time.Time // when the last byte arrived, or the rest began
}

func (sr *stallReader) Read(p []byte) (int, error) {
	for {
		n, err := sr.Conn.Read(p)
		if !sr.rest {
			return n, err
		}
		now := time.Now()
		if n > 0 {
			sr.last = now
			if err == nil || isTimeout(err) {
				_ = sr.Conn.SetReadDeadline(minTime(sr.hard, now.Add(sr.stall)))
				return n, nil
			}
			return n, err
		}
		switch {
		case !isTimeout(err), !now.Before(sr.hard):
			return n, err
		case now.Sub(sr.last) >= sr.stall:
			return n, errStalled
		}
		_ = sr.Conn.SetReadDeadline(minTime(sr.hard, sr.last.Add(sr.stall)))
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func connLost(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return &wire.Error{Code: wire.Unavailable, Message: "connection lost"}
	}
	return unavailable(err)
}

// protocolError tells the server what it did wrong (FATAL, waiting for it
// to leave) and returns the error with which the caller closes the
// connection.
func (cc *clientConn) protocolError(code wire.Code, reason string) error {
	cc.c.log.Error("app tier protocol error", "addr", cc.ep.addr, "code", code.String(), "reason", reason)
	p := wire.AppendFatal(nil, code, reason)
	if t := cc.trace; t != nil {
		t(true, wire.Frame{Type: wire.FrameFatal, Payload: p})
	}
	// Sealed: nothing follows FATAL (§6.2); a request that finds the
	// writer sealed was never sent, and is retried elsewhere.
	cc.w.writeLast(wire.FrameFatal, p)
	cc.w.waitIdle() // the FATAL must leave before the connection closes
	return &wire.Error{Code: wire.Unavailable, Message: "app tier protocol error"}
}

func (cc *clientConn) handle(f wire.Frame) error {
	switch f.Type {
	case wire.FrameResponse, wire.FrameError, wire.FrameEvent:
		return cc.route(f)
	case wire.FramePong:
		cc.mu.Lock()
		if ch := cc.pings[f.ID]; ch != nil {
			close(ch)
			delete(cc.pings, f.ID)
		}
		cc.mu.Unlock()
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
	if cl == nil && cc.closed { // read before close emptied pending: moot, not a protocol error
		err := cc.closeErr
		cc.mu.Unlock()
		return err
	}
	if cl == nil {
		if _, ok := cc.bounced[f.ID]; ok {
			if f.Type != wire.FrameEvent && f.Flags&wire.FlagStream == 0 {
				delete(cc.bounced, f.ID)
			}
			cc.mu.Unlock()
			return nil
		}
		cc.mu.Unlock()
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
	if !cl.abandoned {
		cc.live--
	}
	if cl.sub != nil {
		cc.streams--
	}
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
			res.err = io.EOF
		}
		cl.sub.finish(res.err)
	case !abandoned:
		cl.res <- res // buffered: a leader routing its own answer does not block
	}
	return nil
}

// onDrain handles the server's DRAIN: no new requests on this connection;
// pending requests above last were never started and are retried elsewhere.
func (cc *clientConn) onDrain(last uint32) {
	cc.ep.detach(cc)
	cc.mu.Lock()
	if cc.draining && last < cc.drainLast {
		// A second DRAIN cannot take back the first's promise: the
		// requests up to its last id may have run, and must not be
		// sent again (§7.3).
		last = cc.drainLast
	}
	cc.draining = true
	cc.drainLast = last
	var retry []*call
	for id, cl := range cc.pending {
		if id > last && !cl.abandoned && !cl.opened {
			// Forget the call so it can be reused by its retry; remember
			// the id so a late answer is not an "unknown id".
			delete(cc.pending, id)
			cc.bounced[id] = struct{}{}
			cc.live--
			if cl.sub != nil {
				cc.streams--
			}
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

// maybeFinishLocked closes a draining or retiring connection once no live
// call remains.
func (cc *clientConn) maybeFinishLocked() {
	if (cc.draining || cc.retiring) && cc.live == 0 && !cc.closed {
		go cc.close(&wire.Error{Code: wire.Unavailable, Message: "connection drained"})
	}
}

func (cc *clientConn) isClosed() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.closed
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
	cc.live = 0
	cc.streams = 0
	draining, last := cc.draining, cc.drainLast
	close(cc.done)
	cc.idleT.Stop()
	cc.unhook()
	cc.mu.Unlock()
	cc.nc.Close()
	cc.ep.detach(cc)
	if reason == errNotResponding {
		cc.ep.eject(reason)
	}
	defer cc.c.wg.Done() // once the calls are failed: see newClientConn
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
	cc     *clientConn // set with cl when the request is sent
	cl     *call       // never returned to callPool: it stays valid for sendCancel
	events chan []byte

	once sync.Once
	err  error         // why it ended; set once, before done is closed
	done chan struct{} // closed when it ended
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
	s.once.Do(func() {
		s.err = err
		close(s.done)
	})
}

// Next blocks for the next event and decodes it into v. It returns
// UNAVAILABLE when the connection is lost or the server shuts down, CANCELED
// after Close, io.EOF when the server ended the stream normally, and the
// server's error if it ended the stream with one. Events that arrived before
// the end are delivered first.
func (s *Subscription) Next(ctx context.Context, v any) error {
	select {
	case p := <-s.events: // a buffered event comes before ctx's end
		return decodeEvent(p, v)
	default:
	}
	select {
	case p := <-s.events:
		return decodeEvent(p, v)
	case <-s.done:
		select {
		case p := <-s.events: // and before the stream's end
			return decodeEvent(p, v)
		default:
			return s.err // set before done was closed
		}
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

// Close ends the subscription: it sends CANCEL, and Next returns the
// events already received, then CANCELED. After the stream has ended it
// does nothing.
func (s *Subscription) Close() error {
	s.finish(&wire.Error{Code: wire.Canceled, Message: "subscription closed"})
	s.sendCancel()
	return nil
}

// sendCancel sends CANCEL unless the stream has ended or was given up.
func (s *Subscription) sendCancel() {
	if s.cc != nil && s.cc.abandon(s.cl) {
		_ = s.cc.writeTraced(wire.FrameCancel, s.cl.id, nil)
	}
}
