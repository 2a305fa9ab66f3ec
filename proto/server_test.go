package proto_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
)

func TestGreetingComesFirst(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{MaxPayload: 4096, MaxInFlight: 9}, newFixture().mux())
	r := dialRaw(t, srv.Addr)
	h := r.handshake()
	if h.Server != "bankwire-test/1.0" || h.MaxPayload != 4096 || h.MaxInFlight != 9 || h.IdleTimeoutMs <= 0 || h.HandshakeTimeoutMs <= 0 {
		t.Fatalf("HELLO = %+v", h)
	}
	r.request(1, opEcho, 1000, "t", echoMsg{N: 1})
	if f := r.read(); f.Type != wire.FrameResponse || f.ID != 1 {
		t.Fatalf("got %s", f)
	}
}

func TestBytesBeforeHandshake(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{}, newFixture().mux())
	t.Run("HTTP request", func(t *testing.T) {
		r := dialRaw(t, srv.Addr)
		r.writeBytes([]byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"))
		r.expectFatal(wire.UnsupportedVersion)
	})
	t.Run("request before AUTH", func(t *testing.T) {
		r := dialRaw(t, srv.Addr)
		r.request(1, wire.OpInfo, 0, "", wire.InfoRequest{})
		e := r.expectFatal(wire.ProtocolError)
		if !strings.Contains(e.Message, "expected AUTH") {
			t.Fatalf("reason %q", e.Message)
		}
	})
	t.Run("oversized AUTH", func(t *testing.T) {
		r := dialRaw(t, srv.Addr)
		r.writeBytes(header(1, wire.FrameAuth, 0, 0, 1<<20))
		r.expectFatal(wire.ProtocolError)
	})
	t.Run("undecodable AUTH", func(t *testing.T) {
		r := dialRaw(t, srv.Addr)
		r.write(wire.Frame{Type: wire.FrameAuth, Payload: []byte("{secret")})
		r.expectFatal(wire.ProtocolError)
	})
}

func TestHandshakeTimeout(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{HandshakeTimeout: 200 * time.Millisecond}, newFixture().mux())
	r := dialRaw(t, srv.Addr)
	start := time.Now()
	e := r.expectFatal(wire.HandshakeTimeout)
	if !strings.Contains(e.Message, "AUTH") {
		t.Fatalf("reason %q", e.Message)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestWrongSecret(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{}, newFixture().mux())
	for _, secret := range []string{"", "test-secreT", testSecret + "x", strings.Repeat("a", 3000)} {
		r := dialRaw(t, srv.Addr)
		r.read() // HELLO
		r.write(authFrame(t, wire.Version, secret))
		r.expectFatal(wire.BadSecret)
	}
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}, Secret: "wrong"})
	_, err := proto.Call(context.Background(), c, wire.Info, wire.InfoRequest{})
	e := wantCode(t, err, wire.Unavailable)
	if !strings.Contains(e.Message, "BAD_SECRET") {
		t.Fatalf("client error %q does not say why", e.Message)
	}
}

func TestUnsupportedVersion(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{}, newFixture().mux())
	t.Run("in AUTH", func(t *testing.T) {
		r := dialRaw(t, srv.Addr)
		r.read()
		r.write(authFrame(t, 2, testSecret))
		r.expectFatal(wire.UnsupportedVersion)
	})
	t.Run("in a frame header", func(t *testing.T) {
		r := dialRaw(t, srv.Addr)
		r.handshake()
		r.writeBytes(header(7, wire.FramePing, 0, 1, 0))
		r.expectFatal(wire.UnsupportedVersion)
	})
}

