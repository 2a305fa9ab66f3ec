package webtier_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// A next= that passes as a local path but that http.Redirect's path
// cleaning turns into "/\host" would send the browser to another site
// (browsers read a backslash as a slash) right after sign-in.
func TestSignInNextCannotBecomeAnotherHost(t *testing.T) {
	s := startSite(t)
	for _, next := range []string{`/./\evil.example`, `/x/../\evil.example/`, `/.\evil.example`, `/accounts\..\..\evil.example`} {
		b := s.browser()
		p := b.post("/signin", url.Values{"username": {"alice"}, "password": {"alice-demo-pass"}, "next": {next}})
		if p.Status != http.StatusSeeOther {
			t.Fatalf("sign in with next %q: %d", next, p.Status)
		}
		if strings.Contains(p.Location, `\`) || strings.HasPrefix(p.Location, "//") {
			t.Errorf("sign in with next %q redirects to %q", next, p.Location)
		}
		// Signed in already, the sign-in page's GET redirects at once.
		p = b.get("/signin?next=" + url.QueryEscape(next))
		if strings.Contains(p.Location, `\`) || strings.HasPrefix(p.Location, "//") {
			t.Errorf("GET /signin?next=%q redirects to %q", next, p.Location)
		}
	}
}

// Every method name a client makes up must not become its own metric
// series: each would cost memory for the life of the process and a line
// in every scrape.
func TestMadeUpMethodsShareOneMetricSeries(t *testing.T) {
	s := startSite(t)
	b := s.browser()
	for i := 0; i < 20; i++ {
		req, err := http.NewRequest("XMETHOD"+strings.Repeat("Z", i), s.baseURL+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if p := b.do(req); p.Status != http.StatusMethodNotAllowed {
			t.Errorf("made-up method: %d", p.Status)
		}
	}
	rec := httptest.NewRecorder()
	s.web.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if n := strings.Count(rec.Body.String(), "XMETHOD"); n > 0 {
		t.Errorf("made-up methods appear %d times in the metrics", n)
	}
}

// "Check whether it was made" pressed while the bank is still down, on a
// web tier whose session cache no longer knows the customer (it keeps a
// session 15 s): the confirm-again page with the same key again, not the
// generic outage page, which offers neither the key nor a way to ask later.
func TestResolveDuringOutageKeepsTheKey(t *testing.T) {
	s := startSite(t)
	alice := s.alice()
	fields := confirmed(t, alice, alice.checking(), alice.savings(), "25.00")
	key := fields.Get("key")

	s.app.Stop()
	p := alice.post("/transfers", fields)
	wantConfirmAgain(t, p, key)

	cold := startWeb(t, s.app, s.cfg)
	other := cold.browser()
	from, _ := url.Parse(s.baseURL)
	to, _ := url.Parse(cold.baseURL)
	other.jar.SetCookies(to, alice.jar.Cookies(from))
	wantConfirmAgain(t, other.post("/transfers/resolve", hiddenFields(t, p)), key)
}

// An EventSource that reconnects during an outage longer than the session
// cache keeps a session must be told to retry: an HTML 503 page makes it
// give up for good, and the open page never gets live updates again.
func TestEventsDuringOutageAskToRetry(t *testing.T) {
	s := startSite(t)
	alice := s.alice()
	s.app.Stop()

	cold := startWeb(t, s.app, s.cfg)
	other := cold.browser()
	from, _ := url.Parse(s.baseURL)
	to, _ := url.Parse(cold.baseURL)
	other.jar.SetCookies(to, alice.jar.Cookies(from))
	p := other.get("/events")
	if p.Status != http.StatusOK || !strings.HasPrefix(p.Header.Get("Content-Type"), "text/event-stream") ||
		!strings.Contains(p.Body, "retry:") {
		t.Errorf("/events in an outage: %d %q %.200q; want 200, an event stream that says retry", p.Status,
			p.Header.Get("Content-Type"), p.Body)
	}
}
