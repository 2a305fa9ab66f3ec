package store_test

import (
	"context"
	"testing"
	"time"

	"bankwire/store"
	"bankwire/store/storetest"
)

// TestHistoryRunningBalanceWithLateClock: a transfer whose clock was read
// before another transfer on the same account committed (a transfer that
// waited for a lock or a writer slot, or an app tier whose clock runs a
// little behind) still appears in the account's history after that other
// transfer, so that each entry's balance after is the previous one plus its
// amount and the newest entry shows the current balance.
func TestHistoryRunningBalanceWithLateClock(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	alice, a := newCustomer(t, s, "alice")
	_, b := newCustomer(t, s, "bob")
	fund(t, s, a.Number, 1_000)
	send := func(key string, amount int64, now time.Time) {
		t.Helper()
		if _, _, err := s.Transfer(ctx, store.TransferParams{CustomerID: alice.ID, IdempotencyKey: key,
			FromNumber: a.Number, ToNumber: b.Number, Amount: amount, Now: now}); err != nil {
			t.Fatal(err)
		}
	}
	send("first", 100, t0.Add(time.Hour+time.Millisecond))
	send("second", 200, t0.Add(time.Hour)) // committed later, with an earlier clock
	entries, err := s.History(ctx, a.ID, store.Cursor{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("history has %d entries, want 3", len(entries))
	}
	if got, want := entries[0].BalanceAfter, balance(t, s, a.Number); got != want {
		t.Fatalf("newest entry (amount %d) shows balance %d, the account holds %d", entries[0].Amount, got, want)
	}
	for i := 1; i < len(entries); i++ {
		if prev, cur := entries[i-1], entries[i]; prev.BalanceAfter != cur.BalanceAfter+prev.Amount {
			t.Fatalf("running balance broken between entries %d (%d → %d) and %d (%d → %d)",
				i-1, prev.Amount, prev.BalanceAfter, i, cur.Amount, cur.BalanceAfter)
		}
	}
}
