package webtier_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"bankwire/apptier/apptiertest"
	"bankwire/store/storetest"
	"bankwire/webtier"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// site is a web tier in front of a real in-process app tier and database.
type site struct {
	t       testing.TB
	app     *apptiertest.Server
	web     *webtier.Server
	srv     *httptest.Server
	cfg     webtier.Config
	baseURL string
}

type siteOptions struct {
	app []apptiertest.Option
	cfg func(*webtier.Config)
}

type siteOption func(*siteOptions)

func withApp(opts ...apptiertest.Option) siteOption {
	return func(o *siteOptions) { o.app = append(o.app, opts...) }
}

func withConfig(f func(*webtier.Config)) siteOption {
	return func(o *siteOptions) { o.cfg = f }
}

func testLogger() *slog.Logger {
	if os.Getenv("BANKWIRE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startSite starts an app tier (with demo data) and a web tier in front of it.
func startSite(t testing.TB, opts ...siteOption) *site {
	t.Helper()
	var o siteOptions
	for _, opt := range opts {
		opt(&o)
	}
	app := apptiertest.Start(t, o.app...)
	cfg := webtier.DefaultConfig()
	cfg.AppTierAddrs = []string{app.Addr}
	cfg.AppTierSecret = app.Secret
	cfg.SignInLimit = 1000 // tests sign in often from one IP; the rate-limit test lowers it
	cfg.SignUpLimit = 1000
	cfg.StreamKeepAlive = time.Second
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	return startWeb(t, app, cfg)
}

func startWeb(t testing.TB, app *apptiertest.Server, cfg webtier.Config) *site {
	t.Helper()
	logger := testLogger()
	client, err := webtier.NewClient(cfg, logger)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	web, err := webtier.New(cfg, client, logger)
	if err != nil {
		t.Fatalf("webtier.New: %v", err)
	}
	srv := httptest.NewUnstartedServer(web)
	srv.Config.RegisterOnShutdown(web.CloseStreams)
	if cfg.SecureCookies {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(func() {
		web.CloseStreams()
		srv.Close()
		client.Close()
	})
	return &site{t: t, app: app, web: web, srv: srv, cfg: cfg, baseURL: srv.URL}
}

// browser is a cookie-keeping HTTP client that, like a test of a browser,
// does not follow redirects by itself so tests can see them.
type browser struct {
	t    testing.TB
	site *site
	c    *http.Client
	jar  *cookiejar.Jar
	// noOrigin makes it send POSTs without an Origin header, as old
	// browsers and non-browser clients do; by default it sends this site's
	// origin, as every current browser does.
	noOrigin bool
}

func (s *site) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		s.t.Fatal(err)
	}
	b := &browser{t: s.t, site: s, jar: jar}
	b.c = &http.Client{Transport: originTransport{b: b, next: s.srv.Client().Transport}, Jar: jar, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return b
}

// originTransport sends the site's origin in an Origin header on every
// request but GET and HEAD, as every current browser does, unless the
// browser is set to noOrigin.
type originTransport struct {
	b    *browser
	next http.RoundTripper
}

func (t originTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead && !t.b.noOrigin && req.Header.Get("Origin") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("Origin", t.b.site.baseURL)
	}
	return t.next.RoundTrip(req)
}

type page struct {
	Status   int
	Body     string
	Header   http.Header
	Location string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		b.t.Fatalf("read %s: %v", req.URL, err)
	}
	return page{Status: resp.StatusCode, Body: string(body), Header: resp.Header, Location: resp.Header.Get("Location")}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.site.baseURL+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// follow GETs path and follows redirects (at most 5), like a browser.
func (b *browser) follow(path string) page {
	b.t.Helper()
	p := b.get(path)
	for i := 0; i < 5 && p.Status >= 300 && p.Status < 400; i++ {
		p = b.get(p.Location)
	}
	return p
}

func (b *browser) post(path string, form url.Values, headers ...string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.site.baseURL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

// signIn signs in and checks it worked.
func (b *browser) signIn(username, password string) {
	b.t.Helper()
	p := b.post("/signin", url.Values{"username": {username}, "password": {password}})
	if p.Status != http.StatusSeeOther || p.Location != "/accounts" {
		b.t.Fatalf("sign in as %s: status %d location %q body %s", username, p.Status, p.Location, snippet(p.Body))
	}
}

func (s *site) signedIn(username, password string) *browser {
	s.t.Helper()
	b := s.browser()
	b.signIn(username, password)
	return b
}

func (s *site) alice() *browser { s.t.Helper(); return s.signedIn("alice", "alice-demo-pass") }
func (s *site) bob() *browser   { s.t.Helper(); return s.signedIn("bob", "bob-demo-pass") }

var (
	balanceRe = regexp.MustCompile(`data-balance-for="([^"]+)">([^<]+)<`)
	keyRe     = regexp.MustCompile(`name="key" value="([0-9a-f]{32})"`)
	kindRe    = regexp.MustCompile(`href="/accounts/([0-9]+)">\s*<span class="account-kind">([^<]+)</span>`)
)

// accounts returns the customer's accounts as the overview shows them:
// kind ("Checking"/"Savings") → number, and number → balance text.
func (b *browser) accounts() (byKind map[string]string, balance map[string]string) {
	b.t.Helper()
	p := b.get("/accounts")
	if p.Status != http.StatusOK {
		b.t.Fatalf("GET /accounts: %d %s", p.Status, snippet(p.Body))
	}
	byKind, balance = map[string]string{}, map[string]string{}
	for _, m := range kindRe.FindAllStringSubmatch(p.Body, -1) {
		if _, dup := byKind[m[2]]; !dup {
			byKind[m[2]] = m[1]
		}
	}
	for _, m := range balanceRe.FindAllStringSubmatch(p.Body, -1) {
		balance[m[1]] = htmlUnescape(m[2])
	}
	if len(byKind) == 0 {
		b.t.Fatalf("no accounts on the overview: %s", snippet(p.Body))
	}
	return byKind, balance
}

func (b *browser) checking() string { b.t.Helper(); k, _ := b.accounts(); return k["Checking"] }
func (b *browser) savings() string  { b.t.Helper(); k, _ := b.accounts(); return k["Savings"] }

func (b *browser) balance(number string) string {
	b.t.Helper()
	_, bal := b.accounts()
	return bal[number]
}

// formKey GETs a fresh transfer form and returns its idempotency key.
func (b *browser) formKey() string {
	b.t.Helper()
	p := b.get("/transfers/new")
	m := keyRe.FindStringSubmatch(p.Body)
	if p.Status != http.StatusOK || m == nil {
		b.t.Fatalf("transfer form: %d, key found %v", p.Status, m != nil)
	}
	return m[1]
}

// transfer makes a transfer through the confirmation step and returns the
// result page's path.
func (b *browser) transfer(from, to, amount, memo string) string {
	b.t.Helper()
	form := url.Values{"key": {b.formKey()}, "from": {from}, "to_number": {to}, "amount": {amount}, "memo": {memo}}
	p := b.post("/transfers/confirm", form)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Check your transfer") {
		b.t.Fatalf("confirm: %d %s", p.Status, snippet(p.Body))
	}
	p = b.post("/transfers", form)
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/transfers/") {
		b.t.Fatalf("transfer: %d %q %s", p.Status, p.Location, snippet(p.Body))
	}
	return p.Location
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&#43;", "+", "&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'").Replace(s)
}

// snippet shortens a body for failure messages: the main element if found.
func snippet(body string) string {
	if i := strings.Index(body, `<main`); i >= 0 {
		body = body[i:]
	}
	if len(body) > 1500 {
		body = body[:1500] + "…"
	}
	return body
}

func mustContain(t testing.TB, p page, parts ...string) {
	t.Helper()
	for _, s := range parts {
		if !strings.Contains(p.Body, s) {
			t.Errorf("page (status %d) lacks %q:\n%s", p.Status, s, snippet(p.Body))
		}
	}
}

func mustNotContain(t testing.TB, p page, parts ...string) {
	t.Helper()
	for _, s := range parts {
		if strings.Contains(p.Body, s) {
			t.Errorf("page (status %d) contains %q:\n%s", p.Status, s, snippet(p.Body))
		}
	}
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
