package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"bankwire/proto"
	"bankwire/proto/wire"
	"bankwire/store/storetest"
)

// TestMain doubles as the apptier binary: when the test re-executes itself
// with APPTIER_TEST_RUN_MAIN=1 it runs main, so the binary test needs no
// separate build.
func TestMain(m *testing.M) {
	if os.Getenv("APPTIER_TEST_RUN_MAIN") == "1" {
		os.Args = append([]string{"apptier"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	storetest.Main(m)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestBinary runs the real apptier binary the way compose does: against a
// fresh PostgreSQL database, migrating and loading demo data on start; then
// checks its healthcheck subcommand, its metrics, a sign-in through the
// protocol, and a clean drain on SIGTERM.
func TestBinary(t *testing.T) {
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addr, admin := freeAddr(t), freeAddr(t)
	dbURL := storetest.URL(t)
	env := append(os.Environ(),
		"APPTIER_TEST_RUN_MAIN=1",
		"APPTIER_DATABASE_URL="+dbURL,
		"APPTIER_ADDR="+addr,
		"APPTIER_ADMIN_ADDR="+admin,
		"APPTIER_SECRET=binary-test-secret",
		"APPTIER_MIGRATE=true",
		"APPTIER_DEMO_DATA=true",
	)
	// The migrate subcommand works on its own (and is idempotent).
	mig := exec.Command(bin, "migrate")
	mig.Env = env
	if b, err := mig.CombinedOutput(); err != nil {
		t.Fatalf("apptier migrate: %v\n%s", err, b)
	}

	srv, logs, exited := startApptier(t, bin, env)

	c, err := proto.NewClient(proto.ClientConfig{Addrs: []string{addr}, Secret: "binary-test-secret", Name: "binary-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var info wire.InfoResponse
	if err := c.Call(ctx, wire.OpInfo, wire.InfoRequest{}, &info); err != nil || !info.DemoData {
		t.Fatalf("info: %+v, %v", info, err)
	}
	var in wire.SignInResponse
	if err := c.Call(ctx, wire.OpSignIn, wire.SignInRequest{Username: "alice", Password: "alice-demo-pass"}, &in); err != nil {
		t.Fatalf("sign in as alice: %v", err)
	}
	// A wrong secret is refused at the handshake.
	bad, _ := proto.NewClient(proto.ClientConfig{Addrs: []string{addr}, Secret: "wrong", Name: "binary-test"})
	if err := bad.Ping(ctx); err == nil {
		t.Fatal("a client with the wrong secret was served")
	}
	bad.Close()

	// The store logs through the app tier's JSON logger: cut the database
	// sessions, and the store's LISTEN loop reports the lost connection.
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	db.Close(ctx)
	for !strings.Contains(logs.String(), "store: listen connection lost") {
		if ctx.Err() != nil {
			t.Fatalf("no store log line after the database sessions were cut:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`bankwire_apptier_requests_total{code="OK",op="signin"} 1`, "bankwire_apptier_request_duration_seconds_bucket", "bankwire_apptier_db_pool_total_conns"} {
		if !strings.Contains(body.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("apptier exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("apptier did not exit within 30 s of SIGTERM")
	}
	for _, want := range []string{"migrations applied", "demo data ready", "apptier listening", "draining"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q", want)
		}
	}
	// Connections are logged, except the healthcheck's (DEBUG): compose runs
	// one every 5 s.
	opened := map[string]int{}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "connection opened") {
			for _, who := range []string{"binary-test", "bankwire-healthcheck"} {
				if strings.Contains(line, who) {
					opened[who]++
				}
			}
		}
	}
	if opened["binary-test"] == 0 || opened["bankwire-healthcheck"] != 0 {
		t.Errorf("'connection opened' lines by client: %v; want binary-test's and no healthcheck's", opened)
	}
	hc := exec.Command(bin, "healthcheck")
	hc.Env = env
	if hc.Run() == nil {
		t.Fatal("healthcheck passes after the server stopped")
	}
	// Every line, the store's included, is a JSON record with a level.
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec struct{ Level string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Level == "" {
			t.Errorf("log line is not a JSON record with a level: %q", line)
		}
	}
}

// syncBuffer is a bytes.Buffer that the child's output and the test can
// use at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestBadSettingsStopTheStart: a malformed setting is not ignored: the
// binary exits with status 2 before touching the database, naming every bad
// setting at once.
func TestBadSettingsStopTheStart(t *testing.T) {
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "APPTIER_TEST_RUN_MAIN=1", "APPTIER_SESSION_IDLE=15", "APPTIER_LOCK_AFTER=three",
		"APPTIER_DATABASE_URL=postgres://nobody@127.0.0.1:1/none")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("apptier with bad settings did not exit within 30 s")
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2\n%s", err, out.String())
	}
	for _, want := range []string{`APPTIER_SESSION_IDLE="15": not a duration`, `APPTIER_LOCK_AFTER="three": not an integer`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "listening") || strings.Contains(out.String(), "database") {
		t.Errorf("the server went on starting:\n%s", out.String())
	}
}

// startApptier runs this test binary as the apptier (APPTIER_TEST_RUN_MAIN in
// env) with env, collects its output in logs (printed if the test fails),
// kills it when the test ends, and returns once its healthcheck subcommand
// passes, failing the test after 60 s. exited receives how it ended.
func startApptier(t *testing.T, bin string, env []string) (srv *exec.Cmd, logs *syncBuffer, exited <-chan error) {
	t.Helper()
	logs = &syncBuffer{}
	srv = exec.Command(bin)
	srv.Env = env
	srv.Stdout, srv.Stderr = logs, logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		if t.Failed() {
			t.Logf("apptier logs:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		hc := exec.Command(bin, "healthcheck")
		hc.Env = env
		if hc.Run() == nil {
			return srv, logs, done
		}
		if time.Now().After(deadline) {
			t.Fatal("apptier did not become healthy in 60 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