func TestMalformedFramesAfterHandshake(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{MaxPayload: 1024, ReadTimeout: 300 * time.Millisecond}, newFixture().mux())
	tests := []struct {
		name string
		in   []byte
		want wire.Code
	}{
		{"length over limit", header(1, wire.FrameRequest, 0, 1, 1025), wire.ProtocolError},
		{"unknown frame type", header(1, 200, 0, 1, 0), wire.ProtocolError},
		{"server-only frame type", header(1, wire.FrameResponse, 0, 1, 0), wire.ProtocolError},
		{"second AUTH", wire.AppendFrame(nil, authFrame(t, 1, testSecret)), wire.ProtocolError},
		{"truncated request prefix", wire.AppendFrame(nil, wire.Frame{Type: wire.FrameRequest, ID: 1, Payload: []byte{0, 1, 0}}), wire.ProtocolError},
		{"oversized PING", wire.AppendFrame(nil, wire.Frame{Type: wire.FramePing, Payload: make([]byte, 65)}), wire.ProtocolError},
		{"truncated header then silence", header(1, wire.FrameRequest, 0, 1, 0)[:5], wire.ProtocolError},
		{"truncated payload then silence", header(1, wire.FrameRequest, 0, 1, 100), wire.ProtocolError},
		{"request id zero", wire.AppendFrame(nil, wire.Frame{Type: wire.FrameRequest, ID: 0, Payload: wire.AppendRequest(nil, wire.RequestHeader{Op: opEcho}, encode(echoMsg{}))}), wire.ProtocolError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dialRaw(t, srv.Addr)
			r.handshake()
			r.writeBytes(tt.in)
			r.expectFatal(tt.want)
		})
	}
	// The server is still healthy.
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}})
	if _, err := proto.Call(context.Background(), c, mEcho, echoMsg{N: 1}); err != nil {
		t.Fatal(err)
	}
}

func TestPeerClosesMidFrame(t *testing.T) {
	logs := &logCapture{}
	srv := startServer(t, proto.ServerConfig{Logger: logs.logger()}, newFixture().mux())
	for _, n := range []int{3, wire.HeaderLen, wire.HeaderLen + 10} {
		r := dialRaw(t, srv.Addr)
		r.handshake()
		frame := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameRequest, ID: 1, Payload: wire.AppendRequest(nil, wire.RequestHeader{Op: opEcho}, bytes.Repeat([]byte(" "), 50))})
		r.writeBytes(frame[:n])
		r.nc.(*net.TCPConn).CloseWrite()
		r.expectClosed()
	}
	waitFor(t, func() bool { return logs.count("connection closed", "reason", "peer closed mid-frame") == 3 })
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}})
	if _, err := proto.Call(context.Background(), c, mEcho, echoMsg{}); err != nil {
		t.Fatal(err)
	}
}

func TestUndecodableRequestBody(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{}, newFixture().mux())
	r := dialRaw(t, srv.Addr)
	r.handshake()
	// echoMsg is an int and a string (helpers_test.go).
	bodies := []string{
		"",                         // nothing: the int is missing
		"\x80",                     // varint cut short
		"\x02",                     // n=1, then no string length
		"\x02\x05ab",               // a 5-byte string with 2 bytes left
		"\x02\xff\xff\xff\xff\x0f", // a 4 GiB string
		"\x02\x01\xff",             // a string that is not UTF-8
		"\x02\x00\x00",             // a byte after the last field
		"\x80\x00\x00",             // n=0 padded to two bytes: not the shortest form
		"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f\x00", // a varint past 64 bits
	}
	for i, body := range bodies {
		id := uint32(i + 1)
		r.write(wire.Frame{Type: wire.FrameRequest, ID: id, Payload: wire.AppendRequest(nil, wire.RequestHeader{Op: opEcho}, []byte(body))})
		f := r.read()
		if f.Type != wire.FrameError || f.ID != id {
			t.Fatalf("body %q: got %s", body, f)
		}
		e, err := wire.ParseError(f.Payload)
		if err != nil || e.Code != wire.InvalidArgument || e.Message != "malformed request body" {
			t.Fatalf("body %q: error %+v %v", body, e, err)
		}
	}
	// Per-request errors leave the connection usable.
	r.request(100, opEcho, 0, "", echoMsg{N: 5})
	if f := r.read(); f.Type != wire.FrameResponse || !bytes.Equal(f.Payload, encode(echoMsg{N: 5})) {
		t.Fatalf("got %s", f)
	}
}

