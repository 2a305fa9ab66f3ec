package proto_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
)

const testSecret = "test-secret"

// Test-only operations, outside the app tier's numbering.
const (
	opEcho   wire.Op = 1000 // echoes echoMsg
	opWait   wire.Op = 1001 // blocks until ctx is done, reports why on the waitLog channel
	opPanic  wire.Op = 1002 // panics
	opLeak   wire.Op = 1003 // returns a plain error with internal text
	opStream wire.Op = 1004 // stream: accepts, sends streamN events, then waits for ctx
	opSlow   wire.Op = 1005 // sleeps slowMs then echoes
	opBig    wire.Op = 1006 // returns a response of the requested size
	opGate   wire.Op = 1007 // answers at once, or, while the fixture's gate is shut, blocks until it opens or ctx is done
	opChild  wire.Op = 1008 // waits on a context derived from the request's and returns its error
)

// Their descriptors, for proto.Call, Subscribe, Handle and HandleStream.
// Operations that take or return nothing use wire.Empty; opGate reads no
// body, and takes an echoMsg so that raw tests can send it the same one
// as opEcho.
var (
	mEcho   = wire.Method[echoMsg, echoMsg]{Op: opEcho, Name: "echo"}
	mWait   = wire.Method[wire.Empty, wire.Empty]{Op: opWait, Name: "wait"}
	mPanic  = wire.Method[wire.Empty, wire.Empty]{Op: opPanic, Name: "panic"}
	mLeak   = wire.Method[wire.Empty, wire.Empty]{Op: opLeak, Name: "leak"}
	mStream = wire.Method[echoMsg, wire.Empty]{Op: opStream, Name: "stream"}
	mSlow   = wire.Method[echoMsg, echoMsg]{Op: opSlow, Name: "slow"}
	mBig    = wire.Method[echoMsg, echoMsg]{Op: opBig, Name: "big"}
	mGate   = wire.Method[echoMsg, echoMsg]{Op: opGate, Name: "gate"}
	mChild  = wire.Method[wire.Empty, wire.Empty]{Op: opChild, Name: "child"}
)

type echoMsg struct {
	N    int    `json:"n"`
	Text string `json:"text,omitempty"`
}

func (m echoMsg) MarshalWire(dst []byte) []byte {
	return wire.AppendString(wire.AppendInt(dst, int64(m.N)), m.Text)
}

func (m *echoMsg) UnmarshalWire(d *wire.Decoder) {
	m.N = d.IntN()
	m.Text = d.Text()
}

type waitResult struct {
	trace       string
	hasDeadline bool
	deadlineIn  time.Duration
	err         error
	cause       error
}

type fixture struct {
	waits   chan waitResult
	started chan uint32 // request ids of opWait / opSlow as they start
	mu      sync.Mutex
	panics  int
	gate    chan struct{} // nil: open
}

// shutGate makes opGate block; the returned func opens it again.
func (fx *fixture) shutGate() (open func()) {
	ch := make(chan struct{})
	fx.mu.Lock()
	fx.gate = ch
	fx.mu.Unlock()
	return sync.OnceFunc(func() {
		fx.mu.Lock()
		fx.gate = nil
		fx.mu.Unlock()
		close(ch)
	})
}

func newFixture() *fixture {
	return &fixture{waits: make(chan waitResult, 64), started: make(chan uint32, 1024)}
}

