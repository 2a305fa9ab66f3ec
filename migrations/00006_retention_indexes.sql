-- The app tier's retention job deletes, every hour, sessions that expired
-- more than a day ago and sign-in events older than the audit retention
-- (store.PurgeSessions, store.PurgeSignInEvents). Both select by time;
-- without these indexes each run would read the whole table. Every session
-- has an expiry (the absolute lifetime), revoked ones too, so expires_at
-- alone finds every ended session.

-- +goose Up
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
CREATE INDEX signin_events_created_idx ON signin_events (created_at);

-- +goose Down
DROP INDEX signin_events_created_idx;
DROP INDEX sessions_expires_idx;
