package webtier

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"bankwire/proto"
	"bankwire/proto/limits"

	"github.com/go-chi/chi/v5"
)

// maxMemoRunes is the protocol's memo limit.
const maxMemoRunes = limits.MaxMemoLen

// transferFields maps the app tier's field names to the form's.
var transferFields = map[string]string{"amount": "amount", "to": "to", "from": "from", "memo": "memo"}

type transferFormData struct {
	Form     *form
	Accounts []proto.Account
	Payees   []proto.Payee
	Key      string
}

type transferConfirmData struct {
	Key      string
	From     proto.Account
	To       string
	ToLabel  string
	Amount   string // as typed, sent on unchanged
	Minor    int64
	Currency string
	Memo     string
	After    int64  // the From balance once the transfer is made
	Error    string // why the last submit did not go through
}

type transferResultData struct {
	Transfer proto.Transfer
	Sent     bool // the transfer left one of the customer's accounts
	FromName string
	ToName   string
}

// transferInput is a posted transfer form after the web tier's own checks.
type transferInput struct {
	key, from, to, amount, memo string
	minor                       int64
}

// loadPayeesAndAccounts fetches what a transfer form offers.
func (s *Server) loadAccountsAndPayees(r *http.Request, sess *session) ([]proto.Account, []proto.Payee, error) {
	var accts proto.AccountsResponse
	if err := s.call(r, proto.OpAccountsList, proto.SessionRequest{Session: sess.Token}, &accts); err != nil {
		return nil, nil, err
	}
	var payees proto.PayeesResponse
	if err := s.call(r, proto.OpPayeesList, proto.SessionRequest{Session: sess.Token}, &payees); err != nil {
		return nil, nil, err
	}
	return accts.Accounts, payees.Payees, nil
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
	return in, f, true
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
			d.ToLabel = "Your " + strings.ToLower(kindName(a.Kind)) + " account " + displayNumber(a.Number)
		}
	}
	for _, p := range payees {
		if normalizeNumber(p.Number) == normalizeNumber(in.to) {
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
	var resp proto.TransferResponse
	err := s.call(r, proto.OpTransferCreate, proto.TransferRequest{
		SessionRequest: proto.SessionRequest{Session: sess.Token},
		IdempotencyKey: in.key, From: in.from, To: in.to, Amount: in.amount, Memo: in.memo,
	}, &resp)
	if err == nil {
		if resp.Replayed {
			s.setFlash(w, "transfer_replayed")
		} else {
			s.setFlash(w, "transfer_done")
		}
		http.Redirect(w, r, "/transfers/"+strconv.FormatInt(resp.Transfer.ID, 10), http.StatusSeeOther)
		return
	}
	switch proto.ErrorCode(err) {
	case proto.Unauthenticated:
		s.sessionEnded(w, r)
		return
	case proto.Unavailable, proto.DeadlineExceeded, proto.Canceled, proto.Aborted:
		// The outcome is unknown. Offer the same confirmation again with the
		// same key: submitting it again can only make the transfer once.
		s.log.WarnContext(r.Context(), "transfer outcome unknown", "err", err)
		d, ok := s.confirmData(w, r, in, newForm())
		if !ok {
			return
		}
		d.Error = "We couldn’t confirm your transfer because our banking systems didn’t answer in time. " +
			"It is safe to press Confirm again: this transfer will be made only once. You can also check your account history first."
		s.render(w, r, http.StatusServiceUnavailable, "transfer_confirm", view{Title: "Check your transfer", Nav: "transfer", Data: d})
		return
	}
	if !f.userError(err, transferFields) {
		s.fail(w, r, err)
		return
	}
	// Nothing moved, so the corrected form gets a new key; reusing the old
	// one with different details would be refused.
	s.renderTransferForm(w, r, http.StatusUnprocessableEntity, f, newIdempotencyKey())
}

func (s *Server) transferResult(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r.Context())
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		s.errorPage(w, r, http.StatusNotFound, "")
		return
	}
	var resp proto.TransferResponse
	if err := s.call(r, proto.OpTransferGet, proto.TransferGetRequest{
		SessionRequest: proto.SessionRequest{Session: sess.Token}, ID: id,
	}, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	accounts, payees, err := s.loadAccountsAndPayees(r, sess)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := transferResultData{Transfer: resp.Transfer, FromName: displayNumber(resp.Transfer.From), ToName: displayNumber(resp.Transfer.To)}
	for _, p := range payees {
		if p.Number == resp.Transfer.To {
			d.ToName = p.Nickname + " (" + displayNumber(p.Number) + ")"
		}
	}
	for _, a := range accounts {
		if a.Number == resp.Transfer.From {
			d.Sent = true
			d.FromName = "Your " + strings.ToLower(kindName(a.Kind)) + " account " + displayNumber(a.Number)
		}
		if a.Number == resp.Transfer.To {
			d.ToName = "Your " + strings.ToLower(kindName(a.Kind)) + " account " + displayNumber(a.Number)
		}
	}
	title := "Transfer received"
	if d.Sent {
		title = "Transfer sent"
	}
	s.render(w, r, http.StatusOK, "transfer_result", view{Title: title, Nav: "transfer", Data: d})
}

// accountURL is the page of an account.
func accountURL(number string) string { return "/accounts/" + url.PathEscape(number) }
