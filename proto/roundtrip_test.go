package proto_test

import (
	"context"
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
	var out echoMsg
	if err := c.Call(ctx, opEcho, echoMsg{N: 7, Text: "héllo"}, &out); err != nil {
		t.Fatal(err)
	}
	if out != (echoMsg{N: 7, Text: "héllo"}) {
		t.Fatalf("got %+v", out)
	}
	info, err := c.Info(ctx)
	if err != nil || info.Server != "test" {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	e := wantCode(t, c.Call(ctx, opEcho, echoMsg{Text: "invalid"}, nil), wire.InvalidArgument)
	if e.Field != "text" || e.Message != "text may not be invalid" {
		t.Fatalf("error = %+v", e)
	}
}

// A handler that returns a typed nil pointer makes MarshalWire panic while
// the server holds the connection's write lock: the caller gets INTERNAL,
// and the connection and the server stay usable. A response type that
// cannot be decoded fails before the request is sent.
func TestUnencodableResultsAndTypes(t *testing.T) {
	const opNil wire.Op = 2000
	fx := newFixture()
	m := fx.mux()
	m.Handle(opNil, func(ctx context.Context, req *proto.Request) (any, error) {
		return (*wire.AccountResponse)(nil), nil
	})
	srv := startServer(t, proto.ServerConfig{}, m)
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}, ConnsPerAddr: 1})
	ctx := context.Background()
	var out wire.AccountResponse
	wantCode(t, c.Call(ctx, opNil, nil, &out), wire.Internal)
	var echo echoMsg
	if err := c.Call(ctx, opEcho, echoMsg{N: 7}, &echo); err != nil || echo.N != 7 {
		t.Fatalf("after the failed encode: %+v, %v", echo, err)
	}
	started := len(fx.started)
	wantCode(t, c.Call(ctx, opSlow, echoMsg{N: 1}, echoMsg{}), wire.InvalidArgument) // a value, not a pointer
	wantCode(t, c.Call(ctx, opEcho, struct{ N int }{1}, nil), wire.InvalidArgument)
	if len(fx.started) != started {
		t.Fatal("a call with a response type that cannot be decoded was sent")
	}
}
