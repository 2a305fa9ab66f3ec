package webtier

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"bankwire/proto/limits"
	"bankwire/proto/wire"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// maxMemoRunes is the protocol's memo limit.
const maxMemoRunes = limits.MaxMemoLen

// transferFields maps the app tier's field names to the form's.
var transferFields = map[string]string{"amount": "amount", "to": "to", "from": "from", "memo": "memo"}

type transferFormData struct {
	Form     *form
	Accounts []wire.Account
	Payees   []wire.Payee
	Key      string
}

type transferConfirmData struct {
	Key      string
	From     wire.Account
	To       string
	ToName   string // payee nickname or "Your savings account"; may be empty
	ToLabel  string
	Amount   string // as typed, sent on unchanged
	Minor    int64
	Currency string
	Memo     string
	After    int64  // the From balance once the transfer is made
	Error    string // why the last submit did not go through
	// Unknown: the last submit's outcome is unknown. The page was built
	// from the form alone (no app-tier call), shows no balance, and offers
	// to ask the bank what happened.
	Unknown bool
}

type transferResultData struct {
	Transfer wire.Transfer
	Sent     bool // the transfer left one of the customer's accounts
	FromName string
	ToName   string
}

// transferInput is a posted transfer form after the web tier's own checks.
// The display fields (fromKind, currency, toName) only describe the transfer
// on a confirm-again page; they never decide anything, and the app tier
// checks the transfer itself again when it is submitted.
type transferInput struct {
	key, from, to, amount, memo string
	minor                       int64
	fromKind, currency, toName  string
}

// maxToNameRunes bounds the carried recipient name (a payee nickname or an
// own account's description).
const maxToNameRunes = 100

// loadAccountsAndPayees fetches what a transfer form offers, in one call.
func (s *Server) loadAccountsAndPayees(r *http.Request, sess *session) ([]wire.Account, []wire.Payee, error) {
	resp, err := call(s, r, wire.TransferForm, wire.SessionRequest{Session: sess.Token})
	if err != nil {
		return nil, nil, err
	}
	return resp.Accounts, resp.Payees, nil
}

func (s *Server) renderTransferForm(w http.ResponseWriter, r *http.Request, status int, f *form, key string) {
	accts, payees, err := s.loadAccountsAndPayees(r, sessionFrom(r.Context()))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, status, "transfer_form", view{
		Title: "Move money", Nav: "transfer",
		Data: transferFormData{Form: f, Accounts: accts, Payees: payees, Key: key},
	})
}

// transferForm shows a fresh form with a fresh idempotency key. from and to
// in the query preselect accounts (links from account and payee pages).
func (s *Server) transferForm(w http.ResponseWriter, r *http.Request) {
	f := newForm()
	q := r.URL.Query()
	if from := q.Get("from"); plausibleAccountNumber(from) {
		f.Values["from"] = from
	}
	if to := q.Get("to"); plausibleAccountNumber(to) {
		f.Values["to"] = to
	}
	s.renderTransferForm(w, r, http.StatusOK, f, newIdempotencyKey())
}