func (fx *fixture) mux() *proto.Mux {
	m := proto.NewMux()
	proto.Handle(m, wire.Info, func(ctx context.Context, req *proto.Request, in wire.InfoRequest) (wire.InfoResponse, error) {
		return wire.InfoResponse{Server: "test", MinPassword: 8, MaxPassword: 64}, nil
	})
	proto.Handle(m, mEcho, func(ctx context.Context, req *proto.Request, in echoMsg) (echoMsg, error) {
		if in.Text == "invalid" {
			return echoMsg{}, wire.FieldError(wire.InvalidArgument, "text", "text may not be invalid")
		}
		return in, nil
	})
	proto.Handle(m, mWait, func(ctx context.Context, req *proto.Request, _ wire.Empty) (wire.Empty, error) {
		dl, ok := ctx.Deadline()
		fx.started <- req.ID
		<-ctx.Done()
		fx.waits <- waitResult{trace: proto.TraceID(ctx), hasDeadline: ok, deadlineIn: time.Until(dl), err: ctx.Err(), cause: context.Cause(ctx)}
		return wire.Empty{}, ctx.Err()
	})
	proto.Handle(m, mPanic, func(ctx context.Context, req *proto.Request, _ wire.Empty) (wire.Empty, error) {
		fx.mu.Lock()
		fx.panics++
		fx.mu.Unlock()
		panic("handler exploded: secret internal detail")
	})
	proto.Handle(m, mLeak, func(ctx context.Context, req *proto.Request, _ wire.Empty) (wire.Empty, error) {
		return wire.Empty{}, errors.New("pq: relation \"customers\" does not exist (internal detail)")
	})
	proto.Handle(m, mSlow, func(ctx context.Context, req *proto.Request, in echoMsg) (echoMsg, error) {
		fx.started <- req.ID
		select {
		case <-time.After(time.Duration(in.N) * time.Millisecond):
		case <-ctx.Done():
			return echoMsg{}, ctx.Err()
		}
		return in, nil
	})
	proto.Handle(m, mGate, func(ctx context.Context, req *proto.Request, _ echoMsg) (echoMsg, error) {
		fx.mu.Lock()
		gate := fx.gate
		fx.mu.Unlock()
		if gate == nil {
			return echoMsg{N: int(req.ID)}, nil
		}
		fx.started <- req.ID
		select {
		case <-gate:
			return echoMsg{N: int(req.ID)}, nil
		case <-ctx.Done():
			return echoMsg{}, ctx.Err()
		}
	})
	proto.Handle(m, mChild, func(ctx context.Context, req *proto.Request, _ wire.Empty) (wire.Empty, error) {
		// Like a database driver: the request's context is wrapped, and
		// the wrapper's error (Canceled, whatever ended the parent) is
		// what comes back.
		child, cancel := context.WithCancel(ctx)
		defer cancel()
		<-child.Done()
		return wire.Empty{}, child.Err()
	})
	proto.Handle(m, mBig, func(ctx context.Context, req *proto.Request, in echoMsg) (echoMsg, error) {
		return echoMsg{N: in.N, Text: strings.Repeat("a", in.N)}, nil
	})
	proto.HandleStream(m, mStream, func(ctx context.Context, req *proto.Request, in echoMsg, s *proto.Stream) error {
		if in.Text == "refuse" {
			return wire.Errorf(wire.Unauthenticated, "session expired")
		}
		if err := s.Accept(nil); err != nil {
			return err
		}
		for i := 0; i < in.N; i++ {
			if err := s.Send(wire.Event{Kind: wire.EventChatMessage, Message: &wire.Message{ID: int64(i), Body: "hi"}}); err != nil {
				return err
			}
		}
		if in.Text == "end" {
			return nil
		}
		<-ctx.Done()
		return ctx.Err()
	})
	return m
}

// callErr makes a typed call for its error alone.
func callErr[Req, Resp any](ctx context.Context, c *proto.Client, m wire.Method[Req, Resp], req Req) error {
	_, err := proto.Call(ctx, c, m, req)
	return err
}

// quietLogger discards logs unless -v is set, in which case it writes them
// through t.Log so they interleave with the test output.
func quietLogger(tb testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(string(p))
	return len(p), nil
}

type testServer struct {
	*proto.Server
	Addr   string
	served chan error
}

// startServer serves mux on a fresh loopback port; cleanup closes it and
// checks that Serve returned ErrServerClosed.
func startServer(tb testing.TB, cfg proto.ServerConfig, mux *proto.Mux) *testServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return serveOn(tb, ln, cfg, mux)
}

func serveOn(tb testing.TB, ln net.Listener, cfg proto.ServerConfig, mux *proto.Mux) *testServer {
	tb.Helper()
	if cfg.Secret == "" {
		cfg.Secret = testSecret
	}
	if cfg.Name == "" {
		cfg.Name = "bankwire-test/1.0"
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger(tb)
	}
	return serveServer(tb, ln, proto.NewServer(cfg, mux))
}

// serveServer serves srv on ln until the test ends.
func serveServer(tb testing.TB, ln net.Listener, srv *proto.Server) *testServer {
	ts := &testServer{Server: srv, Addr: ln.Addr().String(), served: make(chan error, 1)}
	go func() { ts.served <- ts.Serve(ln) }()
	tb.Cleanup(func() {
		ts.Close()
		select {
		case err := <-ts.served:
			if !errors.Is(err, proto.ErrServerClosed) {
				tb.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			tb.Error("Serve did not return after Close")
		}
	})
	return ts
}

func newClient(tb testing.TB, cfg proto.ClientConfig) *proto.Client {
	tb.Helper()
	if cfg.Secret == "" {
		cfg.Secret = testSecret
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger(tb)
	}
	c, err := proto.NewClient(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// rawConn is a hand-driven protocol peer for hostile-input tests.
type rawConn struct {
	tb testing.TB
	nc net.Conn
	fr *wire.Framer

	cancels []uint32 // ids of the CANCELs readRequest passed over
}

func dialRaw(tb testing.TB, addr string) *rawConn {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{tb: tb, nc: nc, fr: wire.NewFramer(nc, nc)}
}

// read returns the next frame, answering (and skipping) the server's own
// PINGs, which measure the round-trip time (PROTOCOL.md §4.2).
func (r *rawConn) read() wire.Frame {
	r.tb.Helper()
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.tb.Fatalf("read frame: %v", err)
		}
		if f.Type == wire.FramePing {
			r.write(wire.Frame{Type: wire.FramePong, ID: f.ID, Payload: f.Payload})
			continue
		}
		return f
	}
}

func (r *rawConn) write(f wire.Frame) {
	r.tb.Helper()
	if err := r.fr.WriteFrame(f); err != nil {
		r.tb.Fatalf("write frame: %v", err)
	}
}

func (r *rawConn) writeBytes(b []byte) {
	r.tb.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.tb.Fatalf("write: %v", err)
	}
}

