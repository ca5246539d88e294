package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// A coordinator restart in the middle of a batch loses nothing and repeats nothing: agents
// reconnect, finish, and the batch ends with exactly one dossier per entity.
func TestCoordinatorRestartMidBatch(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	c.agent("agent-l", "--types", "leagues", "--slots", "3", "--offline-delay", "150ms-300ms",
		"--spool", filepath.Join(t.TempDir(), "spool"))
	c.waitAgents(1)
	id := batchIDFrom(t, c.enrichctl("prepare", "--from", examplePath("entities.jsonl"), "--instance1=0", "--instance2=0"))
	require.Equal(t, 0, c.enrichctl("launch", id).code)
	require.Eventually(t, func() bool { return c.progress(id, "leagues").GetSucceeded() >= 3 },
		time.Minute, 20*time.Millisecond)

	c.restartCoordinator()

	b := c.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	p := c.progress(id, "leagues")
	require.Equal(t, int32(15), p.GetTotal())
	require.Equal(t, int32(15), p.GetSucceeded())
	files, err := filepath.Glob(filepath.Join(b.GetOutputDir(), "leagues", "*.json"))
	require.NoError(t, err)
	require.Len(t, files, 15)
	raw, err := os.ReadFile(filepath.Join(b.GetOutputDir(), "report.json"))
	require.NoError(t, err)
	var rep struct{ Duplicates int }
	require.NoError(t, json.Unmarshal(raw, &rep))
	require.Zero(t, rep.Duplicates, "no result was delivered twice")
}

// Cancelling a running batch stops its runners, ends the batch cancelled with what finished kept,
// and releases `launch --wait` with exit code 4.
func TestCancelRunningBatch(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	c.agent("agent-slow", "--types", "entities", "--slots", "2", "--offline-delay", "300ms")
	c.waitAgents(1)
	id := batchIDFrom(t, c.enrichctl("prepare", "--from", examplePath("entities.jsonl"), "--instance2=0", "--instance3=0"))
	waited := make(chan ctlResult, 1)
	go func() { waited <- c.enrichctl("launch", id, "--wait") }()
	require.Eventually(t, func() bool { return c.progress(id, "entities").GetSucceeded() >= 2 }, time.Minute, 20*time.Millisecond)

	r := c.enrichctl("cancel", id, "--reason", "operator changed plans")
	require.Equal(t, 0, r.code, r.stderr)
	select {
	case res := <-waited:
		require.Equal(t, 4, res.code, "launch --wait exits 4 on cancel\n%s\n%s", res.stdout, res.stderr)
	case <-time.After(time.Minute):
		t.Fatal("launch --wait did not return after cancel")
	}
	b := c.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_CANCELLED, b.GetState())
	p := c.progress(id, "entities")
	require.Positive(t, p.GetSucceeded())
	require.Equal(t, p.GetTotal(), p.GetSucceeded()+p.GetCancelled())
	files, err := filepath.Glob(filepath.Join(b.GetOutputDir(), "entities", "*.json"))
	require.NoError(t, err)
	require.Len(t, files, int(p.GetSucceeded()), "finished work is kept")
}
