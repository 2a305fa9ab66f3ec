// Package storetest gives tests a real PostgreSQL database: a fresh,
// migrated database per test, cloned from a template so that it costs a
// few tens of milliseconds, on one server per test binary.
//
// Where the server comes from, in order of preference:
//
//  1. TEST_DATABASE_URL: an existing server where the tests may create and
//     drop databases (the URL's user needs CREATEDB);
//  2. a container from testcontainers-go's postgres module, when a Docker
//     engine answers (image: BANKWIRE_POSTGRES_IMAGE, default postgres:17;
//     with TESTCONTAINERS_RYUK_DISABLED=true, Main removes it);
//  3. a throwaway cluster from the PostgreSQL binaries on the machine
//     (PATH, else /usr/lib/postgresql/*/bin), listening on 127.0.0.1 only,
//     run as user "postgres" when the tests run as root;
//  4. none: the test is skipped with the reasons — but when CI=true it
//     fails instead, so CI cannot go green without a database.
//
// When the tests themselves run inside a container that talks to the host's
// Docker engine (/.dockerenv exists), testcontainers dials the bridge
// gateway; where published ports answer only on loopback, set the standard
// TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1.
//
// BANKWIRE_TEST_DB=url|container|local forces one way (and fails the test
// when that way does not work), so CI can run the suite once per way.
//
// Use Main from TestMain so the server is stopped when the tests end:
//
//	func TestMain(m *testing.M) { storetest.Main(m) }
//
// Without it a local cluster still dies with the test binary (parent-death
// signal) and its directory is removed by the next run, but a container
// stays until removed by hand or by Ryuk.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"bankwire/store"
)

// Environment variables the harness reads.
const (
	EnvURL   = "TEST_DATABASE_URL"
	EnvMode  = "BANKWIRE_TEST_DB"
	EnvImage = "BANKWIRE_POSTGRES_IMAGE"

	DefaultImage = "postgres:17"
)

// server is the PostgreSQL server shared by the tests of one binary.
type server struct {
	how      string        // "url", "container" or "local", for messages
	adminURL string        // connects to a maintenance database
	admin    *pgxpool.Pool // creates and drops the per-test databases
	template string        // migrated database the tests clone
	stop     func()        // stops what we started; nil for "url"
}

// The server is per test binary by design (starting PostgreSQL takes
// seconds, cloning a database milliseconds), which is why this package
// keeps it in package state. Nothing else is package state.
var shared struct {
	once sync.Once
	mu   sync.Mutex
	srv  *server
	err  error
	skip bool // err means "no database available" rather than "broken"
}

// Main runs the tests and then stops the server, removing the template
// database or the container or the local cluster. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	shutdown()
	os.Exit(code)
}

func shutdown() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	s := shared.srv
	shared.srv = nil
	if s == nil {
		return
	}
	if s.stop == nil {
		// A server we did not start: leave it as we found it.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _ = s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+s.template+" WITH (FORCE)")
		cancel()
	}
	s.admin.Close()
	if s.stop != nil {
		s.stop()
	}
}

// get returns the shared server, starting it on first use; it skips or
// fails tb when there is none.
func get(tb testing.TB) *server {
	tb.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		srv, skip, err := start(ctx)
		shared.mu.Lock()
		shared.srv, shared.skip, shared.err = srv, skip, err
		shared.mu.Unlock()
	})
	shared.mu.Lock()
	defer shared.mu.Unlock()
	switch {
	case shared.err != nil && shared.skip && os.Getenv("CI") != "true":
		tb.Skipf("storetest: no PostgreSQL available, skipping: %v", shared.err)
	case shared.err != nil:
		tb.Fatalf("storetest: no PostgreSQL: %v", shared.err)
	case shared.srv == nil:
		tb.Fatalf("storetest: the server was already shut down (storetest.Main has returned)")
	}
	return shared.srv
}

// start finds or starts a server as the package comment describes. skip
// reports that nothing was available (as opposed to a forced way failing).
func start(ctx context.Context) (srv *server, skip bool, err error) {
	mode := os.Getenv(EnvMode)
	switch mode {
	case "url":
		u := os.Getenv(EnvURL)
		if u == "" {
			return nil, false, fmt.Errorf("%s=url but %s is empty", EnvMode, EnvURL)
		}
		srv, err = fromURL(ctx, u)
		return srv, false, err
	case "container":
		srv, err = startContainer(ctx, true)
		return srv, false, err
	case "local":
		srv, err = startLocal(ctx)
		return srv, false, err
	case "":
	default:
		return nil, false, fmt.Errorf("%s=%q: want url, container or local", EnvMode, mode)
	}

	if u := os.Getenv(EnvURL); u != "" {
		srv, err = fromURL(ctx, u)
		return srv, false, err
	}
	var reasons []string
	srv, err = startContainer(ctx, false)
	if err == nil {
		return srv, false, nil
	}
	reasons = append(reasons, "container: "+err.Error())
	srv, err = startLocal(ctx)
	if err == nil {
		return srv, false, nil
	}
	reasons = append(reasons, "local: "+err.Error())
	return nil, true, fmt.Errorf("set %s, or start Docker, or install PostgreSQL (%s)", EnvURL, strings.Join(reasons, "; "))
}

