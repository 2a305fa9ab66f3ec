package webtier

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"bankwire/proto/wire"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are per Server (own registry, not the global one), so two servers
// in one test process do not collide.
type metrics struct {
	registry     *prometheus.Registry
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	calls        *prometheus.CounterVec
	callLatency  *prometheus.HistogramVec
	streams      prometheus.Gauge
	streamEvents *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bankwire_webtier_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bankwire_webtier_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request (live-update streams excluded), by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bankwire_webtier_apptier_calls_total",
			Help: "App-tier calls made, by operation and result code.",
		}, []string{"op", "code"}),
		callLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bankwire_webtier_apptier_call_duration_seconds",
			Help:    "App-tier call latency seen by the web tier, by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"op"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bankwire_webtier_live_streams",
			Help: "Open live-update (SSE) streams.",
		}),
		streamEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bankwire_webtier_live_events_total",
			Help: "Events sent on live-update streams, by kind.",
		}, []string{"kind"}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.calls, m.callLatency, m.streams, m.streamEvents,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

func (m *metrics) observeCall(op wire.Op, err error, d time.Duration) {
	m.calls.WithLabelValues(op.String(), wire.ErrorCode(err).String()).Inc()
	m.callLatency.WithLabelValues(op.String()).Observe(d.Seconds())
}

// observe logs one JSON line per request and counts it. Labels use the
// route pattern, never the raw path, so account numbers and ids neither
// leak into metrics nor explode their cardinality.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		elapsed := time.Since(start)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		method := methodLabel(r.Method)
		s.metrics.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
		if route != "/events" {
			s.metrics.latency.WithLabelValues(route, method).Observe(elapsed.Seconds())
		}
		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelError
		case route == "/healthz" || route == "/readyz":
			// Probes: compose's healthcheck asks every 5 s.
			level = slog.LevelDebug
		}
		s.log.LogAttrs(r.Context(), level, "http request",
			slog.String("request_id", middleware.GetReqID(r.Context())),
			slog.String("method", r.Method),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Int("bytes", ww.BytesWritten()),
			slog.Duration("duration", elapsed),
			slog.String("client_ip", clientIPOf(r)),
		)
	})
}

// methodLabel is the metric label of a request's method: net/http accepts
// any token as a method, and each name a client makes up must not become a
// series of its own.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// recoverer turns a panicking handler into the 500 page and a logged stack,
// instead of a dropped connection.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			rec := recover()
			if rec == nil {
				return
			}
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			s.log.ErrorContext(r.Context(), "handler panic",
				"request_id", middleware.GetReqID(r.Context()),
				"panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
			s.errorPage(w, r, http.StatusInternalServerError, "")
		}()
		next.ServeHTTP(w, r)
	})
}
