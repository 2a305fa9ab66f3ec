package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"bankwire/store"
	"bankwire/store/storetest"
)

// migrateHelperEnv makes the test binary act as a second process running
// Migrate (see TestMigrateConcurrentProcesses) instead of running tests.
const migrateHelperEnv = "BANKWIRE_STORE_TEST_MIGRATE_URL"

func TestMain(m *testing.M) {
	if url := os.Getenv(migrateHelperEnv); url != "" {
		os.Exit(migrateHelper(url))
	}
	storetest.Main(m)
}

func migrateHelper(url string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, err := store.Open(ctx, url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer pool.Close()
	if err := store.Migrate(ctx, pool); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// t0 is the fixed "now" of most tests: a Monday noon, UTC.
var t0 = time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)

// phc is a syntactically plausible password hash; the store never checks
// passwords, it only keeps the string.
const phc = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"

func newCustomer(t testing.TB, s *store.Store, username string) (store.Customer, store.Account) {
	t.Helper()
	c, a, err := s.CreateCustomer(context.Background(), username, "Test "+username, phc, t0)
	if err != nil {
		t.Fatalf("create customer %s: %v", username, err)
	}
	return c, a
}

func openSavings(t testing.TB, s *store.Store, customerID int64) store.Account {
	t.Helper()
	a, err := s.OpenAccount(context.Background(), customerID, store.KindSavings, "", t0)
	if err != nil {
		t.Fatalf("open savings: %v", err)
	}
	return a
}

func fund(t testing.TB, s *store.Store, number string, amount int64) {
	t.Helper()
	if _, err := s.Deposit(context.Background(), number, amount, "test funds", t0); err != nil {
		t.Fatalf("deposit %d to %s: %v", amount, number, err)
	}
}

func balance(t testing.TB, s *store.Store, number string) int64 {
	t.Helper()
	a, err := s.AccountByNumber(context.Background(), number)
	if err != nil {
		t.Fatalf("account %s: %v", number, err)
	}
	return a.Balance
}

// wantErr fails t unless err matches target with errors.Is.
func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

// wantInputError fails t unless err is an *InputError about field.
func wantInputError(t testing.TB, err error, field string) {
	t.Helper()
	var ie *store.InputError
	if !errors.As(err, &ie) {
		t.Fatalf("error = %v, want *store.InputError for %q", err, field)
	}
	if ie.Field != field {
		t.Fatalf("InputError field = %q (%v), want %q", ie.Field, ie, field)
	}
	if !errors.Is(err, store.ErrInvalidInput) {
		t.Fatalf("InputError does not unwrap to ErrInvalidInput")
	}
}
