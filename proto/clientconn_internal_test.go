package proto

import (
	"net"
	"testing"
	"time"

	"bankwire/proto/wire"
)

// A dial that completes after Client.Close yields a connection that closes
// at once, cleanly: the hook that closes it runs immediately and must not
// find the connection half built.
func TestConnBuiltAfterClientCloseCloses(t *testing.T) {
	c, err := NewClient(ClientConfig{Addrs: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	ep := &endpoint{c: c, addr: "127.0.0.1:1"}
	for range 50 {
		nc, peer := net.Pipe()
		cc := newClientConn(c, ep, nc, wire.NewFramer(nc, nc), wire.Hello{MaxInFlight: 1, MaxPayload: 1024}, nil, false)
		select {
		case <-cc.done:
		case <-time.After(5 * time.Second):
			t.Fatal("a connection built after Close stayed open")
		}
		if wire.ErrorCode(cc.closeErr) != wire.Unavailable {
			t.Fatalf("closed with %v, want UNAVAILABLE", cc.closeErr)
		}
		peer.Close()
	}
}
