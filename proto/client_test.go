package proto_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
)

// fakeServer accepts one connection at a time, greets and authenticates it
// like a real server, then lets the test misbehave on it.
type fakeServer struct {
	ln    net.Listener
	conns chan *rawConn
}

func startFake(t *testing.T, hello wire.Hello) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{ln: ln, conns: make(chan *rawConn, 8)}
	if hello.Versions == nil {
		hello = wire.Hello{Versions: []int{1}, Server: "fake", MaxPayload: 1 << 20, MaxInFlight: 100, IdleTimeoutMs: 60000, HandshakeTimeoutMs: 1000}
	}
	hb, _ := json.Marshal(hello)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { nc.Close() })
			r := &rawConn{tb: t, nc: nc, fr: wire.NewFramer(nc, nc)}
			nc.SetDeadline(time.Now().Add(20 * time.Second))
			if r.fr.WriteFrame(wire.Frame{Type: wire.FrameHello, Payload: hb}) != nil {
				continue
			}
			f, err := r.fr.ReadFrame()
			if err != nil || f.Type != wire.FrameAuth {
				continue
			}
			ready, _ := json.Marshal(wire.Ready{Version: 1, ConnID: "fake"})
			if r.fr.WriteFrame(wire.Frame{Type: wire.FrameReady, Payload: ready}) != nil {
				continue
			}
			fs.conns <- r
		}
	}()
	return fs
}

func (fs *fakeServer) addr() string { return fs.ln.Addr().String() }

func (fs *fakeServer) next(t *testing.T) *rawConn {
	t.Helper()
	select {
	case r := <-fs.conns:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no connection to the fake server")
		return nil
	}
}

// answerEach serves every connection the fake accepts from now on, until
// the test ends: answer is called with each REQUEST read; other frames
// are dropped.
func (fs *fakeServer) answerEach(t *testing.T, answer func(r *rawConn, f wire.Frame)) {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			select {
			case r := <-fs.conns:
				go func() {
					for {
						f, err := r.fr.ReadFrame()
						if err != nil {
							return
						}
						if f.Type == wire.FrameRequest {
							answer(r, f)
						}
					}
				}()
			case <-stop:
				return
			}
		}
	}()
}

// callAsync runs proto.Call in a goroutine.
func callAsync[Req, Resp any](c *proto.Client, ctx context.Context, m wire.Method[Req, Resp], req Req) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- callErr(ctx, c, m, req) }()
	return ch
}

func TestClientResponseForUnknownID(t *testing.T) {
	fs := startFake(t, wire.Hello{})
	c := newClient(t, proto.ClientConfig{Addrs: []string{fs.addr()}, ConnsPerAddr: 1})
	done := callAsync(c, context.Background(), mEcho, echoMsg{})
	r := fs.next(t)
	f := r.read()
	if f.Type != wire.FrameRequest {
		t.Fatalf("got %s", f)
	}
	r.write(wire.Frame{Type: wire.FrameResponse, ID: f.ID + 1000})
	// The client names the violation and closes the connection.
	r.expectFatal(wire.ProtocolError)
	wantCode(t, <-done, wire.Unavailable)
}

func TestClientUndecodableFromServer(t *testing.T) {
	fs := startFake(t, wire.Hello{})
	c := newClient(t, proto.ClientConfig{Addrs: []string{fs.addr()}, ConnsPerAddr: 1})

	// A RESPONSE whose body does not decode fails that call only.
	done := callAsync(c, context.Background(), mEcho, echoMsg{})
	r := fs.next(t)
	f := r.read()
	r.write(wire.Frame{Type: wire.FrameResponse, ID: f.ID, Payload: []byte{0x02, 0x05, 'a'}}) // n=1, then a 5-byte string with 1 byte left
	wantCode(t, <-done, wire.Internal)

	// An ERROR frame whose payload breaks the format is a protocol error.
	done = callAsync(c, context.Background(), mEcho, echoMsg{})
	f = r.read()
	r.write(wire.Frame{Type: wire.FrameError, ID: f.ID, Payload: []byte{0}})
	r.expectFatal(wire.ProtocolError)
	wantCode(t, <-done, wire.Unavailable)

	// A frame over the announced limit (the client holds the server to its
	// own HELLO) is a protocol error.
	done = callAsync(c, context.Background(), mEcho, echoMsg{})
	r = fs.next(t)
	f = r.read()
	r.writeBytes(header(1, wire.FrameResponse, 0, f.ID, 2<<20))
	r.expectFatal(wire.ProtocolError)
	wantCode(t, <-done, wire.Unavailable)

	// An EVENT for a plain request is a protocol error.
	done = callAsync(c, context.Background(), mEcho, echoMsg{})
	r = fs.next(t)
	f = r.read()
	r.write(wire.Frame{Type: wire.FrameEvent, ID: f.ID, Payload: encode(wire.Event{Kind: wire.EventBalance})})
	r.expectFatal(wire.ProtocolError)
	wantCode(t, <-done, wire.Unavailable)
}