// readTransfer reads and pre-checks a posted transfer. A missing or forged
// idempotency key is not the customer's doing: ok=false, 400 page sent.
func (s *Server) readTransfer(w http.ResponseWriter, r *http.Request) (transferInput, *form, bool) {
	if !s.parseForm(w, r) {
		return transferInput{}, nil, false
	}
	in := transferInput{key: r.PostFormValue("key")}
	if !validIdempotencyKey(in.key) {
		s.errorPage(w, r, http.StatusBadRequest, "This form has expired. Please start the transfer again.")
		return in, nil, false
	}
	f := newForm()
	var ok bool
	in.from, _ = field(r, "from")
	in.to, _ = field(r, "to")
	toNumber, _ := field(r, "to_number")
	if toNumber != "" {
		in.to = toNumber
	}
	in.amount, ok = field(r, "amount")
	if !ok {
		in.amount = ""
	}
	in.memo, ok = field(r, "memo")
	f.Values = map[string]string{"from": in.from, "to": r.PostFormValue("to"), "to_number": toNumber, "amount": in.amount, "memo": in.memo}
	if !ok {
		f.fail("memo", "The note contains characters that are not allowed.")
	} else if utf8.RuneCountInString(in.memo) > maxMemoRunes {
		f.fail("memo", "Keep the note to "+strconv.Itoa(maxMemoRunes)+" characters or fewer.")
	}
	if in.from == "" || !plausibleAccountNumber(in.from) {
		f.fail("from", "Choose the account to pay from.")
	}
	switch {
	case in.to == "":
		f.fail("to", "Choose who to pay, or enter an account number.")
	case !plausibleAccountNumber(in.to):
		f.fail("to", "That is not a valid account number.")
	case normalizeNumber(in.to) == normalizeNumber(in.from):
		f.fail("to", "Choose an account other than the one you pay from.")
	}
	minor, problem := amountProblem(in.amount)
	if problem != "" {
		f.fail("amount", problem)
	}
	in.minor = minor
	if k := r.PostFormValue("from_kind"); k == "checking" || k == "savings" {
		in.fromKind = k
	}
	if c := r.PostFormValue("currency"); validCurrency(c) {
		in.currency = c
	}
	if n, ok := field(r, "to_name"); ok && utf8.RuneCountInString(n) <= maxToNameRunes {
		in.toName = n
	}
	return in, f, true
}

func validCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

// normalizeNumber compares account numbers the way a person reads them:
// ignoring spaces, dashes and case.
func normalizeNumber(n string) string {
	return strings.ToUpper(strings.NewReplacer(" ", "", "-", "").Replace(n))
}

// transferEdit goes back from the confirmation to the form, keeping what
// was typed and the idempotency key.
func (s *Server) transferEdit(w http.ResponseWriter, r *http.Request) {
	in, f, ok := s.readTransfer(w, r)
	if !ok {
		return
	}
	f.Errors = map[string]string{}
	s.renderTransferForm(w, r, http.StatusOK, f, in.key)
}

// confirmData describes a checked transfer in words for the confirmation
// step: which own account, which recipient, what amount.
func (s *Server) confirmData(w http.ResponseWriter, r *http.Request, in transferInput, f *form) (transferConfirmData, bool) {
	accts, payees, err := s.loadAccountsAndPayees(r, sessionFrom(r.Context()))
	if err != nil {
		s.fail(w, r, err)
		return transferConfirmData{}, false
	}
	d := transferConfirmData{Key: in.key, To: in.to, ToLabel: displayNumber(in.to), Amount: in.amount, Minor: in.minor, Memo: in.memo}
	found := false
	for _, a := range accts {
		if normalizeNumber(a.Number) == normalizeNumber(in.from) {
			d.From, found = a, true
		}
		if normalizeNumber(a.Number) == normalizeNumber(in.to) {
			d.ToName = "Your " + strings.ToLower(kindName(a.Kind)) + " account"
			d.ToLabel = d.ToName + " " + displayNumber(a.Number)
		}
	}
	for _, p := range payees {
		if normalizeNumber(p.Number) == normalizeNumber(in.to) {
			d.ToName = p.Nickname
			d.ToLabel = p.Nickname + " (" + displayNumber(p.Number) + ")"
		}
	}
	if !found {
		f.fail("from", "Choose one of your accounts to pay from.")
	} else if in.minor > d.From.Balance && f.Err("amount") == "" {
		f.fail("amount", "The amount is more than the available balance.")
	}
	d.Currency = d.From.Currency
	d.After = d.From.Balance - in.minor
	return d, true
}

