package store_test

import (
	"context"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"bankwire/store"
	"bankwire/store/storetest"
)

func TestCreateCustomer(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	c, a, err := s.CreateCustomer(ctx, "Alice", "Alice Johnson", phc, t0)
	if err != nil {
		t.Fatal(err)
	}
	if c.Username != "Alice" || c.DisplayName != "Alice Johnson" || c.PasswordHash != phc || !c.CreatedAt.Equal(t0) ||
		c.FailedSignIns != 0 || c.LockedUntil != nil || c.LastSignInAt != nil {
		t.Fatalf("customer = %+v", c)
	}
	if a.CustomerID != c.ID || a.Kind != store.KindChecking || a.Currency != store.DefaultCurrency || a.Balance != 0 ||
		!store.ValidAccountNumber(a.Number) {
		t.Fatalf("first account = %+v", a)
	}
	for _, name := range []string{"alice", "ALICE", "aLiCe"} {
		got, err := s.CustomerByUsername(ctx, name)
		if err != nil || got.ID != c.ID {
			t.Fatalf("CustomerByUsername(%q) = %+v, %v", name, got, err)
		}
		_, _, err = s.CreateCustomer(ctx, name, "Someone Else", phc, t0)
		wantErr(t, err, store.ErrAlreadyExists)
	}
	if got, err := s.CustomerByID(ctx, c.ID); err != nil || got.Username != "Alice" {
		t.Fatalf("CustomerByID = %+v, %v", got, err)
	}
	_, err = s.CustomerByID(ctx, c.ID+100)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.CustomerByUsername(ctx, "nobody")
	wantErr(t, err, store.ErrNotFound)
	// The system customer that owns the outside world is invisible.
	_, err = s.CustomerByUsername(ctx, "bankwire-system")
	wantErr(t, err, store.ErrNotFound)
	_, _, err = s.CreateCustomer(ctx, "bankwire-system", "Impostor", phc, t0)
	wantErr(t, err, store.ErrAlreadyExists)
}

func TestCreateCustomerRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	cases := []struct{ username, display, hash, field string }{
		{"", "Name", phc, "username"},
		{strings.Repeat("u", store.MaxUsernameLen+1), "Name", phc, "username"},
		{"has space", "Name", phc, "username"},
		{"nul\x00", "Name", phc, "username"},
		{"bad\xff", "Name", phc, "username"},
		{"tab\tname", "Name", phc, "username"},
		{"ok", "", phc, "display_name"},
		{"ok", "   ", phc, "display_name"},
		{"ok", " Padded", phc, "display_name"},
		{"ok", strings.Repeat("d", store.MaxDisplayNameLen+1), phc, "display_name"},
		{"ok", "Line\nBreak", phc, "display_name"},
		{"ok", "Bell\a", phc, "display_name"},
		{"ok", "Bad \xc3", phc, "display_name"},
		{"ok", "Bob\u202Eecila", phc, "display_name"}, // right-to-left override
		{"ok", "Al\u200Bice", phc, "display_name"},    // zero-width space
		{"ok", "Ali\u200Dce", phc, "display_name"},    // zero-width joiner
		{"ok", "Alice\u2067", phc, "display_name"},    // right-to-left isolate
		{"ok", "Name", "", "password_hash"},
		{"ok", "Name", "plaintext-password", "password_hash"},
		{"ok", "Name", "$" + strings.Repeat("h", store.MaxPasswordHashLen), "password_hash"},
	}
	for _, tc := range cases {
		_, _, err := s.CreateCustomer(ctx, tc.username, tc.display, tc.hash, t0)
		wantInputError(t, err, tc.field)
	}
	// Lookups with hostile input are refused as input, not as server errors.
	_, err := s.CustomerByUsername(ctx, "x\x00")
	wantInputError(t, err, "username")
	_, err = s.CustomerByUsername(ctx, "\xff\xfe")
	wantInputError(t, err, "username")
	_, err = s.CustomerByUsername(ctx, strings.Repeat("a", 10_000))
	wantErr(t, err, store.ErrNotFound)
}

