package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"bankwire/apptier/apptiertest"
	"bankwire/proto"
	"bankwire/proto/wire"
	"bankwire/store/storetest"
	"bankwire/webtier"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// startStack runs the whole bank in process: an app tier on a real
// PostgreSQL (with the demo customers, who fund the generator's), a stopped
// clock, and a web tier with its default per-IP limits that trusts
// forwarded addresses from 127.0.0.1 only, as the compose load profile does
// for its own network.
func startStack(t *testing.T) (*apptiertest.Server, string) {
	t.Helper()
	clock := apptiertest.NewClock(time.Date(2031, 3, 4, 12, 0, 0, 0, time.UTC))
	app := apptiertest.Start(t, apptiertest.WithClock(clock.Now))
	return app, startWebTier(t, []string{app.Addr}, app.Secret)
}

// startWebTier serves a web tier in front of the app tiers at addrs and
// returns its URL.
func startWebTier(t *testing.T, addrs []string, secret string) string {
	t.Helper()
	cfg := webtier.DefaultConfig()
	cfg.AppTierAddrs = addrs
	cfg.AppTierSecret = secret
	cfg.TrustedProxies = []string{"127.0.0.1"}
	cfg.StreamKeepAlive = time.Second
	// A busy test machine (and -race) must not turn into 503s on a healthy
	// stack; a stopped app tier still fails fast (connection refused).
	cfg.CallTimeout = 10 * time.Second
	cfg.AuthCallTimeout = 30 * time.Second
	logger := slog.New(slog.DiscardHandler)
	client, err := webtier.NewClient(cfg, logger)
	if err != nil {
		t.Fatalf("webtier.NewClient: %v", err)
	}
	web, err := webtier.New(cfg, client, logger)
	if err != nil {
		t.Fatalf("webtier.New: %v", err)
	}
	srv := httptest.NewUnstartedServer(web)
	srv.Config.RegisterOnShutdown(web.CloseStreams)
	srv.Start()
	t.Cleanup(func() {
		web.CloseStreams()
		srv.Close()
		client.Close()
	})
	return srv.URL
}

func testConfig(target string) Config {
	cfg := DefaultConfig()
	cfg.Target = target
	cfg.Rate = 20
	cfg.Duration = 3 * time.Second
	cfg.Customers = 10
	cfg.Listeners = 1
	cfg.Timeout = 30 * time.Second
	// Every operation equally likely, so a short run sees each of them.
	cfg.Mix, _ = parseMix("signup=1,signin=1,overview=1,history=1,transfer=1,payee=1,chat=1,signout=1")
	return cfg
}

// checkCounts checks that the report adds up and its percentiles are in
// order.
func checkCounts(t *testing.T, rep *Report) {
	t.Helper()
	var sum, errs int64
	for _, o := range append(append([]OpReport(nil), rep.Ops...), rep.Overall) {
		var kinds int64
		for _, c := range o.ByKind {
			kinds += c
		}
		if o.Count != o.OK+o.Rejected+o.Errors || o.Errors != kinds {
			t.Errorf("%s: count %d != ok %d + rejected %d + errors %d (by kind %d)", o.Name, o.Count, o.OK, o.Rejected, o.Errors, kinds)
		}
		l := o.Latency
		if o.Count > 0 && !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
			t.Errorf("%s: percentiles out of order: %+v", o.Name, l)
		}
		if o.Name != "overall" {
			sum += o.Count
			errs += o.Errors
		}
	}
	if sum != rep.Overall.Count || errs != rep.Overall.Errors {
		t.Errorf("operations add up to %d (%d errors), overall says %d (%d)", sum, errs, rep.Overall.Count, rep.Overall.Errors)
	}
	var timeline int64
	for _, s := range rep.Timeline {
		timeline += s.Throughput
	}
	if timeline != rep.Overall.Count {
		t.Errorf("timeline holds %d operations, overall %d", timeline, rep.Overall.Count)
	}
	if rep.Completed != rep.Overall.Count {
		t.Errorf("completed %d, overall %d", rep.Completed, rep.Overall.Count)
	}
}

