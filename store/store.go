// Package store is bankwire's only door to PostgreSQL: typed methods over a
// pgxpool for customers, sessions, accounts, transfers, payees and chat, the
// migration runner, the LISTEN loop behind push notifications and the demo
// data.
//
// Every error leaving the package is a domain error (ErrNotFound,
// ErrInsufficientFunds, *InputError, ...) wrapped with %w; no SQL or
// PostgreSQL error text escapes, so callers can map errors to protocol codes
// with errors.Is and show messages to people. Unknown database failures are
// logged with their cause and returned as ErrInternal.
//
// The money rules are enforced twice: here, to give precise errors, and in
// the schema (migrations/), so that no bug or hand-written SQL can break
// them.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"bankwire/proto/limits"
)

// DefaultCurrency is the currency of accounts opened without one.
const DefaultCurrency = "USD"

// Limits on what the store accepts. Each is also a CHECK constraint in the
// schema; they are exported so that the tiers above can validate early and
// show the same numbers to people.
const (
	MaxUsernameLen       = limits.MaxUsernameLen       // characters
	MaxDisplayNameLen    = 100                         // characters
	MaxPasswordHashLen   = 512                         // bytes of a PHC string
	MaxMemoLen           = limits.MaxMemoLen           // characters
	MaxNicknameLen       = 64                          // characters
	MaxMessageLen        = limits.MaxMessageLen        // characters
	MaxIdempotencyKeyLen = limits.MaxIdempotencyKeyLen // characters
	MaxUserAgentLen      = 512                         // characters kept; longer values are cut
	MaxClientIPLen       = 64                          // characters kept; longer values are cut
	// MaxPageSize is the most rows per History or Messages page: one more
	// than the largest page on the wire, because the app tier asks for a
	// page and one row to learn whether a next page exists.
	MaxPageSize     = limits.MaxPage + 1
	DefaultPageSize = 25  // rows when the caller asks for 0
	MaxAccounts     = 10  // accounts per customer
	MaxPayees       = 100 // payees per customer
	// MaxAmount bounds a single transfer (10 billion in major units) so that
	// no sequence of valid transfers can overflow a bigint balance.
	MaxAmount int64 = 1_000_000_000_000
)

// Sign-in outcomes recorded in SignInEvent.Outcome. RecentFailures counts
// every outcome other than OutcomeSuccess.
const (
	OutcomeSuccess     = "success"
	OutcomeBadPassword = "bad_password"
	OutcomeUnknownUser = "unknown_user"
	OutcomeLocked      = "locked"
	OutcomeThrottled   = "throttled"
)

// Store holds the connection pool; it is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	// writers bounds the transfers writing at once to fewer than the
	// pool's connections, so reads that take no lock (sessions, accounts,
	// history) always find a free connection instead of queueing behind
	// transfers that wait on each other's row locks.
	writers chan struct{}
}

// Option configures a Store.
type Option func(*Store)

// WithLogger sets where the store logs the causes of internal errors (which
// callers only ever see as ErrInternal). The default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) {
		if l != nil {
			s.log = l
		}
	}
}

// WithWriters sets how many transfers may hold a connection at once; the
// rest of the pool stays free for reads. The default is WritersFor of the
// pool's size. n < 1 means the default.
func WithWriters(n int) Option {
	return func(s *Store) {
		if n >= 1 {
			s.writers = make(chan struct{}, n)
		}
	}
}

// WritersFor is the default number of concurrent transfers for a pool of
// maxConns connections: three quarters of it, keeping at least one
// connection (and a quarter of the pool) for reads.
func WritersFor(maxConns int) int {
	return max(1, maxConns-max(1, maxConns/4))
}

// New returns a Store over pool. The caller owns the pool and closes it.
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	s := &Store{pool: pool, log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	if s.writers == nil {
		s.writers = make(chan struct{}, WritersFor(int(pool.Config().MaxConns)))
	}
	return s
}

