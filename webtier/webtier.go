// Package webtier is bankwire's web tier: the bank in the browser.
//
// It serves server-rendered HTML pages (html/template, with CSS and a small
// script embedded in the binary) through a chi router and asks the app tier
// for everything over the bankwire protocol (package proto). It holds no
// database credentials and never imports the store, pgx or the app tier, so
// a compromised web tier can only ask what any signed-in customer could ask;
// arch_test.go keeps that property true.
//
// What lives here and nowhere else: cookies and sessions as the browser sees
// them, CSRF protection, security headers, per-IP rate limits on sign-in and
// sign-up, friendly form errors, error pages, live updates (Server-Sent
// Events fed by one app-tier subscription per stream), request logs and
// Prometheus metrics.
package webtier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"bankwire/proto"
	"bankwire/proto/wire"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/httprate"
)

// Server is the web tier's HTTP handler. Create it with New; it is safe for
// concurrent use.
type Server struct {
	cfg      Config
	client   *proto.Client
	log      *slog.Logger
	pages    *pages
	router   http.Handler
	metrics  *metrics
	sessions *sessionCache
	info     infoCache

	// streams is canceled by CloseStreams so open SSE responses end and
	// http.Server.Shutdown can finish.
	streams      context.Context
	closeStreams context.CancelFunc
	streamSlots  chan struct{}
	streamCaps   *streamCaps
}

// New builds the web tier's handler around an app-tier client. The client is
// not closed by the Server: the caller owns it.
func New(cfg Config, client *proto.Client, logger *slog.Logger) (*Server, error) {
	if client == nil {
		return nil, errors.New("webtier: nil app tier client")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webtier: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p, err := loadPages()
	if err != nil {
		return nil, fmt.Errorf("webtier: %w", err)
	}
	streams, closeStreams := context.WithCancel(context.Background())
	s := &Server{
		cfg:          cfg,
		client:       client,
		log:          logger,
		pages:        p,
		metrics:      newMetrics(),
		sessions:     newSessionCache(sessionCacheTTL, sessionCacheMax),
		streams:      streams,
		closeStreams: closeStreams,
		streamSlots:  make(chan struct{}, cfg.MaxStreams),
		streamCaps:   newStreamCaps(cfg.MaxStreamsPerSession, cfg.MaxStreamsPerIP),
	}
	router, err := s.routes()
	if err != nil {
		closeStreams()
		return nil, fmt.Errorf("webtier: %w", err)
	}
	s.router = router
	return s, nil
}

// ServeHTTP serves the bank's pages.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.router.ServeHTTP(w, r)
}

// MetricsHandler serves Prometheus metrics of this Server. Mount it on an
// admin listener, not the public site.
func (s *Server) MetricsHandler() http.Handler {
	return s.metrics.handler()
}

// CloseStreams ends every open live-update stream and refuses new ones. Call
// it when shutdown begins (http.Server.RegisterOnShutdown does that), since
// Shutdown waits for handlers and a stream never ends by itself.
func (s *Server) CloseStreams() {
	s.closeStreams()
}

