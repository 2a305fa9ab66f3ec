package webtier_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"bankwire/apptier"
	"bankwire/apptier/apptiertest"
	"bankwire/store"
	"bankwire/store/storetest"
	"bankwire/webtier"
)

// BenchmarkTransfers drives transfers through all three tiers the way a
// browser does (GET the transfer form for its idempotency key, POST it,
// follow the 303 to the result page). Transfers run under a daily limit that
// is never reached, so the limit's bookkeeping is part of every one.
//
// vs-pgbench runs them from 8 and then 64 concurrent customers beside
// pgbench's tpcb-like script (scale 16) at the same client count against
// the same PostgreSQL server, alternating bankwire and pgbench runs, and
// reports transfers/s, pgbench's TPS and their ratio per client count
// (target ≥ 0.5), with the POST latencies next to pgbench's average
// latency (target: POST p99 at 64 ≤ 3× that average). pgbench is looked up
// in BANKWIRE_PGBENCH, PostgreSQL 15's bin directory and PATH; without it
// this part skips.
//
// Beside the rates it reports CPU time per transfer and per pgbench
// transaction: PostgreSQL's (every process of the server, when it runs on
// this machine), this test process's (web tier, protocol, app tier and the
// load generator standing in for browsers) and pgbench's client. On a
// machine whose cores all tiers share, cpu-ceiling is the ratio the two
// rates would have if both were bound by CPU alone, and pg-ceiling the
// ratio if the Go side cost nothing.
//
// second-apptier runs 64 clients through a web tier spread over two app
// tiers (each with its own pool) on the same machine and database, beside
// the one-app-tier site, alternating: apptiers-ratio is the first rate over
// the second (target ≥ 0.95).
//
// history compares, alternating which goes first, 8 customers who already
// made 10,000 transfers that day (inserted with SQL, then VACUUM ANALYZE,
// as autovacuum would have done by then) with 8 who made none:
// history-ratio is the first rate over the second (target ≥ 0.9).
//
//	go test -run '^$' -bench Transfers -benchtime 1x -timeout 30m ./webtier/
//
// BANKWIRE_BENCH_SECONDS sets the length of each run (default 5) and
// BANKWIRE_BENCH_PAIRS the number of alternating pairs (default 3).
func BenchmarkTransfers(b *testing.B) {
	runFor := time.Duration(envInt(b, "BANKWIRE_BENCH_SECONDS", 5)) * time.Second
	pairs := envInt(b, "BANKWIRE_BENCH_PAIRS", 3)
	ctx := context.Background()

	clock := apptiertest.NewClock(time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC))
	// 32 customers sign up from one address.
	signUps := apptiertest.WithConfig(func(c *apptier.Config) { c.SignUpIPLimit = 100 })
	// The bench measures throughput, not deadlines: on a machine shared
	// with other work a call can stall past the default second, and one
	// 503 would end the run.
	patient := withConfig(func(c *webtier.Config) { c.CallTimeout = 10 * time.Second })
	s := startSite(b, withApp(apptiertest.WithClock(clock.Now), apptiertest.WithDailyLimit(store.MaxAmount), signUps), patient)
	customers := make([]*benchCustomer, 32)
	for i := range customers {
		customers[i] = signUpCustomer(b, s, fmt.Sprintf("bench%02d", i))
		if _, err := s.app.Store.Deposit(ctx, customers[i].checking, store.MaxAmount, "bench funds", clock.Now()); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("vs-pgbench", func(b *testing.B) {
		pgbench := findPgbench()
		if pgbench == "" {
			b.Skip("pgbench not found (set BANKWIRE_PGBENCH)")
		}
		pgURL := storetest.EmptyURL(b)
		if out, err := exec.Command(pgbench, "-i", "-q", "-s", "16", pgURL).CombinedOutput(); err != nil {
			b.Fatalf("pgbench -i: %v\n%s", err, out)
		}
		pgCPU := postgresCPU(b, s.app.Store)
		b.ResetTimer()
		for _, clients := range []int{8, 64} {
			var tiers transferLoad
			var pg pgbenchResult
			for range pairs {
				tiers = tiers.merge(measureCPU(pgCPU, func() transferLoad { return runTransfers(b, s, customers[:16], clients, runFor) }))
				pg = pg.merge(measureCPU(pgCPU, func() pgbenchResult { return runPgbench(b, pgbench, pgURL, clients, runFor) }))
			}
			tiers.finish()
			n := strconv.Itoa(clients)
			b.ReportMetric(tiers.rate, n+"-transfers/s")
			b.ReportMetric(pg.tps(), n+"-pgbench-tps")
			b.ReportMetric(tiers.rate/pg.tps(), n+"-ratio")
			b.ReportMetric(ms(tiers.p50), n+"-post-p50-ms")
			b.ReportMetric(ms(tiers.p99), n+"-post-p99-ms")
			b.ReportMetric(pg.latency(), n+"-pgbench-latency-ms")
			b.ReportMetric(tiers.acquiresPerTransfer(), n+"-db-acquires/transfer")
			perTransfer := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(len(tiers.lat)) }
			goCPU, pgbenchClient := perTransfer(tiers.cpu.self), float64(pg.cpu.client.Microseconds())/pg.transactions
			b.ReportMetric(goCPU, n+"-go-cpu-us/transfer")
			b.ReportMetric(pgbenchClient, n+"-pgbench-client-cpu-us/tx")
			if pgCPU != nil {
				pgPerTransfer, pgPerTx := perTransfer(tiers.cpu.postgres), float64(pg.cpu.postgres.Microseconds())/pg.transactions
				b.ReportMetric(pgPerTransfer, n+"-pg-cpu-us/transfer")
				b.ReportMetric(pgPerTx, n+"-pgbench-pg-cpu-us/tx")
				b.ReportMetric((pgPerTx+pgbenchClient)/(pgPerTransfer+goCPU), n+"-cpu-ceiling")
				b.ReportMetric((pgPerTx+pgbenchClient)/pgPerTransfer, n+"-pg-ceiling")
			}
		}
	})

	b.Run("second-apptier", func(b *testing.B) {
		pool, err := store.Open(ctx, s.app.Store.Pool().Config().ConnString())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(pool.Close)
		second := apptiertest.Start(b, apptiertest.WithStore(store.New(pool)), apptiertest.WithoutDemoData(),
			apptiertest.WithClock(clock.Now), apptiertest.WithDailyLimit(store.MaxAmount))
		cfg := s.cfg
		cfg.AppTierAddrs = []string{s.app.Addr, second.Addr}
		both := startWeb(b, s.app, cfg)
		b.ResetTimer()
		var one, two transferLoad
		for p := range pairs {
			if p%2 == 0 {
				one = one.merge(runTransfers(b, s, customers[:16], 64, runFor))
				two = two.merge(runTransfers(b, both, customers[:16], 64, runFor))
			} else {
				two = two.merge(runTransfers(b, both, customers[:16], 64, runFor))
				one = one.merge(runTransfers(b, s, customers[:16], 64, runFor))
			}
		}
		b.StopTimer()
		if pool.Stat().AcquireCount() == 0 {
			b.Fatal("the second app tier never used its database pool: the web tier did not spread over both")
		}
		one.finish()
		two.finish()
		b.ReportMetric(one.rate, "1apptier-transfers/s")
		b.ReportMetric(two.rate, "2apptiers-transfers/s")
		b.ReportMetric(two.rate/one.rate, "apptiers-ratio")
		b.ReportMetric(ms(two.p99), "2apptiers-post-p99-ms")
	})

	b.Run("history", func(b *testing.B) {
		history, fresh := customers[16:24], customers[24:32]
		for i, c := range history {
			addTransferHistory(b, s.app.Store, c, history[(i+1)%len(history)], 10_000, clock.Now())
		}
		if _, err := s.app.Store.Pool().Exec(ctx, "VACUUM ANALYZE"); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		var withHistory, freshDay transferLoad
		for p := range pairs {
			if p%2 == 0 {
				withHistory = withHistory.merge(runTransfers(b, s, history, 8, runFor))
				freshDay = freshDay.merge(runTransfers(b, s, fresh, 8, runFor))
			} else {
				freshDay = freshDay.merge(runTransfers(b, s, fresh, 8, runFor))
				withHistory = withHistory.merge(runTransfers(b, s, history, 8, runFor))
			}
		}
		b.StopTimer()
		withHistory.finish()
		freshDay.finish()
		b.ReportMetric(withHistory.rate, "history-transfers/s")
		b.ReportMetric(freshDay.rate, "fresh-transfers/s")
		b.ReportMetric(withHistory.rate/freshDay.rate, "history-ratio")
	})
}

