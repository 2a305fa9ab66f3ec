package proto_test

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
)

// A REQUEST read after Shutdown began but before DRAIN was written gets no
// answer, and DRAIN names the request before it: the client retries it
// elsewhere (§7.3) rather than telling its caller the server is going away.
func TestRequestDuringDrainIsHandedBackByDrain(t *testing.T) {
	fx := newFixture()
	srv := startServer(t, proto.ServerConfig{}, fx.mux())
	r := dialRaw(t, srv.Addr)
	r.handshake()
	answered(t, r, 1, opEcho)

	// Between draining and DRAIN: send request 2 and a PING, and read up
	// to the PONG, which the server writes after it has read request 2.
	var meanwhile []wire.Frame
	hooked := make(chan struct{})
	defer proto.SetHookBeforeDrain(func() {
		defer close(hooked)
		r.request(2, opEcho, 0, "", echoMsg{N: 2})
		r.write(wire.Frame{Type: wire.FramePing, ID: 99})
		for f := r.read(); f.Type != wire.FramePong || f.ID != 99; f = r.read() {
			meanwhile = append(meanwhile, f)
		}
	})()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	<-hooked
	if len(meanwhile) > 0 {
		t.Fatalf("before DRAIN: %v, want nothing", meanwhile)
	}
	f := r.read()
	last, err := wire.ParseDrain(f.Payload)
	if f.Type != wire.FrameDrain || err != nil || last != 1 {
		t.Fatalf("got %s (last id %d), want DRAIN naming 1", f, last)
	}
	r.expectFatal(wire.ShuttingDown)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

// badEvent has no wire encoding.
type badEvent struct{}

// An event that cannot be encoded ends its stream with one ERROR INTERNAL
// "internal error", whether the handler returns Send's error or ignores
// it: the client must not take a lost event for a normal end. Nothing
// follows the ERROR for that id.
func TestUnencodableEventEndsStreamOnce(t *testing.T) {
	for _, returnsErr := range []bool{true, false} {
		fx := newFixture()
		m := fx.mux()
		bad := wire.Method[echoMsg, wire.Event]{Op: 1100, Name: "bad-event"}
		proto.HandleStream(m, bad, func(ctx context.Context, _ *proto.Request, _ echoMsg, s *proto.Stream) error {
			if err := s.Accept(nil); err != nil {
				return err
			}
			if err := s.Send(badEvent{}); err != nil && returnsErr {
				return err
			}
			return nil
		})
		srv := startServer(t, proto.ServerConfig{}, m)
		r := dialRaw(t, srv.Addr)
		r.handshake()
		r.request(1, bad.Op, 0, "", echoMsg{})
		if f := r.read(); f.Type != wire.FrameResponse || f.Flags&wire.FlagStream == 0 {
			t.Fatalf("got %s, want RESPONSE STREAM", f)
		}
		f := r.read()
		e, err := wire.ParseError(f.Payload)
		if f.Type != wire.FrameError || f.ID != 1 || err != nil || e.Code != wire.Internal || e.Message != "internal error" {
			t.Fatalf("handler returns Send's error %v: got %s (%v), want ERROR INTERNAL \"internal error\" for 1", returnsErr, f, e)
		}
		r.write(wire.Frame{Type: wire.FramePing, ID: 7})
		if f := r.read(); f.Type != wire.FramePong || f.ID != 7 {
			t.Fatalf("after the stream's ERROR: %s, want PONG 7", f)
		}
	}
}

// Inline answers held for a burst (flushHold) that outgrow the writer's
// buffer are written out by the reader itself, which would otherwise wait
// for room that no one makes.
func TestHeldInlineAnswersOverflowTheBuffer(t *testing.T) {
	fx := newFixture()
	srv := startInlineServer(t, fx)
	r := dialRaw(t, srv.Addr)
	r.handshake()
	var id uint32
	warmInline(t, srv, r, opBig, &id)

	// One write, so that the server finds every request already buffered
	// and holds the answers: 100 × 16 KiB, past the 1 MiB limit. (Were
	// the answers left in the buffer, Close would wait for them forever
	// and the test would end in the test binary's timeout.)
	const n, size = 100, 16 << 10
	var burst []byte
	for i := uint32(1); i <= n; i++ {
		p := wire.AppendRequest(nil, wire.RequestHeader{Op: opBig}, encode(echoMsg{N: size}))
		burst = wire.AppendFrame(burst, wire.Frame{Type: wire.FrameRequest, ID: id + i, Payload: p})
	}
	r.writeBytes(burst)
	_ = r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := map[uint32]bool{}
	for len(got) < n {
		f, err := r.fr.ReadFrame()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("%d of %d answers arrived; the rest never left the server", len(got), n)
			}
			t.Fatal(err)
		}
		if f.Type != wire.FrameResponse || f.ID <= id || f.ID > id+n || got[f.ID] || len(f.Payload) < size {
			t.Fatalf("got %s, want a RESPONSE of %d bytes to one of requests %d to %d", f, size, id+1, id+n)
		}
		got[f.ID] = true
	}
}

