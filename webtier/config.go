package webtier

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Config is everything the web tier needs to know. Every field has an
// environment variable and a flag of the same meaning (see LoadConfig); the
// zero value is not useful, start from DefaultConfig.
type Config struct {
	// Addr is the public HTTP listen address (WEBTIER_ADDR, -addr).
	Addr string
	// AdminAddr serves /metrics on a separate port so the bank's metrics are
	// never exposed on the public site (WEBTIER_ADMIN_ADDR, -admin-addr).
	// Empty disables the admin listener.
	AdminAddr string

	// AppTierAddrs are the app tier's host:port addresses
	// (WEBTIER_APPTIER_ADDRS, comma separated, -apptier-addrs).
	AppTierAddrs []string
	// AppTierSecret is the shared protocol secret (APPTIER_SECRET or
	// WEBTIER_APPTIER_SECRET, -apptier-secret). Never logged.
	AppTierSecret string
	// ConnsPerAddr is how many multiplexed protocol connections to keep per
	// app-tier address (WEBTIER_CONNS_PER_ADDR).
	ConnsPerAddr int
	// CallTimeout bounds every app-tier call made for a page, so a slow or
	// down app tier shows the 503 page quickly (WEBTIER_CALL_TIMEOUT).
	CallTimeout time.Duration
	// AuthCallTimeout bounds sign-in and sign-up instead: password hashing
	// is slow on purpose and queues behind a semaphore under a sign-in
	// flood, and a customer should not get the 503 page for waiting on it
	// (WEBTIER_AUTH_CALL_TIMEOUT).
	AuthCallTimeout time.Duration
	// DialTimeout bounds one connection attempt to the app tier
	// (WEBTIER_DIAL_TIMEOUT).
	DialTimeout time.Duration

	// SecureCookies marks the site as served over HTTPS (usually by a proxy in
	// front): cookies get Secure and the __Host- prefix, and HSTS is sent
	// (WEBTIER_SECURE_COOKIES or WEBTIER_HTTPS, -secure-cookies).
	SecureCookies bool
	// TrustedProxies are CIDRs whose X-Forwarded-For / X-Real-IP headers are
	// believed (WEBTIER_TRUSTED_PROXIES, comma separated). Empty: the TCP
	// peer is the client.
	TrustedProxies []string
	// TrustedOrigins are extra origins (scheme://host[:port]) allowed to POST,
	// for deployments where a proxy rewrites the Host header
	// (WEBTIER_TRUSTED_ORIGINS).
	TrustedOrigins []string

	// SignInLimit sign-in attempts per client IP per SignInWindow
	// (WEBTIER_SIGNIN_LIMIT, WEBTIER_SIGNIN_WINDOW); the same for sign-ups.
	SignInLimit  int
	SignInWindow time.Duration
	SignUpLimit  int
	SignUpWindow time.Duration

	// MaxStreams bounds concurrent live-update (SSE) streams; each holds one
	// app-tier subscription (WEBTIER_MAX_STREAMS).
	MaxStreams int
	// MaxStreamsPerSession and MaxStreamsPerIP cap the streams one
	// signed-in session and one client IP may hold at once, so one customer
	// cannot take the streams (and their app-tier budget) of everyone else
	// (WEBTIER_MAX_STREAMS_PER_SESSION, WEBTIER_MAX_STREAMS_PER_IP). A
	// stream over a cap gets 429.
	MaxStreamsPerSession int
	MaxStreamsPerIP      int
	// StreamKeepAlive is how often an idle SSE stream gets a comment line so
	// proxies do not cut it (WEBTIER_STREAM_KEEPALIVE).
	StreamKeepAlive time.Duration

	// HTTP server timeouts (WEBTIER_READ_HEADER_TIMEOUT, WEBTIER_READ_TIMEOUT,
	// WEBTIER_WRITE_TIMEOUT, WEBTIER_IDLE_TIMEOUT, WEBTIER_SHUTDOWN_TIMEOUT).
	// SSE streams lift the write timeout for themselves.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration

	// LogLevel is the least severe level logged: debug, info (the default,
	// which logs every request), warn or error (WEBTIER_LOG_LEVEL,
	// -log-level).
	LogLevel slog.Level
}