func findPgbench() string {
	for _, p := range []string{os.Getenv("BANKWIRE_PGBENCH"), "/usr/lib/postgresql/15/bin/pgbench"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, _ := exec.LookPath("pgbench")
	return p
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// benchCustomer is a signed-in browser of one customer.
type benchCustomer struct {
	client   *http.Client
	checking string
}

func signUpCustomer(b *testing.B, s *site, username string) *benchCustomer {
	b.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	b.Cleanup(tr.CloseIdleConnections)
	c := &benchCustomer{client: &http.Client{Transport: tr, Jar: jar, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	password := "bench-password-" + username
	form := url.Values{"username": {username}, "display_name": {"Bench " + username},
		"password": {password}, "password_confirm": {password}}
	resp, err := c.client.PostForm(s.baseURL+"/signup", form)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		b.Fatalf("sign up %s: status %d", username, resp.StatusCode)
	}
	body, err := c.get(context.Background(), s.baseURL+"/accounts")
	if err != nil {
		b.Fatalf("accounts of %s: %v", username, err)
	}
	m := kindRe.FindStringSubmatch(body)
	if m == nil || m[2] != "Checking" {
		b.Fatalf("no checking account on the overview of %s", username)
	}
	c.checking = m[1]
	return c
}

func (c *benchCustomer) get(ctx context.Context, target string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: status %d", target, resp.StatusCode)
	}
	return string(body), err
}

// transfer is one transfer as a browser makes it; it returns how long the
// POST took.
func (c *benchCustomer) transfer(ctx context.Context, base, to string) (time.Duration, error) {
	form, err := c.get(ctx, base+"/transfers/new")
	if err != nil {
		return 0, err
	}
	m := keyRe.FindStringSubmatch(form)
	if m == nil {
		return 0, errors.New("no idempotency key on the transfer form")
	}
	values := url.Values{"key": {m[1]}, "from": {c.checking}, "to_number": {to}, "amount": {"0.01"}, "memo": {""}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/transfers", strings.NewReader(values.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base) // as a browser does; a POST with a session and no Origin is refused
	start := time.Now()
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, err
	}
	took := time.Since(start)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/transfers/") {
		return took, fmt.Errorf("POST /transfers: status %d, location %q", resp.StatusCode, loc)
	}
	_, err = c.get(ctx, base+loc)
	return took, err
}

type transferLoad struct {
	lat      []time.Duration
	elapsed  time.Duration
	rate     float64
	p50, p99 time.Duration
	acquires int64 // connections the site's (first) app tier took from its pool
	cpu      cpuUse
}

func (r transferLoad) merge(o transferLoad) transferLoad {
	return transferLoad{lat: append(r.lat, o.lat...), elapsed: r.elapsed + o.elapsed, acquires: r.acquires + o.acquires,
		cpu: r.cpu.add(o.cpu)}
}

func (r transferLoad) withCPU(c cpuUse) transferLoad { r.cpu = r.cpu.add(c); return r }

// acquiresPerTransfer is how many database round trips (pool acquisitions:
// one per statement outside a transaction, one per transaction) a
// transfer made as a browser makes it costs the app tier.
func (r transferLoad) acquiresPerTransfer() float64 {
	return float64(r.acquires) / float64(len(r.lat))
}

func (r *transferLoad) finish() {
	n := len(r.lat)
	if n == 0 {
		return
	}
	slices.Sort(r.lat)
	r.rate = float64(n) / r.elapsed.Seconds()
	r.p50 = r.lat[n/2]
	r.p99 = r.lat[min(n-1, n*99/100)]
}

// runTransfers runs clients concurrent browsers for d, client i acting as
// customer i mod len(customers) and paying the next customer.
func runTransfers(b *testing.B, s *site, customers []*benchCustomer, clients int, d time.Duration) transferLoad {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	deadline := time.Now().Add(d)
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	acquired := s.app.Store.Pool().Stat().AcquireCount()
	start := time.Now()
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := customers[i%len(customers)]
			to := customers[(i+1)%len(customers)].checking
			var mine []time.Duration
			for time.Now().Before(deadline) {
				took, err := c.transfer(ctx, s.baseURL, to)
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
					cancel()
					return
				}
				mine = append(mine, took)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		b.Fatalf("transfers: %v", firstErr)
	}
	return transferLoad{lat: lat, elapsed: elapsed, acquires: s.app.Store.Pool().Stat().AcquireCount() - acquired}
}

