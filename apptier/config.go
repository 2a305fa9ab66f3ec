package apptier

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// DevSecret is the development default of APPTIER_SECRET, shared with the
// web tier's default so that a local start needs no setup. Production sets
// its own; the server warns when it runs with this one.
const DevSecret = "bankwire-dev-secret"

// Settings is everything the apptier binary needs: the process's own
// settings and the bank's rules (App). Every field has an environment
// variable and a flag of the same meaning (see LoadConfig).
type Settings struct {
	Addr            string        // protocol listen address (APPTIER_ADDR)
	AdminAddr       string        // /metrics and /healthz; "off" or empty disables (APPTIER_ADMIN_ADDR)
	DatabaseURL     string        // APPTIER_DATABASE_URL or DATABASE_URL; never logged
	DBMaxConns      int           // PostgreSQL pool size; 0 derives it from max_connections (APPTIER_DB_MAX_CONNS)
	Secret          string        // shared protocol secret (APPTIER_SECRET); never logged
	Migrate         bool          // apply migrations on start (APPTIER_MIGRATE)
	MaxConns        int           // protocol connections (APPTIER_MAX_CONNS)
	TLSCert, TLSKey string        // both set enables TLS (APPTIER_TLS_CERT, APPTIER_TLS_KEY)
	LogLevel        slog.Level    // APPTIER_LOG_LEVEL
	ShutdownTimeout time.Duration // how long a drain may take (APPTIER_SHUTDOWN_TIMEOUT)
	App             Config        // the bank's rules
}

// DefaultSettings returns the settings for local use: PostgreSQL on
// localhost, the protocol on :12121 (the walkthrough's port).
func DefaultSettings() Settings {
	return Settings{
		Addr:            ":12121",
		AdminAddr:       ":9090",
		DatabaseURL:     "postgres://bankwire:bankwire-dev-password@localhost:5432/bankwire?sslmode=disable",
		Secret:          DevSecret,
		MaxConns:        256,
		LogLevel:        slog.LevelInfo,
		ShutdownTimeout: 20 * time.Second,
		App:             DefaultConfig(),
	}
}

// Validate reports every setting that cannot work, all at once.
func (s Settings) Validate() error {
	var errs []error
	if s.Addr == "" {
		errs = append(errs, errors.New("listen address is empty"))
	}
	if s.Secret == "" {
		errs = append(errs, errors.New("APPTIER_SECRET must not be empty"))
	}
	if s.DBMaxConns < 0 {
		errs = append(errs, fmt.Errorf("database pool size %d: must not be negative (0 derives it)", s.DBMaxConns))
	}
	if s.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("max conns %d: must be at least 1", s.MaxConns))
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		errs = append(errs, errors.New("TLS needs both a certificate and a key file"))
	}
	if s.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout %s: must be positive", s.ShutdownTimeout))
	}
	errs = append(errs, s.App.Validate())
	return errors.Join(errs...)
}

