package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// errBadPage means the site answered, but not with the page a browser
// expected at that step.
var errBadPage = errors.New("unexpected page")

// errNoCustomer means no generator customer was free within the timeout.
var errNoCustomer = errors.New("no free customer")

// httpError is an answer with a status the step did not expect.
type httpError struct {
	method, path string
	status       int
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%s %s: status %d", e.method, e.path, e.status)
}

// clientAddr is the i-th client address of the spread the generator claims
// through X-Forwarded-For: 198.18.0.0/15, the range set aside for
// benchmarking networks (RFC 2544), so it never names a real client and
// never falls inside a trusted proxy range.
func clientAddr(i int) string {
	base := netip.MustParseAddr("198.18.0.1").As4()
	n := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	n += uint32(i % (1<<17 - 2))
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}).String()
}

// browser is one customer's browser: its own cookies and client address,
// redirects seen rather than followed, Origin sent like a browser's.
type browser struct {
	site   *site
	client *http.Client
	ip     string
}

// site is the target and what every browser shares.
type site struct {
	base      *url.URL
	origin    string
	transport http.RoundTripper
	timeout   time.Duration
	rec       *recorder
}

func newSite(base string, timeout time.Duration, rec *recorder, transport http.RoundTripper) (*site, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("target %q: want http(s)://host[:port]", base)
	}
	if transport == nil {
		transport = &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        4096,
			MaxIdleConnsPerHost: 4096,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   false,
		}
	}
	return &site{base: u, origin: u.Scheme + "://" + u.Host, transport: transport, timeout: timeout, rec: rec}, nil
}

func (s *site) newBrowser(ip string) *browser {
	jar, _ := cookiejar.New(nil) // never fails without options
	return &browser{site: s, ip: ip, client: &http.Client{
		Transport: s.transport, Jar: jar, Timeout: s.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type page struct {
	status   int
	body     string
	location string
}

func (b *browser) request(ctx context.Context, method, path string, form url.Values) (*http.Request, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, b.site.origin+path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("User-Agent", "bankwire-load/1")
	req.Header.Set("X-Forwarded-For", b.ip)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", b.site.origin)
	}
	return req, nil
}

// do sends one request and reads the page. want lists the statuses this
// step accepts; any other is an *httpError.
func (b *browser) do(ctx context.Context, method, path string, form url.Values, want ...int) (page, error) {
	req, err := b.request(ctx, method, path, form)
	if err != nil {
		return page{}, err
	}
	b.site.rec.request()
	resp, err := b.client.Do(req)
	if err != nil {
		return page{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return page{}, fmt.Errorf("%s %s: read: %w", method, path, err)
	}
	p := page{status: resp.StatusCode, body: string(raw), location: resp.Header.Get("Location")}
	for _, w := range want {
		if p.status == w {
			return p, nil
		}
	}
	return p, &httpError{method: method, path: path, status: p.status}
}

func (b *browser) get(ctx context.Context, path string) (page, error) {
	return b.do(ctx, http.MethodGet, path, nil, http.StatusOK)
}

// post expects the usual answer to a good form: 303 See Other.
func (b *browser) post(ctx context.Context, path string, form url.Values) (page, error) {
	return b.do(ctx, http.MethodPost, path, form, http.StatusSeeOther)
}

var (
	kindRe       = regexp.MustCompile(`href="/accounts/([0-9A-Za-z-]+)">\s*<span class="account-kind">([^<]+)</span>`)
	balanceRe    = regexp.MustCompile(`data-balance-for="([^"]+)">([^<]+)<`)
	keyRe        = regexp.MustCompile(`name="key" value="([0-9a-f]{32})"`)
	nextRe       = regexp.MustCompile(`href="(/accounts/[^"?]+\?cursor=[^"]+)" rel="next"`)
	entryRe      = regexp.MustCompile(`class="entry-title" href="/transfers/([0-9]+)"`)
	payeeIDRe    = regexp.MustCompile(`action="/payees/([0-9]+)/rename"`)
	transferIDRe = regexp.MustCompile(`^/transfers/([0-9]+)$`)
	chatIDRe     = regexp.MustCompile(`^/chat/([0-9]+)$`)
)

// checkingOf returns the first checking account on an overview page.
func checkingOf(body string) (string, bool) {
	for _, m := range kindRe.FindAllStringSubmatch(body, -1) {
		if m[2] == "Checking" {
			return m[1], true
		}
	}
	return "", false
}

// balancesOf returns account number → balance in minor units from an
// overview page.
func balancesOf(body string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, m := range balanceRe.FindAllStringSubmatch(body, -1) {
		v, err := parseMoney(m[2])
		if err != nil {
			return nil, fmt.Errorf("balance of %s: %w", m[1], err)
		}
		out[m[1]] = v
	}
	return out, nil
}

// parseMoney reads an amount as the site writes it ("$1,234.56",
// "−$12.00", "&#43;" escapes aside) into minor units: digits only, never
// through a float. Currencies with two decimals only, as the bank's USD
// accounts have.
func parseMoney(s string) (int64, error) {
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "−") || strings.HasPrefix(s, "-")
	var digits strings.Builder
	frac := -1
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits.WriteRune(r)
			if frac >= 0 {
				frac++
			}
		case r == '.':
			frac = 0
		}
	}
	if frac != 2 || digits.Len() < 3 {
		return 0, fmt.Errorf("amount %q: want two decimals", s)
	}
	v, err := strconv.ParseInt(digits.String(), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("amount %q: %w", s, err)
	}
	if neg {
		v = -v
	}
	return v, nil
}

// formatMinor writes minor units as the form's amount field takes them.
func formatMinor(v int64) string {
	sign, mag := "", uint64(v)
	if v < 0 {
		sign, mag = "-", -mag
	}
	return fmt.Sprintf("%s%d.%02d", sign, mag/100, mag%100)
}
