package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Transfer is money moved from one account to another. CustomerID is who
// asked for it; IdempotencyKey is unique per customer.
type Transfer struct {
	ID             int64
	CustomerID     int64
	IdempotencyKey string
	FromNumber     string
	ToNumber       string
	Amount         int64
	Currency       string
	Memo           string
	CreatedAt      time.Time
}

// TransferParams is a transfer request.
type TransferParams struct {
	CustomerID     int64  // who asks; must own FromNumber
	IdempotencyKey string // client-chosen, 1..MaxIdempotencyKeyLen characters
	FromNumber     string
	ToNumber       string
	Amount         int64 // minor units, 1..MaxAmount
	Memo           string
	// DailyLimit caps, per UTC day of Now and per currency, the sum of the
	// customer's transfers to accounts of other customers (this one
	// included), whatever limit those ran under. Moves between one's own
	// accounts do not count, nor do transfers from the outside world
	// (external accounts). 0 = none.
	DailyLimit int64
	Now        time.Time // zero = the current time
}

// transferAttempts bounds the retries of a transfer transaction that the
// server aborted as a deadlock or serialization failure. With the fixed
// lock order of transferWrite neither should happen; the retry is a safety
// net that the caller never sees.
const transferAttempts = 5

var memoRules = textRules{min: 0, max: MaxMemoLen, noBidi: true}
var keyRules = textRules{min: 1, max: MaxIdempotencyKeyLen}

// normalize validates p at the edge and normalizes its account numbers.
func (p *TransferParams) normalize() error {
	if err := checkText("idempotency_key", p.IdempotencyKey, keyRules); err != nil {
		return err
	}
	for _, f := range []struct {
		name   string
		number *string
	}{{"from", &p.FromNumber}, {"to", &p.ToNumber}} {
		// Check the encoding first: normalizing would hide invalid UTF-8.
		if err := checkEncoding(f.name, *f.number); err != nil {
			return err
		}
		*f.number = NormalizeAccountNumber(*f.number)
		if !ValidAccountNumber(*f.number) {
			return inputError(f.name, "is not a valid account number")
		}
	}
	switch {
	case p.Amount <= 0:
		return inputError("amount", "must be positive")
	case p.Amount > MaxAmount:
		return inputError("amount", "is too large")
	case p.DailyLimit < 0:
		return inputError("daily_limit", "must not be negative")
	}
	return checkText("memo", p.Memo, memoRules)
}

