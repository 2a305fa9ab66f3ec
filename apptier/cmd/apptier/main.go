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
		Name: apptier.HealthcheckClient + apptier.Version, ConnsPerAddr: 1, DialTimeout: 2 * time.Second, TLS: tc})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return c.Ping(ctx)
}

// serve runs the app tier (apptier.Run) with the process's own parts
// around it: the logger, and the admin HTTP server with /metrics,
// /healthz and /readyz.
func serve(ctx context.Context, cfg apptier.Settings, log *slog.Logger) error {
	cfg.App.Logger = log
	reg := prometheus.NewRegistry()
	var admin *http.Server
	err := apptier.Run(ctx, cfg, apptier.Wiring{Metrics: reg, Started: func(app *apptier.App) {
		if cfg.AdminAddr != "" {
			admin = startAdmin(cfg.AdminAddr, reg, app, log)
		}
	}})
	if admin != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = admin.Shutdown(sctx)
	}
	return err
}

// startAdmin serves /metrics, /healthz and /readyz on addr.
func startAdmin(addr string, reg *prometheus.Registry, app *apptier.App, log *slog.Logger) *http.Server {
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
	admin := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := admin.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server", "err", err)
		}
	}()
	log.Info("admin listening", "addr", addr)
	return admin
}