func TestClientServerClosesMidFrame(t *testing.T) {
	fs := startFake(t, wire.Hello{})
	c := newClient(t, proto.ClientConfig{Addrs: []string{fs.addr()}, ConnsPerAddr: 1})
	done := callAsync(c, context.Background(), mEcho, echoMsg{})
	r := fs.next(t)
	f := r.read()
	full := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameResponse, ID: f.ID, Payload: encode(echoMsg{N: 1, Text: "abc"})})
	r.writeBytes(full[:len(full)-2])
	r.nc.Close()
	wantCode(t, <-done, wire.Unavailable)
}

// rawBody is a body that is already encoded, sent as is.
type rawBody []byte

func (b rawBody) MarshalWire(dst []byte) []byte { return append(dst, b...) }

// A server that stops reading must not hang the client: the write times
// out, the connection is closed, and the calls written to it fail
// UNAVAILABLE. (Calls never written are retried on new connections, which
// this server also never reads, so they end at their deadline.)
func TestClientPeerStopsReading(t *testing.T) {
	fs := startFake(t, wire.Hello{})
	c := newClient(t, proto.ClientConfig{Addrs: []string{fs.addr()}, ConnsPerAddr: 1, WriteTimeout: 300 * time.Millisecond})
	// Pre-encoded, so the test measures the writer, not the encoder under -race.
	big := rawBody(encode(echoMsg{Text: strings.Repeat("z", 900<<10)}))
	rawEcho := wire.Method[rawBody, echoMsg]{Op: opEcho, Name: "echo"}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var errs []<-chan error
	errs = append(errs, callAsync(c, ctx, rawEcho, big))
	stalled := fs.next(t) // never read from it until the end
	for i := 0; i < 20; i++ {
		errs = append(errs, callAsync(c, ctx, rawEcho, big))
	}
	unavailable := 0
	for _, ch := range errs {
		switch code := wire.ErrorCode(<-ch); code {
		case wire.Unavailable:
			unavailable++
		case wire.DeadlineExceeded:
		default:
			t.Fatalf("call ended with %s", code)
		}
	}
	if unavailable == 0 {
		t.Fatal("no call failed UNAVAILABLE after the write timeout")
	}
	// The client closed the stalled connection.
	stalled.expectClosed()
}

func TestClientLazyDialAndRecovery(t *testing.T) {
	// Reserve a port, then free it: nothing listens there yet.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	c := newClient(t, proto.ClientConfig{Addrs: []string{addr}}) // must not fail
	start := time.Now()
	wantCode(t, callErr(context.Background(), c, mEcho, echoMsg{}), wire.Unavailable)
	wantCode(t, c.Ping(context.Background()), wire.Unavailable)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("failing fast took %v", d)
	}

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	serveOn(t, ln, proto.ServerConfig{}, newFixture().mux())
	// The endpoint is probed back (back-off with jitter, well under 2s here).
	waitFor(t, func() bool { return callErr(context.Background(), c, mEcho, echoMsg{}) == nil })
}

func TestConcurrentMultiplexedLoad(t *testing.T) {
	fx := newFixture()
	srv := startServer(t, proto.ServerConfig{}, fx.mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}, ConnsPerAddr: 2})
	var wg sync.WaitGroup
	var failures atomic.Int32
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				in := echoMsg{N: g*1000 + i, Text: fmt.Sprint(g, "/", i)}
				m := mEcho
				if i%10 == 0 {
					m, in.N = mSlow, 1 // out-of-order completion
					in.Text = fmt.Sprint(g, "/", i)
				}
				out, err := proto.Call(context.Background(), c, m, in)
				if err != nil || out != in {
					failures.Add(1)
					t.Errorf("call %d/%d: %+v, %v", g, i, out, err)
					return
				}
			}
		}()
	}
	waitGroup(t, &wg, time.Minute, "the calls")
	if failures.Load() > 0 {
		t.Fatalf("%d failures", failures.Load())
	}
}

