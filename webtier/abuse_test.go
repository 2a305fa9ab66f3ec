package webtier_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"bankwire/apptier"
	"bankwire/apptier/apptiertest"
	"bankwire/proto"
	"bankwire/proto/wire"
	"bankwire/store"
	"bankwire/webtier"
)

// protocolTexts are the protocol's own words for its limits: no page may
// ever show them.
var protocolTexts = []string{"in flight", "RESOURCE_EXHAUSTED", "max_in_flight"}

// TestStreamCapsKeepPagesWorking: one customer opens the most live-update
// streams the caps allow, in two sessions, and tries for more; the extra
// streams get a friendly 429, while another customer on the same web tier
// signs in and uses the bank as usual. The app tier's link is kept tight
// (one connection, 12 requests in flight) so that streams beyond the caps
// would have starved the pages.
func TestStreamCapsKeepPagesWorking(t *testing.T) {
	s := startSite(t,
		withApp(apptiertest.WithServerConfig(func(c *proto.ServerConfig) { c.MaxInFlight = 12 })),
		withConfig(func(c *webtier.Config) {
			c.ConnsPerAddr = 1
			c.MaxStreamsPerSession = 4
			c.MaxStreamsPerIP = 8
		}))
	alice1, alice2 := s.alice(), s.alice()
	var held []*sseReader
	for _, b := range []*browser{alice1, alice2} {
		for i := 0; i < 4; i++ {
			held = append(held, openEvents(t, b))
		}
		// A fifth stream for the session is over its cap.
		p := b.get("/events")
		if p.Status != http.StatusTooManyRequests || !strings.Contains(p.Body, "Live updates are already open") {
			t.Fatalf("stream over the session cap: %d %q", p.Status, p.Body)
		}
		mustNotContain(t, p, protocolTexts...)
	}
	// One more session from the same address is over the per-IP cap.
	alice3 := s.alice()
	if p := alice3.get("/events"); p.Status != http.StatusTooManyRequests {
		t.Fatalf("stream over the IP cap: %d %q", p.Status, p.Body)
	}

	// Meanwhile bob signs in and uses the bank.
	bob := s.browser()
	bob.signIn("bob", "bob-demo-pass")
	for _, path := range []string{"/accounts", "/transfers/new", "/payees", "/chat", "/accounts/new"} {
		p := bob.get(path)
		if p.Status != http.StatusOK {
			t.Fatalf("bob's %s while alice holds every stream she may: %d %s", path, p.Status, snippet(p.Body))
		}
		mustContain(t, p, "Bob")
	}
	bob.transfer(bob.checking(), bob.savings(), "1.00", "while streams are held")

	// A stream that ends gives its slot back.
	held[0].body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		status := streamStatus(t, alice3)
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot of a closed stream was not released within 5 s: %d", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// streamStatus opens /events, returns the status and closes the stream.
func streamStatus(t *testing.T, b *browser) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.site.baseURL+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatalf("GET /events: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestProtocolLimitShowsBrieflyUnavailable: when the link to the app tier
// is at its in-flight limit, a page says "briefly unavailable" (503) or
// works, but never shows the protocol's text nor blames the customer (429).
func TestProtocolLimitShowsBrieflyUnavailable(t *testing.T) {
	s := startSite(t,
		withApp(apptiertest.WithServerConfig(func(c *proto.ServerConfig) { c.MaxInFlight = 3 })),
		withConfig(func(c *webtier.Config) {
			c.ConnsPerAddr = 1
			c.MaxStreamsPerSession = 3
		}))
	bob := s.bob()
	alice := s.alice()
	for i := 0; i < 3; i++ {
		openEvents(t, alice)
	}
	check := func(what string, p page) {
		t.Helper()
		switch p.Status {
		case http.StatusOK, http.StatusSeeOther, http.StatusUnauthorized: // the page, working as usual
		case http.StatusServiceUnavailable:
			mustContain(t, p, "briefly unavailable")
		default:
			t.Errorf("%s: status %d, want the page or 503\n%s", what, p.Status, snippet(p.Body))
		}
		mustNotContain(t, p, protocolTexts...)
	}
	check("bob's accounts", bob.get("/accounts"))
	check("bob's account form", bob.get("/accounts/new"))
	check("carol's sign-in", s.browser().post("/signin", url.Values{"username": {"carol"}, "password": {"wrong password"}}))
	check("bob's chat", bob.post("/chat", url.Values{"username": {"alice"}}))
}

// TestSignOutEverywhereEndsEveryPageAtOnce: after "sign out on all
// devices", the customer's other sessions show their name on no page, on
// this web tier or another, although both remembered the session a moment
// before.
func TestSignOutEverywhereEndsEveryPageAtOnce(t *testing.T) {
	s := startSite(t)
	other := startWeb(t, s.app, s.cfg)
	here, there, leaving := s.alice(), other.alice(), s.alice()
	// Both web tiers have the sessions in their caches now.
	for _, b := range []*browser{here, there} {
		if p := b.get("/accounts"); p.Status != http.StatusOK {
			t.Fatalf("accounts: %d", p.Status)
		}
	}
	if p := leaving.post("/signout", url.Values{"everywhere": {"1"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("sign out everywhere: %d", p.Status)
	}
	for name, b := range map[string]*browser{"this web tier": here, "another web tier": there} {
		// A page that needs no data call (the account form) and a 404 page
		// (which shows the navigation when signed in).
		p := b.get("/accounts/new")
		if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/signin") {
			t.Errorf("%s: /accounts/new after sign-out everywhere: %d %q", name, p.Status, p.Location)
		}
		p = b.get("/no-such-page")
		if p.Status != http.StatusNotFound {
			t.Errorf("%s: 404 page: %d", name, p.Status)
		}
		mustNotContain(t, p, "Alice", "Sign out")
	}
}

// TestSignOutEverywhereReachesEveryAppTier: two web tiers, each in front of
// its own app tier on one database, and both app tiers have just accepted
// the customer's sessions (their session caches hold them). "Sign out on
// all devices" through one ends the sessions on every page served through
// the other too, within about a second (the store's revocation
// notification; the app tier's cache would give up the session after 1 s
// anyway).
func TestSignOutEverywhereReachesEveryAppTier(t *testing.T) {
	s := startSite(t)
	second := apptiertest.Start(t, apptiertest.WithStore(store.New(s.app.Store.Pool())), apptiertest.WithoutDemoData())
	cfg := s.cfg
	cfg.AppTierAddrs = []string{second.Addr}
	other := startWeb(t, second, cfg)
	here, there, leaving := s.alice(), other.alice(), s.alice()
	for _, b := range []*browser{here, there, leaving} {
		if p := b.get("/accounts"); p.Status != http.StatusOK {
			t.Fatalf("accounts: %d", p.Status)
		}
	}
	if p := leaving.post("/signout", url.Values{"everywhere": {"1"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("sign out everywhere: %d", p.Status)
	}
	// Through this web tier and app tier: at once.
	if p := here.get("/accounts/new"); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/signin") {
		t.Errorf("this app tier: /accounts/new after sign-out everywhere: %d %q", p.Status, p.Location)
	}
	// Through the other: within a bounded wait.
	deadline := time.Now().Add(3 * time.Second)
	for {
		p := there.get("/accounts/new")
		if p.Status == http.StatusSeeOther && strings.HasPrefix(p.Location, "/signin") {
			break
		}
		if p.Status != http.StatusOK {
			t.Fatalf("other app tier: /accounts/new: %d %q", p.Status, p.Location)
		}
		if time.Now().After(deadline) {
			t.Fatal("other app tier: the session still shows pages 3 s after sign-out everywhere")
		}
		time.Sleep(10 * time.Millisecond)
	}
	p := there.get("/no-such-page")
	if p.Status != http.StatusNotFound {
		t.Errorf("other app tier: 404 page: %d", p.Status)
	}
	mustNotContain(t, p, "Alice", "Sign out")
}

// TestPostWithoutOriginRefusedWithSession: a state-changing POST that
// carries a session cookie but neither Origin nor Sec-Fetch-Site is
// refused; without a session cookie (sign-in) it is served.
func TestPostWithoutOriginRefusedWithSession(t *testing.T) {
	s := startSite(t)
	alice := s.alice()
	chk, sav := alice.checking(), alice.savings()
	before := alice.balance(chk)
	form := url.Values{"key": {alice.formKey()}, "from": {chk}, "to_number": {sav}, "amount": {"1.00"}}
	alice.noOrigin = true
	for _, path := range []string{"/transfers", "/signout", "/payees", "/accounts"} {
		p := alice.post(path, form)
		if p.Status != http.StatusForbidden {
			t.Errorf("POST %s with a session but no Origin: %d, want 403", path, p.Status)
		}
		mustContain(t, p, "That action isn’t allowed")
	}
	// With Sec-Fetch-Site: same-origin (a browser that sends it) it works.
	if p := alice.post("/transfers", form, "Sec-Fetch-Site", "same-origin"); p.Status != http.StatusSeeOther {
		t.Errorf("same-origin POST without Origin: %d %s", p.Status, snippet(p.Body))
	}
	alice.noOrigin = false
	if after := alice.balance(chk); after == before {
		t.Error("the allowed transfer did not happen")
	}
	// No session cookie: a sign-in by a client that sends no Origin works.
	b := s.browser()
	b.noOrigin = true
	b.signIn("bob", "bob-demo-pass")
}

// sessionChecks returns how many session checks the web tier has made.
func sessionChecks(t *testing.T, s *site) int {
	t.Helper()
	rec := httptest.NewRecorder()
	s.web.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	n := 0
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, `bankwire_webtier_apptier_calls_total{code=`) && strings.Contains(line, `op="`+wire.OpSessionCheck.String()+`"`) {
			f := strings.Fields(line)
			v, err := strconv.Atoi(f[len(f)-1])
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			n += v
		}
	}
	return n
}

// TestPagesConfirmTheSessionOnce: a data page confirms the session with its
// own call (no extra session check), a page without data asks once, and an
// outage page asks no more than the call that failed.
func TestPagesConfirmTheSessionOnce(t *testing.T) {
	s := startSite(t)
	alice := s.alice()
	alice.get("/accounts") // the session is cached now
	before := sessionChecks(t, s)
	if p := alice.get("/accounts"); p.Status != http.StatusOK {
		t.Fatalf("accounts: %d", p.Status)
	}
	if n := sessionChecks(t, s) - before; n != 0 {
		t.Errorf("a data page made %d session checks, want 0", n)
	}
	p := alice.get("/accounts/new")
	if n := sessionChecks(t, s) - before; p.Status != http.StatusOK || n != 1 {
		t.Errorf("a page without data: status %d, %d session checks, want 200 and 1", p.Status, n)
	}
	mustContain(t, p, "Alice")

	s.app.Stop()
	before = sessionChecks(t, s)
	p = alice.get("/accounts")
	if p.Status != http.StatusServiceUnavailable {
		t.Fatalf("accounts with the app tier down: %d", p.Status)
	}
	if n := sessionChecks(t, s) - before; n != 0 {
		t.Errorf("the outage page made %d session checks after its call failed, want 0", n)
	}
	mustContain(t, p, "briefly unavailable")
}

// TestChatOpenLimitShown: the app tier's limit on opening chats by
// username reaches the page as 429 with its own sentence.
func TestChatOpenLimitShown(t *testing.T) {
	s := startSite(t, withApp(apptiertest.WithConfig(func(c *apptier.Config) { c.ChatOpenLimit = 2 })))
	alice := s.alice()
	for _, user := range []string{"bob", "nobody-here"} {
		if p := alice.post("/chat", url.Values{"username": {user}}); p.Status != http.StatusSeeOther && p.Status != http.StatusNotFound && p.Status != http.StatusUnprocessableEntity {
			t.Fatalf("open %s: %d", user, p.Status)
		}
	}
	p := alice.post("/chat", url.Values{"username": {"bob"}})
	if p.Status != http.StatusTooManyRequests {
		t.Fatalf("third chat open: %d %s", p.Status, snippet(p.Body))
	}
	mustContain(t, p, "You have opened many chats")
	mustNotContain(t, p, protocolTexts...)
}

// TestChatSendLimitShown: the app tier's limit on chat messages reaches the
// conversation page as 429 with its own sentence, not as an outage.
func TestChatSendLimitShown(t *testing.T) {
	s := startSite(t, withApp(apptiertest.WithConfig(func(c *apptier.Config) { c.ChatSendLimit = 2 })))
	alice := s.alice()
	p := alice.post("/chat", url.Values{"username": {"bob"}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("open chat: %d %s", p.Status, snippet(p.Body))
	}
	path := p.Location
	for i := range 2 {
		if p := alice.post(path+"/messages", url.Values{"body": {fmt.Sprintf("hello %d", i)}}); p.Status != http.StatusSeeOther {
			t.Fatalf("message %d: %d %s", i, p.Status, snippet(p.Body))
		}
	}
	p = alice.post(path+"/messages", url.Values{"body": {"one too many"}})
	if p.Status != http.StatusTooManyRequests {
		t.Fatalf("third message: %d %s", p.Status, snippet(p.Body))
	}
	mustContain(t, p, "You have sent many messages")
	mustNotContain(t, p, protocolTexts...)
	mustNotContain(t, p, "briefly unavailable")
}