// acquireWriter waits for a writer slot; release gives it back.
func (s *Store) acquireWriter(ctx context.Context) (release func(), err error) {
	select {
	case s.writers <- struct{}{}:
		return func() { <-s.writers }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Pool returns the pool the store uses, for callers that need to run
// migrations or health checks on it.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// DefaultMaxConns bounds the pool size Open derives from the server's
// capacity when neither the URL nor WithMaxConns sets one.
const DefaultMaxConns = 20

// OpenOption configures Open.
type OpenOption func(*openConfig)

type openConfig struct{ maxConns int }

// WithMaxConns sets the pool size (the app tier's APPTIER_DB_MAX_CONNS).
// pool_max_conns in the URL wins over it; n < 1 means derive the size.
func WithMaxConns(n int) OpenOption {
	return func(c *openConfig) { c.maxConns = n }
}

// MaxConnsFor is the pool size Open picks for a server that accepts
// available connections (max_connections minus the reserved ones): a
// quarter of them, so that four app tiers fit beside administrative
// sessions, and at most DefaultMaxConns, which keeps one app tier from
// running many more transactions at once than PostgreSQL has cores for.
// With several app tiers sharing one server, give each
// (max_connections - reserved - headroom) / N, and keep the sum near two
// to four times the server's cores: more connections only queue on locks
// and CPU inside the server instead of in the pool.
func MaxConnsFor(available int) int {
	return min(DefaultMaxConns, max(2, available/4))
}

// ErrReadOnly says the database answers but refuses writes: a replica, for
// example an old primary during a failover.
var ErrReadOnly = errors.New("database is read-only")

// CheckWritable says whether the store can write now: nil when a pooled
// connection reaches a PostgreSQL that accepts writes, ErrReadOnly when it
// reaches one that does not, and otherwise the connection failure wrapped
// (for logs; it carries no SQL and no values). Readiness probes call it.
func (s *Store) CheckWritable(ctx context.Context) error {
	var readOnly string
	if err := s.pool.QueryRow(ctx, "SHOW transaction_read_only").Scan(&readOnly); err != nil {
		return fmt.Errorf("store: check writable: %w", err)
	}
	if readOnly != "off" {
		return fmt.Errorf("store: check writable: %w", ErrReadOnly)
	}
	return nil
}

// Open connects a pool to databaseURL (a postgres:// URL or key=value DSN)
// and checks that the server answers. Settings given in the URL win; where
// the URL is silent, Open picks values suited to an app tier: a pool size
// from WithMaxConns or else from the server's capacity (MaxConnsFor), a
// bounded connect timeout, a statement timeout so a stuck query cannot hold
// account locks forever, and an idle-in-transaction timeout for the same
// reason.
func Open(ctx context.Context, databaseURL string, opts ...OpenOption) (*pgxpool.Pool, error) {
	var oc openConfig
	for _, o := range opts {
		o(&oc)
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("store: parse database URL: %w", err)
	}
	if !strings.Contains(databaseURL, "pool_max_conn_idle_time") {
		cfg.MaxConnIdleTime = 5 * time.Minute
	}
	if !strings.Contains(databaseURL, "pool_health_check_period") {
		cfg.HealthCheckPeriod = 30 * time.Second
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	defaults := map[string]string{
		"application_name":                    "bankwire",
		"statement_timeout":                   "30s",
		"idle_in_transaction_session_timeout": "60s",
		"timezone":                            "UTC",
	}
	for k, v := range defaults {
		if _, ok := cfg.ConnConfig.RuntimeParams[k]; !ok {
			cfg.ConnConfig.RuntimeParams[k] = v
		}
	}
	pingCtx, cancel := context.WithTimeout(ctx, cfg.ConnConfig.ConnectTimeout+time.Second)
	defer cancel()
	if !strings.Contains(databaseURL, "pool_max_conns") {
		if oc.maxConns >= 1 {
			cfg.MaxConns = int32(min(oc.maxConns, 10_000))
		} else {
			available, err := availableConns(pingCtx, cfg.ConnConfig)
			if err != nil {
				return nil, fmt.Errorf("store: connect to database: %w", err)
			}
			cfg.MaxConns = int32(MaxConnsFor(available))
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open pool: %w", err)
	}
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect to database: %w", err)
	}
	return pool, nil
}

// availableConns asks the server how many connections it accepts from
// ordinary roles.
func availableConns(ctx context.Context, cc *pgx.ConnConfig) (int, error) {
	conn, err := pgx.ConnectConfig(ctx, cc.Copy())
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	err = conn.QueryRow(ctx, `
		SELECT current_setting('max_connections')::int
		     - current_setting('superuser_reserved_connections')::int`).Scan(&n)
	return n, err
}

// dbTime returns t as the database will store it (UTC, microseconds), or
// the current time when t is zero.
func dbTime(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Truncate(time.Microsecond)
}