func TestSignInFailuresLockAndReset(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	c, _ := newCustomer(t, s, "alice")
	for i := 1; i <= 2; i++ {
		n, until, err := s.RecordSignInFailure(ctx, c.ID, t0, 3, 15*time.Minute)
		if err != nil || n != i || until != nil {
			t.Fatalf("failure %d: n=%d until=%v err=%v", i, n, until, err)
		}
	}
	n, until, err := s.RecordSignInFailure(ctx, c.ID, t0, 3, 15*time.Minute)
	if err != nil || n != 3 || until == nil || !until.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("third failure: n=%d until=%v err=%v, want lock until %v", n, until, err, t0.Add(15*time.Minute))
	}
	got, _ := s.CustomerByID(ctx, c.ID)
	if got.FailedSignIns != 3 || got.LockedUntil == nil {
		t.Fatalf("customer after lock = %+v", got)
	}
	// After the lock, each further failure locks again from its own time.
	later := t0.Add(time.Hour)
	_, until, err = s.RecordSignInFailure(ctx, c.ID, later, 3, 15*time.Minute)
	if err != nil || until == nil || !until.Equal(later.Add(15*time.Minute)) {
		t.Fatalf("failure after lock: until=%v err=%v", until, err)
	}
	if err := s.RecordSignInSuccess(ctx, c.ID, later); err != nil {
		t.Fatal(err)
	}
	got, _ = s.CustomerByID(ctx, c.ID)
	if got.FailedSignIns != 0 || got.LockedUntil != nil || got.LastSignInAt == nil || !got.LastSignInAt.Equal(later) {
		t.Fatalf("customer after success = %+v", got)
	}
	// lockAfter 0 never locks.
	if _, until, _ := s.RecordSignInFailure(ctx, c.ID, t0, 0, time.Minute); until != nil {
		t.Fatalf("lockAfter=0 locked until %v", until)
	}
	_, _, err = s.RecordSignInFailure(ctx, c.ID+99, t0, 3, time.Minute)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.RecordSignInSuccess(ctx, c.ID+99, t0), store.ErrNotFound)
}

// TestConcurrentSignInFailuresAllCount: the increment is atomic.
func TestConcurrentSignInFailuresAllCount(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	c, _ := newCustomer(t, s, "alice")
	done := make(chan error)
	for range 20 {
		go func() {
			_, _, err := s.RecordSignInFailure(ctx, c.ID, t0, 100, time.Minute)
			done <- err
		}()
	}
	for range 20 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.CustomerByID(ctx, c.ID)
	if got.FailedSignIns != 20 {
		t.Fatalf("failed sign-ins = %d, want 20", got.FailedSignIns)
	}
}

func TestSignInEvents(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	c, _ := newCustomer(t, s, "alice")
	id := c.ID
	events := []store.SignInEvent{
		{CustomerID: &id, Username: "alice", ClientIP: "10.0.0.1", UserAgent: "Firefox", Outcome: store.OutcomeBadPassword, CreatedAt: t0},
		{CustomerID: &id, Username: "ALICE", ClientIP: "10.0.0.2", UserAgent: "Firefox", Outcome: store.OutcomeBadPassword, CreatedAt: t0},
		{Username: "mallory", ClientIP: "10.0.0.1", Outcome: store.OutcomeUnknownUser, CreatedAt: t0},
		{CustomerID: &id, Username: "alice", ClientIP: "10.0.0.1", Outcome: store.OutcomeSuccess, CreatedAt: t0},
		{CustomerID: &id, Username: "alice", ClientIP: "10.0.0.1", Outcome: store.OutcomeBadPassword, CreatedAt: t0.Add(-2 * time.Hour)},
		// Hostile values are recorded, not refused.
		{Username: "evil\x00\xff" + strings.Repeat("x", 5000), ClientIP: "\x00" + strings.Repeat("9", 500),
			UserAgent: "\xfe" + strings.Repeat("A", 100_000), Outcome: store.OutcomeUnknownUser, CreatedAt: t0},
	}
	for _, e := range events {
		if err := s.AddSignInEvent(ctx, e); err != nil {
			t.Fatalf("AddSignInEvent(%.40q): %v", e.Username, err)
		}
	}
	// Failures before the window, or before alice's success, do not count;
	// mallory's count for the address but not for alice.
	f, err := s.RecentFailures(ctx, "Alice", "10.0.0.1", t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.SignInFailures{Username: 2, Pair: 1, ClientIP: 2}); f != want {
		t.Fatalf("RecentFailures = %+v, want %+v", f, want)
	}
	for _, outcome := range []string{"", "Bad Password", "x\x00", strings.Repeat("a", 33)} {
		err := s.AddSignInEvent(ctx, store.SignInEvent{Username: "a", Outcome: outcome})
		wantInputError(t, err, "outcome")
	}
	if _, err := s.RecentFailures(ctx, "\xff\x00", "\x00", t0); err != nil {
		t.Fatalf("RecentFailures with hostile input: %v", err)
	}
}

