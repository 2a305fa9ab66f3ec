package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"bankwire/store"
	"bankwire/store/storetest"
)

// BenchmarkTransfer measures store.Transfer against an inline baseline that
// sends the same SQL through pgx with none of the store's validation, error
// mapping or retry loop. Each iteration runs one of each, interleaved, so
// both see the same server state; the result is reported as transfers/s for
// each and their ratio (target >= 0.9).
//
//	go test -run '^$' -bench BenchmarkTransfer -benchtime 2000x ./store/
func BenchmarkTransfer(b *testing.B) {
	ctx := context.Background()
	pool := storetest.NewDatabase(b)
	s := store.New(pool)
	alice, a := newCustomer(b, s, "alice")
	bob, bb := newCustomer(b, s, "bob")
	fund(b, s, a.Number, store.MaxAmount)
	fund(b, s, bb.Number, store.MaxAmount)

	var storeTime, inlineTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, _, err := s.Transfer(ctx, store.TransferParams{CustomerID: alice.ID, IdempotencyKey: fmt.Sprint("s", i),
			FromNumber: a.Number, ToNumber: bb.Number, Amount: 1, Memo: "bench", Now: t0}); err != nil {
			b.Fatal(err)
		}
		storeTime += time.Since(start)

		start = time.Now()
		if err := inlineTransfer(ctx, pool, bob.ID, fmt.Sprint("i", i), bb.Number, a.Number, 1, "bench", t0); err != nil {
			b.Fatal(err)
		}
		inlineTime += time.Since(start)
	}
	b.StopTimer()
	storeRate := float64(b.N) / storeTime.Seconds()
	inlineRate := float64(b.N) / inlineTime.Seconds()
	b.ReportMetric(storeRate, "store-transfers/s")
	b.ReportMetric(inlineRate, "inline-transfers/s")
	b.ReportMetric(storeRate/inlineRate, "ratio")
}

// inlineTransfer is the baseline: the store's statements, in the store's
// order and round trips, trusting its input.
func inlineTransfer(ctx context.Context, pool *pgxpool.Pool, customerID int64, key, from, to string, amount int64, memo string, at time.Time) error {
	type acct struct {
		id, customer      int64
		number, kind, cur string
	}
	byNumber := map[string]acct{}
	read := &pgx.Batch{}
	read.Queue(store.SQLTransferByKey, customerID, key).QueryRow(func(row pgx.Row) error {
		var (
			id, cust, amt     int64
			k, fn, tn, cur, m string
			created           time.Time
			fp                []byte
		)
		if err := row.Scan(&id, &cust, &k, &fn, &tn, &amt, &cur, &m, &created, &fp); !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("key lookup: %v", err)
		}
		return nil
	})
	read.Queue(store.SQLTransferAccounts, []string{from, to}).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var a acct
			if err := rows.Scan(&a.id, &a.customer, &a.number, &a.kind, &a.cur); err != nil {
				return err
			}
			byNumber[a.number] = a
		}
		return rows.Err()
	})
	if err := pool.SendBatch(ctx, read).Close(); err != nil {
		return err
	}
	f, t := byNumber[from], byNumber[to]
	first, second := f, t
	if second.id < first.id {
		first, second = second, first
	}
	write := &pgx.Batch{}
	write.Queue(store.SQLInsertTransfer, customerID, key, f.id, t.id, amount, f.cur, memo,
		store.Fingerprint(from, to, amount, f.cur, memo), at)
	for _, a := range []acct{first, second} {
		delta := amount
		if a.id == f.id {
			delta = -amount
		}
		write.Queue(store.SQLAddBalance, a.id, delta)
	}
	write.Queue(store.SQLInsertEntries, f.id, t.id, amount, at)
	return pool.SendBatch(ctx, write).Close()
}
