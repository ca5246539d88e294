package e2e

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/coordinator/store"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// drainCase starts an agent with two slow runs in flight, drains it, and checks that it took no
// more work, exited, and that a second agent finishes the batch with one dossier per entity.
func drainCase(t *testing.T, drain func(c *cluster, a *proc), agentArgs []string, check func(t *testing.T, c *cluster, id string)) {
	c := newCluster(t, clusterOpts{config: faultConfig(20, "1m")})
	a := c.agent("agent-drained", append([]string{"--types", "entities", "--slots", "2"}, agentArgs...)...)
	c.waitAgents(1)
	id := launchEntities(t, c, 6)
	waitFor(t, 30*time.Second, "two leases running", func() bool { return c.progress(id, "entities").GetLeased() == 2 })
	drain(c, a)
	select {
	case err := <-a.done:
		a.done <- err
		require.NoError(t, err, "a drained agent exits cleanly")
	case <-time.After(30 * time.Second):
		t.Fatal("the drained agent did not exit")
	}
	check(t, c, id)
	c.agent("agent-next", "--types", "entities", "--slots", "4", "--offline-delay", "5ms")
	b := c.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	require.Equal(t, 6, jsonFiles(t, b.GetOutputDir(), "entities"))
	c.checkInvariants(id)
}

// `enrichctl agents drain AGENT` and SIGTERM let the runs in flight finish and be delivered, then
// the agent exits; nothing is lost or retried.
func TestDrainLetsRunsFinishThenExits(t *testing.T) {
	t.Parallel()
	finishedTwo := func(t *testing.T, c *cluster, id string) {
		p := c.progress(id, "entities")
		require.Equal(t, int32(2), p.GetSucceeded(), "the two runs in flight were delivered")
		require.Equal(t, int32(4), p.GetPending(), "and nothing more was taken")
		require.Zero(t, c.checkInvariants(id).Retries)
	}
	t.Run("enrichctl", func(t *testing.T) {
		t.Parallel()
		drainCase(t, func(c *cluster, _ *proc) {
			r := c.enrichctl("agents", "drain", "agent-drained")
			require.Equal(t, 0, r.code, r.stderr)
		}, []string{"--offline-delay", "1500ms"}, finishedTwo)
	})
	t.Run("SIGTERM", func(t *testing.T) {
		t.Parallel()
		drainCase(t, func(_ *cluster, a *proc) {
			require.NoError(t, syscall.Kill(a.cmd.Process.Pid, syscall.SIGTERM))
		}, []string{"--offline-delay", "1500ms"}, finishedTwo)
	})
}

// Runs that outlast --drain-grace are stopped and reported at once as retryable failures, so
// their entities are retried now rather than after their lease TTL.
func TestDrainGraceStopsLongRuns(t *testing.T) {
	t.Parallel()
	drainCase(t, func(_ *cluster, a *proc) {
		require.NoError(t, syscall.Kill(a.cmd.Process.Pid, syscall.SIGTERM))
	}, []string{"--offline-delay", "1m", "--drain-grace", "500ms"}, func(t *testing.T, c *cluster, id string) {
		p := c.progress(id, "entities")
		require.Zero(t, p.GetLeased(), "stopped runs gave their leases back before the agent exited")
		require.Equal(t, int32(6), p.GetPending())
		var stopped int
		for _, e := range storedEvents(t, c, id) {
			if e.Kind == store.EventRetrying {
				require.Contains(t, e.Message, "grace period over")
				stopped++
			}
		}
		require.Equal(t, 2, stopped)
	})
}
