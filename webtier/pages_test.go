package webtier_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestChatMessageWithLineBreaksAtTheLimit: a browser submits a textarea's
// line breaks as CRLF, while its maxlength (2000) counts each as one
// character. A message the compose box accepted, 1000 lines of one letter
// (1999 characters), is sent, not refused as too long.
func TestChatMessageWithLineBreaksAtTheLimit(t *testing.T) {
	s := startSite(t)
	alice := s.alice()
	conv := alice.post("/chat", url.Values{"username": {"bob"}}).Location
	lines := make([]string, 1000)
	for i := range lines {
		lines[i] = "x"
	}
	body := strings.Join(lines, "\r\n")
	p := alice.post(conv+"/messages", url.Values{"body": {body}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("message of 1999 characters with line breaks: %d %s", p.Status, fieldError(p.Body))
	}
	page := s.bob().get(conv)
	mustNotContain(t, page, "\r")
}

// fieldError returns the first form field's error message of a page.
func fieldError(body string) string {
	_, after, ok := strings.Cut(body, `class="field-error"`)
	if !ok {
		return snippet(body)
	}
	_, msg, _ := strings.Cut(after, ">")
	msg, _, _ = strings.Cut(msg, "<")
	return msg
}

// TestSignOutEverywhereDuringOutageSaysSo: "Sign out on all devices" while
// the bank does not answer has ended no session. The customer (who may be
// locking out a thief) is told so and stays signed in here to try again,
// rather than being shown "You have signed out" with every other device
// still signed in and no cookie left to retry with.
func TestSignOutEverywhereDuringOutageSaysSo(t *testing.T) {
	s := startSite(t)
	phone, laptop := s.alice(), s.alice()
	s.app.Stop()
	p := laptop.post("/signout", url.Values{"everywhere": {"1"}})
	if p.Status != http.StatusServiceUnavailable {
		t.Fatalf("sign out everywhere in an outage: %d %q, want 503", p.Status, p.Location)
	}
	mustNotContain(t, p, "You have signed out")
	for _, c := range p.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "bankwire_session=") {
			t.Errorf("the session cookie was cleared: %q", c)
		}
	}

	s.app.Restart()
	// Pressing it again once the bank is back ends every session. Bounded
	// wait: the client reconnects on its own.
	for i := 0; i < 50; i++ {
		if p = laptop.post("/signout", url.Values{"everywhere": {"1"}}); p.Status != http.StatusServiceUnavailable {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if p.Status != http.StatusSeeOther || p.Location != "/signin" {
		t.Fatalf("sign out everywhere after the outage: %d %q", p.Status, p.Location)
	}
	if p := phone.get("/accounts"); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/signin") {
		t.Errorf("the other device after sign out everywhere: %d %q", p.Status, p.Location)
	}
}