func TestDuplicateRequestIDInFlight(t *testing.T) {
	fx := newFixture()
	srv := startServer(t, proto.ServerConfig{}, fx.mux())
	r := dialRaw(t, srv.Addr)
	r.handshake()
	r.request(5, opWait, 0, "", nil)
	fx.waitStarted(t)
	r.request(5, opWait, 0, "", nil)
	e := r.expectFatal(wire.ProtocolError)
	if !strings.Contains(e.Message, "duplicate request id 5") {
		t.Fatalf("reason %q", e.Message)
	}
	// The first request's handler saw its context end with the connection.
	if w := <-fx.waits; !errors.Is(w.err, context.Canceled) {
		t.Fatalf("handler ctx err %v", w.err)
	}

	r = dialRaw(t, srv.Addr)
	r.handshake()
	r.request(9, opEcho, 0, "", echoMsg{})
	r.read()
	r.request(8, opEcho, 0, "", echoMsg{})
	e = r.expectFatal(wire.ProtocolError)
	if !strings.Contains(e.Message, "not greater") {
		t.Fatalf("reason %q", e.Message)
	}
}

func TestInFlightLimit(t *testing.T) {
	fx := newFixture()
	srv := startServer(t, proto.ServerConfig{MaxInFlight: 2}, fx.mux())
	r := dialRaw(t, srv.Addr)
	r.handshake()
	r.request(1, opWait, 0, "", nil)
	r.request(2, opWait, 0, "", nil)
	fx.waitStarted(t)
	fx.waitStarted(t)
	r.request(3, opEcho, 0, "", echoMsg{})
	f := r.read()
	e, _ := wire.ParseError(f.Payload)
	if f.Type != wire.FrameError || f.ID != 3 || e.Code != wire.ResourceExhausted {
		t.Fatalf("got %s", f)
	}
	// CANCEL frees a slot: the handler returns, the server answers CANCELED.
	r.write(wire.Frame{Type: wire.FrameCancel, ID: 1})
	f = r.read()
	e, _ = wire.ParseError(f.Payload)
	if f.Type != wire.FrameError || f.ID != 1 || e.Code != wire.Canceled {
		t.Fatalf("got %s", f)
	}
	r.request(4, opEcho, 0, "", echoMsg{N: 4})
	if f := r.read(); f.Type != wire.FrameResponse || f.ID != 4 {
		t.Fatalf("got %s", f)
	}
}

// An unknown operation is refused UNIMPLEMENTED, and Observe sees it as
// operation 0: each number a client makes up must not become a metric
// series of its own.
func TestUnknownOperation(t *testing.T) {
	var mu sync.Mutex
	var seen []wire.Op
	observe := func(op wire.Op, code wire.Code, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, op)
	}
	srv := startServer(t, proto.ServerConfig{Observe: observe}, newFixture().mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}})
	for _, op := range []wire.Op{4242, 4243} {
		unknown := wire.Method[wire.Empty, wire.Empty]{Op: op, Name: "unknown"}
		wantCode(t, callErr(context.Background(), c, unknown, wire.Empty{}), wire.Unimplemented)
	}
	if _, err := proto.Call(context.Background(), c, mEcho, echoMsg{}); err != nil {
		t.Fatal(err)
	}
	// A handler's answer is observed after it is written.
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n >= 3 {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []wire.Op{0, 0, opEcho}; !slices.Equal(seen, want) {
		t.Fatalf("Observe saw operations %v, want %v", seen, want)
	}
}

