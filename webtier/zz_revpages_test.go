package webtier_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
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
