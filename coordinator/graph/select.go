package graph

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j/dbtype"
)

// Priority ranks of a node's priority property: high before normal before low. A node without
// one, or with another value, ranks as normal.
const (
	RankLow    = 1
	RankNormal = 2
	RankHigh   = 3
)

// SelectLabel is one label to select from and the entity types it stands for. Several entity
// types may share a label; a node's entity_type property picks among them, the first wins
// otherwise.
type SelectLabel struct {
	Label string
	Types []string
	// Limit bounds the nodes read for this label: the capacity of its instance type. The
	// candidates beyond it are counted, not read.
	Limit int
}

// SelectParams choose entity nodes for re-enrichment.
type SelectParams struct {
	EntityLabel string
	Labels      []SelectLabel
	// MinRank keeps nodes of at least this priority rank (0: all).
	MinRank int
	// StaleBefore keeps nodes never enriched or enriched before it (zero: regardless of age).
	StaleBefore time.Time
}

// Candidate is one entity node chosen for enrichment.
type Candidate struct {
	ID, Name, EntityType string
	Rank                 int
	// EnrichedAt is zero for a node never enriched.
	EnrichedAt time.Time
	// Attributes are the node's other scalar properties, as text.
	Attributes map[string]string
}

// Selection is what Select found.
type Selection struct {
	// Candidates are ordered most important first, then stalest (never enriched first), then id.
	Candidates []Candidate
	// Matching counts every node that matched per label, read or not.
	Matching map[string]int
}

// Properties a selection does not copy into attributes: they are the entity's own fields, or
// this package's bookkeeping.
var selectSkip = map[string]bool{"id": true, "name": true, "priority": true, "entity_type": true,
	"content_hash": true, "key_facts": true, "stub_batch_id": true}

// Select reads the entity nodes of each label that match the priority and staleness filter,
// up to each label's limit. Labels are checked identifiers; every value is a parameter.
func Select(ctx context.Context, d neo4j.DriverWithContext, database string, p SelectParams) (*Selection, error) {
	if !labelRE.MatchString(p.EntityLabel) {
		return nil, fmt.Errorf("graph: label %q is not a plain identifier", p.EntityLabel)
	}
	params := map[string]any{"min_rank": p.MinRank, "stale": !p.StaleBefore.IsZero(), "before": p.StaleBefore.UTC()}
	// Sorting on the datetime alone would put never-enriched nodes last (nulls sort last in
	// ascending order); they are the stalest of all, so they go first.
	const filter = "WITH n, CASE toLower(toString(n.priority)) WHEN 'high' THEN 3 WHEN 'low' THEN 1 ELSE 2 END AS rank " +
		"WHERE n.id IS NOT NULL AND rank >= $min_rank AND (NOT $stale OR n.enriched_at IS NULL OR n.enriched_at < $before) "
	out := &Selection{Matching: map[string]int{}}
	for _, l := range p.Labels {
		if !labelRE.MatchString(l.Label) {
			return nil, fmt.Errorf("graph: label %q is not a plain identifier", l.Label)
		}
		match := fmt.Sprintf("MATCH (n:%s:%s) ", q(p.EntityLabel), q(l.Label))
		res, err := neo4j.ExecuteQuery(ctx, d, match+filter+"RETURN count(n) AS c", params,
			neo4j.EagerResultTransformer, neo4j.ExecuteQueryWithDatabase(database), neo4j.ExecuteQueryWithReadersRouting())
		if err != nil {
			return nil, fmt.Errorf("count %s nodes: %w", l.Label, err)
		}
		c, _ := res.Records[0].Values[0].(int64)
		out.Matching[l.Label] = int(c)
		if c == 0 || l.Limit <= 0 {
			continue
		}
		lp := map[string]any{"limit": l.Limit}
		for k, v := range params {
			lp[k] = v
		}
		res, err = neo4j.ExecuteQuery(ctx, d, match+filter+
			"RETURN n.id AS id, n.name AS name, n.entity_type AS type, rank, n.enriched_at AS at, properties(n) AS props "+
			"ORDER BY rank DESC, n.enriched_at IS NULL DESC, n.enriched_at ASC, n.id ASC LIMIT $limit", lp,
			neo4j.EagerResultTransformer, neo4j.ExecuteQueryWithDatabase(database), neo4j.ExecuteQueryWithReadersRouting())
		if err != nil {
			return nil, fmt.Errorf("select %s nodes: %w", l.Label, err)
		}
		for _, r := range res.Records {
			c := Candidate{ID: text(r.Values[0]), Name: text(r.Values[1]), EntityType: l.Types[0], Attributes: map[string]string{}}
			if t := text(r.Values[2]); slices.Contains(l.Types, t) {
				c.EntityType = t
			}
			c.Name = cmp.Or(c.Name, c.ID)
			rank, _ := r.Values[3].(int64)
			c.Rank = int(rank)
			c.EnrichedAt = asTime(r.Values[4])
			props, _ := r.Values[5].(map[string]any)
			for k, v := range props {
				if selectSkip[k] {
					continue
				}
				if s, ok := scalar(v); ok {
					c.Attributes[k] = s
				}
			}
			out.Candidates = append(out.Candidates, c)
		}
	}
	slices.SortStableFunc(out.Candidates, func(a, b Candidate) int {
		if a.Rank != b.Rank {
			return b.Rank - a.Rank
		}
		if a.EnrichedAt.IsZero() != b.EnrichedAt.IsZero() {
			if a.EnrichedAt.IsZero() {
				return -1
			}
			return 1
		}
		return cmp.Or(a.EnrichedAt.Compare(b.EnrichedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// text is a property as a string: ids and names loaded by other tools may be numbers.
func text(v any) string {
	s, _ := scalar(v)
	return s
}

// scalar renders a property value an entity attribute can hold; lists and maps are left out.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int64:
		return strconv.FormatInt(x, 10), true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), true
	case dbtype.Date:
		return x.Time().Format(time.DateOnly), true
	case dbtype.LocalDateTime:
		return x.Time().Format("2006-01-02T15:04:05.999999999"), true
	}
	return "", false
}

// asTime reads enriched_at: a datetime as consolidation writes it; anything else counts as never.
func asTime(v any) time.Time {
	switch x := v.(type) {
	case time.Time:
		return x.UTC()
	case dbtype.LocalDateTime:
		return x.Time().UTC()
	}
	return time.Time{}
}
