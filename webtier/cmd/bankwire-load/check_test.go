package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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

// fakeBank serves the overview and history pages the money check reads,
// for customers told apart by their client address.
type fakeBank struct {
	mu       sync.Mutex
	accounts map[string]fakeAccount // client address → its account
	fail     map[string]int         // path → how many more times it answers 503
}

type fakeAccount struct {
	number  string
	balance int64
	entries []int64 // transfer ids in its history
}

func (f *fakeBank) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	f.mu.Lock()
	a, ok := f.accounts[req.Header.Get("X-Forwarded-For")]
	fail := f.fail[req.URL.Path] > 0
	if fail {
		f.fail[req.URL.Path]--
	}
	f.mu.Unlock()
	switch {
	case fail:
		http.Error(w, "briefly unavailable", http.StatusServiceUnavailable)
	case !ok:
		http.Redirect(w, req, "/signin", http.StatusSeeOther)
	case req.URL.Path == "/accounts":
		fmt.Fprintf(w, `<a class="account-card account-checking" href="/accounts/%s">
      <span class="account-kind">Checking</span>
      <span class="account-balance" data-balance-for="%s">%s</span></a>`, a.number, a.number, siteMoney(a.balance))
	case req.URL.Path == "/accounts/"+a.number:
		for _, id := range a.entries {
			fmt.Fprintf(w, `<a class="entry-title" href="/transfers/%d">To 1</a>`+"\n", id)
		}
	default:
		http.NotFound(w, req)
	}
}

// siteMoney writes an amount as the site does: "$1.00", "−$1.00".
func siteMoney(v int64) string {
	if v < 0 {
		return "−$" + formatMinor(-v)
	}
	return "$" + formatMinor(v)
}

// fakeRun is a runner after a run against f: customers ann (account 100)
// and ben (200), each funded 10.00 (transfers 1 and 2), and ann sent ben
// 1.00 (transfer 3), which the site acknowledged.
func fakeRun(t *testing.T, f *fakeBank, annBalance, benBalance int64, annEntries, benEntries []int64) *runner {
	t.Helper()
	r := runnerFor(t, f, 5*time.Second)
	ann := &customer{username: "ann", checking: "100", b: r.newBrowser()}
	ben := &customer{username: "ben", checking: "200", b: r.newBrowser()}
	f.mu.Lock()
	f.accounts = map[string]fakeAccount{
		ann.b.ip: {"100", annBalance, annEntries},
		ben.b.ip: {"200", benBalance, benEntries},
	}
	f.mu.Unlock()
	r.customers = []*customer{ann, ben}
	r.transfers = []ackTransfer{
		{id: 1, from: "9", to: "100", amount: 1000, funding: true},
		{id: 2, from: "9", to: "200", amount: 1000, funding: true},
		{id: 3, from: "100", to: "200", amount: 100},
	}
	r.funded = 2000
	return r
}

