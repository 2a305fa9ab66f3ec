package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Payee is an account a customer saved under a nickname to pay it again.
type Payee struct {
	ID         int64
	CustomerID int64
	Nickname   string
	Number     string
	CreatedAt  time.Time
}

var nicknameRules = textRules{min: 1, max: MaxNicknameLen, trimmed: true, noBidi: true}

const payeeColumns = `p.id, p.customer_id, p.nickname, a.number, p.created_at`

func scanPayee(row pgx.Row) (Payee, error) {
	var p Payee
	err := row.Scan(&p.ID, &p.CustomerID, &p.Nickname, &p.Number, &p.CreatedAt)
	return p, err
}

// AddPayee saves number under nickname for a customer. The account must
// exist (ErrNotFound) and must not be the customer's own; a customer's
// payees are unique by account and by nickname in any letter case
// (ErrAlreadyExists). A customer may keep at most MaxPayees payees.
func (s *Store) AddPayee(ctx context.Context, customerID int64, nickname, number string, now time.Time) (Payee, error) {
	if err := checkText("nickname", nickname, nicknameRules); err != nil {
		return Payee{}, err
	}
	if err := checkEncoding("number", number); err != nil {
		return Payee{}, err
	}
	number = NormalizeAccountNumber(number)
	if !ValidAccountNumber(number) {
		return Payee{}, inputError("number", "is not a valid account number")
	}
	var p Payee
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The customer lock makes the count below exact under concurrency.
		var n int
		if err := tx.QueryRow(ctx, `
			SELECT (SELECT count(*) FROM payees WHERE customer_id = c.id)
			  FROM customers c WHERE c.id = $1 AND NOT c.is_system
			   FOR NO KEY UPDATE OF c`, customerID).Scan(&n); err != nil {
			return err
		}
		if n >= MaxPayees {
			return inputError("nickname", fmt.Sprintf("a customer may keep at most %d payees", MaxPayees))
		}
		var owner, accountID int64
		if err := tx.QueryRow(ctx, `SELECT id, customer_id FROM accounts WHERE number = $1`, number).Scan(&accountID, &owner); err != nil {
			return err
		}
		if owner == customerID {
			return inputError("number", "is one of your own accounts")
		}
		var err error
		p, err = scanPayee(tx.QueryRow(ctx, `
			WITH p AS (
				INSERT INTO payees (customer_id, nickname, account_id, created_at)
				VALUES ($1, $2, $3, $4)
				RETURNING id, customer_id, nickname, account_id, created_at)
			SELECT `+payeeColumns+` FROM p JOIN accounts a ON a.id = p.account_id`,
			customerID, nickname, accountID, dbTime(now)))
		return err
	})
	var ie *InputError
	if errors.As(err, &ie) {
		return Payee{}, err
	}
	if err != nil {
		return Payee{}, s.dbError(ctx, "add payee", err)
	}
	return p, nil
}

// RenamePayee changes a payee's nickname. Another payee of the customer
// with that nickname gives ErrAlreadyExists; a payee of someone else gives
// ErrNotFound.
func (s *Store) RenamePayee(ctx context.Context, customerID, payeeID int64, nickname string) (Payee, error) {
	if err := checkText("nickname", nickname, nicknameRules); err != nil {
		return Payee{}, err
	}
	p, err := scanPayee(s.pool.QueryRow(ctx, `
		WITH p AS (
			UPDATE payees SET nickname = $3 WHERE id = $2 AND customer_id = $1
			RETURNING id, customer_id, nickname, account_id, created_at)
		SELECT `+payeeColumns+` FROM p JOIN accounts a ON a.id = p.account_id`,
		customerID, payeeID, nickname))
	if err != nil {
		return Payee{}, s.dbError(ctx, "rename payee", err)
	}
	return p, nil
}

// DeletePayee removes a payee of the customer; ErrNotFound otherwise.
func (s *Store) DeletePayee(ctx context.Context, customerID, payeeID int64) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM payees WHERE id = $2 AND customer_id = $1`, customerID, payeeID)
	if err != nil {
		return s.dbError(ctx, "delete payee", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: delete payee: %w", ErrNotFound)
	}
	return nil
}

// sqlListPayees lists a customer's payees in nickname order.
const sqlListPayees = `
	SELECT ` + payeeColumns + ` FROM payees p JOIN accounts a ON a.id = p.account_id
	 WHERE p.customer_id = $1 ORDER BY lower(p.nickname), p.id`

// ListPayees returns a customer's payees in nickname order.
func (s *Store) ListPayees(ctx context.Context, customerID int64) ([]Payee, error) {
	rows, err := s.pool.Query(ctx, sqlListPayees, customerID)
	if err != nil {
		return nil, s.dbError(ctx, "list payees", err)
	}
	payees, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Payee, error) { return scanPayee(r) })
	if err != nil {
		return nil, s.dbError(ctx, "list payees", err)
	}
	return payees, nil
}