// fingerprint identifies a transfer request so that a retry with the same
// idempotency key can be told apart from a different request reusing it.
// Fields cannot contain NUL, so NUL separators make the encoding unambiguous.
func fingerprint(from, to string, amount int64, currency, memo string) []byte {
	h := sha256.New()
	for _, f := range []string{"bankwire-transfer-v1", from, to, strconv.FormatInt(amount, 10), currency, memo} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// Transfer moves p.Amount from p.FromNumber (owned by p.CustomerID) to
// p.ToNumber in one transaction and returns the transfer. It is
// exactly-once per (CustomerID, IdempotencyKey): a repeat of the same
// request returns the original transfer with replayed = true, even after the
// balance has changed, and the same key with different fields gives
// ErrIdempotencyConflict. Errors: *InputError, ErrNotFound (from not owned
// or to unknown), ErrSameAccount, ErrCurrencyMismatch, ErrInsufficientFunds,
// ErrDailyLimit.
//
// Its cost does not depend on history: the accounts and the key are read
// without locks (an account's identity never changes), and the writes go to
// the server in one round trip, as one implicit transaction that locks the
// idempotency key, the two accounts in id order and the customer's
// daily_outgoing row, in that order, and only until its commit.
func (s *Store) Transfer(ctx context.Context, p TransferParams) (t Transfer, replayed bool, err error) {
	if err := p.normalize(); err != nil {
		return Transfer{}, false, err
	}
	at := dbTime(p.Now)
	for attempt := 1; ; attempt++ {
		t, replayed, err = s.transferOnce(ctx, s.pool, p, at)
		if err == nil {
			return t, replayed, nil
		}
		if retryable(err) && attempt < transferAttempts {
			if err := sleep(ctx, time.Duration(mrand.Int64N(int64(attempt)*int64(5*time.Millisecond)))); err != nil {
				return Transfer{}, false, fmt.Errorf("store: transfer: %w", err)
			}
			continue
		}
		if isDomainError(err) {
			return Transfer{}, false, err
		}
		return Transfer{}, false, s.dbError(ctx, "transfer", err)
	}
}

// isDomainError reports whether err was produced by this package's rules
// (and therefore carries no database text).
func isDomainError(err error) bool {
	var ie *InputError
	return errors.As(err, &ie) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrAlreadyExists) ||
		errors.Is(err, ErrInsufficientFunds) || errors.Is(err, ErrDailyLimit) ||
		errors.Is(err, ErrCurrencyMismatch) || errors.Is(err, ErrSameAccount) ||
		errors.Is(err, ErrIdempotencyConflict) || errors.Is(err, ErrInvalidInput)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// SQL of the transfer, shared with the benchmark baseline.
const (
	sqlTransferByKey = `
		SELECT t.id, t.customer_id, t.idempotency_key, f.number, o.number, t.amount, t.currency, t.memo, t.created_at, t.fingerprint
		  FROM transfers t
		  JOIN accounts f ON f.id = t.from_account
		  JOIN accounts o ON o.id = t.to_account
		 WHERE t.customer_id = $1 AND t.idempotency_key = $2`
	// Read without a lock: accounts_guard keeps every column but the
	// balance fixed, and the balance is checked by the update itself.
	sqlTransferAccounts = `
		SELECT id, customer_id, number, kind, currency FROM accounts WHERE number = ANY($1)`
	// First write of the transaction: a concurrent request with the same
	// key waits here, holding no other lock, and then fails with a unique
	// violation, which the caller resolves as a replay.
	sqlInsertTransfer = `
		INSERT INTO transfers (customer_id, idempotency_key, from_account, to_account, amount, currency, memo, fingerprint, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		RETURNING id`
	// Queued once per account, lower id first, so that two transfers
	// between the same pair in opposite directions cannot deadlock. The
	// accounts_balance_nonnegative CHECK refuses an overdraft; a bigint
	// overflow fails the statement.
	sqlAddBalance = `UPDATE accounts SET balance = balance + $2 WHERE id = $1`
	// Both entries in one statement, so the notify trigger fires once. The
	// balances are read after the updates above, in the same transaction,
	// and the transfer's id is the one the insert above drew.
	sqlInsertEntries = `
		INSERT INTO ledger_entries (account_id, transfer_id, amount, balance_after, created_at)
		SELECT a.id, currval(pg_get_serial_sequence('transfers', 'id')),
		       CASE WHEN a.id = $1 THEN -$3::bigint ELSE $3::bigint END, a.balance, $4
		  FROM accounts a WHERE a.id IN ($1, $2)
		 ORDER BY a.id <> $1`
	// The running total of the customer's outgoing transfers that day; the
	// daily_outgoing_within_limit CHECK refuses a total above $5 (NULL =
	// no limit). The row lock is what serialises one customer's limited
	// transfers, and only from here to the commit.
	sqlAddDailyOutgoing = `
		INSERT INTO daily_outgoing AS d (customer_id, day, currency, total, daily_limit)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (customer_id, day, currency) DO UPDATE
		   SET total = d.total + EXCLUDED.total, daily_limit = EXCLUDED.daily_limit`
)

// Constraints whose violation by the transfer's writes is a domain error.
const (
	constraintIdempotencyKey = "transfers_customer_idempotency_key"
	constraintBalance        = "accounts_balance_nonnegative"
	constraintDailyLimit     = "daily_outgoing_within_limit"
)

type transferAccount struct {
	id, customerID int64
	number, kind   string
	currency       string
}

type storedTransfer struct {
	Transfer
	fingerprint []byte
}

func transferByKey(ctx context.Context, q querier, customerID int64, key string) (storedTransfer, error) {
	var t storedTransfer
	err := q.QueryRow(ctx, sqlTransferByKey, customerID, key).Scan(&t.ID, &t.CustomerID, &t.IdempotencyKey,
		&t.FromNumber, &t.ToNumber, &t.Amount, &t.Currency, &t.Memo, &t.CreatedAt, &t.fingerprint)
	return t, err
}

// replay answers a request whose key was already used.
func replay(prev storedTransfer, p TransferParams) (Transfer, bool, error) {
	if !bytes.Equal(prev.fingerprint, fingerprint(p.FromNumber, p.ToNumber, p.Amount, prev.Currency, p.Memo)) {
		return Transfer{}, false, fmt.Errorf("store: transfer: %w", ErrIdempotencyConflict)
	}
	return prev.Transfer, true, nil
}

// batchQuerier is a pool, whose batches run as implicit transactions, or
// a transaction that batches join.
type batchQuerier interface {
	querier
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// transferOnce makes one attempt on q: s.pool, or a transaction of the
// caller's that the transfer joins (and that a failed transfer aborts).
// Domain errors are returned wrapped; database errors raw, for the caller
// to retry or map.
func (s *Store) transferOnce(ctx context.Context, q batchQuerier, p TransferParams, at time.Time) (Transfer, bool, error) {
	// Read and validate without taking any lock, in one round trip.
	batch := &pgx.Batch{}
	var prev storedTransfer
	var prevErr error
	batch.Queue(sqlTransferByKey, p.CustomerID, p.IdempotencyKey).QueryRow(func(row pgx.Row) error {
		prevErr = row.Scan(&prev.ID, &prev.CustomerID, &prev.IdempotencyKey, &prev.FromNumber, &prev.ToNumber,
			&prev.Amount, &prev.Currency, &prev.Memo, &prev.CreatedAt, &prev.fingerprint)
		if errors.Is(prevErr, pgx.ErrNoRows) {
			return nil
		}
		return prevErr
	})
	var from, to *transferAccount
	batch.Queue(sqlTransferAccounts, []string{p.FromNumber, p.ToNumber}).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var a transferAccount
			if err := rows.Scan(&a.id, &a.customerID, &a.number, &a.kind, &a.currency); err != nil {
				return err
			}
			if a.number == p.FromNumber {
				from = &a
			}
			if a.number == p.ToNumber {
				to = &a
			}
		}
		return rows.Err()
	})
	if err := q.SendBatch(ctx, batch).Close(); err != nil {
		return Transfer{}, false, err
	}
	// A retry of a finished request is answered without writing anything.
	if prevErr == nil {
		return replay(prev, p)
	}
	switch {
	case from == nil || from.customerID != p.CustomerID:
		return Transfer{}, false, fmt.Errorf("store: transfer: from account: %w", ErrNotFound)
	case to == nil:
		return Transfer{}, false, fmt.Errorf("store: transfer: to account: %w", ErrNotFound)
	case from.id == to.id:
		return Transfer{}, false, fmt.Errorf("store: transfer: %w", ErrSameAccount)
	case from.currency != to.currency:
		return Transfer{}, false, fmt.Errorf("store: transfer: %w", ErrCurrencyMismatch)
	}

	release := func() {}
	if _, inTx := q.(pgx.Tx); !inTx {
		var err error
		if release, err = s.acquireWriter(ctx); err != nil {
			return Transfer{}, false, fmt.Errorf("store: transfer: %w", err)
		}
	}
	id, err := transferWrite(ctx, q, p, from, to, at)
	release()
	if err == nil {
		return Transfer{
			ID: id, CustomerID: p.CustomerID, IdempotencyKey: p.IdempotencyKey,
			FromNumber: from.number, ToNumber: to.number, Amount: p.Amount,
			Currency: from.currency, Memo: p.Memo, CreatedAt: at,
		}, false, nil
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return Transfer{}, false, err
	}
	switch {
	case pgErr.Code == "23505" && pgErr.ConstraintName == constraintIdempotencyKey:
		// A concurrent request with the same key committed first.
		prev, err := transferByKey(ctx, q, p.CustomerID, p.IdempotencyKey)
		if err != nil {
			return Transfer{}, false, err
		}
		return replay(prev, p)
	case pgErr.Code == "23514" && pgErr.ConstraintName == constraintBalance:
		return Transfer{}, false, fmt.Errorf("store: transfer: %w", ErrInsufficientFunds)
	case pgErr.Code == "23514" && pgErr.ConstraintName == constraintDailyLimit:
		return Transfer{}, false, fmt.Errorf("store: transfer: %w", ErrDailyLimit)
	case pgErr.Code == "22003": // numeric_value_out_of_range
		return Transfer{}, false, inputError("amount", "would overflow the balance")
	}
	return Transfer{}, false, err
}

