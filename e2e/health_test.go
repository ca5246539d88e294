package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// An agent whose host cannot do the work (here: the Claude Code binary is missing) gives the
// entity back instead of failing it, stops taking leases, and says why in `enrichctl agents`;
// a healthy agent then finishes the batch with no entity failed.
func TestUnhealthyAgentStopsTakingWork(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{config: fastRetries})
	agentConfig := filepath.Join(t.TempDir(), "agent.yaml")
	require.NoError(t, os.WriteFile(agentConfig, []byte(`
resource_allocation:
  leagues:
    claude:
      binary: `+filepath.Join(t.TempDir(), "no-such-claude")+`
`), 0o644))
	c.agent("agent-broken", "--types", "leagues", "--slots", "2", "--runner", "claude", "--config", agentConfig,
		"--unhealthy-pause", "10m")
	c.waitAgents(1)
	id := batchIDFrom(t, c.enrichctl("prepare", "--from", examplePath("entities.jsonl"), "--instance1=0", "--instance2=0"))
	require.Equal(t, 0, c.enrichctl("launch", id).code)

	var listed struct {
		Agents []struct {
			AgentID       string `json:"agentId"`
			HealthProblem string `json:"healthProblem"`
		} `json:"agents"`
	}
	waitFor(t, 30*time.Second, "the broken agent reports its problem", func() bool {
		r := c.enrichctl("agents", "-o", "json")
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &listed) != nil || len(listed.Agents) != 1 {
			return false
		}
		return strings.HasPrefix(listed.Agents[0].HealthProblem, "unhealthy: ")
	})
	table := c.enrichctl("agents")
	require.Contains(t, table.stdout, "unhealthy")

	// It took its two slots' worth of leases, failed them as not the entities' fault, and stopped.
	time.Sleep(time.Second)
	p := c.progress(id, "leagues")
	require.Zero(t, p.GetFailed(), "a broken host must not fail entities")
	require.Zero(t, p.GetLeased(), "the broken agent holds nothing")
	require.Equal(t, int32(15), p.GetPending())
	items, err := c.ctl.ListItems(t.Context(), &enrichv1.ListItemsRequest{BatchId: id})
	require.NoError(t, err)
	tried := 0
	for _, it := range items.GetItems() {
		if it.GetAttempt() > 0 {
			tried++
			require.Contains(t, it.GetLastError(), "agent agent-broken unhealthy")
		}
	}
	require.LessOrEqual(t, tried, 2, "no more leases after the first failures")
	require.Positive(t, tried)

	c.agent("agent-healthy", "--types", "leagues", "--slots", "4", "--offline-delay", "5ms")
	b := c.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	c.checkInvariants(id)
}
