package webtier_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"bankwire/apptier/apptiertest"
	"bankwire/webtier"
)

func TestSignedOutPages(t *testing.T) {
	s := startSite(t)
	b := s.browser()

	p := b.get("/signin")
	if p.Status != http.StatusOK {
		t.Fatalf("GET /signin: %d", p.Status)
	}
	mustContain(t, p, "Sign in", `name="username"`, `autocomplete="current-password"`, "alice-demo-pass", "bob-demo-pass",
		`class="skip-link" href="#main"`)

	p = b.get("/signup")
	if p.Status != http.StatusOK {
		t.Fatalf("GET /signup: %d", p.Status)
	}
	mustContain(t, p, "Open an account", "At least 8 characters; 15 or more is better", `autocomplete="new-password"`)

	if p := b.get("/"); p.Status != http.StatusSeeOther || p.Location != "/signin" {
		t.Errorf("GET / signed out: %d %q", p.Status, p.Location)
	}
	for _, path := range []string{"/accounts", "/transfers/new", "/payees", "/chat", "/chat/1", "/accounts/new"} {
		p := b.get(path)
		if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/signin?next=") {
			t.Errorf("GET %s signed out: %d %q, want redirect to sign-in", path, p.Status, p.Location)
		}
	}
	// The flash travels with the redirect and shows once.
	p = b.follow("/accounts")
	mustContain(t, p, "Please sign in to continue.")
	if p := b.get("/signin"); strings.Contains(p.Body, "Please sign in to continue.") {
		t.Error("flash shown twice")
	}

	if p := b.get("/healthz"); p.Status != http.StatusOK {
		t.Errorf("healthz: %d", p.Status)
	}
	if p := b.get("/readyz"); p.Status != http.StatusOK {
		t.Errorf("readyz: %d %s", p.Status, p.Body)
	}
	for _, a := range []string{"/static/app.css", "/static/app.js", "/static/favicon.svg"} {
		p := b.get(a)
		if p.Status != http.StatusOK || p.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: %d cache %q", a, p.Status, p.Header.Get("Cache-Control"))
		}
	}
	// Fingerprinted asset URLs in pages are cacheable for long.
	m := regexp.MustCompile(`href="(/static/app\.css\?v=[0-9a-f]+)"`).FindStringSubmatch(b.get("/signin").Body)
	if m == nil {
		t.Fatal("no fingerprinted stylesheet link")
	}
	if p := b.get(m[1]); !strings.Contains(p.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("fingerprinted asset cache: %q", p.Header.Get("Cache-Control"))
	}
	p = b.get("/no/such/page")
	if p.Status != http.StatusNotFound {
		t.Errorf("unknown path: %d", p.Status)
	}
	mustContain(t, p, "We couldn’t find that page", `class="site-header"`)
	if p := b.get("/signout"); p.Status != http.StatusMethodNotAllowed {
		t.Errorf("GET /signout: %d, want 405 (sign out is POST only)", p.Status)
	}
}

func TestSignInAndEveryPage(t *testing.T) {
	s := startSite(t)
	b := s.alice()
	byKind, bal := b.accounts()
	chk, sav := byKind["Checking"], byKind["Savings"]
	if chk == "" || sav == "" {
		t.Fatalf("alice's accounts: %v", byKind)
	}
	if !strings.HasPrefix(bal[chk], "€") && !strings.HasPrefix(bal[chk], "$") && !strings.Contains(bal[chk], ".") {
		t.Errorf("balance text %q does not look like money", bal[chk])
	}
	if p := b.get("/"); p.Location != "/accounts" {
		t.Errorf("GET / signed in: %q", p.Location)
	}
	if p := b.get("/signin"); p.Location != "/accounts" {
		t.Errorf("GET /signin signed in: %q", p.Location)
	}
	pages := map[string][]string{
		"/accounts":                  {"Your accounts", "Total balance", "Alice", `aria-current="page">Accounts`, `data-live="on"`},
		"/accounts/" + chk:           {"Checking account", "Activity", "<table class=\"history\""},
		"/accounts/new":              {"Open an account", `name="kind"`},
		"/transfers/new":             {"Move money", `name="key"`, `name="amount"`, `inputmode="decimal"`},
		"/transfers/new?from=" + sav: {`value="` + sav + `" selected`},
		"/payees":                    {"Payees", "Add a payee"},
		"/chat":                      {"Messages", "New conversation"},
	}
	if p := b.get("/no/such/page"); p.Status != http.StatusNotFound || !strings.Contains(p.Body, "Go to your accounts") {
		t.Errorf("signed-in 404: %d, layout signed in: %v", p.Status, strings.Contains(p.Body, "Go to your accounts"))
	}
	for path, want := range pages {
		p := b.get(path)
		if p.Status != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, p.Status, snippet(p.Body))
			continue
		}
		mustContain(t, p, want...)
		if cc := p.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("GET %s: Cache-Control %q, want no-store", path, cc)
		}
	}
}

