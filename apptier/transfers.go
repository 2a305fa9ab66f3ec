package apptier

import (
	"context"
	"errors"

	"bankwire/proto"
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

func (a *App) transferCreate(ctx context.Context, req *proto.Request) (any, error) {
	var in wire.TransferRequest
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	s, err := a.authenticate(ctx, in.Session)
	if err != nil {
		return nil, err
	}
	if err := validKey(in.IdempotencyKey); err != nil {
		return nil, err
	}
	from, err := normalizeNumber("from", in.From)
	if err != nil {
		return nil, err
	}
	to, err := normalizeNumber("to", in.To)
	if err != nil {
		return nil, err
	}
	amount, err := ParseAmount(in.Amount)
	if err != nil {
		return nil, err
	}
	memo, err := cleanText("memo", in.Memo, 0, limits.MaxMemoLen, false)
	if err != nil {
		return nil, err
	}
	if from == to {
		return nil, wire.FieldError(wire.InvalidArgument, "to", "Choose an account other than the one you pay from.")
	}
	t, replayed, err := a.st.Transfer(ctx, store.TransferParams{CustomerID: s.CustomerID, IdempotencyKey: in.IdempotencyKey,
		FromNumber: from, ToNumber: to, Amount: amount, Memo: memo, DailyLimit: a.cfg.DailyLimit, Now: a.cfg.Now()})
	if errors.Is(err, store.ErrNotFound) {
		// Say which side is missing without revealing anything about whose
		// accounts exist: "from" is only ever one of the caller's own.
		if _, ferr := a.ownAccount(ctx, s.CustomerID, "from", from); ferr != nil {
			return nil, ferr
		}
		return nil, wire.FieldError(wire.NotFound, "to", errNoAccount)
	}
	if err != nil {
		return nil, storeErr(err, errNoAccount)
	}
	return wire.TransferResponse{Transfer: transferView(t), Replayed: replayed}, nil
}

func (a *App) transferGet(ctx context.Context, req *proto.Request) (any, error) {
	var in wire.TransferGetRequest
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	s, err := a.authenticate(ctx, in.Session)
	if err != nil {
		return nil, err
	}
	if in.ID <= 0 {
		return nil, wire.Errorf(wire.NotFound, "No such transfer.")
	}
	t, err := a.st.TransferByID(ctx, s.CustomerID, in.ID)
	if err != nil {
		return nil, storeErr(err, "No such transfer.")
	}
	return wire.TransferResponse{Transfer: transferView(t.Transfer),
		Labels: wire.TransferLabels{FromKind: t.FromKind, ToKind: t.ToKind, ToNickname: t.ToNickname}}, nil
}

// transferResolve settles a transfer whose outcome the caller could not
// learn: made (with the transfer) or not made, in which case the key is
// closed so that a late copy of the request cannot make it afterwards.
func (a *App) transferResolve(ctx context.Context, req *proto.Request) (any, error) {
	var in wire.TransferResolveRequest
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	s, err := a.authenticate(ctx, in.Session)
	if err != nil {
		return nil, err
	}
	if err := validKey(in.IdempotencyKey); err != nil {
		return nil, err
	}
	from, err := normalizeNumber("from", in.From)
	if err != nil {
		return nil, err
	}
	t, made, err := a.st.ResolveTransfer(ctx, s.CustomerID, in.IdempotencyKey, from, a.cfg.Now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, wire.FieldError(wire.NotFound, "from", errNoAccount)
	}
	if err != nil {
		return nil, storeErr(err, errNoAccount)
	}
	if !made {
		return wire.TransferResolveResponse{}, nil
	}
	return wire.TransferResolveResponse{Made: true, Transfer: transferView(t)}, nil
}

func payeeView(p store.Payee) wire.Payee {
	return wire.Payee{ID: p.ID, Nickname: p.Nickname, Number: p.Number, CreatedAt: p.CreatedAt}
}

func (a *App) payeesList(ctx context.Context, req *proto.Request) (any, error) {
	var in wire.SessionRequest
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	s, err := a.authenticate(ctx, in.Session)
	if err != nil {
		return nil, err
	}
	ps, err := a.st.ListPayees(ctx, s.CustomerID)
	if err != nil {
		return nil, storeErr(err, "")
	}
	out := wire.PayeesResponse{Payees: make([]wire.Payee, 0, len(ps))}
	for _, p := range ps {
		out.Payees = append(out.Payees, payeeView(p))
	}
	return out, nil
}

// maxPayees keeps one customer's payee list bounded.
const maxPayees = 100

func (a *App) payeeAdd(ctx context.Context, req *proto.Request) (any, error) {
	var in wire.PayeeAddRequest
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	s, err := a.authenticate(ctx, in.Session)
	if err != nil {
		return nil, err
	}
	nick, err := cleanText("nickname", in.Nickname, 1, 40, false)
	if err != nil {
		return nil, err
	}
	n, err := normalizeNumber("number", in.Number)
	if err != nil {
		return nil, err
	}
	ps, err := a.st.ListPayees(ctx, s.CustomerID)
	if err != nil {
		return nil, storeErr(err, "")
	}
	if len(ps) >= maxPayees {
		return nil, wire.FieldError(wire.FailedPrecondition, "nickname", "You already have the maximum number of payees.")
	}
	p, err := a.st.AddPayee(ctx, s.CustomerID, nick, n, a.cfg.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, wire.FieldError(wire.NotFound, "number", errNoAccount)
	case errors.Is(err, store.ErrAlreadyExists):
		return nil, wire.FieldError(wire.AlreadyExists, "nickname", "You already have a payee with that nickname or account number.")
	case err != nil:
		return nil, storeErr(err, "")
	}
	return wire.PayeeResponse{Payee: payeeView(p)}, nil
}

func (a *App) payeeRename(ctx context.Context, req *proto.Request) (any, error) {
	var in wire.PayeeRenameRequest
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	s, err := a.authenticate(ctx, in.Session)
	if err != nil {
		return nil, err
	}
	nick, err := cleanText("nickname", in.Nickname, 1, 40, false)
	if err != nil {
		return nil, err
	}
	p, err := a.st.RenamePayee(ctx, s.CustomerID, in.ID, nick)
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil, wire.FieldError(wire.AlreadyExists, "nickname", "You already have a payee with that nickname.")
	}
	if err != nil {
		return nil, storeErr(err, "No such payee.")
	}
	return wire.PayeeResponse{Payee: payeeView(p)}, nil
}

func (a *App) payeeDelete(ctx context.Context, req *proto.Request) (any, error) {
	var in wire.PayeeDeleteRequest
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	s, err := a.authenticate(ctx, in.Session)
	if err != nil {
		return nil, err
	}
	if err := a.st.DeletePayee(ctx, s.CustomerID, in.ID); err != nil {
		return nil, storeErr(err, "No such payee.")
	}
	return wire.Empty{}, nil
}