// TestMoneyCheckFindsATransferMadeTwice: the site acknowledged one
// transfer from ann to ben, and no outcome stayed unknown, yet both
// histories hold a second one (the bank made the transfer twice, say
// when Confirm was pressed again with the same key). The customers still
// hold together what they were sent, but ann lost 1.00 she never sent.
func TestMoneyCheckFindsATransferMadeTwice(t *testing.T) {
	f := &fakeBank{}
	r := fakeRun(t, f, 800, 1200, []int64{4, 3, 1}, []int64{4, 3, 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if mc := r.check(ctx); mc.Passed {
		t.Fatalf("money check passed with a transfer made twice: %+v", mc)
	}
	// With one outcome unknown, the second transfer may be that one.
	r.unknown = 1
	if mc := r.check(ctx); !mc.Passed {
		t.Fatalf("money check failed with a transfer whose outcome was unknown: %+v", mc)
	}
}

// TestMoneyCheckThroughABriefOutage: the site says "briefly unavailable"
// once for an overview and once for a history page while the check reads
// them. Nothing went missing; the check must not say it did.
func TestMoneyCheckThroughABriefOutage(t *testing.T) {
	f := &fakeBank{fail: map[string]int{"/accounts": 1, "/accounts/200": 1}}
	r := fakeRun(t, f, 900, 1100, []int64{3, 1}, []int64{3, 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if mc := r.check(ctx); !mc.Passed {
		t.Fatalf("money check failed through a brief outage: %+v", mc)
	}
	// A site that stays down cannot be checked; that is no proof that
	// money went missing.
	f.mu.Lock()
	f.fail = map[string]int{"/accounts": 1000}
	f.mu.Unlock()
	mc := r.check(ctx)
	if mc.Passed {
		t.Fatalf("money check passed without reading a balance: %+v", mc)
	}
	for _, p := range mc.Problems {
		if strings.Contains(p, "missing") {
			t.Errorf("money check with no balance read says %q", p)
		}
	}
}

// TestMoneyCheckSaysWhenMoneyAppeared: the customers hold 0.50 more than
// they were sent. The check must say that 0.50 appeared, in an amount a
// person can read.
func TestMoneyCheckSaysWhenMoneyAppeared(t *testing.T) {
	r := fakeRun(t, &fakeBank{}, 900, 1150, []int64{3, 1}, []int64{3, 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mc := r.check(ctx)
	if mc.Passed || len(mc.Problems) != 1 || !strings.Contains(mc.Problems[0], "0.50 more") {
		t.Fatalf("money check with 0.50 too much: %+v", mc)
	}
	for in, want := range map[int64]string{-50: "-0.50", -150: "-1.50", 7: "0.07", 123456: "1234.56"} {
		if got := formatMinor(in); got != want {
			t.Errorf("formatMinor(%d) = %q, want %q", in, got, want)
		}
	}
}

// TestMoneyCheckFindsANegativeBalance: the bank let ann send more than
// she had. The customers still hold together what they were sent, but no
// account may go below zero.
func TestMoneyCheckFindsANegativeBalance(t *testing.T) {
	r := fakeRun(t, &fakeBank{}, -100, 2100, []int64{3, 1}, []int64{3, 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if mc := r.check(ctx); mc.Passed {
		t.Fatalf("money check passed with an account at -1.00: %+v", mc)
	}
}

// TestMoneyCheckGivesUpOnASiteThatDoesNotAnswer: at the end of a run the
// site takes connections but answers nothing. The check must not wait a
// full request timeout for every one of the customers: with the default
// 40 customers and 10 s that is the check's whole five minutes, which a
// second Ctrl-C does not cut short.
func TestMoneyCheckGivesUpOnASiteThatDoesNotAnswer(t *testing.T) {
	var mu sync.Mutex
	requests := 0
	r := runnerFor(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		requests++
		mu.Unlock()
		<-req.Context().Done()
	}), 100*time.Millisecond)
	for i := range 20 {
		r.customers = append(r.customers, &customer{username: fmt.Sprintf("c%d", i), b: r.newBrowser()})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mc := r.check(ctx)
	mu.Lock()
	n := requests
	mu.Unlock()
	if mc.Passed || n > 5 {
		t.Fatalf("money check against a silent site: %d requests, %+v", n, mc)
	}
}

// TestExitStatus: -h lists the flags and is no bad usage (exit 0); a bad
// flag is 2; a target where nothing listens is a run that could not be
// done (1).
func TestExitStatus(t *testing.T) {
	none := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"-h"}, 0},
		{[]string{"-rate", "-1"}, 2},
		{[]string{"-target", "http://127.0.0.1:1", "-progress", "off", "-timeout", "2s"}, 1},
	} {
		var out, errs strings.Builder
		if got := realMain(context.Background(), tc.args, none, &out, &errs, false); got != tc.want {
			t.Errorf("%q: exit %d, want %d\n%s%s", tc.args, got, tc.want, out.String(), errs.String())
		}
	}
}

// TestPayeeWhenEveryoneIsAPayeeAlready: ann already has ben, the only
// other customer, as a payee. A payee operation then renames one; it is
// not a refusal by the bank ("rejected") when nothing was asked of it.
func TestPayeeWhenEveryoneIsAPayeeAlready(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	r := runnerFor(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		asked = append(asked, req.Method+" "+req.URL.Path)
		mu.Unlock()
		switch {
		case req.Method == http.MethodPost:
			http.Redirect(w, req, "/payees", http.StatusSeeOther)
		case req.URL.Path == "/payees":
			fmt.Fprint(w, `<form method="post" action="/payees/5/rename"></form>`)
		default:
			http.NotFound(w, req)
		}
	}), 5*time.Second)
	r.numbers = []string{"100", "200"}
	ann := &customer{username: "ann", checking: "100", b: r.newBrowser(),
		payees: []int64{5}, payeeNumbers: map[string]bool{"200": true}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 3 {
		o, err := r.customerScenario(ctx, opPayee, ann)
		if o != outcomeOK || err != nil {
			t.Errorf("payee operation: outcome %d, %v; want ok", o, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 6 || asked[0] != "POST /payees/5/rename" {
		t.Errorf("asked the site %q; want a rename and the payees page, three times", asked)
	}
}

// runnerFor is a runner whose target is a test server answering with h.
func runnerFor(t *testing.T, h http.Handler, timeout time.Duration) *runner {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := DefaultConfig()
	cfg.Target, cfg.Timeout = srv.URL, timeout
	r, err := newRunner(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
