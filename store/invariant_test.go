package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"bankwire/store"
	"bankwire/store/storetest"
)

// TestBankInvariant is a Jepsen-style check of the transfer transaction:
// 16 writers do 500 random transfers each over 10 accounts of 5 customers —
// some overdrawing, some repeating an idempotency key (also from other
// goroutines, concurrently), some reusing a key with a different amount,
// half of them under a daily limit (which adds the customer's running daily
// total to the rows each transfer locks) — while
// readers take REPEATABLE READ snapshots of all balances. It checks:
//   - every snapshot sums to zero (the outside world included) and to the
//     funded total (customers only), and no customer balance is negative;
//   - no caller ever sees an error other than the expected domain errors
//     (no deadlock, serialization failure or internal error), and the
//     server detected no deadlock at all (the store retries one, so only
//     pg_stat_database shows it);
//   - each (customer, key) is applied at most once, replays return the
//     original transfer, and a reused key with other fields is refused;
//   - afterwards every account's ledger sums to its balance, every
//     transfer has exactly two entries summing to zero, and the number of
//     transfers equals the number of non-replayed successes;
//   - PostgreSQL detected no deadlock (pg_stat_database.deadlocks did not
//     change): the store retries deadlocks invisibly, so without this a
//     lock-order bug would pass.
func TestBankInvariant(t *testing.T) {
	const (
		customers   = 5
		writers     = 16
		perWriter   = 500
		initial     = 20_000
		keysPerCust = 400 // shared key space per customer, so goroutines collide
	)
	ctx := context.Background()
	pool := storetest.NewDatabase(t)
	s := store.New(pool)

	type acct struct {
		number   string
		customer int64
	}
	var accounts []acct
	owned := map[int64][]string{}
	var custIDs []int64
	for i := range customers {
		c, checking := newCustomer(t, s, fmt.Sprintf("cust%d", i))
		savings := openSavings(t, s, c.ID)
		for _, a := range []store.Account{checking, savings} {
			fund(t, s, a.Number, initial)
			accounts = append(accounts, acct{a.Number, c.ID})
			owned[c.ID] = append(owned[c.ID], a.Number)
		}
		custIDs = append(custIDs, c.ID)
	}
	const total = int64(2 * customers * initial)
	deadlocksBefore := deadlockCount(t, pool)

	// requestFor derives the canonical request of a key, so that any
	// goroutine repeating the key sends identical fields.
	requestFor := func(cust int64, key int) store.TransferParams {
		r := rand.New(rand.NewPCG(uint64(cust), uint64(key)))
		from := owned[cust][r.IntN(2)]
		to := accounts[r.IntN(len(accounts))].number
		amount := 1 + r.Int64N(4_000)
		if r.IntN(10) == 0 {
			amount = 30_000 + r.Int64N(20_000) // usually an overdraft
		}
		return store.TransferParams{CustomerID: cust, IdempotencyKey: fmt.Sprintf("key-%d", key),
			FromNumber: from, ToNumber: to, Amount: amount, Memo: fmt.Sprintf("m%d", key)}
	}

	type result struct {
		id     int64
		amount int64
	}
	var (
		mu        sync.Mutex
		applied   = map[string]result{} // "cust/key" -> first successful result
		fresh     int64                 // successes with replayed == false
		unexpectd atomic.Int64
	)
	done := make(chan struct{})
	var readers sync.WaitGroup
	var snapshots atomic.Int64
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				var all, customersSum, negative int64
				err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
					func(tx pgx.Tx) error {
						return tx.QueryRow(ctx, `
							SELECT sum(balance), sum(balance) FILTER (WHERE kind <> 'external'),
							       count(*) FILTER (WHERE balance < 0 AND kind <> 'external')
							  FROM accounts`).Scan(&all, &customersSum, &negative)
					})
				if err != nil {
					t.Errorf("snapshot: %v", err)
					return
				}
				if all != 0 || customersSum != total || negative != 0 {
					t.Errorf("snapshot: all=%d (want 0), customers=%d (want %d), negative=%d", all, customersSum, total, negative)
					return
				}
				snapshots.Add(1)
				time.Sleep(time.Millisecond) // leave the two cores to the writers
			}
		}()
	}

	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 42))
			cust := custIDs[w%customers]
			for range perWriter {
				p := requestFor(cust, r.IntN(keysPerCust))
				different := r.IntN(20) == 0
				if different {
					p.Amount++ // same key, different request
				}
				if w%2 == 1 {
					p.DailyLimit = 1 << 40 // never reached, but checked on the day's total row
				}
				p.Now = t0
				tr, replayed, err := s.Transfer(ctx, p)
				k := fmt.Sprintf("%d/%s", cust, p.IdempotencyKey)
				switch {
				case err == nil:
					mu.Lock()
					prev, seen := applied[k]
					if !replayed {
						fresh++
						if seen {
							t.Errorf("key %s applied twice: transfers %d and %d", k, prev.id, tr.ID)
						}
						applied[k] = result{tr.ID, tr.Amount}
					}
					mu.Unlock()
					if replayed && tr.Amount != p.Amount {
						t.Errorf("replay of %s returned amount %d for a request of %d", k, tr.Amount, p.Amount)
					}
				case errors.Is(err, store.ErrInsufficientFunds), errors.Is(err, store.ErrSameAccount):
				case errors.Is(err, store.ErrIdempotencyConflict):
					if !different {
						// The canonical request can conflict only with a
						// "different" variant that happened to win the key.
						mu.Lock()
						prev, seen := applied[k]
						mu.Unlock()
						if seen && prev.amount == p.Amount {
							t.Errorf("key %s: conflict for the request that was applied", k)
						}
					}
				default:
					unexpectd.Add(1)
					t.Errorf("unexpected error: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	readers.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d fresh transfers, %d keys applied, %d consistent snapshots", fresh, len(applied), snapshots.Load())
	if snapshots.Load() == 0 {
		t.Fatal("no snapshot was taken while the writers ran")
	}

	if n := deadlockCount(t, pool) - deadlocksBefore; n != 0 {
		t.Errorf("PostgreSQL detected %d deadlocks during the run: the lock order has a bug that retries hid", n)
	}

	// Afterwards: ledger and balances agree everywhere.
	var mismatched, unbalanced, transfers, entrySum int64
	err := pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM accounts a
		         WHERE a.balance <> coalesce((SELECT sum(amount) FROM ledger_entries e WHERE e.account_id = a.id), 0)),
		       (SELECT count(*) FROM transfers t
		         WHERE (SELECT count(*) FROM ledger_entries e WHERE e.transfer_id = t.id) <> 2
		            OR (SELECT sum(amount) FROM ledger_entries e WHERE e.transfer_id = t.id) <> 0),
		       (SELECT count(*) FROM transfers WHERE customer_id <> (SELECT id FROM customers WHERE is_system)),
		       (SELECT coalesce(sum(amount), 0) FROM ledger_entries)`).Scan(&mismatched, &unbalanced, &transfers, &entrySum)
	if err != nil {
		t.Fatal(err)
	}
	if mismatched != 0 || unbalanced != 0 || entrySum != 0 {
		t.Fatalf("%d accounts differ from their ledger, %d transfers unbalanced, ledger sums to %d", mismatched, unbalanced, entrySum)
	}
	if transfers != fresh {
		t.Fatalf("%d transfers in the database, but callers saw %d fresh successes", transfers, fresh)
	}
	// Every balance_after is the running sum of its account's entries.
	var badRunning int64
	if err := pool.QueryRow(ctx, `
		SELECT count(*) FROM (
			SELECT balance_after, sum(amount) OVER (PARTITION BY account_id ORDER BY id) AS running
			  FROM ledger_entries) x
		 WHERE balance_after <> running`).Scan(&badRunning); err != nil {
		t.Fatal(err)
	}
	if badRunning != 0 {
		t.Fatalf("%d ledger entries have a balance_after that is not the running sum", badRunning)
	}

	// A backend reports its statistics when it exits at the latest: close
	// the pool, then read the counter from a new session.
	cc := pool.Config().ConnConfig.Copy()
	pool.Close()
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var deadlocks int64
	if err := conn.QueryRow(ctx, `SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(&deadlocks); err != nil {
		t.Fatal(err)
	}
	if deadlocks != 0 {
		t.Fatalf("the server detected %d deadlocks among the transfers", deadlocks)
	}
}

