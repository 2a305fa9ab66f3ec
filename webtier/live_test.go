package webtier_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"bankwire/webtier"
)

func TestAppTierDownThenBack(t *testing.T) {
	s := startSite(t)
	alice := s.alice()
	if p := alice.get("/accounts"); p.Status != http.StatusOK {
		t.Fatalf("accounts: %d", p.Status)
	}
	s.app.Stop()

	start := time.Now()
	p := alice.get("/accounts")
	t.Logf("503 page after %v with the app tier stopped", time.Since(start))
	if p.Status != http.StatusServiceUnavailable {
		t.Fatalf("app tier down: %d %s", p.Status, snippet(p.Body))
	}
	mustContain(t, p, "The bank is briefly unavailable", `class="site-header"`)
	mustNotContain(t, p, "UNAVAILABLE", "dial", "connection refused", "127.0.0.1")
	if p.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if p := alice.get("/readyz"); p.Status != http.StatusServiceUnavailable {
		t.Errorf("readyz with the app tier down: %d", p.Status)
	}
	if p := alice.get("/healthz"); p.Status != http.StatusOK {
		t.Errorf("healthz with the app tier down: %d (liveness must not depend on other tiers)", p.Status)
	}
	// A signed-out page that needs nothing from the app tier still renders.
	if p := s.browser().get("/signin"); p.Status != http.StatusOK {
		t.Errorf("sign-in page with the app tier down: %d", p.Status)
	}

	s.app.Restart()
	// Pages come back on their own: the client reconnects. Bounded wait.
	var last page
	for i := 0; i < 50; i++ {
		if last = alice.get("/accounts"); last.Status == http.StatusOK {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last.Status != http.StatusOK {
		t.Fatalf("after restart: %d", last.Status)
	}
	mustContain(t, last, "Your accounts")
	if p := alice.get("/readyz"); p.Status != http.StatusOK {
		t.Errorf("readyz after restart: %d", p.Status)
	}
}

// blackHole accepts connections and never says a word: the worst kind of
// slow app tier. Only the per-request deadline can end a page's wait.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func TestSilentAppTierGives503(t *testing.T) {
	cfg := webtier.DefaultConfig()
	cfg.AppTierAddrs = []string{blackHole(t)}
	cfg.CallTimeout = time.Second
	cfg.DialTimeout = 5 * time.Second // longer than the call: the request deadline must win
	s := startWeb(t, nil, cfg)
	b := s.browser()
	u, _ := url.Parse(s.baseURL)
	b.jar.SetCookies(u, []*http.Cookie{{Name: "bankwire_session", Value: strings.Repeat("t", 43), Path: "/"}})
	start := time.Now()
	p := b.get("/accounts")
	t.Logf("503 page after %v from a silent app tier (call timeout %v)", time.Since(start), cfg.CallTimeout)
	if p.Status != http.StatusServiceUnavailable {
		t.Fatalf("silent app tier: %d %s", p.Status, snippet(p.Body))
	}
	mustContain(t, p, "The bank is briefly unavailable")
}

// sseReader reads a live-update stream line by line in the background.
type sseReader struct {
	lines chan string
	body  io.Closer
}

// openEvents opens /events as a page does and waits until it is connected.
func openEvents(t *testing.T, b *browser) *sseReader {
	t.Helper()
	r := openEventsAfter(t, b, "")
	r.waitFor(t, ": connected", 10*time.Second)
	return r
}

// openEventsAfter opens /events; a non-empty lastID is sent as
// Last-Event-ID, as EventSource does when it reconnects. It does not wait
// for the stream's first lines.
func openEventsAfter(t *testing.T, b *browser, lastID string) *sseReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.site.baseURL+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	c := &http.Client{Transport: b.c.Transport, Jar: b.jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET /events: %v", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body.Close()
		t.Fatalf("GET /events: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r := &sseReader{lines: make(chan string, 256), body: resp.Body}
	go func() {
		defer close(r.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			select {
			case r.lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { resp.Body.Close() })
	return r
}

// waitFor returns the first line containing want, failing after d.
func (r *sseReader) waitFor(t *testing.T, want string, d time.Duration) string {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				t.Fatalf("stream ended before %q", want)
			}
			if strings.Contains(line, want) {
				return line
			}
		case <-timeout:
			t.Fatalf("no %q on the stream within %v", want, d)
		}
	}
}

func TestLiveEvents(t *testing.T) {
	s := startSite(t)
	alice, bob := s.alice(), s.bob()
	aChk := alice.checking()
	stream := openEvents(t, alice)

	bob.transfer(bob.checking(), aChk, "3.21", "live")
	stream.waitFor(t, "event: balance", 10*time.Second)
	data := stream.waitFor(t, "data: ", 5*time.Second)
	if !strings.Contains(data, `"number":"`+aChk+`"`) || !strings.Contains(data, `"totals"`) {
		t.Errorf("balance event for the wrong account or without totals: %s", data)
	}
	if want := alice.balance(aChk); !strings.Contains(data, `"balance":"`+want+`"`) {
		t.Errorf("balance event %s does not carry the new balance %s", data, want)
	}

	conv := bob.post("/chat", url.Values{"username": {"alice"}}).Location
	bob.post(conv+"/messages", url.Values{"body": {"<b>live</b> hello"}})
	stream.waitFor(t, "event: chat", 10*time.Second)
	data = stream.waitFor(t, "data: ", 5*time.Second)
	// JSON escapes markup, and the data line stays one line.
	if !strings.Contains(data, `\u003cb\u003elive\u003c/b\u003e hello`) || !strings.Contains(data, `"mine":false`) {
		t.Errorf("chat event: %s", data)
	}
}

func TestEventsNeedASession(t *testing.T) {
	s := startSite(t)
	p := s.browser().get("/events")
	if p.Status != http.StatusNoContent {
		t.Errorf("signed-out /events: %d, want 204 so EventSource stops", p.Status)
	}
}

func TestStreamLimit(t *testing.T) {
	s := startSite(t, withConfig(func(c *webtier.Config) { c.MaxStreams = 1 }))
	alice := s.alice()
	openEvents(t, alice)
	// The second stream is turned away politely: an empty stream with a
	// long retry, not an error page the script cannot read.
	p := alice.get("/events")
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "retry:") || strings.Contains(p.Body, "connected") {
		t.Errorf("stream over the limit: %d %q", p.Status, p.Body)
	}
}

