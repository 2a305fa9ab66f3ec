package proto_test

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
)

// readAll reads frames from r until the connection ends and sends them
// on the returned channel, which it closes at the end. PINGs are answered
// and skipped.
func (r *rawConn) readAll() <-chan wire.Frame {
	ch := make(chan wire.Frame, 64)
	go func() {
		defer close(ch)
		_ = r.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
		for {
			f, err := r.fr.ReadFrame()
			if err != nil {
				return
			}
			if f.Type == wire.FramePing {
				_ = r.fr.WriteFrame(wire.Frame{Type: wire.FramePong, ID: f.ID, Payload: f.Payload})
				continue
			}
			ch <- f
		}
	}()
	return ch
}

// A request refused at once (here UNIMPLEMENTED) just before a drain
// begins is named by DRAIN's last_id, so it "will be answered" (§7.3). Its
// ERROR must therefore leave before the drain's FATAL; were the refusal not
// counted as in flight, an idle connection would write DRAIN and FATAL, and
// the ERROR, written a moment later, would be dropped behind the FATAL: the
// client would fail the request UNAVAILABLE and could not retry it.
func TestDrainRefusedRequestAnsweredBeforeFatal(t *testing.T) {
	const unknownOp wire.Op = 9999
	inObserve := make(chan struct{})
	release := make(chan struct{})
	cfg := proto.ServerConfig{Observe: func(op wire.Op, code wire.Code, _ time.Duration) {
		if op != 0 || code != wire.Unimplemented { // an operation the Mux does not handle is observed as 0
			return
		}
		close(inObserve)
		select { // the window between the refusal's bookkeeping and its write
		case <-release:
		case <-time.After(10 * time.Second):
		}
	}}
	srv := startServer(t, cfg, newFixture().mux())
	r := dialRaw(t, srv.Addr)
	r.handshake()
	frames := r.readAll()
	r.request(1, unknownOp, 0, "", echoMsg{})
	select {
	case <-inObserve:
	case <-time.After(10 * time.Second):
		t.Fatal("the refusal was not observed within 10 s")
	}
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()

	f, ok := <-frames
	last, err := wire.ParseDrain(f.Payload)
	if !ok || f.Type != wire.FrameDrain || err != nil || last != 1 {
		t.Fatalf("got %s (last id %d), want DRAIN naming 1", f, last)
	}
	var got []wire.Frame
	select {
	case f, ok := <-frames: // nothing may follow before request 1's ERROR
		if ok {
			got = append(got, f)
		}
	case <-time.After(2 * time.Second):
	}
	close(release)
	for f := range frames {
		got = append(got, f)
	}
	if len(got) != 2 || got[0].Type != wire.FrameError || got[0].ID != 1 || got[1].Type != wire.FrameFatal {
		t.Fatalf("after DRAIN(1): %v, want ERROR 1 then FATAL", got)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

// An event that cannot be sent because the connection is closing (the
// server sent FATAL) is not a server fault: the stream's end must not be
// counted as INTERNAL nor logged as a failed request, as unary answers
// lost the same way are counted UNAVAILABLE.
func TestStreamSendOnClosingConnectionIsNotInternal(t *testing.T) {
	m := newFixture().mux()
	tick := make(chan struct{})
	sendErr := make(chan error, 1)
	ticking := wire.Method[echoMsg, wire.Event]{Op: 1300, Name: "ticking"}
	proto.HandleStream(m, ticking, func(ctx context.Context, _ *proto.Request, _ echoMsg, s *proto.Stream) error {
		if err := s.Accept(nil); err != nil {
			return err
		}
		for range tick {
			if err := s.Send(wire.Event{Kind: wire.EventChatMessage, Message: &wire.Message{Body: "hi"}}); err != nil {
				sendErr <- err
				return err
			}
		}
		return nil
	})
	codes := make(chan wire.Code, 4)
	var logs logCapture
	srv := startServer(t, proto.ServerConfig{Logger: logs.logger(), Observe: func(op wire.Op, code wire.Code, _ time.Duration) {
		if op == ticking.Op {
			codes <- code
		}
	}}, m)
	r := dialRaw(t, srv.Addr)
	r.handshake()
	r.request(1, ticking.Op, 0, "", echoMsg{})
	if f := r.read(); f.Type != wire.FrameResponse || f.Flags&wire.FlagStream == 0 {
		t.Fatalf("got %s, want RESPONSE STREAM", f)
	}
	r.write(wire.Frame{Type: wire.FramePong + 100}) // an unknown frame type: FATAL PROTOCOL_ERROR
	if f := r.read(); f.Type != wire.FrameFatal {
		t.Fatalf("got %s, want FATAL", f)
	}
	tick <- struct{}{} // the server lingers for its peer's close; the stream is still open
	select {
	case err := <-sendErr:
		t.Logf("Send after FATAL: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Send did not return")
	}
	var code wire.Code
	select {
	case code = <-codes:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream's end was not observed")
	}
	if code == wire.Internal {
		t.Errorf("stream whose connection closed observed as %s", code)
	}
	if n := logs.count("request failed"); n > 0 {
		t.Errorf("a stream whose connection closed was logged as a failed request")
	}
}

// closeSignalConn tells when the server closes it.
type closeSignalConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *closeSignalConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// signalListener hands out closeSignalConns, the last one in conn.
type signalListener struct {
	net.Listener
	conns chan *closeSignalConn
}

func (l *signalListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &closeSignalConn{Conn: nc, closed: make(chan struct{})}
	l.conns <- c
	return c, nil
}

// lateLog is a slog.Handler that notes records logged once closed is
// closed, and holds each record up to 3 s, so that one logged by a
// goroutine Close does not wait for is still being logged when Close
// returns.
type lateLog struct {
	closed chan struct{}
	mu     *sync.Mutex
	late   *[]string
}

func (h lateLog) Enabled(context.Context, slog.Level) bool { return true }
func (h lateLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h lateLog) WithGroup(string) slog.Handler            { return h }
func (h lateLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "write failed, closing connection" {
		return nil
	}
	select {
	case <-h.closed:
		h.mu.Lock()
		*h.late = append(*h.late, r.Message)
		h.mu.Unlock()
	case <-time.After(3 * time.Second):
	}
	return nil
}

// Close waits for the server's goroutines: nothing of the server's logs
// after it returned. A handler's answer written after Close closed its
// connection fails; that failure, of a close the server made itself, must
// not be logged (as a WARN "write failed") on the goroutine of its own
// that Close does not wait for.
func TestCloseLeavesNoGoroutineLogging(t *testing.T) {
	closed := make(chan struct{})
	var mu sync.Mutex
	var late []string
	m := newFixture().mux()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := &signalListener{Listener: ln, conns: make(chan *closeSignalConn, 4)}
	connClosed := make(chan (<-chan struct{}), 1)
	late1 := wire.Method[wire.Empty, wire.Empty]{Op: 1301, Name: "answers-after-close"}
	started := make(chan struct{})
	proto.Handle(m, late1, func(ctx context.Context, _ *proto.Request, _ wire.Empty) (wire.Empty, error) {
		close(started)
		<-ctx.Done()
		select { // answer once the connection is closed
		case <-<-connClosed:
		case <-time.After(10 * time.Second):
		}
		return wire.Empty{}, ctx.Err()
	})
	srv := proto.NewServer(proto.ServerConfig{Secret: testSecret, Logger: slog.New(lateLog{closed: closed, mu: &mu, late: &late})}, m)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sl) }()
	r := dialRaw(t, ln.Addr().String())
	connClosed <- (<-sl.conns).closed
	r.handshake()
	r.request(1, late1.Op, 0, "", wire.Empty{})
	<-started
	srv.Close()
	close(closed)
	<-served
	time.Sleep(time.Second) // a goroutine left behind logs within this
	mu.Lock()
	defer mu.Unlock()
	if len(late) > 0 {
		t.Fatalf("logged after Close returned: %q", late)
	}
}
