package apptier

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"bankwire/proto"
	"bankwire/proto/limits"
	"bankwire/proto/wire"
	"bankwire/store"
)

const (
	errNoAccount  = "No account with that number."
	maxCursorSize = 64
)

func accountView(a store.Account) wire.Account {
	return wire.Account{Number: a.Number, Kind: a.Kind, Currency: a.Currency, Balance: a.Balance, CreatedAt: a.CreatedAt}
}

// encodeCursor makes an opaque, URL-safe page cursor of a keyset position.
func encodeCursor(c store.Cursor) string {
	raw := strconv.FormatInt(c.CreatedAt.UnixNano(), 10) + ":" + strconv.FormatInt(c.ID, 10)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeCursor(s string) (store.Cursor, error) {
	bad := wire.FieldError(wire.InvalidArgument, "cursor", "The page link is not valid.")
	if s == "" {
		return store.Cursor{}, nil
	}
	if len(s) > maxCursorSize {
		return store.Cursor{}, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return store.Cursor{}, bad
	}
	ts, id, ok := strings.Cut(string(raw), ":")
	if !ok {
		return store.Cursor{}, bad
	}
	nanos, err1 := strconv.ParseInt(ts, 10, 64)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if err1 != nil || err2 != nil || n <= 0 || nanos <= 0 {
		return store.Cursor{}, bad
	}
	return store.Cursor{CreatedAt: time.Unix(0, nanos).UTC(), ID: n}, nil
}

func pageLimit(n, def, max int) (int, error) {
	switch {
	case n == 0:
		return def, nil
	case n < 0 || n > max:
		return 0, wire.FieldError(wire.InvalidArgument, "limit", "The page size must be between 1 and "+strconv.Itoa(max)+".")
	}
	return n, nil
}

// normalizeNumber cleans an account number typed by a customer and checks
// its format and check digit, so that a typo is reported as a typo
// (INVALID_ARGUMENT) rather than as an unknown account.
func normalizeNumber(field, s string) (string, error) {
	if len(s) > 64 {
		return "", wire.FieldError(wire.InvalidArgument, field, "That is not a valid account number.")
	}
	n := store.NormalizeAccountNumber(strings.TrimSpace(s))
	if n == "" {
		return "", wire.FieldError(wire.InvalidArgument, field, "Enter an account number.")
	}
	if !store.ValidAccountNumber(n) {
		return "", wire.FieldError(wire.InvalidArgument, field, "That is not a valid account number; check the digits.")
	}
	return n, nil
}

// ownAccount returns the caller's account with that number. Another
// customer's account and a missing one get the same NOT_FOUND.
func (a *App) ownAccount(ctx context.Context, customerID int64, field, number string) (store.Account, error) {
	n, err := normalizeNumber(field, number)
	if err != nil {
		return store.Account{}, err
	}
	acc, err := a.st.AccountByNumber(ctx, n)
	if errors.Is(err, store.ErrNotFound) || err == nil && acc.CustomerID != customerID {
		return store.Account{}, wire.FieldError(wire.NotFound, field, errNoAccount)
	}
	if err != nil {
		return store.Account{}, storeErr(err, errNoAccount)
	}
	return acc, nil
}

func (a *App) accountsList(ctx context.Context, req *proto.Request) (any, error) {
	var in wire.SessionRequest
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	s, err := a.authenticate(ctx, in.Session)
	if err != nil {
		return nil, err
	}
	accs, err := a.st.ListAccounts(ctx, s.CustomerID)
	if err != nil {
		return nil, storeErr(err, "")
	}
	out := wire.AccountsResponse{Accounts: make([]wire.Account, 0, len(accs))}
	for _, acc := range accs {
		out.Accounts = append(out.Accounts, accountView(acc))
	}
	return out, nil
}

// maxAccountsPerCustomer keeps one customer from opening accounts without end.
const maxAccountsPerCustomer = 10

func (a *App) accountOpen(ctx context.Context, req *proto.Request) (any, error) {
	var in wire.OpenAccountRequest
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	s, err := a.authenticate(ctx, in.Session)
	if err != nil {
		return nil, err
	}
	if in.Kind != "checking" && in.Kind != "savings" {
		return nil, wire.FieldError(wire.InvalidArgument, "kind", "Choose a checking or a savings account.")
	}
	if in.Currency == "" {
		in.Currency = a.cfg.Currency
	}
	if in.Currency != a.cfg.Currency {
		return nil, wire.FieldError(wire.InvalidArgument, "currency", "Accounts are offered in "+a.cfg.Currency+" only.")
	}
	accs, err := a.st.ListAccounts(ctx, s.CustomerID)
	if err != nil {
		return nil, storeErr(err, "")
	}
	if len(accs) >= maxAccountsPerCustomer {
		return nil, wire.FieldError(wire.FailedPrecondition, "kind", "You already have the maximum number of accounts.")
	}
	acc, err := a.st.OpenAccount(ctx, s.CustomerID, in.Kind, in.Currency, a.cfg.Now())
	if err != nil {
		return nil, storeErr(err, "")
	}
	return wire.AccountResponse{Account: accountView(acc)}, nil
}

func (a *App) accountGet(ctx context.Context, req *proto.Request) (any, error) {
	var in wire.AccountRequest
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	s, err := a.authenticate(ctx, in.Session)
	if err != nil {
		return nil, err
	}
	acc, err := a.ownAccount(ctx, s.CustomerID, "number", in.Number)
	if err != nil {
		return nil, err
	}
	return wire.AccountResponse{Account: accountView(acc)}, nil
}

func (a *App) accountHistory(ctx context.Context, req *proto.Request) (any, error) {
	var in wire.HistoryRequest
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	s, err := a.authenticate(ctx, in.Session)
	if err != nil {
		return nil, err
	}
	limit, err := pageLimit(in.Limit, limits.HistoryDefaultPage, limits.HistoryMaxPage)
	if err != nil {
		return nil, err
	}
	cur, err := decodeCursor(in.Cursor)
	if err != nil {
		return nil, err
	}
	acc, err := a.ownAccount(ctx, s.CustomerID, "number", in.Number)
	if err != nil {
		return nil, err
	}
	// Ask for one more than a page to know whether another page exists.
	entries, err := a.st.History(ctx, acc.ID, cur, limit+1)
	if err != nil {
		return nil, storeErr(err, "")
	}
	out := wire.HistoryResponse{Account: accountView(acc), Entries: make([]wire.Entry, 0, limit)}
	for i, e := range entries {
		if i == limit {
			last := entries[limit-1]
			out.NextCursor = encodeCursor(store.Cursor{CreatedAt: last.CreatedAt, ID: last.ID})
			break
		}
		out.Entries = append(out.Entries, wire.Entry{ID: e.ID, TransferID: e.TransferID, Amount: e.Amount,
			BalanceAfter: e.BalanceAfter, Currency: e.Currency, Counterparty: e.Counterparty, Memo: e.Memo, CreatedAt: e.CreatedAt})
	}
	return out, nil
}
