//go:build ha

package webtier_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHAFailover drives the high-availability stack (store/ha/compose.yml)
// through the web tiers' load balancer while it breaks parts of it: it kills
// the Patroni leader, makes a planned switchover, and kills one web tier.
// Transfers run under steady load the whole time; a request whose outcome
// is unknown is retried with the same idempotency key, as a customer
// pressing "Confirm" again would. Afterwards it checks the bank: every
// acknowledged transfer exists exactly once, the totals are unchanged, every
// transfer's ledger entries sum to zero, and the killed node is a replica
// again. It logs, per event, the outage (the longest time without an
// acknowledged transfer), the failed requests, the acknowledged transfers
// lost, and the time until the old leader is a replica again. CI runs it
// after `docker compose -f store/ha/compose.yml up -d --build`:
//
//	BANKWIRE_HA_URL=http://127.0.0.1:8090 go test -tags ha -run TestHAFailover -v ./webtier/
//
// It drives that compose project (COMPOSE_PROJECT_NAME, default bankwire-ha)
// with the docker CLI, so it must run where `docker compose` does.
func TestHAFailover(t *testing.T) {
	base := strings.TrimRight(os.Getenv("BANKWIRE_HA_URL"), "/")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("BANKWIRE_HA_URL is not set (e.g. http://127.0.0.1:8090)")
		}
		t.Skip("set BANKWIRE_HA_URL (e.g. http://127.0.0.1:8090) to test a running HA stack")
	}
	file, err := filepath.Abs(filepath.Join("..", "store", "ha", "compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	st := &haStack{t: t, file: file}

	haWaitReady(ctx, t, base)
	st.waitHealthy(ctx, 3, 90*time.Second)
	before := st.balances(ctx)

	alice := newHACustomer(ctx, t, base, "alice", "alice-demo-pass", st.accountOf(ctx, "alice"))
	bob := newHACustomer(ctx, t, base, "bob", "bob-demo-pass", st.accountOf(ctx, "bob"))
	run := newHARun(base, randomKey()[:8])
	loadCtx, stopLoad := context.WithCancel(ctx)
	var workers sync.WaitGroup
	const workerCount, rate = 4, 40 // transfers per second, all workers together
	for i := range workerCount {
		from, to := alice, bob
		if i%2 == 1 {
			from, to = bob, alice
		}
		workers.Add(1)
		go func() {
			defer workers.Done()
			run.worker(loadCtx, from, to.account, time.Duration(workerCount)*time.Second/rate)
		}()
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			stopLoad()
			workers.Wait()
		}
	}
	defer stop()
	run.waitAcks(ctx, t, 40, 30*time.Second)

	var reports []haEvent

	// 1. The leader's machine dies: kill -9, and it stays down until
	// writes have resumed on a new leader.
	leader := st.leader(ctx)
	ev := haEvent{name: "leader killed (" + leader + ")", start: time.Now()}
	st.kill(ctx, leader)
	newLeader := st.waitLeaderOtherThan(ctx, leader, 30*time.Second)
	run.waitAckAfter(ctx, t, time.Now(), 30*time.Second, "writes after the leader was killed")
	restarted := time.Now()
	st.start(ctx, leader)
	rejoined := st.waitReplica(ctx, leader, 120*time.Second)
	ev.replicaAfter, ev.replicaAfterRestart = rejoined.Sub(ev.start), rejoined.Sub(restarted)
	st.waitHealthy(ctx, 3, 60*time.Second)
	time.Sleep(3 * time.Second)
	ev.end = time.Now()
	reports = append(reports, ev)
	t.Logf("new leader %s", newLeader)

	// 2. A planned switchover to the synchronous standby.
	leader = st.leader(ctx)
	candidate := st.syncStandby(ctx, 30*time.Second)
	ev = haEvent{name: "switchover (" + leader + " to " + candidate + ")", start: time.Now()}
	st.compose(ctx, "exec", "-T", leader, "patronictl", "switchover", "--leader", leader, "--candidate", candidate, "--force")
	st.waitLeaderOtherThan(ctx, leader, 30*time.Second)
	run.waitAckAfter(ctx, t, time.Now(), 30*time.Second, "writes after the switchover")
	ev.replicaAfter = st.waitReplica(ctx, leader, 120*time.Second).Sub(ev.start)
	st.waitHealthy(ctx, 3, 60*time.Second)
	time.Sleep(3 * time.Second)
	ev.end = time.Now()
	reports = append(reports, ev)

	// 3. One web tier dies under load; HAProxy must hide it completely.
	web := st.containers(ctx, "webtier")
	if len(web) < 2 {
		t.Fatalf("want 2 web tiers, have %d", len(web))
	}
	ev = haEvent{name: "web tier killed", start: time.Now(), webTier: true}
	st.killContainer(ctx, web[0])
	time.Sleep(8 * time.Second)
	ev.end = time.Now()
	reports = append(reports, ev)
	// Its return is reported apart: a cold web tier on a busy host can
	// miss the call deadline of its first requests (503, outcome unknown),
	// which is no failure to hide a dead one.
	ev = haEvent{name: "web tier back", start: time.Now()}
	st.startContainer(ctx, web[0])
	st.waitContainerHealthy(ctx, web[0], 60*time.Second)
	time.Sleep(3 * time.Second)
	ev.end = time.Now()
	reports = append(reports, ev)

	stop()
	if n := run.unresolved(); n > 0 {
		t.Errorf("%d transfers never got an answer, even when retried with their keys", n)
	}

	// The bank checker.
	stored := st.transferKeys(ctx, run.memoPrefix)
	acked := run.ackedKeys()
	lostAt := map[string]time.Time{}
	for key, at := range acked {
		switch stored[key] {
		case 1:
		case 0:
			lostAt[key] = at
		default:
			t.Errorf("transfer %s stored %d times", key, stored[key])
		}
	}
	for key, n := range stored {
		if n != 1 {
			t.Errorf("idempotency key %s stored %d times", key, n)
		}
	}
	if len(lostAt) > 0 {
		t.Errorf("%d acknowledged transfers are missing from the database", len(lostAt))
	}
	after := st.balances(ctx)
	if after.total != 0 || before.total != 0 {
		t.Errorf("sum of all balances: %d before, %d after; want 0", before.total, after.total)
	}
	if after.customers != before.customers {
		t.Errorf("alice's and bob's money: %d before, %d after; transfers between them must not change it", before.customers, after.customers)
	}
	if after.unbalancedTransfers != 0 || after.driftedAccounts != 0 {
		t.Errorf("%d transfers whose entries do not sum to zero, %d accounts whose balance is not the sum of their entries",
			after.unbalancedTransfers, after.driftedAccounts)
	}

	t.Logf("%d transfers acknowledged, %d stored, %d requests in all", len(acked), len(stored), run.requests())
	for _, ev := range reports {
		outage, failed := run.window(ev.start, ev.end)
		lost := 0
		for _, at := range lostAt {
			if !at.Before(ev.start) && at.Before(ev.end) {
				lost++
			}
		}
		replica := "-"
		if ev.replicaAfter > 0 {
			replica = ev.replicaAfter.Round(100 * time.Millisecond).String()
		}
		if ev.replicaAfterRestart > 0 {
			replica += " (" + ev.replicaAfterRestart.Round(100*time.Millisecond).String() + " after its restart)"
		}
		nFailed := 0
		for _, n := range failed {
			nFailed += n
		}
		t.Logf("event %-28s outage %6s  failed requests %4d %v  acknowledged lost %d  old leader a replica after %s",
			ev.name, outage.Round(100*time.Millisecond), nFailed, failed, lost, replica)
		if outage > 30*time.Second {
			t.Errorf("%s: no acknowledged transfer for %v (limit 30s)", ev.name, outage)
		}
		if ev.webTier && nFailed > 0 {
			t.Errorf("%s: %d failed requests; the load balancer must hide a dead web tier", ev.name, nFailed)
			// HAProxy logs only failed, retried and redispatched requests.
			since := ev.start.Add(-time.Second).UTC().Format(time.RFC3339)
			if out, err := st.tryDocker(ctx, "compose", "-f", st.file, "logs", "--no-color", "--since", since, "haproxy"); err == nil {
				t.Logf("HAProxy's log since the web tier was killed:\n%s", out)
			}
		}
	}
}

