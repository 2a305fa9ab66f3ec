package storetest_test

import (
	"context"
	"testing"
	"time"

	"bankwire/store"
	"bankwire/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// TestFreshDatabasesAreMigratedAndIsolated: each call gets its own,
// fully migrated database; writes in one are invisible in another.
func TestFreshDatabasesAreMigratedAndIsolated(t *testing.T) {
	ctx := context.Background()
	a := storetest.NewDatabase(t)
	b := storetest.NewDatabase(t)

	current, latest, err := store.MigrationVersion(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if current != latest || latest < 4 {
		t.Fatalf("template not migrated: current %d, latest %d", current, latest)
	}
	if _, _, err := store.New(a).CreateCustomer(ctx, "carol", "Carol", "$argon2id$x", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := store.New(b).CustomerByUsername(ctx, "carol"); err == nil {
		t.Fatal("a customer created in one test database is visible in another")
	}
	var dbA, dbB string
	if err := a.QueryRow(ctx, "SELECT current_database()").Scan(&dbA); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow(ctx, "SELECT current_database()").Scan(&dbB); err != nil {
		t.Fatal(err)
	}
	if dbA == dbB {
		t.Fatalf("both pools are on database %s", dbA)
	}
}
