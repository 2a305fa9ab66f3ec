package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
)

// Account kinds. KindExternal accounts stand for the outside world and
// belong to the system customer; customers cannot open them.
const (
	KindChecking = "checking"
	KindSavings  = "savings"
	KindExternal = "external"
)

// Account is a bank account. Balance is in minor units of Currency.
type Account struct {
	ID         int64
	CustomerID int64
	Number     string
	Kind       string
	Currency   string
	Balance    int64
	CreatedAt  time.Time
}

// Entry is one line of an account's history: the account's side of a
// transfer. Amount is negative when money left the account.
type Entry struct {
	ID           int64
	AccountID    int64
	TransferID   int64
	Amount       int64
	BalanceAfter int64
	Currency     string
	Counterparty string // the other account's number
	Memo         string
	CreatedAt    time.Time
}

// Cursor is a keyset position in a newest-first list: the (CreatedAt, ID)
// of the last row of the previous page. The zero Cursor asks for the first
// page. Keyset pages stay stable while new rows arrive, unlike OFFSET.
type Cursor struct {
	CreatedAt time.Time
	ID        int64
}

// IsZero reports whether c asks for the first page.
func (c Cursor) IsZero() bool { return c.CreatedAt.IsZero() && c.ID == 0 }

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

const accountColumns = `id, customer_id, number, kind, currency, balance, created_at`

func scanAccount(row pgx.Row) (Account, error) {
	var a Account
	err := row.Scan(&a.ID, &a.CustomerID, &a.Number, &a.Kind, &a.Currency, &a.Balance, &a.CreatedAt)
	return a, err
}

// insertAccount opens an account with a fresh random number, drawing again
// on the (rare) collision with an existing number. ON CONFLICT DO NOTHING
// keeps a collision from aborting the surrounding transaction.
func (s *Store) insertAccount(ctx context.Context, q querier, customerID int64, kind, currency string, at time.Time) (Account, error) {
	for attempt := 0; attempt < 10; attempt++ {
		number, err := newAccountNumber()
		if err != nil {
			return Account{}, err
		}
		a, err := scanAccount(q.QueryRow(ctx, `
			INSERT INTO accounts (number, customer_id, kind, currency, created_at)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (number) DO NOTHING
			RETURNING `+accountColumns,
			number, customerID, kind, currency, at))
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		return a, err
	}
	return Account{}, errors.New("no free account number after 10 draws")
}

// OpenAccount opens a checking or savings account for a customer, in
// currency (DefaultCurrency when empty). A customer may hold at most
// MaxAccounts accounts.
func (s *Store) OpenAccount(ctx context.Context, customerID int64, kind, currency string, now time.Time) (Account, error) {
	if kind != KindChecking && kind != KindSavings {
		return Account{}, inputError("kind", "must be checking or savings")
	}
	if currency == "" {
		currency = DefaultCurrency
	}
	if !currencyCode.MatchString(currency) {
		return Account{}, inputError("currency", "must be a three-letter ISO 4217 code")
	}
	var a Account
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Lock the customer so that two concurrent opens cannot both pass
		// the count below. NO KEY UPDATE does not block foreign-key checks.
		var n int
		if err := tx.QueryRow(ctx, `
			SELECT (SELECT count(*) FROM accounts WHERE customer_id = c.id)
			  FROM customers c WHERE c.id = $1 AND NOT c.is_system
			   FOR NO KEY UPDATE OF c`, customerID).Scan(&n); err != nil {
			return err
		}
		if n >= MaxAccounts {
			return inputError("kind", fmt.Sprintf("a customer may hold at most %d accounts", MaxAccounts))
		}
		var err error
		a, err = s.insertAccount(ctx, tx, customerID, kind, currency, dbTime(now))
		return err
	})
	var ie *InputError
	if errors.As(err, &ie) {
		return Account{}, err
	}
	if err != nil {
		return Account{}, s.dbError(ctx, "open account", err)
	}
	return a, nil
}