type pgbenchResult struct {
	transactions float64
	seconds      float64
	latencySum   float64 // ms, summed over runs
	runs         int
	cpu          cpuUse // client: pgbench's own
}

func (r pgbenchResult) merge(o pgbenchResult) pgbenchResult {
	return pgbenchResult{r.transactions + o.transactions, r.seconds + o.seconds, r.latencySum + o.latencySum, r.runs + o.runs,
		r.cpu.add(o.cpu)}
}

func (r pgbenchResult) withCPU(c cpuUse) pgbenchResult { r.cpu = r.cpu.add(c); return r }

func (r pgbenchResult) tps() float64     { return r.transactions / r.seconds }
func (r pgbenchResult) latency() float64 { return r.latencySum / float64(r.runs) }

var (
	pgbenchTPS     = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	pgbenchLatency = regexp.MustCompile(`latency average = ([0-9.]+) ms`)
)

func runPgbench(b *testing.B, pgbench, dbURL string, clients int, d time.Duration) pgbenchResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d+2*time.Minute)
	defer cancel()
	secs := int(d / time.Second)
	cmd := exec.CommandContext(ctx, pgbench, "-b", "tpcb-like", "-c", strconv.Itoa(clients), "-j", "2",
		"-T", strconv.Itoa(secs), dbURL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("pgbench: %v\n%s", err, out)
	}
	tps, lat := pgbenchTPS.FindSubmatch(out), pgbenchLatency.FindSubmatch(out)
	if tps == nil || lat == nil {
		b.Fatalf("pgbench output without tps or latency:\n%s", out)
	}
	t, _ := strconv.ParseFloat(string(tps[1]), 64)
	l, _ := strconv.ParseFloat(string(lat[1]), 64)
	return pgbenchResult{transactions: t * float64(secs), seconds: float64(secs), latencySum: l, runs: 1,
		cpu: cpuUse{client: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}}
}

