-- Saved payees and the two-person chat between customers.

-- +goose Up

CREATE TABLE payees (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint      NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    nickname    text        NOT NULL,
    account_id  bigint      NOT NULL REFERENCES accounts (id),
    created_at  timestamptz NOT NULL,
    CONSTRAINT payees_nickname_length CHECK (char_length(nickname) BETWEEN 1 AND 64),
    -- Also serves ListPayees (customer_id is its leading column).
    CONSTRAINT payees_customer_account_key UNIQUE (customer_id, account_id)
);

-- "Landlord" and "landlord" are the same payee to a person.
CREATE UNIQUE INDEX payees_customer_nickname_key ON payees (customer_id, lower(nickname));

CREATE TABLE chat_conversations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Exactly two members, stored in a canonical order so that (a, b) and
    -- (b, a) are the same conversation and cannot both exist.
    member_a        bigint      NOT NULL REFERENCES customers (id),
    member_b        bigint      NOT NULL REFERENCES customers (id),
    created_at      timestamptz NOT NULL,
    -- Maintained by the chat_messages trigger; orders the conversation list.
    last_message_at timestamptz,
    CONSTRAINT chat_conversations_members_ordered CHECK (member_a < member_b),
    CONSTRAINT chat_conversations_members_key UNIQUE (member_a, member_b)
);

-- ListConversations looks a customer up on either side.
CREATE INDEX chat_conversations_member_b_idx ON chat_conversations (member_b);

CREATE TABLE chat_messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id bigint      NOT NULL REFERENCES chat_conversations (id),
    sender_id       bigint      NOT NULL REFERENCES customers (id),
    body            text        NOT NULL,
    created_at      timestamptz NOT NULL,
    CONSTRAINT chat_messages_body_length CHECK (char_length(body) BETWEEN 1 AND 2000 AND btrim(body) <> '')
);

-- Messages: keyset pagination, newest first, per conversation.
CREATE INDEX chat_messages_conversation_idx ON chat_messages (conversation_id, created_at DESC, id DESC);

-- +goose StatementBegin
-- chat_message_inserted checks that the sender is a member of the
-- conversation and moves the conversation's last activity forward.
CREATE FUNCTION chat_message_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE chat_conversations
       SET last_message_at = greatest(coalesce(last_message_at, NEW.created_at), NEW.created_at)
     WHERE id = NEW.conversation_id
       AND NEW.sender_id IN (member_a, member_b);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sender % is not a member of conversation %', NEW.sender_id, NEW.conversation_id
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'chat_messages_sender_member';
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER chat_messages_inserted AFTER INSERT ON chat_messages
    FOR EACH ROW EXECUTE FUNCTION chat_message_inserted();

-- +goose Down
DROP TABLE chat_messages;
DROP FUNCTION chat_message_inserted();
DROP TABLE chat_conversations;
DROP TABLE payees;
