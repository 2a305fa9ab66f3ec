package webtier

import "sync"

// streamCaps counts the open live-update streams per session and per client
// IP. A slot is taken before a stream subscribes at the app tier and given
// back when the stream ends, however it ends.
type streamCaps struct {
	perSession, perIP int

	mu        sync.Mutex
	bySession map[[32]byte]int // keyed by the token's hash, like the session cache
	byIP      map[string]int
}

func newStreamCaps(perSession, perIP int) *streamCaps {
	return &streamCaps{perSession: perSession, perIP: perIP,
		bySession: make(map[[32]byte]int), byIP: make(map[string]int)}
}

// acquire takes a slot for the session and the client IP, or reports false
// (taking nothing) when either is at its cap. Call the returned release
// exactly once when the stream ends.
func (c *streamCaps) acquire(token, ip string) (release func(), ok bool) {
	k := cacheKey(token)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bySession[k] >= c.perSession || c.byIP[ip] >= c.perIP {
		return nil, false
	}
	c.bySession[k]++
	c.byIP[ip]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			// Counts that reach zero are deleted, so the maps hold only
			// live streams.
			if c.bySession[k]--; c.bySession[k] <= 0 {
				delete(c.bySession, k)
			}
			if c.byIP[ip]--; c.byIP[ip] <= 0 {
				delete(c.byIP, ip)
			}
		})
	}, true
}
