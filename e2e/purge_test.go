package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// `enrichctl entity purge` deletes what was gathered about a person: the dossier files, the
// stored results and history, and every mention in the rewritten report and payload. It is
// refused while a batch holding the entity still runs.
func TestPurgeEntity(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	c.agent("agent-p", "--types", "persons", "--slots", "1", "--offline-delay", "100ms")
	c.waitAgents(1)
	id := batchIDFrom(t, c.enrichctl("prepare", "--from", examplePath("entities.jsonl"), "--instance1=0", "--instance3=0"))
	require.Equal(t, 0, c.enrichctl("launch", id).code)
	const person = "person-head-of-ticketing-fenerbahce"

	r := c.enrichctl("entity", "purge", person)
	require.Equal(t, 1, r.code, "refused while the batch runs: %s", r.stdout)
	require.Contains(t, r.stderr, "cancel it or let it end first")

	b := c.waitConsolidated(id)
	dir := b.GetOutputDir()
	before, err := os.ReadFile(filepath.Join(dir, "payload.jsonl"))
	require.NoError(t, err)
	require.Contains(t, string(before), person)

	r = c.enrichctl("entity", "purge", person)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "purged "+person+" from 1 batch(es): "+id)
	require.Contains(t, r.stdout, ".json")
	require.Contains(t, r.stdout, ".md")

	require.Eventually(t, func() bool {
		return c.progress(id, "persons").GetTotal() == 24
	}, 10*time.Second, 50*time.Millisecond)
	err = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		require.NoError(t, err)
		if info.IsDir() {
			return nil
		}
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NotContains(t, string(raw), person, "%s still names the purged entity", path)
		require.NotContains(t, string(raw), "Head of Ticketing, Fenerbah", "%s still names the purged person", path)
		return nil
	})
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join(dir, "persons", "*.json"))
	require.NoError(t, err)
	require.Len(t, files, 24)

	r = c.enrichctl("dossier", id, person)
	require.NotEqual(t, 0, r.code, "no dossier is served any more")
	r = c.enrichctl("entity", "purge", person)
	require.Equal(t, 1, r.code)
	require.True(t, strings.Contains(r.stderr, "NotFound") || strings.Contains(r.stderr, "not found"), r.stderr)
	c.checkInvariants(id)
}
