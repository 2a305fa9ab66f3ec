// Package apptiertest starts a real, in-process app tier on a fresh
// PostgreSQL database for tests of the tiers above it: a real TCP listener on
// 127.0.0.1, the real protocol server, the real rules, the real store, wired
// by apptier.Run as the apptier command wires them. No mocks: what a test
// sees is what the web tier sees in production.
package apptiertest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	server []func(*proto.ServerConfig)
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
func WithServerConfig(f func(*proto.ServerConfig)) Option {
	return func(o *options) { o.server = append(o.server, f) }
}

// WithoutDemoData starts with an empty bank instead of alice and bob.
func WithoutDemoData() Option { return func(o *options) { o.demo = false } }

// WithStore serves an existing store (for several app tiers on one database).
func WithStore(st *store.Store) Option { return func(o *options) { o.store = st } }

// Server is a running in-process app tier.
type Server struct {
	Addr   string // host:port of the protocol listener
	Secret string
	Store  *store.Store
	App    *apptier.App // the App of the latest Start or Restart

	tb       testing.TB
	settings apptier.Settings
	server   func(*proto.ServerConfig)
	mu       sync.Mutex
	stop     context.CancelFunc // ends the running apptier.Run; nil when stopped
	done     chan error         // apptier.Run's result
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
// test ends. It runs apptier.Run, the app tier's production wiring, on a
// listener of its own (127.0.0.1, any port).
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
	s := &Server{Secret: Secret, Store: st, tb: tb,
		settings: apptier.Settings{Secret: Secret, ShutdownTimeout: 10 * time.Second, App: o.cfg},
		server: func(c *proto.ServerConfig) {
			for _, f := range o.server {
				f(c)
			}
		}}
	s.start("127.0.0.1:0")
	tb.Cleanup(s.Stop)
	return s
}

// start runs apptier.Run on addr and waits until it serves.
func (s *Server) start(addr string) {
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
	ctx, stop := context.WithCancel(context.Background())
	started := make(chan *apptier.App, 1)
	done := make(chan error, 1)
	go func() {
		done <- apptier.Run(ctx, s.settings, apptier.Wiring{Listener: ln, Store: s.Store,
			Metrics: prometheus.NewRegistry(), Server: s.server,
			Started: func(app *apptier.App) { started <- app }})
	}()
	select {
	case app := <-started:
		s.mu.Lock()
		s.Addr, s.App, s.stop, s.done = ln.Addr().String(), app, stop, done
		s.mu.Unlock()
	case err := <-done:
		stop()
		s.tb.Fatalf("apptier.Run: %v", err)
	}
}

// Stop drains the protocol server and closes its listener, as the app
// tier does on SIGTERM: the app tier is down until Restart. Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	stop, done := s.stop, s.done
	s.stop = nil
	s.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	if err := <-done; err != nil {
		s.tb.Logf("apptier: %v", err)
	}
}

// Restart runs the app tier again on the same address and database after
// Stop, as a restarted process would: with a new App.
func (s *Server) Restart() {
	s.tb.Helper()
	s.mu.Lock()
	running, addr := s.stop != nil, s.Addr
	s.mu.Unlock()
	if running {
		return
	}
	s.start(addr)
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
	out, err := proto.Call(ctx, c, wire.SignIn, wire.SignInRequest{Username: username, Password: password,
		ClientInfo: wire.ClientInfo{IP: "127.0.0.1", UserAgent: "apptiertest"}})
	if err != nil {
		tb.Fatalf("sign in %s: %v", username, err)
	}
	return out.Token
}
