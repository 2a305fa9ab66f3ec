package apptier

import (
	"context"
	"errors"

	"bankwire/proto/limits"
	"bankwire/proto/wire"
	"bankwire/store"
)

func transferView(t store.Transfer) wire.Transfer {
	return wire.Transfer{ID: t.ID, From: t.FromNumber, To: t.ToNumber, Amount: t.Amount,
		Currency: t.Currency, Memo: t.Memo, CreatedAt: t.CreatedAt}
}

func validKey(k string) error {
	if len(k) == 0 || len(k) > limits.MaxIdempotencyKeyLen {
		return wire.FieldError(wire.InvalidArgument, "idempotency_key", "The form is missing its submission key; reload the page.")
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return wire.FieldError(wire.InvalidArgument, "idempotency_key", "The form's submission key is not valid; reload the page.")
		}
	}
	return nil
}

func (a *App) transferCreate(ctx context.Context, s store.Session, in wire.TransferRequest) (wire.TransferResponse, error) {
	if err := validKey(in.IdempotencyKey); err != nil {
		return wire.TransferResponse{}, err
	}
	from, err := normalizeNumber("from", in.From)
	if err != nil {
		return wire.TransferResponse{}, err
	}
	to, err := normalizeNumber("to", in.To)
	if err != nil {
		return wire.TransferResponse{}, err
	}
	amount, err := ParseAmount(in.Amount)
	if err != nil {
		return wire.TransferResponse{}, err
	}
	memo, err := cleanText("memo", in.Memo, 0, limits.MaxMemoLen, false)
	if err != nil {
		return wire.TransferResponse{}, err
	}
	if from == to {
		return wire.TransferResponse{}, wire.FieldError(wire.InvalidArgument, "to", "Choose an account other than the one you pay from.")
	}
	t, replayed, err := a.st.Transfer(ctx, store.TransferParams{CustomerID: s.CustomerID, IdempotencyKey: in.IdempotencyKey,
		FromNumber: from, ToNumber: to, Amount: amount, Memo: memo, DailyLimit: a.cfg.DailyLimit, Now: a.cfg.Now()})
	if errors.Is(err, store.ErrNotFound) {
		// Say which side is missing without revealing anything about whose
		// accounts exist: "from" is only ever one of the caller's own.
		if _, ferr := a.ownAccount(ctx, s.CustomerID, "from", from); ferr != nil {
			return wire.TransferResponse{}, ferr
		}
		return wire.TransferResponse{}, wire.FieldError(wire.NotFound, "to", errNoAccount)
	}
	if err != nil {
		return wire.TransferResponse{}, storeErr(err, errNoAccount)
	}
	return wire.TransferResponse{Transfer: transferView(t), Replayed: replayed}, nil
}

func (a *App) transferGet(ctx context.Context, s store.Session, in wire.TransferGetRequest) (wire.TransferResponse, error) {
	if in.ID <= 0 {
		return wire.TransferResponse{}, wire.Errorf(wire.NotFound, "No such transfer.")
	}
	t, err := a.st.TransferByID(ctx, s.CustomerID, in.ID)
	if err != nil {
		return wire.TransferResponse{}, storeErr(err, "No such transfer.")
	}
	return wire.TransferResponse{Transfer: transferView(t.Transfer),
		Labels: wire.TransferLabels{FromKind: t.FromKind, ToKind: t.ToKind, ToNickname: t.ToNickname}}, nil
}

// transferResolve settles a transfer whose outcome the caller could not
// learn: made (with the transfer) or not made, in which case the key is
// closed so that a late copy of the request cannot make it afterwards.
func (a *App) transferResolve(ctx context.Context, s store.Session, in wire.TransferResolveRequest) (wire.TransferResolveResponse, error) {
	if err := validKey(in.IdempotencyKey); err != nil {
		return wire.TransferResolveResponse{}, err
	}
	from, err := normalizeNumber("from", in.From)
	if err != nil {
		return wire.TransferResolveResponse{}, err
	}
	t, made, err := a.st.ResolveTransfer(ctx, s.CustomerID, in.IdempotencyKey, from, a.cfg.Now())
	if errors.Is(err, store.ErrNotFound) {
		return wire.TransferResolveResponse{}, wire.FieldError(wire.NotFound, "from", errNoAccount)
	}
	if err != nil {
		return wire.TransferResolveResponse{}, storeErr(err, errNoAccount)
	}
	if !made {
		return wire.TransferResolveResponse{}, nil
	}
	return wire.TransferResolveResponse{Made: true, Transfer: transferView(t)}, nil
}

// transferForm answers with what a transfer form offers, the caller's
// accounts and payees, read together.
func (a *App) transferForm(ctx context.Context, s store.Session, _ wire.SessionRequest) (wire.TransferFormResponse, error) {
	accs, ps, err := a.st.AccountsAndPayees(ctx, s.CustomerID)
	if err != nil {
		return wire.TransferFormResponse{}, storeErr(err, "")
	}
	out := wire.TransferFormResponse{Accounts: make([]wire.Account, 0, len(accs)), Payees: make([]wire.Payee, 0, len(ps))}
	for _, acc := range accs {
		out.Accounts = append(out.Accounts, accountView(acc))
	}
	for _, p := range ps {
		out.Payees = append(out.Payees, payeeView(p))
	}
	return out, nil
}
