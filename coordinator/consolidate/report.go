package consolidate

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/sportsintel/enrich/coordinator/graph"
	"github.com/sportsintel/enrich/coordinator/store"
)

// Report is the batch summary written to report.json (and rendered to report.md).
type Report struct {
	BatchID     string     `json:"batch_id"`
	State       string     `json:"state"`
	Source      string     `json:"source"`
	CreatedAt   time.Time  `json:"created_at"`
	LaunchedAt  *time.Time `json:"launched_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	GeneratedAt time.Time  `json:"generated_at"`
	// Graph is the knowledge-graph section (coordinator/graph), filled after the dossiers are written.
	Graph       *graph.Report    `json:"graph,omitempty"`
	WallSeconds float64          `json:"wall_seconds"`
	Totals      Counts           `json:"totals"`
	Instances   []InstanceReport `json:"instances"`
	Failures    []FailedEntity   `json:"failures"`
	// Retries counts attempts that failed and were retried.
	Retries int `json:"retries"`
	// Duplicates counts results dropped because the entity already had one.
	Duplicates   int     `json:"duplicates"`
	CostUSD      float64 `json:"cost_usd"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	Dossiers     []Entry `json:"dossiers"`
	// ThroughputPerMinute is entities ended (succeeded or failed) per minute of wall time.
	ThroughputPerMinute float64 `json:"throughput_per_minute"`
	// Progress is the batch's progress over time, one point per ended attempt that changed it;
	// report-progress.svg draws it.
	Progress []ProgressPoint `json:"progress"`
}

// ProgressPoint is the cumulative count of entities ended at a time since launch.
type ProgressPoint struct {
	Seconds   float64 `json:"seconds"`
	Succeeded int     `json:"succeeded"`
	Failed    int     `json:"failed"`
}

