package main

import (
	"testing"
	"time"
)

// TestPercentilesAtSmallCounts: a percentile is the value that at least
// that share of the operations did not exceed. With 60 operations, one of
// them slow, 59 of 60 (98.3%) are fast, so p99 is the slow one; with 6
// operations, one slow, 5 of 6 (83%) are fast, so p90 is the slow one;
// with 600, 599 (99.83%), so p99.9 is the slow one.
func TestPercentilesAtSmallCounts(t *testing.T) {
	for _, tc := range []struct {
		n    int
		get  func(Latency) float64
		name string
	}{
		{60, func(l Latency) float64 { return l.P99 }, "p99"},
		{6, func(l Latency) float64 { return l.P90 }, "p90"},
		{600, func(l Latency) float64 { return l.P999 }, "p99.9"},
	} {
		start := time.Date(2031, 3, 4, 12, 0, 0, 0, time.UTC)
		now := start
		rec := newRecorder(start, func() time.Time { return now })
		for range tc.n - 1 {
			rec.record(opOverview, 10*time.Millisecond, outcomeOK, "")
		}
		rec.record(opOverview, 5*time.Second, outcomeOK, "")
		_, overall, timeline, _, _ := rec.snapshot()
		if got := tc.get(overall.Latency); got < 4990 {
			t.Errorf("%d operations, one of 5 s: %s %.1f ms, want about 5000 ms", tc.n, tc.name, got)
		}
		if tc.name == "p99" {
			if got := timeline[0].P99; got < 4900 {
				t.Errorf("%d operations in one second, one of 5 s: timeline p99 %.1f ms, want about 5000 ms", tc.n, got)
			}
			now = start.Add(time.Second)
			if l := rec.window(5); l.p99 < 4900*time.Millisecond {
				t.Errorf("%d operations in the last second, one of 5 s: live p99 %v, want about 5 s", tc.n, l.p99)
			}
		}
	}
}