type opCounter struct {
	mu sync.Mutex
	n  map[wire.Code]int
}

func (o *opCounter) observe(op wire.Op, code wire.Code, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[wire.Code]int{}
	}
	o.n[code]++
}

func (o *opCounter) get(code wire.Code) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[code]
}

// Drain under load: one of two servers shuts down while 32 callers keep
// going. Requests it had started finish there; requests it never started
// are retried on the other server; no call fails.
func TestDrainUnderLoadLosesNothing(t *testing.T) {
	fxA, fxB := newFixture(), newFixture()
	var countA, countB opCounter
	a := startServer(t, proto.ServerConfig{Observe: countA.observe}, fxA.mux())
	b := startServer(t, proto.ServerConfig{Observe: countB.observe}, fxB.mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{a.Addr, b.Addr}, ConnsPerAddr: 2})

	drain := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		for range fxA.started {
		}
	}()
	go func() {
		for range fxB.started {
		}
	}()
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-drain:
					if i > 200 {
						return
					}
				default:
				}
				in := echoMsg{N: 1 + i%20, Text: fmt.Sprint(g, i)}
				out, err := proto.Call(ctx, c, mSlow, in)
				if err != nil || out != in {
					failed.Add(1)
					t.Errorf("call failed: %v", err)
					return
				}
				ok.Add(1)
			}
		}()
	}
	waitFor(t, func() bool { return countA.get(wire.OK) > 200 && countB.get(wire.OK) > 200 })
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := a.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	close(drain)
	waitGroup(t, &wg, time.Minute, "the calls during the drain")
	if failed.Load() != 0 {
		t.Fatalf("%d calls failed during drain", failed.Load())
	}
	t.Logf("%d calls ok; server A answered %d (UNAVAILABLE %d), B %d", ok.Load(), countA.get(wire.OK), countA.get(wire.Unavailable), countB.get(wire.OK))
}

// With a single server, drain finishes what it started; afterwards, calls
// fail UNAVAILABLE fast; after a restart on the same address they work
// again.
func TestDrainSingleServerAndRestart(t *testing.T) {
	fx := newFixture()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srv := serveOn(t, ln, proto.ServerConfig{}, fx.mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{addr}})

	const n = 20
	var results []<-chan error
	for i := 0; i < n; i++ {
		results = append(results, callAsync(c, context.Background(), mSlow, echoMsg{N: 300}))
	}
	for i := 0; i < n; i++ {
		fx.waitStarted(t)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	for _, ch := range results {
		if err := <-ch; err != nil {
			t.Fatalf("in-flight call failed during drain: %v", err)
		}
	}
	wantCode(t, callErr(context.Background(), c, mEcho, echoMsg{}), wire.Unavailable)

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	serveOn(t, ln, proto.ServerConfig{}, fx.mux())
	waitFor(t, func() bool { return callErr(context.Background(), c, mEcho, echoMsg{}) == nil })
}