func TestHistoryPaging(t *testing.T) {
	s := startSite(t)
	b := s.alice()
	chk, sav := b.checking(), b.savings()
	// Enough transfers for more than one page of history.
	for i := 0; i < 22; i++ {
		b.transfer(chk, sav, "0.01", "paging")
	}
	p := b.get("/accounts/" + chk)
	m := regexp.MustCompile(`href="(/accounts/` + chk + `\?cursor=[^"]+)" rel="next"`).FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no Older link on a long history:\n%s", snippet(p.Body))
	}
	next := htmlUnescape(m[1])
	p2 := b.get(next)
	if p2.Status != http.StatusOK {
		t.Fatalf("GET %s: %d", next, p2.Status)
	}
	mustContain(t, p2, "← Newest")
	if p := b.get("/accounts/" + chk + "?cursor=" + url.QueryEscape("not-a-cursor")); p.Status != http.StatusBadRequest {
		t.Errorf("forged cursor: %d, want 400", p.Status)
	}
	if p := b.get("/accounts/" + chk + "?cursor=" + strings.Repeat("x", 5000)); p.Status != http.StatusBadRequest {
		t.Errorf("oversized cursor: %d, want 400", p.Status)
	}
}

func TestSignInFailures(t *testing.T) {
	s := startSite(t)
	b := s.browser()
	// Successful sign-ins first: the app tier slows an IP down after
	// failures, and all of these come from 127.0.0.1.
	// next is only ever a local path.
	for _, next := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example"} {
		p := b.post("/signin", url.Values{"username": {"alice"}, "password": {"alice-demo-pass"}, "next": {next}})
		if p.Location != "/accounts" {
			t.Errorf("next=%q: %d redirected to %q %s", next, p.Status, p.Location, snippet(p.Body))
		}
	}
	p := b.post("/signin", url.Values{"username": {"alice"}, "password": {"alice-demo-pass"}, "next": {"/payees"}})
	if p.Location != "/payees" {
		t.Errorf("local next: %q", p.Location)
	}
	wrong := b.post("/signin", url.Values{"username": {"alice"}, "password": {"not-her-password"}})
	unknown := b.post("/signin", url.Values{"username": {"nobody-here"}, "password": {"not-her-password"}})
	for name, p := range map[string]page{"wrong password": wrong, "unknown user": unknown} {
		if p.Status != http.StatusUnauthorized {
			t.Errorf("%s: status %d", name, p.Status)
		}
		mustContain(t, p, "The username or password is incorrect.", `value="`)
		if c := p.Header.Get("Set-Cookie"); strings.Contains(c, "bankwire_session=") && !strings.Contains(c, "Max-Age=0") {
			t.Errorf("%s set a session cookie: %s", name, c)
		}
	}
	empty := b.post("/signin", url.Values{})
	if empty.Status != http.StatusUnprocessableEntity {
		t.Errorf("empty sign-in: %d", empty.Status)
	}
	mustContain(t, empty, "Enter your username.", "Enter your password.", `aria-invalid="true"`)
	long := b.post("/signin", url.Values{"username": {strings.Repeat("a", 10000)}, "password": {"x"}})
	if long.Status != http.StatusUnprocessableEntity {
		t.Errorf("oversized username: %d", long.Status)
	}
	bad := b.post("/signin", url.Values{"username": {"al\x00ice"}, "password": {"x"}})
	if bad.Status != http.StatusUnprocessableEntity {
		t.Errorf("control character username: %d", bad.Status)
	}
}

