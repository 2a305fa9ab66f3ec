// Package limits holds the limits a client can see on the wire: page sizes,
// text lengths. It is the one place they are written down, shared by the
// store (which enforces them in its checks and its schema's), the app tier
// (which answers requests with them) and the web tier (which checks forms
// early and tells people the numbers). PROTOCOL.md §10 states them.
//
// It is a leaf: constants only, importing nothing, so that every tier may
// depend on it without depending on anything else. The tiers' import rules
// are that the store imports neither the protocol nor any tier above it,
// and the web tier neither the store, the app tier nor pgx; the
// architecture tests (store/arch_test.go, webtier/arch_test.go) enforce
// them and allow exactly this package across those lines.
package limits

// Text lengths, in characters (Unicode code points).
const (
	MaxUsernameLen       = 64   // SignUpRequest.username, SignInRequest.username, ChatOpenRequest.username
	MaxMemoLen           = 140  // TransferRequest.memo
	MaxMessageLen        = 2000 // ChatSendRequest.body
	MaxIdempotencyKeyLen = 64   // TransferRequest.idempotency_key (printable ASCII, so also bytes)
)

// Page sizes: a limit of 0 asks for the default; 1 to the maximum is
// served as asked; anything else is INVALID_ARGUMENT (field "limit").
const (
	HistoryDefaultPage = 20  // HistoryRequest.limit 0
	HistoryMaxPage     = 100 // HistoryRequest.limit
	ChatDefaultPage    = 50  // ChatHistoryRequest.limit 0
	ChatMaxPage        = 200 // ChatHistoryRequest.limit
)

// MaxPage is the largest page any operation serves.
const MaxPage = max(HistoryMaxPage, ChatMaxPage)
