package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// launchThrough prepares and launches n entities with enrichctl through the balancer.
func (f *fleet) launch(n int) string {
	f.t.Helper()
	id := batchIDFrom(f.t, f.enrichctl("prepare", "--from", writeEntities(f.t, n)))
	require.Equal(f.t, 0, f.enrichctl("launch", id).code)
	return id
}

func (f *fleet) succeeded(id string) int32 {
	for _, p := range f.batchOrNil(id).GetInstances() {
		if p.GetInstanceType() == "entities" {
			return p.GetSucceeded()
		}
	}
	return 0
}

// Three coordinators on one PostgreSQL behind haproxy; agents and enrichctl go through the
// balancer. kill -9 of one coordinator mid-batch: its agents reconnect through the balancer to
// the others, which adopt, renew and complete the leases it granted (or reap them), and the
// replayed history shows nothing lost and nothing accepted twice.
func TestFleetCoordinatorKilledMidBatch(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 3, faultConfig(150, "1m"))
	for i := range 3 {
		f.agent(fmt.Sprintf("agent-%d", i), append([]string{"--types", "entities", "--slots", "4", "--spool", t.TempDir()},
			faultAgentArgs(t, "-delay 50ms-150ms")...)...)
	}
	// Every coordinator lists all three agents, wherever the balancer put their streams.
	waitFor(t, 30*time.Second, "each coordinator lists the three agents", func() bool {
		for _, m := range f.coords {
			if len(m.agents(t)) != 3 {
				return false
			}
		}
		return true
	})
	// The victim is a coordinator that serves agent streams, so the kill moves them.
	load := map[string]int{}
	for _, c := range f.agentsByCoordinator() {
		load[c]++
	}
	victim := f.coords[0]
	for _, m := range f.coords {
		if load[m.addr] > load[victim.addr] {
			victim = m
		}
	}
	require.Positive(t, load[victim.addr])

	id := f.launch(150)
	waitFor(t, time.Minute, "a third of the batch done", func() bool { return f.succeeded(id) >= 50 })
	victim.proc.kill9()
	t.Logf("killed coordinator %s at %d succeeded", victim.addr, f.succeeded(id))
	waitFor(t, 30*time.Second, "the victim's agent moved to a live coordinator", func() bool {
		by := f.agentsByCoordinator()
		if len(by) != 3 {
			return false
		}
		for _, c := range by {
			if c == victim.addr {
				return false
			}
		}
		return true
	})

	b := f.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	require.Equal(t, 150, jsonFiles(t, b.GetOutputDir(), "entities"))
	rep := f.checkInvariants(id)
	require.Equal(t, 150, rep.Succeeded)
}

// Every coordinator restarted in turn (SIGTERM: Drain to its agents, then stop) while a batch
// runs: agents move through the balancer to the coordinator still up, keep their leases, and
// the batch completes with a clean history.
func TestFleetRollingRestart(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2, faultConfig(120, "1m"))
	for i := range 2 {
		f.agent(fmt.Sprintf("agent-%d", i), append([]string{"--types", "entities", "--slots", "3", "--spool", t.TempDir()},
			faultAgentArgs(t, "-delay 100ms-200ms")...)...)
	}
	waitFor(t, 30*time.Second, "two agents", func() bool { return len(f.agentsByCoordinator()) == 2 })
	id := f.launch(120)
	done := int32(0)
	for i := range f.coords {
		waitFor(t, time.Minute, "progress before the next restart", func() bool { return f.succeeded(id) > done+10 })
		done = f.succeeded(id)
		f.restart(i)
		t.Logf("restarted coordinator %d at %d succeeded", i, done)
	}
	b := f.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	require.Equal(t, 120, jsonFiles(t, b.GetOutputDir(), "entities"))
	rep := f.checkInvariants(id)
	require.Equal(t, 120, rep.Succeeded)
	// Graceful restarts hand leases over: nothing waited for a lease to expire.
	res, err := f.ctl.ListAgents(context.Background(), &enrichv1.ListAgentsRequest{})
	require.NoError(t, err)
	require.Len(t, res.GetAgents(), 2, "both agents connected again")
}