func TestSignUp(t *testing.T) {
	s := startSite(t)
	b := s.browser()
	cases := []struct {
		name string
		form url.Values
		want string
	}{
		{"short password", url.Values{"username": {"carol"}, "display_name": {"Carol"}, "password": {"short"}, "password_confirm": {"short"}}, "Use at least 8 characters"},
		{"mismatch", url.Values{"username": {"carol"}, "display_name": {"Carol"}, "password": {"correct horse battery"}, "password_confirm": {"correct horse batteryX"}}, "The two passwords do not match."},
		{"taken", url.Values{"username": {"alice"}, "display_name": {"Alice 2"}, "password": {"correct horse battery"}, "password_confirm": {"correct horse battery"}}, "That username is taken"},
		{"bad username", url.Values{"username": {"a b"}, "display_name": {"AB"}, "password": {"correct horse battery"}, "password_confirm": {"correct horse battery"}}, "Use only letters"},
		{"common password", url.Values{"username": {"carol"}, "display_name": {"Carol"}, "password": {"password123"}, "password_confirm": {"password123"}}, "most common passwords"},
		{"empty", url.Values{}, "Choose a username."},
		// Names are counted in characters, as the message says.
		{"long name", url.Values{"username": {"carol"}, "display_name": {strings.Repeat("Я", 65)}, "password": {"correct horse battery"}, "password_confirm": {"correct horse battery"}}, "at most 64 characters"},
	}
	for _, c := range cases {
		p := b.post("/signup", c.form)
		if p.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d", c.name, p.Status)
		}
		mustContain(t, p, c.want)
	}
	p := b.post("/signup", url.Values{"username": {"carol"}, "display_name": {"Carol <script>"}, "password": {"correct horse battery"}, "password_confirm": {"correct horse battery"}})
	if p.Status != http.StatusSeeOther || p.Location != "/accounts" {
		t.Fatalf("sign up: %d %q %s", p.Status, p.Location, snippet(p.Body))
	}
	home := b.get("/accounts")
	mustContain(t, home, "Welcome to bankwire!", "Carol &lt;script&gt;", "Checking")
	mustNotContain(t, home, "Carol <script>")
	// 64 characters of two bytes each: a name the app tier accepts.
	long := strings.Repeat("Я", 64)
	p = s.browser().post("/signup", url.Values{"username": {"yakov"}, "display_name": {long}, "password": {"correct horse battery"}, "password_confirm": {"correct horse battery"}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("sign up with a 64-character name: %d %s", p.Status, snippet(p.Body))
	}
}

func TestSignOut(t *testing.T) {
	s := startSite(t)
	b := s.alice()
	p := b.post("/signout", nil)
	if p.Status != http.StatusSeeOther || p.Location != "/signin" {
		t.Fatalf("sign out: %d %q", p.Status, p.Location)
	}
	if c := p.Header.Get("Set-Cookie"); !strings.Contains(c, "bankwire_session=;") || !strings.Contains(c, "Max-Age=0") {
		t.Errorf("sign out did not clear the cookie: %q", c)
	}
	mustContain(t, b.get("/signin"), "You have signed out.")
	if p := b.get("/accounts"); p.Status != http.StatusSeeOther {
		t.Errorf("after sign out /accounts: %d", p.Status)
	}
}

// The token is revoked at the app tier too: replaying the old cookie fails.
func TestSignOutRevokesToken(t *testing.T) {
	s := startSite(t)
	b := s.alice()
	u, _ := url.Parse(s.baseURL)
	old := b.jar.Cookies(u)
	b.post("/signout", nil)
	replay := s.browser()
	replay.jar.SetCookies(u, old)
	p := replay.get("/accounts")
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/signin") {
		t.Errorf("replayed cookie after sign out: %d %q", p.Status, p.Location)
	}
}

func TestNewSessionAtSignIn(t *testing.T) {
	s := startSite(t)
	b := s.alice()
	u, _ := url.Parse(s.baseURL)
	first := b.jar.Cookies(u)
	b.signIn("alice", "alice-demo-pass")
	second := b.jar.Cookies(u)
	if len(first) == 0 || len(second) == 0 || first[0].Value == second[0].Value {
		t.Fatal("sign-in did not issue a new session token")
	}
	// The replaced token no longer works.
	replay := s.browser()
	replay.jar.SetCookies(u, first)
	if p := replay.get("/accounts"); p.Status != http.StatusSeeOther {
		t.Errorf("old token after new sign-in: %d", p.Status)
	}
}

