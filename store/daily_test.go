package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"bankwire/migrations"
	"bankwire/store"
	"bankwire/store/storetest"
)

// TestDailyLimitAcrossMidnight: the day is the UTC day of the transfer's
// clock, to the microsecond, and a new day starts from zero.
func TestDailyLimitAcrossMidnight(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	alice, checking := newCustomer(t, s, "alice")
	_, bob := newCustomer(t, s, "bob")
	fund(t, s, checking.Number, 100_000)
	send := func(key string, amount int64, now time.Time) error {
		_, _, err := s.Transfer(ctx, store.TransferParams{CustomerID: alice.ID, IdempotencyKey: key,
			FromNumber: checking.Number, ToNumber: bob.Number, Amount: amount, DailyLimit: 1_000, Now: now})
		return err
	}
	lastMicro := time.Date(2025, 3, 10, 23, 59, 59, 999_999_000, time.UTC)
	midnight := time.Date(2025, 3, 11, 0, 0, 0, 0, time.UTC)
	must(t, send("a", 1_000, lastMicro))
	wantErr(t, send("b", 1, lastMicro), store.ErrDailyLimit)
	must(t, send("c", 1_000, midnight))
	wantErr(t, send("d", 1, midnight.Add(23*time.Hour)), store.ErrDailyLimit)
	// A clock in another zone names the same instant: still the UTC day.
	wantErr(t, send("e", 1, midnight.In(time.FixedZone("UTC-5", -5*3600))), store.ErrDailyLimit)
	// A transfer dated the day before (a late clock) counts against that day.
	wantErr(t, send("f", 1, lastMicro), store.ErrDailyLimit)
	if got := balance(t, s, bob.Number); got != 2_000 {
		t.Fatalf("bob balance = %d, want 2000", got)
	}
}

// TestDailyLimitInTheDatabase: the daily_outgoing CHECK refuses a total above
// the stored limit even from hand-written SQL.
func TestDailyLimitInTheDatabase(t *testing.T) {
	ctx := context.Background()
	pool := storetest.NewDatabase(t)
	s := store.New(pool)
	alice, checking := newCustomer(t, s, "alice")
	_, bob := newCustomer(t, s, "bob")
	fund(t, s, checking.Number, 10_000)
	if _, _, err := s.Transfer(ctx, store.TransferParams{CustomerID: alice.ID, IdempotencyKey: "a",
		FromNumber: checking.Number, ToNumber: bob.Number, Amount: 700, DailyLimit: 1_000, Now: t0}); err != nil {
		t.Fatal(err)
	}
	_, err := pool.Exec(ctx, `UPDATE daily_outgoing SET total = total + 301 WHERE customer_id = $1`, alice.ID)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.ConstraintName != "daily_outgoing_within_limit" {
		t.Fatalf("raising the total above the limit: %v, want a violation of daily_outgoing_within_limit", err)
	}
	_, err = pool.Exec(ctx, `UPDATE daily_outgoing SET total = total + 300 WHERE customer_id = $1`, alice.ID)
	must(t, err) // exactly the limit
}

