package proto_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
)

// opStreamNil accepts a stream and returns nil when its context ends, as
// the app tier's subscribe does: the terminal code must come from why the
// context ended, not from the handler's nil.
const opStreamNil wire.Op = 1010

var mStreamNil = wire.Method[wire.Empty, wire.Empty]{Op: opStreamNil, Name: "stream.nil"}

func specMux(fx *fixture) *proto.Mux {
	m := fx.mux()
	proto.HandleStream(m, mStreamNil, func(ctx context.Context, req *proto.Request, _ wire.Empty, s *proto.Stream) error {
		if err := s.Accept(nil); err != nil {
			return err
		}
		<-ctx.Done()
		return nil
	})
	return m
}

// readUntilError reads frames until the terminal ERROR of id, skipping
// EVENTs and the stream-opening RESPONSE.
func (r *rawConn) readUntilError(id uint32) *wire.Error {
	r.tb.Helper()
	for {
		f := r.read()
		if f.ID != id || f.Type == wire.FrameEvent || f.Type == wire.FrameResponse || f.Type == wire.FrameDrain {
			if f.Type == wire.FrameFatal {
				r.tb.Fatalf("FATAL before the terminal ERROR of %d", id)
			}
			continue
		}
		if f.Type != wire.FrameError {
			r.tb.Fatalf("got %s, want ERROR for %d", f, id)
		}
		e, err := wire.ParseError(f.Payload)
		if err != nil {
			r.tb.Fatal(err)
		}
		return e
	}
}

