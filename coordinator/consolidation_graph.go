package coordinator

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/sportsintel/enrich/coordinator/consolidate"
	"github.com/sportsintel/enrich/coordinator/graph"
)

// graphOptions are the graph names and limits from the configuration's neo4j block.
func (s *Server) graphOptions() graph.Options {
	n := s.cfg.Neo4j
	return graph.Options{EntityLabel: n.EntityLabel, SourceLabel: n.SourceLabel, UnverifiedLabel: n.UnverifiedLabel,
		Labels: n.Labels, RelationshipTypes: n.RelationshipTypes, MissingTarget: n.MissingTarget, BatchSize: n.BatchSize}
}

// writeGraph puts a consolidated batch into the knowledge graph: into Neo4j when neo4j.uri is
// set, otherwise into graph.cypher and JSON Lines files in the batch folder. The outcome becomes
// the report's graph section either way; an error says why the graph is not complete.
func (s *Server) writeGraph(ctx context.Context, log hclog.Logger, id string, sum *consolidate.Summary, target *graph.Conn) error {
	results, err := s.st.Results(ctx, id)
	if err != nil {
		return fmt.Errorf("graph: read results: %w", err)
	}
	files := map[string]string{}
	for _, d := range sum.Report.Dossiers {
		files[d.EntityID] = d.File
	}
	entries := make([]graph.Entry, 0, len(results))
	for _, r := range results {
		entries = append(entries, graph.Entry{EntityID: r.Item.EntityID, EntityType: r.Item.EntityType, Name: r.Item.Name,
			InstanceType: r.Item.InstanceType, DossierPath: files[r.Item.EntityID], Dossier: r.Dossier})
	}
	opts := s.graphOptions()
	plan, err := graph.Build(opts, id, entries, s.now())
	if err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	var rep *graph.Report
	n := s.cfg.Neo4j
	switch {
	case target != nil:
		rep, err = s.writeNeo4j(ctx, log, plan, *target)
	case n.Enabled():
		rep, err = s.writeNeo4j(ctx, log, plan, graph.Conn{URI: n.URI, User: n.User, Password: n.Password, Database: n.Database})
	default:
		rep, err = graph.WriteFiles(sum.Dir, opts, plan)
	}
	if rep != nil {
		if err != nil {
			rep.Error = err.Error()
		}
		sum.Report.Graph = rep
		if werr := consolidate.WriteReport(sum.Dir, sum.Report); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	if !rep.Validation.OK && rep.Validation.Checked {
		log.Warn("graph validation found problems", "problems", len(rep.Validation.Problems))
	}
	log.Info("graph written", "target", rep.Target, "nodes", rep.Nodes, "relationships", rep.Rels,
		"nodes_created", rep.Counters.NodesCreated, "unverified", len(rep.Unverified))
	return nil
}

// writeNeo4j writes the plan into one server. conn's password is used to connect and nothing
// else: reports and logs carry conn.Redacted().
func (s *Server) writeNeo4j(ctx context.Context, log hclog.Logger, plan *graph.Plan, conn graph.Conn) (*graph.Report, error) {
	n := s.cfg.Neo4j
	d, err := graph.Open(conn)
	if err != nil {
		return nil, err
	}
	defer d.Close(context.WithoutCancel(ctx))
	log = log.With("neo4j", conn.Redacted())
	sink := &graph.Sink{Driver: d, Database: conn.Database, Opts: s.graphOptions(), RetryTimeout: n.RetryTimeout.D(),
		Logf: func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) }}
	rep, err := sink.Write(ctx, plan)
	if rep != nil {
		rep.URI = conn.Redacted()
	}
	return rep, err
}
