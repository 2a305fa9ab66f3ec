package store_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"bankwire/store"
	"bankwire/store/storetest"
)

func TestTransferMovesMoneyAndWritesLedger(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	alice, aliceChecking := newCustomer(t, s, "alice")
	_, bobChecking := newCustomer(t, s, "bob")
	fund(t, s, aliceChecking.Number, 10_000)

	tr, replayed, err := s.Transfer(ctx, store.TransferParams{
		CustomerID: alice.ID, IdempotencyKey: "k1",
		FromNumber: store.FormatAccountNumber(aliceChecking.Number), // spaces are normalised
		ToNumber:   bobChecking.Number, Amount: 2_501, Memo: "Dinner", Now: t0,
	})
	if err != nil || replayed {
		t.Fatalf("Transfer: %v, replayed=%v", err, replayed)
	}
	want := store.Transfer{ID: tr.ID, CustomerID: alice.ID, IdempotencyKey: "k1", FromNumber: aliceChecking.Number,
		ToNumber: bobChecking.Number, Amount: 2_501, Currency: "USD", Memo: "Dinner", CreatedAt: t0}
	if diff := cmp.Diff(want, tr); diff != "" {
		t.Fatalf("transfer (-want +got):\n%s", diff)
	}
	if got := balance(t, s, aliceChecking.Number); got != 7_499 {
		t.Fatalf("alice balance = %d, want 7499", got)
	}
	if got := balance(t, s, bobChecking.Number); got != 2_501 {
		t.Fatalf("bob balance = %d, want 2501", got)
	}

	hist, err := s.History(ctx, aliceChecking.ID, store.Cursor{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 {
		t.Fatalf("alice history has %d entries, want 2 (deposit, transfer)", len(hist))
	}
	got := hist[0]
	if got.TransferID != tr.ID || got.Amount != -2_501 || got.BalanceAfter != 7_499 ||
		got.Counterparty != bobChecking.Number || got.Memo != "Dinner" || got.Currency != "USD" {
		t.Fatalf("newest entry = %+v", got)
	}
	bobHist, err := s.History(ctx, bobChecking.ID, store.Cursor{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(bobHist) != 1 || bobHist[0].Amount != 2_501 || bobHist[0].Counterparty != aliceChecking.Number {
		t.Fatalf("bob history = %+v", bobHist)
	}

	// Both parties can read the transfer; nobody else can.
	for _, id := range []int64{alice.ID, bobChecking.CustomerID} {
		if got, err := s.TransferByID(ctx, id, tr.ID); err != nil || got.ID != tr.ID {
			t.Fatalf("TransferByID(%d) = %+v, %v", id, got, err)
		}
	}
	// Each sees the accounts as they know them: their own by kind, the
	// other's by their payee nickname, if any.
	if _, err := s.AddPayee(ctx, alice.ID, "Bob", bobChecking.Number, t0); err != nil {
		t.Fatal(err)
	}
	got2, err := s.TransferByID(ctx, alice.ID, tr.ID)
	if err != nil || got2.FromKind != store.KindChecking || got2.ToKind != "" || got2.ToNickname != "Bob" {
		t.Fatalf("alice's view = %+v, %v", got2, err)
	}
	got2, err = s.TransferByID(ctx, bobChecking.CustomerID, tr.ID)
	if err != nil || got2.FromKind != "" || got2.ToKind != store.KindChecking || got2.ToNickname != "" {
		t.Fatalf("bob's view = %+v, %v", got2, err)
	}
	carol, _ := newCustomer(t, s, "carol")
	_, err = s.TransferByID(ctx, carol.ID, tr.ID)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.TransferByID(ctx, alice.ID, tr.ID+1000)
	wantErr(t, err, store.ErrNotFound)
}

func TestTransferIdempotency(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	alice, from := newCustomer(t, s, "alice")
	_, to := newCustomer(t, s, "bob")
	fund(t, s, from.Number, 1_000)

	p := store.TransferParams{CustomerID: alice.ID, IdempotencyKey: "rent-2025-03", FromNumber: from.Number,
		ToNumber: to.Number, Amount: 600, Memo: "Rent", Now: t0}
	first, replayed, err := s.Transfer(ctx, p)
	if err != nil || replayed {
		t.Fatalf("first: %v, replayed=%v", err, replayed)
	}
	// The retry is answered with the original even though 400 < 600 now.
	again, replayed, err := s.Transfer(ctx, p)
	if err != nil || !replayed {
		t.Fatalf("retry: %v, replayed=%v", err, replayed)
	}
	if diff := cmp.Diff(first, again); diff != "" {
		t.Fatalf("replay differs (-first +replay):\n%s", diff)
	}
	if got := balance(t, s, from.Number); got != 400 {
		t.Fatalf("balance = %d after a replay, want 400", got)
	}

	for name, change := range map[string]func(*store.TransferParams){
		"amount": func(p *store.TransferParams) { p.Amount = 601 },
		"memo":   func(p *store.TransferParams) { p.Memo = "Rent!" },
		"to":     func(p *store.TransferParams) { p.ToNumber = from.Number; p.FromNumber = to.Number },
	} {
		q := p
		change(&q)
		_, _, err := s.Transfer(ctx, q)
		if !errors.Is(err, store.ErrIdempotencyConflict) {
			t.Fatalf("same key, different %s: %v, want ErrIdempotencyConflict", name, err)
		}
	}

	// Keys are per customer: bob may use the same key for his own transfer.
	_, bobAcct := newCustomer(t, s, "bob2")
	fund(t, s, bobAcct.Number, 50)
	_, replayed, err = s.Transfer(ctx, store.TransferParams{CustomerID: bobAcct.CustomerID, IdempotencyKey: p.IdempotencyKey,
		FromNumber: bobAcct.Number, ToNumber: from.Number, Amount: 50, Now: t0})
	if err != nil || replayed {
		t.Fatalf("same key, other customer: %v, replayed=%v", err, replayed)
	}

	// A failed attempt does not use the key up.
	q := p
	q.IdempotencyKey, q.Amount = "big", 10_000
	_, _, err = s.Transfer(ctx, q)
	wantErr(t, err, store.ErrInsufficientFunds)
	q.Amount = 100
	if _, replayed, err := s.Transfer(ctx, q); err != nil || replayed {
		t.Fatalf("key after a failed attempt: %v, replayed=%v", err, replayed)
	}
}

// TestTransferConcurrentDuplicates: many copies of one request racing
// produce exactly one transfer, and every copy sees it.
func TestTransferConcurrentDuplicates(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	alice, from := newCustomer(t, s, "alice")
	savings := openSavings(t, s, alice.ID)
	_, to := newCustomer(t, s, "bob")
	fund(t, s, from.Number, 10_000)
	fund(t, s, savings.Number, 10_000)

	for round := 0; round < 5; round++ {
		key := "dup-" + string(rune('a'+round))
		const copies = 12
		var wg sync.WaitGroup
		ids := make([]int64, copies)
		errs := make([]error, copies)
		replays := make([]bool, copies)
		start := make(chan struct{})
		for i := range copies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				p := store.TransferParams{CustomerID: alice.ID, IdempotencyKey: key, FromNumber: from.Number,
					ToNumber: to.Number, Amount: 100, Now: t0, DailyLimit: int64(i%2) * 1_000_000}
				if i%3 == 2 {
					// Same key, other source account: must not produce a second transfer.
					p.FromNumber = savings.Number
				}
				tr, rep, err := s.Transfer(ctx, p)
				ids[i], replays[i], errs[i] = tr.ID, rep, err
			}()
		}
		close(start)
		wg.Wait()
		var winner int64
		fresh := 0
		for i := range copies {
			switch {
			case errs[i] == nil && !replays[i]:
				fresh++
				winner = ids[i]
			case errs[i] == nil:
			default:
				wantErr(t, errs[i], store.ErrIdempotencyConflict)
			}
		}
		if fresh != 1 {
			t.Fatalf("round %d: %d copies created a transfer, want exactly 1", round, fresh)
		}
		for i := range copies {
			if errs[i] == nil && ids[i] != winner {
				t.Fatalf("round %d: copy %d got transfer %d, want %d", round, i, ids[i], winner)
			}
		}
	}
	if got := balance(t, s, to.Number); got != 500 {
		t.Fatalf("bob received %d, want 500 (5 rounds x 100)", got)
	}
}

func TestTransferErrors(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	alice, from := newCustomer(t, s, "alice")
	_, to := newCustomer(t, s, "bob")
	fund(t, s, from.Number, 1_000)
	eur, err := s.OpenAccount(ctx, to.CustomerID, store.KindSavings, "EUR", t0)
	if err != nil {
		t.Fatal(err)
	}
	unknown := "100000000008" // Luhn-valid, not issued (random numbers start the same way only by chance)
	if !store.ValidAccountNumber(unknown) {
		t.Fatal("test number is not Luhn-valid")
	}

	base := store.TransferParams{CustomerID: alice.ID, IdempotencyKey: "k", FromNumber: from.Number,
		ToNumber: to.Number, Amount: 100, Now: t0}
	cases := []struct {
		name   string
		change func(*store.TransferParams)
		field  string // for *InputError
		want   error  // otherwise
	}{
		{"zero amount", func(p *store.TransferParams) { p.Amount = 0 }, "amount", nil},
		{"negative amount", func(p *store.TransferParams) { p.Amount = -5 }, "amount", nil},
		{"min int64", func(p *store.TransferParams) { p.Amount = math.MinInt64 }, "amount", nil},
		{"max int64", func(p *store.TransferParams) { p.Amount = math.MaxInt64 }, "amount", nil},
		{"above MaxAmount", func(p *store.TransferParams) { p.Amount = store.MaxAmount + 1 }, "amount", nil},
		{"memo too long", func(p *store.TransferParams) { p.Memo = strings.Repeat("x", store.MaxMemoLen+1) }, "memo", nil},
		{"memo NUL", func(p *store.TransferParams) { p.Memo = "a\x00b" }, "memo", nil},
		{"memo invalid UTF-8", func(p *store.TransferParams) { p.Memo = "caf\xe9" }, "memo", nil},
		{"memo newline", func(p *store.TransferParams) { p.Memo = "a\nb" }, "memo", nil},
		{"memo right-to-left override", func(p *store.TransferParams) { p.Memo = "Invoice \u202E0001" }, "memo", nil},
		{"memo isolate", func(p *store.TransferParams) { p.Memo = "a\u2067b\u2069" }, "memo", nil},
		{"memo huge", func(p *store.TransferParams) { p.Memo = strings.Repeat("é", 1<<20) }, "memo", nil},
		{"key empty", func(p *store.TransferParams) { p.IdempotencyKey = "" }, "idempotency_key", nil},
		{"key too long", func(p *store.TransferParams) { p.IdempotencyKey = strings.Repeat("k", 65) }, "idempotency_key", nil},
		{"key NUL", func(p *store.TransferParams) { p.IdempotencyKey = "k\x00" }, "idempotency_key", nil},
		{"key invalid UTF-8", func(p *store.TransferParams) { p.IdempotencyKey = "\xff" }, "idempotency_key", nil},
		{"from malformed", func(p *store.TransferParams) { p.FromNumber = "12345" }, "from", nil},
		{"to bad check digit", func(p *store.TransferParams) { p.ToNumber = "100000000009" }, "to", nil},
		{"to NUL", func(p *store.TransferParams) { p.ToNumber = "1000000000\x0008" }, "to", nil},
		{"to invalid UTF-8", func(p *store.TransferParams) { p.ToNumber = "\xc3\x28" }, "to", nil},
		{"negative daily limit", func(p *store.TransferParams) { p.DailyLimit = -1 }, "daily_limit", nil},
		{"from not owned", func(p *store.TransferParams) { p.FromNumber, p.ToNumber = to.Number, from.Number }, "", store.ErrNotFound},
		{"from unknown", func(p *store.TransferParams) { p.FromNumber = unknown }, "", store.ErrNotFound},
		{"to unknown", func(p *store.TransferParams) { p.ToNumber = unknown }, "", store.ErrNotFound},
		{"unknown customer", func(p *store.TransferParams) { p.CustomerID = 99_999 }, "", store.ErrNotFound},
		{"same account", func(p *store.TransferParams) { p.ToNumber = from.Number }, "", store.ErrSameAccount},
		{"currency mismatch", func(p *store.TransferParams) { p.ToNumber = eur.Number }, "", store.ErrCurrencyMismatch},
		{"insufficient funds", func(p *store.TransferParams) { p.Amount = 1_001 }, "", store.ErrInsufficientFunds},
		{"daily limit", func(p *store.TransferParams) { p.DailyLimit = 99 }, "", store.ErrDailyLimit},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := base
			tc.change(&p)
			_, _, err := s.Transfer(ctx, p)
			if tc.field != "" {
				wantInputError(t, err, tc.field)
			} else {
				wantErr(t, err, tc.want)
			}
			if strings.Contains(strings.ToLower(err.Error()), "sql") || strings.Contains(err.Error(), "pg") {
				t.Fatalf("error text mentions the database: %q", err)
			}
		})
	}
	// Nothing of the above moved money or used the key.
	if got := balance(t, s, from.Number); got != 1_000 {
		t.Fatalf("balance = %d after rejected transfers, want 1000", got)
	}
	if _, replayed, err := s.Transfer(ctx, base); err != nil || replayed {
		t.Fatalf("key k after rejections: %v, replayed=%v", err, replayed)
	}
}

