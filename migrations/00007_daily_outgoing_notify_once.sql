-- Constant-cost transfers.
--
-- daily_outgoing keeps, per customer, UTC day and currency, the running
-- total of the customer's transfers to accounts of other customers. The
-- transfer transaction adds to it in the same transaction as the transfer
-- (store.Transfer), so the daily limit is one row read and written instead
-- of a sum over the day's history, and no customer-wide lock is needed:
-- two transfers of one customer wait for each other only on the rows both
-- write (a shared account, then this row). The limit the transfer
-- ran under is stored beside the total, and a CHECK refuses any total above
-- it: the limit is enforced by the database, under any concurrency.
-- Transfers from the outside world (external accounts, owned by the system
-- customer) carry no limit and are not counted.
--
-- The migration backfills every day from the existing transfers, so a
-- database migrated mid-day stays exact. Stop every app tier running an
-- older version before the first one running this version starts: an older
-- tier's transfers would not be counted.
--
-- Balance notifications: one NOTIFY per statement that inserts ledger
-- entries (a transfer inserts both of its entries in one statement), instead
-- of one per entry. PostgreSQL serialises the commits of notifying
-- transactions, so the fewer and smaller the notifications, the shorter
-- that queue. The payload lists the accounts whose balance changed:
--   {"kind":"balance","entries":[{"customer_id":7,"account":"123456789012","transfer_id":5}, ...]}
-- at most 50 entries per NOTIFY (well below the 8000-byte payload limit).

-- +goose Up

CREATE TABLE daily_outgoing (
    customer_id bigint  NOT NULL REFERENCES customers (id),
    day         date    NOT NULL,  -- the UTC day of the transfers
    currency    char(3) NOT NULL,
    total       bigint  NOT NULL,
    -- The limit of the latest transfer counted; NULL = none.
    daily_limit bigint,
    CONSTRAINT daily_outgoing_pkey PRIMARY KEY (customer_id, day, currency),
    CONSTRAINT daily_outgoing_total_nonnegative CHECK (total >= 0),
    CONSTRAINT daily_outgoing_limit_positive CHECK (daily_limit > 0),
    CONSTRAINT daily_outgoing_within_limit CHECK (total <= daily_limit)
);

INSERT INTO daily_outgoing (customer_id, day, currency, total)
SELECT t.customer_id, (t.created_at AT TIME ZONE 'UTC')::date, t.currency, sum(t.amount)
  FROM transfers t
  JOIN accounts f ON f.id = t.from_account
  JOIN accounts o ON o.id = t.to_account
 WHERE f.kind <> 'external' AND o.customer_id <> t.customer_id
 GROUP BY 1, 2, 3;

-- The sum the limit used to read; nothing reads transfers by time now.
DROP INDEX transfers_customer_created_idx;

DROP TRIGGER ledger_entries_notify ON ledger_entries;
DROP FUNCTION notify_ledger_entry();

-- +goose StatementBegin
CREATE FUNCTION notify_ledger_entries() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    payload text;
BEGIN
    -- Nobody signs in as the outside world, so nobody listens for it.
    FOR payload IN
        SELECT json_build_object('kind', 'balance', 'entries', json_agg(json_build_object(
                   'customer_id', e.customer_id, 'account', e.number, 'transfer_id', e.transfer_id)
                   ORDER BY e.id))::text
          FROM (SELECT n.id, n.transfer_id, a.customer_id, a.number,
                       (row_number() OVER (ORDER BY n.id) - 1) / 50 AS chunk
                  FROM new_entries n JOIN accounts a ON a.id = n.account_id
                 WHERE a.kind <> 'external') e
         GROUP BY e.chunk
         ORDER BY e.chunk
    LOOP
        PERFORM pg_notify('bankwire_events', payload);
    END LOOP;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER ledger_entries_notify AFTER INSERT ON ledger_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION notify_ledger_entries();

-- +goose Down
DROP TRIGGER ledger_entries_notify ON ledger_entries;
DROP FUNCTION notify_ledger_entries();

-- +goose StatementBegin
CREATE FUNCTION notify_ledger_entry() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    owner  bigint;
    num    text;
    acct_kind text;
BEGIN
    SELECT a.customer_id, a.number, a.kind INTO owner, num, acct_kind
      FROM accounts a WHERE a.id = NEW.account_id;
    IF acct_kind <> 'external' THEN
        PERFORM pg_notify('bankwire_events', json_build_object(
            'kind', 'balance',
            'customer_id', owner,
            'account', num,
            'transfer_id', NEW.transfer_id)::text);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER ledger_entries_notify AFTER INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION notify_ledger_entry();

CREATE INDEX transfers_customer_created_idx ON transfers (customer_id, created_at);
DROP TABLE daily_outgoing;