func opCount(rep *Report, name string) int64 {
	for _, o := range rep.Ops {
		if o.Name == name {
			return o.Count
		}
	}
	return 0
}

func opOK(rep *Report, name string) int64 {
	for _, o := range rep.Ops {
		if o.Name == name {
			return o.OK
		}
	}
	return 0
}

func TestRunAgainstInProcessStack(t *testing.T) {
	_, url := startStack(t)
	cfg := testConfig(url)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ticks := 0
	_, rep, err := run(ctx, cfg, nil, func(live) { ticks++ })
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	checkCounts(t, rep)
	// The schedule starts exactly rate × duration operations; every one of
	// them ends in the report (chat deliveries come on top).
	if rep.Started != 60 || rep.StartedRate != 20 {
		t.Errorf("started %d operations (%.2f/s), want 60 (20/s)", rep.Started, rep.StartedRate)
	}
	if got := rep.Overall.Count - opCount(rep, opChatDelivery); got != rep.Started {
		t.Errorf("%d operations finished, %d started", got, rep.Started)
	}
	// A healthy stack answers every scenario the generator plays. The one
	// error it may give is the site's own "briefly unavailable" (503): on a
	// CI machine running every package under the race detector, the web
	// tier can find its app tier too slow to answer a probe. Any other
	// error means the generator drove the site wrongly.
	if n := rep.Overall.ByKind["http 503"]; rep.Overall.Errors != n || n > rep.Overall.Count/5 {
		var buf bytes.Buffer
		_ = writeText(&buf, rep)
		t.Errorf("a healthy stack gave errors other than a few 503s:\n%s", buf.String())
	}
	if rep.Money == nil || !rep.Money.Passed {
		t.Fatalf("money check: %+v", rep.Money)
	}
	if rep.Money.Expected != int64(cfg.Customers)*cfg.Fund || rep.Money.Acknowledged <= cfg.Customers {
		t.Errorf("money check saw %s sent and %d acknowledged transfers; want %s and more than the %d fundings",
			formatMinor(rep.Money.Expected), rep.Money.Acknowledged, formatMinor(int64(cfg.Customers)*cfg.Fund), cfg.Customers)
	}
	if sent, got := opOK(rep, opChatSend), opOK(rep, opChatDelivery); sent == 0 || got < sent {
		t.Errorf("chat: %d sent, %d delivered on the live stream", sent, got)
	}
	if rep.Achieved <= 0 || rep.RequestRate <= rep.Achieved {
		t.Errorf("achieved %.1f/s with %.1f requests/s", rep.Achieved, rep.RequestRate)
	}
	if ticks == 0 {
		t.Error("no progress during the run")
	}

	var text, js, page bytes.Buffer
	if err := writeText(&text, rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", text.String())
	if !strings.Contains(text.String(), "money check PASSED") || !strings.Contains(text.String(), "transfer") {
		t.Errorf("text report:\n%s", text.String())
	}
	if err := writeJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Overall.Count != rep.Overall.Count || back.Money == nil {
		t.Errorf("JSON report does not read back (%v): %s", err, js.String())
	}
	if err := writeHTML(&page, rep); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	if strings.Count(html, "<svg") != 2 || strings.Count(html, "<polyline") != 4 {
		t.Errorf("HTML report lacks its two plots:\n%s", html)
	}
	for _, outside := range []string{"<script", "src=", "<link", "@import"} {
		if strings.Contains(html, outside) {
			t.Errorf("HTML report loads something (%q); it must be self-contained", outside)
		}
	}
}

func TestClosedModel(t *testing.T) {
	_, url := startStack(t)
	cfg := testConfig(url)
	cfg.Users, cfg.Think, cfg.Duration = 3, 50*time.Millisecond, 2*time.Second
	cfg.Mix, _ = parseMix("overview=2,history=1,transfer=2,payee=1")
	cfg.Listeners = 0
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, rep, err := run(ctx, cfg, nil, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	checkCounts(t, rep)
	if rep.Model != "closed" || rep.Users != 3 || rep.Started == 0 || rep.Started != rep.Overall.Count {
		t.Errorf("closed model: %s, %d users, %d started, %d finished", rep.Model, rep.Users, rep.Started, rep.Overall.Count)
	}
	if rep.Overall.Errors != 0 || rep.Money == nil || !rep.Money.Passed {
		t.Errorf("closed model on a healthy stack: %d errors, money %+v", rep.Overall.Errors, rep.Money)
	}
}

// waitTick waits (bounded) until the live numbers satisfy ok.
func waitTick(t *testing.T, ticks <-chan live, what string, ok func(live) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l := <-ticks:
			if ok(l) {
				return
			}
		case <-deadline:
			t.Fatalf("waited 30 s for %s", what)
		}
	}
}