// Requests the server read before DRAIN are answered; requests with a
// higher id are refused UNAVAILABLE; the raw exchange shows the ids. The
// two in flight are held until the third has its answer, so the
// connection cannot close before the third arrives.
func TestDrainFrameNamesLastID(t *testing.T) {
	fx := newFixture()
	open := fx.shutGate()
	srv := startServer(t, proto.ServerConfig{}, fx.mux())
	r := dialRaw(t, srv.Addr)
	r.handshake()
	r.request(1, opGate, 0, "", echoMsg{})
	r.request(2, opGate, 0, "", echoMsg{})
	fx.waitStarted(t)
	fx.waitStarted(t)
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	f := r.read()
	last, err := wire.ParseDrain(f.Payload)
	if f.Type != wire.FrameDrain || err != nil || last != 2 {
		t.Fatalf("got %s", f)
	}
	r.request(3, opEcho, 0, "", echoMsg{})
	if f := r.read(); f.Type != wire.FrameError || f.ID != 3 {
		t.Fatalf("request after DRAIN: %s, want ERROR for id 3", f)
	} else if e, _ := wire.ParseError(f.Payload); e == nil || e.Code != wire.Unavailable {
		t.Fatalf("request after DRAIN: %s, want UNAVAILABLE", f)
	}
	open()
	got := map[uint32]wire.FrameType{}
	for len(got) < 2 {
		f := r.read()
		got[f.ID] = f.Type
	}
	if got[1] != wire.FrameResponse || got[2] != wire.FrameResponse {
		t.Fatalf("in-flight requests: %v", got)
	}
	r.expectFatal(wire.ShuttingDown)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

// A DRAIN naming a lower last id hands the requests above it back to
// their callers' client, which sends them again on a new connection; the
// server's late ERROR for such an id is dropped, not taken for an answer
// to an unknown request (§7.3).
func TestClientRetriesRequestsAboveDrainLastID(t *testing.T) {
	fs := startFake(t, wire.Hello{})
	c := newClient(t, proto.ClientConfig{Addrs: []string{fs.addr()}, ConnsPerAddr: 1})
	first := make(chan error, 1)
	go func() {
		out, err := proto.Call(context.Background(), c, mEcho, echoMsg{N: 1})
		if err == nil && out.N != 1 {
			err = fmt.Errorf("first call got %+v", out)
		}
		first <- err
	}()
	r1 := fs.next(t)
	f1 := r1.read()
	second := make(chan error, 1)
	go func() {
		out, err := proto.Call(context.Background(), c, mEcho, echoMsg{N: 2})
		if err == nil && out.N != 20 {
			err = fmt.Errorf("second call got %+v, want the retry's answer", out)
		}
		second <- err
	}()
	f2 := r1.read()
	if f1.Type != wire.FrameRequest || f2.Type != wire.FrameRequest || f2.ID <= f1.ID {
		t.Fatalf("got %s and %s, want two REQUESTs", f1, f2)
	}

	r1.write(wire.Frame{Type: wire.FrameDrain, Payload: wire.AppendDrain(nil, f1.ID)})
	r1.write(wire.Frame{Type: wire.FrameError, ID: f2.ID, Payload: wire.AppendError(nil, &wire.Error{Code: wire.Unavailable, Message: "server is shutting down"})})
	// The retry comes on a connection of its own, with the same body.
	r2 := fs.next(t)
	f := r2.read()
	_, body, err := wire.ParseRequest(f.Payload)
	var in echoMsg
	if f.Type != wire.FrameRequest || err != nil || unwire(body, &in) != nil || in.N != 2 {
		t.Fatalf("on the new connection: %s, want the second request again", f)
	}
	r2.write(wire.Frame{Type: wire.FrameResponse, ID: f.ID, Payload: encode(echoMsg{N: 20})})
	if err := <-second; err != nil {
		t.Fatalf("request above DRAIN's last id: %v, want it retried", err)
	}

	r1.write(wire.Frame{Type: wire.FrameResponse, ID: f1.ID, Payload: encode(echoMsg{N: 1})})
	if err := <-first; err != nil {
		t.Fatalf("request at DRAIN's last id: %v, want its answer", err)
	}
	r1.write(wire.Frame{Type: wire.FrameFatal, Payload: wire.AppendFatal(nil, wire.ShuttingDown, "server shutting down")})
	_ = r1.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := r1.fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) || isReset(err) {
				break
			}
			t.Fatalf("drained connection not closed by the client: %v", err)
		}
		if f.Type != wire.FramePing {
			t.Fatalf("client sent %s on the drained connection", f)
		}
	}
}

