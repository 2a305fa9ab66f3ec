package apptier_test

import (
	"testing"
	"time"

	"bankwire/apptier"
	"bankwire/apptier/apptiertest"
	"bankwire/proto/wire"
	"bankwire/store"
)

// poolAcquires is how many times the app tier's store took a database
// connection: one per statement outside transactions.
func poolAcquires(b *bank) int64 { return b.srv.Store.Pool().Stat().AcquireCount() }

// TestSessionCacheSparesLookups: calls with a session the app tier has just
// seen cost only their own statement, not a session lookup each.
func TestSessionCacheSparesLookups(t *testing.T) {
	b := newBank(t)
	apptier.SetSessionCacheTTL(b.srv.App, time.Hour)
	tok := b.signIn("alice", "alice-demo-pass")
	b.accounts(tok)
	// Background work (the retention purge at start, a notification's
	// lookup) can take a connection during a measurement. It only adds, so
	// the fewest statements over a few measurements is what the calls cost.
	fewest := func(f func()) int64 {
		best := int64(-1)
		for range 5 {
			before := poolAcquires(b)
			f()
			if n := poolAcquires(b) - before; best < 0 || n < best {
				best = n
			}
		}
		return best
	}
	// One data call costs one statement once the session is known ...
	if n := fewest(func() { b.accounts(tok) }); n != 1 {
		t.Fatalf("accounts list with a cached session took %d statements, want 1", n)
	}
	// ... and so does the transfer form's accounts and payees together.
	if n := fewest(func() {
		must(b, wire.TransferForm, wire.SessionRequest{Session: tok})
	}); n != 1 {
		t.Fatalf("transfer form with a cached session took %d statements, want 1", n)
	}
	// ... and a session check, after its first, none.
	must(b, wire.SessionCheck, wire.SessionRequest{Session: tok})
	var resp wire.SessionResponse
	if n := fewest(func() {
		for range 5 {
			resp = must(b, wire.SessionCheck, wire.SessionRequest{Session: tok})
		}
	}); n != 0 {
		t.Fatalf("5 session checks with a cached session took %d statements, want 0", n)
	}
	if resp.Customer.Username != "alice" {
		t.Fatalf("session check answered %+v", resp.Customer)
	}
}

// TestSignOutReachesOtherAppTiers: two app tiers on one database, each with
// the session cached (and a cache that would keep it for an hour): a
// sign-out, and a sign-out everywhere, on one ends the sessions on the other
// within about a second, by the store's notification.
func TestSignOutReachesOtherAppTiers(t *testing.T) {
	a := newBank(t)
	b := &bank{t: t}
	b.srv = apptiertest.Start(t, apptiertest.WithStore(store.New(a.srv.Store.Pool())), apptiertest.WithoutDemoData())
	b.c = b.srv.Client(t)
	for _, x := range []*bank{a, b} {
		apptier.SetSessionCacheTTL(x.srv.App, time.Hour)
	}
	t1 := a.signIn("alice", "alice-demo-pass")
	t2 := a.signIn("alice", "alice-demo-pass")
	t3 := a.signIn("alice", "alice-demo-pass")
	for _, tok := range []string{t1, t2, t3} {
		b.accounts(tok)
		b.accounts(tok)
	}
	ended := func(tok string) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for {
			err := callErr(b, wire.AccountsList, wire.SessionRequest{Session: tok})
			if wire.ErrorCode(err) == wire.Unauthenticated {
				return
			}
			if err != nil {
				t.Fatalf("accounts list on the other app tier: %v", err)
			}
			if time.Now().After(deadline) {
				t.Fatal("the other app tier still accepts the session 3 s after it was revoked")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	must(a, wire.SignOut, wire.SessionRequest{Session: t1})
	ended(t1)
	b.accounts(t2) // the others still work
	must(a, wire.SignOutAll, wire.SessionRequest{Session: t2})
	ended(t2)
	ended(t3)
	// Refused for good, on both.
	for _, x := range []*bank{a, b} {
		for _, tok := range []string{t1, t2, t3} {
			wantErr(t, callErr(x, wire.AccountsList, wire.SessionRequest{Session: tok}), wire.Unauthenticated, "")
		}
	}
}

// TestSessionCacheKeepsIdleRule: with every call answered from the cache,
// a session in use is still extended (last-seen written at least once a
// minute), and one left idle for the idle timeout still ends.
func TestSessionCacheKeepsIdleRule(t *testing.T) {
	clock := apptiertest.NewClock(apptiertest.Now())
	b := newBank(t, apptiertest.WithClock(clock.Now), apptiertest.WithIdleTimeout(10*time.Minute))
	apptier.SetSessionCacheTTL(b.srv.App, time.Hour)
	tok := b.signIn("alice", "alice-demo-pass")
	for range 15 { // 12.5 minutes of use, a call every 50 s
		clock.Advance(50 * time.Second)
		b.accounts(tok)
	}
	// Last-seen is written at most once a minute, so a session is live for
	// at least the idle timeout less a minute after its last use.
	clock.Advance(9*time.Minute - time.Second)
	b.accounts(tok)
	clock.Advance(10*time.Minute + time.Second)
	wantErr(t, callErr(b, wire.AccountsList, wire.SessionRequest{Session: tok}), wire.Unauthenticated, "")
}
