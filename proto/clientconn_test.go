package proto_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
)

// A subscription whose events arrive more often than the keepalive
// interval keeps its connection: the client sends nothing else on a
// stream connection, so it must still ping before the server's idle
// timeout (nothing RECEIVED by the server) cuts the connection.
func TestClientBusyStreamSurvivesServerIdleTimeout(t *testing.T) {
	m := proto.NewMux()
	proto.HandleStream(m, mStream, func(ctx context.Context, r *proto.Request, in echoMsg, s *proto.Stream) error {
		if err := s.Accept(nil); err != nil {
			return err
		}
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for i := int64(0); ; i++ {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tk.C:
			}
			if err := s.Send(wire.Event{Kind: wire.EventChatMessage, Message: &wire.Message{ID: i, Body: "hi"}}); err != nil {
				return err
			}
		}
	})
	srv := startServer(t, proto.ServerConfig{IdleTimeout: 600 * time.Millisecond}, m)
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}})
	ctx := context.Background()
	sub, err := proto.Subscribe(ctx, c, mStream, echoMsg{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// Three idle timeouts' worth of events (bounded by count and time).
	end := time.Now().Add(1800 * time.Millisecond)
	for n := 0; time.Now().Before(end) && n < 1000; n++ {
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var ev wire.Event
		err := sub.Next(nctx, &ev)
		cancel()
		if err != nil {
			t.Fatalf("event %d: %v (the server cut the busy stream connection as idle)", n, err)
		}
	}
}

// §7.3: a request whose id is at most a DRAIN's last_id may have run and
// must never be retried automatically. A second DRAIN naming a lower
// last_id (a confused or hostile server) must not make the client send
// such a request again, on another connection, to run a second time.
func TestClientSecondDrainDoesNotRetryPromisedRequests(t *testing.T) {
	fs := startFake(t, wire.Hello{})
	c := newClient(t, proto.ClientConfig{Addrs: []string{fs.addr()}, ConnsPerAddr: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := callEcho(c, ctx, 1)
	r := fs.next(t)
	f, m := r.readRequest()
	r.write(wire.Frame{Type: wire.FrameDrain, Payload: wire.AppendDrain(nil, f.ID)}) // it will be answered
	r.write(wire.Frame{Type: wire.FrameDrain, Payload: wire.AppendDrain(nil, 0)})
	retried := make(chan struct{})
	go func() {
		select {
		case r2 := <-fs.conns:
			r2.read()
			close(retried)
		case <-ctx.Done():
		}
	}()
	r.respond(f.ID, m)
	res := <-done
	select {
	case <-retried:
		t.Fatalf("the request (id %d, promised by the first DRAIN) was sent again on a new connection; the call got %+v, %v", f.ID, res.msg, res.err)
	case <-time.After(300 * time.Millisecond):
	}
	if res.err != nil || res.msg.N != 1 {
		t.Fatalf("got %+v, %v", res.msg, res.err)
	}
}

// Stress: callers with random cancellations and short deadlines never get
// another call's answer, and every error is one of the expected codes.
func TestClientStressMixedCancels(t *testing.T) {
	fx := newFixture()
	go func() {
		for range fx.started {
		}
	}()
	srv := startServer(t, proto.ServerConfig{}, fx.mux())
	c := newClient(t, proto.ClientConfig{Addrs: []string{srv.Addr}, ConnsPerAddr: 1})
	var wg sync.WaitGroup
	var bad atomic.Int32
	var okN, cancN, dlN atomic.Int32
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 150; i++ {
				in := echoMsg{N: rand.N(3), Text: fmt.Sprint(g, "/", i)}
				m := mEcho
				if i%3 == 0 {
					m = mSlow
				}
				var ctx context.Context
				var cancel context.CancelFunc
				switch rand.N(4) {
				case 0:
					ctx, cancel = context.WithCancel(context.Background())
					d := time.Duration(rand.N(2000)) * time.Microsecond
					time.AfterFunc(d, cancel)
				case 1:
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(rand.N(3000))*time.Microsecond)
				default:
					ctx, cancel = context.WithCancel(context.Background())
				}
				out, err := proto.Call(ctx, c, m, in)
				cancel()
				switch wire.ErrorCode(err) {
				case wire.OK:
					if out != in {
						bad.Add(1)
						t.Errorf("got %+v want %+v", out, in)
						return
					}
					okN.Add(1)
				case wire.Canceled:
					cancN.Add(1)
				case wire.DeadlineExceeded:
					dlN.Add(1)
				default:
					bad.Add(1)
					t.Errorf("call: %v", err)
					return
				}
			}
		}()
	}
	waitGroup(t, &wg, 2*time.Minute, "calls")
	t.Logf("ok %d canceled %d deadline %d", okN.Load(), cancN.Load(), dlN.Load())
}

