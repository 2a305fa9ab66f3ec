package apptier

import (
	"context"
	"errors"

	"bankwire/proto"
	"bankwire/proto/limits"
	"bankwire/store"
)

func transferView(t store.Transfer) proto.Transfer {
	return proto.Transfer{ID: t.ID, From: t.FromNumber, To: t.ToNumber, Amount: t.Amount,
		Currency: t.Currency, Memo: t.Memo, CreatedAt: t.CreatedAt}
}

func validKey(k string) error {
	if len(k) == 0 || len(k) > limits.MaxIdempotencyKeyLen {
		return proto.FieldError(proto.InvalidArgument, "idempotency_key", "The form is missing its submission key; reload the page.")
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return proto.FieldError(proto.InvalidArgument, "idempotency_key", "The form's submission key is not valid; reload the page.")
		}
	}
	return nil
}

func (a *App) transferCreate(ctx context.Context, req *proto.Request) (any, error) {
	var in proto.TransferRequest
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
		return nil, proto.FieldError(proto.InvalidArgument, "to", "Choose an account other than the one you pay from.")
	}
	t, replayed, err := a.st.Transfer(ctx, store.TransferParams{CustomerID: s.CustomerID, IdempotencyKey: in.IdempotencyKey,
		FromNumber: from, ToNumber: to, Amount: amount, Memo: memo, DailyLimit: a.cfg.DailyLimit, Now: a.cfg.Now()})
	if errors.Is(err, store.ErrNotFound) {
		// Say which side is missing without revealing anything about whose
		// accounts exist: "from" is only ever one of the caller's own.
		if _, ferr := a.ownAccount(ctx, s.CustomerID, "from", from); ferr != nil {
			return nil, ferr
		}
		return nil, proto.FieldError(proto.NotFound, "to", errNoAccount)
	}
	if err != nil {
		return nil, storeErr(err, errNoAccount)
	}
	return proto.TransferResponse{Transfer: transferView(t), Replayed: replayed}, nil
}

func (a *App) transferGet(ctx context.Context, req *proto.Request) (any, error) {
	var in proto.TransferGetRequest
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	s, err := a.authenticate(ctx, in.Session)
	if err != nil {
		return nil, err
	}
	if in.ID <= 0 {
		return nil, proto.Errorf(proto.NotFound, "No such transfer.")
	}
	t, err := a.st.TransferByID(ctx, s.CustomerID, in.ID)
	if err != nil {
		return nil, storeErr(err, "No such transfer.")
	}
	return proto.TransferResponse{Transfer: transferView(t.Transfer),
		Labels: proto.TransferLabels{FromKind: t.FromKind, ToKind: t.ToKind, ToNickname: t.ToNickname}}, nil
}

// transferResolve settles a transfer whose outcome the caller could not
// learn: made (with the transfer) or not made, in which case the key is
// closed so that a late copy of the request cannot make it afterwards.
func (a *App) transferResolve(ctx context.Context, req *proto.Request) (any, error) {
	var in proto.TransferResolveRequest
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
		return nil, proto.FieldError(proto.NotFound, "from", errNoAccount)
	}
	if err != nil {
		return nil, storeErr(err, errNoAccount)
	}
	if !made {
		return proto.TransferResolveResponse{}, nil
	}
	return proto.TransferResolveResponse{Made: true, Transfer: transferView(t)}, nil
}

// transferForm answers with what a transfer form offers, the caller's
// accounts and payees, read together.
func (a *App) transferForm(ctx context.Context, req *proto.Request) (any, error) {
	var in proto.SessionRequest
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	s, err := a.authenticate(ctx, in.Session)
	if err != nil {
		return nil, err
	}
	accs, ps, err := a.st.AccountsAndPayees(ctx, s.CustomerID)
	if err != nil {
		return nil, storeErr(err, "")
	}
	out := proto.TransferFormResponse{Accounts: make([]proto.Account, 0, len(accs)), Payees: make([]proto.Payee, 0, len(ps))}
	for _, acc := range accs {
		out.Accounts = append(out.Accounts, accountView(acc))
	}
	for _, p := range ps {
		out.Payees = append(out.Payees, payeeView(p))
	}
	return out, nil
}

func payeeView(p store.Payee) proto.Payee {
	return proto.Payee{ID: p.ID, Nickname: p.Nickname, Number: p.Number, CreatedAt: p.CreatedAt}
}

func (a *App) payeesList(ctx context.Context, req *proto.Request) (any, error) {
	var in proto.SessionRequest
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
	out := proto.PayeesResponse{Payees: make([]proto.Payee, 0, len(ps))}
	for _, p := range ps {
		out.Payees = append(out.Payees, payeeView(p))
	}
	return out, nil
}

// maxPayees keeps one customer's payee list bounded.
const maxPayees = 100

func (a *App) payeeAdd(ctx context.Context, req *proto.Request) (any, error) {
	var in proto.PayeeAddRequest
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
		return nil, proto.FieldError(proto.FailedPrecondition, "nickname", "You already have the maximum number of payees.")
	}
	p, err := a.st.AddPayee(ctx, s.CustomerID, nick, n, a.cfg.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, proto.FieldError(proto.NotFound, "number", errNoAccount)
	case errors.Is(err, store.ErrAlreadyExists):
		return nil, proto.FieldError(proto.AlreadyExists, "nickname", "You already have a payee with that nickname or account number.")
	case err != nil:
		return nil, storeErr(err, "")
	}
	return proto.PayeeResponse{Payee: payeeView(p)}, nil
}

func (a *App) payeeRename(ctx context.Context, req *proto.Request) (any, error) {
	var in proto.PayeeRenameRequest
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
		return nil, proto.FieldError(proto.AlreadyExists, "nickname", "You already have a payee with that nickname.")
	}
	if err != nil {
		return nil, storeErr(err, "No such payee.")
	}
	return proto.PayeeResponse{Payee: payeeView(p)}, nil
}

func (a *App) payeeDelete(ctx context.Context, req *proto.Request) (any, error) {
	var in proto.PayeeDeleteRequest
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
	return proto.Empty{}, nil
}
