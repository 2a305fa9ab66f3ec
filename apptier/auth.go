package apptier

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"bankwire/proto"
	"bankwire/proto/limits"
	"bankwire/proto/wire"
	"bankwire/store"
)

// errBadCredentials is the one answer to a wrong password and to an unknown
// username alike, so that sign-in reveals nothing about who is a customer.
var errBadCredentials = wire.Errorf(wire.Unauthenticated, "The username or password is incorrect.")

// errLocked is the answer to a (username, client IP) pair that has had too
// many recent failures. The count is kept per username text, so an unknown
// username gets it at the same count as a customer's.
var errLocked = wire.Errorf(wire.ResourceExhausted, "Too many failed sign-ins for this username from your network. Wait a few minutes and try again.")

// errIPThrottled is the answer to a client IP with too many recent failures
// for any usernames.
var errIPThrottled = wire.Errorf(wire.ResourceExhausted, "Too many failed sign-ins from your network. Try again later.")

// errSignUpThrottled is the answer once a client IP has signed up
// SignUpIPLimit times in RateWindow.
var errSignUpThrottled = wire.Errorf(wire.ResourceExhausted, "Too many new accounts from your network. Try again later.")

var errSession = wire.Errorf(wire.Unauthenticated, "Your session has ended. Please sign in again.")

// Sign-in audit outcomes (the audit log may tell an unknown username from a
// wrong password; the answer to the client never does).
const (
	outcomeLocked    = store.OutcomeLocked
	outcomeThrottled = store.OutcomeThrottled
)

func validUsername(u string) error {
	if n := len(u); n < 3 || n > 32 {
		return wire.FieldError(wire.InvalidArgument, "username", "Use 3 to 32 characters.")
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return wire.FieldError(wire.InvalidArgument, "username", "Use only letters, digits, '.', '_' and '-'.")
		}
	}
	return nil
}

// cleanText validates free text typed by a customer (display names, payee
// nicknames, memos, chat messages): valid UTF-8, no control characters
// (line and paragraph separators included) except newlines and tabs where
// newlines are allowed, no store.BidiControl, at most max characters,
// trimmed. These are the store's rules, checked before any work is done.
func cleanText(field, s string, min, max int, newlines bool) (string, error) {
	if !utf8.ValidString(s) {
		return "", wire.FieldError(wire.InvalidArgument, field, "The text contains invalid characters.")
	}
	s = strings.TrimSpace(s)
	for _, r := range s {
		if (r == '\n' || r == '\r' || r == '\t') && newlines {
			continue
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == utf8.RuneError {
			return "", wire.FieldError(wire.InvalidArgument, field, "The text contains characters that are not allowed.")
		}
		if store.BidiControl(r) {
			return "", wire.FieldError(wire.InvalidArgument, field, "The text contains characters that change its direction, which are not allowed.")
		}
	}
	n := utf8.RuneCountInString(s)
	if n < min {
		if min == 1 {
			return "", wire.FieldError(wire.InvalidArgument, field, "This field is required.")
		}
		return "", wire.FieldError(wire.InvalidArgument, field, "This is too short.")
	}
	if n > max {
		return "", wire.FieldError(wire.InvalidArgument, field, "This is too long (at most "+uitoa(uint64(max))+" characters).")
	}
	return s, nil
}

func cleanClient(c wire.ClientInfo) wire.ClientInfo {
	trim := func(s string, max int) string {
		s = strings.ToValidUTF8(s, "")
		s = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return -1
			}
			return r
		}, s)
		if len(s) > max {
			s = s[:max]
			s = strings.ToValidUTF8(s, "")
		}
		return s
	}
	return wire.ClientInfo{IP: clientNetwork(trim(c.IP, 64)), UserAgent: trim(c.UserAgent, 256)}
}

// clientNetwork is the client that per-client limits count (sign-in locks
// and failures, sign-ups) and that sessions and the audit trail record: an
// IPv4 address as itself (also when it comes IPv4-mapped), and an IPv6
// address as its /64, because one IPv6 client holds a whole /64 and may
// use a new address from it for every connection. Anything that is not an
// IP address is kept as it is.
func clientNetwork(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return addr.String()
	}
	p, err := addr.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

