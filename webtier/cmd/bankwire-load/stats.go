package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 5 minutes, with three
// significant digits for the run's totals and two for the per-second
// buckets of the timeline and the live view.
const (
	histMin     = 1
	histMax     = int64(5 * time.Minute / time.Microsecond)
	histSigFigs = 3
	tickSigFigs = 2
)

// outcome is how one operation ended.
type outcome int

const (
	outcomeOK       outcome = iota
	outcomeRejected         // the bank said no as it should (an overdraft)
	outcomeError
)

// Error kinds. HTTP statuses are "http NNN".
const (
	kindTimeout      = "timeout"
	kindConnection   = "connection"
	kindBadPage      = "unexpected page"
	kindNotDelivered = "not delivered"
	kindNoCustomer   = "no customer"
)

// classify names the kind of a failed request.
func classify(err error) string {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return fmt.Sprintf("http %d", he.status)
	case errors.Is(err, errBadPage):
		return kindBadPage
	case errors.Is(err, errNoCustomer):
		return kindNoCustomer
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return kindTimeout
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Timeout() {
		return kindTimeout
	}
	return kindConnection
}

type opStats struct {
	hist     *hdrhistogram.Histogram
	count    int64
	ok       int64
	rejected int64
	errors   map[string]int64
}

func newOpStats() *opStats {
	return &opStats{hist: hdrhistogram.New(histMin, histMax, histSigFigs), errors: map[string]int64{}}
}

// tick is one second of the run, by completion time.
type tick struct {
	hist   *hdrhistogram.Histogram
	count  int64
	errors int64
}

// recorder collects every operation's outcome. Safe for concurrent use.
type recorder struct {
	start time.Time
	now   func() time.Time

	mu       sync.Mutex
	ops      map[string]*opStats
	overall  *opStats
	ticks    []*tick
	started  int64
	requests int64
}

func newRecorder(start time.Time, now func() time.Time) *recorder {
	return &recorder{start: start, now: now, ops: map[string]*opStats{}, overall: newOpStats()}
}

// reset starts the run's clock again and forgets the requests so far
// (those of the setup).
func (r *recorder) reset(start time.Time) {
	r.mu.Lock()
	r.start, r.requests = start, 0
	r.mu.Unlock()
}

// began counts an operation dispatched by the schedule.
func (r *recorder) began() {
	r.mu.Lock()
	r.started++
	r.mu.Unlock()
}

// request counts one HTTP request.
func (r *recorder) request() {
	r.mu.Lock()
	r.requests++
	r.mu.Unlock()
}

// record stores one finished operation; latency runs from its intended start.
func (r *recorder) record(op string, latency time.Duration, o outcome, errKind string) {
	us := max(latency.Microseconds(), histMin)
	us = min(us, histMax)
	done := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.ops[op]
	if st == nil {
		st = newOpStats()
		r.ops[op] = st
	}
	for _, s := range []*opStats{st, r.overall} {
		s.count++
		_ = s.hist.RecordValue(us)
		switch o {
		case outcomeOK:
			s.ok++
		case outcomeRejected:
			s.rejected++
		default:
			s.errors[errKind]++
		}
	}
	sec := max(int(done.Sub(r.start)/time.Second), 0)
	for len(r.ticks) <= sec {
		r.ticks = append(r.ticks, &tick{hist: hdrhistogram.New(histMin, histMax, tickSigFigs)})
	}
	t := r.ticks[sec]
	t.count++
	_ = t.hist.RecordValue(us)
	if o == outcomeError {
		t.errors++
	}
}

// live is what the progress display shows.
type live struct {
	elapsed   time.Duration
	completed int64
	errors    int64
	rate      float64 // completions per second over the window
	p50, p99  time.Duration
}

// window summarizes the last n whole seconds and the run so far.
func (r *recorder) window(n int) live {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	l := live{elapsed: now.Sub(r.start), completed: r.overall.count}
	for _, c := range r.overall.errors {
		l.errors += c
	}
	cur := int(l.elapsed / time.Second)
	h := hdrhistogram.New(histMin, histMax, tickSigFigs)
	var count int64
	secs := 0
	for s := cur - n; s < cur; s++ {
		if s < 0 {
			continue
		}
		secs++
		if s < len(r.ticks) {
			h.Merge(r.ticks[s].hist)
			count += r.ticks[s].count
		}
	}
	if secs > 0 {
		l.rate = float64(count) / float64(secs)
	}
	if h.TotalCount() > 0 {
		l.p50 = time.Duration(quantile(h, 50)) * time.Microsecond
		l.p99 = time.Duration(quantile(h, 99)) * time.Microsecond
	}
	return l
}

// Latency is a latency summary in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p99_9_ms"`
	Max  float64 `json:"max_ms"`
}

// OpReport is one operation's line of the report.
type OpReport struct {
	Name     string           `json:"name"`
	Count    int64            `json:"count"`
	OK       int64            `json:"ok"`
	Rejected int64            `json:"rejected"`
	Errors   int64            `json:"errors"`
	ByKind   map[string]int64 `json:"errors_by_kind,omitempty"`
	Latency  Latency          `json:"latency"`
}

// Second is one second of the run's timeline.
type Second struct {
	At         int     `json:"t"`
	Throughput int64   `json:"completed"`
	Errors     int64   `json:"errors"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
}

func ms(us int64) float64 { return float64(us) / 1000 }

// quantile is the q-th percentile of h by nearest rank: the smallest
// recorded value that at least q% of the values do not exceed. (The
// histogram's own ValueAtQuantile rounds the rank to the nearest count, so
// with 60 values its p99 is the 59th and leaves the slowest one out.)
func quantile(h *hdrhistogram.Histogram, q float64) int64 {
	n := h.TotalCount()
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q*float64(n)/100 - 1e-9))
	rank = min(max(rank, 1), n)
	return h.ValueAtQuantile(100 * float64(rank) / float64(n))
}

func summarize(name string, s *opStats) OpReport {
	o := OpReport{Name: name, Count: s.count, OK: s.ok, Rejected: s.rejected, ByKind: map[string]int64{}}
	for k, c := range s.errors {
		o.ByKind[k] = c
		o.Errors += c
	}
	if s.count > 0 {
		o.Latency = Latency{
			P50: ms(quantile(s.hist, 50)), P90: ms(quantile(s.hist, 90)),
			P99: ms(quantile(s.hist, 99)), P999: ms(quantile(s.hist, 99.9)),
			Max: ms(s.hist.Max()),
		}
	}
	return o
}

// snapshot returns per-operation summaries (sorted by name), the overall
// one, the timeline, and the dispatch and request counts.
func (r *recorder) snapshot() (ops []OpReport, overall OpReport, timeline []Second, started, requests int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.ops))
	for n := range r.ops {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ops = append(ops, summarize(n, r.ops[n]))
	}
	overall = summarize("overall", r.overall)
	for i, t := range r.ticks {
		s := Second{At: i, Throughput: t.count, Errors: t.errors}
		if t.count > 0 {
			s.P50, s.P99 = ms(quantile(t.hist, 50)), ms(quantile(t.hist, 99))
		}
		timeline = append(timeline, s)
	}
	return ops, overall, timeline, r.started, r.requests
}