func TestDeadlineAndTraceReachHandler(t *testing.T) {
	fx := newFixture()
	logs := &logCapture{}
	srv := startServer(t, proto.ServerConfig{Logger: logs.logger()}, fx.mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}})
	ctx, cancel := context.WithTimeout(proto.WithTraceID(context.Background(), "trace-xyz"), 400*time.Millisecond)
	defer cancel()
	start := time.Now()
	wantCode(t, callErr(ctx, c, mWait, wire.Empty{}), wire.DeadlineExceeded)
	if d := time.Since(start); d < 350*time.Millisecond || d > 3*time.Second {
		t.Fatalf("call returned after %v", d)
	}
	w := <-fx.waits
	// Ended by the server's timer, or by the CANCEL the client sends when
	// its own deadline passes (§4.2), whichever comes first.
	ended := errors.Is(w.err, context.DeadlineExceeded) || errors.Is(w.err, context.Canceled)
	if !w.hasDeadline || w.trace != "trace-xyz" || !ended {
		t.Fatalf("handler saw %+v", w)
	}
	waitFor(t, func() bool { return logs.count("request", "trace", "trace-xyz") == 1 })
}

// TestServerDeadlinesOutOfOrder: requests whose deadlines end in another
// order than they arrived each end at their own deadline (the connection
// shares one timer among them), and a handler that returns the error of a
// context derived from the request's still yields DEADLINE_EXCEEDED.
func TestServerDeadlinesOutOfOrder(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{}, newFixture().mux())
	r := dialRaw(t, srv.Addr)
	r.handshake()
	start := time.Now()
	r.request(1, opChild, 300, "", nil)
	r.request(2, opChild, 100, "", nil)
	r.request(3, opChild, 200, "", nil)
	for _, want := range []struct {
		id    uint32
		after time.Duration
	}{{2, 100 * time.Millisecond}, {3, 200 * time.Millisecond}, {1, 300 * time.Millisecond}} {
		f := r.read()
		if f.Type != wire.FrameError || f.ID != want.id {
			t.Fatalf("got %s, want ERROR for request %d", f, want.id)
		}
		e, err := wire.ParseError(f.Payload)
		if err != nil || e.Code != wire.DeadlineExceeded {
			t.Fatalf("request %d: got %v, %v; want DEADLINE_EXCEEDED", want.id, e, err)
		}
		if d := time.Since(start); d < want.after {
			t.Fatalf("request %d ended after %v, before its %v deadline", want.id, d, want.after)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("deadlines of 100-300 ms took %v", d)
	}
	// The connection carries on, with no deadline left armed to trip later
	// requests.
	r.request(4, opEcho, 50, "", echoMsg{N: 4})
	if f := r.read(); f.Type != wire.FrameResponse || f.ID != 4 {
		t.Fatalf("got %s, want RESPONSE 4", f)
	}
}

func TestCancelReachesHandler(t *testing.T) {
	fx := newFixture()
	srv := startServer(t, proto.ServerConfig{}, fx.mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- callErr(ctx, c, mWait, wire.Empty{}) }()
	fx.waitStarted(t)
	cancel()
	wantCode(t, <-done, wire.Canceled)
	w := <-fx.waits
	if !errors.Is(w.err, context.Canceled) || w.cause == nil || !strings.Contains(w.cause.Error(), "client") {
		t.Fatalf("handler saw %+v", w)
	}
	// The connection is still fine, and the late terminal frame for the
	// canceled id was absorbed without a protocol error.
	for i := 0; i < 3; i++ {
		if _, err := proto.Call(context.Background(), c, mEcho, echoMsg{N: i}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPanicBecomesInternalForThatRequestOnly(t *testing.T) {
	fx := newFixture()
	srv := startServer(t, proto.ServerConfig{}, fx.mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}, ConnsPerAddr: 1})
	var wg sync.WaitGroup
	var okCalls atomic.Int32
	for i := 0; i < 20; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			e := wantCode(t, callErr(context.Background(), c, mPanic, wire.Empty{}), wire.Internal)
			if e.Message != "internal error" {
				t.Errorf("panic leaked %q", e.Message)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := proto.Call(context.Background(), c, mEcho, echoMsg{N: 1}); err == nil {
				okCalls.Add(1)
			}
		}()
	}
	wg.Wait()
	if okCalls.Load() != 20 {
		t.Fatalf("%d of 20 concurrent calls succeeded beside the panics", okCalls.Load())
	}
}

