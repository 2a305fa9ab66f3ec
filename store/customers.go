package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Customer is a person who can sign in. The system customer that owns the
// outside-world accounts is never returned by the lookups.
type Customer struct {
	ID            int64
	Username      string
	DisplayName   string
	PasswordHash  string // PHC string, e.g. "$argon2id$v=19$m=19456,t=2,p=1$..."
	CreatedAt     time.Time
	FailedSignIns int
	LockedUntil   *time.Time
	LastSignInAt  *time.Time
}

// SignInEvent is one row of the sign-in audit trail.
type SignInEvent struct {
	CustomerID *int64 // nil when the username matched nobody
	Username   string
	ClientIP   string
	UserAgent  string
	Outcome    string // one of the Outcome constants (lower-case word)
	CreatedAt  time.Time
}

// querier is what both a pool and a transaction offer, so helpers can run
// inside or outside a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var (
	usernameRules    = textRules{min: 1, max: MaxUsernameLen, noSpaces: true}
	displayNameRules = textRules{min: 1, max: MaxDisplayNameLen, trimmed: true, noHidden: true}
	hashRules        = textRules{min: 1, max: MaxPasswordHashLen, noSpaces: true}
	outcomeWord      = regexp.MustCompile(`^[a-z_]{1,32}$`)
)

const customerColumns = `id, username, display_name, password_hash, created_at, failed_signins, locked_until, last_signin_at`

func scanCustomer(row pgx.Row) (Customer, error) {
	var c Customer
	err := row.Scan(&c.ID, &c.Username, &c.DisplayName, &c.PasswordHash, &c.CreatedAt,
		&c.FailedSignIns, &c.LockedUntil, &c.LastSignInAt)
	return c, err
}

// CreateCustomer signs up a customer and opens their first account, a
// checking account in DefaultCurrency, in one transaction. A username that
// is taken in any letter case gives ErrAlreadyExists.
func (s *Store) CreateCustomer(ctx context.Context, username, displayName, passwordHash string, now time.Time) (Customer, Account, error) {
	if err := checkText("username", username, usernameRules); err != nil {
		return Customer{}, Account{}, err
	}
	if err := checkText("display_name", displayName, displayNameRules); err != nil {
		return Customer{}, Account{}, err
	}
	if err := checkText("password_hash", passwordHash, hashRules); err != nil {
		return Customer{}, Account{}, err
	}
	if !strings.HasPrefix(passwordHash, "$") {
		return Customer{}, Account{}, inputError("password_hash", "must be a PHC string")
	}
	at := dbTime(now)
	var c Customer
	var a Account
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		c, err = scanCustomer(tx.QueryRow(ctx, `
			INSERT INTO customers (username, display_name, password_hash, created_at)
			VALUES ($1, $2, $3, $4)
			ON CONFLICT ((lower(username))) DO NOTHING
			RETURNING `+customerColumns,
			username, displayName, passwordHash, at))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrAlreadyExists
		}
		if err != nil {
			return err
		}
		a, err = s.insertAccount(ctx, tx, c.ID, "checking", DefaultCurrency, at)
		return err
	})
	if errors.Is(err, ErrAlreadyExists) {
		return Customer{}, Account{}, fmt.Errorf("store: create customer: username %w", ErrAlreadyExists)
	}
	if err != nil {
		return Customer{}, Account{}, s.dbError(ctx, "create customer", err)
	}
	return c, a, nil
}

// CustomerByUsername finds a customer by username, ignoring letter case.
func (s *Store) CustomerByUsername(ctx context.Context, username string) (Customer, error) {
	if err := checkEncoding("username", username); err != nil {
		return Customer{}, err
	}
	if len(username) > 4*MaxUsernameLen {
		return Customer{}, fmt.Errorf("store: customer by username: %w", ErrNotFound)
	}
	c, err := scanCustomer(s.pool.QueryRow(ctx, `
		SELECT `+customerColumns+` FROM customers
		WHERE lower(username) = lower($1) AND NOT is_system`, username))
	if err != nil {
		return Customer{}, s.dbError(ctx, "customer by username", err)
	}
	return c, nil
}

// CustomerByID finds a customer by id.
func (s *Store) CustomerByID(ctx context.Context, id int64) (Customer, error) {
	c, err := scanCustomer(s.pool.QueryRow(ctx, `
		SELECT `+customerColumns+` FROM customers WHERE id = $1 AND NOT is_system`, id))
	if err != nil {
		return Customer{}, s.dbError(ctx, "customer by id", err)
	}
	return c, nil
}

// RecordSignInFailure counts a failed sign-in atomically (concurrent
// failures are all counted) and returns the new count. Once the count
// reaches lockAfter, this failure and every further one until a success
// lock the customer until now+lockFor, so an attacker gets one guess per
// lock period. lockAfter <= 0 or lockFor <= 0 never locks.
func (s *Store) RecordSignInFailure(ctx context.Context, customerID int64, now time.Time, lockAfter int, lockFor time.Duration) (int, *time.Time, error) {
	at := dbTime(now)
	var until *time.Time
	if lockAfter > 0 && lockFor > 0 {
		u := at.Add(lockFor)
		until = &u
	}
	var failed int
	var lockedUntil *time.Time
	err := s.pool.QueryRow(ctx, `
		UPDATE customers
		   SET failed_signins = failed_signins + 1,
		       locked_until = CASE
		           WHEN $2::timestamptz IS NOT NULL AND failed_signins + 1 >= $3
		           THEN greatest($2::timestamptz, locked_until)
		           ELSE locked_until END
		 WHERE id = $1 AND NOT is_system
		RETURNING failed_signins, locked_until`,
		customerID, until, lockAfter).Scan(&failed, &lockedUntil)
	if err != nil {
		return 0, nil, s.dbError(ctx, "record sign-in failure", err)
	}
	return failed, lockedUntil, nil
}

