package store_test

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"bankwire/store"
	"bankwire/store/storetest"
)

func openEmpty(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	url := storetest.EmptyURL(t)
	pool, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, url
}

func wantMigrated(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	current, latest, err := store.MigrationVersion(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if current != latest || latest == 0 {
		t.Fatalf("schema version %d, want %d", current, latest)
	}
	// The schema works: a customer can sign up.
	if _, _, err := store.New(pool).CreateCustomer(context.Background(), "probe", "Probe", phc, t0); err != nil {
		t.Fatalf("schema not usable: %v", err)
	}
}

func TestMigrateFromEmptyAndAgain(t *testing.T) {
	ctx := context.Background()
	pool, _ := openEmpty(t)
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	var versions int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	var again int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&again); err != nil {
		t.Fatal(err)
	}
	if again != versions {
		t.Fatalf("second Migrate recorded %d versions, first %d", again, versions)
	}
	wantMigrated(t, pool)
}

// TestMigrateConcurrentGoroutines: app tiers starting at once, each with
// its own pool, all succeed and the schema is applied once.
func TestMigrateConcurrentGoroutines(t *testing.T) {
	_, url := openEmpty(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pool, err := store.Open(context.Background(), url)
			if err != nil {
				errs[i] = err
				return
			}
			defer pool.Close()
			errs[i] = store.Migrate(context.Background(), pool)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Migrate %d: %v", i, err)
		}
	}
	pool, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	wantMigrated(t, pool)
}

// TestMigrateConcurrentProcesses runs Migrate in two separate processes
// (this test binary, re-executed) against one empty database.
func TestMigrateConcurrentProcesses(t *testing.T) {
	pool, url := openEmpty(t)
	var cmds []*exec.Cmd
	for range 2 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), migrateHelperEnv+"="+url)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v", i, err)
		}
	}
	wantMigrated(t, pool)
}
