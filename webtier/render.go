package webtier

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"bankwire/proto/wire"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// pages holds one parsed template set per page (each page file plus the
// shared layout), and the embedded static assets with their fingerprints.
type pages struct {
	byName map[string]*template.Template
	assets map[string]asset
}

type asset struct {
	body        []byte
	contentType string
	hash        string
}

func loadPages() (*pages, error) {
	p := &pages{byName: map[string]*template.Template{}, assets: map[string]asset{}}
	err := fs.WalkDir(staticFiles, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := staticFiles.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = "application/octet-stream"
		}
		p.assets[strings.TrimPrefix(name, "static/")] = asset{body: body, contentType: ct, hash: hex.EncodeToString(sum[:6])}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load static assets: %w", err)
	}

	funcs := template.FuncMap{
		"money": FormatMoney,
		"date":  func(t time.Time) string { return t.UTC().Format("2 Jan 2006") },
		"datetime": func(t time.Time) string {
			return t.UTC().Format("2 Jan 2006, 15:04 UTC")
		},
		"isoTime": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"clock":   func(t time.Time) string { return t.UTC().Format("15:04") },
		"asset": func(name string) (string, error) {
			a, ok := p.assets[name]
			if !ok {
				return "", fmt.Errorf("no asset %q", name)
			}
			return "/static/" + name + "?v=" + a.hash, nil
		},
		"kindName": kindName,
		"acct":     displayNumber,
		"negative": func(n int64) bool { return n < 0 },
		"initial": func(s string) string {
			for _, r := range s {
				return strings.ToUpper(string(r))
			}
			return "?"
		},
	}
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		base := path.Base(name)
		if base == "layout.html" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", name)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		p.byName[strings.TrimSuffix(base, ".html")] = t
	}
	return p, nil
}

func kindName(kind string) string {
	switch kind {
	case "checking":
		return "Checking"
	case "savings":
		return "Savings"
	}
	if kind == "" {
		return "Account"
	}
	return strings.ToUpper(kind[:1]) + kind[1:]
}

// displayNumber groups a twelve-digit account number in fours, as printed
// on a bank card: "1234 5678 9012". Anything else is shown as it is.
func displayNumber(n string) string {
	if len(n) != 12 || !allDigits(n) {
		return n
	}
	return n[0:4] + " " + n[4:8] + " " + n[8:12]
}

// view is what every page template gets: the layout's needs plus the page's
// own Data.
type view struct {
	Title     string
	Nav       string // which navigation item is current
	Customer  *wire.Customer
	FlashKind string
	Flash     string
	Status    int
	Live      bool // open the live-update stream (signed-in pages)
	Data      any
}

// render writes a full page. It renders into a buffer first, so a template
// failure becomes the 500 page instead of half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	t, ok := s.pages.byName[name]
	if !ok {
		s.log.ErrorContext(r.Context(), "missing template", "template", name)
		s.plainError(w, http.StatusInternalServerError)
		return
	}
	if sess := sessionFrom(r.Context()); sess != nil {
		// The customer's name is shown only from a session the app tier
		// accepted during this request (see the session cache).
		switch err := s.confirmSession(r, sess); {
		case err == nil:
			c := sess.Customer
			v.Customer = &c
			v.Live = true
		case wire.ErrorCode(err) == wire.Unauthenticated && name != "error":
			s.sessionEnded(w, r)
			return
		case wire.ErrorCode(err) == wire.Unauthenticated:
			s.clearSessionCookie(w)
		default:
			// The app tier cannot say: the page (often the outage page or
			// the confirm-again page of a transfer) is shown without the
			// name rather than not at all, and without another call.
		}
	}
	v.FlashKind, v.Flash = s.takeFlash(w, r)
	v.Status = status
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		s.log.ErrorContext(r.Context(), "render page", "template", name, "err", err,
			"request_id", middleware.GetReqID(r.Context()))
		if name != "error" {
			s.errorPage(w, r, http.StatusInternalServerError, "")
			return
		}
		s.plainError(w, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Pages are private: a shared cache must not keep them and the back
	// button after sign-out must not show them from memory.
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) plainError(w http.ResponseWriter, status int) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, http.StatusText(status), status)
}

type errorText struct{ title, message string }

