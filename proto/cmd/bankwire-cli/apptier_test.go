package main

import (
	"regexp"
	"strings"
	"testing"

	"bankwire/apptier/apptiertest"
	"bankwire/store/storetest"
)

// TestMain stops the test database server (a container, where Docker
// answers) when the tests end.
func TestMain(m *testing.M) { storetest.Main(m) }

// TestAgainstRealAppTier runs the terminal client against the real app tier
// (real rules, real PostgreSQL, demo data), the way a person would use it.
// Only this test imports the app tier; the command itself uses only proto.
func TestAgainstRealAppTier(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL; skipped with -short")
	}
	srv := apptiertest.Start(t)
	out, code := runCLI(t, "", map[string]string{"APPTIER_ADDR": srv.Addr, "APPTIER_SECRET": srv.Secret, "BANKWIRE_PASSWORD": "alice-demo-pass", "BANKWIRE_TRACE": "1"},
		"ping", "info", "signin alice", "whoami", "accounts", "chat bob hello from the terminal", "quit")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`Connected to \S+ at ` + regexp.QuoteMeta(srv.Addr)),
		regexp.MustCompile(`pong in `),
		regexp.MustCompile(`demo data true`),
		regexp.MustCompile(`signed in as alice`),
		regexp.MustCompile(`(?m)^\S+\s+checking\s+[-\d,]+\.\d\d [A-Z]{3}$`),
		regexp.MustCompile(`(?m)^\S+\s+savings\s+[-\d,]+\.\d\d [A-Z]{3}$`),
		regexp.MustCompile(`sent to bob`),
		regexp.MustCompile(`signed out alice`),
	} {
		if !want.MatchString(out) {
			t.Errorf("output does not match %s:\n%s", want, out)
		}
	}
	// The trace shows the frames but never the password.
	if strings.Contains(out, "alice-demo-pass") || !strings.Contains(out, `"password":"[redacted]"`) {
		t.Errorf("the trace leaks or does not redact the password:\n%s", out)
	}
	t.Log(out)
	// A wrong password is the app tier's UNAUTHENTICATED, shown as such.
	out, code = runCLI(t, "", map[string]string{"APPTIER_ADDR": srv.Addr, "APPTIER_SECRET": srv.Secret}, "signin alice wrong-password-123")
	if code != 1 || !strings.Contains(out, "UNAUTHENTICATED") {
		t.Fatalf("wrong password: exit %d:\n%s", code, out)
	}
}
