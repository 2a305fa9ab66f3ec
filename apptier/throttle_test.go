package apptier_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"bankwire/apptier"
	"bankwire/apptier/apptiertest"
	"bankwire/proto"
	"bankwire/proto/wire"
)

// t0 is a fixed instant for tests with their own clock: they never depend
// on the date.
var t0 = time.Date(2030, time.March, 4, 10, 0, 0, 0, time.UTC)

func throttled(lockAfter int, window time.Duration) apptiertest.Option {
	return apptiertest.WithConfig(func(c *apptier.Config) {
		c.LockAfter = lockAfter
		c.ThrottleWindow = window
		c.DelayBase = time.Millisecond
		c.DelayMax = 4 * time.Millisecond
	})
}

func (b *bank) signInFrom(user, pw, ip string) error {
	return callErr(b, wire.SignIn, wire.SignInRequest{Username: user, Password: pw, ClientInfo: wire.ClientInfo{IP: ip}})
}

func (b *bank) outcomes(user string) string {
	b.t.Helper()
	var out []string
	rows, err := b.srv.Store.Pool().Query(ctxT(b.t), "SELECT outcome FROM signin_events WHERE username = $1 ORDER BY id", user)
	if err != nil {
		b.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			b.t.Fatal(err)
		}
		out = append(out, o)
	}
	return strings.Join(out, ",")
}

// TestSignInLockIsPerUsernameAndClient: failures lock the (username, client
// IP) pair they came from, for known and unknown usernames alike, and only
// while they are inside the window; the owner elsewhere signs in.
func TestSignInLockIsPerUsernameAndClient(t *testing.T) {
	clock := apptiertest.NewClock(t0)
	b := newBank(t, apptiertest.WithClock(clock.Now), throttled(3, 10*time.Minute))
	const guesser, owner = "203.0.113.7", "198.51.100.1"
	for _, user := range []string{"alice", "no-such-user"} {
		for i := 0; i < 3; i++ {
			wantErr(t, b.signInFrom(user, "wrong password", guesser), wire.Unauthenticated, "")
		}
		// The pair is refused now, even with the right password.
		wantErr(t, b.signInFrom(user, "alice-demo-pass", guesser), wire.ResourceExhausted, "")
	}
	// The owner's own network is not affected.
	if err := b.signInFrom("alice", "alice-demo-pass", owner); err != nil {
		t.Fatalf("owner from their own network: %v", err)
	}
	// ...nor does the owner's success give the guesser a fresh allowance.
	wantErr(t, b.signInFrom("alice", "another guess", guesser), wire.ResourceExhausted, "")
	// The refusal ends when the failures leave the window.
	clock.Advance(11 * time.Minute)
	if err := b.signInFrom("alice", "alice-demo-pass", guesser); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	// A success from the pair wipes its slate: two more failures do not lock.
	for i := 0; i < 2; i++ {
		wantErr(t, b.signInFrom("alice", "wrong again", guesser), wire.Unauthenticated, "")
	}
	if err := b.signInFrom("alice", "alice-demo-pass", guesser); err != nil {
		t.Fatalf("after two failures following a success: %v", err)
	}
	want := "bad_password,bad_password,bad_password,locked,success,locked,success,bad_password,bad_password,success"
	if got := b.outcomes("alice"); got != want {
		t.Fatalf("audit outcomes %s, want %s", got, want)
	}
}

// TestOneGuessPerWindowCannotLockOutTheOwner: the attacker of the issue
// guesses once every window, for hours; the owner, from their own network,
// signs in every time with the right password.
func TestOneGuessPerWindowCannotLockOutTheOwner(t *testing.T) {
	clock := apptiertest.NewClock(t0)
	b := newBank(t, apptiertest.WithClock(clock.Now), throttled(3, 15*time.Minute))
	const attacker, owner = "203.0.113.66", "198.51.100.20"
	// A first burst locks the attacker's own pair...
	for i := 0; i < 5; i++ {
		_ = b.signInFrom("alice", fmt.Sprintf("guess %d", i), attacker)
	}
	for round := 0; round < 12; round++ {
		// ...then one guess just before each window would end.
		clock.Advance(14 * time.Minute)
		err := b.signInFrom("alice", fmt.Sprintf("round %d", round), attacker)
		if err == nil {
			t.Fatal("a wrong password signed in")
		}
		if err := b.signInFrom("alice", "alice-demo-pass", owner); err != nil {
			t.Fatalf("round %d: the owner was kept out: %v", round, err)
		}
	}
}