// Run serves, and on cancel shuts down: open streams end, Run returns.
func TestRunAndGracefulShutdown(t *testing.T) {
	s := startSite(t)
	cfg := s.cfg
	cfg.Addr = freeAddr(t)
	cfg.AdminAddr = freeAddr(t)
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.ReadTimeout = time.Second // shorter than the stream's life below
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- webtier.Run(ctx, cfg, testLogger()) }()

	var err error
	for i := 0; i < 100; i++ {
		if err = webtier.Healthcheck(context.Background(), cfg.Addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("healthcheck never passed: %v", err)
	}
	resp, err := http.Get("http://" + cfg.AdminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "bankwire_webtier_http_requests_total") {
		t.Error("admin /metrics lacks the request counter")
	}

	site := &site{t: t, app: s.app, cfg: cfg, baseURL: "http://" + cfg.Addr, srv: s.srv}
	b := site.browser()
	b.c.Transport = http.DefaultTransport
	b.signIn("alice", "alice-demo-pass")
	stream := openEvents(t, b)
	// The stream outlives the server's read timeout (keep-alives every
	// second, read timeout one second).
	for range 3 {
		stream.waitFor(t, ": keep-alive", 5*time.Second)
	}

	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel: an open stream blocks shutdown?")
	}
	for range stream.lines { // ends when the server closed the stream
	}
	if err := webtier.Healthcheck(context.Background(), cfg.Addr); err == nil {
		t.Error("healthcheck passes after shutdown")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestLoadConfig(t *testing.T) {
	env := map[string]string{
		"WEBTIER_ADDR":            ":9999",
		"WEBTIER_APPTIER_ADDRS":   "a:1, b:2",
		"APPTIER_SECRET":          "s3cret",
		"WEBTIER_TRUSTED_PROXIES": "10.0.0.0/8,192.168.1.1",
		"WEBTIER_SECURE_COOKIES":  "true",
		"WEBTIER_CALL_TIMEOUT":    "750ms",

		"WEBTIER_MAX_STREAMS_PER_SESSION": "2",
	}
	cfg, err := webtier.LoadConfig([]string{"-conns-per-addr", "4", "-max-streams-per-ip", "3"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":9999" || len(cfg.AppTierAddrs) != 2 || cfg.AppTierAddrs[1] != "b:2" || cfg.AppTierSecret != "s3cret" ||
		!cfg.SecureCookies || cfg.CallTimeout != 750*time.Millisecond || cfg.ConnsPerAddr != 4 || len(cfg.TrustedProxies) != 2 ||
		cfg.MaxStreamsPerSession != 2 || cfg.MaxStreamsPerIP != 3 {
		t.Errorf("config: %+v", cfg)
	}
	// Flags win over the environment.
	cfg, err = webtier.LoadConfig([]string{"-addr", ":7000"}, func(k string) string { return env[k] })
	if err != nil || cfg.Addr != ":7000" {
		t.Errorf("flag over env: %q %v", cfg.Addr, err)
	}
	for name, bad := range map[string]map[string]string{
		"bad duration": {"WEBTIER_CALL_TIMEOUT": "soon"},
		"bad bool":     {"WEBTIER_HTTPS": "maybe"},
		"bad int":      {"WEBTIER_CONNS_PER_ADDR": "many"},
		"bad cidr":     {"WEBTIER_TRUSTED_PROXIES": "10.0.0.0/99"},
		"zero conns":   {"WEBTIER_CONNS_PER_ADDR": "0"},
		"zero streams": {"WEBTIER_MAX_STREAMS_PER_IP": "0"},
	} {
		if _, err := webtier.LoadConfig(nil, func(k string) string { return bad[k] }); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := webtier.LoadConfig([]string{"-nope"}, func(string) string { return "" }); err == nil {
		t.Error("unknown flag accepted")
	}
	if _, err := webtier.New(webtier.DefaultConfig(), nil, nil); err == nil || errors.Is(err, nil) {
		t.Error("New without a client accepted")
	}
}
