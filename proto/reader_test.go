package proto_test

import (
	"context"
	"testing"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
)

// The client reads a connection with whichever goroutine needs it (see
// clientConn): a lone call reads for itself, other calls wait for it or
// for a background reader. These tests drive a fake server frame by frame
// through the hand-overs.

func (r *rawConn) respond(id uint32, v wire.Marshaler) {
	r.tb.Helper()
	r.write(wire.Frame{Type: wire.FrameResponse, ID: id, Payload: encode(v)})
}

// readRequest reads the next REQUEST as a server would: it answers PINGs
// (the client probes a connection whose answers are overdue) and notes
// CANCELs in r.cancels.
func (r *rawConn) readRequest() (wire.Frame, echoMsg) {
	r.tb.Helper()
	f := r.read()
	for f.Type == wire.FramePing || f.Type == wire.FrameCancel {
		if f.Type == wire.FramePing {
			r.write(wire.Frame{Type: wire.FramePong, ID: f.ID, Payload: f.Payload})
		} else {
			r.cancels = append(r.cancels, f.ID)
		}
		f = r.read()
	}
	if f.Type != wire.FrameRequest {
		r.tb.Fatalf("got %s, want REQUEST", f)
	}
	_, body, err := wire.ParseRequest(f.Payload)
	if err != nil {
		r.tb.Fatal(err)
	}
	var m echoMsg
	if len(body) > 0 {
		if err := unwire(body, &m); err != nil {
			r.tb.Fatal(err)
		}
	}
	return f, m
}

func callEcho(c *proto.Client, ctx context.Context, n int) <-chan echoResult {
	ch := make(chan echoResult, 1)
	go func() {
		out, err := proto.Call(ctx, c, mEcho, echoMsg{N: n})
		ch <- echoResult{out, err}
	}()
	return ch
}

type echoResult struct {
	msg echoMsg
	err error
}

// echoBack answers the next request on r with its own body, and checks
// that the call waiting on ch gets it back as n.
func (r *rawConn) echoBack(t *testing.T, ch <-chan echoResult, n int) {
	t.Helper()
	f, m := r.readRequest()
	r.respond(f.ID, m)
	wantEcho(t, ch, n)
}