// transferWrite sends the transfer's writes as one batch, which PostgreSQL
// runs as one implicit transaction (on a pool) or as part of q's
// transaction: all of them commit, or none.
func transferWrite(ctx context.Context, q batchQuerier, p TransferParams, from, to *transferAccount, at time.Time) (int64, error) {
	batch := &pgx.Batch{}
	var id int64
	batch.Queue(sqlInsertTransfer, p.CustomerID, p.IdempotencyKey, from.id, to.id, p.Amount,
		from.currency, p.Memo, fingerprint(p.FromNumber, p.ToNumber, p.Amount, from.currency, p.Memo), at).
		QueryRow(func(row pgx.Row) error { return row.Scan(&id) })
	first, second := from, to
	if second.id < first.id {
		first, second = second, first
	}
	for _, a := range []*transferAccount{first, second} {
		delta := p.Amount
		if a == from {
			delta = -p.Amount
		}
		batch.Queue(sqlAddBalance, a.id, delta)
	}
	batch.Queue(sqlInsertEntries, from.id, to.id, p.Amount, at)
	// Money leaving for another customer counts against the day; deposits
	// (from the outside world) and moves between one's own accounts do not.
	if from.kind != KindExternal && to.customerID != p.CustomerID {
		var limit *int64
		if p.DailyLimit > 0 {
			limit = &p.DailyLimit
		}
		batch.Queue(sqlAddDailyOutgoing, p.CustomerID, utcDay(at), from.currency, p.Amount, limit)
	}
	if err := q.SendBatch(ctx, batch).Close(); err != nil {
		return 0, err
	}
	return id, nil
}

