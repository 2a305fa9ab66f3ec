package apptier

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"bankwire/proto/wire"
	"bankwire/store"
)

// Metrics are the app tier's Prometheus metrics: requests by operation and
// code, latency by operation, and the database pool's state.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers the app tier's metrics (and the Go runtime's) on reg.
func NewMetrics(reg prometheus.Registerer, st *store.Store) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bankwire_apptier_requests_total",
			Help: "Protocol requests answered, by operation and result code.",
		}, []string{"op", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bankwire_apptier_request_duration_seconds",
			Help:    "Time to answer a protocol request, by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
	}
	reg.MustRegister(m.requests, m.latency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if st != nil {
		pool := st.Pool()
		gauge := func(name, help string, f func() float64) prometheus.Collector {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bankwire_apptier_db_pool_" + name, Help: help}, f)
		}
		reg.MustRegister(
			gauge("acquired_conns", "Connections in use.", func() float64 { return float64(pool.Stat().AcquiredConns()) }),
			gauge("idle_conns", "Idle connections.", func() float64 { return float64(pool.Stat().IdleConns()) }),
			gauge("total_conns", "Open connections.", func() float64 { return float64(pool.Stat().TotalConns()) }),
			gauge("max_conns", "Maximum pool size.", func() float64 { return float64(pool.Stat().MaxConns()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "bankwire_apptier_db_pool_acquires_total", Help: "Connection acquisitions."},
				func() float64 { return float64(pool.Stat().AcquireCount()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "bankwire_apptier_db_pool_empty_acquires_total", Help: "Acquisitions that had to wait for a connection."},
				func() float64 { return float64(pool.Stat().EmptyAcquireCount()) }),
		)
	}
	return m
}

// Observe records one answered request; pass it as proto.ServerConfig.Observe.
func (m *Metrics) Observe(op wire.Op, code wire.Code, d time.Duration) {
	m.requests.WithLabelValues(op.String(), code.String()).Inc()
	m.latency.WithLabelValues(op.String()).Observe(d.Seconds())
}