func TestInternalErrorTextNeverLeaves(t *testing.T) {
	logs := &logCapture{}
	srv := startServer(t, proto.ServerConfig{Logger: logs.logger()}, newFixture().mux())
	r := dialRaw(t, srv.Addr)
	r.handshake()
	r.request(1, opLeak, 0, "leak-trace", nil)
	f := r.read()
	if bytes.Contains(f.Payload, []byte("relation")) || bytes.Contains(f.Payload, []byte("internal detail")) {
		t.Fatalf("internal text on the wire: %q", f.Payload)
	}
	e, _ := wire.ParseError(f.Payload)
	if e.Code != wire.Internal || e.Message != "internal error" {
		t.Fatalf("got %+v", e)
	}
	// ...but it is in the server's log, with the trace id.
	waitFor(t, func() bool { return logs.count("request failed", "trace", "leak-trace") == 1 })
}

func TestTooManyConnections(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{MaxConns: 2}, newFixture().mux())
	a, b := dialRaw(t, srv.Addr), dialRaw(t, srv.Addr)
	a.handshake()
	b.handshake()
	for i := 0; i < 5; i++ {
		start := time.Now()
		r := dialRaw(t, srv.Addr)
		e := r.expectFatal(wire.TooManyConnections)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("refusal took %v", d)
		}
		if e.Message == "" {
			t.Fatal("refusal without a reason")
		}
	}
	// The admitted connections still work.
	a.request(1, opEcho, 0, "", echoMsg{N: 1})
	if f := a.read(); f.Type != wire.FrameResponse {
		t.Fatalf("got %s", f)
	}
	// When one leaves, a newcomer is admitted.
	b.nc.Close()
	waitFor(t, func() bool {
		nc, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			return false
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(2 * time.Second))
		f, err := wire.NewFramer(nc, nc).ReadFrame()
		return err == nil && f.Type == wire.FrameHello
	})
}

func TestIdleTimeout(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{IdleTimeout: 300 * time.Millisecond}, newFixture().mux())
	r := dialRaw(t, srv.Addr)
	r.handshake()
	r.expectFatal(wire.IdleTimeout)
}

// A client keeps an idle connection alive with pings, so the server's idle
// timeout only cuts silent peers.
func TestClientPingsKeepIdleConnectionAlive(t *testing.T) {
	logs := &logCapture{}
	srv := startServer(t, proto.ServerConfig{IdleTimeout: 300 * time.Millisecond, Logger: logs.logger()}, newFixture().mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}, ConnsPerAddr: 1})
	for i := 0; i < 2; i++ {
		if _, err := proto.Call(context.Background(), c, mEcho, echoMsg{N: i}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(900 * time.Millisecond)
	}
	if n := logs.count("connection opened"); n != 1 {
		t.Fatalf("%d connections opened, want 1 kept alive by pings", n)
	}
	if n := logs.count("connection closed"); n != 0 {
		t.Fatalf("%d connections closed: %v", n, logs.lines)
	}
}

// A peer that stops reading must not pin the server: the write times out
// and the connection is closed.
func TestPeerStopsReading(t *testing.T) {
	logs := &logCapture{}
	srv := startServer(t, proto.ServerConfig{WriteTimeout: 300 * time.Millisecond, MaxInFlight: 1000, Logger: logs.logger()}, newFixture().mux())
	r := dialRaw(t, srv.Addr)
	r.handshake()
	// Ask for far more than socket buffers hold, and never read.
	for i := 1; i <= 64; i++ {
		r.request(uint32(i), opBig, 0, "", echoMsg{N: 512 << 10})
	}
	waitFor(t, func() bool { return logs.count("write failed, closing connection") == 1 })
	waitFor(t, func() bool { return logs.count("connection closed") == 1 })
	// The server still serves others.
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}})
	if _, err := proto.Call(context.Background(), c, mEcho, echoMsg{}); err != nil {
		t.Fatal(err)
	}
}