func TestAppTierStoppedMidRun(t *testing.T) {
	app, url := startStack(t)
	cfg := testConfig(url)
	cfg.Duration = 6 * time.Second
	cfg.Check = false // checked below, once the app tier is back
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	ticks := make(chan live, 1)
	type result struct {
		r   *runner
		rep *Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, rep, err := run(ctx, cfg, nil, func(l live) {
			select {
			case ticks <- l:
			default:
			}
		})
		done <- result{r, rep, err}
	}()
	waitTick(t, ticks, "operations before the outage", func(l live) bool { return l.completed >= 10 })
	app.Stop()
	waitTick(t, ticks, "errors during the outage", func(l live) bool { return l.errors >= 3 })
	app.Restart()

	var res result
	select {
	case res = <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("the run did not end")
	}
	if res.err != nil {
		t.Fatalf("run: %v", res.err)
	}
	rep := res.rep
	var text bytes.Buffer
	_ = writeText(&text, rep)
	t.Logf("report:\n%s", text.String())
	checkCounts(t, rep)
	if rep.Overall.Errors == 0 {
		t.Fatal("the outage left no errors in the report")
	}
	outageKinds := 0
	for kind, n := range rep.Overall.ByKind {
		if kind == "http 503" || kind == kindConnection || kind == kindTimeout || kind == kindNotDelivered {
			outageKinds += int(n)
		}
	}
	if outageKinds == 0 {
		t.Errorf("errors by kind do not show the outage: %v", rep.Overall.ByKind)
	}

	// No money went missing: the check passes, through the site.
	cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
	defer ccancel()
	mc := res.r.check(cctx)
	if !mc.Passed {
		t.Fatalf("money check after the outage: %+v", mc)
	}

	// Now money really goes missing: one of the generator's customers pays
	// alice behind the generator's back. The check must say so.
	c := app.Client(t)
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	aliceToken := app.SignIn(t, c, "alice", "alice-demo-pass")
	alice, err := proto.Call(pctx, c, wire.AccountsList, wire.SessionRequest{Session: aliceToken})
	if err != nil {
		t.Fatal(err)
	}
	var payer *customer
	var from string
	var token string
	for _, cu := range res.r.customers {
		token = app.SignIn(t, c, cu.username, cu.password)
		accts, err := proto.Call(pctx, c, wire.AccountsList, wire.SessionRequest{Session: token})
		if err != nil {
			t.Fatal(err)
		}
		if accts.Accounts[0].Balance >= 100 {
			payer, from = cu, accts.Accounts[0].Number
			break
		}
	}
	if payer == nil {
		t.Fatal("no generator customer has 1.00 left")
	}
	if _, err := proto.Call(pctx, c, wire.TransferCreate, wire.TransferRequest{
		SessionRequest: wire.SessionRequest{Session: token}, IdempotencyKey: "behind-the-generators-back",
		From: from, To: alice.Accounts[0].Number, Amount: "1.00",
	}); err != nil {
		t.Fatalf("transfer to alice: %v", err)
	}
	mc = res.r.check(cctx)
	if mc.Passed || mc.Expected-mc.Actual != 100 {
		t.Fatalf("money check after 1.00 left the generator's customers: %+v", mc)
	}
}

