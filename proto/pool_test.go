package proto_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
)

// faultProxy is a TCP proxy in front of one server that can black-hole the
// link (connections stay open, nothing passes either way, new connections
// are accepted and hear nothing) or reset every connection.
type faultProxy struct {
	ln     net.Listener
	target string
	delay  atomic.Int64 // nanoseconds before a new connection is passed on

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	blackout bool
	upBytes  int64     // bytes from clients, forwarded or swallowed
	lastUp   time.Time // when the last of them arrived
	wg       sync.WaitGroup
}

func startProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.reset()
		p.wg.Wait()
	})
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		time.Sleep(time.Duration(p.delay.Load()))
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		p.conns[down], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(up, down, true)
		go p.pipe(down, up, false)
	}
}

// pipe copies src to dst; while the link is black-holed it swallows
// what it reads. fromClient counts the bytes clients send.
func (p *faultProxy) pipe(dst, src net.Conn, fromClient bool) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			black := p.blackout
			if fromClient {
				p.upBytes += int64(n)
				p.lastUp = time.Now()
			}
			p.mu.Unlock()
			if !black {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *faultProxy) setBlackout(on bool) {
	p.mu.Lock()
	p.blackout = on
	p.mu.Unlock()
}

// fromClients reports the bytes received from clients so far and when the
// last of them arrived.
func (p *faultProxy) fromClients() (int64, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.upBytes, p.lastUp
}

// reset aborts every connection (RST, not FIN).
func (p *faultProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
		delete(p.conns, c)
	}
}

// A black-holed app tier (connections open, nothing answered) stops getting
// calls: a call whose answer is overdue makes its connection PING, and
// when no PONG comes the endpoint is ejected. After that, every call goes
// to the healthy tier and not one byte more reaches the black hole.
func TestClientEjectsBlackHoledEndpoint(t *testing.T) {
	var onA, onB opCounter
	a := startServer(t, proto.ServerConfig{Observe: onA.observe}, newFixture().mux())
	b := startServer(t, proto.ServerConfig{Observe: onB.observe}, newFixture().mux())
	p := startProxy(t, a.Addr)
	c := newClient(t, proto.ClientConfig{Addrs: []string{p.addr(), b.Addr}, DialTimeout: 500 * time.Millisecond})
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return callErr(ctx, c, mEcho, echoMsg{N: 1})
	}
	for i := 0; i < 40; i++ {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	if onA.get(wire.OK) == 0 || onB.get(wire.OK) == 0 {
		t.Fatalf("warm-up: %d calls on A, %d on B; want both used", onA.get(wire.OK), onB.get(wire.OK))
	}
	// Four streams, opened one after another: round robin puts two on
	// each tier.
	var subs []*proto.Subscription
	for i := 0; i < 4; i++ {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		sub, err := proto.Subscribe(sctx, c, mStream, echoMsg{})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		subs = append(subs, sub)
	}

	// Black-hole A under open-loop load (a call every 5 ms, as page
	// requests keep coming whatever earlier ones wait for), until the
	// proxy has heard nothing from the client for a while (bounded).
	blackAt := time.Now()
	p.setBlackout(true)
	var failed, ok atomic.Int64
	var wg sync.WaitGroup
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(8 * time.Second); ; {
		<-tick.C
		if _, last := p.fromClients(); time.Since(last) > 500*time.Millisecond && time.Since(blackAt) > time.Second {
			break
		}
		if time.Now().After(deadline) {
			wg.Wait()
			t.Fatal("the client kept sending to the black-holed app tier for 8s")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := call()
			switch wire.ErrorCode(err) {
			case wire.OK:
				ok.Add(1)
			case wire.Unavailable, wire.DeadlineExceeded:
				failed.Add(1)
			default:
				t.Errorf("call during the black hole: %v", err)
			}
		}()
	}
	wg.Wait()
	_, last := p.fromClients()
	t.Logf("black hole: last byte to the dead tier %v after it went silent; %d calls failed, %d succeeded meanwhile",
		last.Sub(blackAt).Round(time.Millisecond), failed.Load(), ok.Load())

	// The streams on A were probed when A was ejected and end UNAVAILABLE
	// (their subscribers can open them elsewhere); those on B stay open.
	ended := make(chan wire.Code, len(subs))
	for _, sub := range subs {
		go func() {
			nctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ended <- wire.ErrorCode(sub.Next(nctx, nil))
		}()
	}
	for i := 0; i < 2; i++ {
		if code := <-ended; code != wire.Unavailable {
			t.Fatalf("a stream ended %v, want the two on A to end UNAVAILABLE first", code)
		}
	}
	select {
	case code := <-ended:
		t.Fatalf("a third stream ended (%v): the streams on B should stay open", code)
	case <-time.After(100 * time.Millisecond):
	}

	// Ejected: many more calls, all answered by B, none sent to A.
	before, _ := p.fromClients()
	for i := 0; i < 200; i++ {
		if err := call(); err != nil {
			t.Fatalf("call %d with A black-holed: %v", i, err)
		}
	}
	if after, _ := p.fromClients(); after != before {
		t.Fatalf("%d bytes reached the black-holed tier after its ejection", after-before)
	}
}