// A client whose writer is full of requests the server has not read yet
// still reads: answering the server's PING must not wait behind them, or
// answers (and the server's own writes) stop until the write timeout.
func TestClientAnswersPingWhileWriterIsFull(t *testing.T) {
	fs := startFake(t, wire.Hello{Versions: []int{1}, Server: "fake", MaxPayload: 4 << 20, MaxInFlight: 100, IdleTimeoutMs: 60000, HandshakeTimeoutMs: 1000})
	c := newClient(t, proto.ClientConfig{Addrs: []string{fs.addr()}, ConnsPerAddr: 1, WriteTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first := callEcho(c, ctx, 1)
	r := fs.next(t)
	// A small receive buffer, so that the socket fills soon (loopback's
	// may grow to tens of MiB).
	if err := r.nc.(*net.TCPConn).SetReadBuffer(32 << 10); err != nil {
		t.Fatal(err)
	}
	f, m := r.readRequest()
	// The first call's goroutine wrote its request itself and may still be
	// in its writer's loop: a big request appended meanwhile would be its
	// to write, and it would block there instead of reading. Give it time
	// to leave and start reading.
	time.Sleep(100 * time.Millisecond)
	// The fake stops reading; big requests fill the socket's buffers and
	// then the client's writer (past its 1 MiB bound).
	big := echoMsg{N: 2, Text: strings.Repeat("x", 3<<20)}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = proto.Call(ctx, c, mEcho, big)
		}()
	}
	defer wg.Wait()
	defer r.nc.Close() // ends the big calls
	time.Sleep(100 * time.Millisecond)
	r.write(wire.Frame{Type: wire.FramePing, ID: 7})
	r.respond(f.ID, m)
	select {
	case res := <-first:
		if res.err != nil || res.msg.N != 1 {
			t.Fatalf("got %+v, %v", res.msg, res.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first call's answer was not read: the client's reader waits to write PONG behind requests the server has not read")
	}
}

// A server that goes silent in the middle of an answer (a network cut
// between two TCP segments of a big frame, a frozen host) is as dead as
// one that goes silent between frames (§11): the calls waiting on the
// connection fail UNAVAILABLE about 0.8 s later and the endpoint is
// marked down, instead of the connection taking calls that all time out
// until the 30 s read timeout of the rest of the frame.
func TestClientServerSilentMidFrameIsDead(t *testing.T) {
	fs := startFake(t, wire.Hello{})
	c := newClient(t, proto.ClientConfig{Addrs: []string{fs.addr()}, ConnsPerAddr: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	done := callEcho(c, ctx, 1)
	r := fs.next(t)
	f, m := r.readRequest()
	m.Text = strings.Repeat("x", 200<<10)
	full := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameResponse, ID: f.ID, Payload: encode(m)})
	r.writeBytes(full[:64<<10]) // then nothing more, nor PONG
	select {
	case res := <-done:
		e := wantCode(t, res.err, wire.Unavailable)
		if !strings.Contains(e.Message, "not responding") {
			t.Fatalf("error %v, want the server declared not responding", e)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("call never returned")
	}
	if c.DownUntil(fs.addr()).IsZero() {
		t.Fatal("the endpoint of the silent server is not marked down")
	}
}