func TestCookieFlagsAndHeaders(t *testing.T) {
	t.Run("http", func(t *testing.T) {
		s := startSite(t)
		b := s.browser()
		p := b.post("/signin", url.Values{"username": {"alice"}, "password": {"alice-demo-pass"}})
		c := findCookie(t, p, "bankwire_session")
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure {
			t.Errorf("cookie flags: %+v", c)
		}
		h := b.get("/accounts").Header
		checkSecurityHeaders(t, h)
		if h.Get("Strict-Transport-Security") != "" {
			t.Error("HSTS over plain HTTP")
		}
	})
	t.Run("https", func(t *testing.T) {
		s := startSite(t, withConfig(func(c *webtier.Config) { c.SecureCookies = true }))
		b := s.browser()
		p := b.post("/signin", url.Values{"username": {"alice"}, "password": {"alice-demo-pass"}})
		c := findCookie(t, p, "__Host-bankwire_session")
		if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
			t.Errorf("cookie flags: %+v", c)
		}
		h := b.get("/accounts").Header
		checkSecurityHeaders(t, h)
		if !strings.Contains(h.Get("Strict-Transport-Security"), "max-age=") {
			t.Errorf("HSTS: %q", h.Get("Strict-Transport-Security"))
		}
	})
}

func findCookie(t *testing.T, p page, name string) *http.Cookie {
	t.Helper()
	for _, line := range p.Header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err == nil && c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s cookie in %q", name, p.Header.Values("Set-Cookie"))
	return nil
}

func checkSecurityHeaders(t *testing.T, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "script-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP allows unsafe code: %q", csp)
	}
	want := map[string]string{
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "same-origin",
		"Cache-Control":          "no-store",
	}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
}

