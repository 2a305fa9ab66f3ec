package apptier

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"bankwire/proto/limits"
	"bankwire/proto/wire"
	"bankwire/store"
)

const errNoConversation = "No such conversation."

// systemUsername is the store's owner of the external accounts; it is not a
// person one can chat with.
const systemUsername = "bankwire-system"

func (a *App) conversationView(ctx context.Context, c store.Conversation, me int64) (wire.Conversation, error) {
	other := c.MemberA
	if other == me {
		other = c.MemberB
	}
	oc, err := a.st.CustomerByID(ctx, other)
	if err != nil {
		return wire.Conversation{}, storeErr(err, errNoConversation)
	}
	v := wire.Conversation{ID: c.ID, With: customerView(oc), CreatedAt: c.CreatedAt}
	if c.LastAt != nil {
		v.LastAt = *c.LastAt
	}
	return v, nil
}

func (a *App) messageView(ctx context.Context, m store.Message, known map[int64]wire.Customer) (wire.Message, error) {
	from, ok := known[m.SenderID]
	if !ok {
		c, err := a.st.CustomerByID(ctx, m.SenderID)
		if err != nil {
			return wire.Message{}, storeErr(err, errNoConversation)
		}
		from = customerView(c)
		if known != nil {
			known[m.SenderID] = from
		}
	}
	return wire.Message{ID: m.ID, ConversationID: m.ConversationID, From: from, Body: m.Body, CreatedAt: m.CreatedAt}, nil
}

func (a *App) chatOpen(ctx context.Context, s store.Session, in wire.ChatOpenRequest) (wire.ConversationResponse, error) {
	if err := validUsername(in.Username); err != nil {
		return wire.ConversationResponse{}, err
	}
	// Every answer below tells whether a username exists, so lookups are
	// limited per customer.
	if !a.chatOpens.allow(strconv.FormatInt(s.CustomerID, 10), a.cfg.Now()) {
		return wire.ConversationResponse{}, wire.Errorf(wire.ResourceExhausted, "You have opened many chats in a short time. Wait a while and try again.")
	}
	notFound := wire.FieldError(wire.NotFound, "username", "No customer with that username.")
	if strings.EqualFold(in.Username, systemUsername) {
		return wire.ConversationResponse{}, notFound
	}
	other, err := a.st.CustomerByUsername(ctx, in.Username)
	if errors.Is(err, store.ErrNotFound) {
		return wire.ConversationResponse{}, notFound
	}
	if err != nil {
		return wire.ConversationResponse{}, storeErr(err, "")
	}
	if other.ID == s.CustomerID {
		return wire.ConversationResponse{}, wire.FieldError(wire.InvalidArgument, "username", "You cannot open a chat with yourself.")
	}
	c, err := a.st.OpenConversation(ctx, s.CustomerID, other.ID, a.cfg.Now())
	if err != nil {
		return wire.ConversationResponse{}, storeErr(err, errNoConversation)
	}
	v, err := a.conversationView(ctx, c, s.CustomerID)
	if err != nil {
		return wire.ConversationResponse{}, err
	}
	return wire.ConversationResponse{Conversation: v}, nil
}

func (a *App) chatList(ctx context.Context, s store.Session, _ wire.SessionRequest) (wire.ConversationsResponse, error) {
	cs, err := a.st.ListConversations(ctx, s.CustomerID)
	if err != nil {
		return wire.ConversationsResponse{}, storeErr(err, "")
	}
	out := wire.ConversationsResponse{Conversations: make([]wire.Conversation, 0, len(cs))}
	for _, c := range cs {
		v, err := a.conversationView(ctx, c, s.CustomerID)
		if err != nil {
			return wire.ConversationsResponse{}, err
		}
		out.Conversations = append(out.Conversations, v)
	}
	return out, nil
}

func (a *App) chatSend(ctx context.Context, s store.Session, in wire.ChatSendRequest) (wire.MessageResponse, error) {
	body, err := cleanText("body", in.Body, 1, limits.MaxMessageLen, true)
	if err != nil {
		return wire.MessageResponse{}, err
	}
	if !a.chatSends.allow(strconv.FormatInt(s.CustomerID, 10), a.cfg.Now()) {
		return wire.MessageResponse{}, wire.Errorf(wire.ResourceExhausted, "You have sent many messages in a short time. Wait a minute and try again.")
	}
	if _, err := a.st.ConversationForMember(ctx, in.ConversationID, s.CustomerID); err != nil {
		return wire.MessageResponse{}, storeErr(err, errNoConversation)
	}
	m, err := a.st.AddMessage(ctx, in.ConversationID, s.CustomerID, body, a.cfg.Now())
	if err != nil {
		return wire.MessageResponse{}, storeErr(err, errNoConversation)
	}
	v, err := a.messageView(ctx, m, nil)
	if err != nil {
		return wire.MessageResponse{}, err
	}
	return wire.MessageResponse{Message: v}, nil
}

func (a *App) chatHistory(ctx context.Context, s store.Session, in wire.ChatHistoryRequest) (wire.ChatHistoryResponse, error) {
	limit, err := pageLimit(in.Limit, limits.ChatDefaultPage, limits.ChatMaxPage)
	if err != nil {
		return wire.ChatHistoryResponse{}, err
	}
	cur, err := decodeCursor(in.Cursor)
	if err != nil {
		return wire.ChatHistoryResponse{}, err
	}
	c, err := a.st.ConversationForMember(ctx, in.ConversationID, s.CustomerID)
	if err != nil {
		return wire.ChatHistoryResponse{}, storeErr(err, errNoConversation)
	}
	cv, err := a.conversationView(ctx, c, s.CustomerID)
	if err != nil {
		return wire.ChatHistoryResponse{}, err
	}
	ms, err := a.st.Messages(ctx, c.ID, cur, limit+1)
	if err != nil {
		return wire.ChatHistoryResponse{}, storeErr(err, "")
	}
	known := map[int64]wire.Customer{cv.With.ID: cv.With}
	out := wire.ChatHistoryResponse{Conversation: cv, Messages: make([]wire.Message, 0, limit)}
	for i, m := range ms {
		if i == limit {
			last := ms[limit-1]
			out.NextCursor = encodeCursor(store.Cursor{CreatedAt: last.CreatedAt, ID: last.ID})
			break
		}
		v, err := a.messageView(ctx, m, known)
		if err != nil {
			return wire.ChatHistoryResponse{}, err
		}
		out.Messages = append(out.Messages, v)
	}
	return out, nil
}
