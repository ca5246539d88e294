package graph

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/sportsintel/enrich/coordinator/config"
	"github.com/sportsintel/enrich/internal/neo4jtest"
)

// The benchmark's size and batch size are flags of the test binary so a profile of another shape
// needs no edit: go test -run '^$' -bench Graph ./coordinator/graph -args -graph.batch 2000
var (
	benchDossiers  = flag.Int("graph.dossiers", 10000, "dossiers consolidated by BenchmarkGraph")
	benchBatchSize = flag.Int("graph.batch", config.DefaultNeo4jBatchSize, "batch_size of the batched writer in BenchmarkGraph")
)

// benchRelsPerDossier is what the issue asks for: about three relationships per dossier.
const benchRelsPerDossier = 3

// benchRun is what one consolidation measured: the server's own counters, and the time from the
// first statement to the commit of the last write (validation, batched only, is timed apart).
type benchRun struct {
	counters     Counters
	transactions int
	write        time.Duration
	validate     time.Duration
}

func (r benchRun) nodesPerSec() float64 { return float64(r.counters.NodesCreated) / r.write.Seconds() }
func (r benchRun) relsPerSec() float64 {
	return float64(r.counters.RelationshipsCreated) / r.write.Seconds()
}

// BenchmarkGraph consolidates one batch of dossiers into the real Neo4j twice, each time under
// fresh labels: through the sink (UNWIND batches in managed transactions) and through a writer
// that sends one transaction per dossier. Both run the same Cypher with the same constraints and
// hash guards, and must create the same nodes and relationships; the difference is only how many
// rows travel per statement and per commit. After both it prints a table with the ratio.
//
// It needs NEO4J_URI like every Neo4j test and runs only with -bench (make bench-graph).
func BenchmarkGraph(b *testing.B) {
	c := neo4jtest.Require(b)
	d, err := Open(Conn{URI: c.URI, User: c.User, Password: c.Password})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close(context.Background()) })
	entries := benchEntries(b, *benchDossiers)
	// The server's JVM compiles its hot paths during the first statements after a start; a short
	// untimed pass through both writers keeps that cost out of whichever writer would run first.
	for _, w := range []benchWriter{writeBatched, writePerEntity} {
		if err := benchOnce(b, d, benchEntries(b, 200), w); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	}

	var batched, perEntity *benchRun
	b.Run("batched", func(b *testing.B) {
		r := benchLoop(b, d, entries, writeBatched)
		batched = &r
	})
	b.Run("per-entity", func(b *testing.B) {
		r := benchLoop(b, d, entries, writePerEntity)
		perEntity = &r
	})
	printBenchTable(len(entries), batched, perEntity)
}

type benchWriter func(ctx context.Context, d neo4j.DriverWithContext, o Options, p *Plan) (benchRun, error)

