-- Push notifications across app-tier replicas: triggers announce new ledger
-- entries and chat messages on the channel "bankwire_events". PostgreSQL
-- delivers a NOTIFY only when (and if) the transaction commits, so listeners
-- never hear about money that did not move. Every app tier LISTENs
-- (store.Listen) and forwards events to its own subscribers.
--
-- Payloads are small JSON objects, well below the 8000-byte NOTIFY limit:
--   {"kind":"balance","customer_id":7,"account":"123456789012","transfer_id":5}
--   {"kind":"chat","message_id":42,"conversation_id":3,"sender_id":7,"customer_ids":[7,9]}

-- +goose Up

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
    -- Nobody signs in as the outside world, so nobody listens for it.
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

-- +goose StatementBegin
CREATE FUNCTION notify_chat_message() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    a bigint;
    b bigint;
BEGIN
    SELECT member_a, member_b INTO a, b FROM chat_conversations WHERE id = NEW.conversation_id;
    PERFORM pg_notify('bankwire_events', json_build_object(
        'kind', 'chat',
        'message_id', NEW.id,
        'conversation_id', NEW.conversation_id,
        'sender_id', NEW.sender_id,
        'customer_ids', json_build_array(a, b))::text);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER chat_messages_notify AFTER INSERT ON chat_messages
    FOR EACH ROW EXECUTE FUNCTION notify_chat_message();

-- +goose Down
DROP TRIGGER chat_messages_notify ON chat_messages;
DROP FUNCTION notify_chat_message();
DROP TRIGGER ledger_entries_notify ON ledger_entries;
DROP FUNCTION notify_ledger_entry();