// Host names are resolved to every address, each an endpoint; the set is
// re-resolved, so scaled-out replicas get traffic and removed ones stop.
func TestClientSpreadsOverResolvedAddresses(t *testing.T) {
	var counts [3]opCounter
	var port string
	addrs := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	for i, ip := range addrs {
		lnAddr := net.JoinHostPort(ip, port)
		if port == "" {
			lnAddr = ip + ":0"
		}
		ln, err := net.Listen("tcp", lnAddr)
		if err != nil {
			t.Skipf("cannot listen on %s (loopback range not routed here): %v", lnAddr, err)
		}
		_, port, _ = net.SplitHostPort(ln.Addr().String())
		serveOn(t, ln, proto.ServerConfig{Observe: counts[i].observe}, newFixture().mux())
	}
	var mu sync.Mutex
	resolved := addrs[:2]
	lookup := func(ctx context.Context, host string) ([]string, error) {
		if host != "apptier" {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		mu.Lock()
		defer mu.Unlock()
		return resolved, nil
	}
	c := newClient(t, proto.ClientConfig{Addrs: []string{"apptier:" + port}, LookupHost: lookup, ResolveInterval: 50 * time.Millisecond})
	for i := 0; i < 100; i++ {
		if _, err := proto.Call(context.Background(), c, mEcho, echoMsg{}); err != nil {
			t.Fatal(err)
		}
	}
	if counts[0].get(wire.OK) < 20 || counts[1].get(wire.OK) < 20 || counts[2].get(wire.OK) != 0 {
		t.Fatalf("spread over 2 replicas: %d %d %d", counts[0].get(wire.OK), counts[1].get(wire.OK), counts[2].get(wire.OK))
	}
	// Scale: replica 3 appears, replica 1 goes away.
	mu.Lock()
	resolved = addrs[1:]
	mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	before := counts[0].get(wire.OK)
	for i := 0; i < 100; i++ {
		if _, err := proto.Call(context.Background(), c, mEcho, echoMsg{}); err != nil {
			t.Fatal(err)
		}
	}
	if counts[0].get(wire.OK) != before || counts[2].get(wire.OK) < 20 {
		t.Fatalf("after re-resolve: %d %d %d", counts[0].get(wire.OK)-before, counts[1].get(wire.OK), counts[2].get(wire.OK))
	}
	// A failed lookup keeps the last known addresses.
	mu.Lock()
	resolved = nil
	mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	if _, err := proto.Call(context.Background(), c, mEcho, echoMsg{}); err != nil {
		t.Fatalf("after an empty lookup: %v", err)
	}
}

// One endpoint dies: calls go to the others; when it returns it is probed
// back and gets traffic again.
func TestClientMarksEndpointDownAndProbesBack(t *testing.T) {
	var cA, cB opCounter
	lnA, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addrA := lnA.Addr().String()
	a := serveOn(t, lnA, proto.ServerConfig{Observe: cA.observe}, newFixture().mux())
	b := startServer(t, proto.ServerConfig{Observe: cB.observe}, newFixture().mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{addrA, b.Addr}})
	for i := 0; i < 20; i++ {
		if _, err := proto.Call(context.Background(), c, mEcho, echoMsg{}); err != nil {
			t.Fatal(err)
		}
	}
	a.Close() // abrupt: no drain
	for i := 0; i < 50; i++ {
		_, err := proto.Call(context.Background(), c, mEcho, echoMsg{})
		if err != nil && wire.ErrorCode(err) != wire.Unavailable {
			t.Fatal(err)
		}
	}
	// After the abrupt close has been noticed, every call succeeds on B.
	for i := 0; i < 50; i++ {
		if _, err := proto.Call(context.Background(), c, mEcho, echoMsg{}); err != nil {
			t.Fatalf("call %d with A down: %v", i, err)
		}
	}
	lnA, err = net.Listen("tcp", addrA)
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	var cA2 opCounter
	serveOn(t, lnA, proto.ServerConfig{Observe: cA2.observe}, newFixture().mux())
	waitFor(t, func() bool {
		_ = callErr(context.Background(), c, mEcho, echoMsg{})
		return cA2.get(wire.OK) > 0
	})
}

func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	srv := startServer(t, proto.ServerConfig{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}}, newFixture().mux())
	_, port, _ := net.SplitHostPort(srv.Addr)
	c := newClient(t, proto.ClientConfig{Addrs: []string{"localhost:" + port}, TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		LookupHost: func(context.Context, string) ([]string, error) { return []string{"127.0.0.1"}, nil }})
	if out, err := proto.Call(context.Background(), c, mEcho, echoMsg{N: 3}); err != nil || out.N != 3 {
		t.Fatalf("over TLS: %+v %v", out, err)
	}
	// A plaintext client gets nowhere.
	plain := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}, DialTimeout: time.Second})
	wantCode(t, callErr(context.Background(), plain, mEcho, echoMsg{}), wire.Unavailable)
	// A client that does not trust the certificate gets nowhere.
	untrusting := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}, TLS: &tls.Config{MinVersion: tls.VersionTLS13}})
	wantCode(t, callErr(context.Background(), untrusting, mEcho, echoMsg{}), wire.Unavailable)
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bankwire test"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func TestClientClose(t *testing.T) {
	fx := newFixture()
	srv := startServer(t, proto.ServerConfig{}, fx.mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}})
	done := callAsync(c, context.Background(), mWait, wire.Empty{})
	fx.waitStarted(t)
	c.Close()
	wantCode(t, <-done, wire.Unavailable)
	wantCode(t, callErr(context.Background(), c, mEcho, echoMsg{}), wire.Unavailable)
	if w := <-fx.waits; !errors.Is(w.err, context.Canceled) {
		t.Fatalf("handler ctx after client close: %v", w.err)
	}
}