// DefaultConfig returns the settings for local use: the app tier on
// localhost:12121, plain HTTP on :8080.
func DefaultConfig() Config {
	return Config{
		Addr:                 ":8080",
		AdminAddr:            ":9091",
		AppTierAddrs:         []string{"localhost:12121"},
		AppTierSecret:        "bankwire-dev-secret", // the app tier's local default; set APPTIER_SECRET in production
		ConnsPerAddr:         2,
		CallTimeout:          time.Second,
		AuthCallTimeout:      5 * time.Second,
		DialTimeout:          500 * time.Millisecond,
		SignInLimit:          10,
		SignInWindow:         time.Minute,
		SignUpLimit:          5,
		SignUpWindow:         time.Minute,
		MaxStreams:           1000,
		MaxStreamsPerSession: 4,
		MaxStreamsPerIP:      10,
		StreamKeepAlive:      25 * time.Second,
		ReadHeaderTimeout:    5 * time.Second,
		ReadTimeout:          15 * time.Second,
		WriteTimeout:         30 * time.Second,
		IdleTimeout:          120 * time.Second,
		ShutdownTimeout:      10 * time.Second,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("listen address is empty"))
	}
	if len(c.AppTierAddrs) == 0 {
		errs = append(errs, errors.New("no app tier address"))
	}
	if c.ConnsPerAddr < 1 || c.ConnsPerAddr > 64 {
		errs = append(errs, fmt.Errorf("conns per addr %d: want 1..64", c.ConnsPerAddr))
	}
	if c.CallTimeout <= 0 || c.AuthCallTimeout <= 0 {
		errs = append(errs, errors.New("call timeouts must be positive"))
	}
	if c.SignInLimit < 1 || c.SignUpLimit < 1 || c.SignInWindow <= 0 || c.SignUpWindow <= 0 {
		errs = append(errs, errors.New("sign-in and sign-up limits and windows must be positive"))
	}
	if c.MaxStreams < 1 || c.MaxStreamsPerSession < 1 || c.MaxStreamsPerIP < 1 {
		errs = append(errs, errors.New("stream limits must be positive"))
	}
	if c.StreamKeepAlive <= 0 {
		errs = append(errs, errors.New("stream keep-alive must be positive"))
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func parsePrefixes(cidrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, s := range cidrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			// A bare address means a single host.
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("trusted proxy %q: not a CIDR or address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// LoadConfig builds a Config from DefaultConfig, then the environment (read
// through getenv), then command-line flags in args; later sources win.
func LoadConfig(args []string, getenv func(string) string) (Config, error) {
	c := DefaultConfig()
	env := envReader{getenv: getenv}
	env.str(&c.Addr, "WEBTIER_ADDR")
	env.str(&c.AdminAddr, "WEBTIER_ADMIN_ADDR")
	env.list(&c.AppTierAddrs, "WEBTIER_APPTIER_ADDRS")
	env.str(&c.AppTierSecret, "APPTIER_SECRET")
	env.str(&c.AppTierSecret, "WEBTIER_APPTIER_SECRET")
	env.int(&c.ConnsPerAddr, "WEBTIER_CONNS_PER_ADDR")
	env.dur(&c.CallTimeout, "WEBTIER_CALL_TIMEOUT")
	env.dur(&c.AuthCallTimeout, "WEBTIER_AUTH_CALL_TIMEOUT")
	env.dur(&c.DialTimeout, "WEBTIER_DIAL_TIMEOUT")
	env.bool(&c.SecureCookies, "WEBTIER_HTTPS")
	env.bool(&c.SecureCookies, "WEBTIER_SECURE_COOKIES")
	env.list(&c.TrustedProxies, "WEBTIER_TRUSTED_PROXIES")
	env.list(&c.TrustedOrigins, "WEBTIER_TRUSTED_ORIGINS")
	env.int(&c.SignInLimit, "WEBTIER_SIGNIN_LIMIT")
	env.dur(&c.SignInWindow, "WEBTIER_SIGNIN_WINDOW")
	env.int(&c.SignUpLimit, "WEBTIER_SIGNUP_LIMIT")
	env.dur(&c.SignUpWindow, "WEBTIER_SIGNUP_WINDOW")
	env.int(&c.MaxStreams, "WEBTIER_MAX_STREAMS")
	env.int(&c.MaxStreamsPerSession, "WEBTIER_MAX_STREAMS_PER_SESSION")
	env.int(&c.MaxStreamsPerIP, "WEBTIER_MAX_STREAMS_PER_IP")
	env.dur(&c.StreamKeepAlive, "WEBTIER_STREAM_KEEPALIVE")
	env.dur(&c.ReadHeaderTimeout, "WEBTIER_READ_HEADER_TIMEOUT")
	env.dur(&c.ReadTimeout, "WEBTIER_READ_TIMEOUT")
	env.dur(&c.WriteTimeout, "WEBTIER_WRITE_TIMEOUT")
	env.dur(&c.IdleTimeout, "WEBTIER_IDLE_TIMEOUT")
	env.dur(&c.ShutdownTimeout, "WEBTIER_SHUTDOWN_TIMEOUT")
	env.level(&c.LogLevel, "WEBTIER_LOG_LEVEL")
	if err := errors.Join(env.errs...); err != nil {
		return Config{}, err
	}

	fs := flag.NewFlagSet("webtier", flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", c.Addr, "public HTTP listen address (WEBTIER_ADDR)")
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, "admin listen address for /metrics, empty to disable (WEBTIER_ADMIN_ADDR)")
	fs.Func("apptier-addrs", "comma-separated app tier addresses (WEBTIER_APPTIER_ADDRS)", listFlag(&c.AppTierAddrs))
	// The secret has no printed default: usage text (-h, a mistyped flag)
	// goes to stderr, the container log.
	fs.Func("apptier-secret", "shared protocol secret (APPTIER_SECRET or WEBTIER_APPTIER_SECRET); prefer the environment", func(v string) error {
		c.AppTierSecret = v
		return nil
	})
	fs.IntVar(&c.ConnsPerAddr, "conns-per-addr", c.ConnsPerAddr, "protocol connections per app tier address (WEBTIER_CONNS_PER_ADDR)")
	fs.DurationVar(&c.CallTimeout, "call-timeout", c.CallTimeout, "deadline of each app tier call (WEBTIER_CALL_TIMEOUT)")
	fs.DurationVar(&c.AuthCallTimeout, "auth-call-timeout", c.AuthCallTimeout, "deadline of sign-in and sign-up calls (WEBTIER_AUTH_CALL_TIMEOUT)")
	fs.DurationVar(&c.DialTimeout, "dial-timeout", c.DialTimeout, "app tier dial timeout (WEBTIER_DIAL_TIMEOUT)")
	fs.BoolVar(&c.SecureCookies, "secure-cookies", c.SecureCookies, "site is served over HTTPS: Secure __Host- cookies and HSTS (WEBTIER_SECURE_COOKIES)")
	fs.Func("trusted-proxies", "comma-separated CIDRs whose forwarded headers are trusted (WEBTIER_TRUSTED_PROXIES)", listFlag(&c.TrustedProxies))
	fs.Func("trusted-origins", "comma-separated extra origins allowed to POST (WEBTIER_TRUSTED_ORIGINS)", listFlag(&c.TrustedOrigins))
	fs.IntVar(&c.SignInLimit, "signin-limit", c.SignInLimit, "sign-in attempts per client IP per window (WEBTIER_SIGNIN_LIMIT)")
	fs.DurationVar(&c.SignInWindow, "signin-window", c.SignInWindow, "sign-in rate window (WEBTIER_SIGNIN_WINDOW)")
	fs.IntVar(&c.SignUpLimit, "signup-limit", c.SignUpLimit, "sign-ups per client IP per window (WEBTIER_SIGNUP_LIMIT)")
	fs.DurationVar(&c.SignUpWindow, "signup-window", c.SignUpWindow, "sign-up rate window (WEBTIER_SIGNUP_WINDOW)")
	fs.IntVar(&c.MaxStreams, "max-streams", c.MaxStreams, "maximum concurrent live-update streams (WEBTIER_MAX_STREAMS)")
	fs.IntVar(&c.MaxStreamsPerSession, "max-streams-per-session", c.MaxStreamsPerSession, "live-update streams per signed-in session (WEBTIER_MAX_STREAMS_PER_SESSION)")
	fs.IntVar(&c.MaxStreamsPerIP, "max-streams-per-ip", c.MaxStreamsPerIP, "live-update streams per client IP (WEBTIER_MAX_STREAMS_PER_IP)")
	fs.DurationVar(&c.StreamKeepAlive, "stream-keepalive", c.StreamKeepAlive, "keep-alive interval of live-update streams (WEBTIER_STREAM_KEEPALIVE)")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", c.ReadHeaderTimeout, "HTTP read header timeout (WEBTIER_READ_HEADER_TIMEOUT)")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", c.ReadTimeout, "HTTP read timeout (WEBTIER_READ_TIMEOUT)")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "HTTP write timeout (WEBTIER_WRITE_TIMEOUT)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "HTTP keep-alive idle timeout (WEBTIER_IDLE_TIMEOUT)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "graceful shutdown limit (WEBTIER_SHUTDOWN_TIMEOUT)")
	fs.TextVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (WEBTIER_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return c, c.Validate()
}

type envReader struct {
	getenv func(string) string
	errs   []error
}

func (e *envReader) str(dst *string, name string) {
	if v := strings.TrimSpace(e.getenv(name)); v != "" {
		*dst = v
	}
}

func (e *envReader) list(dst *[]string, name string) {
	if v := e.getenv(name); strings.TrimSpace(v) != "" {
		*dst = splitList(v)
	}
}

func (e *envReader) int(dst *int, name string) {
	if v := strings.TrimSpace(e.getenv(name)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: not an integer", name, v))
			return
		}
		*dst = n
	}
}

func (e *envReader) dur(dst *time.Duration, name string) {
	if v := strings.TrimSpace(e.getenv(name)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: not a duration like 1s", name, v))
			return
		}
		*dst = d
	}
}

func (e *envReader) bool(dst *bool, name string) {
	if v := strings.TrimSpace(e.getenv(name)); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: not a boolean", name, v))
			return
		}
		*dst = b
	}
}

func (e *envReader) level(dst *slog.Level, name string) {
	if v := strings.TrimSpace(e.getenv(name)); v != "" {
		if err := dst.UnmarshalText([]byte(v)); err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: not one of debug, info, warn, error", name, v))
		}
	}
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func listFlag(dst *[]string) func(string) error {
	return func(s string) error {
		*dst = splitList(s)
		return nil
	}
}