func TestSessions(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	c, _ := newCustomer(t, s, "alice")
	hash := sha256.Sum256([]byte("token-1"))
	sess, err := s.CreateSession(ctx, hash[:], c.ID, t0, t0.Add(24*time.Hour), "Mozilla/5.0", "203.0.113.7")
	if err != nil {
		t.Fatal(err)
	}
	if sess.CustomerID != c.ID || !sess.CreatedAt.Equal(t0) || !sess.LastSeenAt.Equal(t0) || sess.RevokedAt != nil ||
		sess.UserAgent != "Mozilla/5.0" || sess.ClientIP != "203.0.113.7" || !sess.Active(t0) {
		t.Fatalf("session = %+v", sess)
	}
	got, err := s.SessionByTokenHash(ctx, hash[:])
	if err != nil || got.ID != sess.ID {
		t.Fatalf("SessionByTokenHash = %+v, %v", got, err)
	}
	if got.Active(t0.Add(25 * time.Hour)) {
		t.Fatal("session active after expiry")
	}
	_, err = s.CreateSession(ctx, hash[:], c.ID, t0, t0.Add(time.Hour), "", "")
	wantErr(t, err, store.ErrAlreadyExists)

	if err := s.TouchSession(ctx, sess.ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchSession(ctx, sess.ID, t0.Add(time.Minute)); err != nil { // older: kept monotonic
		t.Fatal(err)
	}
	got, _ = s.SessionByTokenHash(ctx, hash[:])
	if !got.LastSeenAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("last seen = %v, want %v", got.LastSeenAt, t0.Add(time.Hour))
	}

	if err := s.RevokeSession(ctx, hash[:], t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeSession(ctx, hash[:], t0.Add(3*time.Hour)); err != nil { // idempotent
		t.Fatal(err)
	}
	got, _ = s.SessionByTokenHash(ctx, hash[:])
	if got.RevokedAt == nil || !got.RevokedAt.Equal(t0.Add(2*time.Hour)) || got.Active(t0) {
		t.Fatalf("revoked session = %+v", got)
	}
	wantErr(t, s.TouchSession(ctx, sess.ID, t0), store.ErrNotFound)

	// Sign out everywhere.
	var hashes [][]byte
	for i := range 3 {
		h := sha256.Sum256([]byte{byte(i)})
		hashes = append(hashes, h[:])
		if _, err := s.CreateSession(ctx, h[:], c.ID, t0, t0.Add(time.Hour), "", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeAllSessions(ctx, c.ID, t0); err != nil {
		t.Fatal(err)
	}
	for _, h := range hashes {
		if got, _ := s.SessionByTokenHash(ctx, h); got.Active(t0) {
			t.Fatalf("session %d still active after RevokeAllSessions", got.ID)
		}
	}

	// Errors and hostile input.
	other := sha256.Sum256([]byte("other"))
	_, err = s.SessionByTokenHash(ctx, other[:])
	wantErr(t, err, store.ErrNotFound)
	_, err = s.SessionByTokenHash(ctx, []byte("short"))
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.RevokeSession(ctx, other[:], t0), store.ErrNotFound)
	_, err = s.CreateSession(ctx, []byte("short"), c.ID, t0, t0.Add(time.Hour), "", "")
	wantInputError(t, err, "token_hash")
	_, err = s.CreateSession(ctx, other[:], c.ID, t0, t0, "", "")
	wantInputError(t, err, "expires_at")
	_, err = s.CreateSession(ctx, other[:], c.ID+99, t0, t0.Add(time.Hour), "", "")
	wantErr(t, err, store.ErrNotFound)
	long, err := s.CreateSession(ctx, other[:], c.ID, t0, t0.Add(time.Hour), "\x00\xff"+strings.Repeat("ü", 10_000), strings.Repeat("1", 100))
	if err != nil {
		t.Fatalf("hostile user agent: %v", err)
	}
	if len([]rune(long.UserAgent)) != store.MaxUserAgentLen || len(long.ClientIP) != store.MaxClientIPLen {
		t.Fatalf("user agent kept %d characters, client IP %d", len([]rune(long.UserAgent)), len(long.ClientIP))
	}
}

// TestCompleteSignIn: one statement resets failures and the lock, audits the
// success (which also wipes the throttling slate) and creates the session.
func TestCompleteSignIn(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	c, _ := newCustomer(t, s, "alice")
	for i := 0; i < 3; i++ {
		if _, _, err := s.RecordSignInFailure(ctx, c.ID, t0, 3, 15*time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.AddSignInEvent(ctx, store.SignInEvent{CustomerID: &c.ID, Username: "alice", ClientIP: "192.0.2.9",
			Outcome: store.OutcomeBadPassword, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	f, err := s.RecentFailures(ctx, "alice", "192.0.2.9", t0.Add(-time.Minute))
	if want := (store.SignInFailures{Username: 3, Pair: 3, ClientIP: 3}); err != nil || f != want {
		t.Fatalf("before success: %+v, %v; want %+v", f, err, want)
	}
	hash := sha256.Sum256([]byte("token"))
	at := t0.Add(time.Second)
	sess, err := s.CompleteSignIn(ctx, c.ID, "alice", hash[:], at, at.Add(8*time.Hour), "agent\x00", "192.0.2.9")
	if err != nil {
		t.Fatal(err)
	}
	if sess.CustomerID != c.ID || !sess.CreatedAt.Equal(at) || !sess.ExpiresAt.Equal(at.Add(8*time.Hour)) || sess.UserAgent != "agent" {
		t.Fatalf("session %+v", sess)
	}
	got, err := s.SessionByTokenHash(ctx, hash[:])
	if err != nil || got.ID != sess.ID {
		t.Fatalf("session by hash: %+v, %v", got, err)
	}
	cust, _ := s.CustomerByID(ctx, c.ID)
	if cust.FailedSignIns != 0 || cust.LockedUntil != nil || cust.LastSignInAt == nil || !cust.LastSignInAt.Equal(at) {
		t.Fatalf("customer after success = %+v", cust)
	}
	f, err = s.RecentFailures(ctx, "ALICE", "192.0.2.9", t0.Add(-time.Minute))
	if err != nil || f.Username != 0 || f.Pair != 0 {
		t.Fatalf("failures before the success still count for the username: %+v, %v", f, err)
	}

	other := sha256.Sum256([]byte("other"))
	_, err = s.CompleteSignIn(ctx, c.ID+99, "ghost", other[:], at, at.Add(time.Hour), "", "")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.CompleteSignIn(ctx, c.ID, "alice", []byte("short"), at, at.Add(time.Hour), "", "")
	wantInputError(t, err, "token_hash")
	_, err = s.CompleteSignIn(ctx, c.ID, "alice", other[:], at, at, "", "")
	wantInputError(t, err, "expires_at")
	// The same token twice is refused, and the failed statement wrote nothing.
	_, err = s.CompleteSignIn(ctx, c.ID, "alice", hash[:], at, at.Add(time.Hour), "", "")
	if err == nil {
		t.Fatal("a duplicate token hash was accepted")
	}
}

// TestSignInLookup: the customer and the failure counts in one round trip,
// with the same answers as CustomerByUsername and RecentFailures.
func TestSignInLookup(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	c, _ := newCustomer(t, s, "Alice")
	for _, u := range []string{"alice", "nobody"} {
		if err := s.AddSignInEvent(ctx, store.SignInEvent{Username: u, ClientIP: "192.0.2.7", Outcome: store.OutcomeBadPassword, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	got, found, f, err := s.SignInLookup(ctx, "ALICE", "192.0.2.7", t0.Add(-time.Minute))
	if want := (store.SignInFailures{Username: 1, Pair: 1, ClientIP: 2}); err != nil || !found || got.ID != c.ID || got.PasswordHash == "" || f != want {
		t.Fatalf("lookup alice: %+v found=%v failures=%+v err=%v", got, found, f, err)
	}
	_, found, f, err = s.SignInLookup(ctx, "nobody", "192.0.2.8", t0.Add(-time.Minute))
	if want := (store.SignInFailures{Username: 1}); err != nil || found || f != want {
		t.Fatalf("lookup nobody: found=%v failures=%+v err=%v", found, f, err)
	}
	// The system customer and hostile names are never found, and never an error.
	for _, u := range []string{"bankwire-system", "nul\x00name", string([]byte{0xff, 0xfe}), strings.Repeat("x", 1000)} {
		if _, found, _, err := s.SignInLookup(ctx, u, "", t0); found || err != nil {
			t.Fatalf("lookup %q: found=%v err=%v", u, found, err)
		}
	}
}