func TestNewClientRejectsBadConfig(t *testing.T) {
	for _, addrs := range [][]string{nil, {"no-port"}, {"a:1", "::1"}} {
		if _, err := proto.NewClient(proto.ClientConfig{Addrs: addrs}); err == nil {
			t.Errorf("NewClient(%q) accepted", addrs)
		}
	}
}

// DRAIN precedes every frame a drain causes: the open stream's ERROR and
// the FATAL that closes the idle connection, however long writing DRAIN is
// delayed (a stream ended before DRAIN was written could close the
// connection first).
func TestDrainComesBeforeStreamEndAndFatal(t *testing.T) {
	defer proto.SetHookBeforeDrain(func() { time.Sleep(50 * time.Millisecond) })()
	for round := range 3 {
		fx := newFixture()
		srv := startServer(t, proto.ServerConfig{}, fx.mux())
		r := dialRaw(t, srv.Addr)
		r.handshake()
		r.request(1, opStream, 0, "", echoMsg{})
		for f := r.read(); f.Type != wire.FrameResponse; f = r.read() {
			if f.Type != wire.FrameEvent {
				t.Fatalf("round %d: opening the stream: %s", round, f)
			}
		}
		shut := make(chan error, 1)
		go func() { shut <- srv.Shutdown(context.Background()) }()
		var order []wire.FrameType
		for {
			f := r.read()
			if f.Type == wire.FrameEvent {
				continue
			}
			order = append(order, f.Type)
			if f.Type == wire.FrameFatal {
				break
			}
		}
		if len(order) != 3 || order[0] != wire.FrameDrain || order[1] != wire.FrameError {
			t.Fatalf("round %d: frames after Shutdown: %v, want DRAIN, ERROR, FATAL", round, order)
		}
		if err := <-shut; err != nil {
			t.Fatal(err)
		}
	}
}

