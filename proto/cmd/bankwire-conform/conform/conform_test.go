package conform

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"bankwire/apptier/apptiertest"
	"bankwire/store/storetest"
)

// TestMain stops the test database server when the tests end.
func TestMain(m *testing.M) { storetest.Main(m) }

// TestConformanceOfTheAppTier runs every check against the real app tier
// (real rules, real PostgreSQL, demo data), drain included: all must pass.
func TestConformanceOfTheAppTier(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL; skipped with -short")
	}
	srv := apptiertest.Start(t)
	var out bytes.Buffer
	cfg := Config{Addr: srv.Addr, Secret: srv.Secret, User: "alice", Password: "alice-demo-pass", Peer: "bob",
		Drain: func() error { go srv.Stop(); return nil }}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sum, err := Run(ctx, cfg, &out)
	t.Logf("\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed > 0 {
		t.Fatalf("%d checks failed", sum.Failed)
	}
	// Every check ran: only the slow one (idle timeout) may be skipped.
	if sum.Skipped > 1 || sum.Passed < len(checks())-1 {
		t.Fatalf("%d passed, %d skipped of %d checks", sum.Passed, sum.Skipped, len(checks()))
	}
	if !regexp.MustCompile(`(?m)^PASS  §7\.3 +drain`).MatchString(out.String()) {
		t.Fatal("the drain check did not pass")
	}
}

// TestCheckFailsOnANonConformingServer: a server that lets any secret in is
// caught, with the section number in the report line.
func TestCheckFailsOnANonConformingServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				_, _ = nc.Write(encode(tHello, 0, 0, []byte(`{"versions":[1],"server":"lax","max_payload":1048576,"max_in_flight":128,"idle_timeout_ms":60000,"handshake_timeout_ms":5000}`)))
				buf := make([]byte, 4096)
				if _, err := nc.Read(buf); err != nil {
					return
				}
				_, _ = nc.Write(encode(tReady, 0, 0, []byte(`{"version":1,"conn_id":"c1"}`)))
				_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, _ = nc.Read(buf)
			}()
		}
	}()
	var out bytes.Buffer
	k := &checker{cfg: Config{Addr: ln.Addr().String(), Secret: "s"}, out: &out}
	k.run(check{"3", "a wrong secret gets FATAL BAD_SECRET, the last frame", checkBadSecret})
	if k.sum.Failed != 1 || !strings.HasPrefix(out.String(), "FAIL  §3    a wrong secret") || !strings.Contains(out.String(), "READY") {
		t.Fatalf("report %q, want one FAIL naming READY", out.String())
	}
}
