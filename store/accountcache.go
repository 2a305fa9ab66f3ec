package store

import "sync"

// accountCacheMax bounds the account identities a Store remembers; past it
// the cache starts over (the cost is one extra read per account).
const accountCacheMax = 100_000

// accountCache remembers, by number, the part of an account that never
// changes (id, owner, kind, currency): accounts_guard refuses any change to
// it and accounts are never deleted, so an entry can never be stale. It
// holds only accounts read outside a transaction, that is committed ones;
// an account seen inside a transaction that might yet roll back is not
// remembered. Balances are never cached.
type accountCache struct {
	mu      sync.Mutex
	max     int
	entries map[string]transferAccount
}

func newAccountCache(max int) *accountCache {
	return &accountCache{max: max, entries: make(map[string]transferAccount)}
}

// pair returns both accounts if both are known.
func (c *accountCache) pair(from, to string) (f, t *transferAccount, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fa, ok1 := c.entries[from]
	ta, ok2 := c.entries[to]
	if !ok1 || !ok2 {
		return nil, nil, false
	}
	return &fa, &ta, true
}

func (c *accountCache) put(accounts ...*transferAccount) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range accounts {
		if a == nil {
			continue
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
		c.entries[a.number] = *a
	}
}

// drop forgets accounts (a write that named them failed in a way that
// cached identities could explain).
func (c *accountCache) drop(numbers ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range numbers {
		delete(c.entries, n)
	}
}
