package apptier

import (
	"context"
	"errors"

	"bankwire/proto/wire"
	"bankwire/store"
)

func payeeView(p store.Payee) wire.Payee {
	return wire.Payee{ID: p.ID, Nickname: p.Nickname, Number: p.Number, CreatedAt: p.CreatedAt}
}

func (a *App) payeesList(ctx context.Context, s store.Session, _ wire.SessionRequest) (wire.PayeesResponse, error) {
	ps, err := a.st.ListPayees(ctx, s.CustomerID)
	if err != nil {
		return wire.PayeesResponse{}, storeErr(err, "")
	}
	out := wire.PayeesResponse{Payees: make([]wire.Payee, 0, len(ps))}
	for _, p := range ps {
		out.Payees = append(out.Payees, payeeView(p))
	}
	return out, nil
}

// maxPayees keeps one customer's payee list bounded.
const maxPayees = 100

func (a *App) payeeAdd(ctx context.Context, s store.Session, in wire.PayeeAddRequest) (wire.PayeeResponse, error) {
	nick, err := cleanText("nickname", in.Nickname, 1, store.MaxNicknameLen, false)
	if err != nil {
		return wire.PayeeResponse{}, err
	}
	n, err := normalizeNumber("number", in.Number)
	if err != nil {
		return wire.PayeeResponse{}, err
	}
	ps, err := a.st.ListPayees(ctx, s.CustomerID)
	if err != nil {
		return wire.PayeeResponse{}, storeErr(err, "")
	}
	if len(ps) >= maxPayees {
		return wire.PayeeResponse{}, wire.FieldError(wire.FailedPrecondition, "nickname", "You already have the maximum number of payees.")
	}
	p, err := a.st.AddPayee(ctx, s.CustomerID, nick, n, a.cfg.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return wire.PayeeResponse{}, wire.FieldError(wire.NotFound, "number", errNoAccount)
	case errors.Is(err, store.ErrAlreadyExists):
		return wire.PayeeResponse{}, wire.FieldError(wire.AlreadyExists, "nickname", "You already have a payee with that nickname or account number.")
	case err != nil:
		return wire.PayeeResponse{}, storeErr(err, "")
	}
	return wire.PayeeResponse{Payee: payeeView(p)}, nil
}

func (a *App) payeeRename(ctx context.Context, s store.Session, in wire.PayeeRenameRequest) (wire.PayeeResponse, error) {
	nick, err := cleanText("nickname", in.Nickname, 1, store.MaxNicknameLen, false)
	if err != nil {
		return wire.PayeeResponse{}, err
	}
	p, err := a.st.RenamePayee(ctx, s.CustomerID, in.ID, nick)
	if errors.Is(err, store.ErrAlreadyExists) {
		return wire.PayeeResponse{}, wire.FieldError(wire.AlreadyExists, "nickname", "You already have a payee with that nickname.")
	}
	if err != nil {
		return wire.PayeeResponse{}, storeErr(err, "No such payee.")
	}
	return wire.PayeeResponse{Payee: payeeView(p)}, nil
}

func (a *App) payeeDelete(ctx context.Context, s store.Session, in wire.PayeeDeleteRequest) (wire.Empty, error) {
	if err := a.st.DeletePayee(ctx, s.CustomerID, in.ID); err != nil {
		return wire.Empty{}, storeErr(err, "No such payee.")
	}
	return wire.Empty{}, nil
}