func (s *Server) transferConfirm(w http.ResponseWriter, r *http.Request) {
	in, f, ok := s.readTransfer(w, r)
	if !ok {
		return
	}
	if f.Invalid() {
		s.renderTransferForm(w, r, http.StatusUnprocessableEntity, f, in.key)
		return
	}
	d, ok := s.confirmData(w, r, in, f)
	if !ok {
		return
	}
	if f.Invalid() {
		s.renderTransferForm(w, r, http.StatusUnprocessableEntity, f, in.key)
		return
	}
	s.render(w, r, http.StatusOK, "transfer_confirm", view{Title: "Check your transfer", Nav: "transfer", Data: d})
}

// transferCreate makes the transfer. The idempotency key came with the form,
// so a double click or a resubmitted page makes the transfer once: the app
// tier answers the repeat with the first transfer (Replayed).
func (s *Server) transferCreate(w http.ResponseWriter, r *http.Request) {
	in, f, ok := s.readTransfer(w, r)
	if !ok {
		return
	}
	if f.Invalid() {
		s.renderTransferForm(w, r, http.StatusUnprocessableEntity, f, in.key)
		return
	}
	sess := sessionFrom(r.Context())
	resp, err := call(s, r, wire.TransferCreate, wire.TransferRequest{
		SessionRequest: wire.SessionRequest{Session: sess.Token},
		IdempotencyKey: in.key, From: in.from, To: in.to, Amount: in.amount, Memo: in.memo,
	})
	if err == nil {
		if resp.Replayed {
			s.setFlash(w, "transfer_replayed")
		} else {
			s.setFlash(w, "transfer_done")
		}
		http.Redirect(w, r, "/transfers/"+strconv.FormatInt(resp.Transfer.ID, 10), http.StatusSeeOther)
		return
	}
	if wire.ErrorCode(err) == wire.Unauthenticated {
		// The app tier checks the session before anything else: nothing moved.
		s.sessionEnded(w, r)
		return
	}
	if f.userError(err, transferFields) {
		// Refused, so nothing moved and the corrected form gets a new key;
		// reusing the old one with different details would be refused.
		s.renderTransferForm(w, r, http.StatusUnprocessableEntity, f, newIdempotencyKey())
		return
	}
	s.transferOutcomeUnknown(w, r, in, err)
}

// outcomeUnknownText is what the confirm-again page says.
const outcomeUnknownText = "We couldn’t confirm your transfer because our banking systems didn’t answer. " +
	"It is safe to press Confirm again: this transfer will be made only once. " +
	"Or press “Check whether it was made” to find out first."

// transferOutcomeUnknown answers a transfer submit whose outcome is unknown
// (no answer, a deadline, an outage, or an error that is not a refusal)
// with the confirmation page again, with the same key: confirming again
// can only make the transfer once. It makes no app-tier call, since the
// outage that lost the answer would most likely fail those too: everything
// the page shows comes from the posted form.
func (s *Server) transferOutcomeUnknown(w http.ResponseWriter, r *http.Request, in transferInput, err error) {
	s.log.WarnContext(r.Context(), "transfer outcome unknown", "request_id", middleware.GetReqID(r.Context()),
		"code", wire.ErrorCode(err).String(), "err", err)
	d := transferConfirmData{
		Key: in.key, From: wire.Account{Number: in.from, Kind: in.fromKind, Currency: in.currency},
		To: in.to, ToName: in.toName, ToLabel: displayNumber(in.to), Amount: in.amount, Minor: in.minor,
		Currency: in.currency, Memo: in.memo, Error: outcomeUnknownText, Unknown: true,
	}
	if in.toName != "" {
		d.ToLabel = in.toName + " (" + displayNumber(in.to) + ")"
	}
	// 503 for an outage; a fault of ours (INTERNAL) stays a 500, but with
	// this page too: its outcome is just as unknown.
	status := http.StatusInternalServerError
	if statusOf(wire.ErrorCode(err)) == http.StatusServiceUnavailable {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "5")
	}
	s.render(w, r, status, "transfer_confirm", view{Title: "Check your transfer", Nav: "transfer", Data: d})
}