func (s *Server) routes() (http.Handler, error) {
	prefixes, err := parsePrefixes(s.cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	cop := http.NewCrossOriginProtection()
	for _, o := range s.cfg.TrustedOrigins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("trusted origin %q: %w", o, err)
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.errorPage(w, r, http.StatusForbidden, "")
	}))

	r := chi.NewRouter()
	r.Use(
		sanitizeRequestID,
		middleware.RequestID,
		clientIP(prefixes),
		s.observe, // logs and metrics see every answer, including panics and 403s
		s.recoverer,
		s.securityHeaders,
		cop.Handler,
		s.requireOrigin,
		middleware.RequestSize(maxFormBytes),
		middleware.GetHead,
	)
	// The 404 page keeps a signed-in customer's navigation.
	r.NotFound(s.optionalSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.errorPage(w, r, http.StatusNotFound, "")
	})).ServeHTTP)
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allowedMethods(r))
		s.errorPage(w, r, http.StatusMethodNotAllowed, "")
	})

	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Get("/static/*", s.static)
	r.Get("/favicon.ico", s.favicon)

	signInLimit := httprate.LimitBy(s.cfg.SignInLimit, s.cfg.SignInWindow, clientIPKey,
		httprate.WithLimitHandler(s.tooManyRequests))
	signUpLimit := httprate.LimitBy(s.cfg.SignUpLimit, s.cfg.SignUpWindow, clientIPKey,
		httprate.WithLimitHandler(s.tooManyRequests))

	r.Group(func(r chi.Router) {
		r.Use(s.optionalSession)
		r.Get("/", s.home)
		r.Get("/signin", s.signInForm)
		r.With(signInLimit).Post("/signin", s.signIn)
		r.Get("/signup", s.signUpForm)
		r.With(signUpLimit).Post("/signup", s.signUp)
		r.Post("/signout", s.signOut)
	})

	// A transfer submit, or the question what became of one, whose session
	// cannot be checked in an outage still gets the confirm-again page with
	// the same key (transferSession).
	r.With(s.transferSession).Post("/transfers", s.transferCreate)
	r.With(s.transferSession).Post("/transfers/resolve", s.transferResolve)

	// A live-update stream whose session cannot be checked in an outage is
	// asked to retry later: EventSource gives up for good on an error page.
	r.With(func(next http.Handler) http.Handler {
		return s.sessionRequired(next, func(w http.ResponseWriter, r *http.Request, err error) {
			s.endStream(w, http.StatusOK)
		})
	}).Get("/events", s.events)

	r.Group(func(r chi.Router) {
		r.Use(s.requireSession)
		r.Get("/accounts", s.accounts)
		r.Get("/accounts/new", s.openAccountForm)
		r.Post("/accounts", s.openAccount)
		r.Get("/accounts/{number}", s.account)

		r.Get("/transfers/new", s.transferForm)
		r.Post("/transfers/edit", s.transferEdit)
		r.Post("/transfers/confirm", s.transferConfirm)
		r.Get("/transfers/{id}", s.transferResult)

		r.Get("/payees", s.payees)
		r.Post("/payees", s.payeeAdd)
		r.Post("/payees/{id}/rename", s.payeeRename)
		r.Post("/payees/{id}/delete", s.payeeDelete)

		r.Get("/chat", s.chatList)
		r.Post("/chat", s.chatOpen)
		r.Get("/chat/{id}", s.chatConversation)
		r.Post("/chat/{id}/messages", s.chatSend)
	})
	return r, nil
}

func allowedMethods(r *http.Request) string {
	// Every route of this site is GET or POST; naming both is honest enough
	// for a 405 and reveals nothing.
	return "GET, HEAD, POST"
}

// healthz says the process is alive; it never calls the app tier, so a
// container is not restarted because another tier is down.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "ok")
}

// readyz says whether this web tier can serve pages: an app tier answers
// info within the call timeout, which it does only while it is ready itself
// (it has a database that accepts writes). A ping would only prove that an
// app tier is alive.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
	defer cancel()
	if _, err := proto.Call(ctx, s.client, wire.Info, wire.InfoRequest{}); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "app tier unavailable")
		return
	}
	fmt.Fprintln(w, "ready")
}

// call runs one app-tier operation for a request, bounded by the call
// timeout and carrying the request id so both tiers' logs line up.
func call[Req, Resp any](s *Server, r *http.Request, m wire.Method[Req, Resp], req Req) (Resp, error) {
	timeout := s.cfg.CallTimeout
	if m.Op == wire.OpSignIn || m.Op == wire.OpSignUp {
		timeout = s.cfg.AuthCallTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	ctx = proto.WithTraceID(ctx, middleware.GetReqID(r.Context()))
	start := time.Now()
	resp, err := proto.Call(ctx, s.client, m, req)
	s.metrics.observeCall(m.Op, err, time.Since(start))
	if err != nil {
		if overloaded(m.Op, err) {
			err = fmt.Errorf("%w (%w)", errBrieflyUnavailable, err)
		}
		err = fmt.Errorf("%s: %w", m.Op, err)
	}
	noteCall(r, m.Op, err)
	return resp, err
}

// infoCache keeps the app tier's InfoResponse for a while: it changes only
// when the app tier is redeployed, and the sign-in page shows it.
type infoCache struct {
	mu      sync.Mutex
	info    wire.InfoResponse
	fetched time.Time
}

const infoTTL = time.Minute

// appInfo returns the app tier's facts, or ok=false when it cannot be asked.
func (s *Server) appInfo(r *http.Request) (wire.InfoResponse, bool) {
	s.info.mu.Lock()
	if !s.info.fetched.IsZero() && time.Since(s.info.fetched) < infoTTL {
		info := s.info.info
		s.info.mu.Unlock()
		return info, true
	}
	s.info.mu.Unlock()
	info, err := call(s, r, wire.Info, wire.InfoRequest{})
	if err != nil {
		return wire.InfoResponse{}, false
	}
	s.info.mu.Lock()
	s.info.info, s.info.fetched = info, time.Now()
	s.info.mu.Unlock()
	return info, true
}
