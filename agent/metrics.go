package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// runMetrics are the agent's Prometheus collectors. They complement the coordinator's view: the
// coordinator sees what was committed, the agent sees what its runners did and how long it waited
// for work.
type runMetrics struct {
	runs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	cost     *prometheus.CounterVec
	dispatch prometheus.Histogram
}

// runBuckets span an offline run (milliseconds) up to the longest per-entity timeout (20 min).
var runBuckets = []float64{0.01, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800}

func newRunMetrics() *runMetrics {
	return &runMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "enrich_agent_runs_total",
			Help: "Runner invocations that ended, by instance type and outcome (succeeded, failed_retryable, failed_permanent, cancelled)."},
			[]string{"instance_type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "enrich_agent_run_duration_seconds",
			Help: "Runner wall time of runs that produced a result or a failure.", Buckets: runBuckets}, []string{"instance_type", "outcome"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "enrich_agent_cost_usd_total",
			Help: "Cost reported by runners, successful or not."}, []string{"instance_type"}),
		dispatch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "enrich_agent_lease_dispatch_seconds",
			Help: "Time from asking the coordinator for a lease (credit) to receiving it.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18)}),
	}
}

// observeRun records one ended run from the message it produced.
func (m *runMetrics) observeRun(lease *enrichv1.Lease, msg *enrichv1.ConnectRequest) {
	typ := lease.GetInstanceType()
	var outcome string
	var rm *enrichv1.RunMetrics
	switch {
	case msg.GetResult() != nil:
		outcome, rm = "succeeded", msg.GetResult().GetMetrics()
	case msg.GetFailure() != nil && msg.GetFailure().GetRetryable():
		outcome, rm = "failed_retryable", msg.GetFailure().GetMetrics()
	case msg.GetFailure() != nil:
		outcome, rm = "failed_permanent", msg.GetFailure().GetMetrics()
	default:
		outcome = "cancelled"
	}
	m.runs.WithLabelValues(typ, outcome).Inc()
	if rm != nil {
		if d := rm.GetDuration(); d != nil {
			m.duration.WithLabelValues(typ, outcome).Observe(d.AsDuration().Seconds())
		}
		if c := rm.GetCostUsd(); c > 0 {
			m.cost.WithLabelValues(typ).Add(c)
		}
	}
}

// RegisterMetrics registers the agent's collectors with reg. Call it before Run.
func (a *Agent) RegisterMetrics(reg prometheus.Registerer) error {
	m := newRunMetrics()
	inFlight := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "enrich_agent_runs_in_flight",
		Help: "Runs in progress, by instance type."}, []string{"instance_type"})
	collectors := []prometheus.Collector{m.runs, m.duration, m.cost, m.dispatch,
		&inFlightCollector{a: a, desc: inFlight},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "enrich_agent_connected",
			Help: "1 while the agent has a session with a coordinator."}, func() float64 {
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.current != nil {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "enrich_agent_slots", Help: "Runs the agent takes at once."},
			func() float64 { return float64(a.cfg.Slots) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "enrich_agent_spooled_results",
			Help: "Finished results kept until the coordinator acknowledges them."}, func() float64 { return float64(a.spool.len()) }),
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register agent metrics: %w", err)
		}
	}
	a.stats.mu.Lock()
	a.stats.prom = m
	a.stats.mu.Unlock()
	return nil
}

// inFlightCollector reads the running leases at scrape time, so the gauge can never drift from
// the agent's own bookkeeping.
type inFlightCollector struct {
	a    *Agent
	desc *prometheus.GaugeVec

	mu sync.Mutex
	// seen keeps a type's series at 0 once its runs end, rather than letting it vanish.
	seen map[string]bool
}

func (c *inFlightCollector) Describe(ch chan<- *prometheus.Desc) { c.desc.Describe(ch) }

func (c *inFlightCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{}
	c.a.mu.Lock()
	for _, r := range c.a.runs {
		counts[r.lease.GetInstanceType()]++
	}
	c.a.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	for t := range counts {
		c.seen[t] = true
	}
	for t := range c.seen {
		counts[t] += 0
	}
	c.desc.Reset()
	for t, n := range counts {
		c.desc.WithLabelValues(t).Set(float64(n))
	}
	c.desc.Collect(ch)
}

// ServeMetrics serves /metrics for reg on lis until ctx ends.
func ServeMetrics(ctx context.Context, lis net.Listener, reg *prometheus.Registry) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