// TestSignInAnswersSameForKnownAndUnknownNames: at every failure count,
// through the pair lock and the per-IP limit, a customer's username and an
// unknown one get the same code, the same text and the same work (argon2id
// computations, the timing class that matters).
func TestSignInAnswersSameForKnownAndUnknownNames(t *testing.T) {
	clock := apptiertest.NewClock(t0)
	b := newBank(t, apptiertest.WithClock(clock.Now), throttled(3, 15*time.Minute), apptiertest.WithConfig(func(c *apptier.Config) {
		c.IPLimit = 6
	}))
	h := b.srv.App.Hasher()
	attempt := func(user, ip string) (string, int64) {
		before := h.Computations()
		err := b.signInFrom(user, "not the password", ip)
		var pe *wire.Error
		if !errors.As(err, &pe) {
			t.Fatalf("%s: %v", user, err)
		}
		return pe.Code.String() + " " + pe.Message, h.Computations() - before
	}
	// Each name from its own address, so that the per-IP counts match too;
	// a second username from each address reaches the per-IP limit.
	for i := 0; i < 8; i++ {
		known, knownWork := attempt("alice", "192.0.2.1")
		unknown, unknownWork := attempt("not-a-customer", "192.0.2.2")
		if known != unknown || knownWork != unknownWork {
			t.Fatalf("attempt %d: known %q (%d hashes), unknown %q (%d hashes)", i+1, known, knownWork, unknown, unknownWork)
		}
		if i >= 3 {
			known, knownWork = attempt("bob", "192.0.2.1")
			unknown, unknownWork = attempt("not-bob", "192.0.2.2")
			if known != unknown || knownWork != unknownWork {
				t.Fatalf("attempt %d, second name: known %q (%d hashes), unknown %q (%d hashes)", i+1, known, knownWork, unknown, unknownWork)
			}
		}
		clock.Advance(time.Minute)
	}
	// And long after, when every failure has left the window.
	clock.Advance(time.Hour)
	known, _ := attempt("alice", "192.0.2.1")
	unknown, _ := attempt("not-a-customer", "192.0.2.2")
	if known != unknown || !strings.HasPrefix(known, "UNAUTHENTICATED") {
		t.Fatalf("after the window: known %q, unknown %q", known, unknown)
	}
	// Failures spread over more than the window: nothing outlives it for
	// a customer either.
	clock.Advance(time.Hour)
	for i := 0; i < 6; i++ {
		known, knownWork := attempt("bob", "192.0.2.3")
		unknown, unknownWork := attempt("not-bob", "192.0.2.4")
		if known != unknown || knownWork != unknownWork {
			t.Fatalf("spread attempt %d: known %q (%d hashes), unknown %q (%d hashes)", i+1, known, knownWork, unknown, unknownWork)
		}
		clock.Advance(6 * time.Minute)
	}
}

