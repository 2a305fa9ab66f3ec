-- Customers, their sign-in sessions and the sign-in audit trail.

-- +goose Up

CREATE TABLE customers (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       text        NOT NULL,
    display_name   text        NOT NULL,
    -- A PHC string ("$argon2id$v=19$..."), computed by the app tier. The
    -- system customer has none and therefore can never sign in.
    password_hash  text        NOT NULL,
    -- The system customer owns the "external" accounts that stand for the
    -- outside world (employers, landlords, shops).
    is_system      boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    failed_signins integer     NOT NULL DEFAULT 0,
    locked_until   timestamptz,
    last_signin_at timestamptz,
    CONSTRAINT customers_username_length CHECK (char_length(username) BETWEEN 1 AND 64),
    CONSTRAINT customers_display_name_length CHECK (char_length(display_name) BETWEEN 1 AND 100),
    CONSTRAINT customers_password_hash_phc CHECK (
        (is_system AND password_hash = '')
        OR (NOT is_system AND password_hash LIKE '$%' AND char_length(password_hash) <= 512)
    ),
    CONSTRAINT customers_failed_signins_nonnegative CHECK (failed_signins >= 0)
);

-- Usernames are unique regardless of case: "Alice" and "alice" are one
-- person. An expression index instead of citext keeps the schema free of
-- extensions, and every lookup uses lower(username) to hit it.
CREATE UNIQUE INDEX customers_username_lower_key ON customers (lower(username));

-- At most one system customer; also how the store finds it.
CREATE UNIQUE INDEX customers_system_key ON customers (is_system) WHERE is_system;

INSERT INTO customers (username, display_name, password_hash, is_system)
VALUES ('bankwire-system', 'The outside world', '', true);

CREATE TABLE sessions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- sha256 of the opaque token: a database leak does not leak sessions.
    token_hash   bytea       NOT NULL,
    customer_id  bigint      NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    user_agent   text        NOT NULL DEFAULT '',
    client_ip    text        NOT NULL DEFAULT '',
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash),
    CONSTRAINT sessions_token_hash_sha256 CHECK (octet_length(token_hash) = 32),
    CONSTRAINT sessions_expiry_after_creation CHECK (expires_at > created_at),
    CONSTRAINT sessions_user_agent_length CHECK (char_length(user_agent) <= 512),
    CONSTRAINT sessions_client_ip_length CHECK (char_length(client_ip) <= 64)
);

-- RevokeAllSessions: only live sessions of one customer are touched.
CREATE INDEX sessions_customer_live_idx ON sessions (customer_id) WHERE revoked_at IS NULL;

CREATE TABLE signin_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- NULL when the username did not match any customer.
    customer_id bigint REFERENCES customers (id) ON DELETE SET NULL,
    username    text        NOT NULL,
    client_ip   text        NOT NULL,
    user_agent  text        NOT NULL,
    outcome     text        NOT NULL,
    created_at  timestamptz NOT NULL,
    CONSTRAINT signin_events_username_length CHECK (char_length(username) <= 256),
    CONSTRAINT signin_events_client_ip_length CHECK (char_length(client_ip) <= 64),
    CONSTRAINT signin_events_user_agent_length CHECK (char_length(user_agent) <= 512),
    CONSTRAINT signin_events_outcome_word CHECK (outcome ~ '^[a-z_]{1,32}$')
);

-- RecentFailures counts failures per client IP and per username in a window.
CREATE INDEX signin_events_ip_idx ON signin_events (client_ip, created_at);
CREATE INDEX signin_events_username_idx ON signin_events (lower(username), created_at);
CREATE INDEX signin_events_customer_idx ON signin_events (customer_id) WHERE customer_id IS NOT NULL;

-- +goose Down
DROP TABLE signin_events;
DROP TABLE sessions;
DROP TABLE customers;