// RecordSignInSuccess clears the failure count and any lock and remembers
// when the customer last signed in.
func (s *Store) RecordSignInSuccess(ctx context.Context, customerID int64, now time.Time) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE customers SET failed_signins = 0, locked_until = NULL, last_signin_at = $2
		 WHERE id = $1 AND NOT is_system`, customerID, dbTime(now))
	if err != nil {
		return s.dbError(ctx, "record sign-in success", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: record sign-in success: %w", ErrNotFound)
	}
	return nil
}

// AddSignInEvent appends to the sign-in audit trail. Username, client IP
// and user agent are recorded even when hostile: invalid UTF-8 becomes
// U+FFFD, control characters are dropped and overlong values are cut.
func (s *Store) AddSignInEvent(ctx context.Context, e SignInEvent) error {
	if !outcomeWord.MatchString(e.Outcome) {
		return inputError("outcome", "must be a lower-case word")
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO signin_events (customer_id, username, client_ip, user_agent, outcome, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		e.CustomerID, auditText(e.Username, 256), auditText(e.ClientIP, MaxClientIPLen),
		auditText(e.UserAgent, MaxUserAgentLen), e.Outcome, dbTime(e.CreatedAt))
	if err != nil {
		return s.dbError(ctx, "add sign-in event", err)
	}
	return nil
}

// SignInFailures are the recent failed sign-ins (any outcome but
// OutcomeSuccess) that sign-in throttling weighs.
type SignInFailures struct {
	// Username counts failures for the username from anywhere, since its
	// latest success.
	Username int
	// Pair counts failures for the username from this client IP, since the
	// latest success from this client IP: a success elsewhere (the owner)
	// does not give a guesser a fresh allowance.
	Pair int
	// ClientIP counts failures from the client IP for any username.
	ClientIP int
}

// recentFailuresSQL counts failures since $3 per username, per (username,
// client IP) pair and per client IP. greatest ignores NULL, so a username
// with no success in the window counts the whole window.
const recentFailuresSQL = `
		WITH ok AS (
		    SELECT max(created_at) AS any_ip,
		           max(created_at) FILTER (WHERE client_ip = $2) AS this_ip
		      FROM signin_events
		     WHERE lower(username) = lower($1) AND outcome = 'success' AND created_at >= $3)
		SELECT (SELECT count(*) FROM signin_events e
		         WHERE lower(e.username) = lower($1) AND e.outcome <> 'success'
		           AND e.created_at >= greatest($3, ok.any_ip)),
		       (SELECT count(*) FROM signin_events e
		         WHERE lower(e.username) = lower($1) AND e.outcome <> 'success' AND e.client_ip = $2
		           AND e.created_at >= greatest($3, ok.this_ip)),
		       (SELECT count(*) FROM signin_events
		         WHERE client_ip = $2 AND created_at >= $3 AND outcome <> 'success')
		  FROM ok`

// RecentFailures counts failed sign-ins since the given time for one
// username (any letter case), for that username from one client IP, and for
// the client IP, so the app tier can throttle guessing one password from
// many places and many passwords from one place.
func (s *Store) RecentFailures(ctx context.Context, username, clientIP string, since time.Time) (SignInFailures, error) {
	var f SignInFailures
	err := s.pool.QueryRow(ctx, recentFailuresSQL,
		auditText(username, 256), auditText(clientIP, MaxClientIPLen), since.UTC()).Scan(&f.Username, &f.Pair, &f.ClientIP)
	if err != nil {
		return SignInFailures{}, s.dbError(ctx, "recent failures", err)
	}
	return f, nil
}

// SignInLookup fetches what a sign-in attempt needs in one round trip: the
// customer with that username (found is false when there is none) and the
// recent failures, as RecentFailures counts them.
func (s *Store) SignInLookup(ctx context.Context, username, clientIP string, since time.Time) (c Customer, found bool, f SignInFailures, err error) {
	if checkEncoding("username", username) != nil || len(username) > 4*MaxUsernameLen {
		// No customer can have such a name; the failures still count.
		f, err = s.RecentFailures(ctx, username, clientIP, since)
		return Customer{}, false, f, err
	}
	b := &pgx.Batch{}
	b.Queue(recentFailuresSQL, auditText(username, 256), auditText(clientIP, MaxClientIPLen), since.UTC())
	b.Queue(`SELECT `+customerColumns+` FROM customers WHERE lower(username) = lower($1) AND NOT is_system`, username)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	if err := br.QueryRow().Scan(&f.Username, &f.Pair, &f.ClientIP); err != nil {
		return Customer{}, false, SignInFailures{}, s.dbError(ctx, "sign-in lookup", err)
	}
	c, err = scanCustomer(br.QueryRow())
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Customer{}, false, f, nil
	case err != nil:
		return Customer{}, false, SignInFailures{}, s.dbError(ctx, "sign-in lookup", err)
	}
	return c, true, f, nil
}
