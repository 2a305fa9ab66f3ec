package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Session is a signed-in browser. Only the sha256 of its token is stored.
type Session struct {
	ID         int64
	CustomerID int64
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
	RevokedAt  *time.Time
	UserAgent  string
	ClientIP   string
}

// Active reports whether the session may be used at time t: not revoked and
// not expired. SessionByTokenHash returns sessions in any state, so callers
// must check.
func (s Session) Active(t time.Time) bool {
	return s.RevokedAt == nil && t.Before(s.ExpiresAt)
}

const sessionColumns = `id, customer_id, created_at, last_seen_at, expires_at, revoked_at, user_agent, client_ip`

func scanSession(row pgx.Row) (Session, error) {
	var s Session
	err := row.Scan(&s.ID, &s.CustomerID, &s.CreatedAt, &s.LastSeenAt, &s.ExpiresAt, &s.RevokedAt, &s.UserAgent, &s.ClientIP)
	return s, err
}

// CreateSession stores a new session for customerID. tokenHash must be the
// sha256 of the token (32 bytes). User agent and client IP are recorded as
// given, minus invalid UTF-8 and control characters, cut to their maximum
// lengths: they describe the session and must never make sign-in fail.
func (s *Store) CreateSession(ctx context.Context, tokenHash []byte, customerID int64, now, expiresAt time.Time, userAgent, clientIP string) (Session, error) {
	if len(tokenHash) != sha256.Size {
		return Session{}, inputError("token_hash", "must be a sha256 digest")
	}
	at := dbTime(now)
	exp := expiresAt.UTC().Truncate(time.Microsecond)
	if !exp.After(at) {
		return Session{}, inputError("expires_at", "must be after the creation time")
	}
	sess, err := scanSession(s.pool.QueryRow(ctx, `
		INSERT INTO sessions (token_hash, customer_id, created_at, last_seen_at, expires_at, user_agent, client_ip)
		SELECT $1, id, $3, $3, $4, $5, $6 FROM customers WHERE id = $2 AND NOT is_system
		RETURNING `+sessionColumns,
		tokenHash, customerID, at, exp, auditText(userAgent, MaxUserAgentLen), auditText(clientIP, MaxClientIPLen)))
	if err != nil {
		return Session{}, s.dbError(ctx, "create session", err)
	}
	return sess, nil
}

// SessionByTokenHash finds a session by the sha256 of its token, whatever
// its state; see Session.Active.
func (s *Store) SessionByTokenHash(ctx context.Context, tokenHash []byte) (Session, error) {
	if len(tokenHash) != sha256.Size {
		return Session{}, fmt.Errorf("store: session by token: %w", ErrNotFound)
	}
	sess, err := scanSession(s.pool.QueryRow(ctx, `
		SELECT `+sessionColumns+` FROM sessions WHERE token_hash = $1`, tokenHash))
	if err != nil {
		return Session{}, s.dbError(ctx, "session by token", err)
	}
	return sess, nil
}

// TouchSession records activity on a live session. Time never moves
// backwards, so concurrent requests may touch in any order. A revoked or
// unknown session gives ErrNotFound.
func (s *Store) TouchSession(ctx context.Context, sessionID int64, now time.Time) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE sessions SET last_seen_at = greatest(last_seen_at, $2)
		 WHERE id = $1 AND revoked_at IS NULL`, sessionID, dbTime(now))
	if err != nil {
		return s.dbError(ctx, "touch session", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: touch session: %w", ErrNotFound)
	}
	return nil
}

// notifyRevoked follows a CTE named revoked (id, customer_id of the
// sessions just revoked): it announces them on Channel (NotifySession), one
// row per customer and batch of 200 ids, so the statement's row count is 0
// exactly when nothing was revoked. The batches keep each payload well
// under PostgreSQL's 8000-byte NOTIFY limit: a customer may have many
// sessions (sign-in is not limited per customer). NOTIFY is sent at
// commit, so nobody hears of a revocation that did not happen.
const notifyRevoked = `
		SELECT pg_notify('` + Channel + `', json_build_object(
		           'kind', '` + NotifySession + `', 'customer_id', customer_id, 'session_ids', array_agg(id ORDER BY id))::text)
		  FROM (SELECT id, customer_id,
		               (row_number() OVER (PARTITION BY customer_id ORDER BY id) - 1) / 200 AS batch
		          FROM revoked) r
		 GROUP BY customer_id, batch`

// RevokeSession ends a session (sign-out). Revoking an already revoked
// session succeeds and keeps the first revocation time; an unknown token
// gives ErrNotFound.
func (s *Store) RevokeSession(ctx context.Context, tokenHash []byte, now time.Time) error {
	if len(tokenHash) != sha256.Size {
		return fmt.Errorf("store: revoke session: %w", ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `
		WITH revoked AS (
		    UPDATE sessions SET revoked_at = coalesce(revoked_at, $2) WHERE token_hash = $1
		    RETURNING id, customer_id
		)`+notifyRevoked, tokenHash, dbTime(now))
	if err != nil {
		return s.dbError(ctx, "revoke session", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: revoke session: %w", ErrNotFound)
	}
	return nil
}

// RevokeAllSessions ends every live session of a customer ("sign out
// everywhere", or after a password change).
func (s *Store) RevokeAllSessions(ctx context.Context, customerID int64, now time.Time) error {
	_, err := s.pool.Exec(ctx, `
		WITH revoked AS (
		    UPDATE sessions SET revoked_at = $2 WHERE customer_id = $1 AND revoked_at IS NULL
		    RETURNING id, customer_id
		)`+notifyRevoked, customerID, dbTime(now))
	if err != nil {
		return s.dbError(ctx, "revoke all sessions", err)
	}
	return nil
}

// CompleteSignIn records a successful sign-in in one statement, so one round
// trip instead of three: it clears the customer's failures and lock, notes
// the time, appends the "success" audit event and creates the session. (On
// the app tier's cores sign-in competes with argon2id; every round trip
// saved is hashing time.) ErrNotFound when the customer does not exist or is
// the system customer.
func (s *Store) CompleteSignIn(ctx context.Context, customerID int64, username string, tokenHash []byte, now, expiresAt time.Time, userAgent, clientIP string) (Session, error) {
	if len(tokenHash) != sha256.Size {
		return Session{}, inputError("token_hash", "must be a sha256 digest")
	}
	at := dbTime(now)
	exp := expiresAt.UTC().Truncate(time.Microsecond)
	if !exp.After(at) {
		return Session{}, inputError("expires_at", "must be after the creation time")
	}
	sess, err := scanSession(s.pool.QueryRow(ctx, `
		WITH cust AS (
		    UPDATE customers SET failed_signins = 0, locked_until = NULL, last_signin_at = $3
		     WHERE id = $2 AND NOT is_system
		    RETURNING id
		), audit AS (
		    INSERT INTO signin_events (customer_id, username, client_ip, user_agent, outcome, created_at)
		    SELECT id, $7, $6, $5, 'success', $3 FROM cust
		)
		INSERT INTO sessions (token_hash, customer_id, created_at, last_seen_at, expires_at, user_agent, client_ip)
		SELECT $1, id, $3, $3, $4, $5, $6 FROM cust
		RETURNING `+sessionColumns,
		tokenHash, customerID, at, exp, auditText(userAgent, MaxUserAgentLen), auditText(clientIP, MaxClientIPLen), auditText(username, 256)))
	if err != nil {
		return Session{}, s.dbError(ctx, "complete sign-in", err)
	}
	return sess, nil
}
