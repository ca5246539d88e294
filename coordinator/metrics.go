package coordinator

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sportsintel/enrich/coordinator/store"
)

type metrics struct {
	agentsConnected prometheus.Gauge
	leasesGranted   *prometheus.CounterVec
	leasesExpired   prometheus.Counter
	leasesCancelled prometheus.Counter
	results         *prometheus.CounterVec
	failures        *prometheus.CounterVec
	retries         *prometheus.CounterVec
	runSeconds      *prometheus.HistogramVec
	costUSD         *prometheus.CounterVec
	dispatchSeconds prometheus.Histogram
	batchesFinished *prometheus.CounterVec
	claimSeconds    prometheus.Histogram
	commitSeconds   prometheus.Histogram
	commitGroupSize prometheus.Histogram
}

// runBuckets span an offline run (milliseconds) up to the longest per-entity timeout (20 min).
var runBuckets = []float64{0.01, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		agentsConnected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "enrich_agents_connected", Help: "Agent sessions connected to this coordinator."}),
		leasesGranted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "enrich_leases_granted_total",
			Help: "Leases granted to agents."}, []string{"instance_type"}),
		leasesExpired:   prometheus.NewCounter(prometheus.CounterOpts{Name: "enrich_leases_expired_total", Help: "Leases reclaimed without a report: expired (missing heartbeats, past their deadline) or released because their agent no longer ran them."}),
		leasesCancelled: prometheus.NewCounter(prometheus.CounterOpts{Name: "enrich_leases_cancelled_total", Help: "Cancel messages sent to agents."}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "enrich_results_total",
			Help: "Results received, by instance type and outcome (accepted, duplicate, stale)."}, []string{"instance_type", "outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "enrich_failures_total",
			Help: "Failed attempts, by instance type, whether the item will be retried (kind: retrying, final) and reason class."},
			[]string{"instance_type", "kind", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "enrich_retries_total",
			Help: "Items put back to pending for another attempt (failed or expired), by instance type."}, []string{"instance_type"}),
		runSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "enrich_run_duration_seconds",
			Help: "Runner duration reported with results and failures, by instance type and outcome (succeeded, failed).", Buckets: runBuckets},
			[]string{"instance_type", "outcome"}),
		costUSD: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "enrich_cost_usd_total",
			Help: "Cost reported by runners for every committed attempt, by instance type."}, []string{"instance_type"}),
		dispatchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "enrich_lease_dispatch_seconds",
			Help: "Time from an agent's credit arriving to a lease being sent for it.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18)}),
		batchesFinished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "enrich_batches_finished_total",
			Help: "Batches that ended, by final state."}, []string{"state"}),
		claimSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "enrich_claim_seconds",
			Help: "Time to claim a group of leases in the store.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "enrich_commit_seconds",
			Help: "Time to commit a group of results in the store.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		commitGroupSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "enrich_commit_group_size",
			Help: "Results and failures committed per transaction.", Buckets: prometheus.ExponentialBuckets(1, 2, 10)}),
	}
	if reg != nil {
		reg.MustRegister(m.agentsConnected, m.leasesGranted, m.leasesExpired, m.leasesCancelled, m.results, m.failures,
			m.retries, m.runSeconds, m.costUSD, m.dispatchSeconds,
			m.batchesFinished, m.claimSeconds, m.commitSeconds, m.commitGroupSize)
	}
	return m
}

// reasonClass sorts a failure message into a few classes, so failures can be counted by reason
// without a label per distinct message.
func reasonClass(msg string, rejected bool) string {
	m := strings.ToLower(msg)
	switch {
	case rejected || strings.HasPrefix(m, "dossier rejected"):
		return "invalid_dossier"
	case strings.Contains(m, "deadline") || strings.Contains(m, "timeout") || strings.Contains(m, "timed out"):
		return "timeout"
	case strings.Contains(m, "lease expired") || strings.Contains(m, "heartbeat"):
		return "lease_expired"
	case strings.Contains(m, "no json") || strings.Contains(m, "parse") || strings.Contains(m, "schema") || strings.Contains(m, "not json"):
		return "unparseable_output"
	case strings.Contains(m, "exit status") || strings.Contains(m, "exit code") || strings.Contains(m, "signal"):
		return "runner_exit"
	default:
		return "other"
	}
}

