package webtier_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"bankwire/proto/wire"
	"bankwire/store"
)

// BenchmarkAccountsPage measures the signed-in accounts overview through all
// three tiers (web tier handler → bankwire protocol → app tier →
// PostgreSQL) beside a one-process baseline: an HTTP handler that checks the
// same session and lists the same accounts straight from the database, then
// renders the very same template. Both run in the same benchmark, over real
// HTTP with keep-alive from the same number of concurrent clients, and the
// ratio of their request rates is reported (target ≥ 0.75).
//
//	go test -run '^$' -bench AccountsPage -benchtime 2000x ./webtier/
func BenchmarkAccountsPage(b *testing.B) {
	s := startSite(b)
	alice := s.alice()
	u, _ := url.Parse(s.baseURL)
	var token string
	for _, c := range alice.jar.Cookies(u) {
		if c.Name == "bankwire_session" {
			token = c.Value
		}
	}
	if token == "" {
		b.Fatal("no session cookie after sign-in")
	}
	st := s.app.Store
	customer := wire.Customer{Username: "alice", DisplayName: "Alice Johnson"}

	// The baseline does in one process what the three tiers do between
	// them: validate the session (as the app tier does: by token hash,
	// active and not idle) and list the accounts, then render.
	baseline := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("bankwire_session")
		if err != nil {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		sum := sha256.Sum256([]byte(c.Value))
		sess, err := st.SessionByTokenHash(ctx, sum[:])
		if err != nil || !sess.Active(time.Now()) || time.Since(sess.LastSeenAt) > 15*time.Minute {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		accts, err := st.ListAccounts(ctx, sess.CustomerID)
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		s.web.RenderAccountsPage(w, r, customer, toProtoAccounts(accts))
	}))
	defer baseline.Close()

	const clients = 8
	ctx := context.Background()
	// Both must serve the same page before they are compared.
	bodyBase := fetchOnce(b, baseline.URL+"/accounts", token)
	bodyTiers := fetchOnce(b, s.baseURL+"/accounts", token)
	if len(bodyBase) == 0 || len(bodyTiers) == 0 || !sameBalances(bodyBase, bodyTiers) {
		b.Fatalf("baseline and three-tier pages differ")
	}

	// Alternate the two in rounds so warm-up and background noise on a
	// shared machine fall on both alike.
	const rounds = 4
	var base, tiers loadResult
	b.ResetTimer()
	for r := range rounds {
		n := b.N / rounds
		if r == rounds-1 {
			n = b.N - n*(rounds-1)
		}
		if n == 0 {
			continue
		}
		base = base.merge(load(ctx, b, baseline.URL+"/accounts", token, n, clients))
		tiers = tiers.merge(load(ctx, b, s.baseURL+"/accounts", token, n, clients))
	}
	b.StopTimer()
	base.finish()
	tiers.finish()

	b.ReportMetric(tiers.rate, "3tier-req/s")
	b.ReportMetric(base.rate, "baseline-req/s")
	b.ReportMetric(tiers.rate/base.rate, "ratio")
	b.ReportMetric(ms(tiers.p50), "3tier-p50-ms")
	b.ReportMetric(ms(tiers.p99), "3tier-p99-ms")
	b.ReportMetric(ms(base.p50), "baseline-p50-ms")
	b.ReportMetric(ms(base.p99), "baseline-p99-ms")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func toProtoAccounts(accts []store.Account) []wire.Account {
	out := make([]wire.Account, 0, len(accts))
	for _, a := range accts {
		out = append(out, wire.Account{Number: a.Number, Kind: a.Kind, Currency: a.Currency, Balance: a.Balance, CreatedAt: a.CreatedAt})
	}
	return out
}

func sameBalances(a, b string) bool {
	ma, mb := balanceRe.FindAllString(a, -1), balanceRe.FindAllString(b, -1)
	return len(ma) > 0 && slices.Equal(ma, mb)
}

func fetchOnce(b *testing.B, target, token string) string {
	b.Helper()
	req, _ := http.NewRequest(http.MethodGet, target, nil)
	req.AddCookie(&http.Cookie{Name: "bankwire_session", Value: token})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d", target, resp.StatusCode)
	}
	return string(body)
}

type loadResult struct {
	lat      []time.Duration
	elapsed  time.Duration
	rate     float64
	p50, p99 time.Duration
}

func (r loadResult) merge(o loadResult) loadResult {
	return loadResult{lat: append(r.lat, o.lat...), elapsed: r.elapsed + o.elapsed}
}

func (r *loadResult) finish() {
	n := len(r.lat)
	if n == 0 {
		return
	}
	slices.Sort(r.lat)
	r.rate = float64(n) / r.elapsed.Seconds()
	r.p50 = r.lat[n/2]
	r.p99 = r.lat[min(n-1, n*99/100)]
}

// load sends n GETs from `clients` concurrent clients and measures them.
func load(ctx context.Context, b *testing.B, target, token string, n, clients int) loadResult {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	lat := make([]time.Duration, n)
	var next int
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
				req.AddCookie(&http.Cookie{Name: "bankwire_session", Value: token})
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				lat[i] = time.Since(t0)
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		b.Fatalf("GET %s: %v", target, firstErr)
	}
	return loadResult{lat: lat, elapsed: elapsed}
}
