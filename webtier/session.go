package webtier

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/url"
	"sync"
	"time"

	"bankwire/proto/wire"
)

// session is the signed-in customer of a request. It belongs to one
// request (one goroutine).
type session struct {
	Token    string
	Customer wire.Customer

	// confirmed is set once the app tier accepted Token during this
	// request. checkErr remembers a failed session check, or an outage met
	// by any call with the session, so that rendering the page never asks
	// again.
	confirmed bool
	checkErr  error
}

type sessionKey struct{}

func withSession(ctx context.Context, s *session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// sessionFrom returns the request's session, or nil when signed out.
func sessionFrom(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// The session cache remembers who a token belongs to for a few seconds, so a
// page that needs the customer's name and one piece of data costs one
// app-tier round trip, not two. It never decides access, and never alone
// decides what a page shows: every data call sends the token and the app
// tier checks it, and a page is rendered with the customer's name only
// once the app tier has accepted the token during that request (a page
// that made no call asks with a session check; see confirmSession). So a
// session revoked by "sign out on all devices" on any web tier shows on no
// page of any web tier afterwards, without the web tiers telling each other
// anything.
const (
	sessionCacheTTL = 15 * time.Second
	sessionCacheMax = 10000
)

type sessionCache struct {
	mu      sync.Mutex
	ttl     time.Duration
	max     int
	entries map[[32]byte]sessionEntry
}

type sessionEntry struct {
	customer wire.Customer
	expires  time.Time
}

func newSessionCache(ttl time.Duration, max int) *sessionCache {
	return &sessionCache{ttl: ttl, max: max, entries: make(map[[32]byte]sessionEntry)}
}

// Keys are hashes so the cache does not hold live tokens.
func cacheKey(token string) [32]byte { return sha256.Sum256([]byte(token)) }

func (c *sessionCache) get(token string, now time.Time) (wire.Customer, bool) {
	k := cacheKey(token)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || now.After(e.expires) {
		delete(c.entries, k)
		return wire.Customer{}, false
	}
	return e.customer, true
}

func (c *sessionCache) put(token string, cust wire.Customer, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if now.After(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			// Still full of live entries: start over rather than grow. The
			// cost is one extra session check per active customer.
			clear(c.entries)
		}
	}
	c.entries[cacheKey(token)] = sessionEntry{customer: cust, expires: now.Add(c.ttl)}
}

func (c *sessionCache) drop(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, cacheKey(token))
}

// lookupSession finds the customer for the request's cookie. ok is false
// with a nil error when there is no usable session.
func (s *Server) lookupSession(r *http.Request) (*session, error) {
	tok := s.sessionToken(r)
	if tok == "" {
		return nil, nil
	}
	if cust, ok := s.sessions.get(tok, time.Now()); ok {
		return &session{Token: tok, Customer: cust}, nil
	}
	var resp wire.SessionResponse
	if err := s.call(r, wire.OpSessionCheck, wire.SessionRequest{Session: tok}, &resp); err != nil {
		if wire.ErrorCode(err) == wire.Unauthenticated {
			return nil, nil
		}
		return nil, err
	}
	s.sessions.put(tok, resp.Customer, time.Now())
	return &session{Token: tok, Customer: resp.Customer, confirmed: true}, nil
}

// confirmSession makes sure the app tier accepted the session during this
// request, asking it (once) if no call has yet and none met an outage.
func (s *Server) confirmSession(r *http.Request, sess *session) error {
	if sess.confirmed || sess.checkErr != nil {
		return sess.checkErr
	}
	var resp wire.SessionResponse
	if err := s.call(r, wire.OpSessionCheck, wire.SessionRequest{Session: sess.Token}, &resp); err != nil {
		sess.checkErr = err
		if wire.ErrorCode(err) == wire.Unauthenticated {
			s.sessions.drop(sess.Token)
		}
		return err
	}
	sess.Customer = resp.Customer
	return nil
}

// noteCall records what a call made with the request's session says about
// it: success proves it live; an outage means asking again is pointless.
func noteCall(r *http.Request, op wire.Op, err error) {
	sess := sessionFrom(r.Context())
	if sess == nil || !callConfirms(op) {
		return
	}
	switch {
	case err == nil:
		sess.confirmed = true
	case sess.checkErr == nil && statusOf(wire.ErrorCode(err)) >= 500:
		sess.checkErr = err
	}
}

// callConfirms reports whether a successful op proves the session it
// carried is live: every op that takes a session authenticates it first,
// except sign-out, which succeeds for ended sessions too.
func callConfirms(op wire.Op) bool {
	switch op {
	case wire.OpInfo, wire.OpSignIn, wire.OpSignUp, wire.OpSignOut:
		return false
	}
	return true
}

// optionalSession attaches the session when there is one (sign-in and
// sign-up pages redirect signed-in customers); an unreachable app tier is
// not an error here, the page just renders signed out.
func (s *Server) optionalSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, err := s.lookupSession(r)
		if err == nil && sess != nil {
			r = r.WithContext(withSession(r.Context(), sess))
		}
		next.ServeHTTP(w, r)
	})
}

// requireSession sends signed-out visitors to the sign-in page, remembering
// where they were going (for GETs), and attaches the session otherwise.
func (s *Server) requireSession(next http.Handler) http.Handler {
	return s.sessionRequired(next, s.fail)
}

// sessionRequired is requireSession with onErr answering when the session
// cannot be checked (the app tier did not answer).
func (s *Server) sessionRequired(next http.Handler, onErr func(http.ResponseWriter, *http.Request, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		had := s.sessionToken(r) != ""
		sess, err := s.lookupSession(r)
		if err != nil {
			onErr(w, r, err)
			return
		}
		if sess == nil {
			if had {
				s.sessionEnded(w, r)
				return
			}
			s.toSignIn(w, r, "signin_required")
			return
		}
		next.ServeHTTP(w, r.WithContext(withSession(r.Context(), sess)))
	})
}

// sessionEnded forgets a session the app tier no longer accepts and sends the
// customer to sign in again.
func (s *Server) sessionEnded(w http.ResponseWriter, r *http.Request) {
	if tok := s.sessionToken(r); tok != "" {
		s.sessions.drop(tok)
	}
	s.clearSessionCookie(w)
	s.toSignIn(w, r, "session_expired")
}

func (s *Server) toSignIn(w http.ResponseWriter, r *http.Request, flash string) {
	if r.URL.Path == "/events" {
		// EventSource stops reconnecting on 204; a redirect would be followed
		// to an HTML page it cannot parse.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.setFlash(w, flash)
	target := "/signin"
	if r.Method == http.MethodGet {
		if next := safeNext(r.URL.RequestURI()); next != "" && next != "/" {
			target += "?next=" + url.QueryEscape(next)
		}
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}
