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

	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultCurrency is the currency of accounts opened without one.
const DefaultCurrency = "USD"

// Limits on what the store accepts. Each is also a CHECK constraint in the
// schema; they are exported so that the tiers above can validate early and
// show the same numbers to people.
const (
	MaxUsernameLen       = 64   // characters
	MaxDisplayNameLen    = 100  // characters
	MaxPasswordHashLen   = 512  // bytes of a PHC string
	MaxMemoLen           = 140  // characters
	MaxNicknameLen       = 64   // characters
	MaxMessageLen        = 2000 // characters
	MaxIdempotencyKeyLen = 64   // characters
	MaxUserAgentLen      = 512  // characters kept; longer values are cut
	MaxClientIPLen       = 64   // characters kept; longer values are cut
	MaxPageSize          = 100  // rows per History or Messages page
	DefaultPageSize      = 25   // rows when the caller asks for 0
	MaxAccounts          = 10   // accounts per customer
	MaxPayees            = 100  // payees per customer
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

// New returns a Store over pool. The caller owns the pool and closes it.
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	s := &Store{pool: pool, log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Pool returns the pool the store uses, for callers that need to run
// migrations or health checks on it.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

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
// the URL is silent, Open picks values suited to an app tier: a bounded
// connect timeout, a statement timeout so a stuck query cannot hold account
// locks forever, and an idle-in-transaction timeout for the same reason.
func Open(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("store: parse database URL: %w", err)
	}
	if !strings.Contains(databaseURL, "pool_max_conns") {
		cfg.MaxConns = 20
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
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, cfg.ConnConfig.ConnectTimeout+time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect to database: %w", err)
	}
	return pool, nil
}

// dbTime returns t as the database will store it (UTC, microseconds), or
// the current time when t is zero.
func dbTime(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Truncate(time.Microsecond)
}
