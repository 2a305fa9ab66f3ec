package proto_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
)

func TestCallRoundTrip(t *testing.T) {
	fx := newFixture()
	srv := startServer(t, proto.ServerConfig{}, fx.mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := proto.Call(ctx, c, mEcho, echoMsg{N: 7, Text: "héllo"})
	if err != nil {
		t.Fatal(err)
	}
	if out != (echoMsg{N: 7, Text: "héllo"}) {
		t.Fatalf("got %+v", out)
	}
	info, err := proto.Call(ctx, c, wire.Info, wire.InfoRequest{})
	if err != nil || info.Server != "test" {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	e := wantCode(t, callErr(ctx, c, mEcho, echoMsg{Text: "invalid"}), wire.InvalidArgument)
	if e.Field != "text" || e.Message != "text may not be invalid" {
		t.Fatalf("error = %+v", e)
	}
}

// A handler that returns a typed nil pointer makes MarshalWire panic while
// the server holds the connection's write lock: the caller gets INTERNAL,
// and the connection and the server stay usable. A request or response
// type with no wire encoding fails before the request is sent.
func TestUnencodableResultsAndTypes(t *testing.T) {
	const opNil wire.Op = 2000
	fx := newFixture()
	m := fx.mux()
	proto.Handle(m, wire.Method[wire.Empty, *wire.AccountResponse]{Op: opNil, Name: "nil"},
		func(ctx context.Context, req *proto.Request, _ wire.Empty) (*wire.AccountResponse, error) {
			return nil, nil
		})
	srv := startServer(t, proto.ServerConfig{}, m)
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}, ConnsPerAddr: 1})
	ctx := context.Background()
	wantCode(t, callErr(ctx, c, wire.Method[wire.Empty, wire.AccountResponse]{Op: opNil, Name: "nil"}, wire.Empty{}), wire.Internal)
	if echo, err := proto.Call(ctx, c, mEcho, echoMsg{N: 7}); err != nil || echo.N != 7 {
		t.Fatalf("after the failed encode: %+v, %v", echo, err)
	}
	started := len(fx.started)
	e := wantCode(t, callErr(ctx, c, wire.Method[echoMsg, struct{ N int }]{Op: opSlow, Name: "slow"}, echoMsg{N: 1}), wire.InvalidArgument)
	if !strings.HasPrefix(e.Message, "response type") {
		t.Fatalf("undecodable response type: %q", e.Message)
	}
	if len(fx.started) != started {
		t.Fatal("a call with a response type that cannot be decoded was sent")
	}
	e = wantCode(t, callErr(ctx, c, wire.Method[struct{ N int }, echoMsg]{Op: opEcho, Name: "echo"}, struct{ N int }{1}), wire.InvalidArgument)
	if !strings.HasPrefix(e.Message, "request not encodable") {
		t.Fatalf("unencodable request type: %q", e.Message)
	}
}
