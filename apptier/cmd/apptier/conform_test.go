package main

import (
	"bytes"
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"bankwire/proto/cmd/bankwire-conform/conform"
	"bankwire/store/storetest"
)

// TestConformance runs the protocol conformance checker (bankwire-conform)
// against the real apptier binary, as deployed: its own configuration,
// signal handling and drain, on a fresh PostgreSQL database with demo data.
// The drain check sends it SIGTERM. Every check must pass; only the slow
// idle timeout check is skipped.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and the apptier binary; skipped with -short")
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addr, admin := freeAddr(t), freeAddr(t)
	const secret = "conform-test-secret"
	srv, _, exited := startApptier(t, bin, append(os.Environ(),
		"APPTIER_TEST_RUN_MAIN=1",
		"APPTIER_DATABASE_URL="+storetest.URL(t),
		"APPTIER_ADDR="+addr,
		"APPTIER_ADMIN_ADDR="+admin,
		"APPTIER_SECRET="+secret,
		"APPTIER_MIGRATE=true",
		"APPTIER_DEMO_DATA=true",
	))

	var out bytes.Buffer
	cfg := conform.Config{Addr: addr, Secret: secret, User: "alice", Password: "alice-demo-pass", Peer: "bob",
		Drain: func() error { return srv.Process.Signal(syscall.SIGTERM) }}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sum, err := conform.Run(ctx, cfg, &out)
	t.Logf("bankwire-conform against the apptier binary:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed > 0 || sum.Passed < conform.Checks()-1 {
		t.Fatalf("%d passed, %d failed, %d skipped of %d checks", sum.Passed, sum.Failed, sum.Skipped, conform.Checks())
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("apptier exited with %v after the drain", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("apptier still running 30 s after SIGTERM")
	}
}
