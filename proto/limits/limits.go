// Package limits holds the limits a client can see on the wire (text
// lengths, page sizes; PROTOCOL.md §10) in one place, for the store, which
// enforces them, the app tier, which answers with them, and the web tier,
// which checks forms early. It imports nothing, so that every tier may
// depend on it: the architecture tests (store/arch_test.go,
// webtier/arch_test.go) allow exactly this package across the tiers' lines.
package limits

// Text lengths, in characters (Unicode code points).
const (
	MaxUsernameLen       = 64   // SignUpRequest.username, SignInRequest.username, ChatOpenRequest.username
	MaxDisplayNameLen    = 64   // SignUpRequest.display_name
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
	ChatMaxPage        = 100 // ChatHistoryRequest.limit; a page of the longest messages (2000 characters of 4 bytes) fits in one 1 MiB frame
)

// MaxPage is the largest page any operation serves.
const MaxPage = max(HistoryMaxPage, ChatMaxPage)
