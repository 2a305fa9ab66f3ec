package webtier_test

import (
	"net/http"
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
