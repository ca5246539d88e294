package consolidate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/sportsintel/enrich/agent/runner"
	"github.com/sportsintel/enrich/coordinator/store"
	"github.com/sportsintel/enrich/coordinator/store/sqlite"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
	"github.com/sportsintel/enrich/schemas"
)

type testBundle struct {
	ctx context.Context
	st  store.Store
	id  string
	out string
}

// setup runs a real SQLite store through a small batch: three clubs, two succeed (after one
// retry), one fails for good, so every part of the outputs has something to show. names are the
// entities' names.
func setup(t *testing.T, names ...string) *testBundle {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "enrich.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	out := filepath.Join(t.TempDir(), "parallel_batch_test")
	var items []store.NewItem
	for i, name := range names {
		e := &enrichv1.Entity{Id: "club-" + string(rune('a'+i)), Type: "Club", Name: name}
		raw, err := proto.Marshal(e)
		require.NoError(t, err)
		items = append(items, store.NewItem{EntityID: e.GetId(), EntityType: "Club", Name: name, InstanceType: "entities",
			Priority: store.PriorityNormal, Entity: raw, MaxAttempts: 2})
	}
	t0 := time.Date(2026, 1, 8, 12, 0, 0, 0, time.UTC)
	require.NoError(t, st.CreateBatch(ctx, store.CreateBatchParams{ID: "b1", CreatedAt: t0, OutputDir: out, Items: items}))
	require.NoError(t, st.LaunchBatch(ctx, store.LaunchBatchParams{ID: "b1", Now: t0}))

	claim := func(now time.Time) []*store.Item {
		got, err := st.Claim(ctx, store.ClaimParams{AgentID: "a1", SessionID: "s1", InstanceTypes: []string{"entities"},
			Limit: len(names), LeaseTTL: time.Hour, Now: now, Timeouts: map[string]time.Duration{"entities": time.Hour}})
		require.NoError(t, err)
		return got
	}
	leased := claim(t0)
	require.Len(t, leased, len(names))
	var p store.ReportParams
	p.Now = t0.Add(10 * time.Second)
	for i, it := range leased {
		ref := store.LeaseRef{ItemID: it.ID, Token: it.Token}
		switch i {
		case 0:
			var ent enrichv1.Entity
			require.NoError(t, proto.Unmarshal(it.Entity, &ent))
			res, err := (&runner.Offline{}).Run(ctx, &enrichv1.Lease{Entity: &ent, InstanceType: "entities", Schema: schemas.EntityDossier})
			require.NoError(t, err)
			p.Completions = append(p.Completions, store.Completion{Lease: ref, AgentID: "a1", Dossier: res.Dossier,
				Metrics: store.Metrics{Duration: 4 * time.Second, CostUSD: 0.5, InputTokens: 1000, OutputTokens: 200}})
		case 1:
			p.Failures = append(p.Failures, store.Failure{Lease: ref, AgentID: "a1", Retryable: true, Message: "exit status 1",
				Metrics: store.Metrics{CostUSD: 0.1}})
		default:
			p.Failures = append(p.Failures, store.Failure{Lease: ref, AgentID: "a1", Retryable: false, Message: "exit status 64: not a club"})
		}
	}
	_, err = st.Report(ctx, p)
	require.NoError(t, err)
	// The retried entity succeeds on its second attempt.
	if len(names) > 1 {
		again := claim(t0.Add(time.Minute))
		require.Len(t, again, 1)
		var ent enrichv1.Entity
		require.NoError(t, proto.Unmarshal(again[0].Entity, &ent))
		res, err := (&runner.Offline{}).Run(ctx, &enrichv1.Lease{Entity: &ent, InstanceType: "entities", Schema: schemas.EntityDossier})
		require.NoError(t, err)
		_, err = st.Report(ctx, store.ReportParams{Now: t0.Add(70 * time.Second), Completions: []store.Completion{{
			Lease: store.LeaseRef{ItemID: again[0].ID, Token: again[0].Token}, AgentID: "a1", Dossier: res.Dossier,
			Metrics: store.Metrics{Duration: 6 * time.Second, CostUSD: 0.25, InputTokens: 10, OutputTokens: 2}}}})
		require.NoError(t, err)
	}
	return &testBundle{ctx: ctx, st: st, id: "b1", out: out}
}

