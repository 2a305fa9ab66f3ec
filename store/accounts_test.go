package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"bankwire/store"
	"bankwire/store/storetest"
)

func TestAccountNumbers(t *testing.T) {
	// 79927398713 is the textbook Luhn example; a leading zero keeps it valid.
	valid := []string{"100000000008", "000000000000", "079927398713"}
	for _, n := range valid {
		if !store.ValidAccountNumber(n) {
			t.Errorf("ValidAccountNumber(%q) = false", n)
		}
	}
	invalid := []string{"", "100000000009", "10000000008", "1000000000080", "10000000000a",
		"1000 0000 0008", "１00000000008", "10000000000\x00", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"}
	for _, n := range invalid {
		if store.ValidAccountNumber(n) {
			t.Errorf("ValidAccountNumber(%q) = true", n)
		}
	}
	// Every single-digit typo and every swap of neighbours (other than
	// 0<->9, Luhn's known blind spot) is caught.
	n := "491234567890"
	if !store.ValidAccountNumber(n) {
		t.Fatalf("%s should be valid", n)
	}
	for i := range n {
		for d := byte('0'); d <= '9'; d++ {
			if d == n[i] {
				continue
			}
			typo := n[:i] + string(d) + n[i+1:]
			if store.ValidAccountNumber(typo) {
				t.Errorf("typo %s accepted", typo)
			}
		}
	}
	for i := 0; i+1 < len(n); i++ {
		if n[i] == n[i+1] || (n[i] == '0' && n[i+1] == '9') || (n[i] == '9' && n[i+1] == '0') {
			continue
		}
		swapped := n[:i] + string(n[i+1]) + string(n[i]) + n[i+2:]
		if store.ValidAccountNumber(swapped) {
			t.Errorf("swap %s accepted", swapped)
		}
	}
	for in, want := range map[string]string{
		"1234 5678 9012":   "123456789012",
		" 1234-5678-9012 ": "123456789012",
		"1234\u00a05678":   "12345678",
		"":                 "",
	} {
		if got := store.NormalizeAccountNumber(in); got != want {
			t.Errorf("NormalizeAccountNumber(%q) = %q, want %q", in, got, want)
		}
	}
	if got := store.FormatAccountNumber("123456789012"); got != "1234 5678 9012" {
		t.Errorf("FormatAccountNumber = %q", got)
	}
}

func FuzzAccountNumber(f *testing.F) {
	for _, s := range []string{"100000000008", "1234 5678-9012", "\xff", "", "0000 0000 0000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := store.NormalizeAccountNumber(s)
		if strings.ContainsAny(n, " -") && strings.TrimSpace(n) == n {
			t.Fatalf("NormalizeAccountNumber(%q) = %q still has separators", s, n)
		}
		if store.ValidAccountNumber(n) {
			if len(n) != 12 || strings.Trim(n, "0123456789") != "" {
				t.Fatalf("ValidAccountNumber accepted %q", n)
			}
			if store.NormalizeAccountNumber(store.FormatAccountNumber(n)) != n {
				t.Fatalf("format/normalize round trip broke %q", n)
			}
		}
	})
}

