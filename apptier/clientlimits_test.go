package apptier_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bankwire/apptier"
	"bankwire/apptier/apptiertest"
	"bankwire/proto/wire"
)

// TestClientLimitsCoverAnIPv6Network: one IPv6 client holds a whole /64
// and picks any address in it for each connection, so the per-client
// sign-in lock, the per-client failure limit and the sign-up limit count
// the network, not the single address (and an IPv4 client seen through an
// IPv4-mapped IPv6 address is the same client).
func TestClientLimitsCoverAnIPv6Network(t *testing.T) {
	clock := apptiertest.NewClock(t0)
	b := newBank(t, apptiertest.WithClock(clock.Now), throttled(3, 15*time.Minute), apptiertest.WithConfig(func(c *apptier.Config) {
		c.IPLimit = 6
		c.SignUpIPLimit = 2
		c.RateWindow = time.Hour
	}))
	// The pair lock: three failures, each from a new address of the /64.
	for i := 1; i <= 3; i++ {
		wantErr(t, b.signInFrom("alice", "wrong password", fmt.Sprintf("2001:db8:1:2::%x", i)), wire.Unauthenticated, "")
	}
	wantErr(t, b.signInFrom("alice", "another guess", "2001:db8:1:2:aaaa:bbbb:cccc:dddd"), wire.ResourceExhausted, "")
	// Another /64 is another client.
	if err := b.signInFrom("alice", "alice-demo-pass", "2001:db8:1:3::1"); err != nil {
		t.Fatalf("from another network: %v", err)
	}
	// The per-client failure limit, over many usernames.
	for i := 0; i < 6; i++ {
		_ = b.signInFrom(fmt.Sprintf("nobody%d", i), "wrong password", fmt.Sprintf("2001:db8:9:9::%x", 100+i))
	}
	wantErr(t, b.signInFrom("bob", "bob-demo-pass", "2001:db8:9:9::ffff"), wire.ResourceExhausted, "")
	// An IPv4 client, as itself and IPv4-mapped.
	for i := 0; i < 3; i++ {
		wantErr(t, b.signInFrom("bob", "wrong password", "192.0.2.77"), wire.Unauthenticated, "")
	}
	wantErr(t, b.signInFrom("bob", "bob-demo-pass", "::ffff:192.0.2.77"), wire.ResourceExhausted, "")

	// Sign-ups.
	signUp := func(user, ip string) error {
		return callErr(b, wire.SignUp, wire.SignUpRequest{Username: user, Password: "a long enough passphrase",
			ClientInfo: wire.ClientInfo{IP: ip}})
	}
	for i := 0; i < 2; i++ {
		if err := signUp(fmt.Sprintf("rotator%d", i), fmt.Sprintf("2001:db8:5:5::%x", i+1)); err != nil {
			t.Fatalf("sign-up %d: %v", i, err)
		}
	}
	wantErr(t, signUp("rotator2", "2001:db8:5:5::99"), wire.ResourceExhausted, "")
}

// TestConcurrentGuessesCountAgainstTheLock: guesses sent all at once from
// one client each get their password checked only while the pair is under
// its lock count; the rest are refused as if they had come one by one.
func TestConcurrentGuessesCountAgainstTheLock(t *testing.T) {
	clock := apptiertest.NewClock(t0)
	b := newBank(t, apptiertest.WithClock(clock.Now), throttled(3, 15*time.Minute))
	h := b.srv.App.Hasher()
	before := h.Computations()
	var wg sync.WaitGroup
	var checked, refused atomic.Int64
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch wire.ErrorCode(b.signInFrom("alice", fmt.Sprintf("guess %d", i), "203.0.113.9")) {
			case wire.Unauthenticated:
				checked.Add(1)
			case wire.ResourceExhausted:
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := h.Computations() - before; checked.Load() > 3 || n > 3 || checked.Load()+refused.Load() != 30 {
		t.Fatalf("30 concurrent guesses with a lock after 3: %d checked (%d hashes), %d refused", checked.Load(), n, refused.Load())
	}
	// The owner from elsewhere is not affected.
	if err := b.signInFrom("alice", "alice-demo-pass", "198.51.100.1"); err != nil {
		t.Fatalf("owner: %v", err)
	}
}
