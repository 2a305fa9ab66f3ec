package webtier_test

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"bankwire/webtier"
)

// TestUsageDoesNotShowSecret: the usage text that -h and every mistyped
// flag print (to stderr, so into the container log) must not carry the
// shared protocol secret taken from the environment.
func TestUsageDoesNotShowSecret(t *testing.T) {
	const secret = "s3cret-from-the-environment"
	env := func(k string) string {
		if k == "APPTIER_SECRET" || k == "WEBTIER_APPTIER_SECRET" {
			return secret
		}
		return ""
	}
	for _, args := range [][]string{{"-h"}, {"-no-such-flag"}} {
		out := captureStderr(t, func() { _, _ = webtier.LoadConfig(args, env) })
		if !strings.Contains(out, "-apptier-secret") {
			t.Fatalf("%v: no usage text captured: %q", args, out)
		}
		if strings.Contains(out, secret) {
			t.Errorf("%v: usage shows the secret:\n%s", args, out)
		}
	}
	// The flag still sets the secret.
	cfg, err := webtier.LoadConfig([]string{"-apptier-secret", "from-flag"}, env)
	if err != nil || cfg.AppTierSecret != "from-flag" {
		t.Fatalf("-apptier-secret from-flag gives %q (%v)", cfg.AppTierSecret, err)
	}
	cfg, err = webtier.LoadConfig(nil, env)
	if err != nil || cfg.AppTierSecret != secret {
		t.Fatalf("secret from the environment: %q (%v)", cfg.AppTierSecret, err)
	}
}

// captureStderr returns what f writes to os.Stderr.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	done := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		_, _ = io.Copy(&b, r)
		done <- b.String()
	}()
	func() {
		defer func() { os.Stderr = saved }()
		f()
	}()
	w.Close()
	out := <-done
	r.Close()
	return out
}
