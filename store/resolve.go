package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// transferKeyVoidedConstraint names the refusal of a transfer whose key was
// closed by ResolveTransfer (migrations/00008_transfer_key_voids.sql).
const transferKeyVoidedConstraint = "transfers_key_not_voided"

// ResolveTransfer settles what happened to the transfer that customerID
// asked for with idempotency key key, after an attempt whose outcome the
// customer could not learn. fromNumber is the account that attempt paid
// from.
//
// If a transfer holds the key it is returned with made = true. Otherwise
// the key is closed and made = false: from now on a transfer with this key
// is refused with ErrKeyVoided, so "not made" stays true even if a copy of
// the request is still on its way. The answer is final either way, and
// asking again gives the same answer.
//
// It takes the advisory lock of (customer, key) that a transfer's insert
// also takes (migrations/00008_transfer_key_voids.sql) before it looks the
// key up, so a transfer in flight is either committed before the key is
// looked up or refused after it is closed. Errors: *InputError, ErrNotFound (fromNumber is not the
// customer's), ErrUnavailable.
func (s *Store) ResolveTransfer(ctx context.Context, customerID int64, key, fromNumber string, now time.Time) (t Transfer, made bool, err error) {
	if err := checkText("idempotency_key", key, keyRules); err != nil {
		return Transfer{}, false, err
	}
	if err := checkEncoding("from", fromNumber); err != nil {
		return Transfer{}, false, err
	}
	fromNumber = NormalizeAccountNumber(fromNumber)
	if !ValidAccountNumber(fromNumber) {
		return Transfer{}, false, inputError("from", "is not a valid account number")
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(transfer_key_lock($1, $2))`, customerID, key); err != nil {
			return err
		}
		var owner int64
		err := tx.QueryRow(ctx, `SELECT customer_id FROM accounts WHERE number = $1`, fromNumber).Scan(&owner)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && owner != customerID) {
			return fmt.Errorf("store: resolve transfer: from account: %w", ErrNotFound)
		}
		if err != nil {
			return err
		}
		prev, err := transferByKey(ctx, tx, customerID, key)
		if err == nil {
			t, made = prev.Transfer, true
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO transfer_key_voids (customer_id, idempotency_key, voided_at) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, customerID, key, dbTime(now))
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Transfer{}, false, err
		}
		return Transfer{}, false, s.dbError(ctx, "resolve transfer", err)
	}
	return t, made, nil
}