func TestOneLogLinePerConnection(t *testing.T) {
	logs := &logCapture{}
	srv := startServer(t, proto.ServerConfig{Logger: logs.logger()}, newFixture().mux())
	r := dialRaw(t, srv.Addr)
	r.handshake()
	r.nc.Close()
	waitFor(t, func() bool { return logs.count("connection closed", "reason", "peer closed") == 1 })
	if n := logs.count("connection opened", "remote", r.nc.LocalAddr().String(), "client", "raw-test", "level", "INFO"); n != 1 {
		t.Fatalf("%d 'connection opened' lines for %s", n, r.nc.LocalAddr())
	}
	// A connection that never completes the handshake is logged too.
	bad := dialRaw(t, srv.Addr)
	bad.read() // HELLO
	bad.write(authFrame(t, wire.Version, "wrong"))
	bad.expectFatal(wire.BadSecret)
	waitFor(t, func() bool { return logs.count("connection closed", "remote", bad.nc.LocalAddr().String()) == 1 })
	if n := logs.count("connection opened", "remote", bad.nc.LocalAddr().String(), "level", "INFO"); n != 1 {
		t.Fatalf("%d 'connection opened' lines for the rejected client", n)
	}
}

// Clients that ServerConfig.Quiet picks (a healthcheck) are logged at DEBUG,
// but only once authenticated: a stranger claiming the name is not hidden.
func TestQuietClientsAreLoggedAtDebug(t *testing.T) {
	logs := &logCapture{}
	quiet := func(name string) bool { return name == "raw-test" }
	srv := startServer(t, proto.ServerConfig{Logger: logs.logger(), Quiet: quiet}, newFixture().mux())
	r := dialRaw(t, srv.Addr)
	r.handshake()
	r.nc.Close()
	addr := r.nc.LocalAddr().String()
	waitFor(t, func() bool { return logs.count("connection closed", "remote", addr) == 1 })
	for _, msg := range []string{"connection opened", "connection closed"} {
		if n := logs.count(msg, "remote", addr, "level", "DEBUG"); n != 1 {
			t.Fatalf("%d %q DEBUG lines for the quiet client: %v", n, msg, logs.lines)
		}
	}
	bad := dialRaw(t, srv.Addr)
	bad.read()                                     // HELLO
	bad.write(authFrame(t, wire.Version, "wrong")) // claims "raw-test" too
	bad.expectFatal(wire.BadSecret)
	addr = bad.nc.LocalAddr().String()
	waitFor(t, func() bool { return logs.count("connection closed", "remote", addr) == 1 })
	for _, msg := range []string{"connection opened", "connection closed"} {
		if n := logs.count(msg, "remote", addr, "level", "INFO"); n != 1 {
			t.Fatalf("%d %q INFO lines for the unauthenticated client: %v", n, msg, logs.lines)
		}
	}
}

