package webtier

import (
	"net/http"
	"sort"

	"bankwire/proto/wire"

	"github.com/go-chi/chi/v5"
)

// maxCursorLen bounds a history cursor from a URL; the app tier's cursors
// are far shorter.
const maxCursorLen = 256

// historyPageSize is how many ledger entries one account page shows.
const historyPageSize = 20

type total struct {
	Currency string
	Amount   int64
}

type accountsData struct {
	Accounts []wire.Account
	Totals   []total
}

func totals(accts []wire.Account) []total {
	sums := map[string]int64{}
	for _, a := range accts {
		sums[a.Currency] += a.Balance
	}
	out := make([]total, 0, len(sums))
	for c, v := range sums {
		out = append(out, total{Currency: c, Amount: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Currency < out[j].Currency })
	return out
}

// AccountsPageData is the data of the accounts overview page, exported for
// the benchmark's one-process baseline (it renders the same template).
func accountsPage(accts []wire.Account) view {
	return view{Title: "Your accounts", Nav: "accounts", Data: accountsData{Accounts: accts, Totals: totals(accts)}}
}

func (s *Server) accounts(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r.Context())
	var resp wire.AccountsResponse
	if err := s.call(r, wire.OpAccountsList, wire.SessionRequest{Session: sess.Token}, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "accounts", accountsPage(resp.Accounts))
}

type accountData struct {
	Account    wire.Account
	Entries    []wire.Entry
	NextCursor string
	Paged      bool // not the first page
}

func (s *Server) account(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r.Context())
	number := chi.URLParam(r, "number")
	cursor := r.URL.Query().Get("cursor")
	if !plausibleAccountNumber(number) {
		s.errorPage(w, r, http.StatusNotFound, "")
		return
	}
	if len(cursor) > maxCursorLen || !cleanText(cursor, false) {
		s.errorPage(w, r, http.StatusBadRequest, "")
		return
	}
	var resp wire.HistoryResponse
	err := s.call(r, wire.OpAccountHistory, wire.HistoryRequest{
		SessionRequest: wire.SessionRequest{Session: sess.Token},
		Number:         number, Cursor: cursor, Limit: historyPageSize,
	}, &resp)
	if err != nil {
		// A malformed number is as unknown as another customer's account.
		var f form
		if wire.ErrorCode(err) == wire.InvalidArgument && f.userError(err, nil) && cursor == "" {
			s.errorPage(w, r, http.StatusNotFound, "")
			return
		}
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "account", view{
		Title: kindName(resp.Account.Kind) + " " + resp.Account.Number,
		Nav:   "accounts",
		Data:  accountData{Account: resp.Account, Entries: resp.Entries, NextCursor: resp.NextCursor, Paged: cursor != ""},
	})
}

type openAccountData struct {
	Form *form
}

func (s *Server) openAccountForm(w http.ResponseWriter, r *http.Request) {
	f := newForm()
	f.Values["kind"] = "savings"
	s.render(w, r, http.StatusOK, "account_new", view{Title: "Open an account", Nav: "accounts", Data: openAccountData{Form: f}})
}

func (s *Server) openAccount(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	sess := sessionFrom(r.Context())
	f := newForm()
	kind := r.PostFormValue("kind")
	f.Values["kind"] = kind
	if kind != "checking" && kind != "savings" {
		f.fail("kind", "Choose a checking or a savings account.")
	}
	if !f.Invalid() {
		var resp wire.AccountResponse
		err := s.call(r, wire.OpAccountOpen, wire.OpenAccountRequest{
			SessionRequest: wire.SessionRequest{Session: sess.Token}, Kind: kind,
		}, &resp)
		if err == nil {
			s.setFlash(w, "account_opened")
			http.Redirect(w, r, accountURL(resp.Account.Number), http.StatusSeeOther)
			return
		}
		if !f.userError(err, map[string]string{"kind": "kind"}) {
			s.fail(w, r, err)
			return
		}
	}
	s.render(w, r, http.StatusUnprocessableEntity, "account_new", view{Title: "Open an account", Nav: "accounts", Data: openAccountData{Form: f}})
}
