-- Sign-in throttling reads two things per attempt: the failures of one
-- username (or one client IP) in a window, and the username's latest
-- success. Successes far outnumber failures, and a busy username or a shared
-- address (NAT) can have thousands of them in a window; with the indexes of
-- 00001 each count would visit every one of them. Partial indexes keep both
-- reads proportional to the failures alone, and the latest success one index
-- probe.

-- +goose Up
CREATE INDEX signin_events_username_failures_idx ON signin_events (lower(username), created_at)
    WHERE outcome <> 'success';
CREATE INDEX signin_events_ip_failures_idx ON signin_events (client_ip, created_at)
    WHERE outcome <> 'success';
CREATE INDEX signin_events_username_successes_idx ON signin_events (lower(username), created_at)
    WHERE outcome = 'success';
DROP INDEX signin_events_username_idx;
DROP INDEX signin_events_ip_idx;

-- +goose Down
CREATE INDEX signin_events_ip_idx ON signin_events (client_ip, created_at);
CREATE INDEX signin_events_username_idx ON signin_events (lower(username), created_at);
DROP INDEX signin_events_username_successes_idx;
DROP INDEX signin_events_ip_failures_idx;
DROP INDEX signin_events_username_failures_idx;
