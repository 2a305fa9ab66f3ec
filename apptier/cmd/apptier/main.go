// Command apptier is bankwire's application server: it listens for the web
// tier on the bankwire protocol (default :12121, the walkthrough's port),
// applies the bank's rules and keeps the data in PostgreSQL.
//
// Usage:
//
//	apptier [flags]              serve (the default)
//	apptier migrate [flags]      apply database migrations and exit
//	apptier healthcheck [flags]  dial the app tier, ping, exit 0 if it answers
//
// Every flag can also be set by the environment variable shown in -help.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"bankwire/apptier"
	"bankwire/proto"
	"bankwire/store"
)

// devSecret is the development default of APPTIER_SECRET, shared with the
// web tier's default so that a local start needs no setup. Production sets
// its own; the server warns when it runs with this one.
const devSecret = "bankwire-dev-secret"

type config struct {
	addr, adminAddr, databaseURL, secret    string
	migrate, demoData                       bool
	dailyLimit                              string
	idle, absolute, lockFor, auditRetention time.Duration
	sessionRetention, purgeInterval         time.Duration
	lockAfter, maxConns                     int
	tlsCert, tlsKey, logLevel               string
	shutdownTimeout                         time.Duration
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envBool(name string, def bool) bool {
	if v, ok := os.LookupEnv(name); ok {
		b, err := strconv.ParseBool(v)
		if err == nil {
			return b
		}
		fmt.Fprintf(os.Stderr, "ignoring %s=%q: not a boolean\n", name, v)
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(name); ok {
		d, err := time.ParseDuration(v)
		if err == nil {
			return d
		}
		fmt.Fprintf(os.Stderr, "ignoring %s=%q: not a duration\n", name, v)
	}
	return def
}

func envInt(name string, def int) int {
	if v, ok := os.LookupEnv(name); ok {
		n, err := strconv.Atoi(v)
		if err == nil {
			return n
		}
		fmt.Fprintf(os.Stderr, "ignoring %s=%q: not an integer\n", name, v)
	}
	return def
}

func parseFlags(name string, args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", env("APPTIER_ADDR", ":12121"), "protocol listen address (APPTIER_ADDR)")
	fs.StringVar(&c.adminAddr, "admin-addr", env("APPTIER_ADMIN_ADDR", ":9090"), "admin HTTP address for /metrics and /healthz; empty disables (APPTIER_ADMIN_ADDR)")
	fs.StringVar(&c.databaseURL, "database-url", env("APPTIER_DATABASE_URL", env("DATABASE_URL", "postgres://bankwire:bankwire-dev-password@localhost:5432/bankwire?sslmode=disable")), "PostgreSQL URL (APPTIER_DATABASE_URL or DATABASE_URL)")
	fs.StringVar(&c.secret, "secret", env("APPTIER_SECRET", devSecret), "shared secret the web tier presents in the handshake (APPTIER_SECRET)")
	fs.BoolVar(&c.migrate, "migrate", envBool("APPTIER_MIGRATE", false), "apply database migrations on start (APPTIER_MIGRATE)")
	fs.BoolVar(&c.demoData, "demo-data", envBool("APPTIER_DEMO_DATA", false), "load the demo customers alice and bob on start (APPTIER_DEMO_DATA)")
	fs.StringVar(&c.dailyLimit, "daily-limit", env("APPTIER_DAILY_LIMIT", "10000.00"), "daily outgoing transfer limit to other customers (APPTIER_DAILY_LIMIT)")
	fs.DurationVar(&c.idle, "session-idle", envDuration("APPTIER_SESSION_IDLE", 15*time.Minute), "session idle timeout (APPTIER_SESSION_IDLE)")
	fs.DurationVar(&c.absolute, "session-max", envDuration("APPTIER_SESSION_MAX", 8*time.Hour), "session absolute lifetime (APPTIER_SESSION_MAX)")
	fs.IntVar(&c.lockAfter, "lock-after", envInt("APPTIER_LOCK_AFTER", 5), "failed sign-ins per username before a temporary lock (APPTIER_LOCK_AFTER)")
	fs.DurationVar(&c.lockFor, "lock-for", envDuration("APPTIER_LOCK_FOR", 15*time.Minute), "how long a sign-in lock lasts (APPTIER_LOCK_FOR)")
	fs.DurationVar(&c.auditRetention, "audit-retention", envDuration("APPTIER_AUDIT_RETENTION", 90*24*time.Hour), "how long sign-in events are kept (APPTIER_AUDIT_RETENTION)")
	fs.DurationVar(&c.sessionRetention, "session-retention", envDuration("APPTIER_SESSION_RETENTION", 24*time.Hour), "how long ended sessions are kept (APPTIER_SESSION_RETENTION)")
	fs.DurationVar(&c.purgeInterval, "purge-interval", envDuration("APPTIER_PURGE_INTERVAL", time.Hour), "how often old sessions and sign-in events are deleted (APPTIER_PURGE_INTERVAL)")
	fs.IntVar(&c.maxConns, "max-conns", envInt("APPTIER_MAX_CONNS", 256), "maximum protocol connections (APPTIER_MAX_CONNS)")
	fs.StringVar(&c.tlsCert, "tls-cert", env("APPTIER_TLS_CERT", ""), "TLS certificate file; with -tls-key enables TLS (APPTIER_TLS_CERT)")
	fs.StringVar(&c.tlsKey, "tls-key", env("APPTIER_TLS_KEY", ""), "TLS key file (APPTIER_TLS_KEY)")
	fs.StringVar(&c.logLevel, "log-level", env("APPTIER_LOG_LEVEL", "info"), "debug, info, warn or error (APPTIER_LOG_LEVEL)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", envDuration("APPTIER_SHUTDOWN_TIMEOUT", 20*time.Second), "how long a drain may take (APPTIER_SHUTDOWN_TIMEOUT)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return c, nil
}

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	cfg, err := parseFlags("apptier "+cmd, args)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "apptier:", err)
		os.Exit(2)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "serve":
		err = serve(ctx, cfg, log)
	case "migrate":
		err = migrate(ctx, cfg)
	case "healthcheck":
		err = healthcheck(ctx, cfg)
	default:
		err = fmt.Errorf("unknown command %q (want serve, migrate or healthcheck)", cmd)
	}
	if err != nil {
		log.Error("apptier "+cmd+" failed", "err", err)
		os.Exit(1)
	}
}

