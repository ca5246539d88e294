package coordinator

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sportsintel/enrich/coordinator/store"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// withCost makes a result report a runner duration and a cost, as the exec runner would.
func withCost(m *enrichv1.ConnectRequest, d time.Duration, cost float64) *enrichv1.ConnectRequest {
	m.GetResult().Metrics = &enrichv1.RunMetrics{Duration: durationpb.New(d), CostUsd: cost}
	return m
}

func TestMetricsFollowLeasesResultsAndFailures(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id := b.launch(t, "Club", 4)
	a := b.agent(t, "a1", 4, "entities")
	a.credit(4)
	leases := a.leases(300 * time.Millisecond)
	require.Len(t, leases, 4)
	reg := b.srv.registry

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP enrich_leases_in_flight Leases held by connected agents, by instance type.
# TYPE enrich_leases_in_flight gauge
enrich_leases_in_flight{instance_type="entities"} 4
enrich_leases_in_flight{instance_type="leagues"} 0
enrich_leases_in_flight{instance_type="persons"} 0
`), "enrich_leases_in_flight"))
	require.InDelta(t, 4, testutil.ToFloat64(b.srv.metrics.leasesGranted.WithLabelValues("entities")), 0)
	require.Equal(t, 1, testutil.CollectAndCount(b.srv.metrics.dispatchSeconds), "credits paired with their leases")

	a.send(withCost(resultFor(t, leases[0]), 3*time.Second, 0.5))
	require.Equal(t, enrichv1.AckOutcome_ACK_OUTCOME_ACCEPTED, a.ack().GetOutcome())
	a.send(withCost(resultFor(t, leases[1]), 5*time.Second, 0.25))
	a.ack()
	// The same lease again (an agent that missed the Ack re-sends its spool): acknowledged
	// again, counted neither as a second success nor as a duplicate, its cost not added twice.
	a.send(withCost(resultFor(t, leases[0]), time.Second, 0.1))
	require.Equal(t, enrichv1.AckOutcome_ACK_OUTCOME_ACCEPTED, a.ack().GetOutcome())
	a.send(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Failure{Failure: &enrichv1.Failure{
		Lease: leases[2].GetLease(), Retryable: true, Message: "the run passed its deadline (instance type timeout)"}}})
	a.ack()
	a.send(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Failure{Failure: &enrichv1.Failure{
		Lease: leases[3].GetLease(), Retryable: false, Message: "exit status 64"}}})
	a.ack()

	m := b.srv.metrics
	require.InDelta(t, 2, testutil.ToFloat64(m.results.WithLabelValues("entities", "accepted")), 0)
	require.InDelta(t, 0, testutil.ToFloat64(m.results.WithLabelValues("entities", "duplicate")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.failures.WithLabelValues("entities", "retrying", "timeout")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.failures.WithLabelValues("entities", "final", "runner_exit")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.retries.WithLabelValues("entities")), 0)
	require.InDelta(t, 0.75, testutil.ToFloat64(m.costUSD.WithLabelValues("entities")), 1e-9)
	require.Equal(t, 1, testutil.CollectAndCount(m.runSeconds, "enrich_run_duration_seconds"))

	// The batch view carries the same facts: cost of every attempt, the median of successes, and
	// an ETA for the one item left (pending again after its retryable failure). Statistics of a
	// busy batch are re-read at most every progressMinAge, so wait for them to catch up.
	var bt *enrichv1.GetBatchResponse
	require.Eventually(t, func() bool {
		var err error
		bt, err = b.ctl.GetBatch(b.ctx, &enrichv1.GetBatchRequest{BatchId: id})
		require.NoError(t, err)
		return bt.GetBatch().GetInstances()[0].GetAttempts() == 4
	}, 5*time.Second, 50*time.Millisecond)
	ip := bt.GetBatch().GetInstances()[0]
	require.Equal(t, "entities", ip.GetInstanceType())
	require.InDelta(t, 0.75, bt.GetBatch().GetCostUsd(), 1e-9)
	require.Equal(t, 3*time.Second, ip.GetDurationP50().AsDuration(), "median of 3s and 5s by nearest rank")
	require.EqualValues(t, 4, ip.GetAttempts())
	require.EqualValues(t, 2, ip.GetFailedAttempts())
	require.EqualValues(t, 1, ip.GetRetries())
	require.EqualValues(t, 4, ip.GetSlots())
	require.Equal(t, 3*time.Second, ip.GetEta().AsDuration(), "one pending item needs one median run")
}

func TestETA(t *testing.T) {
	t.Parallel()
	p50 := 10 * time.Second
	cases := []struct {
		name   string
		counts store.StateCounts
		slots  int
		want   time.Duration
		known  bool
	}{
		{"nothing open", store.StateCounts{Succeeded: 5}, 0, 0, true},
		{"no agent", store.StateCounts{Pending: 5}, 0, 0, false},
		{"ten pending over five slots", store.StateCounts{Pending: 10}, 5, 20 * time.Second, true},
		{"leased are half done", store.StateCounts{Leased: 4}, 4, 5 * time.Second, true},
		{"slots beyond open items do not help", store.StateCounts{Pending: 2}, 50, 10 * time.Second, true},
	}
	for _, c := range cases {
		got, ok := eta(c.counts, p50, c.slots)
		require.Equal(t, c.known, ok, c.name)
		require.Equal(t, c.want, got, c.name)
	}
	_, ok := eta(store.StateCounts{Pending: 1}, 0, 4)
	require.False(t, ok, "no finished run yet: no basis for an estimate")
}

func TestReasonClass(t *testing.T) {
	t.Parallel()
	require.Equal(t, "invalid_dossier", reasonClass("anything", true))
	require.Equal(t, "timeout", reasonClass("the run passed its deadline (instance type timeout)", false))
	require.Equal(t, "runner_exit", reasonClass("exit status 2", false))
	require.Equal(t, "unparseable_output", reasonClass("no JSON object in the output", false))
	require.Equal(t, "other", reasonClass("disk full", false))
}
