package proto_test

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
)

// startInlineServer starts a server whose inline budget is 1 ms instead of
// 50 µs: under -race every handler is several times slower.
func startInlineServer(t *testing.T, fx *fixture) *testServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := proto.NewServer(proto.ServerConfig{Secret: testSecret, Logger: quietLogger(t)}, fx.mux())
	srv.SetInlineBudget(time.Millisecond)
	return serveServer(t, ln, srv)
}

// warmInline answers op on r until the server has measured it as quick and
// runs it inline (at least 5 times; at most 100, since under -race on a
// busy machine a sample may be slow and the average needs more to settle);
// ids start at *id.
func warmInline(t *testing.T, srv *testServer, r *rawConn, op wire.Op, id *uint32) {
	t.Helper()
	if srv.Inline(op) {
		t.Fatalf("%s runs inline before it was ever measured", op)
	}
	const most = 100
	for i := 0; i < most && (i < 5 || !srv.Inline(op)); i++ {
		*id++
		answered(t, r, *id, op)
	}
	if !srv.Inline(op) {
		t.Fatalf("%s does not run inline after %d quick answers", op, most)
	}
}

// A handler that runs inline and then blocks must not stall the connection:
// after the watchdog, another goroutine reads, so PING, CANCEL and other
// requests are served while it blocks, and its own answer still arrives.
func TestInlineHandlerThatBlocksHandsReadingOn(t *testing.T) {
	fx := newFixture()
	srv := startInlineServer(t, fx)
	r := dialRaw(t, srv.Addr)
	r.handshake()
	var id uint32
	warmInline(t, srv, r, opGate, &id)
	warmInline(t, srv, r, opEcho, &id)

	open := fx.shutGate()
	defer open()
	blocked := id + 1
	r.request(blocked, opGate, 0, "", echoMsg{})
	if got := fx.waitStarted(t); got != blocked {
		t.Fatalf("started %d, want %d", got, blocked)
	}
	// The reader is inside the handler now. Everything below needs a reader.
	r.write(wire.Frame{Type: wire.FramePing, ID: 7, Payload: []byte("hi")})
	if f := r.read(); f.Type != wire.FramePong || f.ID != 7 || string(f.Payload) != "hi" {
		t.Fatalf("got %s, want PONG 7", f)
	}
	r.request(blocked+1, opEcho, 0, "", echoMsg{N: 42, Text: "meanwhile"})
	f := r.read()
	var out echoMsg
	if f.Type != wire.FrameResponse || f.ID != blocked+1 || unwire(f.Payload, &out) != nil || out.Text != "meanwhile" {
		t.Fatalf("got %s, want the echo RESPONSE %d", f, blocked+1)
	}
	// At least one hand-off; under -race on a loaded machine a quick
	// handler may also outlive the watchdog now and then.
	handOffs := srv.HandOffs()
	if handOffs < 1 {
		t.Fatalf("hand-offs = %d, want at least 1", handOffs)
	}
	// CANCEL reaches the blocked handler through the new reader.
	r.write(wire.Frame{Type: wire.FrameCancel, ID: blocked})
	f = r.read()
	if f.Type != wire.FrameError || f.ID != blocked {
		t.Fatalf("got %s, want ERROR %d", f, blocked)
	}
	if e, err := wire.ParseError(f.Payload); err != nil || e.Code != wire.Canceled {
		t.Fatalf("blocked request ended with %v (%v), want CANCELED", e, err)
	}

	// The old goroutine left; the connection goes on as before. The
	// canceled run raised opGate's average: quick answers keep (or bring)
	// it inline, and a blocked handler that is let go answers normally.
	open()
	id = blocked + 1
	for i := 0; i < 50 && !srv.Inline(opGate); i++ {
		id++
		answered(t, r, id, opGate)
	}
	if !srv.Inline(opGate) {
		t.Fatal("opGate never returned to inline")
	}
	open = fx.shutGate()
	defer open()
	blocked = id + 1
	handOffs = srv.HandOffs()
	r.request(blocked, opGate, 0, "", echoMsg{})
	fx.waitStarted(t)
	time.Sleep(5 * inlineWatchdogForTest)
	open()
	f = r.read()
	if err := unwire(f.Payload, &out); f.Type != wire.FrameResponse || f.ID != blocked || err != nil || out.N != int(blocked) {
		t.Fatalf("got %s, want RESPONSE %d", f, blocked)
	}
	if srv.HandOffs() <= handOffs {
		t.Fatalf("hand-offs = %d, want more than %d", srv.HandOffs(), handOffs)
	}
	answered(t, r, blocked+1, opEcho)
}

