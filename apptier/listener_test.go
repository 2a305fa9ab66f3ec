package apptier_test

import (
	"testing"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"
)

// TestListenerReconnectEndsStreams: events committed while the app tier's
// LISTEN connection was down are never delivered, so a stream open across
// the gap would leave its page showing old balances with no hint. Once the
// listener is back, open streams end with UNAVAILABLE, so that their
// clients subscribe again and refresh what they show.
func TestListenerReconnectEndsStreams(t *testing.T) {
	b := newBank(t)
	tok := b.signIn("alice", "alice-demo-pass")
	ctx := ctxT(t)
	sub, err := proto.Subscribe(ctx, b.c, wire.Subscribe, wire.SessionRequest{Session: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	// Cut the listener's database session (waiting until it is LISTENing).
	pool := b.srv.Store.Pool()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tag, err := pool.Exec(ctx, `
			SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			 WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'`)
		if err != nil {
			t.Fatal(err)
		}
		if tag.RowsAffected() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no LISTEN session to cut")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := wire.ErrorCode(waitStreamEnd(t, sub, 10*time.Second)); code != wire.Unavailable {
		t.Fatalf("stream ended with %s after the listener reconnected, want UNAVAILABLE", code)
	}
}
