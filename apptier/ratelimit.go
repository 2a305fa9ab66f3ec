package apptier

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// keyedLimiter allows about limit events per window for each key (a client
// IP, a customer), as a token bucket: a full bucket of limit, refilled over
// the window. Time comes from the caller, so tests drive it with their
// clock. It lives in the process: with several app tiers each keeps its own
// count, so the bound holds per app tier.
type keyedLimiter struct {
	limit  int
	window time.Duration
	max    int // keys kept at most; beyond it idle keys are forgotten

	mu   sync.Mutex
	keys map[string]*keyedBucket
}

type keyedBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newKeyedLimiter(limit int, window time.Duration, maxKeys int) *keyedLimiter {
	return &keyedLimiter{limit: limit, window: window, max: maxKeys, keys: make(map[string]*keyedBucket)}
}

// allow takes one event for key at now, reporting false when the key has
// used its allowance.
func (l *keyedLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.keys[key]
	if !ok {
		if len(l.keys) >= l.max {
			l.sweep(now)
		}
		b = &keyedBucket{lim: rate.NewLimiter(rate.Every(l.window/time.Duration(l.limit)), l.limit)}
		l.keys[key] = b
	}
	if now.After(b.seen) {
		b.seen = now
	}
	return b.lim.AllowN(now, 1)
}

// sweep forgets keys idle for a whole window (their buckets are full again,
// so forgetting them changes nothing); if every key is busy it forgets the
// oldest half rather than grow without bound.
func (l *keyedLimiter) sweep(now time.Time) {
	for k, b := range l.keys {
		if now.Sub(b.seen) >= l.window {
			delete(l.keys, k)
		}
	}
	if len(l.keys) < l.max {
		return
	}
	var cut time.Time
	n := 0
	for _, b := range l.keys {
		if n == 0 || b.seen.Before(cut) {
			cut = b.seen
		}
		n++
	}
	// Forget everything seen at or before the midpoint between the oldest
	// key and now: bounded work, and at least the oldest key goes.
	mid := cut.Add(now.Sub(cut) / 2)
	for k, b := range l.keys {
		if !b.seen.After(mid) {
			delete(l.keys, k)
		}
	}
}
