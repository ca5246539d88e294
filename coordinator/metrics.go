package coordinator

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	agentsConnected prometheus.Gauge
	leasesGranted   *prometheus.CounterVec
	leasesExpired   prometheus.Counter
	leasesCancelled prometheus.Counter
	results         *prometheus.CounterVec
	failures        *prometheus.CounterVec
	batchesFinished *prometheus.CounterVec
	claimSeconds    prometheus.Histogram
	commitSeconds   prometheus.Histogram
	commitGroupSize prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		agentsConnected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "enrich_agents_connected", Help: "Agent sessions connected to this coordinator."}),
		leasesGranted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "enrich_leases_granted_total",
			Help: "Leases granted to agents."}, []string{"instance_type"}),
		leasesExpired:   prometheus.NewCounter(prometheus.CounterOpts{Name: "enrich_leases_expired_total", Help: "Leases reclaimed after missing heartbeats or passing their deadline."}),
		leasesCancelled: prometheus.NewCounter(prometheus.CounterOpts{Name: "enrich_leases_cancelled_total", Help: "Cancel messages sent to agents."}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "enrich_results_total",
			Help: "Results received, by outcome (accepted, duplicate, stale)."}, []string{"outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "enrich_failures_total",
			Help: "Failed attempts, by whether the item will be retried."}, []string{"kind"}),
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
			m.batchesFinished, m.claimSeconds, m.commitSeconds, m.commitGroupSize)
	}
	return m
}