// cpuUse is CPU time (user + system) spent during a run.
type cpuUse struct {
	self     time.Duration // this test process: web tier, app tier, load generator
	postgres time.Duration // every process of the PostgreSQL server
	client   time.Duration // pgbench
}

func (c cpuUse) add(o cpuUse) cpuUse {
	return cpuUse{c.self + o.self, c.postgres + o.postgres, c.client + o.client}
}

// measureCPU runs f and adds to its result the CPU time this process and,
// with pg not nil, the PostgreSQL server spent meanwhile.
func measureCPU[R interface{ withCPU(cpuUse) R }](pg func() time.Duration, f func() R) R {
	self := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	server := func() time.Duration {
		if pg == nil {
			return 0
		}
		return pg()
	}
	s0, p0 := self(), server()
	r := f()
	return r.withCPU(cpuUse{self: self() - s0, postgres: server() - p0})
}

// clockTick is the unit of CPU times in /proc (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// postgresCPU returns a reader of the CPU time the PostgreSQL server of st
// has used: its postmaster's own and its reaped children's, plus every
// live child's (backends, and the background processes). A backend that
// ends between two readings moves from the second sum to the first, so the
// difference of two readings is what the server used in between. It
// returns nil when the server does not run on this machine as a process
// this test can see (a container, another host).
func postgresCPU(b *testing.B, st *store.Store) func() time.Duration {
	b.Helper()
	var backend int
	if err := st.Pool().QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		b.Fatal(err)
	}
	stat, ok := procStat(backend)
	if !ok || stat.comm != "postgres" {
		return nil
	}
	if pm, ok := procStat(stat.ppid); !ok || pm.comm != "postgres" {
		return nil
	}
	postmaster := stat.ppid
	return func() time.Duration {
		pm, _ := procStat(postmaster)
		total := pm.utime + pm.stime + pm.cutime + pm.cstime
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if c, ok := procStat(pid); ok && c.ppid == postmaster {
				total += c.utime + c.stime
			}
		}
		return time.Duration(total) * clockTick
	}
}

