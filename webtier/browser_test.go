package webtier_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowser drives the bank as its customers do, in a real Chromium:
// alice signs in, sees her balances and pays bob; bob's open accounts page
// shows the money arrive without a reload; a chat message from alice
// appears in bob's open chat; after sign-out the back button shows nothing
// private.
func TestBrowser(t *testing.T) {
	c := startChrome(t)
	s := startSite(t)
	base := s.baseURL

	alice := c.newTab("alice")
	alice.signIn(base, "alice", "alice-demo-pass")
	if got := alice.text("h1"); got != "Your accounts" {
		t.Fatalf("alice's first page: %q", got)
	}
	aliceChk := alice.checkingNumber()
	aliceBefore := alice.balanceText(aliceChk)
	if !strings.Contains(aliceBefore, ".") {
		t.Fatalf("alice's balance %q does not look like money", aliceBefore)
	}
	alice.shoot("accounts")

	bob := c.newTab("bob")
	bob.signIn(base, "bob", "bob-demo-pass")
	bobChk := bob.checkingNumber()
	bobBefore := bob.balanceText(bobChk)
	// Live updates are on once the page's stream is open; mark the page so
	// a reload (which would lose the mark) cannot pass for a live update.
	bob.waitJS("bob's live stream", `document.documentElement.getAttribute('data-live') === 'connected'`)
	evalJS[bool](bob, `window.__noReload = true`)

	alice.transfer(base, bobChk, "7.25", "Browser test")
	mustSee(t, alice, "main", "7.25", "Browser test", "Transfer sent")

	// Alice's history shows it.
	alice.open(base + "/accounts/" + aliceChk)
	history := alice.text("table.history")
	if !strings.Contains(history, "Browser test") || !strings.Contains(history, "7.25") {
		t.Errorf("alice's history lacks the transfer:\n%s", history)
	}
	alice.shoot("account")

	// Bob's open page shows the new balance without a reload.
	bob.waitJS("bob's balance to change", `document.querySelector('[data-balance-for="`+bobChk+`"]').textContent !== `+jsString(bobBefore))
	if !evalJS[bool](bob, `window.__noReload === true`) {
		t.Error("bob's page was reloaded: the balance did not arrive live")
	}
	bob.shoot("accounts-live")
	bobAfter := bob.balanceText(bobChk)
	bob.open(base + "/accounts")
	if reloaded := bob.balanceText(bobChk); reloaded != bobAfter {
		t.Errorf("live balance %q differs from the reloaded page's %q", bobAfter, reloaded)
	}

	// Chat: bob opens the conversation with alice and waits; alice writes.
	bob.open(base + "/chat")
	bob.shoot("chat-list")
	bob.clickAndLoad("open conversation with alice", `a.conversation-link`)
	conv := bob.location()
	bob.waitJS("bob's live stream on the chat", `document.documentElement.getAttribute('data-live') === 'connected'`)
	evalJS[bool](bob, `window.__noReload = true`)

	alice.open(conv)
	const msg = "Hello Bob, the money is on its way <3"
	alice.do("write message", chromedp.SendKeys(chromedp.ID("body"), msg))
	alice.clickAndLoad("send message", `form.compose button[type="submit"]`)
	bob.waitJS("the message in bob's open chat",
		`Array.from(document.querySelectorAll('.message-body')).some(e => e.textContent === `+jsString(msg)+`)`)
	if !evalJS[bool](bob, `window.__noReload === true`) {
		t.Error("bob's chat was reloaded: the message did not arrive live")
	}
	bob.shoot("chat-live")
	alice.shoot("chat")

	// Pages for the remaining screens, for people looking at the screenshots.
	alice.open(base + "/payees")
	alice.shoot("payees")

	// Sign out; the back button must not show the private page again.
	alice.open(base + "/accounts")
	alice.clickAndLoad("sign out", `form[action="/signout"] button`)
	if loc := alice.location(); !strings.HasSuffix(loc, "/signin") {
		t.Fatalf("after sign-out at %s", loc)
	}
	mustSee(t, alice, "main", "You have signed out.")
	alice.do("back", chromedp.NavigateBack())
	alice.waitJS("the back page to settle", `document.readyState === 'complete'`)
	body := alice.text("body")
	for _, private := range []string{aliceBefore, "Your accounts", "Alice Johnson", aliceChk[:4] + " " + aliceChk[4:8]} {
		if strings.Contains(body, private) {
			t.Errorf("after sign-out the back button shows %q (at %s)", private, alice.location())
		}
	}
	if !strings.Contains(body, "Sign in") {
		t.Errorf("after sign-out the back button shows neither sign-in nor an error (at %s):\n%s", alice.location(), body)
	}
	alice.shoot("back-after-signout")
}