// TestSignUpThrottledPerClientIP: the app tier itself limits sign-ups per
// client IP (the web tier's limit is only one of its callers'); the
// allowance comes back with time, and other addresses are not affected.
func TestSignUpThrottledPerClientIP(t *testing.T) {
	clock := apptiertest.NewClock(t0)
	b := newBank(t, apptiertest.WithoutDemoData(), apptiertest.WithClock(clock.Now), apptiertest.WithConfig(func(c *apptier.Config) {
		c.SignUpIPLimit = 2
		c.RateWindow = time.Hour
	}))
	signUp := func(user, ip string) error {
		return callErr(b, wire.SignUp, wire.SignUpRequest{Username: user, Password: "a long enough passphrase",
			ClientInfo: wire.ClientInfo{IP: ip}})
	}
	for i := 0; i < 2; i++ {
		if err := signUp(fmt.Sprintf("user%d", i), "192.0.2.10"); err != nil {
			t.Fatalf("sign-up %d: %v", i, err)
		}
	}
	h := b.srv.App.Hasher()
	before := h.Computations()
	wantErr(t, signUp("user2", "192.0.2.10"), wire.ResourceExhausted, "")
	if h.Computations() != before {
		t.Error("a throttled sign-up still paid for a password hash")
	}
	if err := signUp("user3", "192.0.2.11"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	clock.Advance(31 * time.Minute) // half the window: one sign-up's worth
	if err := signUp("user4", "192.0.2.10"); err != nil {
		t.Fatalf("after half the window: %v", err)
	}
	wantErr(t, signUp("user5", "192.0.2.10"), wire.ResourceExhausted, "")
}

// TestChatOpenRateLimitedPerCustomer: opening chats by username answers
// whether the username exists, so a customer gets only so many lookups per
// window; another customer is not affected.
func TestChatOpenRateLimitedPerCustomer(t *testing.T) {
	clock := apptiertest.NewClock(t0)
	b := newBank(t, apptiertest.WithClock(clock.Now), apptiertest.WithConfig(func(c *apptier.Config) {
		c.ChatOpenLimit = 3
		c.RateWindow = time.Hour
	}))
	alice, bob := b.signIn("alice", "alice-demo-pass"), b.signIn("bob", "bob-demo-pass")
	open := func(tok, user string) error {
		return callErr(b, wire.ChatOpen, wire.ChatOpenRequest{SessionRequest: wire.SessionRequest{Session: tok}, Username: user})
	}
	for _, user := range []string{"nobody1", "nobody2", "bob"} {
		if err := open(alice, user); err != nil && wire.ErrorCode(err) != wire.NotFound {
			t.Fatalf("open %s: %v", user, err)
		}
	}
	// Existing or not, the fourth lookup is refused, with the same answer.
	wantErr(t, open(alice, "nobody3"), wire.ResourceExhausted, "")
	wantErr(t, open(alice, "bob"), wire.ResourceExhausted, "")
	if err := open(bob, "alice"); err != nil {
		t.Fatalf("bob is limited by alice's lookups: %v", err)
	}
	clock.Advance(time.Hour)
	alice = b.signIn("alice", "alice-demo-pass") // the old session went idle
	if err := open(alice, "bob"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestDisplayNameRejectsHiddenCharacters: control, bidi-override and
// zero-width characters make a name look like another; they are refused by
// the app tier with a clear message (and by the store beneath it).
func TestDisplayNameRejectsHiddenCharacters(t *testing.T) {
	b := newBank(t, apptiertest.WithoutDemoData())
	for i, name := range []string{"Bob\u202Eecila", "Al\u200Bice", "Ali\u200Dce", "\uFEFFAlice", "Alice\u2066x\u2069", "A\u00ADlice", "Bell\a", "Ne\u0085l"} {
		err := callErr(b, wire.SignUp, wire.SignUpRequest{Username: fmt.Sprintf("hidden%d", i), DisplayName: name, Password: "a long enough passphrase"})
		if err == nil {
			t.Fatalf("display name %+q accepted", name)
		}
		wantErr(t, err, wire.InvalidArgument, "display_name")
	}
	up := must(b, wire.SignUp, wire.SignUpRequest{Username: "zoe", DisplayName: "Zoë Ünal-Šimić 山田", Password: "a long enough passphrase"})
	if up.Customer.DisplayName != "Zoë Ünal-Šimić 山田" {
		t.Fatalf("display name %q", up.Customer.DisplayName)
	}
}

// TestChatSendRateLimitedPerCustomer: a customer may send only so many chat
// messages a minute, so nobody floods another's chat; the other member is
// not affected, and the allowance comes back with time.
func TestChatSendRateLimitedPerCustomer(t *testing.T) {
	clock := apptiertest.NewClock(t0)
	b := newBank(t, apptiertest.WithClock(clock.Now), apptiertest.WithConfig(func(c *apptier.Config) {
		c.ChatSendLimit = 3
	}))
	alice, bob := b.signIn("alice", "alice-demo-pass"), b.signIn("bob", "bob-demo-pass")
	conv, err := proto.Call(context.Background(), b.c, wire.ChatOpen, wire.ChatOpenRequest{SessionRequest: wire.SessionRequest{Session: alice}, Username: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	send := func(tok, body string) error {
		return callErr(b, wire.ChatSend, wire.ChatSendRequest{SessionRequest: wire.SessionRequest{Session: tok}, ConversationID: conv.Conversation.ID, Body: body})
	}
	for i := range 3 {
		if err := send(alice, fmt.Sprintf("message %d", i)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	wantErr(t, send(alice, "one too many"), wire.ResourceExhausted, "")
	if err := send(bob, "hello"); err != nil {
		t.Fatalf("bob is limited by alice's messages: %v", err)
	}
	clock.Advance(time.Minute)
	if err := send(alice, "a minute later"); err != nil {
		t.Fatalf("after a minute: %v", err)
	}
}
