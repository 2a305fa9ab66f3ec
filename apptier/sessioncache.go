package apptier

import (
	"crypto/sha256"
	"sync"
	"time"

	"bankwire/proto/wire"
	"bankwire/store"
)

// The session cache spares the database a session lookup on most calls: a
// page costs several app-tier calls in a row, each carrying the session
// token. It remembers, by the sha256 of the token (what the database keeps
// too), the session row as read from the database, and the customer once a
// session check needed them. It never relaxes a rule:
//
//   - An entry serves for at most sessionCacheTTL after it was read. A
//     revocation (sign-out, sign-out everywhere) on any app tier reaches
//     every app tier's cache at once through the store's session
//     notification (NotifySession), and this app tier drops its own entries
//     before it answers the sign-out; so the TTL only bounds how long a
//     revocation can go unseen if its notification is lost (the listener's
//     connection broke), and the cache is emptied whenever the listener
//     (re)connects.
//   - The idle and absolute timeouts are checked on every call against the
//     current time. The expiry time of a session never changes, and the
//     last-seen time in the database only grows, so a cached session that
//     looks idle is read again before it is refused, and a cached one that
//     looks live is live.
//   - A fill that raced with a revocation is not kept: entries read before
//     an invalidation are discarded (see gen).
const (
	sessionCacheTTL = time.Second
	sessionCacheMax = 10_000
)

// touchEvery is how often, at most, a session's last-seen time is written:
// N = min(1 minute, idle timeout / 4). The idle timeout counts from the
// last write, so a session idle for the idle timeout always ends, and one
// in use never ends from idleness earlier than idle timeout − N after its
// last use.
func (a *App) touchEvery() time.Duration { return min(time.Minute, a.cfg.IdleTimeout/4) }

type cachedSession struct {
	session  store.Session
	customer *wire.Customer // set once a session check needed it
	read     time.Time      // when the row was read (monotonic clock)
}

type sessionCache struct {
	mu      sync.Mutex
	ttl     time.Duration
	max     int
	entries map[[sha256.Size]byte]cachedSession
	// gen counts invalidations. A fill carries the gen seen before its
	// database read and is dropped if an invalidation came in between.
	gen uint64
}

func newSessionCache(ttl time.Duration, max int) *sessionCache {
	return &sessionCache{ttl: ttl, max: max, entries: make(map[[sha256.Size]byte]cachedSession)}
}

func cacheKeyOf(hash []byte) (k [sha256.Size]byte) {
	copy(k[:], hash)
	return k
}

// generation returns the invalidation count to pass to put.
func (c *sessionCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *sessionCache) get(hash []byte) (cachedSession, bool) {
	k := cacheKeyOf(hash)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return cachedSession{}, false
	}
	if time.Since(e.read) >= c.ttl {
		delete(c.entries, k)
		return cachedSession{}, false
	}
	return e, true
}

// put stores a session row read at `read`, unless an invalidation happened
// since gen was taken. A live session only: ended ones are never served.
func (c *sessionCache) put(hash []byte, e cachedSession, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.entries) >= c.max {
		for k, old := range c.entries {
			if time.Since(old.read) >= c.ttl {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	c.entries[cacheKeyOf(hash)] = e
}

// update changes a cached entry in place (a touch, a customer looked up),
// if it is still there and nothing was invalidated since gen.
func (c *sessionCache) update(hash []byte, gen uint64, f func(*cachedSession)) {
	k := cacheKeyOf(hash)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || gen != c.gen {
		return
	}
	f(&e)
	c.entries[k] = e
}

// drop forgets one token.
func (c *sessionCache) drop(hash []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.entries, cacheKeyOf(hash))
}

// dropCustomer forgets every session of a customer (sessionIDs nil), or the
// given ones.
func (c *sessionCache) dropCustomer(customerID int64, sessionIDs []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k, e := range c.entries {
		if e.session.CustomerID != customerID {
			continue
		}
		if sessionIDs == nil {
			delete(c.entries, k)
			continue
		}
		for _, id := range sessionIDs {
			if e.session.ID == id {
				delete(c.entries, k)
				break
			}
		}
	}
}

// reset forgets everything (the listener reconnected: revocations may have
// been missed).
func (c *sessionCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
}