// fromURL uses an existing server and prepares the template on it.
func fromURL(ctx context.Context, adminURL string) (*server, error) {
	admin, err := pgxpool.New(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", EnvURL, err)
	}
	if err := admin.Ping(ctx); err != nil {
		admin.Close()
		return nil, fmt.Errorf("connect to %s: %w", EnvURL, err)
	}
	srv := &server{how: "url", adminURL: adminURL, admin: admin}
	if err := srv.prepareTemplate(ctx); err != nil {
		admin.Close()
		return nil, err
	}
	return srv, nil
}

// prepareTemplate creates and migrates the database every test clones,
// then closes it to connections: CREATE DATABASE ... TEMPLATE refuses a
// source that anyone is connected to.
func (s *server) prepareTemplate(ctx context.Context) error {
	s.template = fmt.Sprintf("bankwire_tmpl_%d_%s", os.Getpid(), randomSuffix())
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+s.template); err != nil {
		return fmt.Errorf("create template database: %w", err)
	}
	tmplURL, err := withDatabase(s.adminURL, s.template)
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, tmplURL)
	if err != nil {
		return fmt.Errorf("connect to template database: %w", err)
	}
	err = store.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		return fmt.Errorf("migrate template database: %w", err)
	}
	if _, err := s.admin.Exec(ctx, "ALTER DATABASE "+s.template+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("close template database: %w", err)
	}
	return nil
}

// URL creates a fresh, migrated database for tb and returns its connection
// URL, for tests that start a real app tier. The database is dropped when
// tb ends (connections still open are terminated).
func URL(tb testing.TB) string {
	tb.Helper()
	return newDatabase(tb, "")
}

// newDatabase creates a database from template (the migrated template when
// empty) and returns its URL.
func newDatabase(tb testing.TB, template string) string {
	tb.Helper()
	s := get(tb)
	if template == "" {
		template = s.template
	}
	name := "bankwire_test_" + randomSuffix()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		_, err = s.admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+template)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "55006" { // object_in_use: template busy
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("storetest: create database on %s server: %v", s.how, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("storetest: drop database %s: %v", name, err)
		}
	})
	u, err := withDatabase(s.adminURL, name)
	if err != nil {
		tb.Fatalf("storetest: %v", err)
	}
	return u
}

// EmptyURL creates a fresh database with no schema at all (cloned from
// template0) and returns its URL, for testing migrations themselves. It is
// dropped when tb ends.
func EmptyURL(tb testing.TB) string {
	tb.Helper()
	return newDatabase(tb, "template0")
}

// NewDatabase returns a pool on a fresh, migrated database, made with
// store.Open (so tests run with the production pool settings) but with room
// for 32 connections and a 30 s connect timeout. Pool and database go away when tb ends.
func NewDatabase(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	u := URL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A generous connect timeout: on a loaded CI machine, a burst of new
	// connections through a container's port proxy can take seconds.
	pool, err := store.Open(ctx, withParam(withParam(u, "pool_max_conns", "32"), "connect_timeout", "30"))
	if err != nil {
		tb.Fatalf("storetest: open pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// NewStore returns a Store on a fresh, migrated database.
func NewStore(tb testing.TB) *store.Store {
	tb.Helper()
	return store.New(NewDatabase(tb))
}

// withDatabase points a postgres:// URL or a key=value DSN at database name.
func withDatabase(base, name string) (string, error) {
	if strings.Contains(base, "://") {
		u, err := url.Parse(base)
		if err != nil {
			return "", errors.New("cannot parse the database URL") // never echo it: it may hold a password
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	return base + " dbname=" + name, nil // a later key wins in a DSN
}

// withParam adds a connection parameter to a URL or DSN.
func withParam(base, key, value string) string {
	if strings.Contains(base, "://") {
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		return base + sep + url.QueryEscape(key) + "=" + url.QueryEscape(value)
	}
	return base + " " + key + "=" + value
}

func randomSuffix() string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}
