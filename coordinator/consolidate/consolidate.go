// Package consolidate writes a batch's outputs: one markdown and one JSON dossier per entity under
// a folder per instance type, report.md + report.json with a progress chart (report-progress.svg),
// payload.jsonl, and on request PDFs of the dossiers and the report. Every file is written to a temporary
// name and renamed, so a reader never sees half a dossier and consolidating twice yields the same
// files.
package consolidate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sportsintel/enrich/coordinator/dossier"
	"github.com/sportsintel/enrich/coordinator/store"
	"github.com/sportsintel/enrich/internal/slug"
)

// Summary says what a consolidation wrote.
type Summary struct {
	Dir      string
	Dossiers int
	Report   *Report
	// PDFs is the number of PDF files written, 0 unless asked for (WritePDFs).
	PDFs int
}

// Write consolidates batch id into its output folder. order lists instance types in the order the
// report shows them.
func Write(ctx context.Context, st store.Store, id string, order []string, now time.Time) (*Summary, error) {
	b, err := st.GetBatch(ctx, id)
	if err != nil {
		return nil, err
	}
	if b.OutputDir == "" {
		return nil, fmt.Errorf("batch %s has no output folder", id)
	}
	results, err := st.Results(ctx, id)
	if err != nil {
		return nil, err
	}
	items, err := st.ListItems(ctx, store.ListItemsParams{BatchID: id})
	if err != nil {
		return nil, err
	}
	attempts, err := st.Attempts(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(b.OutputDir, 0o755); err != nil {
		return nil, fmt.Errorf("create output folder: %w", err)
	}

	files := map[int64]string{}
	taken := map[string]int64{}
	for _, r := range results {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rel, err := writeDossier(b.OutputDir, r, taken)
		if err != nil {
			return nil, err
		}
		files[r.Item.ID] = rel
	}
	rep := buildReport(b, items, results, attempts, files, order, now)
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode report: %w", err)
	}
	if err := writeAtomic(filepath.Join(b.OutputDir, "report.json"), append(js, '\n')); err != nil {
		return nil, err
	}
	if err := writeAtomic(filepath.Join(b.OutputDir, "report.md"), rep.Markdown()); err != nil {
		return nil, err
	}
	selected := rep.Totals.Total - rep.Totals.Skipped
	if err := writeAtomic(filepath.Join(b.OutputDir, ProgressChartFile), ProgressSVG(rep.Progress, selected)); err != nil {
		return nil, err
	}
	payload, err := buildPayload(b.ID, items, results, files)
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(filepath.Join(b.OutputDir, PayloadFile), payload); err != nil {
		return nil, err
	}
	return &Summary{Dir: b.OutputDir, Dossiers: len(results), Report: rep}, nil
}

// writeDossier writes one entity's JSON and markdown dossiers and returns the JSON file's path
// relative to the batch folder. Two ids whose slugs collide get the item id appended, so no file
// is ever shared.
func writeDossier(root string, r *store.ResultRow, taken map[string]int64) (string, error) {
	folder := r.Item.InstanceType
	name := slug.Make(r.Item.EntityID)
	key := folder + "/" + name
	if other, ok := taken[key]; ok && other != r.Item.ID {
		name = fmt.Sprintf("%s-%d", name, r.Item.ID)
		key = folder + "/" + name
	}
	taken[key] = r.Item.ID
	dir := filepath.Join(root, folder)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, r.Dossier, "", "  "); err != nil {
		return "", fmt.Errorf("dossier of %q is not JSON: %w", r.Item.EntityID, err)
	}
	pretty.WriteByte('\n')
	if err := writeAtomic(filepath.Join(dir, name+".json"), pretty.Bytes()); err != nil {
		return "", err
	}
	md, err := dossier.Markdown(r.Dossier)
	if err != nil {
		return "", fmt.Errorf("render dossier of %q: %w", r.Item.EntityID, err)
	}
	if err := writeAtomic(filepath.Join(dir, name+".md"), md); err != nil {
		return "", err
	}
	return folder + "/" + name + ".json", nil
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// OrderedKeys lists m's keys (instance types) in the given order, then any others alphabetically,
// so reports and status show types in configuration order.
func OrderedKeys[V any](m map[string]V, order []string) []string {
	var out []string
	for _, k := range order {
		if _, ok := m[k]; ok {
			out = append(out, k)
		}
	}
	var rest []string
	for k := range m {
		if !slices.Contains(out, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

func mdEscape(s string) string {
	r := strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ", "`", "'", "<", "&lt;", ">", "&gt;", "[", `\[`, "]", `\]`)
	return r.Replace(s)
}
