package wire

//go:generate go run ../cmd/wiregen

import "time"

// The operations (PROTOCOL.md §9; TestOpBodyTypesMatchSpec holds the two
// to each other): request → response types, op number (go generate makes
// it a constant: OpSignIn) and name.
var (
	Info = Method[InfoRequest, InfoResponse]{1, "info"} // no session needed

	SignUp       = Method[SignUpRequest, SignInResponse]{10, "signup"}
	SignIn       = Method[SignInRequest, SignInResponse]{11, "signin"}
	SessionCheck = Method[SessionRequest, SessionResponse]{12, "session.check"}
	SignOut      = Method[SessionRequest, Empty]{13, "signout"}
	SignOutAll   = Method[SessionRequest, Empty]{14, "signout.all"}

	AccountsList   = Method[SessionRequest, AccountsResponse]{20, "accounts.list"}
	AccountOpen    = Method[OpenAccountRequest, AccountResponse]{21, "accounts.open"}
	AccountGet     = Method[AccountRequest, AccountResponse]{22, "accounts.get"}
	AccountHistory = Method[HistoryRequest, HistoryResponse]{23, "accounts.history"}

	TransferCreate  = Method[TransferRequest, TransferResponse]{30, "transfers.create"}
	TransferGet     = Method[TransferGetRequest, TransferResponse]{31, "transfers.get"}
	TransferResolve = Method[TransferResolveRequest, TransferResolveResponse]{32, "transfers.resolve"}
	TransferForm    = Method[SessionRequest, TransferFormResponse]{33, "transfers.form"}

	PayeesList  = Method[SessionRequest, PayeesResponse]{40, "payees.list"}
	PayeeAdd    = Method[PayeeAddRequest, PayeeResponse]{41, "payees.add"}
	PayeeRename = Method[PayeeRenameRequest, PayeeResponse]{42, "payees.rename"}
	PayeeDelete = Method[PayeeDeleteRequest, Empty]{43, "payees.delete"}

	ChatOpen    = Method[ChatOpenRequest, ConversationResponse]{50, "chat.open"}
	ChatList    = Method[SessionRequest, ConversationsResponse]{51, "chat.list"}
	ChatSend    = Method[ChatSendRequest, MessageResponse]{52, "chat.send"}
	ChatHistory = Method[ChatHistoryRequest, ChatHistoryResponse]{53, "chat.history"}

	// Subscribe opens a stream of Event values (PROTOCOL.md §5).
	Subscribe = Method[SessionRequest, Empty]{60, "subscribe"}
)

// The bodies of REQUEST, RESPONSE and EVENT frames. After changing one, run
// go generate ./proto/wire: it writes their codec (messages_gen.go) and
// their table in PROTOCOL.md §10, where the json tags name the fields and
// a field's line comment is its note. Money is an integer count of minor
// units plus an ISO 4217 currency code, except TransferRequest.Amount.

// Empty is the payload of responses that carry nothing.
type Empty struct{}

// InfoRequest asks for facts about the app tier. No session needed.
type InfoRequest struct{}

// InfoResponse describes the app tier to a client.
type InfoResponse struct {
	Server         string `json:"server"`         // e.g. "bankwire-apptier/1.0"
	DemoData       bool   `json:"demo_data"`      // demo customers alice and bob exist
	MinPassword    int    `json:"min_password"`   // minimum password length
	MaxPassword    int    `json:"max_password"`   // maximum password length
	DailyLimit     int64  `json:"daily_limit"`    // daily outgoing transfer limit, minor units
	LimitCurrency  string `json:"limit_currency"` // currency of `daily_limit`
	IdleTimeoutSec int    `json:"idle_timeout_s"` // session idle timeout, seconds
}

// ClientInfo describes the browser behind a sign-in or sign-up, as the web
// tier sees it.
type ClientInfo struct {
	IP        string `json:"client_ip,omitempty"`  // the browser's address; may be empty; the server throttles on it
	UserAgent string `json:"user_agent,omitempty"` // may be empty
}

// SignUpRequest creates a customer, a checking account and a session.
type SignUpRequest struct {
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	Password    string `json:"password"`
	ClientInfo
}

// SignInRequest exchanges a username and password for a session.
type SignInRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	ClientInfo
}