// LoadConfig builds Settings from DefaultSettings, then the environment
// (read through getenv), then command-line flags in args; later sources
// win. Every malformed or unusable value is reported, all at once; none is
// ignored.
func LoadConfig(args []string, getenv func(string) string) (Settings, error) {
	s := DefaultSettings()
	a := &s.App
	env := envReader{getenv: getenv}
	env.str(&s.Addr, "APPTIER_ADDR")
	env.str(&s.AdminAddr, "APPTIER_ADMIN_ADDR")
	env.str(&s.DatabaseURL, "DATABASE_URL")
	env.str(&s.DatabaseURL, "APPTIER_DATABASE_URL")
	env.int(&s.DBMaxConns, "APPTIER_DB_MAX_CONNS")
	env.str(&s.Secret, "APPTIER_SECRET")
	env.bool(&s.Migrate, "APPTIER_MIGRATE")
	env.bool(&a.DemoData, "APPTIER_DEMO_DATA")
	env.amount(&a.DailyLimit, "APPTIER_DAILY_LIMIT")
	env.dur(&a.IdleTimeout, "APPTIER_SESSION_IDLE")
	env.dur(&a.AbsoluteTimeout, "APPTIER_SESSION_MAX")
	env.dur(&a.ThrottleWindow, "APPTIER_THROTTLE_WINDOW")
	env.int(&a.LockAfter, "APPTIER_LOCK_AFTER")
	env.int(&a.IPLimit, "APPTIER_SIGNIN_IP_LIMIT")
	env.dur(&a.RateWindow, "APPTIER_RATE_WINDOW")
	env.int(&a.SignUpIPLimit, "APPTIER_SIGNUP_IP_LIMIT")
	env.int(&a.ChatOpenLimit, "APPTIER_CHAT_OPEN_LIMIT")
	env.int(&a.ChatSendLimit, "APPTIER_CHAT_SEND_LIMIT")
	env.dur(&a.AuditRetention, "APPTIER_AUDIT_RETENTION")
	env.dur(&a.SessionRetention, "APPTIER_SESSION_RETENTION")
	env.dur(&a.PurgeInterval, "APPTIER_PURGE_INTERVAL")
	env.int(&s.MaxConns, "APPTIER_MAX_CONNS")
	env.str(&s.TLSCert, "APPTIER_TLS_CERT")
	env.str(&s.TLSKey, "APPTIER_TLS_KEY")
	env.level(&s.LogLevel, "APPTIER_LOG_LEVEL")
	env.dur(&s.ShutdownTimeout, "APPTIER_SHUTDOWN_TIMEOUT")
	env.gone("APPTIER_LOCK_FOR", "a (username, client) pair stays refused while its failures are inside APPTIER_THROTTLE_WINDOW")

	fs := flag.NewFlagSet("apptier", flag.ContinueOnError)
	fs.StringVar(&s.Addr, "addr", s.Addr, "protocol listen address (APPTIER_ADDR)")
	fs.StringVar(&s.AdminAddr, "admin-addr", s.AdminAddr, "admin HTTP address for /metrics and /healthz; off or empty disables (APPTIER_ADMIN_ADDR)")
	// Secrets have no printed default: -help must not show them.
	fs.Func("database-url", "PostgreSQL URL (APPTIER_DATABASE_URL or DATABASE_URL); prefer the environment", setString(&s.DatabaseURL))
	fs.IntVar(&s.DBMaxConns, "db-max-conns", s.DBMaxConns, "PostgreSQL pool size; 0 derives it from the server's max_connections (APPTIER_DB_MAX_CONNS)")
	fs.Func("secret", "shared secret the web tier presents in the handshake (APPTIER_SECRET); prefer the environment", setString(&s.Secret))
	fs.BoolVar(&s.Migrate, "migrate", s.Migrate, "apply database migrations on start (APPTIER_MIGRATE)")
	fs.BoolVar(&a.DemoData, "demo-data", a.DemoData, "load the demo customers alice and bob on start (APPTIER_DEMO_DATA)")
	fs.Var(amountFlag{&a.DailyLimit}, "daily-limit", "daily outgoing transfer limit to other customers (APPTIER_DAILY_LIMIT)")
	fs.DurationVar(&a.IdleTimeout, "session-idle", a.IdleTimeout, "session idle timeout (APPTIER_SESSION_IDLE)")
	fs.DurationVar(&a.AbsoluteTimeout, "session-max", a.AbsoluteTimeout, "session absolute lifetime (APPTIER_SESSION_MAX)")
	fs.DurationVar(&a.ThrottleWindow, "throttle-window", a.ThrottleWindow, "how long failed sign-ins count (APPTIER_THROTTLE_WINDOW)")
	fs.IntVar(&a.LockAfter, "lock-after", a.LockAfter, "failed sign-ins per (username, client IP) before that pair is refused (APPTIER_LOCK_AFTER)")
	fs.IntVar(&a.IPLimit, "signin-ip-limit", a.IPLimit, "failed sign-ins per client IP before it is refused (APPTIER_SIGNIN_IP_LIMIT)")
	fs.DurationVar(&a.RateWindow, "rate-window", a.RateWindow, "window of the sign-up and chat-open limits (APPTIER_RATE_WINDOW)")
	fs.IntVar(&a.SignUpIPLimit, "signup-ip-limit", a.SignUpIPLimit, "sign-ups per client IP per rate window (APPTIER_SIGNUP_IP_LIMIT)")
	fs.IntVar(&a.ChatOpenLimit, "chat-open-limit", a.ChatOpenLimit, "chats opened by username per customer per rate window (APPTIER_CHAT_OPEN_LIMIT)")
	fs.IntVar(&a.ChatSendLimit, "chat-send-limit", a.ChatSendLimit, "chat messages per customer per minute (APPTIER_CHAT_SEND_LIMIT)")
	fs.DurationVar(&a.AuditRetention, "audit-retention", a.AuditRetention, "how long sign-in events are kept (APPTIER_AUDIT_RETENTION)")
	fs.DurationVar(&a.SessionRetention, "session-retention", a.SessionRetention, "how long ended sessions are kept (APPTIER_SESSION_RETENTION)")
	fs.DurationVar(&a.PurgeInterval, "purge-interval", a.PurgeInterval, "how often old sessions and sign-in events are deleted (APPTIER_PURGE_INTERVAL)")
	fs.IntVar(&s.MaxConns, "max-conns", s.MaxConns, "maximum protocol connections (APPTIER_MAX_CONNS)")
	fs.StringVar(&s.TLSCert, "tls-cert", s.TLSCert, "TLS certificate file; with -tls-key enables TLS (APPTIER_TLS_CERT)")
	fs.StringVar(&s.TLSKey, "tls-key", s.TLSKey, "TLS key file (APPTIER_TLS_KEY)")
	fs.TextVar(&s.LogLevel, "log-level", s.LogLevel, "debug, info, warn or error (APPTIER_LOG_LEVEL)")
	fs.DurationVar(&s.ShutdownTimeout, "shutdown-timeout", s.ShutdownTimeout, "how long a drain may take (APPTIER_SHUTDOWN_TIMEOUT)")
	if err := errors.Join(env.errs...); err != nil {
		return Settings{}, err
	}
	if err := fs.Parse(args); err != nil {
		return Settings{}, err
	}
	if fs.NArg() > 0 {
		return Settings{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if s.AdminAddr == "off" {
		// An environment variable cannot be told apart from an unset one
		// when empty, so "off" disables there.
		s.AdminAddr = ""
	}
	return s, s.Validate()
}

// envReader applies environment variables, collecting every malformed one.
type envReader struct {
	getenv func(string) string
	errs   []error
}

func (e *envReader) value(name string) (string, bool) {
	v := strings.TrimSpace(e.getenv(name))
	return v, v != ""
}

func (e *envReader) str(dst *string, name string) {
	if v, ok := e.value(name); ok {
		*dst = v
	}
}

func (e *envReader) parse(name string, what string, f func(string) error) {
	if v, ok := e.value(name); ok {
		if err := f(v); err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: %s", name, v, what))
		}
	}
}

func (e *envReader) int(dst *int, name string) {
	e.parse(name, "not an integer", func(v string) (err error) { *dst, err = strconv.Atoi(v); return err })
}

func (e *envReader) dur(dst *time.Duration, name string) {
	e.parse(name, "not a duration like 15m or 90s", func(v string) (err error) { *dst, err = time.ParseDuration(v); return err })
}

func (e *envReader) bool(dst *bool, name string) {
	e.parse(name, "not a boolean (true or false)", func(v string) (err error) { *dst, err = strconv.ParseBool(v); return err })
}

func (e *envReader) amount(dst *int64, name string) {
	e.parse(name, "not an amount like 10000.00", func(v string) (err error) { *dst, err = ParseAmount(v); return err })
}

func (e *envReader) level(dst *slog.Level, name string) {
	e.parse(name, "not a log level (debug, info, warn or error)", func(v string) error { return dst.UnmarshalText([]byte(v)) })
}

// gone reports a variable that is no longer read, so that a setting the
// operator believes in does not silently do nothing.
func (e *envReader) gone(name, instead string) {
	if v, ok := e.value(name); ok {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: no longer used: %s", name, v, instead))
	}
}

func setString(dst *string) func(string) error {
	return func(v string) error { *dst = v; return nil }
}

// amountFlag is a flag holding an amount in minor units, written as a
// decimal ("10000.00").
type amountFlag struct{ dst *int64 }

func (f amountFlag) String() string {
	if f.dst == nil {
		return ""
	}
	return FormatAmount(*f.dst)
}

func (f amountFlag) Set(v string) error {
	n, err := ParseAmount(v)
	if err != nil {
		return err
	}
	*f.dst = n
	return nil
}
