package store

import (
	"context"
	"time"
)

// purgeBatch bounds the rows one purge statement deletes: a large backlog
// is worked off in short statements that never hold many row locks or
// bloat one transaction.
var purgeBatch = 5000

// PurgeSessions deletes sessions that expired before cutoff and returns how
// many. Revoked sessions keep their expiry, so they go too, at most the
// absolute lifetime after sign-in. The caller picks the cutoff (the app
// tier: a day ago), which must not be zero.
func (s *Store) PurgeSessions(ctx context.Context, cutoff time.Time) (int64, error) {
	return s.purge(ctx, "purge sessions", `
		DELETE FROM sessions WHERE id = ANY (ARRAY(
			SELECT id FROM sessions WHERE expires_at < $1 ORDER BY expires_at LIMIT $2))`, cutoff)
}

// PurgeSignInEvents deletes sign-in audit events recorded before cutoff
// and returns how many. The cutoff must lie before any throttling window
// still in use, and must not be zero.
func (s *Store) PurgeSignInEvents(ctx context.Context, cutoff time.Time) (int64, error) {
	return s.purge(ctx, "purge sign-in events", `
		DELETE FROM signin_events WHERE id = ANY (ARRAY(
			SELECT id FROM signin_events WHERE created_at < $1 ORDER BY created_at LIMIT $2))`, cutoff)
}

func (s *Store) purge(ctx context.Context, what, sql string, cutoff time.Time) (int64, error) {
	if cutoff.IsZero() {
		return 0, inputError("cutoff", "must be set")
	}
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, sql, dbTime(cutoff), purgeBatch)
		if err != nil {
			return total, s.dbError(ctx, what, err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(purgeBatch) {
			return total, nil
		}
	}
}
