package proto

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"bankwire/proto/wire"
)

// Client.Close returns only once every connection is closed, also one
// that left its endpoint's set (drained, replaced, retired) while a call
// reads it for itself: such a connection is closed by a hook that runs on
// its own goroutine, which Close must wait for, or calls and even a
// new background reader could outlive Close.
func TestClientCloseWaitsForDetachedConnections(t *testing.T) {
	c, err := NewClient(ClientConfig{Addrs: []string{"127.0.0.1:1"}, Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	ep := &endpoint{c: c, addr: "127.0.0.1:1"}
	nc, peer := net.Pipe()
	defer peer.Close()
	go io.Copy(io.Discard, peer) // the server reads requests and never answers
	cc := newClientConn(c, ep, nc, wire.NewFramer(nc, nc), wire.Hello{MaxInFlight: 8, MaxPayload: 1024}, nil, false)
	done := make(chan error, 1)
	go func() {
		_, err := cc.roundTrip(context.Background(), wire.Info.Op, "", nil, nil, time.Now().Add(time.Minute))
		done <- err
	}()
	for i := 0; ; i++ { // wait until the call reads for itself
		cc.mu.Lock()
		leading := cc.reader == readerCaller
		cc.mu.Unlock()
		if leading {
			break
		}
		if i > 1000 {
			t.Fatal("the call never took the reading role")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cc.mu.Lock() // the connection is busy a moment: its close hook waits
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
		cc.mu.Unlock()
		t.Fatal("Client.Close returned while one of its connections was still open, its call still running")
	case <-time.After(500 * time.Millisecond):
	}
	cc.mu.Unlock()
	<-closed
	if wire.ErrorCode(<-done) != wire.Unavailable {
		t.Fatal("the call did not fail UNAVAILABLE")
	}
}
