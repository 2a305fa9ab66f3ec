package webtier

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"bankwire/proto/limits"
	"bankwire/proto/wire"

	"github.com/go-chi/chi/v5"
)

const (
	maxChatRunes    = limits.MaxMessageLen
	chatPageSize    = 50
	maxChatUsername = limits.MaxUsernameLen
)

type chatListData struct {
	Conversations []wire.Conversation
	Form          *form
}

type chatData struct {
	Conversation wire.Conversation
	Messages     []wire.Message // oldest first, as people read a chat
	OlderCursor  string
	Paged        bool
	Me           int64
	Form         *form
}

func (s *Server) renderChatList(w http.ResponseWriter, r *http.Request, status int, f *form) {
	sess := sessionFrom(r.Context())
	resp, err := call(s, r, wire.ChatList, wire.SessionRequest{Session: sess.Token})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, status, "chat_list", view{Title: "Messages", Nav: "chat", Data: chatListData{Conversations: resp.Conversations, Form: f}})
}

func (s *Server) chatList(w http.ResponseWriter, r *http.Request) {
	s.renderChatList(w, r, http.StatusOK, newForm())
}

// chatOpen starts (or finds) the conversation with a customer by username.
func (s *Server) chatOpen(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	sess := sessionFrom(r.Context())
	f := newForm()
	username, clean := field(r, "username")
	f.Values["username"] = username
	switch {
	case !clean || len(username) > maxChatUsername:
		f.fail("username", "That is not a valid username.")
	case username == "":
		f.fail("username", "Enter the username of the person to message.")
	case strings.EqualFold(username, sess.Customer.Username):
		f.fail("username", "You cannot open a chat with yourself.")
	}
	status := http.StatusUnprocessableEntity
	if !f.Invalid() {
		resp, err := call(s, r, wire.ChatOpen, wire.ChatOpenRequest{
			SessionRequest: wire.SessionRequest{Session: sess.Token}, Username: username,
		})
		if err == nil {
			http.Redirect(w, r, "/chat/"+strconv.FormatInt(resp.Conversation.ID, 10), http.StatusSeeOther)
			return
		}
		if !f.userError(err, map[string]string{"username": "username"}) {
			s.fail(w, r, err)
			return
		}
		if wire.ErrorCode(err) == wire.ResourceExhausted {
			status = http.StatusTooManyRequests // too many lookups lately
		}
	}
	s.renderChatList(w, r, status, f)
}

// lineBreaks turns CRLF and a lone CR into LF.
var lineBreaks = strings.NewReplacer("\r\n", "\n", "\r", "\n")

func conversationID(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	return id, err == nil && id > 0
}

func (s *Server) renderConversation(w http.ResponseWriter, r *http.Request, status int, id int64, cursor string, f *form) {
	sess := sessionFrom(r.Context())
	resp, err := call(s, r, wire.ChatHistory, wire.ChatHistoryRequest{
		SessionRequest: wire.SessionRequest{Session: sess.Token},
		ConversationID: id, Cursor: cursor, Limit: chatPageSize,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	msgs := slices.Clone(resp.Messages)
	slices.Reverse(msgs)
	s.render(w, r, status, "chat_conversation", view{
		Title: "Chat with " + resp.Conversation.With.DisplayName, Nav: "chat",
		Data: chatData{
			Conversation: resp.Conversation, Messages: msgs, OlderCursor: resp.NextCursor,
			Paged: cursor != "", Me: sess.Customer.ID, Form: f,
		},
	})
}

func (s *Server) chatConversation(w http.ResponseWriter, r *http.Request) {
	id, ok := conversationID(r)
	if !ok {
		s.errorPage(w, r, http.StatusNotFound, "")
		return
	}
	cursor := r.URL.Query().Get("cursor")
	if len(cursor) > maxCursorLen || !cleanText(cursor, false) {
		s.errorPage(w, r, http.StatusBadRequest, "")
		return
	}
	s.renderConversation(w, r, http.StatusOK, id, cursor, newForm())
}

func (s *Server) chatSend(w http.ResponseWriter, r *http.Request) {
	id, ok := conversationID(r)
	if !ok {
		s.errorPage(w, r, http.StatusNotFound, "")
		return
	}
	if !s.parseForm(w, r) {
		return
	}
	sess := sessionFrom(r.Context())
	f := newForm()
	status := http.StatusUnprocessableEntity
	// Browsers send a textarea's line breaks as CRLF but count each as one
	// character against its maxlength: the message is kept with LF only,
	// so what the compose box accepted is what the limit measures.
	body := strings.TrimSpace(lineBreaks.Replace(r.PostFormValue("body")))
	f.Values["body"] = body
	switch {
	case !cleanText(body, true):
		f.fail("body", "The message contains characters that are not allowed.")
		f.Values["body"] = ""
	case body == "":
		f.fail("body", "Write a message first.")
	case utf8.RuneCountInString(body) > maxChatRunes:
		f.fail("body", "Keep messages to "+strconv.Itoa(maxChatRunes)+" characters or fewer.")
	}
	if !f.Invalid() {
		_, err := call(s, r, wire.ChatSend, wire.ChatSendRequest{
			SessionRequest: wire.SessionRequest{Session: sess.Token}, ConversationID: id, Body: body,
		})
		if err == nil {
			http.Redirect(w, r, "/chat/"+strconv.FormatInt(id, 10)+"#compose", http.StatusSeeOther)
			return
		}
		if wire.ErrorCode(err) == wire.NotFound {
			s.errorPage(w, r, http.StatusNotFound, "")
			return
		}
		if !f.userError(err, map[string]string{"body": "body"}) {
			s.fail(w, r, err)
			return
		}
		if wire.ErrorCode(err) == wire.ResourceExhausted {
			status = http.StatusTooManyRequests // too many messages lately
		}
	}
	s.renderConversation(w, r, status, id, "", f)
}
