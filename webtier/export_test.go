package webtier

import (
	"net/http"

	"bankwire/proto/wire"
)

// Hooks for the external tests in package webtier_test.

// AmountProblem exposes the amount pre-check.
var AmountProblem = amountProblem

// RenderAccountsPage renders the accounts overview exactly as the accounts
// handler does, for the benchmark's one-process baseline, which has checked
// the session itself (as the handler's data call confirms it).
func (s *Server) RenderAccountsPage(w http.ResponseWriter, r *http.Request, customer wire.Customer, accts []wire.Account) {
	r = r.WithContext(withSession(r.Context(), &session{Customer: customer, confirmed: true}))
	s.render(w, r, http.StatusOK, "accounts", accountsPage(accts))
}

// Recoverer exposes the panic middleware, to test the 500 page.
func (s *Server) Recoverer(h http.Handler) http.Handler { return s.recoverer(h) }

// DisplayNumber exposes how pages show an account number.
var DisplayNumber = displayNumber
