-- Accounts, transfers and the double-entry ledger. Every money rule the bank
-- relies on is enforced here as well as in Go, so a bug (or a hand-written
-- UPDATE) in any client cannot break it.

-- +goose Up

-- +goose StatementBegin
-- luhn_valid reports whether the last digit of n is the Luhn check digit of
-- the others. Account numbers carry one so that a single mistyped digit or a
-- swap of two neighbouring digits is caught before money moves.
CREATE FUNCTION luhn_valid(n text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    total integer := 0;
    digit integer;
    pos   integer;  -- 1 = rightmost (the check digit itself)
BEGIN
    IF n !~ '^[0-9]+$' THEN
        RETURN false;
    END IF;
    FOR pos IN 1 .. length(n) LOOP
        digit := ascii(substr(n, length(n) - pos + 1, 1)) - 48;
        IF pos % 2 = 0 THEN
            digit := digit * 2;
            IF digit > 9 THEN
                digit := digit - 9;
            END IF;
        END IF;
        total := total + digit;
    END LOOP;
    RETURN total % 10 = 0;
END
$$;
-- +goose StatementEnd

CREATE TABLE accounts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    number      text        NOT NULL,
    customer_id bigint      NOT NULL REFERENCES customers (id),
    kind        text        NOT NULL,
    currency    char(3)     NOT NULL DEFAULT 'USD',
    -- Minor units (cents). Never a float.
    balance     bigint      NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accounts_number_key UNIQUE (number),
    CONSTRAINT accounts_number_format CHECK (number ~ '^[0-9]{12}$' AND luhn_valid(number)),
    CONSTRAINT accounts_kind_known CHECK (kind IN ('checking', 'savings', 'external')),
    CONSTRAINT accounts_currency_code CHECK (currency ~ '^[A-Z]{3}$'),
    -- Only the outside world may owe money: deposits and paychecks are real
    -- transfers from an external account, so the sum of all balances is 0.
    CONSTRAINT accounts_balance_nonnegative CHECK (balance >= 0 OR kind = 'external'),
    -- Target of the transfers foreign keys below: a transfer's currency must
    -- be the currency of both its accounts.
    CONSTRAINT accounts_id_currency_key UNIQUE (id, currency)
);

-- ListAccounts, ordered by opening date.
CREATE INDEX accounts_customer_idx ON accounts (customer_id, created_at, id);
-- One outside-world account per currency.
CREATE UNIQUE INDEX accounts_external_currency_key ON accounts (currency) WHERE kind = 'external';

-- +goose StatementBegin
-- accounts_guard keeps an account's identity fixed once created (only the
-- balance may change) and reserves "external" accounts for the system
-- customer, so a customer can never own an account allowed to go negative.
CREATE FUNCTION accounts_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF (NEW.id, NEW.number, NEW.customer_id, NEW.kind, NEW.currency, NEW.created_at)
           IS DISTINCT FROM (OLD.id, OLD.number, OLD.customer_id, OLD.kind, OLD.currency, OLD.created_at) THEN
            RAISE EXCEPTION 'only the balance of an account may change'
                USING ERRCODE = 'restrict_violation', CONSTRAINT = 'accounts_identity_fixed';
        END IF;
        RETURN NEW;
    END IF;
    IF (NEW.kind = 'external') IS DISTINCT FROM
       coalesce((SELECT is_system FROM customers WHERE id = NEW.customer_id), false) THEN
        RAISE EXCEPTION 'external accounts belong to the system customer, and only to it'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'accounts_external_owner';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

-- "UPDATE OF" keeps the trigger off the hot path: balance updates do not fire it.
CREATE TRIGGER accounts_guard_insert BEFORE INSERT ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_guard();
CREATE TRIGGER accounts_guard_update BEFORE UPDATE OF id, number, customer_id, kind, currency, created_at ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_guard();

