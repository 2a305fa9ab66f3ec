package webtier

import (
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"bankwire/proto/limits"
	"bankwire/proto/wire"
)

// Generous front-door bounds: the app tier applies the real policy, these
// only keep absurd input from travelling further.
const (
	maxUsernameLen    = limits.MaxUsernameLen
	maxDisplayNameLen = limits.MaxDisplayNameLen
	maxPasswordBytes  = 1024
	maxUserAgentLen   = 256
)

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	if sessionFrom(r.Context()) != nil {
		http.Redirect(w, r, "/accounts", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

type signInData struct {
	Form        *form
	Next        string
	Demo        bool
	MinPassword int
	MaxPassword int
}

func (s *Server) signInData(r *http.Request, f *form, next string) signInData {
	d := signInData{Form: f, Next: next, MinPassword: 8, MaxPassword: 64}
	if info, ok := s.appInfo(r); ok {
		d.Demo = info.DemoData
		if info.MinPassword > 0 {
			d.MinPassword = info.MinPassword
		}
		if info.MaxPassword > 0 {
			d.MaxPassword = info.MaxPassword
		}
	}
	return d
}

func (s *Server) signInForm(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if sessionFrom(r.Context()) != nil {
		if next == "" {
			next = "/accounts"
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "signin", view{Title: "Sign in", Nav: "signin", Data: s.signInData(r, newForm(), next)})
}

func (s *Server) clientOf(r *http.Request) wire.ClientInfo {
	ua := r.UserAgent()
	if len(ua) > maxUserAgentLen || !utf8.ValidString(ua) {
		ua = ""
	}
	return wire.ClientInfo{IP: clientIPOf(r), UserAgent: ua}
}

func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	f := newForm()
	username, ok1 := field(r, "username")
	password := r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	f.Values["username"] = username
	switch {
	case !ok1 || len(username) > maxUsernameLen:
		f.fail("username", "Enter a valid username.")
	case username == "":
		f.fail("username", "Enter your username.")
	}
	switch {
	case password == "":
		f.fail("password", "Enter your password.")
	case len(password) > maxPasswordBytes:
		f.fail("password", "That password is too long.")
	}
	if f.Invalid() {
		s.render(w, r, http.StatusUnprocessableEntity, "signin", view{Title: "Sign in", Nav: "signin", Data: s.signInData(r, f, next)})
		return
	}

	resp, err := call(s, r, wire.SignIn, wire.SignInRequest{Username: username, Password: password, ClientInfo: s.clientOf(r)})
	if err != nil {
		status := http.StatusUnprocessableEntity
		switch wire.ErrorCode(err) {
		case wire.Unauthenticated:
			// One message for unknown user and wrong password, as the app tier.
			f.Error = "The username or password is incorrect."
			status = http.StatusUnauthorized
		case wire.ResourceExhausted, wire.PermissionDenied:
			f.userError(err, nil)
			status = http.StatusTooManyRequests
		default:
			if !f.userError(err, map[string]string{"username": "username", "password": "password"}) {
				s.fail(w, r, err)
				return
			}
		}
		s.render(w, r, status, "signin", view{Title: "Sign in", Nav: "signin", Data: s.signInData(r, f, next)})
		return
	}
	s.startSession(w, r, resp)
	if next == "" {
		next = "/accounts"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// startSession replaces any old session with the new one: the old token is
// revoked (best effort) so a fixed or stolen pre-sign-in cookie is useless.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, resp wire.SignInResponse) {
	if old := s.sessionToken(r); old != "" && old != resp.Token {
		s.sessions.drop(old)
		_, _ = call(s, r, wire.SignOut, wire.SessionRequest{Session: old})
	}
	s.setSessionCookie(w, resp.Token)
	s.sessions.put(resp.Token, resp.Customer, time.Now())
}

type signUpData struct {
	Form        *form
	MinPassword int
	MaxPassword int
}

func (s *Server) signUpData(r *http.Request, f *form) signUpData {
	d := s.signInData(r, f, "")
	return signUpData{Form: f, MinPassword: d.MinPassword, MaxPassword: d.MaxPassword}
}

func (s *Server) signUpForm(w http.ResponseWriter, r *http.Request) {
	if sessionFrom(r.Context()) != nil {
		http.Redirect(w, r, "/accounts", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "signup", view{Title: "Open an account", Nav: "signup", Data: s.signUpData(r, newForm())})
}

func (s *Server) signUp(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	f := newForm()
	username, ok1 := field(r, "username")
	display, ok2 := field(r, "display_name")
	password := r.PostFormValue("password")
	confirm := r.PostFormValue("password_confirm")
	f.Values["username"], f.Values["display_name"] = username, display
	d := s.signUpData(r, f)
	switch {
	case !ok1 || len(username) > maxUsernameLen:
		f.fail("username", "Use 3 to 32 letters, digits, '.', '_' or '-'.")
	case username == "":
		f.fail("username", "Choose a username.")
	}
	switch {
	case !ok2 || utf8.RuneCountInString(display) > maxDisplayNameLen:
		f.fail("display_name", "Enter your name without special characters (at most "+strconv.Itoa(maxDisplayNameLen)+" characters).")
	case display == "":
		f.fail("display_name", "Enter your name.")
	}
	switch {
	case password == "":
		f.fail("password", "Choose a password.")
	case utf8.RuneCountInString(password) < d.MinPassword:
		f.fail("password", "Use at least "+strconv.Itoa(d.MinPassword)+" characters (15 or more is better).")
	case len(password) > maxPasswordBytes || utf8.RuneCountInString(password) > d.MaxPassword:
		f.fail("password", "Use at most "+strconv.Itoa(d.MaxPassword)+" characters.")
	case confirm != password:
		f.fail("password_confirm", "The two passwords do not match.")
	}
	if f.Invalid() {
		s.render(w, r, http.StatusUnprocessableEntity, "signup", view{Title: "Open an account", Nav: "signup", Data: d})
		return
	}
	resp, err := call(s, r, wire.SignUp, wire.SignUpRequest{
		Username: username, DisplayName: display, Password: password, ClientInfo: s.clientOf(r),
	})
	if err != nil {
		if !f.userError(err, map[string]string{"username": "username", "display_name": "display_name", "password": "password"}) {
			s.fail(w, r, err)
			return
		}
		status := http.StatusUnprocessableEntity
		if wire.ErrorCode(err) == wire.ResourceExhausted {
			status = http.StatusTooManyRequests
		}
		s.render(w, r, status, "signup", view{Title: "Open an account", Nav: "signup", Data: d})
		return
	}
	s.startSession(w, r, resp)
	s.setFlash(w, "welcome")
	http.Redirect(w, r, "/accounts", http.StatusSeeOther)
}

// signOut revokes the session at the app tier and forgets the cookie. With
// everywhere=1 it revokes every session of the customer; when the app tier
// cannot do that, the error page says so and the cookie stays.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	if tok := s.sessionToken(r); tok != "" {
		s.sessions.drop(tok)
		everywhere := r.PostFormValue("everywhere") == "1"
		op := wire.SignOut
		if everywhere {
			op = wire.SignOutAll
		}
		if _, err := call(s, r, op, wire.SessionRequest{Session: tok}); err != nil &&
			wire.ErrorCode(err) != wire.Unauthenticated {
			s.log.WarnContext(r.Context(), "sign out at app tier failed", "everywhere", everywhere, "err", err)
			if everywhere {
				// No session ended, on any device: the customer is told so
				// and keeps this one to press the button again.
				status := http.StatusServiceUnavailable
				if statusOf(wire.ErrorCode(err)) == http.StatusInternalServerError {
					status = http.StatusInternalServerError
				}
				s.errorPage(w, r, status, "You are still signed in on your devices: nothing was signed out. Please try again in a moment.")
				return
			}
			// The cookie still goes; the token then dies by its idle timeout.
		}
	}
	s.clearSessionCookie(w)
	s.setFlash(w, "signed_out")
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}
