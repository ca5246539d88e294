package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// With consolidation.pdf on, the automatic consolidation writes PDFs next to the dossiers, the
// report links its progress chart, and payload.jsonl has a line per entity; enrichctl
// consolidate --pdf rewrites them on demand.
func TestReportsPayloadAndPDFs(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{config: "consolidation:\n  pdf: true\n"})
	c.agent("rep-1", "--slots", "4", "--offline-delay", "5ms-20ms")
	c.waitAgents(1)
	id := batchIDFrom(t, c.enrichctl("prepare", "--from", examplePath("entities.jsonl")))
	r := c.enrichctl("launch", id, "--wait")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "cost: $")
	dir := c.waitConsolidated(id).GetOutputDir()

	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	require.NoError(t, err)
	require.Contains(t, string(md), "(report-progress.svg)")
	svg, err := os.ReadFile(filepath.Join(dir, "report-progress.svg"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(svg), "<svg"))

	f, err := os.Open(filepath.Join(dir, "payload.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	lines := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		lines++
	}
	require.Equal(t, 90, lines)

	pdfs, err := filepath.Glob(filepath.Join(dir, "*", "*.pdf"))
	require.NoError(t, err)
	require.Len(t, pdfs, 90, "the config switch renders every dossier")
	require.FileExists(t, filepath.Join(dir, "report.pdf"))

	require.NoError(t, os.Remove(filepath.Join(dir, "report.pdf")))
	r = c.enrichctl("consolidate", id, "--pdf")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "pdfs        91")
	out, err := exec.Command("pdftotext", filepath.Join(dir, "report.pdf"), "-").CombinedOutput()
	require.NoError(t, err, "pdftotext (poppler-utils) must be installed: %s", out)
	require.Contains(t, string(out), "Enrichment report: batch "+id)
}