func wantEcho(t *testing.T, ch <-chan echoResult, n int) {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil || r.msg.N != n {
			t.Fatalf("call %d got %+v, %v", n, r.msg, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("call %d never returned", n)
	}
}

// Answers in any order reach the right callers, whether the call reading
// the connection finishes first or last.
func TestClientAnswersReachLeaderAndFollowers(t *testing.T) {
	fs := startFake(t, wire.Hello{})
	c := newClient(t, proto.ClientConfig{Addrs: []string{fs.addr()}, ConnsPerAddr: 1})
	ctx := context.Background()
	var r *rawConn
	for round, leaderFirst := range []bool{true, false, true} {
		n := 10 * (round + 1)
		first := callEcho(c, ctx, n) // alone: it reads for itself
		if r == nil {
			r = fs.next(t)
		}
		f1, m1 := r.readRequest()
		second := callEcho(c, ctx, n+1) // waits for the first, or for a background reader
		f2, m2 := r.readRequest()
		third := callEcho(c, ctx, n+2)
		f3, m3 := r.readRequest()
		if m1.N != n || m2.N != n+1 || m3.N != n+2 {
			t.Fatalf("requests carried %d %d %d", m1.N, m2.N, m3.N)
		}
		if leaderFirst {
			r.respond(f1.ID, m1)
			wantEcho(t, first, n)
			r.respond(f3.ID, m3) // now read by a background reader
			r.respond(f2.ID, m2)
			wantEcho(t, second, n+1)
			wantEcho(t, third, n+2)
		} else {
			r.respond(f3.ID, m3) // read by the first call, for the others
			r.respond(f2.ID, m2)
			wantEcho(t, third, n+2)
			wantEcho(t, second, n+1)
			r.respond(f1.ID, m1)
			wantEcho(t, first, n)
		}
	}
}

// An idle connection still has a reader: it answers the server's PING,
// and a close by the server is noticed before the next call, which then
// goes to a new connection instead of failing on the dead one.
func TestClientIdleConnectionIsStillRead(t *testing.T) {
	fs := startFake(t, wire.Hello{})
	c := newClient(t, proto.ClientConfig{Addrs: []string{fs.addr()}, ConnsPerAddr: 1})
	ctx := context.Background()
	done := callEcho(c, ctx, 1)
	r := fs.next(t)
	r.echoBack(t, done, 1)

	time.Sleep(50 * time.Millisecond) // idle: nobody calls
	r.write(wire.Frame{Type: wire.FramePing, ID: 7, Payload: []byte("idle?")})
	if f := r.read(); f.Type != wire.FramePong || f.ID != 7 || string(f.Payload) != "idle?" {
		t.Fatalf("got %s, want PONG 7", f)
	}

	r.nc.Close()
	time.Sleep(50 * time.Millisecond)
	done = callEcho(c, ctx, 2)
	fs.next(t).echoBack(t, done, 2)
}

// Streams run on connections of their own: a stream opened while a call
// reads its connection for itself goes to a second connection, and its
// events arrive both while that call waits and after it has returned.
func TestClientStreamOutlivesTheReadingCall(t *testing.T) {
	fs := startFake(t, wire.Hello{})
	c := newClient(t, proto.ClientConfig{Addrs: []string{fs.addr()}, ConnsPerAddr: 1})
	ctx := context.Background()
	unary := callEcho(c, ctx, 5)
	r := fs.next(t)
	fu, mu := r.readRequest()

	sub, rs, fs2 := openFakeStream(t, ctx, c, fs)
	defer sub.Close()
	event := func(id int64) {
		b := encode(wire.Event{Kind: wire.EventChatMessage, Message: &wire.Message{ID: id, Body: "hi"}})
		rs.write(wire.Frame{Type: wire.FrameEvent, ID: fs2.ID, Payload: b})
	}
	next := func(id int64) {
		t.Helper()
		nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var ev wire.Event
		if err := sub.Next(nctx, &ev); err != nil || ev.Message == nil || ev.Message.ID != id {
			t.Fatalf("event %d: got %+v, %v", id, ev, err)
		}
	}
	event(1)
	next(1)
	r.respond(fu.ID, mu)
	wantEcho(t, unary, 5)
	time.Sleep(20 * time.Millisecond)
	event(2)
	next(2)
}

// A call whose context has no deadline ends at the client's default
// timeout even if the server never answers, and tells the server that
// deadline.
func TestClientDefaultTimeoutWithoutAnswer(t *testing.T) {
	fs := startFake(t, wire.Hello{})
	c := newClient(t, proto.ClientConfig{Addrs: []string{fs.addr()}, ConnsPerAddr: 1, DefaultTimeout: 300 * time.Millisecond})
	start := time.Now()
	done := callEcho(c, context.Background(), 1) // alone: it reads for itself
	r := fs.next(t)
	f := r.read()
	h, _, err := wire.ParseRequest(f.Payload)
	if err != nil || h.DeadlineMs == 0 || h.DeadlineMs > 300 {
		t.Fatalf("request deadline %d ms (%v), want (0, 300]", h.DeadlineMs, err)
	}
	// A second call waits behind the first, with no deadline of its own
	// either.
	second := callEcho(c, context.Background(), 2)
	f2, _ := r.readRequest()
	for _, ch := range []<-chan echoResult{done, second} {
		select {
		case res := <-ch:
			wantCode(t, res.err, wire.DeadlineExceeded)
		case <-time.After(10 * time.Second):
			t.Fatal("call never returned")
		}
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 5*time.Second {
		t.Fatalf("calls ended after %v, want about 300ms", d)
	}
	// The connection is still usable: late answers are dropped quietly.
	r.respond(f.ID, echoMsg{N: 1})
	r.respond(f2.ID, echoMsg{N: 2})
	r.echoBack(t, callEcho(c, context.Background(), 3), 3)
	// Both calls that gave up told the server so (§4.2): a request held
	// up on the way must not start after its caller left.
	if len(r.cancels) != 2 || r.cancels[0]+r.cancels[1] != f.ID+f2.ID {
		t.Fatalf("CANCEL for ids %v, want %d and %d", r.cancels, f.ID, f2.ID)
	}
}

// A call reading for itself does not wait out a frame that has only partly
// arrived: a background reader takes the rest, and the call still ends at
// its own deadline. The connection survives, since the frame is read whole
// when the rest comes.
func TestClientLeaderLeavesAPartialFrameToABackgroundReader(t *testing.T) {
	fs := startFake(t, wire.Hello{})
	c := newClient(t, proto.ClientConfig{Addrs: []string{fs.addr()}, ConnsPerAddr: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	done := callEcho(c, ctx, 1) // alone: it reads for itself
	r := fs.next(t)
	f, m := r.readRequest()
	m.Text = "long enough to cut in two"
	full := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameResponse, ID: f.ID, Payload: encode(m)})
	r.writeBytes(full[:wire.HeaderLen+2])
	select {
	case res := <-done:
		wantCode(t, res.err, wire.DeadlineExceeded)
	case <-time.After(10 * time.Second):
		t.Fatal("the call waited for the rest of the frame")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("call ended after %v, want about 300ms", d)
	}
	r.writeBytes(full[wire.HeaderLen+2:]) // the late answer completes and is dropped
	r.echoBack(t, callEcho(c, context.Background(), 2), 2)
}

// openFakeStream subscribes to mStream through c and opens the stream on
// the fake's next connection: it returns the subscription, that
// connection and the stream's REQUEST.
func openFakeStream(t *testing.T, ctx context.Context, c *proto.Client, fs *fakeServer) (*proto.Subscription, *rawConn, wire.Frame) {
	t.Helper()
	subc := make(chan *proto.Subscription, 1)
	go func() {
		sub, err := proto.Subscribe(ctx, c, mStream, echoMsg{})
		if err != nil {
			t.Error(err)
		}
		subc <- sub
	}()
	r := fs.next(t)
	f, _ := r.readRequest()
	r.write(wire.Frame{Type: wire.FrameResponse, ID: f.ID, Flags: wire.FlagStream})
	sub := <-subc
	if sub == nil {
		t.FailNow()
	}
	return sub, r, f
}
