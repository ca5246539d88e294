package agent

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sportsintel/enrich/agent/runner"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

func newMetricsAgent(t *testing.T) (*Agent, *prometheus.Registry) {
	t.Helper()
	a, err := New(Config{Coordinator: "127.0.0.1:1", Types: []string{"entities", "persons"}, Slots: 3, Runner: &runner.Offline{}})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	require.NoError(t, a.RegisterMetrics(reg))
	return a, reg
}

func TestMetricsCountRunsByOutcome(t *testing.T) {
	t.Parallel()
	a, reg := newMetricsAgent(t)

	lease := &enrichv1.Lease{InstanceType: "persons"}
	a.stats.runEnded(lease, &enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Result{Result: &enrichv1.Result{
		Metrics: &enrichv1.RunMetrics{Duration: durationpb.New(2 * time.Second), CostUsd: 0.25}}}})
	a.stats.runEnded(lease, &enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Failure{Failure: &enrichv1.Failure{
		Retryable: true, Metrics: &enrichv1.RunMetrics{Duration: durationpb.New(time.Second), CostUsd: 0.5}}}})
	a.stats.runEnded(lease, &enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Failure{Failure: &enrichv1.Failure{}}})
	a.stats.runEnded(lease, &enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_CancelAck{CancelAck: &enrichv1.CancelAck{}}})

	m := a.stats.prom
	require.InDelta(t, 1, testutil.ToFloat64(m.runs.WithLabelValues("persons", "succeeded")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.runs.WithLabelValues("persons", "failed_retryable")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.runs.WithLabelValues("persons", "failed_permanent")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.runs.WithLabelValues("persons", "cancelled")), 0)
	require.InDelta(t, 0.75, testutil.ToFloat64(m.cost.WithLabelValues("persons")), 1e-9)
	// The permanent failure carried no duration: only two series.
	require.Equal(t, 2, testutil.CollectAndCount(m.duration))

	// Dispatch latency pairs a lease with the credit it consumed.
	a.stats.creditsSent(1)
	a.stats.leaseReceived()
	require.Equal(t, 1, testutil.CollectAndCount(m.dispatch))
	_, err := testutil.GatherAndCount(reg, "enrich_agent_lease_dispatch_seconds")
	require.NoError(t, err)
}

func TestMetricsInFlightFollowsRuns(t *testing.T) {
	t.Parallel()
	a, reg := newMetricsAgent(t)

	a.mu.Lock()
	a.runs[1] = &run{lease: &enrichv1.Lease{InstanceType: "entities"}}
	a.runs[2] = &run{lease: &enrichv1.Lease{InstanceType: "entities"}}
	a.mu.Unlock()
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP enrich_agent_runs_in_flight Runs in progress, by instance type.
# TYPE enrich_agent_runs_in_flight gauge
enrich_agent_runs_in_flight{instance_type="entities"} 2
`), "enrich_agent_runs_in_flight"))

	// A type whose runs ended stays visible at zero.
	a.mu.Lock()
	delete(a.runs, 1)
	delete(a.runs, 2)
	a.mu.Unlock()
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP enrich_agent_runs_in_flight Runs in progress, by instance type.
# TYPE enrich_agent_runs_in_flight gauge
enrich_agent_runs_in_flight{instance_type="entities"} 0
`), "enrich_agent_runs_in_flight"))
}

func TestServeMetricsOverHTTP(t *testing.T) {
	t.Parallel()
	_, reg := newMetricsAgent(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeMetrics(ctx, lis, reg) }()

	resp, err := http.Get("http://" + lis.Addr().String() + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "enrich_agent_slots 3")
	require.Contains(t, string(body), "enrich_agent_connected 0")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("metrics server did not stop with its context")
	}
}