// TestTransferCostIndependentOfHistory: the statements a transfer under a
// daily limit sends have the same plans and read the same number of rows
// after 10 and after 10,000 transfers of the customer that day. Each probe
// is a real Transfer whose statements are recorded and then run again under
// EXPLAIN ANALYZE, in a transaction that is rolled back.
func TestTransferCostIndependentOfHistory(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(storetest.URL(t))
	must(t, err)
	rec := &callRecorder{}
	cfg.ConnConfig.Tracer = rec
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	must(t, err)
	defer pool.Close()
	s := store.New(pool)
	alice, checking := newCustomer(t, s, "alice")
	_, bob := newCustomer(t, s, "bob")
	fund(t, s, checking.Number, 1_000_000)
	const limit = 500_000
	send := func(key string, amount int64, at time.Time) error {
		_, _, err := s.Transfer(ctx, store.TransferParams{CustomerID: alice.ID, IdempotencyKey: key,
			FromNumber: checking.Number, ToNumber: bob.Number, Amount: amount, DailyLimit: limit, Now: at})
		return err
	}
	for i := range 9 {
		must(t, send(fmt.Sprint("k", i), 10, t0))
	}
	// The 10th transfer of the day is the probe.
	probe := func(key string) []string {
		t.Helper()
		calls := rec.record(func() { must(t, send(key, 10, t0.Add(time.Hour))) })
		return explainCalls(t, pool, calls, key)
	}
	after10 := probe("probe-10")
	from, err := s.AccountByNumber(ctx, checking.Number)
	must(t, err)
	to, err := s.AccountByNumber(ctx, bob.Number)
	must(t, err)
	addHistory(t, pool, alice.ID, from, to, 9_989, t0)
	after10000 := probe("probe-10000")
	t.Logf("after 10 transfers:     %v", after10)
	t.Logf("after 10,000 transfers: %v", after10000)
	if len(after10) < 5 {
		t.Fatalf("only %d plan nodes recorded; the recorder missed the transfer's statements", len(after10))
	}
	if !slices.Equal(after10, after10000) {
		t.Fatalf("the transfer's plans or rows read changed with the day's history:\n  after 10:     %v\n  after 10,000: %v", after10, after10000)
	}

	// The running total still counts all 10,000: exactly the limit passes,
	// one more is refused.
	spent := int64(10*10 + 9_989 + 10)
	must(t, send("rest", limit-spent, t0.Add(2*time.Hour)))
	wantErr(t, send("over", 1, t0.Add(2*time.Hour)), store.ErrDailyLimit)
}

type call struct {
	sql  string
	args []any
}

// callRecorder records, while recording, every statement sent, in order,
// whether alone or in a batch.
type callRecorder struct {
	mu    sync.Mutex
	on    bool
	calls []call
}

func (r *callRecorder) record(fn func()) []call {
	r.mu.Lock()
	r.on, r.calls = true, nil
	r.mu.Unlock()
	fn()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on = false
	return r.calls
}

func (r *callRecorder) add(sql string, args []any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.on {
		r.calls = append(r.calls, call{sql, args})
	}
}

func (r *callRecorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	r.add(data.SQL, data.Args)
	return ctx
}
func (r *callRecorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *callRecorder) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (r *callRecorder) TraceBatchQuery(_ context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	r.add(data.SQL, data.Args)
}
func (r *callRecorder) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// explainCalls runs the recorded statements again under EXPLAIN ANALYZE in a
// transaction it rolls back, with the probe's idempotency key replaced by an
// unused one, and describes each plan node by its type, relation, index and
// rows produced.
func explainCalls(t *testing.T, pool *pgxpool.Pool, calls []call, key string) []string {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	must(t, err)
	defer tx.Rollback(ctx)
	var out []string
	for _, c := range calls {
		verb := strings.ToUpper(strings.Fields(c.sql)[0])
		if verb != "SELECT" && verb != "INSERT" && verb != "UPDATE" && verb != "DELETE" && verb != "WITH" {
			continue
		}
		args := slices.Clone(c.args)
		for i, a := range args {
			if a == any(key) {
				args[i] = "replay-" + key
			}
		}
		var plan []map[string]any
		if err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+c.sql, args...).Scan(&plan); err != nil {
			t.Fatalf("EXPLAIN ANALYZE %s: %v", c.sql, err)
		}
		out = append(out, describePlan(plan[0]["Plan"].(map[string]any))...)
	}
	return out
}

func describePlan(node map[string]any) []string {
	s := fmt.Sprintf("%v %v %v rows=%v", node["Node Type"], node["Relation Name"], node["Index Name"], node["Actual Rows"])
	out := []string{s}
	children, _ := node["Plans"].([]any)
	for _, c := range children {
		out = append(out, describePlan(c.(map[string]any))...)
	}
	return out
}

