package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
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
	// included). Moves between one's own accounts do not count. 0 = none.
	DailyLimit int64
	Now        time.Time // zero = the current time
}

// transferAttempts bounds the retries of a transfer transaction that the
// server aborted as a deadlock or serialization failure. With the lock
// order used below neither should happen; the retry is a safety net that
// the caller never sees.
const transferAttempts = 5

var memoRules = textRules{min: 0, max: MaxMemoLen}
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
func (s *Store) Transfer(ctx context.Context, p TransferParams) (t Transfer, replayed bool, err error) {
	if err := p.normalize(); err != nil {
		return Transfer{}, false, err
	}
	at := dbTime(p.Now)
	for attempt := 1; ; attempt++ {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var err error
			t, replayed, err = s.transferTx(ctx, tx, p, at)
			return err
		})
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

// SQL of the transfer transaction, shared with the benchmark baseline.
const (
	sqlTransferByKey = `
		SELECT t.id, t.customer_id, t.idempotency_key, f.number, o.number, t.amount, t.currency, t.memo, t.created_at, t.fingerprint
		  FROM transfers t
		  JOIN accounts f ON f.id = t.from_account
		  JOIN accounts o ON o.id = t.to_account
		 WHERE t.customer_id = $1 AND t.idempotency_key = $2`
	// Serialises one customer's limited transfers so that two of them
	// cannot both pass the daily-limit sum. Taken before any account lock,
	// so every transaction takes its locks in the same order.
	sqlLockCustomer = `SELECT 1 FROM customers WHERE id = $1 FOR NO KEY UPDATE`
	// Locks both accounts in id order, so two transfers between the same
	// pair in opposite directions cannot deadlock. FOR NO KEY UPDATE (not
	// FOR UPDATE) leaves the foreign-key checks of unrelated inserts that
	// reference these accounts unblocked.
	sqlLockAccounts = `
		SELECT id, customer_id, number, kind, currency, balance
		  FROM accounts WHERE number = ANY($1) ORDER BY id FOR NO KEY UPDATE`
	// ON CONFLICT waits for a concurrent transaction holding the same key
	// and then yields no row, which the caller resolves as a replay.
	sqlInsertTransfer = `
		INSERT INTO transfers (customer_id, idempotency_key, from_account, to_account, amount, currency, memo, fingerprint, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (customer_id, idempotency_key) DO NOTHING
		RETURNING id`
	sqlDailyTotal = `
		SELECT coalesce(sum(t.amount), 0)
		  FROM transfers t JOIN accounts a ON a.id = t.to_account
		 WHERE t.customer_id = $1 AND t.created_at >= $2 AND t.created_at < $3
		   AND t.currency = $4 AND a.customer_id <> $1`
	sqlAddBalance    = `UPDATE accounts SET balance = balance + $2 WHERE id = $1`
	sqlInsertEntries = `
		INSERT INTO ledger_entries (account_id, transfer_id, amount, balance_after, created_at)
		VALUES ($1, $2, $3, $4, $5), ($6, $2, $7, $8, $5)`
)