func (a *App) signUp(ctx context.Context, in wire.SignUpRequest) (wire.SignInResponse, error) {
	if err := validUsername(in.Username); err != nil {
		return wire.SignInResponse{}, err
	}
	if in.DisplayName == "" {
		in.DisplayName = in.Username
	}
	display, err := cleanText("display_name", in.DisplayName, 1, limits.MaxDisplayNameLen, false)
	if err != nil {
		return wire.SignInResponse{}, err
	}
	if strings.IndexFunc(display, store.HiddenChar) >= 0 {
		return wire.SignInResponse{}, wire.FieldError(wire.InvalidArgument, "display_name", "The name contains invisible or direction-changing characters.")
	}
	if err := a.hasher.CheckPolicy(in.Password); err != nil {
		return wire.SignInResponse{}, err
	}
	if strings.EqualFold(in.Password, in.Username) {
		return wire.SignInResponse{}, wire.FieldError(wire.InvalidArgument, "password", "The password must not be your username.")
	}
	// Every well-formed attempt counts, before the costly hash.
	cl := cleanClient(in.ClientInfo)
	if !a.signUps.allow(cl.IP, a.cfg.Now()) {
		return wire.SignInResponse{}, errSignUpThrottled
	}
	hash, err := a.hasher.Hash(ctx, in.Password)
	if err != nil {
		return wire.SignInResponse{}, storeErr(err, "")
	}
	now := a.cfg.Now()
	cust, _, err := a.st.CreateCustomer(ctx, in.Username, display, hash, now)
	if errors.Is(err, store.ErrAlreadyExists) {
		return wire.SignInResponse{}, wire.FieldError(wire.AlreadyExists, "username", "That username is taken; choose another.")
	}
	if err != nil {
		return wire.SignInResponse{}, storeErr(err, "")
	}
	return a.newSession(ctx, cust, cl, now)
}

// newToken returns a fresh session token (256 random bits, URL-safe) and
// the sha256 that is all the database ever sees of it.
func newToken() (string, []byte, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, err
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	return token, tokenHash(token), nil
}

func (a *App) newSession(ctx context.Context, c store.Customer, cl wire.ClientInfo, now time.Time) (wire.SignInResponse, error) {
	token, hash, err := newToken()
	if err != nil {
		return wire.SignInResponse{}, err
	}
	exp := now.Add(a.cfg.AbsoluteTimeout)
	if _, err := a.st.CreateSession(ctx, hash, c.ID, now, exp, cl.UserAgent, cl.IP); err != nil {
		return wire.SignInResponse{}, storeErr(err, "")
	}
	return wire.SignInResponse{Token: token, ExpiresAt: exp, Customer: customerView(c)}, nil
}

func customerView(c store.Customer) wire.Customer {
	return wire.Customer{ID: c.ID, Username: c.Username, DisplayName: c.DisplayName}
}

// Sign-in throttling. Failures (every outcome but success) count only
// inside the last ThrottleWindow, from the audit trail, and nothing else is
// stored against a customer, so:
//
//   - a (username, client IP) pair with LockAfter failures since that pair's
//     last success is refused until its failures age out of the window;
//     the owner elsewhere is not affected, and an owner's success elsewhere
//     gives the guesser no fresh allowance;
//   - a client IP with IPLimit failures for any usernames is refused;
//   - every attempt for a username waits a progressive delay before the
//     password is checked: none for the first two failures since the
//     username's last success (from anywhere) or the client IP's, then
//     DelayBase doubling up to DelayMax. Guesses from elsewhere can slow
//     the owner by at most DelayMax, never keep them out.
//
// All counts are kept per username text, known or not, and an unknown
// username costs the same hash as a wrong password: the answers (code,
// text and timing) for a customer's username and an unknown one are the
// same at every count.

// throttleDelay is the delay before a sign-in is checked after `failures`
// recent failures.
func (a *App) throttleDelay(failures int) time.Duration {
	if failures < 2 {
		return 0
	}
	d := a.cfg.DelayBase
	for i := 2; i < failures && d < a.cfg.DelayMax; i++ {
		d *= 2
	}
	return min(d, a.cfg.DelayMax)
}

