package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"bankwire/migrations"
)

// Migrate applies every pending migration in migrations.FS to the database
// behind pool. It is safe to call from several app tiers at once: the first
// one takes a session-level advisory lock and applies the files, the others
// wait for the lock (polling once a second for up to five minutes) and then
// find nothing left to do.
//
// Why goose v3's Provider API: it reads migrations from any fs.FS, so the
// embedded files work without touching the disk; a Provider is a plain value
// rather than goose's older package-level globals, so tests and the app tier
// can each hold their own; and it ships a PostgreSQL session locker
// (pg_try_advisory_lock), so concurrent starts are serialised by the
// database itself with no lock table to clean up after a crash — the server
// drops a session lock when the session ends.
//
// goose needs a *sql.DB; pgx's stdlib adapter lends it connections from the
// same pool. Unlike the data methods, Migrate returns goose's error text
// unchanged: it is for the operator starting the app tier, never for users.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close() // does not close the pool

	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockTimeout(1, 300),
		lock.WithUnlockTimeout(1, 60),
	)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithLogger(goose.NopLogger()),
	)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// MigrationVersion reports the schema version applied to the database and
// the newest version this binary carries; they differ when migrations are
// pending. Useful for a `migrate` subcommand or a readiness check.
func MigrationVersion(ctx context.Context, pool *pgxpool.Pool) (current, latest int64, err error) {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	provider, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithDisableGlobalRegistry(true),
		goose.WithLogger(goose.NopLogger()),
	)
	if err != nil {
		return 0, 0, fmt.Errorf("store: migration version: %w", err)
	}
	current, latest, err = provider.GetVersions(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("store: migration version: %w", err)
	}
	return current, latest, nil
}
