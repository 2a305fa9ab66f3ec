package proto

import (
	"sync"
	"time"

	"bankwire/proto/wire"
)

// Inline runs: a unary request whose operation is measured as quick runs on
// the connection's reading goroutine, which saves waking a second thread
// for it, and answers to requests that arrived together are held in the
// writer to leave in one write. Without them BenchmarkSequential and
// BenchmarkConcurrent64 fall far below their floors (README, Performance).
//
// Invariants:
//   - an operation runs inline only while the moving average (weight 1/8)
//     of its handler time is under inlineBudget; its first call runs on a
//     goroutine of its own;
//   - exactly one goroutine reads, and it owns serverConn's reader fields.
//     If an inline run is still going inlineWatchdog after its request
//     arrived, the watchdog starts a new reading goroutine (readLoop), so
//     that a blocked handler cannot hold up CANCEL, PING or other requests;
//     the old goroutine answers its request and exits;
//   - only the reader holds answers (flushHold), only while the next frame
//     is already buffered, and it flushes them before it waits for the peer;
//   - the watchdog timer stays armed across runs (resetting it per request
//     would cost a wake-up of its own): firing during a younger run, it
//     re-arms for that run's remaining time.
const (
	inlineBudget   = 50 * time.Microsecond
	inlineWatchdog = time.Millisecond
)

// inlineState is a connection's watchdog bookkeeping.
type inlineState struct {
	mu       sync.Mutex  // guards the fields below
	watchdog *time.Timer // calls watchdogFired
	armed    bool        // the watchdog will fire
	running  *serverReq  // the request the reader runs inline; nil: none
	since    time.Time   // when running arrived
}

// lostReading is what read returns to a goroutine that lost the reading
// role to the watchdog while it ran a handler.
const lostReading = "reading handed to another goroutine"

// inline reports whether op's handler runs on the reading goroutine. Its
// average handler time in Server.costs is 0 until its first call.
func (s *Server) inline(op wire.Op) bool {
	c := s.costs[op]
	return c != nil && c.Load() > 0 && c.Load() < int64(s.inlineMax)
}

// observeCost folds one handler time into op's average. Concurrent updates
// may lose one another, which a heuristic can afford.
func (s *Server) observeCost(op wire.Op, d time.Duration) {
	c := s.costs[op]
	n := int64(d)
	if old := c.Load(); old > 0 {
		n = old + (n-old)/8
	}
	c.Store(max(n, 1))
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
	lost := in.running != r // the watchdog cleared it, and a new reader may run another
	if !lost {
		in.running = nil
	}
	in.mu.Unlock()
	r.flush = flushNow
	if !lost && frameBuffered(c.fr.Reader()) {
		r.flush, c.held = flushHold, true
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
		in.armed = true
		in.watchdog.Reset(inlineWatchdog - age)
		return
	}
	in.running = nil
	c.srv.handOffs.Add(1)
	c.srv.connWG.Add(1) // the old goroutine still holds its count, so this cannot race Wait at zero
	go c.readLoop()
}