// A request over the server's max_payload fails INVALID_ARGUMENT without
// being sent: the connection, and the calls sharing it, carry on.
func TestOversizedRequestFailsUnsent(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{MaxPayload: 4096}, newFixture().mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}, ConnsPerAddr: 1})
	ctx := context.Background()
	if _, err := proto.Call(ctx, c, mEcho, echoMsg{N: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := proto.Call(ctx, c, mEcho, echoMsg{Text: strings.Repeat("x", 5000)})
	if e := wantCode(t, err, wire.InvalidArgument); !strings.Contains(e.Message, "limit of 4096") {
		t.Fatalf("message %q does not name the limit", e.Message)
	}
	out, err := proto.Call(ctx, c, mEcho, echoMsg{N: 2, Text: strings.Repeat("y", 4000)})
	if err != nil || out.N != 2 {
		t.Fatalf("next call: %+v, %v", out, err)
	}
}

// A server that goes silent is found within the probe's 0.8 s even when
// the connection's background reader, not a calling goroutine, is the one
// waiting for the answer: the call's arrival makes it arm the probe.
func TestSilentServerFoundByBackgroundReader(t *testing.T) {
	fs := startFake(t, wire.Hello{})
	c := newClient(t, proto.ClientConfig{Addrs: []string{fs.ln.Addr().String()}, ConnsPerAddr: 1})
	done := make(chan error, 1)
	go func() { _, err := proto.Call(context.Background(), c, mEcho, echoMsg{N: 1}); done <- err }()
	r := <-fs.conns
	f, err := r.fr.ReadFrame()
	if err != nil || f.Type != wire.FrameRequest {
		t.Fatalf("got %v %v, want the first REQUEST", f, err)
	}
	r.write(wire.Frame{Type: wire.FrameResponse, ID: f.ID, Payload: encode(echoMsg{N: 1})})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Long enough for a background reader to take the idle connection
	// over, and for the probe window of the last call to have passed.
	time.Sleep(400 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { _, err := proto.Call(ctx, c, mEcho, echoMsg{N: 2}); done <- err }()
	if f, err := r.fr.ReadFrame(); err != nil || f.Type != wire.FrameRequest {
		t.Fatalf("got %v %v, want the second REQUEST", f, err)
	}
	// The server stays silent: the client probes, then gives up on it.
	_ = r.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if f, err := r.fr.ReadFrame(); err != nil || f.Type != wire.FramePing {
		t.Fatalf("got %v %v, want the client's PING", f, err)
	}
	if e := wantCode(t, <-done, wire.Unavailable); !strings.Contains(e.Message, "not responding") {
		t.Fatalf("message %q", e.Message)
	}
}

// A failed dial for one more connection (here the server is at its
// connection limit) does not take the endpoint out of service while the
// connection it has serves.
func TestExtraDialFailureKeepsEndpointUp(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{MaxConns: 1}, newFixture().mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}, ConnsPerAddr: 2})
	ctx := context.Background()
	if _, err := proto.Call(ctx, c, mEcho, echoMsg{N: 1}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the second connection's dial is refused meanwhile
	for i := range 50 {
		if _, err := proto.Call(ctx, c, mEcho, echoMsg{N: i}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if !c.DownUntil(srv.Addr).IsZero() {
		t.Fatal("endpoint marked down while its connection serves")
	}
}

// Close also ends connections that no longer take requests but still carry
// a stream: here the app tier's address vanished from DNS, so its
// connections are retired and would close only once idle.
func TestClientCloseEndsRetiredConnections(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{}, newFixture().mux())
	_, port, _ := net.SplitHostPort(srv.Addr)
	var ips atomic.Value
	ips.Store([]string{"127.0.0.1"})
	c, err := proto.NewClient(proto.ClientConfig{Addrs: []string{net.JoinHostPort("apptier", port)}, Secret: testSecret,
		Logger: quietLogger(t), ResolveInterval: 20 * time.Millisecond,
		LookupHost: func(context.Context, string) ([]string, error) { return ips.Load().([]string), nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub, err := proto.Subscribe(ctx, c, mStream, echoMsg{})
	if err != nil {
		t.Fatal(err)
	}
	ips.Store([]string{"127.0.0.2"}) // the endpoint is retired at the next lookup
	time.Sleep(200 * time.Millisecond)
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waits for a retired connection's stream to end")
	}
	for {
		if err := sub.Next(ctx, nil); err != nil {
			wantCode(t, err, wire.Unavailable)
			break
		}
	}
}

// After its FATAL the client sends nothing more (§6.2): not the CANCELs of
// callers giving up, nor requests, which find the writer sealed and are
// retried elsewhere as never sent.
func TestClientSendsNothingAfterItsFatal(t *testing.T) {
	for round := range 30 {
		fs := startFake(t, wire.Hello{})
		c := newClient(t, proto.ClientConfig{Addrs: []string{fs.addr()}, ConnsPerAddr: 1})
		first := callEcho(c, context.Background(), 1)
		r := fs.next(t)
		r.readRequest()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 1000; i++ {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(100+g*50)*time.Microsecond)
					_ = callErr(ctx, c, mEcho, echoMsg{N: 2})
					cancel()
				}
			}()
		}
		time.Sleep(5 * time.Millisecond)
		// An answer to an id never sent: the client answers FATAL and closes.
		r.write(wire.Frame{Type: wire.FrameResponse, ID: 1 << 30, Payload: encode(echoMsg{})})
		sawFatal := false
		_ = r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			f, err := r.fr.ReadFrame()
			if err != nil {
				break
			}
			if sawFatal {
				close(stop)
				t.Fatalf("round %d: client sent %s after its FATAL", round, f)
			}
			sawFatal = f.Type == wire.FrameFatal
		}
		close(stop)
		wg.Wait()
		<-first
		if !sawFatal {
			t.Fatalf("round %d: no FATAL from the client", round)
		}
	}
}

