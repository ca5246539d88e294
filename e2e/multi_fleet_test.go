package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// `enrichctl agents drain` sent to a coordinator that does not hold the agent's stream reaches
// the agent through the one that does: the agent lets its two runs finish, takes no more work
// and exits, as a drain on its own coordinator would.
func TestFleetDrainThroughAnotherCoordinator(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2, faultConfig(20, "1m"))
	holder, other := f.coords[0], f.coords[1]
	a := f.agentAt(holder, "agent-drained", "--types", "entities", "--slots", "2", "--offline-delay", "2s")
	via := f.direct(other)
	waitFor(t, 30*time.Second, "the other coordinator lists the agent", func() bool {
		return other.agents(t)["agent-drained"] == holder.addr
	})

	// An agent no coordinator serves is refused as such, not forwarded into the void.
	_, err := via.ctl.DrainAgent(context.Background(), &enrichv1.DrainAgentRequest{AgentId: "no-such-agent"})
	require.Equal(t, codes.NotFound, status.Code(err), "%v", err)

	id := f.launch(6)
	waitFor(t, 30*time.Second, "two leases running", func() bool { return f.progress(id, "entities").GetLeased() == 2 })
	asked := time.Now()
	r := via.enrichctl("agents", "drain", "agent-drained", "-o", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var drained struct {
		Agent struct {
			AgentID     string `json:"agentId"`
			Draining    bool   `json:"draining"`
			Coordinator string `json:"coordinator"`
		} `json:"agent"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &drained), r.stdout)
	require.Equal(t, "agent-drained", drained.Agent.AgentID)
	require.True(t, drained.Agent.Draining)
	require.Equal(t, holder.addr, drained.Agent.Coordinator, "the answer names the coordinator serving the agent")

	// The holder acts on the request at its next registry refresh (every second).
	hc := f.direct(holder)
	waitFor(t, 5*time.Second, "the holder drains the agent", func() bool {
		res, err := hc.ctl.ListAgents(context.Background(), &enrichv1.ListAgentsRequest{})
		if err != nil {
			return false
		}
		for _, ag := range res.GetAgents() {
			if ag.GetAgentId() == "agent-drained" {
				return ag.GetDraining()
			}
		}
		return false
	})
	t.Logf("drained %v after the request", time.Since(asked).Round(time.Millisecond))
	select {
	case err := <-a.done:
		a.done <- err
		require.NoError(t, err, "a drained agent exits cleanly")
	case <-time.After(30 * time.Second):
		t.Fatal("the drained agent did not exit")
	}
	p := f.progress(id, "entities")
	require.Equal(t, int32(2), p.GetSucceeded(), "the two runs in flight were delivered")
	require.Equal(t, int32(4), p.GetPending(), "and nothing more was taken")

	f.agentAt(other, "agent-next", "--types", "entities", "--slots", "4", "--offline-delay", "5ms")
	b := f.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	require.Equal(t, 6, jsonFiles(t, b.GetOutputDir(), "entities"))
	require.Zero(t, f.checkInvariants(id).Retries, "nothing was cut short")
}

// Batch progress on any coordinator counts the agents and runner slots of the whole fleet, so
// its ETA does not assume that only the coordinator asked is doing the work.
func TestFleetProgressCountsEveryCoordinatorsAgents(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2, faultConfig(40, "1m"))
	f.agentAt(f.coords[0], "agent-a", "--types", "entities", "--slots", "3", "--offline-delay", "1500ms")
	f.agentAt(f.coords[1], "agent-b", "--types", "entities", "--slots", "5", "--offline-delay", "1500ms")
	// A third agent serves another type only: it counts there, not for entities.
	f.agentAt(f.coords[1], "agent-c", "--types", "persons", "--slots", "7")
	waitFor(t, 30*time.Second, "both coordinators list the three agents", func() bool {
		return len(f.coords[0].agents(t)) == 3 && len(f.coords[1].agents(t)) == 3
	})
	id := f.launch(40)
	for i, m := range f.coords {
		c := f.direct(m)
		var p *enrichv1.InstanceProgress
		waitFor(t, 10*time.Second, "the fleet's agents and slots in progress", func() bool {
			p = c.progress(id, "entities")
			// The ETA needs one finished run's duration as well.
			return p.GetAgents() == 2 && p.GetSlots() == 8 && p.GetEta() != nil
		})
		t.Logf("coordinator %d: %d agents, %d slots, eta %v", i, p.GetAgents(), p.GetSlots(), p.GetEta().AsDuration())
		require.False(t, p.GetWaitingForAgent())
	}
	b := f.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	f.checkInvariants(id)
}
