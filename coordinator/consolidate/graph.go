package consolidate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/sportsintel/enrich/coordinator/graph"
)

// WriteReport rewrites report.json and report.md, for sections added after Write (the graph).
func WriteReport(dir string, rep *Report) error {
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, "report.json"), append(js, '\n')); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, "report.md"), rep.Markdown())
}

// graphMarkdown renders the knowledge-graph section of report.md.
func graphMarkdown(b *bytes.Buffer, g *graph.Report) {
	if g == nil {
		return
	}
	b.WriteString("\n## Knowledge graph\n\n")
	if g.Target == "files" {
		fmt.Fprintf(b, "No Neo4j configured: written to %s for a later load (`cypher-shell -f graph.cypher` or `enrichctl consolidate`).\n\n",
			mdEscape(fmt.Sprint(g.Files)))
	} else {
		fmt.Fprintf(b, "Written to %s", mdEscape(g.URI))
		if g.Database != "" {
			fmt.Fprintf(b, " (database %s)", mdEscape(g.Database))
		}
		fmt.Fprintf(b, " in %d transactions, %d retries.\n\n", g.Transactions, g.Retries)
	}
	fmt.Fprintf(b, "- **Entities:** %d, **relationships:** %d, **sources:** %d\n", g.Nodes, g.Rels, g.Sources)
	c := g.Counters
	fmt.Fprintf(b, "- **Changes:** %d nodes and %d relationships created, %d properties set, %d labels added, %d removed\n",
		c.NodesCreated, c.RelationshipsCreated, c.PropertiesSet, c.LabelsAdded, c.LabelsRemoved)
	if g.Validation.Checked {
		v := g.Validation
		verdict := "consistent"
		if !v.OK {
			verdict = fmt.Sprintf("%d problems", len(v.Problems))
		}
		fmt.Fprintf(b, "- **Validation:** %s (entities %d/%d, relationships %d/%d, sources %d)\n", verdict,
			v.NodesFound, v.NodesExpected, v.RelsFound, v.RelsExpected, v.SourcesFound)
		for _, p := range v.Problems {
			fmt.Fprintf(b, "  - %s\n", mdEscape(p))
		}
	}
	if g.Error != "" {
		fmt.Fprintf(b, "- **Error:** %s\n", mdEscape(g.Error))
	}
	if len(g.Unlabelled) > 0 {
		fmt.Fprintf(b, "- **Entity types with no label in neo4j.labels:** %s\n", mdEscape(fmt.Sprint(g.Unlabelled)))
	}
	if len(g.Unverified) > 0 {
		b.WriteString("\n### Unverified relationship targets\n\n| target | action | from |\n|---|---|---|\n")
		for _, u := range g.Unverified {
			fmt.Fprintf(b, "| %s | %s | %s |\n", mdEscape(u.ID), u.Action, mdEscape(fmt.Sprint(u.From)))
		}
	}
	if len(g.Skipped) > 0 {
		b.WriteString("\n### Relationships left out\n\n| from | type | target | reason |\n|---|---|---|---|\n")
		for _, s := range g.Skipped {
			fmt.Fprintf(b, "| %s | %s | %s | %s |\n", mdEscape(s.From), mdEscape(s.Type), mdEscape(s.Target), s.Reason)
		}
	}
}
