package apptier

import (
	"testing"
	"time"

	"bankwire/store"
)

// TestSessionCacheDiscardsRacingFill: a session read from the database
// before a revocation was announced is not cached after it.
func TestSessionCacheDiscardsRacingFill(t *testing.T) {
	c := newSessionCache(time.Hour, 10)
	hash := tokenHash("token")
	e := cachedSession{session: store.Session{ID: 7, CustomerID: 3}, read: time.Now()}

	gen := c.generation()
	c.dropCustomer(3, []int64{7}) // the revocation arrives while the row is read
	c.put(hash, e, gen)
	if _, ok := c.get(hash); ok {
		t.Fatal("a fill that raced with a revocation was cached")
	}

	c.put(hash, e, c.generation())
	if _, ok := c.get(hash); !ok {
		t.Fatal("a fill with no revocation in between was not cached")
	}
	c.dropCustomer(3, []int64{8}) // another session of the customer
	if _, ok := c.get(hash); !ok {
		t.Fatal("revoking another session dropped this one")
	}
	c.dropCustomer(3, nil) // sign out everywhere
	if _, ok := c.get(hash); ok {
		t.Fatal("sign out everywhere left the session cached")
	}

	c.put(hash, e, c.generation())
	c.reset()
	if _, ok := c.get(hash); ok {
		t.Fatal("reset left the session cached")
	}

	c = newSessionCache(time.Nanosecond, 10)
	c.put(hash, cachedSession{session: e.session, read: time.Now().Add(-time.Second)}, c.generation())
	if _, ok := c.get(hash); ok {
		t.Fatal("an entry older than the TTL was served")
	}
}
