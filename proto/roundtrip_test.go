package proto_test

import (
	"context"
	"testing"
	"time"

	"bankwire/proto"
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
	e := wantCode(t, c.Call(ctx, opEcho, echoMsg{Text: "invalid"}, nil), proto.InvalidArgument)
	if e.Field != "text" || e.Message != "text may not be invalid" {
		t.Fatalf("error = %+v", e)
	}
}
