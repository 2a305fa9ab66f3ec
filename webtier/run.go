package webtier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"bankwire/proto"
)

// clientName is how the web tier introduces itself in the protocol handshake.
const clientName = "bankwire-webtier/1.0"

// NewClient makes the app-tier client described by cfg. Connections are
// dialed lazily, so the web tier starts (and shows its 503 page) while the
// app tier is still down.
func NewClient(cfg Config, logger *slog.Logger) (*proto.Client, error) {
	return proto.NewClient(proto.ClientConfig{
		Addrs:        cfg.AppTierAddrs,
		Secret:       cfg.AppTierSecret,
		Name:         clientName,
		ConnsPerAddr: cfg.ConnsPerAddr,
		DialTimeout:  cfg.DialTimeout,
		// A call without a request deadline (none in this package) still ends.
		DefaultTimeout: cfg.CallTimeout,
		Logger:         logger,
	})
}

// Run serves the web tier on cfg.Addr (and /metrics on cfg.AdminAddr) until
// ctx is canceled, then shuts down gracefully: live-update streams end at
// once, in-flight pages get cfg.ShutdownTimeout to finish.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	client, err := NewClient(cfg, logger)
	if err != nil {
		return fmt.Errorf("app tier client: %w", err)
	}
	defer client.Close()
	web, err := New(cfg, client, logger)
	if err != nil {
		return err
	}
	defer web.CloseStreams()

	errorLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	public := &http.Server{
		Handler:           web,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          errorLog,
	}
	public.RegisterOnShutdown(web.CloseStreams)
	servers := []*http.Server{public}
	listeners := []net.Listener{}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	listeners = append(listeners, ln)
	logger.Info("web tier listening", "addr", ln.Addr().String(), "apptier", cfg.AppTierAddrs,
		"https", cfg.SecureCookies)

	if cfg.AdminAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", web.MetricsHandler())
		mux.HandleFunc("GET /healthz", web.healthz)
		admin := &http.Server{
			Handler: mux, ReadHeaderTimeout: cfg.ReadHeaderTimeout, ReadTimeout: cfg.ReadTimeout,
			WriteTimeout: cfg.WriteTimeout, IdleTimeout: cfg.IdleTimeout, ErrorLog: errorLog,
		}
		aln, err := net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen %s: %w", cfg.AdminAddr, err)
		}
		servers = append(servers, admin)
		listeners = append(listeners, aln)
		logger.Info("admin listening", "addr", aln.Addr().String(), "paths", "/metrics /healthz")
	}

	serveErr := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { serveErr <- srv.Serve(listeners[i]) }()
	}

	var runErr error
	pending := len(servers)
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-serveErr:
		pending--
		runErr = fmt.Errorf("serve: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("shutdown: %w", err))
			srv.Close()
		}
	}
	// Every Serve has returned once Shutdown did; drain their results.
	for range pending {
		if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			runErr = errors.Join(runErr, err)
		}
	}
	logger.Info("web tier stopped")
	return runErr
}

// Healthcheck asks a web tier listening on addr (as in WEBTIER_ADDR, e.g.
// ":8080") whether it is alive, through 127.0.0.1. It is the container
// healthcheck of an image without a shell or curl.
func Healthcheck(ctx context.Context, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort("127.0.0.1", port)+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz answered %s", resp.Status)
	}
	return nil
}
