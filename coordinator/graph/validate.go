package graph

import (
	"context"
	"fmt"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
)

// validate reads back what the batch should have produced: every entity node exactly once, every
// written relationship exactly once between existing entity nodes, every source once. Problems go
// into rep.Validation; an error means the checks themselves could not run.
func (s *Sink) validate(ctx context.Context, p *Plan, rels []Rel, rep *Report) error {
	v := &rep.Validation
	*v = Validation{Checked: true, NodesExpected: len(p.Nodes), RelsExpected: len(rels), Problems: []string{}}
	ids := make([]string, 0, len(p.Nodes))
	for _, n := range p.Nodes {
		ids = append(ids, n.ID)
	}
	e := q(s.Opts.EntityLabel)
	read := func(query string, params map[string]any, each func(*neo4j.Record)) error {
		return s.retry(ctx, rep, func() error {
			res, err := neo4j.ExecuteQuery(ctx, s.Driver, query, params, neo4j.EagerResultTransformer,
				neo4j.ExecuteQueryWithDatabase(s.Database), neo4j.ExecuteQueryWithReadersRouting())
			if err != nil {
				return err
			}
			for _, r := range res.Records {
				each(r)
			}
			return nil
		})
	}

	err := read(fmt.Sprintf("UNWIND $ids AS id OPTIONAL MATCH (n:%s {id: id}) RETURN id, count(n) AS c", e),
		map[string]any{"ids": ids}, func(r *neo4j.Record) {
			id, c := r.Values[0].(string), r.Values[1].(int64)
			v.NodesFound += int(min(c, 1))
			switch {
			case c == 0:
				v.Problems = append(v.Problems, fmt.Sprintf("entity %q is missing", id))
			case c > 1:
				v.Problems = append(v.Problems, fmt.Sprintf("entity id %q is on %d nodes", id, c))
			}
		})
	if err != nil {
		return err
	}

	rows := make([]map[string]any, 0, len(rels))
	for _, r := range rels {
		rows = append(rows, map[string]any{"from": r.From, "type": r.Type, "to": r.To})
	}
	// Each endpoint is looked up by itself before the relationship is expanded between them. In
	// one pattern, (a {id})-[r]->(b {id}), the planner is free to start from an index scan, and
	// on a freshly created constraint (index statistics of an empty label, the first batch into
	// a new database) it does: a scan of every entity per row, minutes for 10,000 dossiers where
	// two unique seeks take a second.
	err = read(fmt.Sprintf("UNWIND $rows AS x OPTIONAL MATCH (a:%s {id: x.from}) OPTIONAL MATCH (b:%s {id: x.to}) "+
		"OPTIONAL MATCH (a)-[r]->(b) WHERE type(r) = x.type RETURN x.from, x.type, x.to, count(r) AS c", e, e),
		map[string]any{"rows": rows}, func(r *neo4j.Record) {
			c := r.Values[3].(int64)
			v.RelsFound += int(min(c, 1))
			if c != 1 {
				v.Problems = append(v.Problems, fmt.Sprintf("relationship %q -[%s]-> %q found %d times, want 1",
					r.Values[0], r.Values[1], r.Values[2], c))
			}
		})
	if err != nil {
		return err
	}

	// Endpoints: every relationship of a configured type leaving this batch's entities must end
	// at an entity node that has an id (a stub included), never at something else.
	err = read(fmt.Sprintf("UNWIND $ids AS id MATCH (a:%s {id: id})-[r]->(b) WHERE type(r) IN $types "+
		"AND (NOT b:%s OR b.id IS NULL) RETURN a.id, type(r), elementId(b)", e, e),
		map[string]any{"ids": ids, "types": s.Opts.RelationshipTypes}, func(r *neo4j.Record) {
			v.Problems = append(v.Problems, fmt.Sprintf("relationship %q -[%s]-> ends at node %s, which is not an entity",
				r.Values[0], r.Values[1], r.Values[2]))
		})
	if err != nil {
		return err
	}

	urls := make([]string, 0, len(p.Sources))
	for _, src := range p.Sources {
		urls = append(urls, src.URL)
	}
	err = read(fmt.Sprintf("UNWIND $urls AS u OPTIONAL MATCH (s:%s {url: u}) RETURN u, count(s) AS c", q(s.Opts.SourceLabel)),
		map[string]any{"urls": urls}, func(r *neo4j.Record) {
			c := r.Values[1].(int64)
			v.SourcesFound += int(min(c, 1))
			if c != 1 {
				v.Problems = append(v.Problems, fmt.Sprintf("source %q found %d times, want 1", r.Values[0], c))
			}
		})
	if err != nil {
		return err
	}
	v.OK = len(v.Problems) == 0
	return nil
}
