package proto

import (
	"encoding/binary"
	"testing"
	"time"
)

// The round trip the server subtracts from deadlines is the smallest of the
// last rttSamples samples: one PONG that came late (it waited behind other
// frames, or for a busy client) does not make every request look late, and
// a link that really became slower shows once all the recent samples say so.
func TestRoundTripIsTheMinimumOfRecentSamples(t *testing.T) {
	c := &serverConn{}
	sample := func(d time.Duration) {
		t.Helper()
		c.rtt.pingSent = time.Now().Add(-d)
		c.pongReceived(binary.BigEndian.AppendUint64([]byte(rttPingMagic), uint64(c.rtt.pingSent.UnixNano())))
		if !c.rtt.pingSent.IsZero() {
			t.Fatal("the PONG was not taken as the answer to the outstanding PING")
		}
	}
	near := func(got, want time.Duration) bool { return got >= want && got < want+50*time.Millisecond }

	sample(10 * time.Millisecond)
	if got := c.rtt.est; !near(got, 10*time.Millisecond) {
		t.Fatalf("after one sample: %v, want about 10ms", got)
	}
	sample(2 * time.Second) // one slow PONG
	if got := c.rtt.est; !near(got, 10*time.Millisecond) {
		t.Fatalf("one slow sample moved the estimate to %v", got)
	}
	for range rttSamples {
		sample(300 * time.Millisecond) // the link really is slower now
	}
	if got := c.rtt.est; !near(got, 300*time.Millisecond) {
		t.Fatalf("after %d samples of 300ms: %v", rttSamples, got)
	}
	// A PONG that answers no outstanding PING is not a sample.
	c.rtt.pingSent = time.Now()
	c.pongReceived(binary.BigEndian.AppendUint64([]byte(rttPingMagic), 12345))
	if got := c.rtt.est; !near(got, 300*time.Millisecond) {
		t.Fatalf("a stray PONG changed the estimate to %v", got)
	}
}