func TestStreamTerminalCodes(t *testing.T) {
	fx := newFixture()
	srv := startServer(t, proto.ServerConfig{}, specMux(fx))

	t.Run("cancel", func(t *testing.T) {
		r := dialRaw(t, srv.Addr)
		r.handshake()
		r.request(1, opStreamNil, 0, "", nil)
		if f := r.read(); f.Type != wire.FrameResponse || f.Flags != wire.FlagStream {
			t.Fatalf("got %s, want RESPONSE STREAM", f)
		}
		r.write(wire.Frame{Type: wire.FrameCancel, ID: 1})
		if e := r.readUntilError(1); e.Code != wire.Canceled {
			t.Fatalf("after CANCEL: %v, want CANCELED", e)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		r := dialRaw(t, srv.Addr)
		r.handshake()
		r.request(1, opStreamNil, 200, "", nil)
		if e := r.readUntilError(1); e.Code != wire.DeadlineExceeded {
			t.Fatalf("after the deadline: %v, want DEADLINE_EXCEEDED", e)
		}
	})
	t.Run("drain", func(t *testing.T) {
		srv2 := startServer(t, proto.ServerConfig{}, specMux(fx))
		r := dialRaw(t, srv2.Addr)
		r.handshake()
		r.request(1, opStreamNil, 0, "", nil)
		if f := r.read(); f.Type != wire.FrameResponse {
			t.Fatalf("got %s", f)
		}
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done <- srv2.Shutdown(ctx)
		}()
		if e := r.readUntilError(1); e.Code != wire.Unavailable {
			t.Fatalf("after drain: %v, want UNAVAILABLE", e)
		}
		r.expectFatal(wire.ShuttingDown)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestAuthUnsupportedNumericVersion: any JSON number but 1 in AUTH's
// version is UNSUPPORTED_VERSION; a version that is not a number is a
// malformed AUTH.
func TestAuthUnsupportedNumericVersion(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{}, newFixture().mux())
	for auth, want := range map[string]wire.Code{
		`{"version":256,"secret":"test-secret"}`:   wire.UnsupportedVersion,
		`{"version":-1,"secret":"test-secret"}`:    wire.UnsupportedVersion,
		`{"version":2,"secret":"test-secret"}`:     wire.UnsupportedVersion,
		`{"version":1e400,"secret":"test-secret"}`: wire.UnsupportedVersion,
		`{"version":1.5,"secret":"test-secret"}`:   wire.UnsupportedVersion,
		`{"secret":"test-secret"}`:                 wire.UnsupportedVersion,
		`{"version":"1","secret":"test-secret"}`:   wire.ProtocolError,
		`{"version":null,"secret":"test-secret"}`:  wire.ProtocolError,
	} {
		r := dialRaw(t, srv.Addr)
		r.read() // HELLO
		r.write(wire.Frame{Type: wire.FrameAuth, Payload: []byte(auth)})
		if e := r.expectFatal(want); e == nil {
			t.Fatalf("%s: no FATAL", auth)
		}
	}
}

// TestFatalIsLastFrame: answers racing a connection-fatal error never follow
// the FATAL on the wire (PROTOCOL.md §6.2). Many requests are in flight and
// finishing when a duplicate id makes the connection fail; repeated, since
// the race is one of timing.
func TestFatalIsLastFrame(t *testing.T) {
	fx := newFixture()
	srv := startServer(t, proto.ServerConfig{}, fx.mux())
	for round := 0; round < 200; round++ {
		r := dialRaw(t, srv.Addr)
		r.handshake()
		const n = 40
		// Handlers blocked at a gate that opens while the duplicate id is
		// on its way: their answers and the FATAL race for the socket.
		open := fx.shutGate()
		for id := uint32(1); id <= n; id++ {
			r.request(id, opGate, 0, "", echoMsg{})
		}
		for i := range n {
			select {
			case <-fx.started:
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: %d of %d requests started within 10 s", round, i, n)
			}
		}
		go open()
		r.request(n, opEcho, 0, "", echoMsg{}) // duplicate or not-greater id: FATAL
		var last wire.FrameType
		frames := 0
		for {
			f, err := r.fr.ReadFrame()
			if err != nil {
				if errors.Is(err, io.EOF) || isReset(err) {
					break
				}
				t.Fatalf("round %d: %v", round, err)
			}
			if f.Type == wire.FramePing {
				continue
			}
			frames++
			if last == wire.FrameFatal {
				t.Fatalf("round %d: %s after FATAL", round, f)
			}
			last = f.Type
		}
		if last != wire.FrameFatal {
			t.Fatalf("round %d: last frame %s, want FATAL", round, last)
		}
		r.nc.Close()
		open()
	}
}

// delayProxy forwards TCP connections to target, holding every chunk of
// bytes for delay in each direction (a slow link: latency, not loss).
type delayProxy struct {
	ln     net.Listener
	target string
	delay  atomic.Int64
	wg     sync.WaitGroup
}

func newDelayProxy(t *testing.T, target string) *delayProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &delayProxy{ln: ln, target: target}
	var conns sync.Map
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			conns.Store(c, u)
			p.wg.Add(2)
			go func() { defer p.wg.Done(); p.pipe(u, c) }()
			go func() { defer p.wg.Done(); p.pipe(c, u) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, v any) bool { k.(net.Conn).Close(); v.(net.Conn).Close(); return true })
		p.wg.Wait()
	})
	return p
}