// Counts of entities by final state.
type Counts struct {
	Total     int `json:"total"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Cancelled int `json:"cancelled"`
	Skipped   int `json:"skipped"`
	Open      int `json:"open"`
}

// InstanceReport summarises one instance type.
type InstanceReport struct {
	InstanceType string `json:"instance_type"`
	Counts
	Retries       int     `json:"retries"`
	DurationP50MS int64   `json:"duration_p50_ms"`
	DurationP95MS int64   `json:"duration_p95_ms"`
	CostUSD       float64 `json:"cost_usd"`
	InputTokens   int64   `json:"input_tokens"`
	OutputTokens  int64   `json:"output_tokens"`
	// ThroughputPerMinute is this type's entities ended per minute of the batch's wall time.
	ThroughputPerMinute float64 `json:"throughput_per_minute"`
}

// FailedEntity is an entity that ended without a dossier.
type FailedEntity struct {
	EntityID     string `json:"entity_id"`
	Name         string `json:"name"`
	InstanceType string `json:"instance_type"`
	State        string `json:"state"`
	Attempts     int    `json:"attempts"`
	Reason       string `json:"reason"`
	StderrTail   string `json:"stderr_tail,omitempty"`
}

// Entry points at one written dossier.
type Entry struct {
	EntityID     string `json:"entity_id"`
	Name         string `json:"name"`
	InstanceType string `json:"instance_type"`
	File         string `json:"file"`
}

func buildReport(b *store.Batch, items []*store.Item, results []*store.ResultRow, attempts []*store.Attempt,
	files map[int64]string, order []string, now time.Time) *Report {
	r := &Report{BatchID: b.ID, State: string(b.State), Source: b.Source, CreatedAt: b.CreatedAt, GeneratedAt: now,
		Failures: []FailedEntity{}, Dossiers: []Entry{}}
	if !b.LaunchedAt.IsZero() {
		r.LaunchedAt = &b.LaunchedAt
		end := b.FinishedAt
		if end.IsZero() {
			end = now
		}
		r.WallSeconds = end.Sub(b.LaunchedAt).Seconds()
	}
	if !b.FinishedAt.IsZero() {
		r.FinishedAt = &b.FinishedAt
	}

	per := map[string]*InstanceReport{}
	inst := func(name string) *InstanceReport {
		if per[name] == nil {
			per[name] = &InstanceReport{InstanceType: name}
		}
		return per[name]
	}
	for _, it := range items {
		ir := inst(it.InstanceType)
		ir.Total++
		switch it.State {
		case store.ItemSucceeded:
			ir.Succeeded++
		case store.ItemFailed:
			ir.Failed++
		case store.ItemCancelled:
			ir.Cancelled++
		case store.ItemSkipped:
			ir.Skipped++
		default:
			ir.Open++
		}
		if it.State == store.ItemFailed || (it.State == store.ItemCancelled && it.Attempt > 0) {
			r.Failures = append(r.Failures, FailedEntity{EntityID: it.EntityID, Name: it.Name, InstanceType: it.InstanceType,
				State: string(it.State), Attempts: it.Attempt, Reason: it.LastError, StderrTail: it.StderrTail})
		}
	}
	durations := map[string][]time.Duration{}
	for _, a := range attempts {
		ir := inst(a.InstanceType)
		switch a.Outcome {
		case "retrying":
			ir.Retries++
			r.Retries++
		case "duplicate":
			r.Duplicates++
		case "succeeded":
			durations[a.InstanceType] = append(durations[a.InstanceType], a.Metrics.Duration)
		}
		// Every attempt was paid for, whatever became of it.
		ir.CostUSD += a.Metrics.CostUSD
		r.CostUSD += a.Metrics.CostUSD
	}
	for _, res := range results {
		r.InputTokens += res.Metrics.InputTokens
		r.OutputTokens += res.Metrics.OutputTokens
		ir := inst(res.Item.InstanceType)
		ir.InputTokens += res.Metrics.InputTokens
		ir.OutputTokens += res.Metrics.OutputTokens
		r.Dossiers = append(r.Dossiers, Entry{EntityID: res.Item.EntityID, Name: res.Item.Name,
			InstanceType: res.Item.InstanceType, File: files[res.Item.ID]})
	}
	for _, name := range OrderedKeys(per, order) {
		ir := per[name]
		ir.DurationP50MS = percentile(durations[name], 0.50).Milliseconds()
		ir.DurationP95MS = percentile(durations[name], 0.95).Milliseconds()
		if r.WallSeconds > 0 {
			ir.ThroughputPerMinute = float64(ir.Succeeded+ir.Failed) / (r.WallSeconds / 60)
		}
		r.Instances = append(r.Instances, *ir)
		r.Totals.Total += ir.Total
		r.Totals.Succeeded += ir.Succeeded
		r.Totals.Failed += ir.Failed
		r.Totals.Cancelled += ir.Cancelled
		r.Totals.Skipped += ir.Skipped
		r.Totals.Open += ir.Open
	}
	if r.WallSeconds > 0 {
		r.ThroughputPerMinute = float64(r.Totals.Succeeded+r.Totals.Failed) / (r.WallSeconds / 60)
	}
	r.Progress = progressPoints(b.LaunchedAt, attempts)
	return r
}

// progressPoints turns the ended attempts into cumulative succeeded and failed counts over time.
// Retried attempts do not end an entity, and duplicates and stale reports change nothing.
func progressPoints(launched time.Time, attempts []*store.Attempt) []ProgressPoint {
	out := []ProgressPoint{}
	if launched.IsZero() {
		return out
	}
	sorted := slices.Clone(attempts)
	slices.SortStableFunc(sorted, func(a, b *store.Attempt) int { return a.EndedAt.Compare(b.EndedAt) })
	out = append(out, ProgressPoint{})
	var cur ProgressPoint
	for _, a := range sorted {
		switch {
		case a.Outcome == "succeeded":
			cur.Succeeded++
		case a.Outcome == "failed" || a.Outcome == "failed_permanent":
			cur.Failed++
		default:
			continue
		}
		cur.Seconds = max(a.EndedAt.Sub(launched).Seconds(), 0)
		out = append(out, cur)
	}
	return out
}

// percentile uses the nearest-rank method.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	idx := int(float64(len(s))*p+0.999999) - 1
	return s[min(max(idx, 0), len(s)-1)]
}

// Markdown renders the report for people.
func (r *Report) Markdown() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Enrichment report: batch %s\n\n", r.BatchID)
	fmt.Fprintf(&b, "- **State:** %s\n", r.State)
	if r.Source != "" {
		fmt.Fprintf(&b, "- **Source:** %s\n", mdEscape(r.Source))
	}
	fmt.Fprintf(&b, "- **Created:** %s\n", r.CreatedAt.Format(time.RFC3339))
	if r.LaunchedAt != nil {
		fmt.Fprintf(&b, "- **Launched:** %s\n", r.LaunchedAt.Format(time.RFC3339))
	}
	if r.FinishedAt != nil {
		fmt.Fprintf(&b, "- **Finished:** %s (%s wall time)\n", r.FinishedAt.Format(time.RFC3339),
			(time.Duration(r.WallSeconds * float64(time.Second))).Round(time.Second))
	}
	fmt.Fprintf(&b, "- **Entities:** %d total, %d succeeded, %d failed, %d cancelled, %d skipped, %d still open\n",
		r.Totals.Total, r.Totals.Succeeded, r.Totals.Failed, r.Totals.Cancelled, r.Totals.Skipped, r.Totals.Open)
	fmt.Fprintf(&b, "- **Retries:** %d; **duplicate results dropped:** %d\n", r.Retries, r.Duplicates)
	fmt.Fprintf(&b, "- **Cost:** $%.4f (%d input tokens, %d output tokens)\n", r.CostUSD, r.InputTokens, r.OutputTokens)
	fmt.Fprintf(&b, "- **Throughput:** %.1f entities per minute\n\n", r.ThroughputPerMinute)

	b.WriteString("## Per instance type\n\n")
	b.WriteString("| instance type | total | succeeded | failed | cancelled | skipped | retries | p50 | p95 | per min | tokens in/out | cost (USD) |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, ir := range r.Instances {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %s | %s | %.1f | %d / %d | %.4f |\n", ir.InstanceType, ir.Total, ir.Succeeded,
			ir.Failed, ir.Cancelled, ir.Skipped, ir.Retries, ms(ir.DurationP50MS), ms(ir.DurationP95MS), ir.ThroughputPerMinute,
			ir.InputTokens, ir.OutputTokens, ir.CostUSD)
	}
	if len(r.Progress) > 1 {
		b.WriteString("\n## Progress over time\n\n")
		fmt.Fprintf(&b, "![Entities ended over time](%s)\n", ProgressChartFile)
	}
	b.WriteString("\n## Failures\n\n")
	if len(r.Failures) == 0 {
		b.WriteString("None.\n")
	} else {
		b.WriteString("| entity | name | instance type | state | attempts | reason |\n|---|---|---|---|---:|---|\n")
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %d | %s |\n", mdEscape(f.EntityID), mdEscape(f.Name), f.InstanceType,
				f.State, f.Attempts, mdEscape(f.Reason))
		}
	}
	b.WriteString("\n## Dossiers\n\n")
	if len(r.Dossiers) == 0 {
		b.WriteString("None.\n")
	}
	for _, d := range r.Dossiers {
		md := d.File[:len(d.File)-len(".json")] + ".md"
		fmt.Fprintf(&b, "- [%s](%s) (%s, `%s`)\n", mdEscape(d.Name), md, d.InstanceType, mdEscape(d.EntityID))
	}
	graphMarkdown(&b, r.Graph)
	return b.Bytes()
}

func ms(v int64) string {
	return (time.Duration(v) * time.Millisecond).String()
}