type procStatus struct {
	comm                         string
	ppid                         int
	utime, stime, cutime, cstime int64 // clock ticks
}

// procStat reads /proc/pid/stat (proc(5)).
func procStat(pid int) (procStatus, bool) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStatus{}, false
	}
	open, end := strings.IndexByte(string(raw), '('), strings.LastIndexByte(string(raw), ')')
	if open < 0 || end < open {
		return procStatus{}, false
	}
	f := strings.Fields(string(raw[end+1:])) // from field 3, state
	if len(f) < 15 {
		return procStatus{}, false
	}
	n := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
	return procStatus{comm: string(raw[open+1 : end]), ppid: int(n(1)),
		utime: n(11), stime: n(12), cutime: n(13), cstime: n(14)}, true
}

// addTransferHistory gives from n transfers of one cent to to, at at, with
// their ledger entries, balances and daily total, in one transaction.
func addTransferHistory(b *testing.B, st *store.Store, from, to *benchCustomer, n int, at time.Time) {
	b.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			WITH f AS (SELECT id, customer_id, currency, balance FROM accounts WHERE number = $1 FOR UPDATE),
			     o AS (SELECT id, balance FROM accounts WHERE number = $2 FOR UPDATE),
			     t AS (INSERT INTO transfers (customer_id, idempotency_key, from_account, to_account, amount, currency, fingerprint, created_at)
			           SELECT f.customer_id, 'history-' || g, f.id, o.id, 1, f.currency, sha256(('history-' || g)::bytea), $3
			             FROM f, o, generate_series(1, $4::int) g
			           RETURNING id, from_account, to_account),
			     k AS (SELECT id, from_account, to_account, row_number() OVER (ORDER BY id) AS k FROM t)
			INSERT INTO ledger_entries (account_id, transfer_id, amount, balance_after, created_at)
			SELECT k.from_account, k.id, -1, f.balance - k.k, $3 FROM k, f
			UNION ALL
			SELECT k.to_account, k.id, 1, o.balance + k.k, $3 FROM k, o`,
			from.checking, to.checking, at, n)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance - $2 WHERE number = $1`, from.checking, n); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance + $2 WHERE number = $1`, to.checking, n); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO daily_outgoing (customer_id, day, currency, total)
			SELECT customer_id, ($2::timestamptz AT TIME ZONE 'UTC')::date, currency, $3 FROM accounts WHERE number = $1
			ON CONFLICT (customer_id, day, currency) DO UPDATE SET total = daily_outgoing.total + EXCLUDED.total`,
			from.checking, at, n)
		return err
	})
	if err != nil {
		b.Fatalf("add transfer history: %v", err)
	}
}
