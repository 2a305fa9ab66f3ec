-- A transfer whose outcome a customer could not learn (the bank did not
-- answer) is resolved by asking about its idempotency key
-- (store.ResolveTransfer). When no transfer holds the key, the answer
-- "not made" must stay true: a copy of the request still held up in a
-- network or queue must not make the transfer afterwards. So the key is
-- closed here, and the trigger refuses any transfer that uses a closed key.
--
-- A transfer's insert and the resolver take one transaction-scoped
-- advisory lock per (customer, key) before they look at the other's table,
-- so they cannot both miss each other's uncommitted row: a transfer that
-- got the lock first commits (or fails) before the resolver looks, and the
-- answer is "made"; one that gets it after the key is closed sees the
-- closed key, and is refused.

-- +goose Up
CREATE TABLE transfer_key_voids (
    customer_id     bigint      NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    idempotency_key text        NOT NULL,
    voided_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, idempotency_key),
    CONSTRAINT transfer_key_voids_key_length CHECK (char_length(idempotency_key) BETWEEN 1 AND 64)
);

-- The advisory lock key of a (customer, idempotency key) pair.
CREATE FUNCTION transfer_key_lock(customer bigint, key text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN hashtextextended(customer::text || ':' || key, 0);

-- +goose StatementBegin
CREATE FUNCTION transfers_refuse_voided_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(transfer_key_lock(NEW.customer_id, NEW.idempotency_key));
    IF EXISTS (SELECT 1 FROM transfer_key_voids
                WHERE customer_id = NEW.customer_id AND idempotency_key = NEW.idempotency_key) THEN
        RAISE EXCEPTION 'idempotency key was closed without a transfer'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'transfers_key_not_voided';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER transfers_refuse_voided_key BEFORE INSERT ON transfers
    FOR EACH ROW EXECUTE FUNCTION transfers_refuse_voided_key();

-- +goose Down
DROP TRIGGER transfers_refuse_voided_key ON transfers;
DROP FUNCTION transfers_refuse_voided_key();
DROP FUNCTION transfer_key_lock(bigint, text);
DROP TABLE transfer_key_voids;
