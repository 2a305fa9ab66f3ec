package apptier

import (
	"fmt"
	"testing"
	"time"
)

// TestKeyedLimiterIsBounded: a flood of distinct keys (spoofed client
// addresses) never makes the limiter remember more than its bound, and a
// key's allowance survives while it is busy.
func TestKeyedLimiterIsBounded(t *testing.T) {
	now := time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)
	l := newKeyedLimiter(2, time.Minute, 100)
	if !l.allow("busy", now) || !l.allow("busy", now) || l.allow("busy", now) {
		t.Fatal("the third event within the window was allowed")
	}
	for i := 0; i < 10_000; i++ {
		now = now.Add(time.Millisecond)
		l.allow(fmt.Sprintf("flood-%d", i), now)
		if n := len(l.keys); n > 100 {
			t.Fatalf("%d keys remembered, bound 100", n)
		}
	}
	now = now.Add(time.Minute)
	if !l.allow("busy", now) {
		t.Fatal("the allowance did not come back after the window")
	}
}
