package graph

import (
	"fmt"
	"regexp"
	"slices"
)

var (
	labelRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)
	relTypeRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)
)

func (o Options) check() error {
	for _, l := range []string{o.EntityLabel, o.SourceLabel, o.UnverifiedLabel} {
		if !labelRE.MatchString(l) {
			return fmt.Errorf("graph: label %q is not a plain identifier", l)
		}
	}
	for t, l := range o.Labels {
		if !labelRE.MatchString(l) {
			return fmt.Errorf("graph: label %q of entity type %q is not a plain identifier", l, t)
		}
	}
	for _, t := range o.RelationshipTypes {
		if !relTypeRE.MatchString(t) || t == SupportsType {
			return fmt.Errorf("graph: relationship type %q is not allowed", t)
		}
	}
	if o.MissingTarget != MissingTargetStub && o.MissingTarget != MissingTargetReport {
		return fmt.Errorf("graph: missing_target %q is not stub or report", o.MissingTarget)
	}
	if o.BatchSize < 1 {
		return fmt.Errorf("graph: batch size %d is less than 1", o.BatchSize)
	}
	return nil
}

// q backquotes a name checked by Options.check. The check already rules out backquotes; quoting
// anyway keeps a future relaxation of the check from turning into an injection.
func q(name string) string { return "`" + name + "`" }

// statement is one Cypher text run once per chunk of rows (rows == nil: run once, no parameter).
type statement struct {
	kind string // what the rows are, for progress and errors
	text string
	rows []map[string]any
}

// schemaStatements create the uniqueness constraints the MERGEs rely on.
func (o Options) schemaStatements() []statement {
	return []statement{
		{kind: "constraint", text: fmt.Sprintf("CREATE CONSTRAINT %s IF NOT EXISTS FOR (n:%s) REQUIRE n.id IS UNIQUE",
			q("enrich_"+o.EntityLabel+"_id"), q(o.EntityLabel))},
		{kind: "constraint", text: fmt.Sprintf("CREATE CONSTRAINT %s IF NOT EXISTS FOR (s:%s) REQUIRE s.url IS UNIQUE",
			q("enrich_"+o.SourceLabel+"_url"), q(o.SourceLabel))},
	}
}

// writeStatements renders a plan as statements in dependency order: entity nodes, sources, then
// relationships between them. rels is the relationships to write (the plan's, less those left
// out because their target is missing under missing_target: report).
func (o Options) writeStatements(p *Plan, rels []Rel) []statement {
	var out []statement
	byLabel := map[string][]map[string]any{}
	var labels []string
	for _, n := range p.Nodes {
		if _, ok := byLabel[n.Label]; !ok {
			labels = append(labels, n.Label)
		}
		byLabel[n.Label] = append(byLabel[n.Label], map[string]any{"id": n.ID, "hash": n.Hash, "props": n.Props})
	}
	slices.Sort(labels)
	for _, l := range labels {
		set := ""
		if l != "" {
			set = ", n:" + q(l)
		}
		out = append(out, statement{kind: "entities", rows: byLabel[l], text: fmt.Sprintf(
			"UNWIND $rows AS row MERGE (n:%s {id: row.id}) "+
				"WITH n, row WHERE n.content_hash IS NULL OR n.content_hash <> row.hash "+
				"SET n += row.props, n.content_hash = row.hash%s REMOVE n:%s",
			q(o.EntityLabel), set, q(o.UnverifiedLabel))})
	}
	if len(p.Sources) > 0 {
		rows := make([]map[string]any, 0, len(p.Sources))
		for _, s := range p.Sources {
			rows = append(rows, map[string]any{"url": s.URL, "hash": s.Hash, "props": s.Props})
		}
		out = append(out, statement{kind: "sources", rows: rows, text: fmt.Sprintf(
			"UNWIND $rows AS row MERGE (s:%s {url: row.url}) "+
				"WITH s, row WHERE s.content_hash IS NULL OR s.content_hash <> row.hash "+
				"SET s += row.props, s.content_hash = row.hash", q(o.SourceLabel))})
		sup := make([]map[string]any, 0, len(p.Supports))
		for _, s := range p.Supports {
			sup = append(sup, map[string]any{"url": s.URL, "id": s.EntityID})
		}
		out = append(out, statement{kind: "supports", rows: sup, text: fmt.Sprintf(
			"UNWIND $rows AS row MATCH (s:%s {url: row.url}) MATCH (n:%s {id: row.id}) MERGE (s)-[:%s]->(n)",
			q(o.SourceLabel), q(o.EntityLabel), q(SupportsType))})
	}
	byType := map[string][]map[string]any{}
	var types []string
	for _, r := range rels {
		if _, ok := byType[r.Type]; !ok {
			types = append(types, r.Type)
		}
		byType[r.Type] = append(byType[r.Type], map[string]any{"from": r.From, "to": r.To, "to_name": r.ToName,
			"batch_id": p.BatchID, "hash": r.Hash, "props": r.Props})
	}
	slices.Sort(types)
	for _, t := range types {
		// stub: a missing target is created with the unverified label and the name the dossier
		// gives it; report: MATCH leaves the relationship out (the caller already listed it).
		target := fmt.Sprintf("MERGE (b:%s {id: row.to}) ON CREATE SET b:%s, b.name = row.to_name, b.stub_batch_id = row.batch_id",
			q(o.EntityLabel), q(o.UnverifiedLabel))
		if o.MissingTarget == MissingTargetReport {
			target = fmt.Sprintf("MATCH (b:%s {id: row.to})", q(o.EntityLabel))
		}
		out = append(out, statement{kind: "relationships", rows: byType[t], text: fmt.Sprintf(
			"UNWIND $rows AS row MATCH (a:%s {id: row.from}) %s MERGE (a)-[r:%s]->(b) "+
				"WITH r, row WHERE r.content_hash IS NULL OR r.content_hash <> row.hash "+
				"SET r += row.props, r.content_hash = row.hash",
			q(o.EntityLabel), target, q(t))})
	}
	return out
}

// chunks splits a statement's rows into groups of at most size.
func chunks(rows []map[string]any, size int) [][]map[string]any {
	var out [][]map[string]any
	for len(rows) > 0 {
		n := min(size, len(rows))
		out = append(out, rows[:n])
		rows = rows[n:]
	}
	return out
}