// addHistory inserts n transfers of 1 from one account to another at at,
// with their ledger entries, balances and daily total, in a few statements.
func addHistory(t *testing.T, pool *pgxpool.Pool, customer int64, from, to store.Account, n int, at time.Time) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var fromBalance, toBalance int64
		if err := tx.QueryRow(ctx, `SELECT balance FROM accounts WHERE id = $1 FOR UPDATE`, from.ID).Scan(&fromBalance); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT balance FROM accounts WHERE id = $1 FOR UPDATE`, to.ID).Scan(&toBalance); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			WITH t AS (
				INSERT INTO transfers (customer_id, idempotency_key, from_account, to_account, amount, currency, fingerprint, created_at)
				SELECT $1, 'history-' || g, $2, $3, 1, $4, sha256(('history-' || g)::bytea), $5
				  FROM generate_series(1, $6::int) g
				RETURNING id),
			     n AS (SELECT id, row_number() OVER (ORDER BY id) AS k FROM t)
			INSERT INTO ledger_entries (account_id, transfer_id, amount, balance_after, created_at)
			SELECT $2, id, -1, $7 - k, $5 FROM n
			UNION ALL
			SELECT $3, id, 1, $8 + k, $5 FROM n`,
			customer, from.ID, to.ID, from.Currency, at, n, fromBalance, toBalance); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance + $2 WHERE id = $1`, from.ID, -int64(n)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance + $2 WHERE id = $1`, to.ID, int64(n)); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
			UPDATE daily_outgoing SET total = total + $2
			 WHERE customer_id = $1 AND day = ($3::timestamptz AT TIME ZONE 'UTC')::date`, customer, n, at)
		if err == nil && tag.RowsAffected() != 1 {
			err = errors.New("no daily_outgoing row to add the history to")
		}
		return err
	})
	if err != nil {
		t.Fatalf("add history: %v", err)
	}
}

// TestMigrationBackfillsDailyTotals: a database that already has transfers
// when daily_outgoing arrives keeps its daily limits exact.
func TestMigrationBackfillsDailyTotals(t *testing.T) {
	ctx := context.Background()
	pool, _ := openEmpty(t)
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	provider, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithDisableGlobalRegistry(true), goose.WithLogger(goose.NopLogger()))
	must(t, err)
	if _, err := provider.UpTo(ctx, 6); err != nil {
		t.Fatal(err)
	}
	s := store.New(pool)
	alice, checking := newCustomer(t, s, "alice")
	savings := openSavings(t, s, alice.ID)
	_, bob := newCustomer(t, s, "bob")
	fund(t, s, checking.Number, 10_000) // deposits are not counted
	// Transfers as the previous schema stored them: to bob (counted), to
	// alice's own savings (not counted), and to bob the day before.
	for i, tr := range []struct {
		to     string
		amount int64
		at     time.Time
	}{{bob.Number, 300, t0}, {bob.Number, 200, t0.Add(time.Hour)}, {savings.Number, 5_000, t0}, {bob.Number, 900, t0.Add(-24 * time.Hour)}} {
		if _, err := pool.Exec(ctx, `
			WITH f AS (SELECT id, currency FROM accounts WHERE number = $2),
			     o AS (SELECT id FROM accounts WHERE number = $3),
			     t AS (INSERT INTO transfers (customer_id, idempotency_key, from_account, to_account, amount, currency, fingerprint, created_at)
			           SELECT $1, $6::text, f.id, o.id, $4, f.currency, sha256($6::text::bytea), $5 FROM f, o RETURNING id, from_account, to_account),
			     d AS (UPDATE accounts SET balance = balance - $4 WHERE id = (SELECT id FROM f)),
			     c AS (UPDATE accounts SET balance = balance + $4 WHERE id = (SELECT id FROM o))
			INSERT INTO ledger_entries (account_id, transfer_id, amount, balance_after, created_at)
			SELECT from_account, id, -$4, 0, $5 FROM t UNION ALL SELECT to_account, id, $4, 0, $5 FROM t`,
			alice.ID, checking.Number, tr.to, tr.amount, tr.at, fmt.Sprint("old-", i)); err != nil {
			t.Fatalf("old transfer %d: %v", i, err)
		}
	}
	must(t, store.Migrate(ctx, pool))

	send := func(key string, amount int64) error {
		_, _, err := s.Transfer(ctx, store.TransferParams{CustomerID: alice.ID, IdempotencyKey: key,
			FromNumber: checking.Number, ToNumber: bob.Number, Amount: amount, DailyLimit: 1_000, Now: t0.Add(2 * time.Hour)})
		return err
	}
	wantErr(t, send("over", 501), store.ErrDailyLimit)
	must(t, send("exact", 500))
	wantErr(t, send("one more", 1), store.ErrDailyLimit)
}
