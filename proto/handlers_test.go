package proto_test

import (
	"bytes"
	"testing"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
)

// answered sends request id for op and requires its RESPONSE next.
func answered(t *testing.T, r *rawConn, id uint32, op wire.Op) {
	t.Helper()
	r.request(id, op, 0, "", echoMsg{N: 1})
	if f := r.read(); f.Type != wire.FrameResponse || f.ID != id {
		t.Fatalf("got %s, want RESPONSE %d", f, id)
	}
}

// A handler that blocks does not stall its connection: PING, CANCEL and
// other requests are served while it blocks, and its own answer still
// arrives once it returns.
func TestBlockingHandlerDoesNotStallConnection(t *testing.T) {
	fx := newFixture()
	srv := startServer(t, proto.ServerConfig{}, fx.mux())
	r := dialRaw(t, srv.Addr)
	r.handshake()
	answered(t, r, 1, opGate)

	open := fx.shutGate()
	defer open()
	const blocked = 2
	r.request(blocked, opGate, 0, "", echoMsg{})
	if got := fx.waitStarted(t); got != blocked {
		t.Fatalf("started %d, want %d", got, blocked)
	}
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
	// CANCEL reaches the blocked handler.
	r.write(wire.Frame{Type: wire.FrameCancel, ID: blocked})
	f = r.read()
	if f.Type != wire.FrameError || f.ID != blocked {
		t.Fatalf("got %s, want ERROR %d", f, blocked)
	}
	if e, err := wire.ParseError(f.Payload); err != nil || e.Code != wire.Canceled {
		t.Fatalf("blocked request ended with %v (%v), want CANCELED", e, err)
	}

	// A blocked handler that is let go answers normally.
	const late = blocked + 2
	r.request(late, opGate, 0, "", echoMsg{})
	fx.waitStarted(t)
	answered(t, r, late+1, opEcho)
	open()
	f = r.read()
	if err := unwire(f.Payload, &out); f.Type != wire.FrameResponse || f.ID != late || err != nil || out.N != late {
		t.Fatalf("got %s, want RESPONSE %d", f, late)
	}
	answered(t, r, late+2, opEcho)
}

// Requests that arrive together in one write are all answered, and a
// CANCEL for an id no longer in flight is ignored.
func TestBurstOfRequestsAllAnswered(t *testing.T) {
	fx := newFixture()
	srv := startServer(t, proto.ServerConfig{}, fx.mux())
	r := dialRaw(t, srv.Addr)
	r.handshake()
	const id = 1
	answered(t, r, id, opEcho)

	const burst = 50
	var buf bytes.Buffer
	for i := uint32(1); i <= burst; i++ {
		body := encode(echoMsg{N: int(id + i)})
		buf.Write(wire.AppendFrame(nil, wire.Frame{Type: wire.FrameRequest, ID: id + i,
			Payload: wire.AppendRequest(nil, wire.RequestHeader{Op: opEcho}, body)}))
	}
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
