package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
	"github.com/sportsintel/enrich/schemas"
)

// fastRetries keeps retry backoffs short so failure tests finish quickly.
const fastRetries = `
retry_strategy:
  max_retries: 2
  base_delay: 20ms
  max_delay: 100ms
`

func batchIDFrom(t *testing.T, r ctlResult) string {
	t.Helper()
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	id := strings.TrimSpace(r.stdout)
	require.NotEmpty(t, id)
	require.NotContains(t, id, "\n", "prepare prints only the batch id on stdout")
	return id
}

// The seed's example: 90 entities across three instance types, one agent per type, all dossiers
// and the report written.
func TestExampleBatchEndToEnd(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	c.agent("agent-entities", "--types", "entities", "--slots", "6", "--offline-delay", "5ms-30ms")
	c.agent("agent-persons", "--types", "2", "--slots", "3", "--offline-delay", "5ms-30ms")
	c.agent("agent-leagues", "--types", "leagues", "--slots", "2", "--offline-delay", "5ms-30ms")
	c.waitAgents(3)

	id := batchIDFrom(t, c.enrichctl("prepare", "--from", examplePath("entities.jsonl")))
	r := c.enrichctl("launch", id, "--wait")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)

	b := c.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	want := map[string]int32{"entities": 50, "persons": 25, "leagues": 15}
	for _, p := range b.GetInstances() {
		require.Equal(t, want[p.GetInstanceType()], p.GetSucceeded(), p.GetInstanceType())
		require.Equal(t, want[p.GetInstanceType()], p.GetTotal())
	}
	require.Contains(t, filepath.Base(b.GetOutputDir()), "parallel_batch_")
	require.Equal(t, c.dossiers, filepath.Dir(b.GetOutputDir()))

	schemaOf := map[string]string{"entities": schemas.EntityDossier, "persons": schemas.POIDossier, "leagues": schemas.LeagueDossier}
	total := 0
	for typ, n := range want {
		jsons, err := filepath.Glob(filepath.Join(b.GetOutputDir(), typ, "*.json"))
		require.NoError(t, err)
		mds, err := filepath.Glob(filepath.Join(b.GetOutputDir(), typ, "*.md"))
		require.NoError(t, err)
		require.Len(t, jsons, int(n), typ)
		require.Len(t, mds, int(n), typ)
		for _, f := range jsons {
			raw, err := os.ReadFile(f)
			require.NoError(t, err)
			require.NoError(t, schemas.Validate(schemaOf[typ], raw), f)
		}
		total += len(jsons)
	}
	require.Equal(t, 90, total, "exactly one dossier per entity")

	var rep struct {
		Totals    struct{ Total, Succeeded, Failed int }
		Instances []struct {
			InstanceType  string `json:"instance_type"`
			Succeeded     int
			DurationP50MS int64 `json:"duration_p50_ms"`
		}
	}
	raw, err := os.ReadFile(filepath.Join(b.GetOutputDir(), "report.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &rep))
	require.Equal(t, 90, rep.Totals.Total)
	require.Equal(t, 90, rep.Totals.Succeeded)
	require.Len(t, rep.Instances, 3)
	md, err := os.ReadFile(filepath.Join(b.GetOutputDir(), "report.md"))
	require.NoError(t, err)
	require.Contains(t, string(md), "FC Barcelona")

	// A dossier is also served over the API.
	d, err := c.ctl.GetDossier(context.Background(), &enrichv1.GetDossierRequest{BatchId: id, EntityId: "club-fc-barcelona"})
	require.NoError(t, err)
	var doc struct {
		EntityID string `json:"entity_id"`
		Mode     string `json:"mode"`
	}
	require.NoError(t, json.Unmarshal(d.GetDossierJson(), &doc))
	require.Equal(t, "club-fc-barcelona", doc.EntityID)
	require.Equal(t, "offline", doc.Mode)
}

// Entities of a type no connected agent serves stay pending, and status says which type waits.
// Once an agent for it connects, the batch completes.
func TestTypeWithoutAgentWaits(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	c.agent("agent-a", "--types", "entities,persons", "--slots", "8")
	c.waitAgents(1)
	id := batchIDFrom(t, c.enrichctl("prepare", "--from", examplePath("entities.csv")))
	require.Equal(t, 0, c.enrichctl("launch", id).code)

	require.Eventually(t, func() bool {
		b := c.batch(id)
		done := true
		for _, p := range b.GetInstances() {
			if p.GetInstanceType() != "leagues" && p.GetSucceeded() != p.GetTotal() {
				done = false
			}
		}
		return done
	}, time.Minute, 50*time.Millisecond)
	leagues := c.progress(id, "leagues")
	require.Positive(t, leagues.GetPending())
	require.Zero(t, leagues.GetSucceeded())
	require.True(t, leagues.GetWaitingForAgent())
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_RUNNING, c.batch(id).GetState())

	st := c.enrichctl("status", id)
	require.Equal(t, 0, st.code, st.stderr)
	require.Contains(t, st.stdout, `waiting for an agent serving "leagues"`)

	c.agent("agent-l", "--types", "leagues")
	b := c.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
}

