//go:build e2e

package webtier_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestCompose checks the running compose stack end to end with a real
// browser: alice signs in, pays bob, and sees the payment in her history.
// CI runs it after `docker compose up -d --build`:
//
//	BANKWIRE_E2E_URL=http://localhost:8080 go test -tags e2e -run TestCompose ./webtier/...
func TestCompose(t *testing.T) {
	base := strings.TrimRight(os.Getenv("BANKWIRE_E2E_URL"), "/")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("BANKWIRE_E2E_URL is not set (e.g. http://localhost:8080)")
		}
		t.Skip("set BANKWIRE_E2E_URL (e.g. http://localhost:8080) to test a running stack")
	}
	waitReady(t, base)
	c := startChrome(t)

	bob := c.newTab("bob")
	bob.signIn(base, "bob", "bob-demo-pass")
	bobChk := bob.checkingNumber()

	alice := c.newTab("alice")
	alice.signIn(base, "alice", "alice-demo-pass")
	aliceChk := alice.checkingNumber()
	memo := fmt.Sprintf("e2e %d", time.Now().UnixNano())
	alice.transfer(base, bobChk, "1.23", memo)

	alice.open(base + "/accounts/" + aliceChk)
	if history := alice.text("table.history"); !strings.Contains(history, memo) || !strings.Contains(history, "1.23") {
		t.Errorf("alice's history lacks the transfer %q:\n%s", memo, history)
	}
	alice.shoot("compose-history")
}

// waitReady waits (bounded) for the stack's web tier to report ready.
func waitReady(t *testing.T, base string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/readyz not ready within 90s: %v", base, err)
		}
		time.Sleep(time.Second)
	}
}