// pipe copies src to dst, each chunk leaving delay after it arrived, in
// order.
func (p *delayProxy) pipe(dst, src net.Conn) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		br := bufio.NewReader(src)
		for {
			buf := make([]byte, 32<<10)
			n, err := br.Read(buf)
			if n > 0 {
				q <- chunk{buf[:n], time.Now().Add(time.Duration(p.delay.Load()))}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	for range q {
	}
}

// TestDeadlineSurvivesDelayedLink: over a link that holds every frame for
// 250 ms each way, a request whose 300 ms budget is spent by the time it
// could be answered is refused with DEADLINE_EXCEEDED and its handler never
// starts (PROTOCOL.md §4.2), while a request with room to spare runs.
func TestDeadlineSurvivesDelayedLink(t *testing.T) {
	var ran sync.Map // trace ids whose handler started
	m := proto.NewMux()
	proto.Handle(m, mEcho, func(ctx context.Context, req *proto.Request, in echoMsg) (echoMsg, error) {
		ran.Store(req.TraceID, true)
		return in, nil
	})
	srv := startServer(t, proto.ServerConfig{}, m)
	px := newDelayProxy(t, srv.Addr)
	px.delay.Store(int64(250 * time.Millisecond))
	c := newClient(t, proto.ClientConfig{Addrs: []string{px.ln.Addr().String()}, ConnsPerAddr: 1})

	// A generous call: it runs, and its REQUEST makes the server measure
	// the link's round trip.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := proto.Call(proto.WithTraceID(ctx, "warm"), c, mEcho, echoMsg{N: 1}); err != nil {
		t.Fatal(err)
	}
	if _, ok := ran.Load("warm"); !ok {
		t.Fatal("generous call did not run")
	}
	// Calls that cannot be answered in time: once the server has its round
	// trip sample (bounded number of tries), one is refused unstarted.
	refused := ""
	for i := 0; i < 10 && refused == ""; i++ {
		trace := "tight-" + string(rune('a'+i))
		cctx, ccancel := context.WithTimeout(proto.WithTraceID(context.Background(), trace), 300*time.Millisecond)
		_, err := proto.Call(cctx, c, mEcho, echoMsg{N: 2})
		ccancel()
		if wire.ErrorCode(err) != wire.DeadlineExceeded {
			t.Fatalf("call with 300 ms over a 500 ms round trip: %v, want DEADLINE_EXCEEDED", err)
		}
		// Wait for the server's answer to have crossed back so the handler,
		// if it ran, has recorded it.
		time.Sleep(600 * time.Millisecond)
		if _, ok := ran.Load(trace); !ok {
			refused = trace
		}
	}
	if refused == "" {
		t.Fatal("every late request started its handler; the server never bounded the deadline by the round trip")
	}
	// The link stays usable for callers with time.
	if _, err := proto.Call(proto.WithTraceID(ctx, "after"), c, mEcho, echoMsg{N: 3}); err != nil {
		t.Fatal(err)
	}
}

// handlerGoroutines counts the goroutines running the server's handlers.
func handlerGoroutines() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "proto.(*serverConn).run(")
}