func TestOpenAndListAccounts(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	c, checking := newCustomer(t, s, "alice")
	savings, err := s.OpenAccount(ctx, c.ID, store.KindSavings, "", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if savings.Kind != store.KindSavings || savings.Currency != "USD" || savings.CustomerID != c.ID {
		t.Fatalf("savings = %+v", savings)
	}
	eur, err := s.OpenAccount(ctx, c.ID, store.KindChecking, "EUR", t0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.ListAccounts(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].ID != checking.ID || list[1].ID != savings.ID || list[2].ID != eur.ID {
		t.Fatalf("ListAccounts = %+v", list)
	}
	got, err := s.AccountByNumber(ctx, store.FormatAccountNumber(savings.Number))
	if err != nil || got.ID != savings.ID {
		t.Fatalf("AccountByNumber = %+v, %v", got, err)
	}
	none, err := s.ListAccounts(ctx, c.ID+99)
	if err != nil || len(none) != 0 {
		t.Fatalf("ListAccounts(unknown) = %v, %v", none, err)
	}

	_, err = s.OpenAccount(ctx, c.ID, store.KindExternal, "", t0)
	wantInputError(t, err, "kind")
	_, err = s.OpenAccount(ctx, c.ID, "brokerage", "", t0)
	wantInputError(t, err, "kind")
	for _, cur := range []string{"usd", "US", "USDX", "U\x00D", "€€€"} {
		_, err = s.OpenAccount(ctx, c.ID, store.KindSavings, cur, t0)
		wantInputError(t, err, "currency")
	}
	_, err = s.OpenAccount(ctx, c.ID+99, store.KindSavings, "", t0)
	wantErr(t, err, store.ErrNotFound)
	for range store.MaxAccounts - 3 {
		openSavings(t, s, c.ID)
	}
	_, err = s.OpenAccount(ctx, c.ID, store.KindSavings, "", t0)
	wantInputError(t, err, "kind")

	for _, n := range []string{"100000000008", "12", "", "abc", strings.Repeat("1", 100_000)} {
		_, err = s.AccountByNumber(ctx, n)
		wantErr(t, err, store.ErrNotFound)
	}
	for _, n := range []string{"\xff", "1000000000\x0008"} {
		_, err = s.AccountByNumber(ctx, n)
		wantInputError(t, err, "number")
	}
}

// TestHistoryKeysetPagination walks an account's history page by page while
// new entries keep arriving, and expects every old entry exactly once, in
// order, with consistent running balances.
func TestHistoryKeysetPagination(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	alice, a := newCustomer(t, s, "alice")
	_, b := newCustomer(t, s, "bob")
	fund(t, s, a.Number, 1_000_000)
	const n = 57
	for i := range n {
		// Several entries share a timestamp, so the id must break ties.
		at := t0.Add(time.Duration(i/3) * time.Minute)
		if _, _, err := s.Transfer(ctx, store.TransferParams{CustomerID: alice.ID, IdempotencyKey: fmt.Sprint(i),
			FromNumber: a.Number, ToNumber: b.Number, Amount: int64(i + 1), Memo: fmt.Sprint("t", i), Now: at}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []store.Entry
	cursor := store.Cursor{}
	for page := 0; ; page++ {
		entries, err := s.History(ctx, a.ID, cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 0 {
			break
		}
		seen = append(seen, entries...)
		last := entries[len(entries)-1]
		cursor = store.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
		// A newer transfer arriving between pages must not shift the pages.
		if _, _, err := s.Transfer(ctx, store.TransferParams{CustomerID: alice.ID, IdempotencyKey: fmt.Sprint("late", page),
			FromNumber: a.Number, ToNumber: b.Number, Amount: 1, Now: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != n+1 { // n transfers and the deposit
		t.Fatalf("walked %d entries, want %d", len(seen), n+1)
	}
	for i := 1; i < len(seen); i++ {
		prev, cur := seen[i-1], seen[i]
		if cur.CreatedAt.After(prev.CreatedAt) || (cur.CreatedAt.Equal(prev.CreatedAt) && cur.ID >= prev.ID) {
			t.Fatalf("entry %d (%v, %d) is not older than entry %d (%v, %d)", i, cur.CreatedAt, cur.ID, i-1, prev.CreatedAt, prev.ID)
		}
		if prev.BalanceAfter != cur.BalanceAfter+prev.Amount {
			t.Fatalf("running balance broken between entries %d and %d", i-1, i)
		}
	}
	if last := seen[len(seen)-1]; last.Amount != 1_000_000 || last.Memo != "test funds" {
		t.Fatalf("oldest entry = %+v, want the deposit", last)
	}

	for _, limit := range []int{-1, store.MaxPageSize + 1} {
		_, err := s.History(ctx, a.ID, store.Cursor{}, limit)
		wantInputError(t, err, "limit")
	}
	def, err := s.History(ctx, a.ID, store.Cursor{}, 0)
	if err != nil || len(def) != store.DefaultPageSize {
		t.Fatalf("History(limit 0) returned %d entries, %v; want %d", len(def), err, store.DefaultPageSize)
	}
	empty, err := s.History(ctx, a.ID+999, store.Cursor{}, 10)
	if err != nil || len(empty) != 0 {
		t.Fatalf("History(unknown account) = %v, %v", empty, err)
	}
}