// Shutdown keeps to its context when a client has stopped reading and the
// server's writes to it block: DRAIN goes out on a goroutine per
// connection, and the Close that follows the context's end unblocks them.
func TestShutdownKeepsItsContextWithAStalledReader(t *testing.T) {
	srv := startServer(t, proto.ServerConfig{WriteTimeout: 10 * time.Second}, newFixture().mux())
	r := dialRaw(t, srv.Addr)
	_ = r.nc.(*net.TCPConn).SetReadBuffer(64 << 10) // no room to grow into
	r.handshake()
	// Answers the client never reads: more than the socket buffers and
	// the server's 1 MiB write buffer hold.
	for i := uint32(1); i <= 16; i++ {
		r.request(i, opBig, 0, "", echoMsg{N: 1000 << 10})
	}
	time.Sleep(1500 * time.Millisecond) // the handlers fill the buffers
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown = %v, want its context's DeadlineExceeded", err)
	}
	// The write timeout (10 s) is what a blocked DRAIN would wait for.
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Shutdown took %v with a 300 ms context", d)
	}
}

// A client that stops reading while it keeps sending requests cannot pile
// up handlers: a handler waiting for room to write its answer keeps its
// request's place under MaxInFlight, so the reader refuses the rest (and,
// once it cannot write those refusals either, stops reading).
func TestNonReadingClientCannotPileUpHandlers(t *testing.T) {
	m := newFixture().mux()
	oneMs := wire.Method[echoMsg, echoMsg]{Op: 1200, Name: "one-ms"} // like a database round trip: never inline
	proto.Handle(m, oneMs, func(ctx context.Context, _ *proto.Request, in echoMsg) (echoMsg, error) {
		time.Sleep(time.Millisecond)
		return in, nil
	})
	srv := startServer(t, proto.ServerConfig{MaxInFlight: 128}, m)
	r := dialRaw(t, srv.Addr)
	r.handshake()
	before := runtime.NumGoroutine()
	id := uint32(0)
	for range 40 { // big answers, never read: the socket and the writer's buffer fill up
		id++
		r.request(id, opBig, 0, "", echoMsg{N: 512 << 10})
	}
	time.Sleep(300 * time.Millisecond)
	req := wire.AppendRequest(nil, wire.RequestHeader{Op: oneMs.Op}, encode(echoMsg{N: 1}))
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for start := time.Now(); time.Since(start) < 2*time.Second; {
		<-tick.C
		var burst []byte
		for range 10 { // fewer at once than MaxInFlight handlers can take
			id++
			burst = wire.AppendFrame(burst, wire.Frame{Type: wire.FrameRequest, ID: id, Payload: req})
		}
		_ = r.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := r.nc.Write(burst); err != nil {
			break // the server stopped reading: the backpressure this test wants
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n := runtime.NumGoroutine() - before; n > 2*128 {
		t.Fatalf("%d more goroutines after %d requests from a client that reads nothing; MaxInFlight is 128", n, id)
	}
}