// --instances 1,2 runs only entities and persons; leagues are skipped and do not hold the batch.
func TestLaunchSelectedInstances(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	c.agent("agent-all", "--slots", "16")
	c.waitAgents(1)
	r := c.enrichctl("launch", "--from", examplePath("entities.jsonl"), "--instances", "1,2", "--wait")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	list, err := c.ctl.ListBatches(context.Background(), &enrichv1.ListBatchesRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetBatches(), 1)
	id := list.GetBatches()[0].GetId()
	b := c.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	require.Equal(t, int32(50), c.progress(id, "entities").GetSucceeded())
	require.Equal(t, int32(25), c.progress(id, "persons").GetSucceeded())
	require.Equal(t, int32(15), c.progress(id, "leagues").GetSkipped())
	require.Zero(t, c.progress(id, "leagues").GetSucceeded())
	leagueFiles, _ := filepath.Glob(filepath.Join(b.GetOutputDir(), "leagues", "*.json"))
	require.Empty(t, leagueFiles)
}

// Every kind of bad input is refused with file:line and the reason, and no batch is created.
func TestBadInputIsRefused(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	dir := t.TempDir()
	cases := []struct {
		name, file, body string
		want             []string
	}{
		{"malformed json", "bad.jsonl", "{\"id\":\"a\",\"type\":\"Club\",\"name\":\"A\"}\n{\"id\": \"b\", \"type\": \n", []string{"bad.jsonl:2:"}},
		{"missing fields", "missing.jsonl", "{\"id\":\"a\",\"type\":\"Club\",\"name\":\"A\"}\n{\"type\":\"Club\",\"name\":\"B\"}\n{\"id\":\"c\",\"name\":\"C\"}\n",
			[]string{"missing.jsonl:2:", "id", "missing.jsonl:3:", "type"}},
		{"duplicate ids", "dup.jsonl", "{\"id\":\"a\",\"type\":\"Club\",\"name\":\"A\"}\n{\"id\":\"a\",\"type\":\"Club\",\"name\":\"A again\"}\n",
			[]string{"dup.jsonl:2:", `duplicate id "a"`, "line 1"}},
		{"unknown type", "types.jsonl", "{\"id\":\"a\",\"type\":\"Club\",\"name\":\"A\"}\n{\"id\":\"s\",\"type\":\"Stadium\",\"name\":\"S\"}\n",
			[]string{"types.jsonl:2:", `unknown entity type "Stadium"`, "Club", "Person", "League"}},
		{"empty file", "empty.jsonl", "", []string{"empty.jsonl", "no entities"}},
		{"bad csv", "bad.csv", "id,type,name\na,Club,A\nb,Club\n", []string{"bad.csv:3:"}},
		{"csv without name column", "nocol.csv", "id,type\na,Club\n", []string{"nocol.csv", "name"}},
	}
	for _, tc := range cases {
		path := filepath.Join(dir, tc.file)
		require.NoError(t, os.WriteFile(path, []byte(tc.body), 0o644))
		r := c.enrichctl("prepare", "--from", path)
		require.NotEqual(t, 0, r.code, tc.name)
		for _, w := range tc.want {
			require.Contains(t, r.stderr, w, "%s: stderr was %s", tc.name, r.stderr)
		}
		require.Empty(t, strings.TrimSpace(r.stdout), tc.name)
	}
	r := c.enrichctl("prepare", "--from", filepath.Join(dir, "does-not-exist.jsonl"))
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "does-not-exist.jsonl")

	list, err := c.ctl.ListBatches(context.Background(), &enrichv1.ListBatchesRequest{})
	require.NoError(t, err)
	require.Empty(t, list.GetBatches(), "bad input must create nothing")
}