CREATE TABLE transfers (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Who asked for the transfer; the idempotency key is scoped to them.
    customer_id     bigint      NOT NULL REFERENCES customers (id),
    idempotency_key text        NOT NULL,
    from_account    bigint      NOT NULL,
    to_account      bigint      NOT NULL,
    amount          bigint      NOT NULL,
    currency        char(3)     NOT NULL,
    memo            text        NOT NULL DEFAULT '',
    -- sha256 over the request fields, so a retry with the same key can be
    -- told apart from a different request reusing the key.
    fingerprint     bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT transfers_customer_idempotency_key UNIQUE (customer_id, idempotency_key),
    CONSTRAINT transfers_idempotency_key_length CHECK (char_length(idempotency_key) BETWEEN 1 AND 64),
    CONSTRAINT transfers_amount_positive CHECK (amount > 0),
    CONSTRAINT transfers_distinct_accounts CHECK (from_account <> to_account),
    CONSTRAINT transfers_memo_length CHECK (char_length(memo) <= 140),
    CONSTRAINT transfers_fingerprint_sha256 CHECK (octet_length(fingerprint) = 32),
    CONSTRAINT transfers_from_account_fkey FOREIGN KEY (from_account, currency) REFERENCES accounts (id, currency),
    CONSTRAINT transfers_to_account_fkey FOREIGN KEY (to_account, currency) REFERENCES accounts (id, currency)
);

-- The daily limit sums one customer's transfers of one UTC day. Accounts are
-- never deleted, so the foreign keys above need no index of their own.
CREATE INDEX transfers_customer_created_idx ON transfers (customer_id, created_at);

CREATE TABLE ledger_entries (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    bigint      NOT NULL REFERENCES accounts (id),
    transfer_id   bigint      NOT NULL REFERENCES transfers (id),
    -- Signed: negative leaves the account, positive arrives.
    amount        bigint      NOT NULL,
    balance_after bigint      NOT NULL,
    created_at    timestamptz NOT NULL,
    CONSTRAINT ledger_entries_amount_nonzero CHECK (amount <> 0),
    -- Also the index the balance check below looks entries up by.
    CONSTRAINT ledger_entries_transfer_account_key UNIQUE (transfer_id, account_id)
);

-- History: keyset pagination, newest first, per account.
CREATE INDEX ledger_entries_history_idx ON ledger_entries (account_id, created_at DESC, id DESC);

-- +goose StatementBegin
-- forbid_change makes a table append-only: money history is corrected by a
-- new, compensating transfer, never by rewriting the past.
CREATE FUNCTION forbid_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation', CONSTRAINT = TG_TABLE_NAME || '_append_only';
END
$$;
-- +goose StatementEnd

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_change();
CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON transfers
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_change();

-- +goose StatementBegin
-- check_transfer_balanced runs at COMMIT (the triggers below are deferred, so
-- the transfer and its entries can be written in any order): a transfer has
-- exactly two entries, -amount on its from account and +amount on its to
-- account, which therefore sum to zero.
CREATE FUNCTION check_transfer_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    tid      bigint;
    t        transfers%ROWTYPE;
    entries  integer;
    total    numeric;
    from_ok  integer;
    to_ok    integer;
BEGIN
    IF TG_TABLE_NAME = 'transfers' THEN
        tid := NEW.id;
    ELSE
        tid := NEW.transfer_id;
    END IF;
    SELECT * INTO t FROM transfers WHERE id = tid;
    SELECT count(*),
           coalesce(sum(amount), 0),
           count(*) FILTER (WHERE account_id = t.from_account AND amount = -t.amount),
           count(*) FILTER (WHERE account_id = t.to_account AND amount = t.amount)
      INTO entries, total, from_ok, to_ok
      FROM ledger_entries
     WHERE transfer_id = tid;
    IF entries <> 2 OR total <> 0 OR from_ok <> 1 OR to_ok <> 1 THEN
        RAISE EXCEPTION 'transfer % is not balanced: % entries summing to %', tid, entries, total
            USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = 'ledger_entries_balanced';
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE CONSTRAINT TRIGGER transfers_balanced AFTER INSERT ON transfers
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION check_transfer_balanced();
CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION check_transfer_balanced();

-- +goose Down
DROP TABLE ledger_entries;
DROP TABLE transfers;
DROP TABLE accounts;
DROP FUNCTION check_transfer_balanced();
DROP FUNCTION forbid_change();
DROP FUNCTION accounts_guard();
DROP FUNCTION luhn_valid(text);
