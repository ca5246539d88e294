package coordinator

import (
	"cmp"
	"context"
	"net/url"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sportsintel/enrich/coordinator/config"
	"github.com/sportsintel/enrich/coordinator/graph"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// maxStaleAfter refuses staleness windows that can only be typing mistakes (ten years).
const maxStaleAfter = 10 * 366 * 24 * time.Hour

// neo4jSelection is what PrepareBatch takes from the knowledge graph.
type neo4jSelection struct {
	entities []*enrichv1.Entity
	// notRead counts matching entities per instance type that were not read at all because
	// their label already filled the instance type's capacity; they are left out as well.
	notRead map[string]int32
	source  string
}

// selectFromNeo4j reads a PrepareBatch's entities from the configured Neo4j. The selection runs
// here, not in enrichctl, because the coordinator holds the labels map and the credentials: the
// request names entity types, the labels come from neo4j.labels, every value is a parameter.
func (s *Server) selectFromNeo4j(ctx context.Context, src *enrichv1.Neo4JSource, capacity map[string]int, size int) (*neo4jSelection, error) {
	n := s.cfg.Neo4j
	if !n.Enabled() {
		return nil, status.Error(codes.FailedPrecondition,
			"prepare from neo4j: the coordinator has no knowledge graph (set neo4j.uri or NEO4J_URI)")
	}
	types := src.GetEntityTypes()
	if len(types) == 0 {
		for _, t := range s.cfg.KnownEntityTypes() {
			if _, ok := n.LabelFor(t); ok {
				types = append(types, t)
			}
		}
	}
	var bad problems
	byLabel := map[string]*graph.SelectLabel{}
	instanceOf := map[string]string{}
	var labels, selected []string
	for _, raw := range types {
		t := strings.TrimSpace(raw)
		inst, ok := s.cfg.InstanceForEntityType(t)
		if !ok {
			bad.add(0, "unknown entity type %q (known: %s)", t, strings.Join(s.cfg.KnownEntityTypes(), ", "))
			continue
		}
		label, ok := n.LabelFor(t)
		if !ok {
			bad.add(0, "entity type %q has no label in neo4j.labels", t)
			continue
		}
		limit := capacity[inst]
		if size > 0 {
			limit = min(limit, size)
		}
		sl, seen := byLabel[label]
		if !seen {
			sl = &graph.SelectLabel{Label: label, Limit: limit}
			byLabel[label] = sl
			labels = append(labels, label)
			instanceOf[label] = inst
		} else if instanceOf[label] != inst {
			// One label standing for types of two instance types: read enough for both.
			sl.Limit = max(sl.Limit, limit)
		}
		if !slices.Contains(sl.Types, t) {
			sl.Types = append(sl.Types, t)
			selected = append(selected, t)
		}
	}
	if err := bad.err(); err != nil {
		return nil, err
	}
	p := graph.SelectParams{EntityLabel: n.EntityLabel}
	for _, l := range labels {
		p.Labels = append(p.Labels, *byLabel[l])
	}
	var desc []string
	desc = append(desc, strings.Join(selected, ","))
	switch src.GetMinPriority() {
	case enrichv1.Priority_PRIORITY_HIGH:
		p.MinRank = graph.RankHigh
		desc = append(desc, "priority>=high")
	case enrichv1.Priority_PRIORITY_NORMAL:
		p.MinRank = graph.RankNormal
		desc = append(desc, "priority>=normal")
	}
	if d := src.GetStaleAfter(); d != nil {
		age := d.AsDuration()
		if !d.IsValid() || age <= 0 || age > maxStaleAfter {
			return nil, status.Errorf(codes.InvalidArgument, "stale_after must be between 1s and %s, got %s", maxStaleAfter, age)
		}
		p.StaleBefore = s.now().Add(-age)
		desc = append(desc, "stale-after="+age.String())
	}

	drv, err := graph.Open(graph.Conn{URI: n.URI, User: n.User, Password: n.Password, Database: n.Database})
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "prepare from neo4j: %v", err)
	}
	defer drv.Close(context.WithoutCancel(ctx))
	sel, err := graph.Select(ctx, drv, n.Database, p)
	if err != nil {
		code := codes.Internal
		if graph.Retryable(err) {
			code = codes.Unavailable
		}
		return nil, status.Errorf(code, "prepare from neo4j at %s: %v", graph.Conn{URI: n.URI}.Redacted(), err)
	}
	out := &neo4jSelection{notRead: map[string]int32{}, source: "neo4j:" + strings.Join(desc, " ")}
	read := map[string]int{}
	for _, c := range sel.Candidates {
		label, _ := n.LabelFor(c.EntityType)
		read[label]++
		out.entities = append(out.entities, &enrichv1.Entity{Id: c.ID, Type: c.EntityType, Name: c.Name,
			Priority: rankPriority[c.Rank], Attributes: c.Attributes})
	}
	for _, l := range labels {
		if extra := sel.Matching[l] - read[l]; extra > 0 {
			out.notRead[instanceOf[l]] += int32(extra)
		}
	}
	s.log.Named("control").Info("entities selected from neo4j", "selection", out.source,
		"selected", len(out.entities), "matching", sel.Matching)
	return out, nil
}

var rankPriority = map[int]enrichv1.Priority{graph.RankHigh: enrichv1.Priority_PRIORITY_HIGH,
	graph.RankNormal: enrichv1.Priority_PRIORITY_NORMAL, graph.RankLow: enrichv1.Priority_PRIORITY_LOW}

// empty is the answer when nothing matched: not bad input, and not a batch worth creating.
func (sel *neo4jSelection) empty() error {
	return status.Errorf(codes.FailedPrecondition, "nothing to enrich: no entity node matches %s", sel.source)
}

// neo4jTarget checks an operator's one-off graph server (ConsolidateBatch). The URI must not
// carry credentials: they would travel into driver errors, and from there into reports.
func neo4jTarget(t *enrichv1.Neo4JTarget) (*graph.Conn, error) {
	if t == nil {
		return nil, nil
	}
	// Parse first, and echo nothing of a URI that may hold a password.
	u, err := url.Parse(t.GetUri())
	switch {
	case err != nil:
		return nil, status.Error(codes.InvalidArgument, "neo4j uri: not a URL")
	case u.User != nil:
		return nil, status.Error(codes.InvalidArgument, "neo4j uri: leave the credentials out of the uri and send them as user and password")
	}
	if err := config.CheckNeo4jURI(t.GetUri()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "neo4j uri: %v", err)
	}
	return &graph.Conn{URI: t.GetUri(), User: cmp.Or(t.GetUser(), config.DefaultNeo4jUser), Password: t.GetPassword(),
		Database: t.GetDatabase()}, nil
}