func TestTransferDailyLimit(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	alice, checking := newCustomer(t, s, "alice")
	savings := openSavings(t, s, alice.ID)
	_, bob := newCustomer(t, s, "bob")
	fund(t, s, checking.Number, 100_000)

	send := func(key, to string, amount int64, now time.Time) error {
		_, _, err := s.Transfer(ctx, store.TransferParams{CustomerID: alice.ID, IdempotencyKey: key,
			FromNumber: checking.Number, ToNumber: to, Amount: amount, DailyLimit: 1_000, Now: now})
		return err
	}
	morning := time.Date(2025, 3, 10, 0, 0, 1, 0, time.UTC)
	if err := send("a", bob.Number, 600, morning); err != nil {
		t.Fatal(err)
	}
	// Own-account moves do not count against the limit...
	if err := send("b", savings.Number, 50_000, morning.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// ...and exactly reaching the limit is allowed.
	if err := send("c", bob.Number, 400, morning.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, send("d", bob.Number, 1, t0.Add(11*time.Hour)), store.ErrDailyLimit)
	// A new UTC day starts from zero.
	if err := send("e", bob.Number, 1_000, time.Date(2025, 3, 11, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if got := balance(t, s, bob.Number); got != 2_000 {
		t.Fatalf("bob balance = %d, want 2000", got)
	}
}

// TestDailyLimitUnderConcurrency: parallel transfers of one customer from
// two accounts cannot together exceed the limit.
func TestDailyLimitUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	alice, checking := newCustomer(t, s, "alice")
	savings := openSavings(t, s, alice.ID)
	_, bob := newCustomer(t, s, "bob")
	fund(t, s, checking.Number, 10_000)
	fund(t, s, savings.Number, 10_000)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := checking.Number
			if i%2 == 1 {
				from = savings.Number
			}
			_, _, err := s.Transfer(ctx, store.TransferParams{CustomerID: alice.ID, IdempotencyKey: "p" + string(rune('a'+i)),
				FromNumber: from, ToNumber: bob.Number, Amount: 100, DailyLimit: 1_000, Now: t0})
			if err != nil && !errors.Is(err, store.ErrDailyLimit) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := balance(t, s, bob.Number); got != 1_000 {
		t.Fatalf("bob received %d, want exactly the daily limit 1000", got)
	}
}

func TestDeposit(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t)
	_, acct := newCustomer(t, s, "alice")
	tr, err := s.Deposit(ctx, acct.Number, 12_345, "Paycheck", t0)
	if err != nil {
		t.Fatal(err)
	}
	if tr.ToNumber != acct.Number || tr.Amount != 12_345 || tr.Currency != "USD" {
		t.Fatalf("deposit = %+v", tr)
	}
	world, err := s.AccountByNumber(ctx, tr.FromNumber)
	if err != nil {
		t.Fatal(err)
	}
	if world.Kind != store.KindExternal || world.Balance != -12_345 {
		t.Fatalf("external account = %+v, want kind external, balance -12345", world)
	}
	eur, err := s.OpenAccount(ctx, acct.CustomerID, store.KindSavings, "EUR", t0)
	if err != nil {
		t.Fatal(err)
	}
	tr, err = s.Deposit(ctx, eur.Number, 500, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Currency != "EUR" || tr.FromNumber == world.Number {
		t.Fatalf("EUR deposit = %+v, want a separate EUR external account", tr)
	}
	_, err = s.Deposit(ctx, "100000000008", 1, "", t0)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.Deposit(ctx, acct.Number, 0, "", t0)
	wantInputError(t, err, "amount")
}

// TestDatabaseEnforcesMoneyRules writes around the store, as a buggy or
// malicious client would, and expects PostgreSQL itself to refuse.
func TestDatabaseEnforcesMoneyRules(t *testing.T) {
	ctx := context.Background()
	pool := storetest.NewDatabase(t)
	s := store.New(pool)
	alice, from := newCustomer(t, s, "alice")
	_, to := newCustomer(t, s, "bob")
	fund(t, s, from.Number, 1_000)
	tr, _, err := s.Transfer(ctx, store.TransferParams{CustomerID: alice.ID, IdempotencyKey: "k",
		FromNumber: from.Number, ToNumber: to.Number, Amount: 300, Now: t0})
	if err != nil {
		t.Fatal(err)
	}

	mustFail := func(name, sqlState string, fn func(tx pgx.Tx) error) {
		t.Helper()
		err := pgx.BeginFunc(ctx, pool, fn)
		if err == nil {
			t.Fatalf("%s: the database accepted it", name)
		}
		if !strings.Contains(err.Error(), "SQLSTATE "+sqlState) {
			t.Fatalf("%s: error %v, want SQLSTATE %s", name, err, sqlState)
		}
	}
	exec := func(sql string, args ...any) func(pgx.Tx) error {
		return func(tx pgx.Tx) error { _, err := tx.Exec(ctx, sql, args...); return err }
	}
	mustFail("update ledger", "23001", exec(`UPDATE ledger_entries SET amount = amount * 2 WHERE transfer_id = $1`, tr.ID))
	mustFail("delete ledger", "23001", exec(`DELETE FROM ledger_entries WHERE transfer_id = $1`, tr.ID))
	mustFail("truncate ledger", "23001", exec(`TRUNCATE ledger_entries CASCADE`))
	mustFail("update transfer", "23001", exec(`UPDATE transfers SET amount = 1 WHERE id = $1`, tr.ID))
	mustFail("negative balance", "23514", exec(`UPDATE accounts SET balance = -1 WHERE id = $1`, from.ID))
	mustFail("change account owner", "23001", exec(`UPDATE accounts SET customer_id = $2 WHERE id = $1`, from.ID, to.CustomerID))
	mustFail("customer external account", "23514", exec(`INSERT INTO accounts (number, customer_id, kind) VALUES ('100000000008', $1, 'external')`, alice.ID))
	mustFail("bad check digit", "23514", exec(`INSERT INTO accounts (number, customer_id, kind) VALUES ('100000000009', $1, 'checking')`, alice.ID))
	mustFail("zero amount", "23514", exec(`INSERT INTO transfers (customer_id, idempotency_key, from_account, to_account, amount, currency, fingerprint)
		VALUES ($1, 'x', $2, $3, 0, 'USD', decode(repeat('00', 32), 'hex'))`, alice.ID, from.ID, to.ID))
	mustFail("long memo", "23514", exec(`INSERT INTO transfers (customer_id, idempotency_key, from_account, to_account, amount, currency, memo, fingerprint)
		VALUES ($1, 'x', $2, $3, 1, 'USD', repeat('m', 141), decode(repeat('00', 32), 'hex'))`, alice.ID, from.ID, to.ID))

	insertTransfer := `INSERT INTO transfers (customer_id, idempotency_key, from_account, to_account, amount, currency, fingerprint)
		VALUES ($1, $4, $2, $3, 50, 'USD', decode(repeat('00', 32), 'hex')) RETURNING id`
	// A transfer whose entries do not balance is refused at commit.
	mustFail("unbalanced entries", "23000", func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(ctx, insertTransfer, alice.ID, from.ID, to.ID, "u1").Scan(&id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO ledger_entries (account_id, transfer_id, amount, balance_after, created_at)
			VALUES ($1, $3, -50, 650, now()), ($2, $3, 49, 349, now())`, from.ID, to.ID, id)
		return err
	})
	// So is a transfer with a single entry, and one with none.
	mustFail("one entry", "23000", func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(ctx, insertTransfer, alice.ID, from.ID, to.ID, "u2").Scan(&id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO ledger_entries (account_id, transfer_id, amount, balance_after, created_at)
			VALUES ($1, $2, -50, 650, now())`, from.ID, id)
		return err
	})
	mustFail("no entries", "23000", func(tx pgx.Tx) error {
		var id int64
		return tx.QueryRow(ctx, insertTransfer, alice.ID, from.ID, to.ID, "u3").Scan(&id)
	})
	// An extra entry for an existing, balanced transfer is refused too.
	mustFail("extra entry", "23505", exec(`INSERT INTO ledger_entries (account_id, transfer_id, amount, balance_after, created_at)
		VALUES ($1, $2, 5, 5, now())`, to.ID, tr.ID))
	_, third := newCustomer(t, s, "carol")
	mustFail("third-party entry", "23000", exec(`INSERT INTO ledger_entries (account_id, transfer_id, amount, balance_after, created_at)
		VALUES ($1, $2, 5, 5, now())`, third.ID, tr.ID))
}
