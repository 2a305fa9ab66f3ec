package main

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"bankwire/apptier/apptiertest"
	"bankwire/proto"
	"bankwire/proto/wire"
)

// Three app tiers on one database behind one web tier, as compose's
// --scale apptier=3 runs them: the web tier's client spreads the load over
// the three endpoints and, on a machine too busy to answer at once, must
// not take a slow app tier for a dead one. Every error must be a 503,
// and few; every app tier must serve.
func TestRunAgainstThreeAppTiers(t *testing.T) {
	clock := apptiertest.NewClock(time.Date(2031, 3, 4, 12, 0, 0, 0, time.UTC))
	var served [3]atomic.Int64
	var addrs []string
	var first *apptiertest.Server
	for i := range served {
		opts := []apptiertest.Option{apptiertest.WithClock(clock.Now), apptiertest.WithServerConfig(func(c *proto.ServerConfig) {
			c.Observe = func(wire.Op, wire.Code, time.Duration) { served[i].Add(1) }
		})}
		if first != nil {
			opts = append(opts, apptiertest.WithStore(first.Store), apptiertest.WithoutDemoData())
		}
		app := apptiertest.Start(t, opts...)
		if first == nil {
			first = app
		}
		addrs = append(addrs, app.Addr)
	}
	url := startWebTier(t, addrs, first.Secret)

	lcfg := testConfig(url)
	lcfg.Rate, lcfg.Duration = 20, 3*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, rep, err := run(ctx, lcfg, nil, func(live) {})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var text bytes.Buffer
	_ = writeText(&text, rep)
	t.Logf("report:\n%s", text.String())
	checkCounts(t, rep)
	if n := rep.Overall.ByKind["http 503"]; rep.Overall.Errors != n || n > rep.Overall.Count/5 {
		t.Errorf("three app tiers gave errors other than a few 503s (%d of %d operations)", rep.Overall.Errors, rep.Overall.Count)
	}
	if rep.Money == nil || !rep.Money.Passed {
		t.Errorf("money check: %+v", rep.Money)
	}
	for i := range served {
		if served[i].Load() == 0 {
			t.Errorf("app tier %d served no request", i+1)
		}
	}
	t.Logf("requests served by the three app tiers: %d, %d, %d", served[0].Load(), served[1].Load(), served[2].Load())
}
