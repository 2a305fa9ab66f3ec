package webtier_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"bankwire/apptier/apptiertest"
	"bankwire/store"
	"bankwire/store/storetest"
	"bankwire/webtier"
)

// outcome is what a customer saw after pressing "Confirm and send".
type outcome int

const (
	made      outcome = iota // redirect to the transfer's result page
	refused                  // the form again with the reason (422)
	unknown                  // the confirm-again page with the same key (503)
	violation                // anything else: a generic error page, a 500, a lost session
)

func (o outcome) String() string { return [...]string{"made", "refused", "unknown", "violation"}[o] }

// submission is one press of "Confirm and send".
type submission struct {
	b          *browser
	key        string
	start, end time.Time
	outcome    outcome
	status     int
	transferID int64
	detail     string
}

// fault is one injected failure: inject it, wait hold, heal it.
type fault struct {
	name    string
	inject  func()
	hold    time.Duration
	heal    func()
	started time.Time
	healed  time.Time
}

// TestFaultsNeverPayTwice runs concurrent transfers through the real web
// tier, app tier and PostgreSQL, with a TCP proxy of the test's own between
// web and app tier and another between app tier and PostgreSQL, and injects
// each fault once: the app tier stopped and restarted, the web↔app link
// reset, the web↔app link black-holed, the database connections reset at
// TCP, the app↔database link black-holed, and every database session
// terminated by PostgreSQL (57P01). Afterwards:
//   - every submit that did not succeed got a refusal or the confirm-again
//     page with its key, never a generic error page or a 500;
//   - every key whose outcome stayed unknown resolves as made or not made,
//     and the database agrees;
//   - every acknowledged transfer is in the database exactly once, the
//     number of transfers equals acknowledged plus resolved-as-made, every
//     transfer's two ledger entries sum to zero, every balance equals its
//     ledger and the total of all balances did not change.
//
// Per fault it logs failed submits, time from heal to the first success and
// the worst latency (measurements, not assertions).
func TestFaultsNeverPayTwice(t *testing.T) {
	ctx := ctxTimeout(t, 3*time.Minute)
	dbURL := storetest.URL(t)
	admin, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)

	// The app tier reaches PostgreSQL through dbProxy.
	appCfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	dbProxy := newFaultProxy(t, net.JoinHostPort(appCfg.ConnConfig.Host, strconv.Itoa(int(appCfg.ConnConfig.Port))))
	proxyHost, proxyPort, _ := net.SplitHostPort(dbProxy.Addr())
	port, _ := strconv.Atoi(proxyPort)
	appCfg.ConnConfig.Host, appCfg.ConnConfig.Port = proxyHost, uint16(port)
	appCfg.ConnConfig.ConnectTimeout = 2 * time.Second
	appCfg.ConnConfig.RuntimeParams["application_name"] = "bankwire-faults"
	appCfg.MaxConns = 16
	appPool, err := pgxpool.NewWithConfig(ctx, appCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(appPool.Close)
	st := store.New(appPool, store.WithLogger(testLogger()))

	// The web tier reaches the app tier through appProxy.
	clock := apptiertest.NewClock(time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC))
	app := apptiertest.Start(t, apptiertest.WithStore(st), apptiertest.WithClock(clock.Now),
		apptiertest.WithDailyLimit(100_000_000_000))
	appProxy := newFaultProxy(t, app.Addr)
	cfg := websiteConfig(app)
	cfg.AppTierAddrs = []string{appProxy.Addr()}
	s := startWeb(t, app, cfg)

	var totalBefore int64
	if err := admin.QueryRow(ctx, `SELECT sum(balance) FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE NOT c.is_system`).Scan(&totalBefore); err != nil {
		t.Fatal(err)
	}
	var transfersBefore int64
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM transfers`).Scan(&transfersBefore); err != nil {
		t.Fatal(err)
	}

	// Six customers' browsers: three alice sessions, three bob sessions,
	// each paying the other's checking account small amounts.
	type customer struct {
		b        *browser
		from, to string
	}
	alice, bob := s.alice(), s.bob()
	aChk, bChk := alice.checking(), bob.checking()
	var customers []customer
	for i := 0; i < 3; i++ {
		customers = append(customers, customer{s.alice(), aChk, bChk}, customer{s.bob(), bChk, aChk})
	}

	var (
		mu    sync.Mutex
		subs  []submission
		lastK = map[string]submission{} // latest submission per key
		stop  = make(chan struct{})
		wg    sync.WaitGroup
		oks   atomic.Int64
	)
	record := func(sub submission) {
		mu.Lock()
		defer mu.Unlock()
		subs = append(subs, sub)
		lastK[sub.key] = sub
		if sub.outcome == made {
			oks.Add(1)
		}
	}
	for w, c := range customers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 400; n++ { // bounded in count as well as in time
				select {
				case <-stop:
					return
				default:
				}
				form := url.Values{"key": {randomKey()}, "from": {c.from}, "to_number": {c.to},
					"amount": {fmt.Sprintf("0.%02d", 1+(w*7+n)%99)}, "memo": {"fault test"}}
				// Like a customer: on the confirm-again page, press
				// Confirm again (a few times, then give up).
				for try := 0; try < 5; try++ {
					sub := submit(c.b, form)
					record(sub)
					if sub.outcome != unknown {
						break
					}
					if sub.detail != "" {
						form = hiddenValues(sub.detail)
					}
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}

	// A reader: pages other than the transfer must show only the page or
	// the 503 "briefly unavailable" page, never a 500.
	var pages, unavailable atomic.Int64
	var pageErrs []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		reader := customers[0].b
		for n := 0; n < 2000; n++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			req, _ := http.NewRequest(http.MethodGet, s.baseURL+"/accounts", nil)
			resp, err := reader.c.Do(req)
			if err != nil {
				mu.Lock()
				pageErrs = append(pageErrs, err.Error())
				mu.Unlock()
				continue
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			pages.Add(1)
			switch {
			case resp.StatusCode == http.StatusOK:
			case resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "The bank is briefly unavailable"):
				unavailable.Add(1)
			default:
				mu.Lock()
				pageErrs = append(pageErrs, fmt.Sprintf("GET /accounts: %d %s", resp.StatusCode, snippet(string(body))))
				mu.Unlock()
			}
		}
	}()

	terminate := func() {
		if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'bankwire-faults'`); err != nil {
			t.Errorf("terminate sessions: %v", err)
		}
	}
	faults := []*fault{
		{name: "app tier stopped and restarted", inject: app.Stop, hold: time.Second, heal: app.Restart},
		{name: "web↔app link reset", inject: appProxy.Reset},
		{name: "web↔app link black-holed", inject: appProxy.BlackHole, hold: 1500 * time.Millisecond, heal: appProxy.Heal},
		{name: "app↔database connections reset", inject: dbProxy.Reset},
		{name: "app↔database link black-holed", inject: dbProxy.BlackHole, hold: 1500 * time.Millisecond, heal: dbProxy.Heal},
		{name: "database sessions terminated (57P01)", inject: terminate},
	}
	waitForSuccess := func(after int64, within time.Duration) bool {
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			if oks.Load() > after {
				return true
			}
			time.Sleep(10 * time.Millisecond)
		}
		return false
	}
	runStart := time.Now()
	if !waitForSuccess(10, 10*time.Second) {
		t.Fatal("no transfers succeed before any fault")
	}
	for _, f := range faults {
		f.started = time.Now()
		f.inject()
		time.Sleep(f.hold)
		if f.heal != nil {
			f.heal()
		}
		f.healed = time.Now()
		before := oks.Load()
		if !waitForSuccess(before, 15*time.Second) {
			t.Errorf("%s: no transfer succeeded within 15 s of the heal", f.name)
		}
		time.Sleep(500 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	runEnd := time.Now()

	mu.Lock()
	defer mu.Unlock()
	counts := map[outcome]int{}
	for _, sub := range subs {
		counts[sub.outcome]++
		if sub.outcome == violation {
			t.Errorf("submit of %s at +%v: %s", sub.key, sub.start.Sub(runStart).Round(time.Millisecond), sub.detail)
		}
	}
	t.Logf("%d submits in %v: %d made, %d refused, %d outcome unknown, %d violations",
		len(subs), runEnd.Sub(runStart).Round(time.Millisecond), counts[made], counts[refused], counts[unknown], counts[violation])
	t.Logf("%d account pages read, %d of them the 503 page", pages.Load(), unavailable.Load())
	for _, e := range pageErrs {
		t.Errorf("account page during the faults: %s", e)
	}

	// Per fault: submits that started between its injection and the next
	// fault's.
	for i, f := range faults {
		end := runEnd
		if i+1 < len(faults) {
			end = faults[i+1].started
		}
		var failed int
		var worst time.Duration
		firstOK := time.Duration(-1)
		for _, sub := range subs {
			if sub.start.Before(f.started) || !sub.start.Before(end) {
				continue
			}
			if sub.outcome != made {
				failed++
			}
			worst = max(worst, sub.end.Sub(sub.start))
			if sub.outcome == made && !sub.start.Before(f.healed) {
				if d := sub.end.Sub(f.healed); firstOK < 0 || d < firstOK {
					firstOK = d
				}
			}
		}
		recovery := "none"
		if firstOK >= 0 {
			recovery = firstOK.Round(time.Millisecond).String()
		}
		t.Logf("fault %-40s failed submits %3d, heal → first success %8s, worst latency %v",
			f.name, failed, recovery, worst.Round(time.Millisecond))
	}

	// Settle every key whose last answer was "unknown".
	acked := map[string]int64{}
	var unresolved []submission
	for k, sub := range lastK {
		switch sub.outcome {
		case made:
			acked[k] = sub.transferID
		case unknown:
			unresolved = append(unresolved, sub)
		}
	}
	resolvedMade, resolvedNot := 0, 0
	for _, sub := range unresolved {
		p := sub.b.post("/transfers/resolve", hiddenValues(sub.detail))
		var n int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM transfers WHERE idempotency_key = $1`, sub.key).Scan(&n); err != nil {
			t.Fatal(err)
		}
		switch {
		case p.Status == http.StatusSeeOther && strings.HasPrefix(p.Location, "/transfers/"):
			resolvedMade++
			if n != 1 {
				t.Errorf("key %s resolved as made, but the database has %d transfers with it", sub.key, n)
			}
		case p.Status == http.StatusOK && strings.Contains(p.Body, notMadeText):
			resolvedNot++
			if n != 0 {
				t.Errorf("key %s resolved as not made, but the database has %d transfers with it", sub.key, n)
			}
		default:
			t.Errorf("resolve %s after the faults: %d %q %s", sub.key, p.Status, p.Location, snippet(p.Body))
		}
	}
	t.Logf("%d keys acknowledged; %d unknown at the end, resolved as %d made and %d not made",
		len(acked), len(unresolved), resolvedMade, resolvedNot)

	// Every acknowledged transfer exactly once, and nothing else made.
	for k, id := range acked {
		var n int
		var got int64
		if err := admin.QueryRow(ctx, `SELECT count(*), min(id) FROM transfers WHERE idempotency_key = $1`, k).Scan(&n, &got); err != nil {
			t.Fatal(err)
		}
		if n != 1 || got != id {
			t.Errorf("acknowledged key %s (transfer %d): %d transfers in the database (first %d)", k, id, n, got)
		}
	}
	var transfersAfter int64
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM transfers`).Scan(&transfersAfter); err != nil {
		t.Fatal(err)
	}
	if made := transfersAfter - transfersBefore; made != int64(len(acked)+resolvedMade) {
		t.Errorf("%d transfers made during the run, but %d acknowledged and %d resolved as made",
			made, len(acked), resolvedMade)
	}
	checkLedger(t, ctx, admin, totalBefore)
}

// websiteConfig is startSite's web tier configuration for app.
func websiteConfig(app *apptiertest.Server) webtier.Config {
	cfg := webtier.DefaultConfig()
	cfg.AppTierAddrs = []string{app.Addr}
	cfg.AppTierSecret = app.Secret
	cfg.SignInLimit = 1000
	cfg.SignUpLimit = 1000
	cfg.StreamKeepAlive = time.Second
	return cfg
}

// checkLedger asserts the bank's invariants on the whole database.
func checkLedger(t *testing.T, ctx context.Context, db *pgxpool.Pool, customersTotal int64) {
	t.Helper()
	var all, customers, mismatched, unbalanced int64
	err := db.QueryRow(ctx, `
		SELECT (SELECT coalesce(sum(balance), 0) FROM accounts),
		       (SELECT coalesce(sum(a.balance), 0) FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE NOT c.is_system),
		       (SELECT count(*) FROM accounts a
		         WHERE a.balance <> coalesce((SELECT sum(amount) FROM ledger_entries e WHERE e.account_id = a.id), 0)),
		       (SELECT count(*) FROM transfers t
		         WHERE (SELECT count(*) FROM ledger_entries e WHERE e.transfer_id = t.id) <> 2
		            OR (SELECT sum(amount) FROM ledger_entries e WHERE e.transfer_id = t.id) <> 0)`).Scan(
		&all, &customers, &mismatched, &unbalanced)
	if err != nil {
		t.Fatal(err)
	}
	if all != 0 || customers != customersTotal || mismatched != 0 || unbalanced != 0 {
		t.Errorf("ledger: all balances sum to %d (want 0), customers' to %d (want %d); %d accounts differ from their ledger; %d transfers unbalanced",
			all, customers, customersTotal, mismatched, unbalanced)
	}
}

func randomKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// submit posts a transfer form and classifies the answer. It never calls
// t.Fatal: it runs on worker goroutines.
func submit(b *browser, form url.Values) submission {
	sub := submission{b: b, key: form.Get("key"), start: time.Now()}
	req, err := http.NewRequest(http.MethodPost, b.site.baseURL+"/transfers", strings.NewReader(form.Encode()))
	if err != nil {
		sub.outcome, sub.detail, sub.end = violation, err.Error(), time.Now()
		return sub
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.c.Do(req)
	if err != nil {
		sub.outcome, sub.detail, sub.end = violation, "request failed: "+err.Error(), time.Now()
		return sub
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	sub.end, sub.status = time.Now(), resp.StatusCode
	p := page{Status: resp.StatusCode, Body: string(body), Location: resp.Header.Get("Location")}
	switch {
	case p.Status == http.StatusSeeOther && strings.HasPrefix(p.Location, "/transfers/"):
		sub.outcome = made
		sub.transferID, _ = strconv.ParseInt(strings.TrimPrefix(p.Location, "/transfers/"), 10, 64)
	case p.Status == http.StatusUnprocessableEntity && strings.Contains(p.Body, `action="/transfers/confirm"`):
		sub.outcome, sub.detail = refused, "refused"
	case p.Status == http.StatusServiceUnavailable && strings.Contains(p.Body, confirmAgainText) &&
		strings.Contains(p.Body, `name="key" value="`+sub.key+`"`):
		sub.outcome, sub.detail = unknown, p.Body
	default:
		sub.outcome = violation
		sub.detail = fmt.Sprintf("status %d location %q: %s", p.Status, p.Location, snippet(p.Body))
	}
	return sub
}

// hiddenValues reads the hidden fields of the first form of a page body.
func hiddenValues(body string) url.Values {
	v := url.Values{}
	for _, m := range hiddenRe.FindAllStringSubmatch(body, -1) {
		if _, dup := v[m[1]]; dup {
			break
		}
		v.Set(m[1], htmlUnescape(m[2]))
	}
	return v
}
