package proto_test

import (
	"context"
	"io"
	"testing"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
)

// The typed helpers carry an operation's own types both ways: Handle
// decodes the request before the handler runs and answers a body of
// another type as malformed without running it; Call returns the decoded
// response or the handler's error; HandleStream and Subscribe do the same
// for a stream.
func TestTypedCallHandleAndStream(t *testing.T) {
	m := proto.NewMux()
	calls := 0
	proto.Handle(m, wire.SignIn, func(ctx context.Context, r *proto.Request, in wire.SignInRequest) (wire.SignInResponse, error) {
		calls++
		if r.Op != wire.OpSignIn {
			t.Errorf("handler saw op %s", r.Op)
		}
		if in.Password != "right" {
			return wire.SignInResponse{Token: "ignored"}, wire.FieldError(wire.Unauthenticated, "password", "wrong")
		}
		return wire.SignInResponse{Token: "t-" + in.Username, Customer: wire.Customer{Username: in.Username}}, nil
	})
	proto.HandleStream(m, wire.Subscribe, func(ctx context.Context, r *proto.Request, in wire.SessionRequest, s *proto.Stream) error {
		if err := s.Accept(wire.Empty{}); err != nil {
			return err
		}
		if err := s.Send(wire.Event{Kind: wire.EventBalance, Account: &wire.Account{Number: in.SessionToken()}}); err != nil {
			return err
		}
		return nil
	})
	srv := startServer(t, proto.ServerConfig{}, m)
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	out, err := proto.Call(ctx, c, wire.SignIn, wire.SignInRequest{Username: "alice", Password: "right"})
	if err != nil || out.Token != "t-alice" || out.Customer.Username != "alice" {
		t.Fatalf("Call = %+v, %v", out, err)
	}
	out, err = proto.Call(ctx, c, wire.SignIn, wire.SignInRequest{Username: "alice", Password: "wrong"})
	if e := wantCode(t, err, wire.Unauthenticated); e.Field != "password" || out != (wire.SignInResponse{}) {
		t.Fatalf("failed Call = %+v, %+v; want the zero response and the handler's error", out, e)
	}
	before := calls
	// A body of another operation's type, sent under a forged descriptor.
	forged := wire.Method[wire.SessionRequest, wire.SignInResponse]{Op: wire.OpSignIn, Name: "signin"}
	_, err = proto.Call(ctx, c, forged, wire.SessionRequest{Session: "x"})
	if e := wantCode(t, err, wire.InvalidArgument); e.Message != "malformed request body" || calls != before {
		t.Fatalf("malformed body: %+v, handler ran %d times", e, calls-before)
	}

	sub, err := proto.Subscribe(ctx, c, wire.Subscribe, wire.SessionRequest{Session: "1234"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var ev wire.Event
	if err := sub.Next(ctx, &ev); err != nil || ev.Kind != wire.EventBalance || ev.Account == nil || ev.Account.Number != "1234" {
		t.Fatalf("event %+v, %v", ev, err)
	}
	if err := sub.Next(ctx, &ev); err != io.EOF {
		t.Fatalf("after the handler returned: %v, want io.EOF", err)
	}
}

// Registering a nil typed handler, or an operation twice, panics.
func TestTypedHandleRejectsNilAndDuplicates(t *testing.T) {
	panics := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	m := proto.NewMux()
	panics("nil handler", func() { proto.Handle[wire.InfoRequest, wire.InfoResponse](m, wire.Info, nil) })
	panics("nil stream handler", func() {
		proto.HandleStream[wire.SessionRequest, wire.Empty](m, wire.Subscribe, nil)
	})
	info := func(context.Context, *proto.Request, wire.InfoRequest) (wire.InfoResponse, error) {
		return wire.InfoResponse{}, nil
	}
	proto.Handle(m, wire.Info, info)
	panics("second registration", func() { proto.Handle(m, wire.Info, info) })
}
