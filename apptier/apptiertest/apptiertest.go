// Package apptiertest starts a real, in-process app tier on a fresh
// PostgreSQL database for tests of the tiers above it: a real TCP listener on
// 127.0.0.1, the real protocol server, the real rules, the real store. No
// mocks: what a test sees is what the web tier sees in production.
package apptiertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"bankwire/apptier"
	"bankwire/proto"
	"bankwire/proto/wire"
	"bankwire/store"
	"bankwire/store/storetest"
)

// Secret is the shared secret of test servers.
const Secret = "apptiertest-secret"

// EnvNow names the variable that pins the tests' present: an RFC 3339
// instant (for example 2026-12-01T09:00:00Z) that Now and, through it, every
// app tier Start makes, demo data included, treat as the time the test binary
// started. CI runs the date-sensitive suites with it set to awkward instants
// (the 1st of a month after the demo rent is booked, a few seconds before
// New Year) so that no test passes only on quiet days.
const EnvNow = "BANKWIRE_TEST_NOW"

// pinned reads EnvNow once: the instant it names and the wall-clock moment
// it was read, so that the pinned clock runs on from there.
var pinned = sync.OnceValues(func() (at, readAt time.Time) {
	readAt = time.Now()
	v := os.Getenv(EnvNow)
	if v == "" {
		return readAt, readAt
	}
	at, err := time.Parse(time.RFC3339, v)
	if err != nil {
		panic(fmt.Sprintf("apptiertest: %s=%q is not an RFC 3339 time: %v", EnvNow, v, err))
	}
	return at, readAt
})

// Now is the tests' clock: the wall clock, or, when BANKWIRE_TEST_NOW is
// set, that instant plus the time elapsed since it was first read. Tests
// that need a clock of their own start it here: NewClock(Now()).
func Now() time.Time {
	at, readAt := pinned()
	return at.Add(time.Since(readAt))
}

// Clock is a settable clock for tests of time-based rules (session expiry,
// daily limits). Its zero value is not usable; make one with NewClock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock stopped at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// AdvanceToNextDay moves the clock to one minute past the next UTC midnight
// (the bank's day boundary). The demo data books bills, rent and pay up to
// the moment it is loaded, so a test that counts a day's transfers (the
// daily limit) starts on the next day, which the demo history leaves empty,
// and sees only its own transfers whatever the date it runs on.
func (c *Clock) AdvanceToNextDay() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.UTC().Truncate(24 * time.Hour).Add(24*time.Hour + time.Minute)
}

// Option changes how Start configures the app tier.
type Option func(*options)

type options struct {
	cfg    apptier.Config
	server proto.ServerConfig
	demo   bool
	store  *store.Store
}

// WithClock makes the app tier read time from now (by default it reads Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.cfg.Now = now } }

// WithIdleTimeout sets the session idle timeout.
func WithIdleTimeout(d time.Duration) Option { return func(o *options) { o.cfg.IdleTimeout = d } }

// WithDailyLimit sets the daily outgoing transfer limit in minor units.
func WithDailyLimit(minor int64) Option { return func(o *options) { o.cfg.DailyLimit = minor } }

// WithConfig lets a test change any app-tier setting.
func WithConfig(f func(*apptier.Config)) Option { return func(o *options) { f(&o.cfg) } }

// WithServerConfig lets a test change protocol-server settings.
func WithServerConfig(f func(*proto.ServerConfig)) Option { return func(o *options) { f(&o.server) } }

// WithoutDemoData starts with an empty bank instead of alice and bob.
func WithoutDemoData() Option { return func(o *options) { o.demo = false } }

// WithStore serves an existing store (for several app tiers on one database).
func WithStore(st *store.Store) Option { return func(o *options) { o.store = st } }

// Server is a running in-process app tier.
type Server struct {
	Addr   string // host:port of the protocol listener
	Secret string
	Store  *store.Store
	App    *apptier.App

	tb        testing.TB
	srvCfg    proto.ServerConfig
	mu        sync.Mutex
	srv       *proto.Server
	serveDone chan error
	cancelRun context.CancelFunc
	runDone   chan struct{}
}

// Logger returns a logger for test servers: silent unless BANKWIRE_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("BANKWIRE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Start starts an app tier with demo data (alice / alice-demo-pass and
// bob / bob-demo-pass) on a fresh migrated database, and stops it when the
// test ends.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	o := options{demo: true}
	o.cfg.Logger = Logger()
	o.cfg.Now = Now
	for _, opt := range opts {
		opt(&o)
	}
	o.cfg.DemoData = o.demo
	st := o.store
	if st == nil {
		st = storetest.NewStore(tb)
	}
	app, err := apptier.New(o.cfg, st)
	if err != nil {
		tb.Fatalf("apptier.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if o.demo {
		if err := app.SeedDemo(ctx); err != nil {
			tb.Fatalf("seed demo data: %v", err)
		}
	}
	sc := o.server
	sc.Name = "bankwire-apptier/test"
	sc.Secret = Secret
	if sc.Logger == nil {
		sc.Logger = o.cfg.Logger
	}
	s := &Server{Secret: Secret, Store: st, App: app, tb: tb, srvCfg: sc}
	runCtx, cancelRun := context.WithCancel(context.Background())
	s.cancelRun = cancelRun
	s.runDone = make(chan struct{})
	go func() {
		defer close(s.runDone)
		if err := app.Run(runCtx); err != nil {
			tb.Logf("apptier notification listener: %v", err)
		}
	}()
	s.listen("127.0.0.1:0")
	tb.Cleanup(func() {
		s.Stop()
		cancelRun()
		<-s.runDone
	})
	return s
}

func (s *Server) listen(addr string) {
	s.tb.Helper()
	var ln net.Listener
	var err error
	// The port of a stopped server can take a moment to be free again.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.tb.Fatalf("listen %s: %v", addr, err)
	}
	srv := proto.NewServer(s.srvCfg, s.App.Mux())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	s.mu.Lock()
	s.Addr, s.srv, s.serveDone = ln.Addr().String(), srv, done
	s.mu.Unlock()
}

// Stop drains the protocol server and closes its listener: the app tier is
// down until Restart. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, done := s.srv, s.serveDone
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		s.tb.Logf("apptier shutdown: %v", err)
		_ = srv.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, proto.ErrServerClosed) {
		s.tb.Logf("apptier serve: %v", err)
	}
}

// Restart serves again on the same address after Stop.
func (s *Server) Restart() {
	s.tb.Helper()
	s.mu.Lock()
	running, addr := s.srv != nil, s.Addr
	s.mu.Unlock()
	if running {
		return
	}
	s.listen(addr)
}

// Client returns a protocol client connected to this server, closed when the
// test ends.
func (s *Server) Client(tb testing.TB) *proto.Client {
	tb.Helper()
	c, err := proto.NewClient(proto.ClientConfig{Addrs: []string{s.Addr}, Secret: s.Secret, Name: "apptiertest",
		DialTimeout: 2 * time.Second, DefaultTimeout: 10 * time.Second, Logger: Logger()})
	if err != nil {
		tb.Fatalf("proto.NewClient: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// SignIn signs in through the protocol and returns the session token.
func (s *Server) SignIn(tb testing.TB, c *proto.Client, username, password string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out wire.SignInResponse
	if err := c.Call(ctx, wire.OpSignIn, wire.SignInRequest{Username: username, Password: password,
		ClientInfo: wire.ClientInfo{IP: "127.0.0.1", UserAgent: "apptiertest"}}, &out); err != nil {
		tb.Fatalf("sign in %s: %v", username, err)
	}
	return out.Token
}
