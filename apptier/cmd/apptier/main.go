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

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	cfg, err := apptier.LoadConfig(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "apptier %s: bad settings:\n%v\n", cmd, err)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
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

func migrate(ctx context.Context, cfg apptier.Settings) error {
	pool, err := store.Open(ctx, cfg.DatabaseURL)
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
func healthcheck(ctx context.Context, cfg apptier.Settings) error {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	var tc *tls.Config
	if cfg.TLSCert != "" {
		tc = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // a local liveness probe of our own process
	}
	c, err := proto.NewClient(proto.ClientConfig{Addrs: []string{net.JoinHostPort(host, port)}, Secret: cfg.Secret,
		Name: healthcheckClient + apptier.Version, ConnsPerAddr: 1, DialTimeout: 2 * time.Second, TLS: tc})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return c.Ping(ctx)
}

func serve(ctx context.Context, cfg apptier.Settings, log *slog.Logger) error {
	if cfg.Secret == apptier.DevSecret {
		log.Warn("running with the development shared secret; set APPTIER_SECRET in production")
	}
	var tc *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	pool, err := openWithRetry(ctx, cfg.DatabaseURL, cfg.DBMaxConns, log)
	if err != nil {
		return err
	}
	defer pool.Close()
	log.Info("database pool", "max_conns", pool.Config().MaxConns)
	if cfg.Migrate {
		if err := store.Migrate(ctx, pool); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		log.Info("migrations applied")
	}
	st := store.New(pool, store.WithLogger(log))
	appCfg := cfg.App
	appCfg.Logger = log
	app, err := apptier.New(appCfg, st)
	if err != nil {
		return err
	}
	if appCfg.DemoData {
		if err := app.SeedDemo(ctx); err != nil {
			return fmt.Errorf("demo data: %w", err)
		}
		log.Info("demo data ready", "customers", "alice, bob")
	}

	reg := prometheus.NewRegistry()
	metrics := apptier.NewMetrics(reg, st)
	srv := proto.NewServer(proto.ServerConfig{Name: "bankwire-apptier/" + apptier.Version, Secret: cfg.Secret, TLS: tc,
		MaxConns: cfg.MaxConns, Logger: log, Observe: metrics.Observe,
		Quiet: func(client string) bool { return strings.HasPrefix(client, healthcheckClient) }}, app.Mux())

	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	runDone := make(chan error, 1)
	go func() { runDone <- app.Run(runCtx) }()

	var admin *http.Server
	if cfg.AdminAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
		admin = &http.Server{Addr: cfg.AdminAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := admin.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin server", "err", err)
			}
		}()
	}

	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.ListenAndServe(cfg.Addr) }()
	log.Info("apptier listening", "addr", cfg.Addr, "admin_addr", cfg.AdminAddr, "tls", tc != nil)

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
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
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
func openWithRetry(ctx context.Context, url string, maxConns int, log *slog.Logger) (*pgxpool.Pool, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		pool, err := store.Open(ctx, url, store.WithMaxConns(maxConns))
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