func (a *App) signIn(ctx context.Context, in wire.SignInRequest) (wire.SignInResponse, error) {
	cl := cleanClient(in.ClientInfo)
	// A malformed username cannot be a customer: answer exactly as for an
	// unknown one, but do not pay for a hash nor record junk in the audit log
	// beyond a bounded, cleaned copy.
	username := in.Username
	if len(username) > 64 || !utf8.ValidString(username) {
		username = strings.ToValidUTF8(username, "")
		if len(username) > 64 {
			username = username[:64]
		}
	}
	if len(in.Password) > 4*MaxPasswordLen {
		return wire.SignInResponse{}, errBadCredentials
	}
	now := a.cfg.Now()
	audit := func(custID *int64, outcome string) {
		// The audit record must survive the caller giving up, so it gets its
		// own short context.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		err := a.st.AddSignInEvent(actx, store.SignInEvent{CustomerID: custID, Username: strings.ToLower(username),
			ClientIP: cl.IP, UserAgent: cl.UserAgent, Outcome: outcome, CreatedAt: now})
		if err != nil {
			a.log.ErrorContext(ctx, "sign-in audit", "trace_id", proto.TraceID(ctx), "err", err)
		}
	}

	// Attempts this process is still checking have no audit record yet:
	// they count as failures, so that guesses sent all at once cannot each
	// read the count from before any of them. They are taken before the
	// lookup and left after the audit record is written, so every attempt
	// is counted by one or the other.
	lower := strings.ToLower(username)
	pending, leave := a.signInsChecking.enter("u\x00"+lower, "p\x00"+cl.IP+"\x00"+lower, "i\x00"+cl.IP)
	defer leave()

	// The customer and the recent failures come in one round trip.
	cust, known, failed, err := a.st.SignInLookup(ctx, username, cl.IP, now.Add(-a.cfg.ThrottleWindow))
	if err != nil {
		return wire.SignInResponse{}, storeErr(err, "")
	}
	failed.Username += pending[0]
	failed.Pair += pending[1]
	failed.ClientIP += pending[2]
	var custID *int64
	if known {
		custID = &cust.ID
	}
	if cl.IP != "" && failed.ClientIP >= a.cfg.IPLimit {
		audit(custID, outcomeThrottled)
		return wire.SignInResponse{}, errIPThrottled
	}
	if failed.Pair >= a.cfg.LockAfter {
		audit(custID, outcomeLocked)
		return wire.SignInResponse{}, errLocked
	}
	if d := a.throttleDelay(max(failed.Username, failed.ClientIP)); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			audit(custID, outcomeThrottled)
			return wire.SignInResponse{}, wire.Errorf(wire.ResourceExhausted, "Too many failed sign-ins. Wait a moment and try again.")
		}
	}

	phc := ""
	if known {
		phc = cust.PasswordHash
	}
	ok, err := a.hasher.Verify(ctx, phc, in.Password)
	if err != nil {
		if errors.Is(err, errBadPHC) {
			// A corrupt stored hash must not let anyone in, nor tell them why.
			a.log.ErrorContext(ctx, "stored password hash is malformed", "trace_id", proto.TraceID(ctx), "customer_id", cust.ID)
			audit(custID, store.OutcomeBadPassword)
			return wire.SignInResponse{}, errBadCredentials
		}
		return wire.SignInResponse{}, storeErr(err, "")
	}
	if !ok {
		if known {
			audit(custID, store.OutcomeBadPassword)
		} else {
			audit(custID, store.OutcomeUnknownUser)
		}
		return wire.SignInResponse{}, errBadCredentials
	}
	// Success: audit and create the session in one round trip.
	token, hash, err := newToken()
	if err != nil {
		return wire.SignInResponse{}, err
	}
	exp := now.Add(a.cfg.AbsoluteTimeout)
	if _, err := a.st.CompleteSignIn(ctx, cust.ID, strings.ToLower(username), hash, now, exp, cl.UserAgent, cl.IP); err != nil {
		return wire.SignInResponse{}, storeErr(err, "")
	}
	return wire.SignInResponse{Token: token, ExpiresAt: exp, Customer: customerView(cust)}, nil
}

// checking counts the sign-in attempts in progress in this process, by
// username, (username, client) pair and client.
type checking struct {
	mu sync.Mutex
	n  map[string]int
}

// enter counts one attempt under each key and returns how many were
// already in progress under each; leave ends the attempt.
func (c *checking) enter(keys ...string) (pending []int, leave func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = make(map[string]int)
	}
	pending = make([]int, len(keys))
	for i, k := range keys {
		pending[i] = c.n[k]
		c.n[k]++
	}
	return pending, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, k := range keys {
			if c.n[k]--; c.n[k] <= 0 {
				delete(c.n, k)
			}
		}
	}
}

func tokenHash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// liveSession looks a session token up in the database (never the cache)
// and enforces the absolute and idle timeouts, without extending anything.
func (a *App) liveSession(ctx context.Context, token string) (store.Session, error) {
	if token == "" || len(token) > 128 {
		return store.Session{}, errSession
	}
	return a.readSession(ctx, tokenHash(token), a.cfg.Now())
}