// utcDay is the day of t in the bank's time zone, UTC, as a date.
func utcDay(t time.Time) pgtype.Date {
	t = t.UTC()
	return pgtype.Date{Time: time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), Valid: true}
}

// TransferView is a transfer as one of its two customers sees it.
type TransferView struct {
	Transfer
	FromKind   string // the kind of the from account when it is the viewer's, else ""
	ToKind     string // the kind of the to account when it is the viewer's, else ""
	ToNickname string // the viewer's payee nickname for the to account, if any
}

// TransferByID returns a transfer if customerID owns its from or its to
// account, described as that customer sees it; otherwise ErrNotFound, so
// ids reveal nothing about other customers' transfers.
func (s *Store) TransferByID(ctx context.Context, customerID, transferID int64) (TransferView, error) {
	var t TransferView
	err := s.pool.QueryRow(ctx, `
		SELECT t.id, t.customer_id, t.idempotency_key, f.number, o.number, t.amount, t.currency, t.memo, t.created_at,
		       CASE WHEN f.customer_id = $2 THEN f.kind::text ELSE '' END,
		       CASE WHEN o.customer_id = $2 THEN o.kind::text ELSE '' END,
		       coalesce((SELECT p.nickname FROM payees p WHERE p.customer_id = $2 AND p.account_id = o.id), '')
		  FROM transfers t
		  JOIN accounts f ON f.id = t.from_account
		  JOIN accounts o ON o.id = t.to_account
		 WHERE t.id = $1 AND $2 IN (f.customer_id, o.customer_id)`, transferID, customerID).Scan(
		&t.ID, &t.CustomerID, &t.IdempotencyKey, &t.FromNumber, &t.ToNumber, &t.Amount, &t.Currency, &t.Memo, &t.CreatedAt,
		&t.FromKind, &t.ToKind, &t.ToNickname)
	if err != nil {
		return TransferView{}, s.dbError(ctx, "transfer by id", err)
	}
	return t, nil
}