// No template may use inline script, style or event handlers: the CSP
// would block them, so the page would silently break.
func TestNoInlineCode(t *testing.T) {
	s := startSite(t)
	b := s.alice()
	inline := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle="|\son[a-z]+="|javascript:`)
	for _, path := range []string{"/accounts", "/transfers/new", "/payees", "/chat", "/accounts/new", "/signin", "/no-such"} {
		p := b.get(path)
		if loc := inline.FindStringIndex(p.Body); loc != nil {
			t.Errorf("%s has inline code near %q", path, p.Body[loc[0]:min(len(p.Body), loc[1]+40)])
		}
	}
}

func TestCrossSitePostRejected(t *testing.T) {
	s := startSite(t)
	alice := s.alice()
	chk, sav := alice.checking(), alice.savings()
	before := alice.balance(chk)
	form := url.Values{"key": {alice.formKey()}, "from": {chk}, "to_number": {sav}, "amount": {"1.00"}}
	attacks := map[string][]string{
		"sec-fetch-site cross-site": {"Sec-Fetch-Site", "cross-site"},
		"foreign origin":            {"Origin", "https://evil.example"},
		"sec-fetch-site same-site":  {"Sec-Fetch-Site", "same-site"},
	}
	for name, h := range attacks {
		p := alice.post("/transfers", form, h...)
		if p.Status != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", name, p.Status)
		}
		mustContain(t, p, "That action isn’t allowed", `class="site-header"`)
	}
	if p := alice.post("/signout", nil, "Sec-Fetch-Site", "cross-site"); p.Status != http.StatusForbidden {
		t.Errorf("cross-site sign out: %d", p.Status)
	}
	if p := alice.post("/signin", url.Values{"username": {"alice"}, "password": {"alice-demo-pass"}}, "Origin", "https://evil.example"); p.Status != http.StatusForbidden {
		t.Errorf("cross-site sign in (login CSRF): %d", p.Status)
	}
	if after := alice.balance(chk); after != before {
		t.Errorf("balance changed by rejected posts: %s → %s", before, after)
	}
	// The same request from our own origin works.
	p := alice.post("/transfers", form, "Sec-Fetch-Site", "same-origin", "Origin", s.baseURL)
	if p.Status != http.StatusSeeOther {
		t.Errorf("same-origin post: %d %s", p.Status, snippet(p.Body))
	}
}

func TestRateLimitSignIn(t *testing.T) {
	s := startSite(t, withConfig(func(c *webtier.Config) {
		c.SignInLimit = 3
		c.SignInWindow = time.Minute
		c.SignUpLimit = 2
	}))
	b := s.browser()
	var last page
	for i := 0; i < 4; i++ {
		last = b.post("/signin", url.Values{"username": {"alice"}, "password": {"wrong-password-" + string(rune('a'+i))}})
	}
	if last.Status != http.StatusTooManyRequests {
		t.Fatalf("4th sign-in within the limit of 3: %d", last.Status)
	}
	mustContain(t, last, "Too many attempts", `class="site-header"`)
	if last.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	for i := 0; i < 3; i++ {
		last = b.post("/signup", url.Values{"username": {"x"}})
	}
	if last.Status != http.StatusTooManyRequests {
		t.Errorf("3rd sign-up within the limit of 2: %d", last.Status)
	}
	// Pages other than the two forms are not limited.
	if p := b.get("/signin"); p.Status != http.StatusOK {
		t.Errorf("GET /signin while limited: %d", p.Status)
	}
}

// A forwarded-for header only counts when the peer is a trusted proxy.
func TestClientIPFromTrustedProxyOnly(t *testing.T) {
	limit := func(c *webtier.Config) { c.SignInLimit = 2 }
	attempts := func(s *site) int {
		b := s.browser()
		last := 0
		for i := 0; i < 3; i++ {
			p := b.post("/signin", url.Values{"username": {"nobody-" + string(rune('a'+i))}, "password": {"whatever-pass"}},
				"X-Forwarded-For", "203.0.113."+string(rune('1'+i)))
			last = p.Status
		}
		return last
	}
	untrusted := startSite(t, withConfig(limit))
	if got := attempts(untrusted); got != http.StatusTooManyRequests {
		t.Errorf("spoofed X-Forwarded-For from an untrusted peer escaped the limit: %d", got)
	}
	trusted := startSite(t, withConfig(func(c *webtier.Config) {
		limit(c)
		c.TrustedProxies = []string{"127.0.0.1/32", "::1/128"}
	}))
	if got := attempts(trusted); got == http.StatusTooManyRequests {
		t.Errorf("distinct clients behind a trusted proxy shared one bucket")
	}
}

func TestSessionExpiry(t *testing.T) {
	clock := apptiertest.NewClock(apptiertest.Now())
	s := startSite(t, withApp(apptiertest.WithClock(clock.Now), apptiertest.WithIdleTimeout(10*time.Minute)))
	b := s.alice()
	if p := b.get("/accounts"); p.Status != http.StatusOK {
		t.Fatalf("accounts: %d", p.Status)
	}
	clock.Advance(11 * time.Minute)
	p := b.get("/accounts")
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/signin") {
		t.Fatalf("expired session: %d %q", p.Status, p.Location)
	}
	page := b.get(p.Location)
	mustContain(t, page, "Your session has ended")
	// The cookie is gone: the next visit is a plain sign-in redirect.
	if p := b.get("/payees"); p.Status != http.StatusSeeOther {
		t.Errorf("after expiry: %d", p.Status)
	}
	// Posting a transfer with an expired session also goes to sign-in.
	b2 := s.alice()
	key := b2.formKey()
	clock.Advance(11 * time.Minute)
	p = b2.post("/transfers", url.Values{"key": {key}, "from": {"123456789012"}, "to_number": {"123456789013"}, "amount": {"1"}})
	if p.Status != http.StatusSeeOther || p.Location != "/signin" {
		t.Errorf("expired session POST: %d %q", p.Status, p.Location)
	}
}

func TestOtherCustomersThingsAreNotFound(t *testing.T) {
	s := startSite(t)
	alice, bob := s.alice(), s.bob()
	bobChk := bob.checking()
	for _, path := range []string{
		"/accounts/" + bobChk,
		"/accounts/000000000000",
		"/accounts/12345",
		"/accounts/" + strings.Repeat("9", 300),
		"/accounts/%3Cscript%3E",
		"/transfers/999999999",
		"/transfers/-1",
		"/transfers/abc",
		"/chat/999999999",
		"/chat/0",
	} {
		p := alice.get(path)
		if p.Status != http.StatusNotFound {
			t.Errorf("alice GET %s: %d, want 404", path, p.Status)
		}
	}
	// Bob's transfer to himself is not alice's to see.
	loc := bob.transfer(bobChk, bob.savings(), "1.00", "")
	if p := alice.get(loc); p.Status != http.StatusNotFound {
		t.Errorf("alice GET bob's %s: %d", loc, p.Status)
	}
	if p := bob.get(loc); p.Status != http.StatusOK {
		t.Errorf("bob GET his %s: %d", loc, p.Status)
	}
	// Paying from bob's account while signed in as alice fails on "from".
	p := alice.post("/transfers", url.Values{"key": {alice.formKey()}, "from": {bobChk}, "to_number": {alice.checking()}, "amount": {"1.00"}})
	if p.Status != http.StatusUnprocessableEntity {
		t.Errorf("alice paying from bob's account: %d", p.Status)
	}
}

func TestMetricsAndRequestID(t *testing.T) {
	s := startSite(t)
	b := s.alice()
	b.get("/accounts")
	b.get("/accounts/000000000000")
	req, _ := http.NewRequest(http.MethodGet, s.baseURL+"/healthz", nil)
	req.Header.Set("X-Request-Id", "bad id <script>")
	b.do(req)
	rec := httptest.NewRecorder()
	s.web.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	out := rec.Body.String()
	for _, want := range []string{
		`bankwire_webtier_http_requests_total{method="GET",route="/accounts",status="200"}`,
		`bankwire_webtier_http_requests_total{method="GET",route="/accounts/{number}",status="404"}`,
		`bankwire_webtier_http_request_duration_seconds_bucket{method="GET",route="/accounts"`,
		`bankwire_webtier_apptier_calls_total{code="OK",op="accounts.list"}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(out, "000000000000") {
		t.Error("metrics contain an account number from a path")
	}
}

func TestSignOutEverywhere(t *testing.T) {
	s := startSite(t)
	laptop, phone := s.alice(), s.alice()
	mustContain(t, laptop.get("/accounts"), "Sign out on all devices")
	if p := laptop.post("/signout", url.Values{"everywhere": {"1"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("sign out everywhere: %d", p.Status)
	}
	p := phone.get("/accounts")
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/signin") {
		t.Errorf("the other device after sign-out everywhere: %d %q", p.Status, p.Location)
	}
}

func TestInternalErrorPage(t *testing.T) {
	cfg := webtier.DefaultConfig()
	client, err := webtier.NewClient(cfg, testLogger()) // never dialed here
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	web, err := webtier.New(cfg, client, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	h := web.Recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("pq: relation accounts secret-internal-detail")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/accounts", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("panic: %d", rec.Code)
	}
	body := rec.Body.String()
	if !strings.Contains(body, "Something went wrong on our side") || !strings.Contains(body, `class="site-header"`) {
		t.Errorf("500 page lacks its text or layout:\n%s", snippet(body))
	}
	if strings.Contains(body, "secret-internal-detail") || strings.Contains(body, "goroutine") {
		t.Error("500 page shows internals")
	}
}

// Every request is logged, at INFO; answered probes (/healthz, /readyz) at
// DEBUG, since a healthcheck asks every few seconds.
func TestProbesAreLoggedAtDebug(t *testing.T) {
	var buf bytes.Buffer // ServeHTTP below logs before it returns
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := webtier.DefaultConfig()
	client, err := webtier.NewClient(cfg, testLogger()) // never dialed here
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	web, err := webtier.New(cfg, client, logger)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/healthz", "/static/app.css"} {
		rec := httptest.NewRecorder()
		web.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, rec.Code)
		}
	}
	levels := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec struct{ Level, Msg, Route string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Msg == "http request" {
			levels[rec.Route] = rec.Level
		}
	}
	if levels["/healthz"] != "DEBUG" || len(levels) != 2 {
		t.Errorf("http request lines by route and level: %v; want /healthz at DEBUG and the other at INFO", levels)
	}
	for route, level := range levels {
		if route != "/healthz" && level != "INFO" {
			t.Errorf("%s logged at %s, want INFO", route, level)
		}
	}
}