// inlineWatchdogForTest mirrors the server's watchdog delay.
const inlineWatchdogForTest = time.Millisecond

// Requests that arrive together are answered together: the inline answers
// wait in the buffer while more requests are already read, and leave before
// the server waits for the peer again. A response held and never flushed
// would hang this test.
func TestInlineAnswersToABurstAllArrive(t *testing.T) {
	fx := newFixture()
	srv := startInlineServer(t, fx)
	r := dialRaw(t, srv.Addr)
	r.handshake()
	var id uint32
	warmInline(t, srv, r, opEcho, &id)

	const burst = 50
	var buf bytes.Buffer
	for i := uint32(1); i <= burst; i++ {
		body := encode(echoMsg{N: int(id + i)})
		buf.Write(wire.AppendFrame(nil, wire.Frame{Type: wire.FrameRequest, ID: id + i,
			Payload: wire.AppendRequest(nil, wire.RequestHeader{Op: opEcho}, body)}))
	}
	// A CANCEL for an id no longer in flight is ignored and writes
	// nothing, so only the flush before the next read sends the answers
	// held while it was buffered.
	buf.Write(wire.AppendFrame(nil, wire.Frame{Type: wire.FrameCancel, ID: id}))
	r.writeBytes(buf.Bytes())
	_ = r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	seen := map[uint32]bool{}
	for range burst {
		f := r.read() // answers may come in any order; none may be missing
		var out echoMsg
		if f.Type != wire.FrameResponse || f.ID <= id || f.ID > id+burst || seen[f.ID] || unwire(f.Payload, &out) != nil || out.N != int(f.ID) {
			t.Fatalf("got %s, want one RESPONSE for each of ids %d-%d", f, id+1, id+burst)
		}
		seen[f.ID] = true
	}
}

// An operation measured as slow keeps running on handler goroutines.
func TestSlowOperationIsNotRunInline(t *testing.T) {
	fx := newFixture()
	srv := startInlineServer(t, fx)
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}})
	for i := 0; i < 3; i++ {
		if _, err := proto.Call(t.Context(), c, mSlow, echoMsg{N: 2}); err != nil {
			t.Fatal(err)
		}
		fx.waitStarted(t)
	}
	if srv.Inline(opSlow) {
		t.Fatal("a 2 ms handler runs inline")
	}
	if _, err := proto.Call(t.Context(), c, mEcho, echoMsg{N: 1}); err != nil {
		t.Fatal(err)
	}
	if !srv.Inline(opEcho) {
		t.Fatal("a quick handler does not run inline")
	}
}

// Requests whose body does not decode are refused before the handler runs,
// in microseconds: they must not make a slow operation look quick, or one
// client could make it run inline for everybody.
func TestMalformedBodiesDoNotMakeAnOpInline(t *testing.T) {
	m := newFixture().mux()
	slow := wire.Method[echoMsg, echoMsg]{Op: 1201, Name: "five-ms"}
	proto.Handle(m, slow, func(ctx context.Context, _ *proto.Request, in echoMsg) (echoMsg, error) {
		time.Sleep(5 * time.Millisecond)
		return in, nil
	})
	srv := startServer(t, proto.ServerConfig{}, m)
	r := dialRaw(t, srv.Addr)
	r.handshake()
	r.request(1, slow.Op, 0, "", echoMsg{N: 1})
	if f := r.read(); f.Type != wire.FrameResponse {
		t.Fatalf("got %s", f)
	}
	for id := uint32(2); id < 202; id++ {
		r.write(wire.Frame{Type: wire.FrameRequest, ID: id, Payload: wire.AppendRequest(nil, wire.RequestHeader{Op: slow.Op}, []byte{0xff})})
		if f := r.read(); f.Type != wire.FrameError {
			t.Fatalf("malformed body: got %s, want ERROR", f)
		}
	}
	if srv.Inline(slow.Op) {
		t.Fatal("200 malformed requests made a 5 ms operation run inline")
	}
}
