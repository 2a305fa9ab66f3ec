-- A transfer whose outcome a customer could not learn (the bank did not
-- answer) is resolved by asking about its idempotency key
-- (store.ResolveTransfer). When no transfer holds the key, the answer
-- "not made" must stay true: a copy of the request still held up in a
-- network or queue must not make the transfer afterwards. So the key is
-- closed here, and the trigger refuses any transfer that uses a closed key.
--
-- The resolver takes the customer's row lock (and the from account's), the
-- same locks a transfer takes first, so a transfer in flight either
-- commits before the resolver looks (the answer is "made") or reaches its
-- INSERT after the key is closed (and is refused).

-- +goose Up
CREATE TABLE transfer_key_voids (
    customer_id     bigint      NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    idempotency_key text        NOT NULL,
    voided_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, idempotency_key),
    CONSTRAINT transfer_key_voids_key_length CHECK (char_length(idempotency_key) BETWEEN 1 AND 64)
);

-- +goose StatementBegin
CREATE FUNCTION transfers_refuse_voided_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
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
DROP TABLE transfer_key_voids;