// After every app tier was down for a while, the background probe's
// back-off is seconds long; a call dials on demand, so the client serves
// again as soon as a tier listens, before that back-off has passed.
func TestClientRecoversFromTotalOutageOnDemand(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newClient(t, proto.ClientConfig{Addrs: []string{addr}})
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return callErr(ctx, c, mEcho, echoMsg{})
	}
	for start := time.Now(); time.Since(start) < 1500*time.Millisecond; time.Sleep(10 * time.Millisecond) {
		wantCode(t, call(), wire.Unavailable)
	}

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	backoffEnds := c.DownUntil(addr)
	if backoffEnds.IsZero() {
		t.Fatal("the endpoint is not marked down")
	}
	serveOn(t, ln, proto.ServerConfig{}, newFixture().mux())
	listening := time.Now()
	waitFor(t, func() bool { return call() == nil })
	served := time.Now()
	t.Logf("total outage: first success %v after the app tier listened (the back-off had %v left)",
		served.Sub(listening).Round(time.Millisecond), backoffEnds.Sub(listening).Round(time.Millisecond))
	if !served.Before(backoffEnds) {
		t.Fatalf("served again only when the back-off ended (%v after listening)", backoffEnds.Sub(listening))
	}
}

// Connections reset under the client (a restarted proxy or firewall): calls
// in flight fail UNAVAILABLE, and later calls go to fresh connections.
func TestClientRedialsAfterReset(t *testing.T) {
	fx := newFixture()
	srv := startServer(t, proto.ServerConfig{}, fx.mux())
	p := startProxy(t, srv.Addr)
	c := newClient(t, proto.ClientConfig{Addrs: []string{p.addr()}})
	if _, err := proto.Call(context.Background(), c, mEcho, echoMsg{}); err != nil {
		t.Fatal(err)
	}
	open := fx.shutGate()
	defer open()
	inFlight := make(chan error, 1)
	go func() { inFlight <- callErr(context.Background(), c, mGate, echoMsg{}) }()
	select {
	case <-fx.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the gated call never started")
	}
	resetAt := time.Now()
	p.reset()
	select {
	case err := <-inFlight:
		wantCode(t, err, wire.Unavailable)
	case <-time.After(5 * time.Second):
		t.Fatal("the call in flight did not fail after the reset")
	}
	open()
	waitFor(t, func() bool { return callErr(context.Background(), c, mEcho, echoMsg{}) == nil })
	t.Logf("reset: first success %v after the reset", time.Since(resetAt).Round(time.Millisecond))
}

// Streams have connections of their own: with more streams open than a
// connection's max_in_flight, unary calls still succeed, and the server
// never has to refuse a request.
func TestStreamsDoNotStarveCalls(t *testing.T) {
	var obs opCounter
	srv := startServer(t, proto.ServerConfig{MaxInFlight: 8, Observe: obs.observe}, newFixture().mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}, ConnsPerAddr: 1, StreamConnsPerAddr: 3})
	ctx := context.Background()
	var subs []*proto.Subscription
	defer func() {
		for _, s := range subs {
			s.Close()
		}
	}()
	for i := 0; i < 24; i++ { // three stream connections' worth
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := proto.Subscribe(sctx, c, mStream, echoMsg{})
		cancel()
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		subs = append(subs, s)
	}
	// One more than the stream connections hold is refused by the client
	// itself, as a temporary shortage.
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := proto.Subscribe(sctx, c, mStream, echoMsg{})
	cancel()
	wantCode(t, err, wire.Unavailable)

	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if _, err := proto.Call(ctx, c, mEcho, echoMsg{N: i}); err != nil {
					t.Errorf("call with 24 streams open: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := obs.get(wire.ResourceExhausted); n != 0 {
		t.Fatalf("the server refused %d requests as over max_in_flight", n)
	}
}