// Customer is the public view of a customer.
type Customer struct {
	ID          int64  `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
}

// SignInResponse carries a new session token, a secret: the web tier puts
// it in an HttpOnly cookie and never logs it.
type SignInResponse struct {
	Token     string    `json:"token"`      // secret: the session token
	ExpiresAt time.Time `json:"expires_at"` // absolute expiry
	Customer  Customer  `json:"customer"`
}

// SessionRequest carries a session token; every authenticated request embeds it.
type SessionRequest struct {
	Session string `json:"session"` // the token
}

// SessionResponse is the answer to a valid session check.
type SessionResponse struct {
	Customer  Customer  `json:"customer"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Account is one of a customer's accounts.
type Account struct {
	Number    string    `json:"number"`   // with check digit
	Kind      string    `json:"kind"`     // `checking` or `savings`
	Currency  string    `json:"currency"` // ISO 4217
	Balance   int64     `json:"balance"`  // minor units
	CreatedAt time.Time `json:"created_at"`
}

// AccountsResponse lists the caller's accounts.
type AccountsResponse struct {
	Accounts []Account `json:"accounts"`
}

// OpenAccountRequest opens another account for the caller.
type OpenAccountRequest struct {
	SessionRequest
	Kind     string `json:"kind"`               // `checking` or `savings`
	Currency string `json:"currency,omitempty"` // empty: the bank's currency
}

// AccountRequest names one of the caller's accounts.
type AccountRequest struct {
	SessionRequest
	Number string `json:"number"`
}

// AccountResponse carries one account.
type AccountResponse struct {
	Account Account `json:"account"`
}

// HistoryRequest pages through an account's ledger, newest first.
type HistoryRequest struct {
	SessionRequest
	Number string `json:"number"`
	Cursor string `json:"cursor,omitempty"` // empty, or from the previous page
	Limit  int    `json:"limit,omitempty"`  // 0: default 20; max 100
}

// Entry is one ledger entry as a customer sees it.
type Entry struct {
	ID           int64     `json:"id"`
	TransferID   int64     `json:"transfer_id"`
	Amount       int64     `json:"amount"` // signed minor units: negative is money out
	BalanceAfter int64     `json:"balance_after"`
	Currency     string    `json:"currency"`
	Counterparty string    `json:"counterparty"` // the other account's number
	Memo         string    `json:"memo"`
	CreatedAt    time.Time `json:"created_at"`
}

// HistoryResponse is one page of an account's history.
type HistoryResponse struct {
	Account    Account `json:"account"`
	Entries    []Entry `json:"entries"`               // newest first
	NextCursor string  `json:"next_cursor,omitempty"` // empty on the last page
}

// TransferRequest moves money from one of the caller's accounts to any
// account by number. IdempotencyKey makes it exactly-once: a retry with the
// same key and fields returns the first transfer; the same key with other
// fields fails with FAILED_PRECONDITION, field "idempotency_key".
type TransferRequest struct {
	SessionRequest
	IdempotencyKey string `json:"idempotency_key"` // 1–64 printable ASCII
	From           string `json:"from"`            // account number
	To             string `json:"to"`              // account number
	Amount         string `json:"amount"`          // decimal, at most 2 places: "12.34"
	Memo           string `json:"memo,omitempty"`  // may be empty; at most 140 characters
}

// Transfer is a completed transfer.
type Transfer struct {
	ID        int64     `json:"id"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Amount    int64     `json:"amount"` // minor units, > 0
	Currency  string    `json:"currency"`
	Memo      string    `json:"memo"`
	CreatedAt time.Time `json:"created_at"`
}

// TransferResponse carries a transfer. Replayed is true when the idempotency
// key had already been used with the same fields.
type TransferResponse struct {
	Transfer Transfer       `json:"transfer"`
	Replayed bool           `json:"replayed,omitempty"`
	Labels   TransferLabels `json:"labels"` // set by transfers.get only
}

// TransferLabels describes a transfer's two accounts as the caller knows
// them, so a page about one transfer needs no other call.
type TransferLabels struct {
	FromKind   string `json:"from_kind,omitempty"`   // the from account's kind when it is the caller's own
	ToKind     string `json:"to_kind,omitempty"`     // the to account's kind when it is the caller's own
	ToNickname string `json:"to_nickname,omitempty"` // the caller's payee nickname for the to account
}

// TransferGetRequest fetches one of the caller's transfers (sent or received).
type TransferGetRequest struct {
	SessionRequest
	ID int64 `json:"id"`
}

// TransferResolveRequest asks what became of the caller's transfer with
// IdempotencyKey, paid from From, after an attempt whose answer was lost.
type TransferResolveRequest struct {
	SessionRequest
	IdempotencyKey string `json:"idempotency_key"`
	From           string `json:"from"`
}

// TransferResolveResponse is the final answer about a key: Made with the
// transfer, or not made, in which case the key is closed and a later
// transfers.create with it fails FAILED_PRECONDITION (idempotency_key).
type TransferResolveResponse struct {
	Made     bool     `json:"made"`
	Transfer Transfer `json:"transfer"` // zero when not made
}

// Payee is a saved recipient.
type Payee struct {
	ID        int64     `json:"id"`
	Nickname  string    `json:"nickname"`
	Number    string    `json:"number"`
	CreatedAt time.Time `json:"created_at"`
}

// PayeesResponse lists the caller's payees.
type PayeesResponse struct {
	Payees []Payee `json:"payees"`
}

// PayeeAddRequest saves an account number under a nickname.
type PayeeAddRequest struct {
	SessionRequest
	Nickname string `json:"nickname"`
	Number   string `json:"number"`
}

// PayeeRenameRequest changes a payee's nickname.
type PayeeRenameRequest struct {
	SessionRequest
	ID       int64  `json:"id"`
	Nickname string `json:"nickname"`
}

// PayeeDeleteRequest removes a payee.
type PayeeDeleteRequest struct {
	SessionRequest
	ID int64 `json:"id"`
}

// PayeeResponse carries one payee.
type PayeeResponse struct {
	Payee Payee `json:"payee"`
}

// Conversation is a two-person chat.
type Conversation struct {
	ID        int64     `json:"id"`
	With      Customer  `json:"with"` // the other member
	CreatedAt time.Time `json:"created_at"`
	LastAt    time.Time `json:"last_at,omitempty"` // newest message; no time if none
}

// ChatOpenRequest opens (or returns the existing) conversation with a customer.
type ChatOpenRequest struct {
	SessionRequest
	Username string `json:"username"`
}

// ConversationResponse carries one conversation.
type ConversationResponse struct {
	Conversation Conversation `json:"conversation"`
}

// ConversationsResponse lists the caller's conversations, newest activity first.
type ConversationsResponse struct {
	Conversations []Conversation `json:"conversations"` // newest activity first
}

// ChatSendRequest posts a message to a conversation.
type ChatSendRequest struct {
	SessionRequest
	ConversationID int64  `json:"conversation_id"`
	Body           string `json:"body"` // 1–2000 characters
}

// Message is one chat message.
type Message struct {
	ID             int64     `json:"id"`
	ConversationID int64     `json:"conversation_id"`
	From           Customer  `json:"from"`
	Body           string    `json:"body"`
	CreatedAt      time.Time `json:"created_at"`
}

// MessageResponse carries one message.
type MessageResponse struct {
	Message Message `json:"message"`
}

// ChatHistoryRequest pages through a conversation, newest first.
type ChatHistoryRequest struct {
	SessionRequest
	ConversationID int64  `json:"conversation_id"`
	Cursor         string `json:"cursor,omitempty"` // empty, or from the previous page
	Limit          int    `json:"limit,omitempty"`  // 0: default 50; max 100
}

// ChatHistoryResponse is one page of messages, newest first.
type ChatHistoryResponse struct {
	Conversation Conversation `json:"conversation"`
	Messages     []Message    `json:"messages"`              // newest first
	NextCursor   string       `json:"next_cursor,omitempty"` // empty on the last page
}

// Event kinds carried by EVENT frames of a subscription.
const (
	EventChatMessage = "chat.message" // Event.Message is set
	EventBalance     = "balance"      // Event.Account is set
)

// Event is the payload of an EVENT frame.
type Event struct {
	Kind    string   `json:"kind"`              // `chat.message` or `balance`
	Message *Message `json:"message,omitempty"` // present when kind is `chat.message`
	Account *Account `json:"account,omitempty"` // present when kind is `balance`
}

// TransferFormResponse is what a transfer form offers: the caller's
// accounts (as accounts.list) and payees (as payees.list), read together.
type TransferFormResponse struct {
	Accounts []Account `json:"accounts"`
	Payees   []Payee   `json:"payees"` // by nickname
}
