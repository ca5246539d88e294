package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// chromiumPath finds the browser the dashboard test drives: ENRICH_CHROMIUM, else Debian's
// chromium on PATH. A missing browser fails the test rather than skipping it: `make test` must
// not pass without having looked at the dashboard (.ci/run installs chromium).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ENRICH_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: install it (apt-get install chromium) or set ENRICH_CHROMIUM")
	return ""
}

// browser starts a headless Chromium with the flags that work on a machine without network:
// no background connections, no sandbox (tests run as root in CI), a fresh profile.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1366, 900), // a laptop screen
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first Do allocates the browser; it lives as long as ctx (no timeout on this call).
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	return ctx
}

// eval runs a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := chromedp.Run(rctx, chromedp.Evaluate[T](js))
	require.NoError(t, err, js)
	return out
}

// pageState reads what the batch page shows: the state card and the ended/selected counter.
type pageState struct {
	State  string `json:"state"`
	Done   int    `json:"done"`
	Total  int    `json:"total"`
	Marker bool   `json:"marker"`
}

const readBatchPage = `(() => {
  const s = document.getElementById("batch-state"), d = document.getElementById("batch-done");
  return {state: s ? s.textContent : "", done: d ? Number(d.dataset.done) : -1, total: d ? Number(d.dataset.total) : -1,
          marker: window.__notReloaded === true};
})()`

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("ENRICH_E2E_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", url, body)
	return string(body)
}

// The dashboard in a real browser while a real batch runs: the page follows the batch from
// prepared through running to completed without being reloaded, links every dossier, and lists
// the agents; the coordinator's and an agent's /metrics count the same work.
func TestDashboardFollowsBatchInBrowser(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	c := newCluster(t, clusterOpts{})
	agentMetrics := freeAddr(t)
	// Slow enough runs (3 slots, 150-300 ms each, 90 entities: several seconds) that the page is
	// seen mid-batch.
	c.agent("dash-a", "--slots", "2", "--offline-delay", "150ms-300ms", "--metrics-addr", agentMetrics)
	c.agent("dash-b", "--types", "persons,leagues", "--slots", "1", "--offline-delay", "150ms-300ms")
	c.waitAgents(2)
	id := batchIDFrom(t, c.enrichctl("prepare", "--from", examplePath("entities.jsonl")))

	base := "http://" + c.httpAddr
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/#/batch/"+id)))
	var st pageState
	require.Eventually(t, func() bool {
		st = eval[pageState](t, ctx, readBatchPage)
		return st.State == "prepared"
	}, 15*time.Second, 100*time.Millisecond, "the batch page never showed the prepared batch: %+v", st)
	require.Equal(t, 0, st.Done)
	require.Equal(t, 90, st.Total)
	// A reload would clear this flag: it proves the updates below arrive in place.
	eval[bool](t, ctx, `window.__notReloaded = true`)

	r := c.enrichctl("launch", id)
	require.Equal(t, 0, r.code, r.stderr)

	require.Eventually(t, func() bool {
		st = eval[pageState](t, ctx, readBatchPage)
		return st.State == "running" && st.Done > 0 && st.Done < st.Total
	}, 30*time.Second, 50*time.Millisecond, "the page never showed the batch running with partial progress: %+v", st)
	first := st.Done
	screenshot(t, ctx, "batch-running")
	require.Eventually(t, func() bool {
		st = eval[pageState](t, ctx, readBatchPage)
		return st.Done > first
	}, 30*time.Second, 50*time.Millisecond, "progress did not move past %d: %+v", first, st)

	require.Eventually(t, func() bool {
		st = eval[pageState](t, ctx, readBatchPage)
		return st.State == "completed" && st.Done == 90
	}, 2*time.Minute, 100*time.Millisecond, "the page never showed the completed batch: %+v", st)
	require.True(t, st.Marker, "the page was reloaded; updates must arrive in place")

	// Once consolidated, the page has a row per instance type and a link to every dossier.
	require.Eventually(t, func() bool {
		return eval[int](t, ctx, `document.querySelectorAll("#dossiers a[href*='format=md']").length`) == 90
	}, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, []string{"entities", "persons", "leagues"},
		eval[[]string](t, ctx, `[...document.querySelectorAll("#instances tbody tr")].map(r => r.dataset.instance)`))
	require.True(t, eval[bool](t, ctx, `document.getElementById("failures") === null`), "a clean batch lists no failures")
	screenshot(t, ctx, "batch-completed")

	// The agents page, reached by the page's own navigation.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#nav-agents"))))
	require.Eventually(t, func() bool {
		ids := eval[[]string](t, ctx, `[...document.querySelectorAll("#agents tbody tr")].map(r => r.dataset.agent)`)
		return strings.Join(ids, ",") == "dash-a,dash-b"
	}, 15*time.Second, 100*time.Millisecond)
	row := eval[string](t, ctx, `document.querySelector("#agents tr[data-agent='dash-a']").innerText`)
	require.Contains(t, row, "entities, persons, leagues")
	screenshot(t, ctx, "agents")

	// A dossier link opens the dossier's Markdown, served read-only by the coordinator.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/#/batch/"+id)))
	require.Eventually(t, func() bool {
		return eval[int](t, ctx, `document.querySelectorAll("#dossiers a[href*='format=md']").length`) == 90
	}, 15*time.Second, 100*time.Millisecond)
	link := eval[string](t, ctx, `document.querySelector("#dossiers a[href*='format=md']").href`)
	name := eval[string](t, ctx, `document.querySelector("#dossiers tbody tr td:nth-child(2)").textContent`)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(link)))
	body := eval[string](t, ctx, `document.body.innerText`)
	require.Contains(t, body, "# "+name)

	// The same work, counted by Prometheus metrics.
	metrics := httpGet(t, base+"/metrics")
	require.Contains(t, metrics, `enrich_results_total{instance_type="entities",outcome="accepted"} 50`)
	require.Contains(t, metrics, `enrich_agents_serving{instance_type="leagues"} 2`)
	require.Contains(t, metrics, "enrich_lease_dispatch_seconds_count")
	agentSide := httpGet(t, "http://"+agentMetrics+"/metrics")
	require.Contains(t, agentSide, `enrich_agent_runs_total{instance_type="entities",outcome="succeeded"}`)
	require.Contains(t, agentSide, "enrich_agent_connected 1")

	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, c.batch(id).GetState())
}