// transferSession is requireSession for the transfer submit and for
// "Check whether it was made": when the session cannot be checked because
// the app tier does not answer, the customer still gets the confirm-again
// page for the transfer they sent, with its key, not a generic error page.
func (s *Server) transferSession(next http.Handler) http.Handler {
	return s.sessionRequired(next, func(w http.ResponseWriter, r *http.Request, err error) {
		in, f, ok := s.readTransfer(w, r)
		if !ok {
			return
		}
		if f.Invalid() {
			s.fail(w, r, err)
			return
		}
		s.transferOutcomeUnknown(w, r, in, err)
	})
}

// transferResolve asks the bank what became of a transfer whose outcome
// was unknown. The answer is final: made (the result page), or not made,
// and then the key is closed so the lost request can never make it later;
// the form comes back filled in, with a new key, to send it again.
func (s *Server) transferResolve(w http.ResponseWriter, r *http.Request) {
	in, f, ok := s.readTransfer(w, r)
	if !ok {
		return
	}
	if in.from == "" || !plausibleAccountNumber(in.from) {
		s.errorPage(w, r, http.StatusBadRequest, "")
		return
	}
	sess := sessionFrom(r.Context())
	resp, err := call(s, r, wire.TransferResolve, wire.TransferResolveRequest{
		SessionRequest: wire.SessionRequest{Session: sess.Token}, IdempotencyKey: in.key, From: in.from,
	})
	switch code := wire.ErrorCode(err); {
	case err == nil:
	case code == wire.Unauthenticated:
		s.sessionEnded(w, r)
		return
	case statusOf(code) == http.StatusServiceUnavailable:
		s.transferOutcomeUnknown(w, r, in, err)
		return
	default:
		s.fail(w, r, err)
		return
	}
	if resp.Made {
		s.setFlash(w, "transfer_resolved_made")
		http.Redirect(w, r, "/transfers/"+strconv.FormatInt(resp.Transfer.ID, 10), http.StatusSeeOther)
		return
	}
	f.Errors = map[string]string{}
	f.Notice = "This transfer was not made, and it will not be made: nothing left your account. You can send it again below."
	s.renderTransferForm(w, r, http.StatusOK, f, newIdempotencyKey())
}

func (s *Server) transferResult(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r.Context())
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		s.errorPage(w, r, http.StatusNotFound, "")
		return
	}
	resp, err := call(s, r, wire.TransferGet, wire.TransferGetRequest{
		SessionRequest: wire.SessionRequest{Session: sess.Token}, ID: id,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := transferResultData{Transfer: resp.Transfer, FromName: displayNumber(resp.Transfer.From), ToName: displayNumber(resp.Transfer.To)}
	// The app tier describes both accounts as the customer knows them, so
	// the page needs no other call.
	l := resp.Labels
	if l.ToNickname != "" {
		d.ToName = l.ToNickname + " (" + displayNumber(resp.Transfer.To) + ")"
	}
	if l.FromKind != "" {
		d.Sent = true
		d.FromName = ownAccountName(l.FromKind, resp.Transfer.From)
	}
	if l.ToKind != "" {
		d.ToName = ownAccountName(l.ToKind, resp.Transfer.To)
	}
	title := "Transfer received"
	if d.Sent {
		title = "Transfer sent"
	}
	s.render(w, r, http.StatusOK, "transfer_result", view{Title: title, Nav: "transfer", Data: d})
}

// ownAccountName is how a page names one of the customer's own accounts.
func ownAccountName(kind, number string) string {
	return "Your " + strings.ToLower(kindName(kind)) + " account " + displayNumber(number)
}

// accountURL is the page of an account.
func accountURL(number string) string { return "/accounts/" + url.PathEscape(number) }
