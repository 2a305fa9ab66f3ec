package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"bankwire/store"
	"bankwire/store/storetest"
)

func TestSeedDemo(t *testing.T) {
	ctx := context.Background()
	pool := storetest.NewDatabase(t)
	s := store.New(pool)
	now := time.Date(2025, 7, 15, 14, 30, 0, 0, time.UTC)
	hashes := store.DemoPasswords{Alice: phc + "a", Bob: phc + "b"}

	// Two app tiers seeding at once write one set of demo data.
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.SeedDemo(ctx, hashes, now); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	counts := func() (n [4]int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM transfers),
			(SELECT count(*) FROM payees), (SELECT count(*) FROM chat_messages)`).Scan(&n[0], &n[1], &n[2], &n[3]); err != nil {
			t.Fatal(err)
		}
		return n
	}
	first := counts()
	if err := s.SeedDemo(ctx, hashes, now.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if again := counts(); again != first {
		t.Fatalf("second SeedDemo changed counts %v -> %v", first, again)
	}
	if first[1] < 80 || first[2] != 2 || first[3] < 4 {
		t.Fatalf("demo data too thin: %d transfers, %d payees, %d messages", first[1], first[2], first[3])
	}

	for _, who := range []struct{ username, name, hash, payee string }{
		{"alice", "Alice Johnson", hashes.Alice, "bob"},
		{"bob", "Bob Smith", hashes.Bob, "alice"},
	} {
		c, err := s.CustomerByUsername(ctx, who.username)
		if err != nil {
			t.Fatal(err)
		}
		if c.DisplayName != who.name || c.PasswordHash != who.hash {
			t.Fatalf("%s = %+v", who.username, c)
		}
		accounts, err := s.ListAccounts(ctx, c.ID)
		if err != nil || len(accounts) != 2 || accounts[0].Kind != store.KindChecking || accounts[1].Kind != store.KindSavings {
			t.Fatalf("%s accounts = %+v, %v", who.username, accounts, err)
		}
		for _, a := range accounts {
			if a.Balance <= 0 {
				t.Fatalf("%s %s balance %d, want positive", who.username, a.Kind, a.Balance)
			}
		}
		hist, err := s.History(ctx, accounts[0].ID, store.Cursor{}, store.MaxPageSize)
		if err != nil || len(hist) < 40 {
			t.Fatalf("%s checking history: %d entries, %v", who.username, len(hist), err)
		}
		if hist[0].CreatedAt.After(now) || hist[len(hist)-1].CreatedAt.After(now.AddDate(0, -2, 0)) {
			t.Fatalf("%s history spans %v .. %v, want months before %v", who.username,
				hist[len(hist)-1].CreatedAt, hist[0].CreatedAt, now)
		}
		payees, err := s.ListPayees(ctx, c.ID)
		other, _ := s.CustomerByUsername(ctx, who.payee)
		otherAccounts, _ := s.ListAccounts(ctx, other.ID)
		if err != nil || len(payees) != 1 || payees[0].Number != otherAccounts[0].Number {
			t.Fatalf("%s payees = %+v, %v", who.username, payees, err)
		}
		convs, err := s.ListConversations(ctx, c.ID)
		if err != nil || len(convs) != 1 || convs[0].Other(c.ID) != other.ID {
			t.Fatalf("%s conversations = %+v, %v", who.username, convs, err)
		}
	}

	// The demo ledger obeys the same rules as live traffic.
	var mismatched, total int64
	if err := pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM accounts a
		         WHERE a.balance <> coalesce((SELECT sum(amount) FROM ledger_entries e WHERE e.account_id = a.id), 0)),
		       (SELECT sum(balance) FROM accounts)`).Scan(&mismatched, &total); err != nil {
		t.Fatal(err)
	}
	if mismatched != 0 || total != 0 {
		t.Fatalf("%d accounts differ from their ledger; balances sum to %d", mismatched, total)
	}
	var badRunning int64
	if err := pool.QueryRow(ctx, `
		SELECT count(*) FROM (
			SELECT balance_after, sum(amount) OVER (PARTITION BY account_id ORDER BY created_at, id) AS running
			  FROM ledger_entries) x WHERE balance_after <> running`).Scan(&badRunning); err != nil {
		t.Fatal(err)
	}
	if badRunning != 0 {
		t.Fatalf("%d demo entries have a balance_after inconsistent with time order", badRunning)
	}

	err := s.SeedDemo(ctx, store.DemoPasswords{Alice: "", Bob: phc}, now)
	wantInputError(t, err, "password_hash")
}