// benchLoop runs write b.N times, each under a namespace of its own that it removes afterwards,
// and reports the rates over all iterations. Planning, schema creation and clean-up are not timed.
func benchLoop(b *testing.B, d neo4j.DriverWithContext, entries []Entry, write benchWriter) benchRun {
	ctx := context.Background()
	var total benchRun
	b.StopTimer()
	for range b.N {
		o := nsOptions(neo4jtest.Namespace(b))
		o.BatchSize = *benchBatchSize
		b.Cleanup(func() {
			if err := dropNamespace(context.Background(), d, o); err != nil {
				b.Errorf("clean up %s: %v", o.EntityLabel, err)
			}
		})
		plan, err := Build(o, "bench-batch", entries, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		// Constraints first for both writers: without the id index every MERGE is a label scan,
		// and creating it is a one-off cost of a new database, not of a batch.
		if err := (&Sink{Driver: d, Opts: o}).EnsureSchema(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		r, err := write(ctx, d, o, plan)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		// Both writers must have done the whole job: one node per entity, stub and source, one
		// relationship per planned relationship and citation.
		wantNodes := len(plan.Nodes) + len(plan.ExternalTargets()) + len(plan.Sources)
		wantRels := len(plan.Rels) + len(plan.Supports)
		if r.counters.NodesCreated != wantNodes || r.counters.RelationshipsCreated != wantRels {
			b.Fatalf("created %d nodes and %d relationships, want %d and %d",
				r.counters.NodesCreated, r.counters.RelationshipsCreated, wantNodes, wantRels)
		}
		if err := dropNamespace(ctx, d, o); err != nil {
			b.Fatalf("clean up %s: %v", o.EntityLabel, err)
		}
		total.counters.add(r.counters)
		total.transactions += r.transactions
		total.write += r.write
		total.validate += r.validate
	}
	b.ReportMetric(total.nodesPerSec(), "nodes/s")
	b.ReportMetric(total.relsPerSec(), "rels/s")
	b.ReportMetric(float64(total.transactions)/float64(b.N), "tx/op")
	return total
}

// writeBatched is the production path: Sink.Write, which also looks up external targets and
// validates the result. The write phase ends at the commit of the last chunk; the read-back after
// it is reported as validation.
func writeBatched(ctx context.Context, d neo4j.DriverWithContext, o Options, p *Plan) (benchRun, error) {
	var wrote time.Time
	s := &Sink{Driver: d, Opts: o, OnChunk: func(done, total int) {
		if done == total {
			wrote = time.Now()
		}
	}}
	start := time.Now()
	rep, err := s.Write(ctx, p)
	end := time.Now()
	if err != nil {
		return benchRun{}, err
	}
	if !rep.Validation.OK {
		return benchRun{}, fmt.Errorf("validation: %v", rep.Validation.Problems)
	}
	return benchRun{counters: rep.Counters, transactions: rep.Transactions, write: wrote.Sub(start), validate: end.Sub(wrote)}, nil
}

// writePerEntity is the baseline, and exists only here: a writer without UNWIND batching sends
// one managed write transaction per dossier with that entity's node, its sources, its citations
// and its relationships, each statement carrying that dossier's rows only. The statements are the
// sink's own (writeStatements on a one-dossier plan), so the two writers differ in batching alone.
// One session serves every transaction, as a careful writer would do.
func writePerEntity(ctx context.Context, d neo4j.DriverWithContext, o Options, p *Plan) (benchRun, error) {
	rels := map[string][]Rel{}
	for _, r := range p.Rels {
		rels[r.From] = append(rels[r.From], r)
	}
	sources := map[string]Source{}
	for _, s := range p.Sources {
		sources[s.URL] = s
	}
	supports := map[string][]Support{}
	for _, s := range p.Supports {
		supports[s.EntityID] = append(supports[s.EntityID], s)
	}
	sess := d.NewSession(ctx, neo4j.SessionConfig{AccessMode: neo4j.AccessModeWrite})
	defer sess.Close(ctx)

	var run benchRun
	start := time.Now()
	for _, n := range p.Nodes {
		one := &Plan{BatchID: p.BatchID, Nodes: []Node{n}, Rels: rels[n.ID], Supports: supports[n.ID]}
		for _, s := range one.Supports {
			one.Sources = append(one.Sources, sources[s.URL])
		}
		stmts := o.writeStatements(one, one.Rels)
		out, err := sess.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
			var c Counters
			for _, st := range stmts {
				res, err := tx.Run(ctx, st.text, map[string]any{"rows": st.rows})
				if err != nil {
					return nil, err
				}
				sum, err := res.Consume(ctx)
				if err != nil {
					return nil, err
				}
				sc := sum.Counters()
				c.add(Counters{NodesCreated: sc.NodesCreated(), RelationshipsCreated: sc.RelationshipsCreated(),
					PropertiesSet: sc.PropertiesSet(), LabelsAdded: sc.LabelsAdded(), LabelsRemoved: sc.LabelsRemoved()})
			}
			return c, nil
		})
		if err != nil {
			return run, fmt.Errorf("write %q: %w", n.ID, err)
		}
		run.counters.add(out.(Counters))
		run.transactions++
	}
	run.write = time.Since(start)
	return run, nil
}

// benchOnce writes entries once under a namespace of its own and removes it.
func benchOnce(b *testing.B, d neo4j.DriverWithContext, entries []Entry, write benchWriter) error {
	ctx := context.Background()
	o := nsOptions(neo4jtest.Namespace(b))
	o.BatchSize = *benchBatchSize
	plan, err := Build(o, "bench-warm-up", entries, time.Now())
	if err != nil {
		return err
	}
	if err = (&Sink{Driver: d, Opts: o}).EnsureSchema(ctx); err == nil {
		_, err = write(ctx, d, o, plan)
	}
	return errors.Join(err, dropNamespace(ctx, d, o))
}

