package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

const aim = 0.95

func printTables(w io.Writer, s setup, entities int, outs []outcome) {
	if len(outs) == 0 {
		return
	}
	b := outs[0].bound
	var caps []string
	for _, typ := range slices.Sorted(maps.Keys(seedCaps)) {
		caps = append(caps, fmt.Sprintf("%s=%d", typ, seedCaps[typ]))
	}
	fmt.Fprintf(w, "%d entities (%s), seed %d, lease order %q: work %s in total, longest %s\n", entities, s.entities, s.seed, s.order,
		secs(b.total), secs(b.longest))
	fmt.Fprintf(w, "%d slots per agent; max_concurrent %s\n\n", s.slots, strings.Join(caps, " "))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "agents\tslots\teffective\tmakespan\tideal\tratio\tsched: as leased\ttype first\tLPT\t")
	for _, o := range outs {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", o.agents, o.slots, o.bound.effective, secs(o.makespan), secs(o.bound.ideal),
			pct(o.bound.ideal, o.makespan), secs(o.listSched), secs(o.typeSched), secs(o.lptSched))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nwhere the makespan went, per used slot (ms), and the latencies behind it (ms):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "agents\tused slots\twork\tstartup\tturnaround\tend idle\tfirst run\tlast run\tlongest run\tturnaround p50\tp90\tcommit lag p50\tmax\ttail\toverrun p50\tmax\t")
	for _, o := range outs {
		tl := o.tl
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", o.agents, tl.usedSlots,
			msec(tl.perSlot(tl.work)), msec(tl.perSlot(tl.startup)), msec(tl.perSlot(tl.turnaround)), msec(tl.perSlot(tl.end)),
			msec(tl.firstStart), msec(tl.lastStart), msec(tl.longestAt), msec(quantile(tl.turnarounds, 0.5)), msec(quantile(tl.turnarounds, 0.9)),
			msec(quantile(tl.commitLags, 0.5)), msec(quantile(tl.commitLags, 1)), msec(tl.tail),
			msec(quantile(tl.overruns, 0.5)), msec(quantile(tl.overruns, 1)))
	}
	tw.Flush()

	var parts []string
	reached := 0
	for _, o := range outs {
		parts = append(parts, fmt.Sprintf("%d agents %s", o.agents, pct(o.bound.ideal, o.makespan)))
		if float64(o.bound.ideal) >= aim*float64(o.makespan) {
			reached++
		}
	}
	fmt.Fprintf(w, "\nbench-agents: ideal/makespan %s; %d of %d at or above %.0f%%\n", strings.Join(parts, ", "), reached, len(outs), aim*100)
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }

func msec(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d.Microseconds())/1000) }

func pct(num, den time.Duration) string {
	if den <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(num)/float64(den))
}