// TestBrowserLooks renders the signed-out pages and an error page at phone
// and desktop widths, so a person can look at them (BANKWIRE_SCREENSHOTS),
// and checks that nothing overflows the phone's width.
func TestBrowserLooks(t *testing.T) {
	c := startChrome(t)
	s := startSite(t)
	tb := c.newTab("visitor")
	for _, path := range []string{"/signin", "/signup", "/no-such-page"} {
		tb.open(s.baseURL + path)
		tb.shoot("desktop" + strings.ReplaceAll(path, "/", "-"))
	}
	tb.do("phone viewport", chromedp.EmulateViewport(390, 844))
	for _, path := range []string{"/signin", "/signup"} {
		tb.open(s.baseURL + path)
		if wide := evalJS[bool](tb, `document.documentElement.scrollWidth > window.innerWidth + 1`); wide {
			t.Errorf("%s scrolls sideways on a phone", path)
		}
		tb.shoot("phone" + strings.ReplaceAll(path, "/", "-"))
	}
	alice := c.newTab("alice-phone")
	alice.do("phone viewport", chromedp.EmulateViewport(390, 844))
	alice.signIn(s.baseURL, "alice", "alice-demo-pass")
	for _, path := range []string{"/accounts", "/transfers/new", "/payees", "/chat"} {
		alice.open(s.baseURL + path)
		if wide := evalJS[bool](alice, `document.documentElement.scrollWidth > window.innerWidth + 1`); wide {
			t.Errorf("%s scrolls sideways on a phone", path)
		}
		alice.shoot("phone" + strings.ReplaceAll(path, "/", "-"))
	}
	// Keyboard: the first Tab lands on the skip link, which moves focus to main.
	alice.open(s.baseURL + "/accounts")
	alice.do("tab", chromedp.KeyEvent("\t"))
	if got := evalJS[string](alice, `document.activeElement.className`); got != "skip-link" {
		t.Errorf("first Tab focuses %q, want the skip link", got)
	}
}

func mustSee(t *testing.T, tb *tab, css string, parts ...string) {
	t.Helper()
	text := tb.text(css)
	for _, p := range parts {
		if !strings.Contains(text, p) {
			t.Errorf("%s: %s lacks %q:\n%s", tb.name, css, p, text)
		}
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}

// TestBrowserFormsSubmitOnce: forms that create something (a customer, an
// account, a payee, a chat message) ignore a second submit while the first
// is on its way, as a double click makes: the second would open a second
// account, send the message twice, or show "username taken" for the
// customer just created.
func TestBrowserFormsSubmitOnce(t *testing.T) {
	c := startChrome(t)
	s := startSite(t)
	// Two submit events on the form: the first goes ahead, the second is
	// prevented and the button is disabled.
	check := func(tb *tab, form string) {
		t.Helper()
		got := evalJS[string](tb, `(function (f) {
			var e1 = new Event('submit', {cancelable: true}); f.dispatchEvent(e1);
			var e2 = new Event('submit', {cancelable: true}); f.dispatchEvent(e2);
			return [e1.defaultPrevented, e2.defaultPrevented, f.querySelector('button[type="submit"]').disabled].join(',');
		})(document.querySelector(`+jsString(form)+`))`)
		if got != "false,true,true" {
			t.Errorf("%s: first submit prevented, second prevented, button disabled = %s; want false,true,true", form, got)
		}
	}
	visitor := c.newTab("visitor")
	visitor.open(s.baseURL + "/signup")
	check(visitor, `form[action="/signup"]`)

	alice := c.newTab("alice")
	alice.signIn(s.baseURL, "alice", "alice-demo-pass")
	alice.open(s.baseURL + "/accounts/new")
	check(alice, `form[action="/accounts"]`)
	alice.open(s.baseURL + "/payees")
	check(alice, `form[action="/payees"]`)
	alice.open(s.baseURL + "/chat")
	evalJS[string](alice, `document.querySelector('form[action="/chat"] input[name="username"]').value = 'bob'`)
	alice.clickAndLoad("open a chat with bob", `form[action="/chat"] button[type="submit"]`)
	check(alice, `form.compose`)
}
