package proto

import (
	"time"

	"bankwire/proto/wire"
)

// Inline reports whether the server currently runs op's handler on the
// reading goroutine (see inline.go).
func (s *Server) Inline(op wire.Op) bool { return s.inline(op) }

// HandOffs counts how often a watchdog moved reading to a new goroutine.
func (s *Server) HandOffs() uint64 { return s.handOffs.Load() }

// SetInlineBudget changes the inline budget; call it before serving.
func (s *Server) SetInlineBudget(d time.Duration) { s.inlineMax = d }

// DownUntil reports when the back-off of the endpoint addr ends (zero: the
// endpoint is up or unknown).
func (c *Client) DownUntil(addr string) time.Time {
	c.mu.Lock()
	eps := c.eps
	c.mu.Unlock()
	for _, ep := range eps {
		if ep.addr == addr {
			ep.mu.Lock()
			defer ep.mu.Unlock()
			if ep.failures == 0 {
				return time.Time{}
			}
			return ep.retryAt
		}
	}
	return time.Time{}
}

// SetHookBeforeDrain makes every draining connection call f just before it
// writes DRAIN; the returned function removes it.
func SetHookBeforeDrain(f func()) (undo func()) {
	testHookBeforeDrain = f
	return func() { testHookBeforeDrain = nil }
}

// SetHookDialed makes every dial call f before its connection joins its
// set; the returned function removes it.
func SetHookDialed(f func()) (undo func()) {
	testHookDialed = f
	return func() { testHookDialed = nil }
}