// The client never sends more requests on a connection than the
// max_in_flight its server announced: it spreads them over connections
// with room, and when none has room fails at once without sending.
func TestClientHonoursMaxInFlight(t *testing.T) {
	var obsA, obsB opCounter
	fx := newFixture()
	a := startServer(t, proto.ServerConfig{MaxInFlight: 4, Observe: obsA.observe}, fx.mux())
	b := startServer(t, proto.ServerConfig{MaxInFlight: 4, Observe: obsB.observe}, fx.mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{a.Addr, b.Addr}, ConnsPerAddr: 1})
	ctx := context.Background()
	waitFor(t, func() bool { // both endpoints connected
		_ = callErr(ctx, c, mEcho, echoMsg{})
		return obsA.get(wire.OK) > 0 && obsB.get(wire.OK) > 0
	})
	open := fx.shutGate()
	defer open()
	results := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() { results <- callErr(ctx, c, mGate, echoMsg{}) }()
	}
	for i := 0; i < 8; i++ {
		select {
		case <-fx.started:
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of 8 gated calls reached a server", i)
		}
	}
	// Every slot is taken: the ninth call fails without being sent.
	wantCode(t, callErr(ctx, c, mGate, echoMsg{}), wire.Unavailable)
	open()
	for i := 0; i < 8; i++ {
		select {
		case err := <-results:
			if err != nil {
				t.Fatalf("gated call: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a gated call never returned")
		}
	}
	if n := obsA.get(wire.ResourceExhausted) + obsB.get(wire.ResourceExhausted); n != 0 {
		t.Fatalf("servers refused %d requests as over max_in_flight", n)
	}
}

// A flood of streams must not take a web tier offline: at the default
// limits, with 300 streams open from one client, all 2 × 128 request
// slots of its unary connections still take calls at once.
func TestStreamFloodLeavesEveryRequestSlot(t *testing.T) {
	var obs opCounter
	fx := newFixture()
	srv := startServer(t, proto.ServerConfig{Observe: obs.observe}, fx.mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}})
	ctx := context.Background()
	for i := 0; i < 300; i++ {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := proto.Subscribe(sctx, c, mStream, echoMsg{})
		cancel()
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		defer s.Close()
	}
	if _, err := proto.Call(ctx, c, mEcho, echoMsg{}); err != nil {
		t.Fatal(err)
	}
	open := fx.shutGate()
	defer open()
	const n = 2 * wire.DefaultMaxInFlight
	results := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() { results <- callErr(ctx, c, mGate, echoMsg{}) }()
	}
	for i := 0; i < n; i++ {
		select {
		case <-fx.started:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d calls reached the server with 300 streams open", i, n)
		}
	}
	open()
	for i := 0; i < n; i++ {
		select {
		case err := <-results:
			if err != nil {
				t.Fatalf("call with 300 streams open: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a gated call never returned")
		}
	}
	if r := obs.get(wire.ResourceExhausted); r != 0 {
		t.Fatalf("the server refused %d requests as over max_in_flight", r)
	}
}

// When every endpoint is down, the client looks its host names up again
// early (not only every ResolveInterval): an app tier that came back at a
// new address is found at once.
func TestClientReresolvesWhenEveryEndpointIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 loopback: %v", err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	var ip atomic.Value
	ip.Store("127.0.0.1") // the old address: nothing listens there on this port
	c := newClient(t, proto.ClientConfig{
		Addrs:           []string{net.JoinHostPort("apptier", port)},
		ResolveInterval: time.Hour,
		LookupHost: func(ctx context.Context, host string) ([]string, error) {
			return []string{ip.Load().(string)}, nil
		},
	})
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return callErr(ctx, c, mEcho, echoMsg{})
	}
	if err := call(); err == nil {
		t.Skipf("something listens on 127.0.0.1:%s", port)
	}
	serveOn(t, ln, proto.ServerConfig{}, newFixture().mux())
	ip.Store("127.0.0.2")
	moved := time.Now()
	waitFor(t, func() bool { return call() == nil })
	t.Logf("new address found %v after the move", time.Since(moved).Round(time.Millisecond))
}

// The deadline a REQUEST carries is what the caller has left when it is
// written (§4.2): time spent waiting for a connection is not handed to the
// server again.
func TestRequestCarriesTheRemainingBudget(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{}, newFixture().mux())
	p := startProxy(t, srv.Addr)
	p.delay.Store(int64(300 * time.Millisecond))
	var mu sync.Mutex
	var sent []uint32
	c := newClient(t, proto.ClientConfig{Addrs: []string{p.addr()}, Trace: func(conn string, out bool, f wire.Frame) {
		if out && f.Type == wire.FrameRequest {
			h, _, err := wire.ParseRequest(f.Payload)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			sent = append(sent, h.DeadlineMs)
			mu.Unlock()
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := proto.Call(ctx, c, mEcho, echoMsg{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 1 || sent[0] == 0 || sent[0] > 700 {
		t.Fatalf("deadline_ms %v after waiting 300ms for the connection, want one in (0, 700]", sent)
	}
}