type lockedAccount struct {
	id, customerID int64
	number, kind   string
	currency       string
	balance        int64
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

// transferTx runs the transfer inside tx. Domain errors are returned
// wrapped; database errors raw, for the caller to retry or map.
func (s *Store) transferTx(ctx context.Context, tx pgx.Tx, p TransferParams, at time.Time) (Transfer, bool, error) {
	// A retry of a finished request is answered without taking any lock.
	prev, err := transferByKey(ctx, tx, p.CustomerID, p.IdempotencyKey)
	if err == nil {
		return replay(prev, p)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return Transfer{}, false, err
	}

	if p.DailyLimit > 0 {
		if _, err := tx.Exec(ctx, sqlLockCustomer, p.CustomerID); err != nil {
			return Transfer{}, false, err
		}
	}
	rows, err := tx.Query(ctx, sqlLockAccounts, []string{p.FromNumber, p.ToNumber})
	if err != nil {
		return Transfer{}, false, err
	}
	var from, to *lockedAccount
	for rows.Next() {
		var a lockedAccount
		if err := rows.Scan(&a.id, &a.customerID, &a.number, &a.kind, &a.currency, &a.balance); err != nil {
			rows.Close()
			return Transfer{}, false, err
		}
		if a.number == p.FromNumber {
			from = &a
		}
		if a.number == p.ToNumber {
			to = &a
		}
	}
	if err := rows.Err(); err != nil {
		return Transfer{}, false, err
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

	var id int64
	err = tx.QueryRow(ctx, sqlInsertTransfer, p.CustomerID, p.IdempotencyKey, from.id, to.id, p.Amount,
		from.currency, p.Memo, fingerprint(p.FromNumber, p.ToNumber, p.Amount, from.currency, p.Memo), at).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		// A concurrent request with the same key committed first.
		prev, err := transferByKey(ctx, tx, p.CustomerID, p.IdempotencyKey)
		if err != nil {
			return Transfer{}, false, err
		}
		return replay(prev, p)
	}
	if err != nil {
		return Transfer{}, false, err
	}

	// The checks below come after the insert so that a concurrent duplicate
	// is recognised as a replay even when this account can no longer pay;
	// failing them rolls the insert back.
	if from.kind != KindExternal && from.balance < p.Amount {
		return Transfer{}, false, fmt.Errorf("store: transfer: %w", ErrInsufficientFunds)
	}
	if from.balance < math.MinInt64+p.Amount || to.balance > math.MaxInt64-p.Amount {
		return Transfer{}, false, inputError("amount", "would overflow the balance")
	}
	if p.DailyLimit > 0 && to.customerID != p.CustomerID {
		day := at.Truncate(24 * time.Hour) // UTC midnight: at is in UTC
		var total int64
		if err := tx.QueryRow(ctx, sqlDailyTotal, p.CustomerID, day, day.Add(24*time.Hour), from.currency).Scan(&total); err != nil {
			return Transfer{}, false, err
		}
		if total > p.DailyLimit {
			return Transfer{}, false, fmt.Errorf("store: transfer: %w", ErrDailyLimit)
		}
	}

	// The three writes go in one round trip.
	batch := &pgx.Batch{}
	batch.Queue(sqlAddBalance, from.id, -p.Amount)
	batch.Queue(sqlAddBalance, to.id, p.Amount)
	batch.Queue(sqlInsertEntries, from.id, id, -p.Amount, from.balance-p.Amount, at,
		to.id, p.Amount, to.balance+p.Amount)
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return Transfer{}, false, err
	}
	return Transfer{
		ID: id, CustomerID: p.CustomerID, IdempotencyKey: p.IdempotencyKey,
		FromNumber: from.number, ToNumber: to.number, Amount: p.Amount,
		Currency: from.currency, Memo: p.Memo, CreatedAt: at,
	}, false, nil
}

// TransferByID returns a transfer if customerID owns its from or its to
// account; otherwise ErrNotFound, so ids reveal nothing about other
// customers' transfers.
func (s *Store) TransferByID(ctx context.Context, customerID, transferID int64) (Transfer, error) {
	var t Transfer
	err := s.pool.QueryRow(ctx, `
		SELECT t.id, t.customer_id, t.idempotency_key, f.number, o.number, t.amount, t.currency, t.memo, t.created_at
		  FROM transfers t
		  JOIN accounts f ON f.id = t.from_account
		  JOIN accounts o ON o.id = t.to_account
		 WHERE t.id = $1 AND $2 IN (f.customer_id, o.customer_id)`, transferID, customerID).Scan(
		&t.ID, &t.CustomerID, &t.IdempotencyKey, &t.FromNumber, &t.ToNumber, &t.Amount, &t.Currency, &t.Memo, &t.CreatedAt)
	if err != nil {
		return Transfer{}, s.dbError(ctx, "transfer by id", err)
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