// deadlockCount returns pg_stat_database.deadlocks of pool's database. A
// backend reports its statistics when idle or when it exits, not at once,
// so the pool's connections are closed first and the count is read after
// their backends are gone (a bounded wait).
func deadlockCount(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	pool.Reset()
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		t.Fatalf("connect for statistics: %v", err)
	}
	defer conn.Close(context.Background())
	for {
		var others int
		if err := conn.QueryRow(ctx, `
			SELECT count(*) FROM pg_stat_activity
			 WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&others); err != nil {
			t.Fatalf("count backends: %v", err)
		}
		if others == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			t.Fatalf("%d backends of the pool still alive after Reset: %v", others, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var n int64
	if _, err := conn.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
		t.Fatalf("clear statistics snapshot: %v", err)
	}
	if err := conn.QueryRow(ctx, `SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		t.Fatalf("read deadlocks: %v", err)
	}
	return n
}

// TestDeadlockCountSeesADeadlock checks the instrument of TestBankInvariant:
// two transactions that lock two accounts in opposite orders deadlock, and
// deadlockCount reports it.
func TestDeadlockCountSeesADeadlock(t *testing.T) {
	ctx := context.Background()
	pool := storetest.NewDatabase(t)
	s := store.New(pool)
	_, a := newCustomer(t, s, "dl1")
	_, b := newCustomer(t, s, "dl2")
	before := deadlockCount(t, pool)

	lock := `SELECT 1 FROM accounts WHERE number = $1 FOR UPDATE`
	txs := make([]pgx.Tx, 2)
	for i := range txs {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck // cleanup
		txs[i] = tx
	}
	if _, err := txs[0].Exec(ctx, lock, a.Number); err != nil {
		t.Fatal(err)
	}
	if _, err := txs[1].Exec(ctx, lock, b.Number); err != nil {
		t.Fatal(err)
	}
	type result struct {
		tx  int
		err error
	}
	results := make(chan result, 2)
	go func() { _, err := txs[0].Exec(ctx, lock, b.Number); results <- result{0, err} }()
	go func() { _, err := txs[1].Exec(ctx, lock, a.Number); results <- result{1, err} }()
	// One of the two is chosen as the victim (after deadlock_timeout, 1 s);
	// once it rolls back, the other gets its lock.
	var victims int
	for range 2 {
		select {
		case r := <-results:
			if r.err == nil {
				continue
			}
			victims++
			var pgErr *pgconn.PgError
			if !errors.As(r.err, &pgErr) || pgErr.Code != "40P01" {
				t.Fatalf("error %v, want a deadlock (40P01)", r.err)
			}
			_ = txs[r.tx].Rollback(ctx)
		case <-time.After(10 * time.Second):
			t.Fatal("the deadlock was not detected within 10 s")
		}
	}
	if victims != 1 {
		t.Fatalf("%d victims, want 1", victims)
	}
	for _, tx := range txs {
		_ = tx.Rollback(ctx) // returns the connections, so deadlockCount can close them
	}
	if n := deadlockCount(t, pool) - before; n != 1 {
		t.Fatalf("deadlockCount grew by %d, want 1", n)
	}
}