func authFrame(tb testing.TB, version uint8, secret string) wire.Frame {
	b, err := json.Marshal(wire.Auth{Version: version, Client: "raw-test", Secret: secret})
	if err != nil {
		tb.Fatal(err)
	}
	return wire.Frame{Type: wire.FrameAuth, Payload: b}
}

// handshake reads HELLO, authenticates and reads READY.
func (r *rawConn) handshake() wire.Hello {
	r.tb.Helper()
	f := r.read()
	if f.Type != wire.FrameHello {
		r.tb.Fatalf("first frame %s, want HELLO", f)
	}
	h, err := wire.ParseHello(f.Payload)
	if err != nil {
		r.tb.Fatal(err)
	}
	r.write(authFrame(r.tb, wire.Version, testSecret))
	if f := r.read(); f.Type != wire.FrameReady {
		r.tb.Fatalf("after AUTH got %s, want READY", f)
	}
	return h
}

// header is a frame header with any field values, valid or not.
func header(version uint8, ft wire.FrameType, flags uint16, id, n uint32) []byte {
	b := make([]byte, wire.HeaderLen)
	wire.PutHeader(b, wire.Header{Version: version, Type: ft, Flags: flags, ID: id, Len: n})
	return b
}

// encode encodes a message body (nil: an empty body).
func encode(v wire.Marshaler) []byte {
	if v == nil {
		return nil
	}
	return v.MarshalWire(nil)
}

// unwire decodes a whole body into v.
func unwire(p []byte, v wire.Unmarshaler) error {
	d := wire.NewDecoder(p)
	v.UnmarshalWire(d)
	return d.End()
}

func (r *rawConn) request(id uint32, op wire.Op, deadlineMs uint32, trace string, body wire.Marshaler) {
	r.tb.Helper()
	b := encode(body)
	r.write(wire.Frame{Type: wire.FrameRequest, ID: id, Payload: wire.AppendRequest(nil, wire.RequestHeader{Op: op, DeadlineMs: deadlineMs, TraceID: trace}, b)})
}

// expectFatal reads frames until FATAL (skipping HELLO) and checks its code,
// then checks that the server closes the connection.
func (r *rawConn) expectFatal(code wire.Code) *wire.Error {
	r.tb.Helper()
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.tb.Fatalf("waiting for FATAL %s: %v", code, err)
		}
		if f.Type == wire.FrameHello || f.Type == wire.FrameDrain || f.Type == wire.FramePing {
			continue
		}
		if f.Type != wire.FrameFatal {
			r.tb.Fatalf("got %s, want FATAL %s", f, code)
		}
		e, err := wire.ParseFatal(f.Payload)
		if err != nil {
			r.tb.Fatal(err)
		}
		if e.Code != code {
			r.tb.Fatalf("FATAL code %s (%q), want %s", e.Code, e.Message, code)
		}
		r.expectClosed()
		return e
	}
}

// expectClosed checks that the peer closes the connection (EOF) promptly.
func (r *rawConn) expectClosed() {
	r.tb.Helper()
	_ = r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var buf [256]byte
	for {
		_, err := r.nc.Read(buf[:])
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) || isReset(err) {
			return
		}
		r.tb.Fatalf("connection not closed by server: %v", err)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

func wantCode(tb testing.TB, err error, code wire.Code) *wire.Error {
	tb.Helper()
	if got := wire.ErrorCode(err); got != code {
		tb.Fatalf("error %v: code %s, want %s", err, got, code)
	}
	var e *wire.Error
	errors.As(err, &e)
	return e
}

// waitStarted returns the id of the next request the fixture's waiting or
// slow handler started, failing the test if none starts within 10 s: a test
// waiting for something that never comes fails in seconds, not at go
// test's timeout.
func (fx *fixture) waitStarted(t testing.TB) uint32 {
	t.Helper()
	select {
	case id := <-fx.started:
		return id
	case <-time.After(10 * time.Second):
		t.Fatal("no request started its handler within 10 s")
		return 0
	}
}

// waitGroup waits for wg, failing the test after limit.
func waitGroup(t testing.TB, wg *sync.WaitGroup, limit time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("%s did not finish within %s", what, limit)
	}
}
