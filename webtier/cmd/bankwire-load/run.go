package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Report is everything a run measured.
type Report struct {
	Target      string     `json:"target"`
	Model       string     `json:"model"`
	TargetRate  float64    `json:"target_rate_per_s,omitempty"`
	RampTo      float64    `json:"ramp_to_per_s,omitempty"`
	Users       int        `json:"users,omitempty"`
	Duration    float64    `json:"duration_s"`
	Elapsed     float64    `json:"elapsed_s"` // until the last operation ended
	Started     int64      `json:"started"`
	Completed   int64      `json:"completed"`
	StartedRate float64    `json:"started_per_s"`  // over the schedule's duration
	Achieved    float64    `json:"achieved_per_s"` // completed over the elapsed time
	Requests    int64      `json:"http_requests"`
	RequestRate float64    `json:"http_requests_per_s"`
	Customers   int        `json:"customers"`
	Ops         []OpReport `json:"operations"`
	Overall     OpReport   `json:"overall"`
	Timeline    []Second   `json:"timeline"`
	Transfers   int        `json:"acknowledged_transfers"`
	Unknown     int        `json:"unknown_outcome_transfers"`
	// Money is nil when the check was not asked for.
	Money *MoneyCheck `json:"money_check,omitempty"`
}

// ErrorRate is the share of operations that failed.
func (r *Report) ErrorRate() float64 {
	if r.Overall.Count == 0 {
		return 0
	}
	return float64(r.Overall.Errors) / float64(r.Overall.Count)
}

// deliveryGrace is how long the run waits at the end for chat messages
// still on their way.
const deliveryGrace = 3 * time.Second

// run sets up the generator's customers, runs the schedule, and reports.
// tick, when not nil, is called about once a second with the live numbers.
func run(ctx context.Context, cfg Config, transport http.RoundTripper, tick func(live)) (*runner, *Report, error) {
	r, err := newRunner(cfg, transport)
	if err != nil {
		return nil, nil, err
	}
	if err := r.setup(ctx); err != nil {
		return r, nil, err
	}
	listenCtx, stopListening := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, l := range r.listeners {
		wg.Add(1)
		go func() { defer wg.Done(); l.run(listenCtx) }()
	}
	defer func() { stopListening(); wg.Wait() }()
	// Messages sent before a listener's stream is open would never
	// arrive: the run starts once every stream is open (or the per
	// request timeout has passed; those that did not open show as "not
	// delivered").
	openBy := time.After(cfg.Timeout)
wait:
	for _, l := range r.listeners {
		select {
		case <-l.connected:
		case <-openBy:
			break wait
		case <-ctx.Done():
			break wait
		}
	}

	start := time.Now()
	r.rec.reset(start)
	tickDone := make(chan struct{})
	stopTick := make(chan struct{})
	go func() {
		defer close(tickDone)
		if tick == nil {
			return
		}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				tick(r.rec.window(5))
			case <-stopTick:
				return
			}
		}
	}()
	r.schedule(ctx)
	close(stopTick)
	<-tickDone
	elapsed := time.Since(start)
	window := cfg.Duration // operations were started over the whole schedule
	if ctx.Err() != nil {
		window = min(elapsed, cfg.Duration)
	}

	deadline := time.Now().Add(deliveryGrace)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		waiting := 0
		for _, l := range r.listeners {
			waiting += l.waiting()
		}
		if waiting == 0 {
			break
		}
		sleepUntil(ctx, time.Now().Add(50*time.Millisecond))
	}
	stopListening()
	wg.Wait()
	for _, l := range r.listeners {
		l.giveUp()
	}

	rep := r.report(elapsed, window)
	if cfg.Check {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		mc := r.check(cctx)
		cancel()
		rep.Money = &mc
	}
	return r, rep, ctx.Err()
}

// report summarizes the run: elapsed runs until the last operation ended,
// window is how long operations were being started.
func (r *runner) report(elapsed, window time.Duration) *Report {
	ops, overall, timeline, started, requests := r.rec.snapshot()
	rep := &Report{
		Target: r.cfg.Target, Model: "open", TargetRate: r.cfg.Rate, RampTo: r.cfg.RampTo,
		Duration: r.cfg.Duration.Seconds(), Elapsed: elapsed.Seconds(),
		Started: started, Completed: overall.Count, Requests: requests,
		Ops: ops, Overall: overall, Timeline: timeline,
	}
	if r.cfg.Users > 0 {
		rep.Model, rep.TargetRate, rep.RampTo, rep.Users = "closed", 0, 0, r.cfg.Users
	}
	if d := window.Seconds(); d > 0 {
		rep.StartedRate = float64(started) / d
	}
	if s := elapsed.Seconds(); s > 0 {
		rep.Achieved = float64(overall.Count) / s
		rep.RequestRate = float64(requests) / s
	}
	r.mu.Lock()
	rep.Customers, rep.Transfers, rep.Unknown = len(r.customers), 0, r.unknown
	for _, t := range r.transfers {
		if !t.funding {
			rep.Transfers++
		}
	}
	r.mu.Unlock()
	return rep
}

// String is the live line: elapsed, rate, errors, recent latency.
func (l live) String(total time.Duration) string {
	return fmt.Sprintf("%s/%s  %6.1f/s  done %d  errors %d  p50 %s  p99 %s (last 5 s)",
		l.elapsed.Truncate(time.Second), total, l.rate, l.completed, l.errors,
		l.p50.Round(100*time.Microsecond), l.p99.Round(100*time.Microsecond))
}