func TestReportChartAndPayload(t *testing.T) {
	t.Parallel()
	b := setup(t, "Alpha FC", "Beta United", "Gamma Town")
	sum, err := Write(b.ctx, b.st, b.id, []string{"entities"}, time.Date(2026, 1, 8, 12, 5, 0, 0, time.UTC))
	require.NoError(t, err)
	rep := sum.Report

	require.Equal(t, 2, rep.Totals.Succeeded)
	require.Equal(t, 1, rep.Totals.Failed)
	require.Equal(t, 1, rep.Retries)
	require.InDelta(t, 0.85, rep.CostUSD, 1e-9)
	require.EqualValues(t, 1010, rep.Instances[0].InputTokens)
	require.Greater(t, rep.ThroughputPerMinute, 0.0)
	require.Equal(t, []ProgressPoint{{}, {Seconds: 10, Succeeded: 1}, {Seconds: 10, Succeeded: 1, Failed: 1}, {Seconds: 70, Succeeded: 2, Failed: 1}},
		rep.Progress, "retried attempts do not end an entity")

	md, err := os.ReadFile(filepath.Join(b.out, "report.md"))
	require.NoError(t, err)
	require.Contains(t, string(md), "![Entities ended over time]("+ProgressChartFile+")")
	require.Contains(t, string(md), "**Throughput:**")
	require.Contains(t, string(md), "exit status 64: not a club")

	svg, err := os.ReadFile(filepath.Join(b.out, ProgressChartFile))
	require.NoError(t, err)
	dec := xml.NewDecoder(bytes.NewReader(svg))
	paths := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			require.ErrorContains(t, err, "EOF", "the chart is well-formed XML")
			break
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "path" {
			paths++
		}
	}
	require.Equal(t, 3, paths, "ended, succeeded and failed lines")
	require.NotContains(t, string(svg), "<script")

	f, err := os.Open(filepath.Join(b.out, PayloadFile))
	require.NoError(t, err)
	defer f.Close()
	var lines []Payload
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var p Payload
		require.NoError(t, json.Unmarshal(sc.Bytes(), &p), sc.Text())
		lines = append(lines, p)
	}
	require.Len(t, lines, 3, "one payload per entity")
	require.Equal(t, "club-a", lines[0].EntityID)
	require.Equal(t, "succeeded", lines[0].Status)
	require.Equal(t, "entities/club-a.json", lines[0].DossierFile)
	require.Contains(t, string(lines[0].Dossier), `"entity_id":"club-a"`)
	require.EqualValues(t, 4000, lines[0].Metrics.DurationMS)
	require.Equal(t, "failed", lines[2].Status)
	require.Equal(t, "null", string(lines[2].Dossier))
	require.True(t, strings.HasPrefix(lines[2].Error, "exit status 64"))
}

// pdfText extracts a PDF's text with poppler's pdftotext, the way a reader's tools would. The
// test fails (never skips) without it: .ci/run installs poppler-utils.
func pdfText(t *testing.T, path string) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	require.NoError(t, err, "pdftotext not found: install poppler-utils")
	out, err := exec.Command(bin, "-enc", "UTF-8", path, "-").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return string(out)
}

func TestPDFExportReadsBack(t *testing.T) {
	t.Parallel()
	// Names beyond Latin-1, including scripts the embedded fonts do not cover, must not break it.
	b := setup(t, "Ñandú São Paulo Ünited", "Δόξα Δράμας", "北京国安 ⚽")
	sum, err := Write(b.ctx, b.st, b.id, []string{"entities"}, time.Date(2026, 1, 8, 12, 5, 0, 0, time.UTC))
	require.NoError(t, err)
	n, err := WritePDFs(sum)
	require.NoError(t, err)
	require.Equal(t, len(sum.Report.Dossiers)+1, n, "one PDF per dossier and the report")

	text := pdfText(t, filepath.Join(b.out, "entities", "club-a.pdf"))
	require.Contains(t, text, "Ñandú São Paulo Ünited")
	md, err := os.ReadFile(filepath.Join(b.out, "entities", "club-a.md"))
	require.NoError(t, err)
	headings := 0
	for _, line := range strings.Split(string(md), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			require.Contains(t, text, plain(h), "section %q is in the PDF", h)
			headings++
		}
	}
	require.Positive(t, headings, "the dossier has sections to find")
	require.Contains(t, pdfText(t, filepath.Join(b.out, "entities", "club-b.pdf")), "Δόξα Δράμας")

	report := pdfText(t, filepath.Join(b.out, ReportPDFFile))
	require.Contains(t, report, "Enrichment report: batch b1")
	require.Contains(t, report, "Failures")
	require.Contains(t, report, "exit status 64: not a club")

	// Same input, same bytes: re-consolidating changes nothing.
	first, err := os.ReadFile(filepath.Join(b.out, ReportPDFFile))
	require.NoError(t, err)
	_, err = WritePDFs(sum)
	require.NoError(t, err)
	second, err := os.ReadFile(filepath.Join(b.out, ReportPDFFile))
	require.NoError(t, err)
	require.Equal(t, first, second)
}