func TestStreamPush(t *testing.T) {
	fx := newFixture()
	srv := startServer(t, proto.ServerConfig{}, fx.mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}})
	ctx := context.Background()

	t.Run("events then close", func(t *testing.T) {
		sub, err := proto.Subscribe(ctx, c, mStream, echoMsg{N: 3})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			var ev wire.Event
			if err := sub.Next(ctx, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Kind != wire.EventChatMessage || ev.Message == nil || ev.Message.ID != int64(i) {
				t.Fatalf("event %d = %+v", i, ev)
			}
		}
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		wantCode(t, sub.Next(short, &wire.Event{}), wire.DeadlineExceeded)
		sub.Close()
		wantCode(t, sub.Next(ctx, &wire.Event{}), wire.Canceled)
		// The connection stays healthy after the terminal frame of the
		// canceled stream arrives.
		if _, err := proto.Call(ctx, c, mEcho, echoMsg{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("server ends stream", func(t *testing.T) {
		sub, err := proto.Subscribe(ctx, c, mStream, echoMsg{N: 2, Text: "end"})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if err := sub.Next(ctx, &wire.Event{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := sub.Next(ctx, &wire.Event{}); err == nil || err.Error() != "EOF" {
			t.Fatalf("after end: %v, want io.EOF", err)
		}
	})
	t.Run("refused before accept", func(t *testing.T) {
		_, err := proto.Subscribe(ctx, c, mStream, echoMsg{Text: "refuse"})
		wantCode(t, err, wire.Unauthenticated)
	})
	t.Run("shutdown ends stream with UNAVAILABLE", func(t *testing.T) {
		srv2 := startServer(t, proto.ServerConfig{}, fx.mux())
		c2 := newClient(t, proto.ClientConfig{Addrs: []string{srv2.Addr}})
		sub, err := proto.Subscribe(ctx, c2, mStream, echoMsg{N: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := sub.Next(ctx, &wire.Event{}); err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := srv2.Shutdown(sctx); err != nil {
			t.Fatal(err)
		}
		wantCode(t, sub.Next(ctx, &wire.Event{}), wire.Unavailable)
	})
}

// logCapture records log lines so tests can check what the server logged.
type logCapture struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (l *logCapture) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *logCapture) Write(p []byte) (int, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return 0, err
	}
	l.mu.Lock()
	l.lines = append(l.lines, m)
	l.mu.Unlock()
	return len(p), nil
}

// count returns how many lines have message msg and, for each key/value
// pair in kv, a matching attribute.
func (l *logCapture) count(msg string, kv ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
next:
	for _, m := range l.lines {
		if m["msg"] != msg {
			continue
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if s, _ := m[kv[i]].(string); s != kv[i+1] {
				continue next
			}
		}
		n++
	}
	return n
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Close ends the goroutines that tell refused connections why, which
// otherwise linger for their peer's close for up to a second.
func TestCloseEndsRefusals(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := proto.NewServer(proto.ServerConfig{Secret: testSecret, MaxConns: 1, Logger: quietLogger(t)}, newFixture().mux())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	a := dialRaw(t, ln.Addr().String())
	a.handshake()
	b := dialRaw(t, ln.Addr().String())
	if f := b.read(); f.Type != wire.FrameFatal { // b stays open: the server lingers for its close
		t.Fatalf("got %s, want FATAL TOO_MANY_CONNECTIONS", f)
	}
	srv.Close()
	<-served
	// Close has waited for it; give it a moment to return from its last
	// deferred call, far less than the second it would linger.
	buf := make([]byte, 1<<20)
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "(*Server).refuse") {
			break
		}
		if time.Since(start) > 300*time.Millisecond {
			t.Fatalf("a refusal goroutine outlived Close:\n%s", stacks)
		}
	}
}

// A client's FATAL reason goes into the server's log cut to a bounded
// length: a 64 KiB reason must not become a 64 KiB log line.
func TestClientFatalReasonIsCutInTheLog(t *testing.T) {
	logs := &logCapture{}
	srv := startServer(t, proto.ServerConfig{Logger: logs.logger()}, newFixture().mux())
	r := dialRaw(t, srv.Addr)
	r.handshake()
	r.write(wire.Frame{Type: wire.FrameFatal, Payload: wire.AppendFatal(nil, wire.ProtocolError, strings.Repeat("x", 64<<10))})
	waitFor(t, func() bool { return logs.count("connection closed") == 1 })
	logs.mu.Lock()
	defer logs.mu.Unlock()
	for _, m := range logs.lines {
		if reason, _ := m["reason"].(string); m["msg"] == "connection closed" && (len(reason) > 512 || !strings.HasPrefix(reason, "client FATAL PROTOCOL_ERROR: xxx")) {
			t.Fatalf("logged reason of %d bytes: %.80q…", len(reason), reason)
		}
	}
}
