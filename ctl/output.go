package ctl

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// printer is where a verb writes: results on out (what scripts capture),
// commentary on errw.
type printer struct {
	out, errw io.Writer
	json      bool
	now       func() time.Time
}

// Zero values are printed so scripts read "failed": 0 rather than a missing key.
var (
	jsonDoc  = protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: true}
	jsonLine = protojson.MarshalOptions{EmitUnpopulated: true}
)

// printJSON writes m as one indented JSON document.
func (p *printer) printJSON(m proto.Message) error {
	b, err := jsonDoc.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	_, err = fmt.Fprintf(p.out, "%s\n", b)
	return err
}

// printJSONLine writes m on one line, for streams read line by line.
func (p *printer) printJSONLine(m proto.Message) error {
	b, err := jsonLine.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	_, err = fmt.Fprintf(p.out, "%s\n", b)
	return err
}

// table aligns columns; write rows then flush.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(toAny(header)...)
	return t
}

func (t *table) row(cols ...any) {
	for i, c := range cols {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, c)
	}
	fmt.Fprint(t.tw, "\n")
}

func (t *table) flush() error { return t.tw.Flush() }

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// fmtTime prints a timestamp in UTC RFC 3339, "-" when unset.
func fmtTime(ts *timestamppb.Timestamp) string {
	if ts == nil || !ts.IsValid() {
		return "-"
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

// fmtAge prints how long ago ts was, "-" when unset.
func fmtAge(ts *timestamppb.Timestamp, now time.Time) string {
	if ts == nil || !ts.IsValid() {
		return "-"
	}
	d := max(now.Sub(ts.AsTime()), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds ago", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
}

// stateName is a batch state as operators type and grep it: "completed_with_failures".
func stateName(s enrichv1.BatchState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "BATCH_STATE_"))
}

func itemStateName(s enrichv1.ItemState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "ITEM_STATE_"))
}

// ended counts the items of an instance type that reached a final state.
func ended(ip *enrichv1.InstanceProgress) int32 {
	return ip.GetSucceeded() + ip.GetFailed() + ip.GetCancelled()
}

// selected counts the items a launch runs: skipped items wait for a later launch.
func selected(ip *enrichv1.InstanceProgress) int32 {
	return ip.GetTotal() - ip.GetSkipped()
}

// writeBatch renders a batch: a header, a row per instance type, then a
// note per instance type that no connected agent serves.
func writeBatch(w io.Writer, b *enrichv1.Batch) error {
	h := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(h, "batch\t%s\n", b.GetId())
	fmt.Fprintf(h, "state\t%s\n", stateName(b.GetState()))
	fmt.Fprintf(h, "source\t%s\n", orDash(b.GetSource()))
	fmt.Fprintf(h, "created\t%s\n", fmtTime(b.GetCreatedAt()))
	fmt.Fprintf(h, "launched\t%s\n", fmtTime(b.GetLaunchedAt()))
	fmt.Fprintf(h, "finished\t%s\n", fmtTime(b.GetFinishedAt()))
	fmt.Fprintf(h, "consolidation\t%s\n", consolidationState(b))
	fmt.Fprintf(h, "output dir\t%s\n", orDash(b.GetOutputDir()))
	if err := h.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t := newTable(w, "TYPE", "TOTAL", "DONE", "FAILED", "IN-FLIGHT", "PENDING", "RETRYING", "SKIPPED", "CANCELLED", "AGENTS",
		"SLOTS", "P50", "ETA", "ERRORS", "COST")
	for _, ip := range b.GetInstances() {
		p50, eta, errRate := "-", "-", "-"
		if d := ip.GetDurationP50(); d != nil {
			p50 = fmtETA(d.AsDuration())
		}
		if ended(ip) >= selected(ip) && selected(ip) > 0 {
			eta = "done"
		} else if d := ip.GetEta(); d != nil {
			eta = fmtETA(d.AsDuration())
		}
		if ip.GetAttempts() > 0 {
			errRate = fmt.Sprintf("%.0f%%", 100*float64(ip.GetFailedAttempts())/float64(ip.GetAttempts()))
		}
		t.row(ip.GetInstanceType(), ip.GetTotal(), ip.GetSucceeded(), ip.GetFailed(), ip.GetLeased(), ip.GetPending(),
			ip.GetRetrying(), ip.GetSkipped(), ip.GetCancelled(), ip.GetAgents(), ip.GetSlots(), p50, eta, errRate,
			fmt.Sprintf("$%.2f", ip.GetCostUsd()))
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, ip := range b.GetInstances() {
		if ip.GetWaitingForAgent() {
			fmt.Fprintln(w, waitingNote(ip.GetInstanceType()))
		}
	}
	return nil
}

func waitingNote(instance string) string {
	return fmt.Sprintf("waiting for an agent serving %q", instance)
}

// writeSummary is the end of launch --wait and watch: outcome per type and
// where the dossiers are.
func writeSummary(w io.Writer, b *enrichv1.Batch) error {
	fmt.Fprintf(w, "batch %s %s\n", b.GetId(), stateName(b.GetState()))
	t := newTable(w, "  TYPE", "SUCCEEDED", "FAILED", "CANCELLED")
	var failed int32
	for _, ip := range b.GetInstances() {
		t.row("  "+ip.GetInstanceType(), ip.GetSucceeded(), ip.GetFailed(), ip.GetCancelled())
		failed += ip.GetFailed()
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "output dir: %s\n", orDash(b.GetOutputDir()))
	if b.GetLaunchedAt().IsValid() && b.GetFinishedAt().IsValid() {
		fmt.Fprintf(w, "elapsed: %s  cost: $%.2f\n", b.GetFinishedAt().AsTime().Sub(b.GetLaunchedAt().AsTime()).Round(time.Second), b.GetCostUsd())
	}
	if e := b.GetConsolidationError(); e != "" {
		fmt.Fprintf(w, "consolidation failed: %s (results are kept; run: enrichctl consolidate %s)\n", e, b.GetId())
	}
	if failed > 0 {
		fmt.Fprintf(w, "%d failed: enrichctl status %s --failed; enrichctl retry %s\n", failed, b.GetId(), b.GetId())
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
