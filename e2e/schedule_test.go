package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// scheduleRow is the part of `enrichctl schedule list -o json` these tests read.
type scheduleRow struct {
	Name        string `json:"name"`
	Paused      bool   `json:"paused"`
	LastOutcome string `json:"lastOutcome"`
	LastMessage string `json:"lastMessage"`
	LastBatchID string `json:"lastBatchId"`
	NextRunAt   string `json:"nextRunAt"`
}

func (c *cluster) schedule(t *testing.T, name string) scheduleRow {
	t.Helper()
	r := c.enrichctl("schedule", "list", "-o", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var out struct {
		Schedules []scheduleRow `json:"schedules"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
	for _, s := range out.Schedules {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no schedule %q in %s", name, r.stdout)
	return scheduleRow{}
}

// scheduledBatches lists the batches a schedule prepared, by their source.
func (c *cluster) scheduledBatches(t *testing.T, name string) []*enrichv1.Batch {
	t.Helper()
	res, err := c.ctl.ListBatches(context.Background(), &enrichv1.ListBatchesRequest{})
	require.NoError(t, err)
	var out []*enrichv1.Batch
	for _, b := range res.GetBatches() {
		if strings.HasPrefix(b.GetSource(), "schedule "+name+": ") {
			out = append(out, b)
		}
	}
	return out
}

// A schedule "@every 2s" on the real binaries and the real Neo4j: its first run selects the
// stale clubs and launches a batch; while agents work on it (slowly), the runs that come due are
// skipped and `schedule list` says which batch is still running, also after a coordinator
// restart; the batch completes and is consolidated into the graph, which makes the clubs fresh,
// so the next run finds nothing to enrich and says so, without preparing a second batch.
func TestScheduleFiresFromNeo4j(t *testing.T) {
	t.Parallel()
	g := requireGraph(t)
	c := newCluster(t, clusterOpts{config: g.config(""), env: g.env()})
	for _, id := range []string{"club-1", "club-2", "club-3"} {
		g.query(t, "CREATE (n:NSEntity:NSClub {id: $id, name: $id, priority: 'high'})", map[string]any{"id": id})
	}
	// One slot and 1.5 s per entity: the batch runs for about 4.5 s, two periods of the schedule.
	c.agent(g.ns+"-agent", "--slots", "1", "--offline-delay", "1500ms")
	c.waitAgents(1)

	r := c.enrichctl("schedule", "create", "--name", "e2e", "--cron", "@every 2s", "--from", "neo4j", "--types", "Club",
		"--stale-after", "30d", "--size", "90", "--budget-usd", "25")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Equal(t, "e2e", strings.TrimSpace(r.stdout))
	// Refused before anything is stored: a second schedule of the same name, a bad cron.
	r = c.enrichctl("schedule", "create", "--name", "e2e", "--cron", "@daily", "--from", "neo4j")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "already exists")
	r = c.enrichctl("schedule", "create", "--name", "bad", "--cron", "0 2 * *", "--from", "neo4j")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "expected exactly 5 fields")

	var first string
	require.Eventually(t, func() bool {
		first = c.schedule(t, "e2e").LastBatchID
		return first != ""
	}, 30*time.Second, 100*time.Millisecond, "the schedule never launched a batch")
	b := c.batch(first)
	require.True(t, strings.HasPrefix(b.GetSource(), "schedule e2e: neo4j:"), b.GetSource())
	require.InDelta(t, 25, b.GetBudgetUsd(), 1e-9, "launched with the schedule's budget")
	items := batchItems(t, c, first)
	require.ElementsMatch(t, []string{"club-1", "club-2", "club-3"}, sortedKeys(items))

	skipped := "skipped: batch " + first + " still running"
	require.Eventually(t, func() bool {
		r := c.enrichctl("schedule", "list")
		return r.code == 0 && strings.Contains(r.stdout, skipped)
	}, 30*time.Second, 100*time.Millisecond, "no run was skipped while %s ran", first)

	// A restart while the batch runs fires nothing twice: the runs stay skipped.
	c.restartCoordinator()
	c.waitAgents(1)
	require.Len(t, c.scheduledBatches(t, "e2e"), 1)

	done := c.waitConsolidated(first)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, done.GetState())
	require.EqualValues(t, 3, g.count(t, "MATCH (n:NSEntity:NSClub) WHERE n.enriched_at IS NOT NULL RETURN count(n)"),
		"consolidation wrote the clubs back, fresh")

	// The next run finds no stale club: a failure with its reason, and no second batch.
	var row scheduleRow
	require.Eventually(t, func() bool {
		row = c.schedule(t, "e2e")
		return row.LastOutcome == "SCHEDULE_OUTCOME_FAILED"
	}, 30*time.Second, 100*time.Millisecond, "no run after the batch ended")
	require.Contains(t, row.LastMessage, "nothing to enrich")
	require.Equal(t, first, row.LastBatchID, "a failed run keeps the last batch")
	require.Len(t, c.scheduledBatches(t, "e2e"), 1, "one batch from the schedule, whatever the runs since")

	// Paused: it no longer fires, and the list says so; then deleted.
	r = c.enrichctl("schedule", "pause", "e2e")
	require.Equal(t, 0, r.code, r.stderr)
	row = c.schedule(t, "e2e")
	require.True(t, row.Paused)
	require.Empty(t, row.NextRunAt)
	r = c.enrichctl("schedule", "list")
	require.Contains(t, r.stdout, "paused; last failed: prepare: nothing to enrich")
	r = c.enrichctl("schedule", "delete", "e2e")
	require.Equal(t, 0, r.code, r.stderr)
	r = c.enrichctl("schedule", "delete", "e2e")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "not found")
}