// observeRun records a committed attempt's duration and cost.
func (m *metrics) observeRun(instanceType, outcome string, sm store.Metrics) {
	if sm.Duration > 0 {
		m.runSeconds.WithLabelValues(instanceType, outcome).Observe(sm.Duration.Seconds())
	}
	if sm.CostUSD > 0 {
		m.costUSD.WithLabelValues(instanceType).Add(sm.CostUSD)
	}
}

// fleetCollector reports, at scrape time, what the sessions and the store hold right now: leases
// in flight, agents and slots per instance type, and the open items of running batches. Reading
// at scrape time means these gauges cannot drift from the state they describe.
type fleetCollector struct {
	s        *Server
	inFlight *prometheus.Desc
	serving  *prometheus.Desc
	slots    *prometheus.Desc
	open     *prometheus.Desc
	running  *prometheus.Desc
}

func newFleetCollector(s *Server) *fleetCollector {
	return &fleetCollector{
		s: s,
		inFlight: prometheus.NewDesc("enrich_leases_in_flight", "Leases held by connected agents, by instance type.",
			[]string{"instance_type"}, nil),
		serving: prometheus.NewDesc("enrich_agents_serving", "Connected, non-draining agents serving an instance type.",
			[]string{"instance_type"}, nil),
		slots: prometheus.NewDesc("enrich_agent_slots", "Runner slots of connected, non-draining agents serving an instance type (shared slots count for each type).",
			[]string{"instance_type"}, nil),
		open: prometheus.NewDesc("enrich_items_open", "Items of running batches not yet ended, by instance type and state (pending, leased).",
			[]string{"instance_type", "state"}, nil),
		running: prometheus.NewDesc("enrich_batches_running", "Batches in the running state.", nil, nil),
	}
}

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.inFlight, c.serving, c.slots, c.open, c.running} {
		ch <- d
	}
}

// scrapeBatches bounds how many recent batches a scrape looks at for running ones.
const scrapeBatches = 200

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	names := c.s.cfg.InstanceNames()
	inFlight, serving, slots := map[string]int{}, map[string]int{}, map[string]int{}
	for _, n := range names {
		inFlight[n], serving[n], slots[n] = 0, 0, 0
	}
	for _, sess := range c.s.sessions.snapshot() {
		sess.mu.Lock()
		for _, l := range sess.inFlight {
			inFlight[l.instanceType]++
		}
		draining := sess.draining
		sess.mu.Unlock()
		if draining {
			continue
		}
		for _, t := range sess.types {
			serving[t]++
			slots[t] += sess.slots
		}
	}
	for t, n := range inFlight {
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(n), t)
	}
	for t, n := range serving {
		ch <- prometheus.MustNewConstMetric(c.serving, prometheus.GaugeValue, float64(n), t)
	}
	for t, n := range slots {
		ch <- prometheus.MustNewConstMetric(c.slots, prometheus.GaugeValue, float64(n), t)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	list, err := c.s.st.ListBatches(ctx, scrapeBatches)
	if err != nil {
		// No value is better than a wrong zero: alerts on these series see them vanish.
		return
	}
	pending, leased := map[string]int{}, map[string]int{}
	for _, n := range names {
		pending[n], leased[n] = 0, 0
	}
	running := 0
	for _, b := range list {
		if b.State != store.BatchRunning {
			continue
		}
		running++
		counts, err := c.s.st.BatchCounts(ctx, b.ID)
		if err != nil {
			return
		}
		for t, sc := range counts {
			pending[t] += sc.Pending
			leased[t] += sc.Leased
		}
	}
	ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(running))
	for t := range pending {
		ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(pending[t]), t, "pending")
		ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(leased[t]), t, "leased")
	}
}
