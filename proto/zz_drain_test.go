package proto_test

import (
	"context"
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
// ERROR must therefore leave before the drain's FATAL: the refusal is not
// counted as in flight, so an idle connection wrote DRAIN and FATAL and
// the ERROR, written a moment later, was dropped behind the FATAL. The
// client then fails the request UNAVAILABLE and may not retry it.
func TestDrainRefusedRequestAnsweredBeforeFatal(t *testing.T) {
	const unknownOp wire.Op = 9999
	inObserve := make(chan struct{})
	release := make(chan struct{})
	cfg := proto.ServerConfig{Observe: func(op wire.Op, code wire.Code, _ time.Duration) {
		if op != unknownOp {
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
	<-inObserve
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
