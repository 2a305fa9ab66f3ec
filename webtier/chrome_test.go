package webtier_test

// Browser helpers shared by the browser tests (browser_test.go) and the
// compose end-to-end test (e2e_test.go, build tag e2e): a real Chromium
// driven by chromedp, one isolated browser context per customer.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// stepTimeout bounds one browser step (a navigation, a click and its page
// load, a wait for live text).
const stepTimeout = 20 * time.Second

// chromium finds the browser: BANKWIRE_CHROMIUM, else the Debian package's
// binary or another on PATH. Missing: skip locally, fail under CI=true.
func chromium(t testing.TB) string {
	t.Helper()
	candidates := []string{os.Getenv("BANKWIRE_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found (install the Debian chromium package or set BANKWIRE_CHROMIUM); browser tests must run under CI=true")
	}
	t.Skip("chromium not found: install the Debian chromium package (or set BANKWIRE_CHROMIUM) to run the browser tests")
	return ""
}

// chrome is one headless browser for a test.
type chrome struct {
	t        testing.TB
	root     context.Context // the first tab; owns the browser
	shotsDir string
}

// startChrome launches a headless Chromium with a fresh profile; it is
// stopped when the test ends.
func startChrome(t testing.TB) *chrome {
	t.Helper()
	path := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // tests run as root in containers
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	root, cancelRoot := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelRoot()
		cancelAlloc()
	})
	// The first Run starts the browser and must not carry a timeout (it
	// would stop the browser later), so a watchdog bounds the start.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(root) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium: %v", err)
		}
	case <-time.After(60 * time.Second):
		cancelAlloc()
		t.Fatal("chromium did not start within 60s")
	}
	dir := os.Getenv("BANKWIRE_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "bankwire-screenshots")
	}
	return &chrome{t: t, root: root, shotsDir: dir}
}

// tab is one customer's window: its own browser context, so its own cookies.
type tab struct {
	c    *chrome
	ctx  context.Context
	name string
}

func (c *chrome) newTab(name string) *tab {
	c.t.Helper()
	ctx, cancel := chromedp.NewContext(c.root, chromedp.WithNewBrowserContext())
	c.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		c.t.Fatalf("open tab %s: %v", name, err)
	}
	tb := &tab{c: c, ctx: ctx, name: name}
	c.t.Cleanup(func() {
		if c.t.Failed() {
			tb.screenshot("failure")
		}
	})
	return tb
}

// do runs steps with a per-step timeout, failing the test with a screenshot.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.c.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.c.t.Fatalf("%s: %s: %v (location %s)", tb.name, what, err, tb.location())
	}
}

func run[T any](tb *tab, what string, a chromedp.Action[T]) T {
	tb.c.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.c.t.Fatalf("%s: %s: %v (location %s)", tb.name, what, err, tb.location())
	}
	return v
}

func (tb *tab) location() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "unknown"
	}
	return loc
}

// screenshot saves a full-page PNG and logs its path.
func (tb *tab) screenshot(label string) string {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.c.t.Logf("screenshot %s: %v", label, err)
		return ""
	}
	if err := os.MkdirAll(tb.c.shotsDir, 0o755); err != nil {
		tb.c.t.Logf("screenshot dir: %v", err)
		return ""
	}
	name := fmt.Sprintf("%s-%s-%s.png", sanitize(tb.c.t.Name()), tb.name, label)
	path := filepath.Join(tb.c.shotsDir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.c.t.Logf("screenshot %s: %v", label, err)
		return ""
	}
	tb.c.t.Logf("screenshot: %s", path)
	return path
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

// shoot saves a screenshot only when BANKWIRE_SCREENSHOTS asks for them.
func (tb *tab) shoot(label string) {
	if os.Getenv("BANKWIRE_SCREENSHOTS") != "" {
		tb.screenshot(label)
	}
}

// open navigates and waits for the page.
func (tb *tab) open(url string) {
	tb.c.t.Helper()
	tb.do("open "+url, chromedp.Navigate(url))
}

// clickAndLoad clicks and waits for the navigation it causes.
func (tb *tab) clickAndLoad(what, css string) {
	tb.c.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(css))); err != nil {
		tb.c.t.Fatalf("%s: %s: %v (location %s)", tb.name, what, err, tb.location())
	}
}

// text returns the visible text of the first element matching css.
func (tb *tab) text(css string) string {
	tb.c.t.Helper()
	return run(tb, "text of "+css, chromedp.Text(chromedp.CSS(css)))
}

// eval evaluates a JavaScript expression.
func evalJS[T any](tb *tab, js string) T {
	tb.c.t.Helper()
	return run(tb, "evaluate "+js, chromedp.Evaluate[T](js))
}

// waitJS waits until a JavaScript expression is truthy (live updates).
func (tb *tab) waitJS(what, js string) {
	tb.c.t.Helper()
	run(tb, what, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(stepTimeout-time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
}

// signIn signs in through the form and waits for the accounts page.
func (tb *tab) signIn(base, username, password string) {
	tb.c.t.Helper()
	tb.open(base + "/signin")
	tb.do("fill sign-in form",
		chromedp.SendKeys(chromedp.ID("username"), username),
		chromedp.SendKeys(chromedp.ID("password"), password),
	)
	tb.clickAndLoad("sign in", `form[action="/signin"] button[type="submit"]`)
	if loc := tb.location(); !strings.HasSuffix(loc, "/accounts") {
		tb.c.t.Fatalf("%s: after sign-in at %s: %s", tb.name, loc, tb.text("main"))
	}
}

// checkingNumber reads the customer's checking account number from the
// accounts page.
func (tb *tab) checkingNumber() string {
	tb.c.t.Helper()
	return evalJS[string](tb, `document.querySelector('.account-card.account-checking .account-balance').getAttribute('data-balance-for')`)
}

func (tb *tab) balanceText(number string) string {
	tb.c.t.Helper()
	return evalJS[string](tb, `document.querySelector('[data-balance-for="`+number+`"]').textContent`)
}

// transfer fills the transfer form (from the first account offered, which
// is checking), confirms, and waits for the result page.
func (tb *tab) transfer(base, toNumber, amount, memo string) {
	tb.c.t.Helper()
	tb.open(base + "/transfers/new")
	tb.do("fill transfer form",
		chromedp.SendKeys(chromedp.ID("to_number"), toNumber),
		chromedp.SendKeys(chromedp.ID("amount"), amount),
		chromedp.SendKeys(chromedp.ID("memo"), memo),
	)
	tb.shoot("transfer-form")
	tb.clickAndLoad("continue to confirmation", `form[action="/transfers/confirm"] button[type="submit"]`)
	if h := tb.text("h1"); h != "Check your transfer" {
		tb.c.t.Fatalf("%s: expected the confirmation, got %q: %s", tb.name, h, tb.text("main"))
	}
	tb.shoot("transfer-confirm")
	tb.clickAndLoad("confirm transfer", `form[action="/transfers"] button[type="submit"]`)
	if h := tb.text("h1"); h != "Transfer sent" {
		tb.c.t.Fatalf("%s: expected the result, got %q: %s", tb.name, h, tb.text("main"))
	}
	tb.shoot("transfer-result")
}