// errorTexts are the only words an error page ever says (besides a
// user-safe app-tier message passed in explicitly): never internals.
var errorTexts = map[int]errorText{
	http.StatusBadRequest:            {"That request didn’t look right", "Please go back, check what you entered and try again."},
	http.StatusForbidden:             {"That action isn’t allowed", "The request was refused. If you followed a link or form from another website, go to bankwire directly and try again."},
	http.StatusNotFound:              {"We couldn’t find that page", "The page or account you asked for does not exist, or is not yours to see."},
	http.StatusMethodNotAllowed:      {"That action isn’t allowed here", "Please use the buttons and links on the page."},
	http.StatusConflict:              {"That could not be done", "Please check the details and try again."},
	http.StatusRequestEntityTooLarge: {"That was too much to send", "Please shorten what you entered and try again."},
	http.StatusTooManyRequests:       {"Too many attempts", "For your security we’ve paused this for a moment. Please wait a minute and try again."},
	http.StatusInternalServerError:   {"Something went wrong on our side", "We’re sorry. Please try again in a moment; your money is safe."},
	http.StatusServiceUnavailable:    {"The bank is briefly unavailable", "We can’t reach our banking systems right now. Please try again in a moment; this page will work again on its own."},
}

type errorData struct {
	Title   string
	Message string
	Detail  string
}

// errorPage renders the error page for status inside the normal layout.
// detail, when not empty, is a user-safe explanation (an app-tier message).
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, detail string) {
	t, ok := errorTexts[status]
	if !ok {
		t = errorTexts[http.StatusInternalServerError]
		if status < 400 || status > 599 {
			status = http.StatusInternalServerError
		}
	}
	switch status {
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "60")
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "5")
	}
	s.render(w, r, status, "error", view{
		Title: t.title,
		Data:  errorData{Title: t.title, Message: t.message, Detail: detail},
	})
}

func (s *Server) tooManyRequests(w http.ResponseWriter, r *http.Request) {
	s.errorPage(w, r, http.StatusTooManyRequests, "")
}

// errBrieflyUnavailable replaces an answer that says the link to the app
// tier is over its limit: for the customer that is an outage (503 "briefly
// unavailable"), not something they did.
var errBrieflyUnavailable = &wire.Error{Code: wire.Unavailable, Message: "The bank is briefly unavailable."}

// overloaded reports whether err is the protocol's own refusal of a request
// over a connection's in-flight limit (PROTOCOL.md §4.1) rather than a rule
// of the bank. Only sign-in, sign-up, chat.open and chat.send answer RESOURCE_EXHAUSTED
// by rule, and their answers are sentences for the customer (capitalized);
// the protocol's are lower-case technical notes that no page may show.
func overloaded(op wire.Op, err error) bool {
	var pe *wire.Error
	if !errors.As(err, &pe) || pe.Code != wire.ResourceExhausted {
		return false
	}
	switch op {
	case wire.OpSignIn, wire.OpSignUp, wire.OpChatOpen, wire.OpChatSend:
		r, _ := utf8.DecodeRuneInString(pe.Message)
		return !unicode.IsUpper(r)
	}
	return true
}

// statusOf is the one table from app-tier error codes to HTTP statuses.
func statusOf(code wire.Code) int {
	switch code {
	case wire.InvalidArgument, wire.FailedPrecondition:
		return http.StatusBadRequest
	case wire.NotFound:
		return http.StatusNotFound
	case wire.AlreadyExists:
		return http.StatusConflict
	case wire.PermissionDenied:
		return http.StatusForbidden
	case wire.ResourceExhausted:
		return http.StatusTooManyRequests
	case wire.Unavailable, wire.DeadlineExceeded, wire.Canceled, wire.Aborted:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// fail answers a request whose app-tier call failed.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := wire.ErrorCode(err)
	if code == wire.Unauthenticated {
		s.sessionEnded(w, r)
		return
	}
	status := statusOf(code)
	level := slog.LevelWarn
	if status >= 500 {
		level = slog.LevelError
	}
	s.log.Log(r.Context(), level, "app tier call failed", "request_id", middleware.GetReqID(r.Context()),
		"code", code.String(), "err", err)
	detail := ""
	var pe *wire.Error
	if status == http.StatusBadRequest || status == http.StatusConflict {
		if errors.As(err, &pe) {
			detail = pe.Message
		}
	}
	s.errorPage(w, r, status, detail)
}

// static serves the embedded assets. A request carrying the current
// fingerprint may be cached for a year; anything else revalidates.
func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "*")
	a, ok := s.pages.assets[name]
	if !ok {
		s.errorPage(w, r, http.StatusNotFound, "")
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	etag := `"` + a.hash + `"`
	h.Set("ETag", etag)
	if r.URL.Query().Get("v") == a.hash {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(a.body)
}

func (s *Server) favicon(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/static/favicon.svg", http.StatusMovedPermanently)
}