// A runner that prints garbage for one entity fails that entity with the reason visible, after
// its retries; the rest of the batch completes.
func TestGarbageRunnerOutputFailsOnlyThatEntity(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{config: fastRetries})
	script := filepath.Join(t.TempDir(), "runner.sh")
	// Stands in for claude: echoes a schema-valid offline-like dossier, except for one entity.
	require.NoError(t, os.WriteFile(script, []byte(`#!/bin/sh
cat >/dev/null
if [ "$ENRICH_ENTITY_ID" = "club-bad" ]; then
  echo "I could not find anything, sorry" 
  echo "runner: upstream returned 500" >&2
  exit 0
fi
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
fence=$(printf '\140\140\140')
printf "Here is the dossier:\n${fence}json\n"
printf '{"entity_id":"%s","entity_type":"Club","name":"n","instance_type":"entities","mode":"offline","summary":"s","confidence":0,"key_facts":[],"relationships":[],"sources":[],"generated_at":"%s"}\n' "$ENRICH_ENTITY_ID" "$now"
printf "${fence}\n"
`), 0o755))
	c.agent("agent-exec", "--types", "entities", "--slots", "3", "--runner", "exec", "--exec", script)
	c.waitAgents(1)
	entities := filepath.Join(t.TempDir(), "clubs.jsonl")
	require.NoError(t, os.WriteFile(entities, []byte(
		`{"id":"club-good-1","type":"Club","name":"Good One"}
{"id":"club-bad","type":"Club","name":"Bad \"Robert'); DROP TABLE items;--"}
{"id":"club-good-2","type":"Club","name":"Good Two"}
`), 0o644))
	r := c.enrichctl("launch", "--from", entities, "--wait")
	require.Equal(t, 3, r.code, "some failed: distinct exit code\nstdout: %s\nstderr: %s", r.stdout, r.stderr)

	list, err := c.ctl.ListBatches(context.Background(), &enrichv1.ListBatchesRequest{})
	require.NoError(t, err)
	id := list.GetBatches()[0].GetId()
	b := c.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED_WITH_FAILURES, b.GetState())
	require.Equal(t, int32(2), c.progress(id, "entities").GetSucceeded())
	require.Equal(t, int32(1), c.progress(id, "entities").GetFailed())

	st := c.enrichctl("status", id, "--failed")
	require.Equal(t, 0, st.code, st.stderr)
	require.Contains(t, st.stdout, "club-bad")
	require.Contains(t, st.stdout, "no JSON object")
	require.Contains(t, st.stdout, "upstream returned 500", "the stderr tail is shown")

	items, err := c.ctl.ListItems(context.Background(), &enrichv1.ListItemsRequest{BatchId: id,
		States: []enrichv1.ItemState{enrichv1.ItemState_ITEM_STATE_FAILED}})
	require.NoError(t, err)
	require.Len(t, items.GetItems(), 1)
	require.Equal(t, int32(3), items.GetItems()[0].GetAttempt(), "max_retries 2 = 3 attempts")

	// Retry re-queues only the failed entity with a fresh budget.
	rr := c.enrichctl("retry", id)
	require.Equal(t, 0, rr.code, rr.stderr)
	require.Contains(t, rr.stdout, "1")
	require.Eventually(t, func() bool {
		items, err := c.ctl.ListItems(context.Background(), &enrichv1.ListItemsRequest{BatchId: id,
			States: []enrichv1.ItemState{enrichv1.ItemState_ITEM_STATE_FAILED}})
		return err == nil && len(items.GetItems()) == 1 && items.GetItems()[0].GetAttempt() == 6 &&
			c.batch(id).GetState() == enrichv1.BatchState_BATCH_STATE_COMPLETED_WITH_FAILURES
	}, time.Minute, 50*time.Millisecond, "the retried entity ran its fresh budget of 3 attempts and failed again")
	require.Equal(t, int32(2), c.progress(id, "entities").GetSucceeded())
}
