package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/coordinator/store"
	"github.com/sportsintel/enrich/coordinator/store/sqlite"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// faultConfig: short leases and timeouts so faults are noticed in seconds, short retry backoff.
func faultConfig(capacity int, timeout string) string {
	return fmt.Sprintf(`
lease:
  ttl: 2s
  heartbeat_interval: 300ms
retry_strategy:
  max_retries: 2
  base_delay: 200ms
  max_delay: 400ms
resource_allocation:
  entities:
    batch_capacity: %d
    timeout: %s
`, capacity, timeout)
}

func writePlan(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plan.txt")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	return path
}

func launchEntities(t *testing.T, c *cluster, n int) string {
	t.Helper()
	id := batchIDFrom(t, c.enrichctl("prepare", "--from", writeEntities(t, n)))
	require.Equal(t, 0, c.enrichctl("launch", id).code)
	return id
}

// A runner that exits non-zero, prints garbage, prints a schema-invalid dossier or says the
// request is bad: each entity is retried with backoff up to its budget, fails with the reason
// visible in `enrichctl status --failed`, and the rest of the batch completes.
func TestBadRunnerOutputIsRetriedThenFailed(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{config: faultConfig(20, "1m")})
	plan := writePlan(t,
		"club-0000 fail",         // always crashes
		"club-0001 garbage,ok",   // garbage once, then fine
		"club-0002 invalid",      // always schema-invalid
		"club-0003 permanent",    // a bad request: no retry
		"club-0004 fail,fail,ok", // succeeds on its last allowed attempt
	)
	c.agent("agent-a", append([]string{"--types", "entities", "--slots", "4"},
		faultAgentArgs(t, "-delay 5ms-20ms -plan "+plan)...)...)
	c.waitAgents(1)
	id := launchEntities(t, c, 12)
	b := c.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED_WITH_FAILURES, b.GetState())
	p := c.progress(id, "entities")
	require.Equal(t, int32(9), p.GetSucceeded())
	require.Equal(t, int32(3), p.GetFailed())
	require.Equal(t, 9, jsonFiles(t, b.GetOutputDir(), "entities"))

	r := c.enrichctl("status", id, "--failed", "-o", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var failed struct {
		Items []struct {
			Entity struct {
				ID string `json:"id"`
			} `json:"entity"`
			Attempt     int    `json:"attempt"`
			MaxAttempts int    `json:"maxAttempts"`
			LastError   string `json:"lastError"`
			StderrTail  string `json:"stderrTail"`
		} `json:"failedItems"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &failed), r.stdout)
	byID := map[string]int{}
	for i, it := range failed.Items {
		byID[it.Entity.ID] = i
	}
	require.Len(t, failed.Items, 3, r.stdout)
	crash := failed.Items[byID["club-0000"]]
	require.Equal(t, 3, crash.Attempt, "its whole budget: 1 + max_retries 2")
	require.Contains(t, crash.LastError, "exited with status 1")
	require.Contains(t, crash.StderrTail, "simulated crash of the research process for club-0000 (attempt 3)")
	invalid := failed.Items[byID["club-0002"]]
	require.Equal(t, 3, invalid.Attempt)
	require.Contains(t, invalid.LastError, "dossier")
	perm := failed.Items[byID["club-0003"]]
	require.Equal(t, 1, perm.Attempt, "a permanent failure is not retried")
	require.Contains(t, perm.LastError, "status 65")

	human := c.enrichctl("status", id, "--failed")
	require.Contains(t, human.stdout, "club-0000")
	require.Contains(t, human.stdout, "simulated crash")

	rep := c.checkInvariants(id)
	require.Equal(t, 2+1+2+2, rep.Retries, "retries: crash 2, garbage 1, invalid 2, fail-fail-ok 2")

	// Retries wait for the backoff: base 200ms with equal jitter, so at least 100ms.
	events := storedEvents(t, c, id)
	lastFailure := map[int64]time.Time{}
	for _, e := range events {
		switch e.Kind {
		case store.EventRetrying:
			lastFailure[e.ItemID] = e.At
		case store.EventGranted:
			if at, ok := lastFailure[e.ItemID]; ok {
				require.GreaterOrEqual(t, e.At.Sub(at), 100*time.Millisecond, "item %d granted again too soon", e.ItemID)
			}
		}
	}
	require.NotEmpty(t, lastFailure)

	// `retry` gives only the failed entities a fresh budget; with the plan unchanged, the
	// crashing one fails again after three more attempts.
	r = c.enrichctl("retry", id)
	require.Equal(t, 0, r.code, r.stderr)
	require.Eventually(t, func() bool {
		return c.batch(id).GetState() == enrichv1.BatchState_BATCH_STATE_COMPLETED_WITH_FAILURES
	}, time.Minute, 50*time.Millisecond)
	after := c.enrichctl("status", id, "--failed", "-o", "json")
	failed.Items = nil
	require.NoError(t, json.Unmarshal([]byte(after.stdout), &failed))
	require.Len(t, failed.Items, 3)
	for _, it := range failed.Items {
		if it.Entity.ID == "club-0000" {
			require.Equal(t, 6, it.Attempt, "three more attempts for club-0000")
			require.Equal(t, 6, it.MaxAttempts)
		}
	}
	rep = c.checkInvariants(id)
	require.Equal(t, 3, rep.Requeued)
	require.Equal(t, int32(9), c.progress(id, "entities").GetSucceeded(), "succeeded entities were not run again")
}

func storedEvents(t *testing.T, c *cluster, batchID string) []*store.Event {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(c.dir, "enrich.db"))
	require.NoError(t, err)
	defer st.Close()
	events, err := st.Events(t.Context(), batchID)
	require.NoError(t, err)
	return events
}

// A runner that hangs is killed at its instance type's timeout, with its whole process group
// (no process left behind), and the entity is retried.
func TestHangingRunnerKilledAtTimeout(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{config: faultConfig(20, "1500ms")})
	pids := t.TempDir()
	plan := writePlan(t, "club-0001 hang,ok", "club-0002 hang,hang,ok")
	c.agent("agent-a", append([]string{"--types", "entities", "--slots", "3"},
		faultAgentArgs(t, "-delay 5ms -pids "+pids+" -plan "+plan)...)...)
	c.waitAgents(1)
	id := launchEntities(t, c, 4)
	b := c.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	require.Equal(t, 4, jsonFiles(t, b.GetOutputDir(), "entities"))

	files, err := filepath.Glob(filepath.Join(pids, "*.pids"))
	require.NoError(t, err)
	require.Len(t, files, 3, "three hanging runs")
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, field := range strings.Fields(string(raw)) {
			pid, err := strconv.Atoi(field)
			require.NoError(t, err)
			waitFor(t, 5*time.Second, fmt.Sprintf("process %d of %s outlived its lease", pid, filepath.Base(f)),
				func() bool { return !alive(pid) })
		}
	}
	var timedOut int
	for _, e := range storedEvents(t, c, id) {
		if e.Kind == store.EventRetrying {
			require.Regexp(t, "deadline|timed out|timeout", e.Message)
			timedOut++
		}
	}
	require.Equal(t, 3, timedOut)
	c.checkInvariants(id)
}

// kill -9 of an agent in the middle of its leases: its research processes die with it, another
// agent gets the leases (after the TTL) and every entity ends with exactly one dossier.
func TestAgentKilledMidLease(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{config: faultConfig(30, "1m")})
	pids := t.TempDir()
	victim := c.agent("agent-victim", append([]string{"--types", "entities", "--slots", "6"},
		faultAgentArgs(t, "-hang 1 -pids "+pids)...)...)
	c.waitAgents(1)
	id := launchEntities(t, c, 20)
	waitFor(t, 30*time.Second, "victim runs six leases", func() bool {
		files, _ := filepath.Glob(filepath.Join(pids, "*.pids"))
		return len(files) == 6
	})
	victim.kill9()
	files, err := filepath.Glob(filepath.Join(pids, "*.pids"))
	require.NoError(t, err)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, field := range strings.Fields(string(raw)) {
			pid, err := strconv.Atoi(field)
			require.NoError(t, err)
			waitFor(t, 5*time.Second, fmt.Sprintf("process %d outlived its agent", pid), func() bool { return !alive(pid) })
		}
	}
	c.agent("agent-survivor", append([]string{"--types", "entities", "--slots", "6"}, faultAgentArgs(t, "-delay 10ms-40ms")...)...)

	b := c.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	require.Equal(t, 20, jsonFiles(t, b.GetOutputDir(), "entities"))
	rep := c.checkInvariants(id)
	require.GreaterOrEqual(t, rep.Retries, 6, "the victim's leases expired and were retried")
	require.Equal(t, 20, rep.Succeeded)
}

// kill -9 of the coordinator mid-batch, restarted on the same SQLite file: the batch completes,
// every acknowledged result is still there, nothing is lost or accepted twice.
func TestCoordinatorKilledMidBatch(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{config: faultConfig(60, "1m")})
	c.agent("agent-a", append([]string{"--types", "entities", "--slots", "4", "--spool", filepath.Join(t.TempDir(), "spool")},
		faultAgentArgs(t, "-delay 100ms-300ms")...)...)
	c.agent("agent-b", append([]string{"--types", "entities", "--slots", "4"}, faultAgentArgs(t, "-delay 100ms-300ms")...)...)
	c.waitAgents(2)
	id := launchEntities(t, c, 60)
	waitFor(t, time.Minute, "some results", func() bool { return c.progress(id, "entities").GetSucceeded() >= 15 })
	before := c.progress(id, "entities").GetSucceeded()

	c.crashCoordinator()

	b := c.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	p := c.progress(id, "entities")
	require.Equal(t, int32(60), p.GetSucceeded())
	require.GreaterOrEqual(t, p.GetSucceeded(), before)
	require.Equal(t, 60, jsonFiles(t, b.GetOutputDir(), "entities"))
	c.checkInvariants(id)
}

// A link cut (traffic held, connection open) for longer than the lease TTL while the runner
// finishes: the coordinator gives the lease to another agent; when the link comes back, the late
// result wins if the entity still has none (the newer lease is cancelled), or is dropped as a
// duplicate. Either way exactly one dossier per entity.
func TestStreamCutLongerThanTTL(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{config: faultConfig(20, "1m")})
	proxy := newPausableProxy(t, c.addr)
	cut := start(t, "enrich-agent", append([]string{"--coordinator", proxy.addr(), "--id", "agent-behind-cut", "--log-level", "debug",
		"--types", "entities", "--slots", "4"}, faultAgentArgs(t, "-delay 2500ms")...)...)
	_ = cut
	c.waitAgents(1)
	id := launchEntities(t, c, 4)
	waitFor(t, 30*time.Second, "all leased behind the cut", func() bool { return c.progress(id, "entities").GetLeased() == 4 })
	proxy.pause()
	// After the TTL (2s) the leases expire; a second agent takes them: two entities finish fast,
	// two slowly, so the cut agent's late results (at 2.5s) meet both cases.
	waitFor(t, 10*time.Second, "leases expired", func() bool { return c.progress(id, "entities").GetLeased() == 0 })
	plan := writePlan(t, "club-0000 ok", "club-0001 ok", "club-0002 slow", "club-0003 slow")
	c.agent("agent-direct", append([]string{"--types", "entities", "--slots", "4"}, faultAgentArgs(t, "-delay 10ms -plan "+plan)...)...)
	waitFor(t, 30*time.Second, "fast ones done", func() bool { return c.progress(id, "entities").GetSucceeded() >= 2 })
	time.Sleep(time.Second) // the cut agent's runs end now and wait in its spool
	proxy.resume()

	b := c.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	require.Equal(t, 4, jsonFiles(t, b.GetOutputDir(), "entities"))
	rep := c.checkInvariants(id)
	require.Equal(t, 2, rep.Duplicates, "the cut agent's results for the two fast entities came second")
	require.Equal(t, 2, rep.LateWins, "its results for the two slow entities came first")
	require.Equal(t, 2, rep.Superseded, "the direct agent's slow leases were cancelled")
	// Duplicates can arrive after the batch ended and was consolidated: the report is written
	// again to count them.
	waitFor(t, 10*time.Second, "report.json counts the 2 dropped duplicates", func() bool {
		raw, err := os.ReadFile(filepath.Join(b.GetOutputDir(), "report.json"))
		var report struct{ Duplicates int }
		return err == nil && json.Unmarshal(raw, &report) == nil && report.Duplicates == 2
	})
}

// An agent restarted with results in its spool (its runs finished while the coordinator was
// down) delivers them once, and they are not run again.
func TestAgentRestartDeliversSpoolOnce(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{config: strings.Replace(faultConfig(20, "1m"), "ttl: 2s", "ttl: 30s", 1)})
	spool := filepath.Join(t.TempDir(), "spool")
	args := append([]string{"--types", "entities", "--slots", "5", "--spool", spool}, faultAgentArgs(t, "-delay 1s")...)
	a := c.agent("agent-spool", args...)
	c.waitAgents(1)
	id := launchEntities(t, c, 5)
	waitFor(t, 30*time.Second, "all leased", func() bool { return c.progress(id, "entities").GetLeased() == 5 })
	c.coord.kill9()
	waitFor(t, 30*time.Second, "five results spooled", func() bool {
		files, _ := filepath.Glob(filepath.Join(spool, "*.pb"))
		return len(files) == 5
	})
	a.kill9()
	c.coord = start(t, "enrich-coordinator", c.args...)
	c.agent("agent-spool", args...)

	b := c.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	require.Equal(t, 5, jsonFiles(t, b.GetOutputDir(), "entities"))
	rep := c.checkInvariants(id)
	require.Equal(t, 5, rep.Grants, "delivered from the spool, never run again")
	require.Zero(t, rep.Duplicates)
	waitFor(t, 10*time.Second, "spool emptied by the acknowledgements", func() bool {
		files, _ := filepath.Glob(filepath.Join(spool, "*.pb"))
		return len(files) == 0
	})
}

// A thousand entities with seeded crashes, garbage, invalid dossiers and hangs, agents killed
// and restarted, and one coordinator crash: afterwards the invariant checker proves every entity
// ended succeeded or failed after exactly its budget, none has two results, every attempt is
// accounted for.
func TestChaosThousandEntities(t *testing.T) {
	t.Parallel()
	const n = 1000
	c := newCluster(t, clusterOpts{config: strings.Replace(faultConfig(n, "2s"), "max_retries: 2", "max_retries: 3", 1)})
	faults := "-seed 20261204 -fail 0.06 -garbage 0.03 -invalid 0.03 -hang 0.004 -delay 5ms-40ms"
	agents := make([]*proc, 4)
	argsOf := make([][]string, 4)
	for i := range agents {
		argsOf[i] = append([]string{"--types", "entities", "--slots", "8", "--spool", filepath.Join(t.TempDir(), "spool")},
			faultAgentArgs(t, faults)...)
		agents[i] = c.agent(fmt.Sprintf("chaos-%d", i), argsOf[i]...)
	}
	c.waitAgents(4)
	id := launchEntities(t, c, n)

	rng := rand.New(rand.NewPCG(7, 11))
	kills, crashed := 0, false
	deadline := time.Now().Add(4 * time.Minute)
	for c.batchOrNil(id).GetState() == enrichv1.BatchState_BATCH_STATE_RUNNING && time.Now().Before(deadline) {
		time.Sleep(time.Duration(400+rng.IntN(600)) * time.Millisecond)
		done := c.progressOrNil(id)
		switch {
		case !crashed && done >= n/2:
			c.crashCoordinator()
			crashed = true
		case kills < 6:
			i := rng.IntN(len(agents))
			agents[i].kill9()
			agents[i] = c.agent(fmt.Sprintf("chaos-%d", i), argsOf[i]...)
			kills++
		}
	}
	b := c.waitConsolidated(id)
	require.Contains(t, []enrichv1.BatchState{enrichv1.BatchState_BATCH_STATE_COMPLETED,
		enrichv1.BatchState_BATCH_STATE_COMPLETED_WITH_FAILURES}, b.GetState())
	rep := c.checkInvariants(id)
	require.Equal(t, n, rep.Items)
	require.Equal(t, n, rep.Succeeded+rep.Failed)
	require.Equal(t, rep.Succeeded, jsonFiles(t, b.GetOutputDir(), "entities"), "one dossier per succeeded entity")
	require.Positive(t, rep.Retries)
	require.True(t, crashed, "the coordinator crash happened")
	require.Positive(t, kills)
	t.Logf("chaos: %d agent kills, coordinator crashed once; %s", kills, rep)
	reasons := map[string]int{}
	for _, e := range storedEvents(t, c, id) {
		if e.Kind == store.EventFailed || e.Kind == store.EventFailedPermanent {
			reasons[string(e.Kind)+": "+firstLine(e.Message)]++
		}
	}
	t.Logf("why entities failed: %v", reasons)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// batchOrNil reads a batch, tolerating a coordinator that is restarting.
func (c *cluster) batchOrNil(id string) *enrichv1.Batch {
	res, err := c.ctl.GetBatch(c.t.Context(), &enrichv1.GetBatchRequest{BatchId: id})
	if err != nil {
		return &enrichv1.Batch{State: enrichv1.BatchState_BATCH_STATE_RUNNING}
	}
	return res.GetBatch()
}

func (c *cluster) progressOrNil(id string) int {
	done := 0
	for _, p := range c.batchOrNil(id).GetInstances() {
		done += int(p.GetSucceeded() + p.GetFailed())
	}
	return done
}
