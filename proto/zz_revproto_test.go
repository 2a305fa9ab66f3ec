package proto_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
)

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
