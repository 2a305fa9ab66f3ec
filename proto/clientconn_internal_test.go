package proto

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
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

// startInfoServer serves wire.Info on a loopback port until the test ends.
func startInfoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMux()
	Handle(m, wire.Info, func(ctx context.Context, r *Request, in wire.InfoRequest) (wire.InfoResponse, error) {
		return wire.InfoResponse{Server: "info"}, nil
	})
	srv := NewServer(ServerConfig{Secret: "s", Logger: discardLogger}, m)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// countingProxy forwards connections to target until refuse is set; from
// then on it closes new connections at once, as a server at its limit
// does. It counts the connections it accepts.
type countingProxy struct {
	ln      net.Listener
	accepts atomic.Int64
	refuse  atomic.Bool
}

func startCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{ln: ln}
	var open sync.Map // every connection, closed when the test ends
	t.Cleanup(func() {
		ln.Close()
		open.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
	})
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepts.Add(1)
			if p.refuse.Load() {
				down.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				down.Close()
				continue
			}
			open.Store(down, true)
			open.Store(up, true)
			go func() { io.Copy(up, down); up.Close() }()
			go func() { io.Copy(down, up); down.Close() }()
		}
	}()
	return p
}

func (ep *endpoint) unaryConns() []*clientConn {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return slices.Clone(ep.unary.conns)
}

func (c *Client) endpointFor(t *testing.T, addr string) *endpoint {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ep := range c.eps {
		if ep.addr == addr {
			return ep
		}
	}
	t.Fatalf("no endpoint %s", addr)
	return nil
}

// An endpoint ejected for a silent server while another of its
// connections stays open is redialed on its back-off, not by every call
// that passes it by: a server at its connection limit must not be
// flooded with dials.
func TestEjectedEndpointRedialsOnItsBackOff(t *testing.T) {
	p := startCountingProxy(t, startInfoServer(t))
	a := p.ln.Addr().String()
	c, err := NewClient(ClientConfig{Addrs: []string{a, startInfoServer(t)}, Secret: "s", ConnsPerAddr: 2, Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := Call(ctx, c, wire.Info, wire.InfoRequest{}); err != nil {
			t.Fatal(err)
		}
		if len(c.endpointFor(t, a).unaryConns()) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the endpoint never got its second connection")
		}
	}
	p.refuse.Store(true)
	before := p.accepts.Load()
	c.endpointFor(t, a).unaryConns()[0].close(errNotResponding) // what the §11 probe does: eject
	calls := 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end) && calls < 2000; calls++ {
		if _, err := Call(ctx, c, wire.Info, wire.InfoRequest{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	// Back-off from 100 ms, doubling (with jitter): a handful in 2 s.
	if dials := p.accepts.Load() - before; dials > 10 {
		t.Fatalf("%d dials in 2 s (%d calls) to an ejected endpoint, want its back-off", dials, calls)
	}
}

// A connection whose request ids run out closes once its last call is
// done, and the call that found them exhausted goes to a new connection.
func TestExhaustedIDsCloseTheConnection(t *testing.T) {
	c, err := NewClient(ClientConfig{Addrs: []string{startInfoServer(t)}, Secret: "s", ConnsPerAddr: 1, Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := Call(ctx, c, wire.Info, wire.InfoRequest{}); err != nil {
		t.Fatal(err)
	}
	cc := c.endpointFor(t, c.eps[0].addr).unaryConns()[0]
	cc.mu.Lock()
	cc.nextID = math.MaxUint32 - 1
	cc.mu.Unlock()
	for i := range 3 { // the last id, then two that need a new connection
		if _, err := Call(ctx, c, wire.Info, wire.InfoRequest{}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	select {
	case <-cc.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection whose ids ran out is still open")
	}
}