// TestBurstLeavesNoHandlerGoroutines: a burst of slow requests runs a
// goroutine per request; once every call is answered, none of them is left.
func TestBurstLeavesNoHandlerGoroutines(t *testing.T) {
	fx := newFixture()
	srv := startServer(t, proto.ServerConfig{}, fx.mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}, ConnsPerAddr: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const burst = 300
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range burst {
		wg.Go(func() {
			if callErr(ctx, c, mSlow, echoMsg{N: 200}) == nil {
				ok.Add(1)
			}
		})
	}
	// While the burst is served, its handlers run side by side.
	most := 0
	for range 20 {
		most = max(most, handlerGoroutines())
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait() // bounded by ctx
	if ok.Load() < burst/2 {
		t.Fatalf("only %d of %d burst calls succeeded", ok.Load(), burst)
	}
	if most < 2 {
		t.Fatalf("at most %d handler goroutines seen during a burst of %d slow calls", most, burst)
	}
	waitFor(t, func() bool { return handlerGoroutines() == 0 })
}

// TestPreAuthFloodLeavesRoomForClients: strangers opening connections and
// never authenticating, from several addresses, cannot keep an
// authenticated client (a web tier) from connecting and calling; and the
// refusals are logged at a rate, not one line each.
func TestPreAuthFloodLeavesRoomForClients(t *testing.T) {
	logs := &logCapture{}
	srv := startServer(t, proto.ServerConfig{MaxConns: 64, Logger: logs.logger()}, newFixture().mux())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var refused, evicted atomic.Int64
	flood := func(ip string, n int, wg *sync.WaitGroup) {
		defer wg.Done()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 2 * time.Second}
		var held []net.Conn
		defer func() {
			for _, nc := range held {
				nc.Close()
			}
		}()
		for i := 0; i < n && ctx.Err() == nil; i++ {
			nc, err := d.DialContext(ctx, "tcp", srv.Addr)
			if err != nil {
				continue
			}
			held = append(held, nc)
			// Read what the server says first: HELLO (admitted) or FATAL.
			_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
			f, err := wire.NewFramer(nc, nil).ReadFrame()
			if err == nil && f.Type == wire.FrameFatal {
				refused.Add(1)
			}
		}
		// Check how the admitted ones ended: evicted with FATAL.
		for _, nc := range held {
			_ = nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			fr := wire.NewFramer(nc, nil)
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					break
				}
				if f.Type == wire.FrameFatal {
					if e, _ := wire.ParseFatal(f.Payload); e != nil && e.Code == wire.TooManyConnections {
						evicted.Add(1)
					}
				}
			}
		}
	}
	var wg sync.WaitGroup
	// Five addresses, each flooding, together far more than the handshake
	// budget (64/4 = 16).
	for i := 2; i < 7; i++ {
		wg.Add(1)
		go flood("127.0.0."+strconv.Itoa(i), 100, &wg)
	}
	// Meanwhile clients keep connecting and calling.
	for i := 0; i < 10; i++ {
		c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}, ConnsPerAddr: 1})
		if out, err := proto.Call(ctx, c, mEcho, echoMsg{N: i}); err != nil || out.N != i {
			t.Fatalf("client %d during the flood: %v", i, err)
		}
		c.Close()
	}
	wg.Wait()
	if refused.Load()+evicted.Load() < 100 {
		t.Fatalf("the flood was hardly refused (%d refused, %d evicted): did it run?", refused.Load(), evicted.Load())
	}
	lines := logs.count("connection refused") + logs.count("connection evicted from the handshake") +
		logs.count("connection opened", "client", "") + logs.count("connection closed", "client", "")
	if lines > 4*10 {
		t.Fatalf("%d log lines for %d refused and %d evicted connections; want them rate-limited", lines, refused.Load(), evicted.Load())
	}
	t.Logf("%d refused, %d evicted, %d log lines", refused.Load(), evicted.Load(), lines)
}

// TestPreAuthPerIPCap: once the handshake budget is full, an address that
// holds MaxPreAuthPerIP connections in the handshake gets
// TOO_MANY_CONNECTIONS instead of HELLO, while another address is still
// admitted (evicting the heavy address's oldest); with room in the budget
// again, the first address is admitted again.
func TestPreAuthPerIPCap(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{MaxConns: 16, MaxPreAuthConns: 8, MaxPreAuthPerIP: 2}, newFixture().mux())
	var held []*rawConn
	for range 8 { // a burst from one address, admitted while there is room
		r := dialRaw(t, srv.Addr)
		if f := r.read(); f.Type != wire.FrameHello {
			t.Fatalf("got %s, want HELLO", f)
		}
		held = append(held, r)
	}
	over := dialRaw(t, srv.Addr)
	if e := over.expectFatal(wire.TooManyConnections); e.Message == "" {
		t.Fatal("refusal without a reason")
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 2 * time.Second}
	nc, err := d.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	other := &rawConn{tb: t, nc: nc, fr: wire.NewFramer(nc, nc)}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if f := other.read(); f.Type != wire.FrameHello {
		t.Fatalf("another address: %s, want HELLO", f)
	}
	other.write(authFrame(t, wire.Version, testSecret))
	if f := other.read(); f.Type != wire.FrameReady {
		t.Fatalf("another address: %s, want READY", f)
	}
	held[0].expectFatal(wire.TooManyConnections) // the heavy address's oldest made room
	// Two more authenticate: the budget has room again.
	for _, r := range held[1:3] {
		r.write(authFrame(t, wire.Version, testSecret))
		if f := r.read(); f.Type != wire.FrameReady {
			t.Fatalf("got %s, want READY", f)
		}
	}
	again := dialRaw(t, srv.Addr)
	if f := again.read(); f.Type != wire.FrameHello {
		t.Fatalf("after two authenticated: %s, want HELLO", f)
	}
}