// benchEntries makes n dossiers of four entity types with benchRelsPerDossier relationships each
// and one cited source. Most targets are entities of the batch, some are named only by name (the
// sink resolves them), about one in fifty is outside the batch (a stub); sources are shared by
// about four dossiers each. A fixed seed keeps runs comparable.
func benchEntries(b *testing.B, n int) []Entry {
	rng := rand.New(rand.NewPCG(5, 2025))
	types := []string{"Person", "Person", "Club", "League", "Venue"}
	relTypes := []string{"WORKS_FOR", "COMPETES_IN", "PLAYS_AT"}
	id := func(i int) string { return fmt.Sprintf("bench-%06d", i) }
	name := func(i int) string { return fmt.Sprintf("Bench Entity %d", i) }
	entries := make([]Entry, 0, n)
	for i := range n {
		var rels []map[string]any
		for k := range benchRelsPerDossier {
			t := rng.IntN(n)
			if t == i {
				t = (t + 1) % n
			}
			r := map[string]any{"type": relTypes[k], "confidence": 0.5 + rng.Float64()/2}
			switch x := rng.IntN(50); {
			case x == 0:
				r["target_id"] = fmt.Sprintf("outside-%06d", rng.IntN(n))
			case x < 5:
				r["target_name"] = name(t)
			default:
				r["target_id"], r["target_name"] = id(t), name(t)
			}
			rels = append(rels, r)
		}
		typ := types[i%len(types)]
		d := map[string]any{"entity_id": id(i), "entity_type": typ, "name": name(i), "mode": "research",
			"summary":    fmt.Sprintf("Summary of %s, long enough to look like one: founded, based, known for.", name(i)),
			"confidence": 0.8, "generated_at": "2025-01-10T09:45:00Z",
			"key_facts": []map[string]any{{"label": "Founded", "value": fmt.Sprint(1850 + i%170)},
				{"label": "Country", "value": "England"}, {"label": "Index", "value": fmt.Sprint(i)}},
			"relationships": rels,
			"sources": []map[string]any{{"url": fmt.Sprintf("https://example.org/bench/%d", rng.IntN(n/4+1)),
				"title": "Bench source", "publisher": "Example", "retrieved_at": "2025-01-10T09:30:00Z"}}}
		raw, err := json.Marshal(d)
		if err != nil {
			b.Fatal(err)
		}
		entries = append(entries, Entry{EntityID: id(i), EntityType: typ, Name: name(i), InstanceType: "entities",
			DossierPath: "entities/" + id(i) + ".json", Dossier: raw})
	}
	return entries
}

// dropNamespace deletes every node the benchmark wrote under o's labels (stubs carry the entity
// label) and the constraints it created. Deleting runs in auto-commit transactions of bounded size
// so a large graph does not need one huge transaction.
func dropNamespace(ctx context.Context, d neo4j.DriverWithContext, o Options) error {
	sess := d.NewSession(ctx, neo4j.SessionConfig{AccessMode: neo4j.AccessModeWrite})
	defer sess.Close(ctx)
	var stmts []string
	for _, l := range []string{o.EntityLabel, o.SourceLabel} {
		stmts = append(stmts, fmt.Sprintf("MATCH (n:%s) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 5000 ROWS", q(l)))
	}
	stmts = append(stmts, fmt.Sprintf("DROP CONSTRAINT %s IF EXISTS", q("enrich_"+o.EntityLabel+"_id")),
		fmt.Sprintf("DROP CONSTRAINT %s IF EXISTS", q("enrich_"+o.SourceLabel+"_url")))
	for _, st := range stmts {
		res, err := sess.Run(ctx, st, nil)
		if err == nil {
			_, err = res.Consume(ctx)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
	}
	return nil
}

// printBenchTable prints what one BenchmarkGraph run measured, a row per writer that ran, and
// the batched writer's speed-up when both did.
func printBenchTable(dossiers int, batched, perEntity *benchRun) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "writer\tdossiers\tnodes\trelationships\ttransactions\twrite\tnodes/s\trels/s\tvalidation\t")
	row := func(name string, r *benchRun) {
		if r == nil {
			return
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%.0f\t%.0f\t%s\t\n", name, dossiers, r.counters.NodesCreated,
			r.counters.RelationshipsCreated, r.transactions, r.write.Round(time.Millisecond), r.nodesPerSec(), r.relsPerSec(),
			r.validate.Round(time.Millisecond))
	}
	row(fmt.Sprintf("batched (%d rows/tx)", *benchBatchSize), batched)
	row("per entity (1 tx/dossier)", perEntity)
	tw.Flush()
	if batched != nil && perEntity != nil {
		fmt.Printf("graph bench: batched %.1fx the per-entity writer (write phase; %.1fx with the batched validation)\n",
			perEntity.write.Seconds()/batched.write.Seconds(), perEntity.write.Seconds()/(batched.write+batched.validate).Seconds())
	}
}