// sqlListAccounts lists a customer's accounts, oldest first.
const sqlListAccounts = `SELECT ` + accountColumns + ` FROM accounts WHERE customer_id = $1 ORDER BY created_at, id`

// ListAccounts returns a customer's accounts, oldest first.
func (s *Store) ListAccounts(ctx context.Context, customerID int64) ([]Account, error) {
	rows, err := s.pool.Query(ctx, sqlListAccounts, customerID)
	if err != nil {
		return nil, s.dbError(ctx, "list accounts", err)
	}
	accounts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Account, error) { return scanAccount(r) })
	if err != nil {
		return nil, s.dbError(ctx, "list accounts", err)
	}
	return accounts, nil
}

// AccountByNumber finds an account by its number (spaces and dashes are
// ignored). It does not check ownership: the caller decides who may see it.
func (s *Store) AccountByNumber(ctx context.Context, number string) (Account, error) {
	if err := checkEncoding("number", number); err != nil {
		return Account{}, err
	}
	number = NormalizeAccountNumber(number)
	if !ValidAccountNumber(number) {
		// Not a number any account can have; no need to ask the database.
		return Account{}, fmt.Errorf("store: account by number: %w", ErrNotFound)
	}
	a, err := scanAccount(s.pool.QueryRow(ctx, `
		SELECT `+accountColumns+` FROM accounts WHERE number = $1`, number))
	if err != nil {
		return Account{}, s.dbError(ctx, "account by number", err)
	}
	return a, nil
}

// pageSize turns a caller's limit into a row count: 0 means DefaultPageSize.
func pageSize(limit int) (int, error) {
	switch {
	case limit == 0:
		return DefaultPageSize, nil
	case limit < 0 || limit > MaxPageSize:
		return 0, inputError("limit", fmt.Sprintf("must be between 1 and %d", MaxPageSize))
	}
	return limit, nil
}

// The counterparty is a correlated subquery rather than a join so that it
// is always one primary-key lookup per returned row, whatever the planner
// thinks of the join's selectivity.
const historyColumns = `
	SELECT e.id, e.account_id, e.transfer_id, e.amount, e.balance_after, t.currency,
	       (SELECT o.number FROM accounts o
	         WHERE o.id = CASE WHEN t.from_account = e.account_id THEN t.to_account ELSE t.from_account END),
	       t.memo, e.created_at
	  FROM ledger_entries e
	  JOIN transfers t ON t.id = e.transfer_id
	 WHERE e.account_id = $1`

// History returns up to limit entries of an account, newest first, strictly
// after the cursor (pass the last entry's CreatedAt and ID to get the next
// page). The query walks the (account_id, created_at DESC, id DESC) index.
// It does not check ownership: the caller decides who may see it.
func (s *Store) History(ctx context.Context, accountID int64, after Cursor, limit int) ([]Entry, error) {
	n, err := pageSize(limit)
	if err != nil {
		return nil, err
	}
	var rows pgx.Rows
	if after.IsZero() {
		rows, err = s.pool.Query(ctx, historyColumns+`
			 ORDER BY e.created_at DESC, e.id DESC LIMIT $2`, accountID, n)
	} else {
		rows, err = s.pool.Query(ctx, historyColumns+`
			   AND (e.created_at, e.id) < ($2, $3)
			 ORDER BY e.created_at DESC, e.id DESC LIMIT $4`, accountID, after.CreatedAt.UTC(), after.ID, n)
	}
	if err != nil {
		return nil, s.dbError(ctx, "history", err)
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Entry, error) {
		var e Entry
		err := r.Scan(&e.ID, &e.AccountID, &e.TransferID, &e.Amount, &e.BalanceAfter, &e.Currency, &e.Counterparty, &e.Memo, &e.CreatedAt)
		return e, err
	})
	if err != nil {
		return nil, s.dbError(ctx, "history", err)
	}
	return entries, nil
}