func migrate(ctx context.Context, cfg config) error {
	pool, err := store.Open(ctx, cfg.databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	return store.Migrate(ctx, pool)
}

// healthcheckClient starts the client name the healthcheck sends; the
// server logs those connections at DEBUG, since compose runs one every 5 s.
const healthcheckClient = "bankwire-healthcheck/"

// healthcheck dials the app tier's own address and pings it: the container
// healthcheck of an image that has no shell.
func healthcheck(ctx context.Context, cfg config) error {
	host, port, err := net.SplitHostPort(cfg.addr)
	if err != nil {
		return err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	var tc *tls.Config
	if cfg.tlsCert != "" {
		tc = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // a local liveness probe of our own process
	}
	c, err := proto.NewClient(proto.ClientConfig{Addrs: []string{net.JoinHostPort(host, port)}, Secret: cfg.secret,
		Name: healthcheckClient + apptier.Version, ConnsPerAddr: 1, DialTimeout: 2 * time.Second, TLS: tc})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return c.Ping(ctx)
}

func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	if cfg.secret == "" {
		return errors.New("APPTIER_SECRET must not be empty")
	}
	if cfg.secret == devSecret {
		log.Warn("running with the development shared secret; set APPTIER_SECRET in production")
	}
	limit, err := apptier.ParseAmount(cfg.dailyLimit)
	if err != nil {
		return fmt.Errorf("daily limit %q: %w", cfg.dailyLimit, err)
	}
	var tc *tls.Config
	if cfg.tlsCert != "" || cfg.tlsKey != "" {
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	pool, err := openWithRetry(ctx, cfg.databaseURL, log)
	if err != nil {
		return err
	}
	defer pool.Close()
	if cfg.migrate {
		if err := store.Migrate(ctx, pool); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		log.Info("migrations applied")
	}
	st := store.New(pool)
	app, err := apptier.New(apptier.Config{DailyLimit: limit, IdleTimeout: cfg.idle, AbsoluteTimeout: cfg.absolute,
		LockAfter: cfg.lockAfter, LockFor: cfg.lockFor, AuditRetention: cfg.auditRetention,
		SessionRetention: cfg.sessionRetention, PurgeInterval: cfg.purgeInterval, DemoData: cfg.demoData, Logger: log}, st)
	if err != nil {
		return err
	}
	if cfg.demoData {
		if err := app.SeedDemo(ctx); err != nil {
			return fmt.Errorf("demo data: %w", err)
		}
		log.Info("demo data ready", "customers", "alice, bob")
	}

	reg := prometheus.NewRegistry()
	metrics := apptier.NewMetrics(reg, st)
	srv := proto.NewServer(proto.ServerConfig{Name: "bankwire-apptier/" + apptier.Version, Secret: cfg.secret, TLS: tc,
		MaxConns: cfg.maxConns, Logger: log, Observe: metrics.Observe,
		Quiet: func(client string) bool { return strings.HasPrefix(client, healthcheckClient) }}, app.Mux())

	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	runDone := make(chan error, 1)
	go func() { runDone <- app.Run(runCtx) }()

	var admin *http.Server
	if cfg.adminAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
		// Ready only while a database that accepts writes answers: false
		// during a failover, so a load balancer can tell.
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := app.Ready(ctx); err != nil {
				http.Error(w, "no writable database", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ready")
		})
		admin = &http.Server{Addr: cfg.adminAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := admin.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin server", "err", err)
			}
		}()
	}

	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.ListenAndServe(cfg.addr) }()
	log.Info("apptier listening", "addr", cfg.addr, "admin_addr", cfg.adminAddr, "tls", tc != nil)

	select {
	case err := <-serveDone:
		return err
	case err := <-runDone:
		if err != nil {
			return fmt.Errorf("notification listener: %w", err)
		}
	case <-ctx.Done():
	}
	log.Info("shutting down: draining protocol connections")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if admin != nil {
		_ = admin.Shutdown(sctx)
	}
	cancelRun()
	if serr := <-serveDone; serr != nil && !errors.Is(serr, proto.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// openWithRetry connects to PostgreSQL, retrying for a while: in compose the
// database may still be starting when the app tier does.
func openWithRetry(ctx context.Context, url string, log *slog.Logger) (*pgxpool.Pool, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		pool, err := store.Open(ctx, url)
		if err == nil {
			if err = pool.Ping(ctx); err == nil {
				return pool, nil
			}
			pool.Close()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("connect to database: %w", err)
		}
		log.Warn("database not ready, retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