// externalAccount returns the outside-world account of currency, opening
// it on first use.
func (s *Store) externalAccount(ctx context.Context, q querier, currency string) (Account, error) {
	for attempt := 0; attempt < 5; attempt++ {
		a, err := scanAccount(q.QueryRow(ctx, `
			SELECT `+accountColumns+` FROM accounts WHERE kind = 'external' AND currency = $1`, currency))
		if !errors.Is(err, pgx.ErrNoRows) {
			return a, err
		}
		number, err := newAccountNumber()
		if err != nil {
			return Account{}, err
		}
		// DO NOTHING without a target also absorbs a concurrent creation
		// (the partial unique index on currency) and a number collision.
		if _, err := q.Exec(ctx, `
			INSERT INTO accounts (number, customer_id, kind, currency)
			SELECT $1, id, 'external', $2 FROM customers WHERE is_system
			ON CONFLICT DO NOTHING`, number, currency); err != nil {
			return Account{}, err
		}
	}
	return Account{}, errors.New("could not open the external account")
}

// Deposit moves money from the outside world into an account: a real
// double-entry transfer from the external account of the account's
// currency, initiated by the system customer. Demo data and tests use it.
func (s *Store) Deposit(ctx context.Context, toNumber string, amount int64, memo string, now time.Time) (Transfer, error) {
	to, err := s.AccountByNumber(ctx, toNumber)
	if err != nil {
		return Transfer{}, err
	}
	ext, err := s.externalAccount(ctx, s.pool, to.Currency)
	if err != nil {
		return Transfer{}, s.dbError(ctx, "deposit", err)
	}
	key, err := randomKey("deposit-")
	if err != nil {
		return Transfer{}, s.dbError(ctx, "deposit", err)
	}
	t, _, err := s.Transfer(ctx, TransferParams{
		CustomerID: ext.CustomerID, IdempotencyKey: key, FromNumber: ext.Number, ToNumber: to.Number,
		Amount: amount, Memo: memo, Now: now,
	})
	return t, err
}

func randomKey(prefix string) (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return prefix + hex.EncodeToString(b), nil
}

// AccountsAndPayees returns what a transfer form offers: the customer's
// accounts, oldest first (as ListAccounts), and payees in nickname order
// (as ListPayees), read in one round trip.
func (s *Store) AccountsAndPayees(ctx context.Context, customerID int64) ([]Account, []Payee, error) {
	batch := &pgx.Batch{}
	var accounts []Account
	var payees []Payee
	batch.Queue(sqlListAccounts, customerID).Query(func(rows pgx.Rows) error {
		var err error
		accounts, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Account, error) { return scanAccount(r) })
		return err
	})
	batch.Queue(sqlListPayees, customerID).Query(func(rows pgx.Rows) error {
		var err error
		payees, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Payee, error) { return scanPayee(r) })
		return err
	})
	if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
		return nil, nil, s.dbError(ctx, "accounts and payees", err)
	}
	return accounts, payees, nil
}
