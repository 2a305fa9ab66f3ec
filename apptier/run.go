package apptier

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"bankwire/proto"
	"bankwire/store"
)

// HealthcheckClient starts the client name of the apptier command's
// healthcheck; the server logs those connections at DEBUG, since compose
// runs one every 5 s.
const HealthcheckClient = "bankwire-healthcheck/"

// Wiring is what Run takes besides Settings: the parts a process supplies
// itself. Every field is optional.
type Wiring struct {
	// Listener is where the protocol is served; Run closes it. Without
	// one, Run listens on Settings.Addr.
	Listener net.Listener
	// Store is the database. Without one, Run opens Settings.DatabaseURL
	// (retrying for a minute while the database starts), applies the
	// migrations if Settings.Migrate, and closes the pool on return.
	Store *store.Store
	// Metrics is where the app tier's metrics are registered (NewMetrics);
	// nil registers none.
	Metrics prometheus.Registerer
	// Server, if set, changes the protocol server's settings last.
	Server func(*proto.ServerConfig)
	// Started, if set, is called with the App once it is built (demo data
	// loaded) and the listener is open, before requests are served.
	Started func(*App)
}

// Run is the app tier: it builds the store, the App (loading demo data if
// Settings.App.DemoData) and the protocol server, then serves, with the
// App's notification listener and retention running beside it (see
// runBackground), until ctx ends. Then it drains the protocol connections
// for up to Settings.ShutdownTimeout, stops the background work and
// returns. It returns early with the error of anything that fails.
//
// The apptier command and package apptiertest both run the app tier
// through Run; what only a process does (flags, signals, the admin HTTP
// server) stays in the command. Settings.App.Logger logs everything.
func Run(ctx context.Context, s Settings, w Wiring) (err error) {
	ln := w.Listener
	defer func() {
		if ln != nil && err != nil {
			ln.Close() // Run owns it even when it fails before serving
		}
	}()
	cfg := s.App.Defaults()
	log := cfg.Logger
	if s.Secret == DevSecret {
		log.Warn("running with the development shared secret; set APPTIER_SECRET in production")
	}
	var tc *tls.Config
	if s.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey)
		if err != nil {
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	st := w.Store
	if st == nil {
		var closeStore func()
		if st, closeStore, err = s.openStore(ctx, log); err != nil {
			return err
		}
		defer closeStore()
	}
	app, err := New(cfg, st)
	if err != nil {
		return err
	}
	if cfg.DemoData {
		if err := app.SeedDemo(ctx); err != nil {
			return fmt.Errorf("demo data: %w", err)
		}
		log.Info("demo data ready", "customers", "alice, bob")
	}

	sc := proto.ServerConfig{Name: cfg.Name, Secret: s.Secret, TLS: tc, MaxConns: s.MaxConns, Logger: log,
		Quiet: func(client string) bool { return strings.HasPrefix(client, HealthcheckClient) }}
	if w.Metrics != nil {
		sc.Observe = NewMetrics(w.Metrics, st).Observe
	}
	if w.Server != nil {
		w.Server(&sc)
	}
	srv := proto.NewServer(sc, app.Mux())
	if ln == nil {
		if ln, err = net.Listen("tcp", s.Addr); err != nil {
			return fmt.Errorf("listen %s: %w", s.Addr, err)
		}
	}
	if w.Started != nil {
		w.Started(app)
	}

	// The background work outlives ctx until the drain is over: streams
	// still being drained keep receiving their events.
	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBg()
	bgDone := make(chan error, 1)
	go func() { bgDone <- app.runBackground(bgCtx) }()
	log.Info("apptier listening", "addr", ln.Addr().String(), "tls", tc != nil)
	serveDone := make(chan error, 1)
	go func(ln net.Listener) { serveDone <- srv.Serve(ln) }(ln)
	ln = nil // the server closes it

	bgOver := false
	select {
	case err := <-serveDone:
		stopBg()
		<-bgDone
		return err
	case err = <-bgDone:
		bgOver = true
		if err != nil {
			err = fmt.Errorf("notification listener: %w", err)
		}
	case <-ctx.Done():
	}
	log.Info("shutting down: draining protocol connections")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cmp.Or(s.ShutdownTimeout, DefaultSettings().ShutdownTimeout))
	defer cancel()
	serr := srv.Shutdown(sctx)
	stopBg()
	if !bgOver {
		if berr := <-bgDone; berr != nil && err == nil {
			err = fmt.Errorf("notification listener: %w", berr)
		}
	}
	if err == nil {
		err = serr
	}
	if serr := <-serveDone; serr != nil && !errors.Is(serr, proto.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// openStore connects to PostgreSQL at s.DatabaseURL, retrying for a while
// (in compose the database may still be starting when the app tier does),
// and applies the migrations if s.Migrate. closeStore closes the pool.
func (s Settings) openStore(ctx context.Context, log *slog.Logger) (st *store.Store, closeStore func(), err error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		pool, err := store.Open(ctx, s.DatabaseURL, store.WithMaxConns(s.DBMaxConns))
		if err == nil {
			if err = pool.Ping(ctx); err == nil {
				log.Info("database pool", "max_conns", pool.Config().MaxConns)
				if s.Migrate {
					if err := store.Migrate(ctx, pool); err != nil {
						pool.Close()
						return nil, nil, fmt.Errorf("migrate: %w", err)
					}
					log.Info("migrations applied")
				}
				return store.New(pool, store.WithLogger(log)), pool.Close, nil
			}
			pool.Close()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, nil, fmt.Errorf("connect to database: %w", err)
		}
		log.Warn("database not ready, retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
