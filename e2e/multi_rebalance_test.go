package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// rebalanceConfig gives leases a TTL well above the longest gap a reconnect leaves in an agent's
// heartbeats here: the test is about leases surviving reconnects, not about expiry. No retry is
// allowed: every entity must be leased exactly once, however often its agent moves.
const rebalanceConfig = `
lease:
  ttl: 10s
  heartbeat_interval: 1s
retry_strategy:
  max_retries: 0
  base_delay: 200ms
  max_delay: 400ms
resource_allocation:
  entities:
    batch_capacity: 120
    timeout: 1m
`

// Agent streams never end by themselves, so coordinators added to a fleet get no agents until
// --max-connection-age moves them. Every agent connects while one coordinator is up; then two
// more start. With a 2 s connection age (grace 2 s) the coordinators ask their agents to move on
// while they run leases, the agents dial new connections through haproxy, land on the others
// too, and re-adopt their leases there: every entity is leased once, runs once and succeeds, and
// the history shows nothing lost or accepted twice.
func TestFleetRebalancesByMaxConnectionAge(t *testing.T) {
	t.Parallel()
	testRebalance(t, startHAProxy)
}

// The same behind nginx, which balances each stream (not each connection) over its upstreams
// and does not check their health: it finds the stopped coordinators down by trying them.
func TestNginxRebalancesByMaxConnectionAge(t *testing.T) {
	t.Parallel()
	testRebalance(t, startNginx)
}

func testRebalance(t *testing.T, lb balancer) {
	const entities = 60
	f := newFleetWith(t, fleetOpts{n: 3, config: rebalanceConfig, lb: lb,
		coordArgs: []string{"--max-connection-age", "2s", "--max-connection-age-grace", "2s"}})
	first, late := f.coords[0], f.coords[1:]
	// All three started together (schema migrations run once); the late ones stop until the
	// agents are on the first. haproxy's health check takes them out of the rotation.
	for _, m := range late {
		m.proc.stop()
	}
	const agents = 4
	var agentMetrics []string
	for i := range agents {
		metrics := freeAddr(t)
		agentMetrics = append(agentMetrics, metrics)
		f.agent(fmt.Sprintf("agent-%d", i), "--types", "entities", "--slots", "3", "--spool", t.TempDir(),
			// Runs longer than the second an agent keeps reading after being asked to move, so
			// agents move while they run leases and their new coordinators adopt them.
			"--offline-delay", "1500ms-3s", "--metrics-addr", metrics)
	}
	waitFor(t, 30*time.Second, "every agent on the first coordinator", func() bool {
		by := f.agentsByCoordinator()
		if len(by) != agents {
			return false
		}
		for _, c := range by {
			if c != first.addr {
				return false
			}
		}
		return true
	})
	for _, m := range late {
		m.proc = start(t, "enrich-coordinator", m.args...)
	}
	for _, m := range late {
		waitServing(t, m.addr)
	}

	started := time.Now()
	id := f.launch(entities)
	var spread map[string]int
	waitFor(t, 30*time.Second, "agents spread over more than one coordinator", func() bool {
		by := f.agentsByCoordinator()
		spread = map[string]int{}
		for _, c := range by {
			spread[c]++
		}
		return len(by) == agents && len(spread) > 1
	})
	t.Logf("agents per coordinator %v after %v, %d of %d succeeded", spread, time.Since(started).Round(time.Millisecond), f.succeeded(id), entities)

	b := f.waitConsolidated(id)
	t.Logf("batch ended after %v", time.Since(started).Round(time.Millisecond))
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	require.Equal(t, entities, jsonFiles(t, b.GetOutputDir(), "entities"))
	rep := f.checkInvariants(id)
	require.Equal(t, entities, rep.Succeeded)
	// Nothing was paid twice or cut short: the agents ran each entity once, and every run
	// succeeded (a lease lost in a reconnect would have been cancelled on its agent and run again).
	runs := map[string]int{}
	for _, addr := range agentMetrics {
		for outcome, n := range metricByLabel(t, addr, "enrich_agent_runs_total", "outcome") {
			runs[outcome] += n
		}
	}
	require.Equal(t, map[string]int{"succeeded": entities}, runs, "runner invocations by outcome, all agents")
	// A stream cut by the connection age would lose the leases granted in its last moments; the
	// coordinator stops granting before it asks the agent to move, so none is granted twice.
	require.Equal(t, entities, rep.Grants, "grants, one per entity")

	// The coordinators that started after the agents took part: results were delivered to them.
	lateAccepted := 0
	for _, m := range late {
		lateAccepted += metricByLabel(t, m.httpAddr, "enrich_results_total", "outcome")["accepted"]
	}
	require.Positive(t, lateAccepted, "no result reached a coordinator started after the agents")
	// And the reconnects happened mid-batch: some agent brought leases it held (running, or
	// finished with the result not yet acknowledged) to its new session; the coordinator logs
	// each adoption.
	adopted := 0
	for _, m := range f.coords {
		adopted += adoptedLeases(t, m)
	}
	t.Logf("%d results through the late coordinators, %d leases re-adopted after reconnects", lateAccepted, adopted)
	require.Positive(t, adopted, "no agent reconnected while it held leases")
}

// metricByLabel reads the counter name from the /metrics page at addr and sums its samples by
// the value of one label ("" sums them all under "").
func metricByLabel(t *testing.T, addr, name, label string) map[string]int {
	t.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	out := map[string]int{}
	for _, line := range strings.Split(string(body), "\n") {
		series, value, ok := strings.Cut(line, " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		require.NoError(t, err, line)
		key := ""
		if label != "" {
			if _, rest, ok := strings.Cut(series, label+`="`); ok {
				key, _, _ = strings.Cut(rest, `"`)
			}
		}
		out[key] += int(v)
	}
	return out
}

var adoptedRe = regexp.MustCompile(`adopted held leases.*\bheld=(\d+)`)

// adoptedLeases sums the leases the coordinator's log says it adopted from reconnecting agents.
func adoptedLeases(t *testing.T, m *fleetMember) int {
	t.Helper()
	log, err := os.ReadFile(m.proc.log)
	require.NoError(t, err)
	n := 0
	for _, sub := range adoptedRe.FindAllStringSubmatch(string(log), -1) {
		v, _ := strconv.Atoi(sub[1])
		n += v
	}
	return n
}
