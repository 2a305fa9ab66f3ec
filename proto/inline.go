package proto

import (
	"sync"
	"sync/atomic"
	"time"

	"bankwire/proto/wire"
)

// Inline execution: a unary request whose operation is known to be quick
// runs on the connection's reading goroutine. Starting a goroutine wakes a
// second thread, and on a small, busy machine that wake-up and its context
// switches cost more than a quick handler. Answers to requests that arrived
// together are held in the writer and leave in one write. Measured beside
// the same server without them (medians of 10 alternating runs of go test
// -bench . ./proto/): without inline runs BenchmarkSequential fell to about
// 0.57× the raw echo (floor 0.6×); without held answers
// BenchmarkConcurrent64 fell to about 1.3× (floor 1.5×).
//
// Invariants:
//   - an operation runs inline only while its handler time, a moving
//     average over every call (weight 1/8), is under inlineBudget; it is
//     unknown until the first call, which therefore runs on a goroutine;
//   - exactly one goroutine reads, and it owns serverConn's reader-owned
//     fields. If an inline run is still going inlineWatchdog after it
//     started, the watchdog starts a new reading goroutine (readLoop), so a
//     blocked handler cannot keep CANCEL, PING or other requests waiting;
//     the old goroutine answers its request and exits;
//   - only the reader holds answers (flushHold), only while the next frame
//     is already buffered, and it flushes them before it waits for the peer;
//   - the watchdog timer stays armed across runs (moving a timer on every
//     request would cost a wake-up of its own): when it fires during a
//     younger run it re-arms for that run's remaining time.
const (
	inlineBudget   = 50 * time.Microsecond
	inlineWatchdog = time.Millisecond
)

// inlineState is a connection's watchdog bookkeeping.
type inlineState struct {
	mu       sync.Mutex  // protects the fields below
	watchdog *time.Timer // calls watchdogFired
	armed    bool        // the watchdog will fire
	running  *serverReq  // the request the reader runs inline; nil: none
	since    time.Time   // when running arrived
}

// lostReading is what the read loop returns to a goroutine that lost the
// reading role to the watchdog while it ran a handler.
const lostReading = "reading handed to another goroutine"

// costs holds each unary operation's moving average handler time in
// nanoseconds, -1 until measured. The map is filled in NewServer and only
// read afterwards.
type costs map[wire.Op]*atomic.Int64

func newCosts(unary map[wire.Op]HandlerFunc) costs {
	m := make(costs, len(unary))
	for op := range unary {
		m[op] = new(atomic.Int64)
		m[op].Store(-1)
	}
	return m
}

// quick reports whether op's handler should run inline.
func (m costs) quick(op wire.Op, budget time.Duration) bool {
	c := m[op]
	return c != nil && c.Load() >= 0 && c.Load() < int64(budget)
}

// observe folds one handler duration into op's average. Concurrent updates
// may lose one another; for a heuristic that is fine.
func (m costs) observe(op wire.Op, d time.Duration) {
	c := m[op]
	if old := c.Load(); old >= 0 {
		d = time.Duration(old + (int64(d)-old)/8)
	}
	c.Store(int64(d))
}

// runInline runs r on the reading goroutine under the watchdog. It returns
// lostReading if the watchdog handed reading to another goroutine meanwhile.
func (c *serverConn) runInline(r *serverReq) string {
	in := &c.inline
	in.mu.Lock()
	in.running, in.since = r, c.lastRecv
	if !in.armed {
		in.armed = true
		in.watchdog.Reset(inlineWatchdog)
	}
	in.mu.Unlock()
	defer c.handlersWG.Done()
	resp, err, d := c.callUnary(r)
	in.mu.Lock()
	lost := in.running != r // the watchdog cleared it, and a new reader may have started another run
	if !lost {
		in.running = nil
	}
	in.mu.Unlock()
	// Still the reader, with the next frame already here: leave the answer
	// in the writer, to go out with the next ones; the read loop flushes
	// before it waits for the peer.
	r.flush = flushNow
	if !lost && frameBuffered(c.fr.Reader()) {
		r.flush = flushHold
		c.held = true
	}
	c.answer(r, resp, err, d)
	if lost {
		return lostReading
	}
	return ""
}

// watchdogFired starts a new reading goroutine if an inline run has gone on
// for inlineWatchdog.
func (c *serverConn) watchdogFired() {
	in := &c.inline
	in.mu.Lock()
	defer in.mu.Unlock()
	in.armed = false
	if in.running == nil {
		return
	}
	if age := time.Since(in.since); age < inlineWatchdog {
		in.armed = true // armed by an earlier run: give this one its full time
		in.watchdog.Reset(inlineWatchdog - age)
		return
	}
	in.running = nil
	c.srv.handOffs.Add(1)
	c.srv.connWG.Add(1) // the old goroutine still holds its count, so this cannot race Wait at zero
	go c.readLoop()
}