// A caller whose context ends while its request waits to be sent again
// (each server it reaches drains before starting it) gets CANCELED, not
// UNAVAILABLE.
func TestCancelDuringRetryIsCanceled(t *testing.T) {
	fs := startFake(t, wire.Hello{})
	c := newClient(t, proto.ClientConfig{Addrs: []string{fs.addr()}, ConnsPerAddr: 1})
	ctx, cancel := context.WithCancel(context.Background())
	done := callAsync(c, ctx, mEcho, echoMsg{N: 1})
	fs.answerEach(t, func(r *rawConn, _ wire.Frame) { // every request is handed back by DRAIN
		_ = r.fr.WriteFrame(wire.Frame{Type: wire.FrameDrain, Payload: wire.AppendDrain(nil, 0)})
		_ = r.fr.WriteFrame(wire.Frame{Type: wire.FrameFatal, Payload: wire.AppendFatal(nil, wire.ShuttingDown, "server shutting down")})
	})
	time.Sleep(60 * time.Millisecond) // a few retries, then waits between them
	cancel()
	select {
	case err := <-done:
		wantCode(t, err, wire.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("the call did not end after its context was canceled")
	}
}

// When the first lookup fails (the app tier's name does not resolve yet),
// a call asks for the early lookup (§11), so calls succeed within about
// half a second of the name resolving, not at the next 5 s tick.
func TestEmptyEndpointSetIsResolvedEarly(t *testing.T) {
	fs := startFake(t, wire.Hello{})
	_, port, _ := net.SplitHostPort(fs.addr())
	var lookups atomic.Int32
	c := newClient(t, proto.ClientConfig{Addrs: []string{net.JoinHostPort("apptier", port)},
		LookupHost: func(context.Context, string) ([]string, error) {
			if lookups.Add(1) == 1 {
				return nil, errors.New("no such host")
			}
			return []string{"127.0.0.1"}, nil
		}})
	var err error
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err = c.Hello(ctx)
		cancel()
		if err == nil {
			return
		}
	}
	t.Fatalf("2 s after the name resolved, calls still fail (%v); lookups: %d", err, lookups.Load())
}

// A connection that the server closes right after READY, before it joined
// its endpoint's set, is not kept there: it would hold a place for good
// and every call would fail "busy".
func TestConnClosedBeforeJoiningItsSetIsNotKept(t *testing.T) {
	fs := startFake(t, wire.Hello{})
	first := make(chan struct{})
	var once sync.Once
	defer proto.SetHookDialed(func() {
		once.Do(func() { <-first }) // the first dial joins only once its connection is closed
	})()
	c := newClient(t, proto.ClientConfig{Addrs: []string{fs.addr()}, ConnsPerAddr: 1})
	done := callEcho(c, context.Background(), 1)
	r := fs.next(t)
	r.nc.Close()
	time.Sleep(50 * time.Millisecond) // the client's reader finds EOF and closes its side
	close(first)
	fs.answerEach(t, func(r *rawConn, f wire.Frame) { // echoes
		_, body, _ := wire.ParseRequest(f.Payload)
		_ = r.fr.WriteFrame(wire.Frame{Type: wire.FrameResponse, ID: f.ID, Payload: body})
	})
	<-done // the call on the closed connection may fail; later ones must not
	var err error
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if err = callErr(context.Background(), c, mEcho, echoMsg{N: 2}); err == nil {
			return
		}
	}
	t.Fatalf("calls still fail 3 s after the server came back: %v", err)
}

// A frame that the reader had read when Client.Close emptied the pending
// set is dropped quietly, not logged as the server's protocol error.
func TestFrameReadDuringCloseIsNotAProtocolError(t *testing.T) {
	fs := startFake(t, wire.Hello{})
	logs := &logCapture{}
	var c *proto.Client
	var once sync.Once
	closed := make(chan struct{})
	c = newClient(t, proto.ClientConfig{Addrs: []string{fs.addr()}, Logger: logs.logger(),
		Trace: func(conn string, sent bool, f wire.Frame) {
			if !sent && f.Type == wire.FrameEvent {
				// Client.Close lands between reading this frame and routing it.
				once.Do(func() { go func() { c.Close(); close(closed) }() })
				time.Sleep(50 * time.Millisecond)
			}
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, r, f := openFakeStream(t, ctx, c, fs)
	r.write(wire.Frame{Type: wire.FrameEvent, ID: f.ID, Payload: encode(wire.Event{Kind: wire.EventChatMessage, Message: &wire.Message{ID: 1}})})
	<-closed
	if n := logs.count("app tier protocol error"); n != 0 {
		t.Fatalf("Client.Close logged as the server's protocol error %d times", n)
	}
}