// readSession reads the session with the given token hash from the
// database and checks it is usable at now.
func (a *App) readSession(ctx context.Context, hash []byte, now time.Time) (store.Session, error) {
	s, err := a.st.SessionByTokenHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return store.Session{}, errSession
	}
	if err != nil {
		return store.Session{}, storeErr(err, "")
	}
	if !a.usable(s, now) {
		return store.Session{}, errSession
	}
	return s, nil
}

// usable reports whether s may serve a call at now: not revoked, not past
// its absolute expiry, not idle for the idle timeout.
func (a *App) usable(s store.Session, now time.Time) bool {
	return s.Active(now) && now.Before(s.LastSeenAt.Add(a.cfg.IdleTimeout))
}

// authenticate resolves a session token to its live session and extends the
// idle window (writing last-seen at most every touchEvery). It answers from
// the session cache when it can; see sessionCache for why that is exact.
func (a *App) authenticate(ctx context.Context, token string) (store.Session, error) {
	e, _, _, err := a.authenticateEntry(ctx, token)
	return e.session, err
}

// authenticateEntry is authenticate returning the cache entry, the token's
// hash and the cache generation it was read under.
func (a *App) authenticateEntry(ctx context.Context, token string) (cachedSession, []byte, uint64, error) {
	if token == "" || len(token) > 128 {
		return cachedSession{}, nil, 0, errSession
	}
	hash := tokenHash(token)
	now := a.cfg.Now()
	gen := a.sessions.generation()
	if e, ok := a.sessions.get(hash); ok && a.usable(e.session, now) && now.Sub(e.session.LastSeenAt) < a.touchEvery() {
		return e, hash, gen, nil
	}
	// Not cached, looks ended (the cached last-seen may be older than the
	// database's), or due for a touch: ask the database.
	read := time.Now()
	s, err := a.readSession(ctx, hash, now)
	if err != nil {
		return cachedSession{}, nil, 0, err
	}
	if now.Sub(s.LastSeenAt) >= a.touchEvery() {
		err := a.st.TouchSession(ctx, s.ID, now)
		if errors.Is(err, store.ErrNotFound) {
			return cachedSession{}, nil, 0, errSession // revoked since the read
		}
		if err != nil {
			return cachedSession{}, nil, 0, storeErr(err, "")
		}
		s.LastSeenAt = now
	}
	e := cachedSession{session: s, read: read}
	a.sessions.put(hash, e, gen)
	return e, hash, gen, nil
}

func (a *App) sessionCheck(ctx context.Context, in wire.SessionRequest) (wire.SessionResponse, error) {
	e, hash, gen, err := a.authenticateEntry(ctx, in.Session)
	if err != nil {
		return wire.SessionResponse{}, err
	}
	if e.customer == nil {
		// Usernames and display names never change, so the customer can
		// live as long as the session's entry.
		c, err := a.st.CustomerByID(ctx, e.session.CustomerID)
		if err != nil {
			return wire.SessionResponse{}, storeErr(err, "Customer not found.")
		}
		v := customerView(c)
		e.customer = &v
		a.sessions.update(hash, gen, func(ce *cachedSession) { ce.customer = &v })
	}
	return wire.SessionResponse{Customer: *e.customer, ExpiresAt: e.session.ExpiresAt}, nil
}

func (a *App) signOut(ctx context.Context, in wire.SessionRequest) (wire.Empty, error) {
	if in.Session == "" || len(in.Session) > 128 {
		return wire.Empty{}, nil
	}
	// Signing out an unknown or already-ended session succeeds: the outcome
	// the customer wants (no valid session) holds either way. This app
	// tier forgets the session before it answers; the others hear of it
	// from the store's notification.
	hash := tokenHash(in.Session)
	defer a.sessions.drop(hash)
	if err := a.st.RevokeSession(ctx, hash, a.cfg.Now()); err != nil && !errors.Is(err, store.ErrNotFound) {
		return wire.Empty{}, storeErr(err, "")
	}
	return wire.Empty{}, nil
}

func (a *App) signOutAll(ctx context.Context, s store.Session, _ wire.SessionRequest) (wire.Empty, error) {
	defer a.sessions.dropCustomer(s.CustomerID, nil)
	if err := a.st.RevokeAllSessions(ctx, s.CustomerID, a.cfg.Now()); err != nil {
		return wire.Empty{}, storeErr(err, "")
	}
	return wire.Empty{}, nil
}
