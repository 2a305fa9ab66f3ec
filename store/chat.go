package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Conversation is a chat between exactly two customers, MemberA < MemberB.
type Conversation struct {
	ID        int64
	MemberA   int64
	MemberB   int64
	CreatedAt time.Time
	LastAt    *time.Time // time of the newest message; nil before the first
}

// Other returns the member of c who is not customerID.
func (c Conversation) Other(customerID int64) int64 {
	if c.MemberA == customerID {
		return c.MemberB
	}
	return c.MemberA
}

// Message is one chat message.
type Message struct {
	ID             int64
	ConversationID int64
	SenderID       int64
	Body           string
	CreatedAt      time.Time
}

var bodyRules = textRules{min: 1, max: MaxMessageLen, newlines: true, allowTabs: true, noBidi: true}

const conversationColumns = `id, member_a, member_b, created_at, last_message_at`

func scanConversation(row pgx.Row) (Conversation, error) {
	var c Conversation
	err := row.Scan(&c.ID, &c.MemberA, &c.MemberB, &c.CreatedAt, &c.LastAt)
	return c, err
}

// OpenConversation returns the conversation between customers a and b,
// creating it if needed; the order of a and b does not matter. a == b gives
// *InputError; an unknown customer ErrNotFound.
func (s *Store) OpenConversation(ctx context.Context, a, b int64, now time.Time) (Conversation, error) {
	if a == b {
		return Conversation{}, inputError("customer", "cannot chat with yourself")
	}
	if a > b {
		a, b = b, a
	}
	// The no-op DO UPDATE makes RETURNING yield the existing row too, so one
	// statement serves both cases and races between the two members.
	c, err := scanConversation(s.pool.QueryRow(ctx, `
		INSERT INTO chat_conversations (member_a, member_b, created_at)
		SELECT $1, $2, $3
		 WHERE (SELECT count(*) FROM customers WHERE id IN ($1, $2) AND NOT is_system) = 2
		ON CONFLICT (member_a, member_b) DO UPDATE SET member_a = EXCLUDED.member_a
		RETURNING `+conversationColumns, a, b, dbTime(now)))
	if err != nil {
		return Conversation{}, s.dbError(ctx, "open conversation", err)
	}
	return c, nil
}

// ConversationForMember returns a conversation only to one of its members;
// to anyone else it does not exist (ErrNotFound).
func (s *Store) ConversationForMember(ctx context.Context, conversationID, customerID int64) (Conversation, error) {
	c, err := scanConversation(s.pool.QueryRow(ctx, `
		SELECT `+conversationColumns+` FROM chat_conversations
		 WHERE id = $1 AND $2 IN (member_a, member_b)`, conversationID, customerID))
	if err != nil {
		return Conversation{}, s.dbError(ctx, "conversation", err)
	}
	return c, nil
}

// ListConversations returns a customer's conversations, most recent
// activity (last message, else creation) first.
func (s *Store) ListConversations(ctx context.Context, customerID int64) ([]Conversation, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+conversationColumns+` FROM chat_conversations
		 WHERE member_a = $1 OR member_b = $1
		 ORDER BY coalesce(last_message_at, created_at) DESC, id DESC`, customerID)
	if err != nil {
		return nil, s.dbError(ctx, "list conversations", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Conversation, error) { return scanConversation(r) })
	if err != nil {
		return nil, s.dbError(ctx, "list conversations", err)
	}
	return list, nil
}

// AddMessage posts a message. The sender must be a member of the
// conversation (ErrNotFound otherwise). Members of the conversation are
// notified through Listen once the message is committed.
func (s *Store) AddMessage(ctx context.Context, conversationID, senderID int64, body string, now time.Time) (Message, error) {
	if err := checkText("body", body, bodyRules); err != nil {
		return Message{}, err
	}
	var m Message
	err := s.pool.QueryRow(ctx, `
		INSERT INTO chat_messages (conversation_id, sender_id, body, created_at)
		SELECT id, $2, $3, $4 FROM chat_conversations WHERE id = $1 AND $2 IN (member_a, member_b)
		RETURNING id, conversation_id, sender_id, body, created_at`,
		conversationID, senderID, body, dbTime(now)).Scan(&m.ID, &m.ConversationID, &m.SenderID, &m.Body, &m.CreatedAt)
	if err != nil {
		return Message{}, s.dbError(ctx, "add message", err)
	}
	return m, nil
}

// MessageByID returns one message. It does not check membership: callers
// pair it with ConversationForMember.
func (s *Store) MessageByID(ctx context.Context, id int64) (Message, error) {
	var m Message
	err := s.pool.QueryRow(ctx, `
		SELECT id, conversation_id, sender_id, body, created_at FROM chat_messages WHERE id = $1`, id).Scan(
		&m.ID, &m.ConversationID, &m.SenderID, &m.Body, &m.CreatedAt)
	if err != nil {
		return Message{}, s.dbError(ctx, "message", err)
	}
	return m, nil
}

// Messages returns up to limit messages of a conversation, newest first,
// strictly after the cursor. It does not check membership.
func (s *Store) Messages(ctx context.Context, conversationID int64, after Cursor, limit int) ([]Message, error) {
	n, err := pageSize(limit)
	if err != nil {
		return nil, err
	}
	const cols = `SELECT id, conversation_id, sender_id, body, created_at FROM chat_messages WHERE conversation_id = $1`
	var rows pgx.Rows
	if after.IsZero() {
		rows, err = s.pool.Query(ctx, cols+` ORDER BY created_at DESC, id DESC LIMIT $2`, conversationID, n)
	} else {
		rows, err = s.pool.Query(ctx, cols+` AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT $4`,
			conversationID, after.CreatedAt.UTC(), after.ID, n)
	}
	if err != nil {
		return nil, s.dbError(ctx, "messages", err)
	}
	msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Message, error) {
		var m Message
		err := r.Scan(&m.ID, &m.ConversationID, &m.SenderID, &m.Body, &m.CreatedAt)
		return m, err
	})
	if err != nil {
		return nil, s.dbError(ctx, "messages", err)
	}
	return msgs, nil
}
