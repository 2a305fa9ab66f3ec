package store_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"bankwire/store"
	"bankwire/store/storetest"
)

// TestReadsDoNotWaitBehindTransfers: with every transfer stuck on a row
// lock, a read still gets a connection at once, because transfers may hold
// at most store.WritersFor(pool size) of them.
func TestReadsDoNotWaitBehindTransfers(t *testing.T) {
	ctx := context.Background()
	url := storetest.URL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	pool, err := store.Open(ctx, url+sep+"pool_max_conns=4")
	must(t, err)
	defer pool.Close()
	if got := pool.Config().MaxConns; got != 4 {
		t.Fatalf("pool_max_conns in the URL gave %d connections, want 4", got)
	}
	s := store.New(pool)
	alice, a := newCustomer(t, s, "alice")
	_, b := newCustomer(t, s, "bob")
	fund(t, s, a.Number, 10_000)

	// Another session holds bob's account, so every transfer to it waits.
	blocker, err := pgx.Connect(ctx, url)
	must(t, err)
	defer blocker.Close(ctx)
	tx, err := blocker.Begin(ctx)
	must(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `SELECT 1 FROM accounts WHERE number = $1 FOR UPDATE`, b.Number)
	must(t, err)

	const transfers = 8
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, transfers)
	for i := range transfers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := s.Transfer(tctx, store.TransferParams{CustomerID: alice.ID, IdempotencyKey: string(rune('a' + i)),
				FromNumber: a.Number, ToNumber: b.Number, Amount: 100, DailyLimit: 1_000_000, Now: t0})
			errs <- err
		}()
	}
	// Wait (bounded) until as many transfers as may write are stuck. A
	// third connection watches: pg_stat_activity keeps one snapshot per
	// transaction, so the blocker's would never change.
	observer, err := pgx.Connect(ctx, url)
	must(t, err)
	defer observer.Close(ctx)
	writers := store.WritersFor(4)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		must(t, observer.QueryRow(ctx, `
			SELECT count(*) FROM pg_stat_activity
			 WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting))
		if waiting == writers {
			break
		}
		if waiting > writers {
			t.Fatalf("%d transfers wait on the lock, more than the %d writer slots", waiting, writers)
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d transfers reached the lock within 10s", waiting, writers)
		}
		time.Sleep(20 * time.Millisecond)
	}

	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	defer rcancel()
	if _, err := s.AccountByNumber(rctx, a.Number); err != nil {
		t.Fatalf("a read while transfers wait on locks: %v", err)
	}
	if _, err := s.ListAccounts(rctx, alice.ID); err != nil {
		t.Fatalf("a second read while transfers wait on locks: %v", err)
	}

	must(t, tx.Commit(ctx))
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	if got := balance(t, s, b.Number); got != transfers*100 {
		t.Fatalf("bob balance = %d, want %d", got, transfers*100)
	}
}

// TestPoolSizeDefaults: the derived pool size stays within bounds, and
// WithMaxConns sets it.
func TestPoolSizeDefaults(t *testing.T) {
	for _, c := range []struct{ available, want int }{{3, 2}, {16, 4}, {97, 20}, {997, 20}} {
		if got := store.MaxConnsFor(c.available); got != c.want {
			t.Errorf("MaxConnsFor(%d) = %d, want %d", c.available, got, c.want)
		}
	}
	for _, c := range []struct{ conns, want int }{{1, 1}, {2, 1}, {4, 3}, {20, 15}} {
		if got := store.WritersFor(c.conns); got != c.want {
			t.Errorf("WritersFor(%d) = %d, want %d", c.conns, got, c.want)
		}
	}
	ctx := context.Background()
	url := storetest.URL(t)
	pool, err := store.Open(ctx, url, store.WithMaxConns(7))
	must(t, err)
	defer pool.Close()
	if got := pool.Config().MaxConns; got != 7 {
		t.Errorf("WithMaxConns(7) gave %d connections", got)
	}
	derived, err := store.Open(ctx, url)
	must(t, err)
	defer derived.Close()
	var available int
	must(t, derived.QueryRow(ctx, `SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int`).Scan(&available))
	if got := derived.Config().MaxConns; int(got) != store.MaxConnsFor(available) {
		t.Errorf("derived pool size %d, want MaxConnsFor(%d) = %d", got, available, store.MaxConnsFor(available))
	}
}