// TestHistoryPaging walks alice's demo history (many pages) through the
// site as the money check does, and compares it with the app tier's own
// pages.
func TestHistoryPaging(t *testing.T) {
	app, url := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := newRunner(testConfig(url), nil)
	if err != nil {
		t.Fatal(err)
	}
	alice := &customer{username: "alice", password: "alice-demo-pass", b: r.newBrowser()}
	if err := r.signIn(ctx, alice); err != nil {
		t.Fatal(err)
	}
	c := app.Client(t)
	token := app.SignIn(t, c, "alice", "alice-demo-pass")
	accts, err := proto.Call(ctx, c, wire.AccountsList, wire.SessionRequest{Session: token})
	if err != nil {
		t.Fatal(err)
	}
	number := accts.Accounts[0].Number
	want := map[int64]int{}
	cursor := ""
	for range 1000 {
		h, err := proto.Call(ctx, c, wire.AccountHistory, wire.HistoryRequest{
			SessionRequest: wire.SessionRequest{Session: token}, Number: number, Cursor: cursor, Limit: 50,
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range h.Entries {
			want[e.TransferID]++
		}
		if cursor = h.NextCursor; cursor == "" {
			break
		}
	}
	if len(want) <= 20 {
		t.Fatalf("alice's history has %d transfers; the test needs more than one page", len(want))
	}
	got, err := r.history(ctx, alice.b, number)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("walked %d transfers through the site, the app tier has %d", len(got), len(want))
	}
	for id, n := range want {
		if got[id] != n {
			t.Errorf("transfer %d: %d times through the site, %d at the app tier", id, got[id], n)
		}
	}
}

func TestParseMoney(t *testing.T) {
	for in, want := range map[string]int64{"$1,234.56": 123456, "−$12.00": -1200, "$0.07": 7, "10.00": 1000} {
		if got, err := parseMoney(in); err != nil || got != want {
			t.Errorf("parseMoney(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "$12", "$1.5", "abc"} {
		if _, err := parseMoney(bad); err == nil {
			t.Errorf("parseMoney(%q) did not fail", bad)
		}
	}
}

func TestSchedule(t *testing.T) {
	r := &runner{cfg: Config{Rate: 10, Duration: 10 * time.Second}}
	if got := r.offset(25); got != 2500*time.Millisecond {
		t.Errorf("constant 10/s: arrival 25 at %v, want 2.5s", got)
	}
	// A ramp from 0 to 10/s over 10 s has 50 arrivals; half of them come
	// in the last 30% of the time.
	r.cfg = Config{Rate: 0, RampTo: 10, Duration: 10 * time.Second}
	if got := r.offset(50); got < 9999*time.Millisecond || got > 10001*time.Millisecond {
		t.Errorf("ramp: arrival 50 at %v, want 10s", got)
	}
	if got := r.offset(25); got < 7070*time.Millisecond || got > 7072*time.Millisecond {
		t.Errorf("ramp: arrival 25 at %v, want √50 ≈ 7.071s", got)
	}
}

func TestParseArgs(t *testing.T) {
	env := map[string]string{"LOAD_TARGET": "http://webtier-load:8080", "LOAD_RATE": "50"}
	cfg, opt, err := parseArgs([]string{"-duration", "20s", "-fund", "5", "-mix", "overview=1,transfer=1", "-max-error-rate", "0.01"},
		func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Target != "http://webtier-load:8080" || cfg.Rate != 50 || cfg.Duration != 20*time.Second ||
		cfg.Fund != 500 || len(cfg.Mix) != 2 || opt.maxErrorRate != 0.01 || len(cfg.Funders) != 2 {
		t.Errorf("parsed %+v %+v", cfg, opt)
	}
	for _, bad := range [][]string{{"-mix", "teleport=3"}, {"-rate", "0"}, {"-customers", "1"}, {"-fund", "lots"}, {"-progress", "fancy"}} {
		if _, _, err := parseArgs(bad, func(string) string { return "" }, &bytes.Buffer{}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