type haEvent struct {
	name         string
	start, end   time.Time
	replicaAfter time.Duration
	// replicaAfterRestart is counted from the killed node's restart.
	replicaAfterRestart time.Duration
	webTier             bool
}

// haWaitReady waits (bounded) until the load balancer serves a ready web tier.
func haWaitReady(ctx context.Context, t *testing.T, base string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(120 * time.Second)
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("%s/readyz not ready within 120s: %v", base, err)
		}
		time.Sleep(time.Second)
	}
}

// haCustomer is a signed-in browser: its own cookie jar, no redirects
// followed (a 303 to the transfer's page is the acknowledgement).
type haCustomer struct {
	name    string
	account string
	client  *http.Client
}

func newHACustomer(ctx context.Context, t *testing.T, base, user, pass, account string) *haCustomer {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &haCustomer{name: user, account: account, client: &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/signin",
		strings.NewReader(url.Values{"username": {user}, "password": {pass}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("sign in %s: %v", user, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in %s: status %d", user, resp.StatusCode)
	}
	return c
}

// haRun is the load: transfers and what became of them.
type haRun struct {
	base       string
	memoPrefix string

	mu       sync.Mutex
	acks     map[string]time.Time // idempotency key -> first acknowledgement
	ackTimes []time.Time
	failures []haFailure // requests answered otherwise than 303, or not at all
	pending  int         // keys still without an answer when the load stopped
	total    int
}

func newHARun(base, id string) *haRun {
	return &haRun{base: base, memoPrefix: "ha " + id + " ", acks: map[string]time.Time{}}
}

// worker makes one transfer per tick until ctx ends. A transfer whose
// answer is not the acknowledgement is retried with its key, every 100 ms,
// until it is acknowledged; after ctx ends it still gets 60 s for that.
func (r *haRun) worker(ctx context.Context, from *haCustomer, to string, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		key := randomKey()
		form := url.Values{"key": {key}, "from": {from.account}, "to_number": {to}, "amount": {"0.01"},
			"memo": {fmt.Sprintf("%s%s %d", r.memoPrefix, from.name, n)}}.Encode()
		giveUp := time.Now().Add(time.Hour)
		for {
			if ctx.Err() != nil && giveUp.After(time.Now().Add(60*time.Second)) {
				giveUp = time.Now().Add(60 * time.Second)
			}
			if r.post(from, key, form) {
				break
			}
			if time.Now().After(giveUp) {
				r.mu.Lock()
				r.pending++
				r.mu.Unlock()
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// post sends one transfer and records the outcome; true if acknowledged.
func (r *haRun) post(c *haCustomer, key, form string) bool {
	req, err := http.NewRequest(http.MethodPost, r.base+"/transfers", strings.NewReader(form))
	if err != nil {
		panic(err) // a malformed URL is the test's own defect
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", r.base) // as a browser does; a POST with a session and no Origin is refused
	resp, err := c.client.Do(req)
	ok, why := false, ""
	if err != nil {
		why = "no answer"
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ok = resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), "/transfers/")
		why = strconv.Itoa(resp.StatusCode)
		if resp.Header.Get("Content-Security-Policy") == "" {
			why += " from HAProxy" // every web tier answer has one
		}
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	if !ok {
		r.failures = append(r.failures, haFailure{at: now, why: why})
		return false
	}
	if _, dup := r.acks[key]; !dup {
		r.acks[key] = now
	}
	r.ackTimes = append(r.ackTimes, now)
	return true
}

func (r *haRun) waitAcks(ctx context.Context, t *testing.T, n int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		r.mu.Lock()
		got := len(r.ackTimes)
		r.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("only %d acknowledged transfers within %v; the stack does not serve transfers", got, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitAckAfter waits until a transfer is acknowledged after since.
func (r *haRun) waitAckAfter(ctx context.Context, t *testing.T, since time.Time, limit time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		r.mu.Lock()
		ok := len(r.ackTimes) > 0 && r.ackTimes[len(r.ackTimes)-1].After(since)
		r.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("no %s within %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type haFailure struct {
	at  time.Time
	why string // HTTP status, or "no answer"
}

// window reports, for [start, end), the longest time without an
// acknowledged transfer and the failed requests by reason.
func (r *haRun) window(start, end time.Time) (outage time.Duration, failed map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	times := slices.Clone(r.ackTimes)
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	prev := start
	for _, at := range times {
		if at.Before(start) {
			continue
		}
		if !at.Before(end) {
			break
		}
		outage = max(outage, at.Sub(prev))
		prev = at
	}
	outage = max(outage, end.Sub(prev))
	failed = map[string]int{}
	for _, f := range r.failures {
		if !f.at.Before(start) && f.at.Before(end) {
			failed[f.why]++
		}
	}
	return outage, failed
}

func (r *haRun) ackedKeys() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.acks)
}

func (r *haRun) unresolved() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pending
}

func (r *haRun) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// haStack drives the compose project with the docker CLI.
type haStack struct {
	t    *testing.T
	file string
}

// compose runs `docker compose -f store/ha/compose.yml ARGS...` (bounded)
// and returns its standard output; a failure ends the test.
func (s *haStack) compose(ctx context.Context, args ...string) string {
	s.t.Helper()
	return s.docker(ctx, append([]string{"compose", "-f", s.file}, args...)...)
}

func (s *haStack) docker(ctx context.Context, args ...string) string {
	s.t.Helper()
	out, err := s.tryDocker(ctx, args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

func (s *haStack) tryDocker(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (s *haStack) containers(ctx context.Context, service string) []string {
	s.t.Helper()
	return strings.Fields(s.compose(ctx, "ps", "-a", "-q", service))
}

// kill kills a node's container (SIGKILL, as a power cut) with its restart
// policy lifted, so that it stays down until start.
func (s *haStack) kill(ctx context.Context, service string) {
	s.t.Helper()
	ids := s.containers(ctx, service)
	if len(ids) != 1 {
		s.t.Fatalf("service %s has %d containers, want 1", service, len(ids))
	}
	s.killContainer(ctx, ids[0])
}

func (s *haStack) killContainer(ctx context.Context, id string) {
	s.t.Helper()
	s.docker(ctx, "update", "--restart=no", id)
	s.docker(ctx, "kill", id)
}

func (s *haStack) start(ctx context.Context, service string) {
	s.t.Helper()
	for _, id := range s.containers(ctx, service) {
		s.startContainer(ctx, id)
	}
}

func (s *haStack) startContainer(ctx context.Context, id string) {
	s.t.Helper()
	s.docker(ctx, "start", id)
	s.docker(ctx, "update", "--restart=unless-stopped", id)
}

func (s *haStack) waitContainerHealthy(ctx context.Context, id string, limit time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		out, err := s.tryDocker(ctx, "inspect", "-f", "{{.State.Health.Status}}", id)
		if err == nil && strings.TrimSpace(out) == "healthy" {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("container %s not healthy within %v (%s %v)", id, limit, strings.TrimSpace(out), err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// patroniMember is a row of `patronictl list -f json`.
type patroniMember struct {
	Member string `json:"Member"`
	Role   string `json:"Role"`
	State  string `json:"State"`
}

// members asks any running node's patronictl for the cluster's members.
func (s *haStack) members(ctx context.Context) ([]patroniMember, error) {
	var lastErr error
	for _, node := range []string{"pg1", "pg2", "pg3"} {
		out, err := s.tryDocker(ctx, "compose", "-f", s.file, "exec", "-T", node, "patronictl", "list", "-f", "json")
		if err != nil {
			lastErr = err
			continue
		}
		var ms []patroniMember
		if err := json.Unmarshal([]byte(out), &ms); err != nil {
			return nil, fmt.Errorf("patronictl list: %w: %s", err, out)
		}
		return ms, nil
	}
	return nil, lastErr
}

func isReplica(m patroniMember) bool {
	return (m.Role == "Replica" || m.Role == "Sync Standby") && (m.State == "running" || m.State == "streaming")
}

// waitMembers polls the members (bounded) until ok says yes.
func (s *haStack) waitMembers(ctx context.Context, limit time.Duration, what string, ok func([]patroniMember) bool) []patroniMember {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ms, err := s.members(ctx)
		if err == nil && ok(ms) {
			return ms
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.t.Fatalf("%s: not within %v (members %+v, %v)", what, limit, ms, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func leaderOf(ms []patroniMember) string {
	for _, m := range ms {
		if m.Role == "Leader" && m.State == "running" {
			return m.Member
		}
	}
	return ""
}

func (s *haStack) leader(ctx context.Context) string {
	s.t.Helper()
	return leaderOf(s.waitMembers(ctx, 30*time.Second, "a running leader", func(ms []patroniMember) bool { return leaderOf(ms) != "" }))
}

func (s *haStack) waitLeaderOtherThan(ctx context.Context, old string, limit time.Duration) string {
	s.t.Helper()
	return leaderOf(s.waitMembers(ctx, limit, "a leader other than "+old, func(ms []patroniMember) bool {
		l := leaderOf(ms)
		return l != "" && l != old
	}))
}

func (s *haStack) syncStandby(ctx context.Context, limit time.Duration) string {
	s.t.Helper()
	var name string
	s.waitMembers(ctx, limit, "a synchronous standby", func(ms []patroniMember) bool {
		for _, m := range ms {
			if m.Role == "Sync Standby" && isReplica(m) {
				name = m.Member
				return true
			}
		}
		return false
	})
	return name
}

// waitReplica returns when node is a running replica again.
func (s *haStack) waitReplica(ctx context.Context, node string, limit time.Duration) time.Time {
	s.t.Helper()
	s.waitMembers(ctx, limit, node+" a replica again", func(ms []patroniMember) bool {
		for _, m := range ms {
			if m.Member == node {
				return isReplica(m)
			}
		}
		return false
	})
	return time.Now()
}

// waitHealthy waits until n members run: one leader and the others
// replicas, one of them synchronous.
func (s *haStack) waitHealthy(ctx context.Context, n int, limit time.Duration) {
	s.t.Helper()
	s.waitMembers(ctx, limit, fmt.Sprintf("%d healthy members with a synchronous standby", n), func(ms []patroniMember) bool {
		leaders, replicas, sync := 0, 0, 0
		for _, m := range ms {
			switch {
			case m.Role == "Leader" && m.State == "running":
				leaders++
			case isReplica(m):
				replicas++
				if m.Role == "Sync Standby" {
					sync++
				}
			}
		}
		return leaders == 1 && leaders+replicas == n && sync >= 1
	})
}

// psql runs a query on the leader as the database superuser (over the
// container's local socket) and returns its unaligned output.
func (s *haStack) psql(ctx context.Context, query string) string {
	s.t.Helper()
	return strings.TrimSpace(s.compose(ctx, "exec", "-T", s.leader(ctx),
		"psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", "bankwire", "-c", query))
}

func (s *haStack) accountOf(ctx context.Context, username string) string {
	s.t.Helper()
	n := s.psql(ctx, fmt.Sprintf(`SELECT a.number FROM accounts a JOIN customers c ON c.id = a.customer_id
		WHERE c.username = '%s' AND a.kind = 'checking' ORDER BY a.id LIMIT 1`, username))
	if n == "" {
		s.t.Fatalf("no checking account for %s", username)
	}
	return n
}

// transferKeys counts the stored transfers per idempotency key among those
// whose memo starts with prefix.
func (s *haStack) transferKeys(ctx context.Context, prefix string) map[string]int {
	s.t.Helper()
	out := s.psql(ctx, fmt.Sprintf(`SELECT idempotency_key, count(*) FROM transfers WHERE memo LIKE '%s%%' GROUP BY 1`, prefix))
	keys := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		key, count, ok := strings.Cut(line, "|")
		n, err := strconv.Atoi(count)
		if !ok || err != nil {
			s.t.Fatalf("unexpected psql row %q", line)
		}
		keys[key] = n
	}
	return keys
}

type haBalances struct {
	total               int64 // all accounts: always 0, the outside world owes the rest
	customers           int64 // alice's and bob's accounts
	unbalancedTransfers int64
	driftedAccounts     int64
}

func (s *haStack) balances(ctx context.Context) haBalances {
	s.t.Helper()
	out := s.psql(ctx, `SELECT
		(SELECT coalesce(sum(balance), 0) FROM accounts),
		(SELECT coalesce(sum(a.balance), 0) FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE c.username IN ('alice', 'bob')),
		(SELECT count(*) FROM (SELECT transfer_id FROM ledger_entries GROUP BY 1 HAVING sum(amount) <> 0 OR count(*) <> 2) x),
		(SELECT count(*) FROM accounts a WHERE a.balance <> (SELECT coalesce(sum(amount), 0) FROM ledger_entries e WHERE e.account_id = a.id))`)
	f := strings.Split(out, "|")
	if len(f) != 4 {
		s.t.Fatalf("unexpected psql output %q", out)
	}
	var b haBalances
	for i, p := range []*int64{&b.total, &b.customers, &b.unbalancedTransfers, &b.driftedAccounts} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			s.t.Fatalf("psql field %d %q: %v", i, f[i], err)
		}
		*p = v
	}
	return b
}
