package webtier

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/httprate"
)

// maxFormBytes bounds a request body: the largest legitimate form is a chat
// message of 2000 characters.
const maxFormBytes = 64 << 10

// contentSecurityPolicy allows only this site's own files: no inline script,
// no inline style, no framing, forms post only here.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self'; font-src 'self'; connect-src 'self'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

func (s *Server) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		if s.cfg.SecureCookies {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}

// requireOrigin refuses a state-changing request that carries a session
// cookie but neither Origin nor Sec-Fetch-Site. http.CrossOriginProtection
// (which runs first) lets such a request through, since non-browser clients
// send neither; but every browser this site supports sends Origin on every
// POST, so a POST with a session cookie and no Origin comes from an old
// browser, a privacy filter that strips the header, or a forgery that
// relies on one of those, and SameSite=Lax would be the only thing left
// standing in its way. Requests without the cookie (sign-in, sign-up) are
// not affected: they carry no authority to abuse.
func (s *Server) requireOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if r.Header.Get("Origin") == "" && r.Header.Get("Sec-Fetch-Site") == "" {
				if _, err := r.Cookie(s.sessionCookieName()); err == nil {
					s.errorPage(w, r, http.StatusForbidden, "")
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// sanitizeRequestID drops an incoming X-Request-Id unless it looks like an
// id: chi's RequestID would otherwise put any text a client sends into our
// logs and the app tier's.
func sanitizeRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get(middleware.RequestIDHeader); id != "" && !validRequestID(id) {
			r.Header.Del(middleware.RequestIDHeader)
		}
		next.ServeHTTP(w, r)
	})
}

func validRequestID(id string) bool {
	if len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '/') {
			return false
		}
	}
	return true
}

// clientIP resolves the client's address: the TCP peer, unless the peer is a
// configured trusted proxy, in which case X-Forwarded-For (walked from the
// right past trusted hops) or X-Real-IP names the client.
func clientIP(trusted []netip.Prefix) func(http.Handler) http.Handler {
	if len(trusted) == 0 {
		return middleware.ClientIPFromRemoteAddr
	}
	cidrs := make([]string, len(trusted))
	for i, p := range trusted {
		cidrs[i] = p.String()
	}
	fromHeader := middleware.ClientIPFromHeader("X-Real-IP", cidrs...)
	fromXFF := middleware.ClientIPFromXFF(cidrs...)
	// X-Forwarded-For wins when present: it runs second and only overwrites
	// when it finds an address.
	return func(next http.Handler) http.Handler { return fromHeader(fromXFF(next)) }
}

// clientIPOf returns the resolved client IP, or "" when none could be found
// (then rate limits share one bucket, which is the safe direction).
func clientIPOf(r *http.Request) string {
	return middleware.GetClientIP(r.Context())
}

func clientIPKey(r *http.Request) (string, error) {
	return httprate.CanonicalizeIP(clientIPOf(r)), nil
}

// sessionCookieName depends on the scheme: over HTTPS the __Host- prefix
// makes the browser insist on Secure, Path=/ and no Domain, so a sibling
// subdomain cannot plant a session.
func (s *Server) sessionCookieName() string {
	if s.cfg.SecureCookies {
		return "__Host-bankwire_session"
	}
	return "bankwire_session"
}

func (s *Server) flashCookieName() string {
	if s.cfg.SecureCookies {
		return "__Host-bankwire_flash"
	}
	return "bankwire_flash"
}

func (s *Server) setSessionCookie(w http.ResponseWriter, token string) {
	// No Expires: the cookie ends with the browser session; the app tier
	// enforces idle and absolute expiry on the token itself.
	http.SetCookie(w, &http.Cookie{
		Name:     s.sessionCookieName(),
		Value:    token,
		Path:     "/",
		HttpOnly: true,
		Secure:   s.cfg.SecureCookies,
		SameSite: http.SameSiteLaxMode,
	})
}

func (s *Server) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name:     s.sessionCookieName(),
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   s.cfg.SecureCookies,
		SameSite: http.SameSiteLaxMode,
	})
}

// sessionToken returns the session cookie's value when it is plausible; a
// token the app tier could never have issued is not sent to it.
func (s *Server) sessionToken(r *http.Request) string {
	c, err := r.Cookie(s.sessionCookieName())
	if err != nil {
		return ""
	}
	v := c.Value
	if len(v) < 16 || len(v) > 256 {
		return ""
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] > '~' {
			return ""
		}
	}
	return v
}

// Flash messages travel in a short-lived cookie holding only a key into
// flashMessages, so no text a client sends is ever shown back as a flash.
var flashMessages = map[string]struct{ kind, text string }{
	"signed_out":             {"info", "You have signed out. See you soon."},
	"session_expired":        {"warn", "Your session has ended. Please sign in again."},
	"signin_required":        {"info", "Please sign in to continue."},
	"welcome":                {"success", "Welcome to bankwire! Your checking account is open."},
	"account_opened":         {"success", "Your new account is open."},
	"transfer_replayed":      {"info", "This transfer had already been submitted. It was made only once."},
	"transfer_done":          {"success", "Transfer complete."},
	"transfer_resolved_made": {"info", "Your transfer was made, once. There is nothing more to do."},
	"payee_added":            {"success", "Payee saved."},
	"payee_renamed":          {"success", "Payee renamed."},
	"payee_deleted":          {"success", "Payee deleted."},
}

func (s *Server) setFlash(w http.ResponseWriter, key string) {
	http.SetCookie(w, &http.Cookie{
		Name:     s.flashCookieName(),
		Value:    key,
		Path:     "/",
		MaxAge:   60,
		HttpOnly: true,
		Secure:   s.cfg.SecureCookies,
		SameSite: http.SameSiteLaxMode,
	})
}

// takeFlash reads and clears the flash, returning its kind and text.
func (s *Server) takeFlash(w http.ResponseWriter, r *http.Request) (kind, text string) {
	c, err := r.Cookie(s.flashCookieName())
	if err != nil {
		return "", ""
	}
	http.SetCookie(w, &http.Cookie{
		Name: s.flashCookieName(), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.cfg.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
	m, ok := flashMessages[c.Value]
	if !ok {
		return "", ""
	}
	return m.kind, m.text
}

// safeNext returns path if it is a local path to come back to after sign-in,
// else "". Only same-site absolute paths: "//evil.example" and "/\evil"
// would be read by browsers as other hosts. A backslash anywhere is refused:
// browsers read it as a slash, and http.Redirect cleans the path before it
// sends it, so "/./\evil.example" would leave as "/\evil.example".
func safeNext(path string) string {
	if len(path) > 512 || !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") ||
		strings.ContainsAny(path, "\\\r\n\t") {
		return ""
	}
	if path == "/signin" || path == "/signup" || strings.HasPrefix(path, "/events") {
		return ""
	}
	return path
}
