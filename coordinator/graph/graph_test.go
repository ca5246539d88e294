package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/internal/neo4jtest"
)

type testBundle struct {
	conn   Conn
	driver neo4j.DriverWithContext
	ns     string
	opts   Options
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	c := neo4jtest.Require(t)
	conn := Conn{URI: c.URI, User: c.User, Password: c.Password}
	d, err := Open(conn)
	require.NoError(t, err)
	t.Cleanup(func() { d.Close(context.Background()) })
	ns := neo4jtest.Namespace(t)
	return &testBundle{conn: conn, driver: d, ns: ns, opts: nsOptions(ns)}
}

// nsOptions maps the built-in entity types onto labels under the test's namespace.
func nsOptions(ns string) Options {
	labels := map[string]string{}
	for _, t := range []string{"Club", "Person", "League", "Venue"} {
		labels[t] = ns + t
	}
	return Options{EntityLabel: ns + "Entity", SourceLabel: ns + "Source", UnverifiedLabel: ns + "Unverified",
		Labels: labels, RelationshipTypes: []string{"WORKS_FOR", "COMPETES_IN", "PLAYS_AT"},
		MissingTarget: MissingTargetStub, BatchSize: 2}
}

func (b *testBundle) sink() *Sink {
	return &Sink{Driver: b.driver, Opts: b.opts, RetryTimeout: 20 * time.Second}
}

// Names an attacker or an unlucky scrape could produce: quotes, backticks, Cypher, unicode.
var hostile = []string{
	`Robert'); MATCH (n) DETACH DELETE n; //`,
	"Back`tick`} Club) RETURN 1 //",
	`Ünïcødé ⚽ 北京 Ω ‮rtl`,
	"line\nbreak \"double\" \\ backslash \t tab $rows {param}",
}

func dossierJSON(t *testing.T, id, typ, name string, rels []map[string]any, sources []map[string]any) []byte {
	t.Helper()
	d := map[string]any{"entity_id": id, "entity_type": typ, "name": name, "mode": "research",
		"summary": "Summary of " + name, "confidence": 0.75, "generated_at": "2025-01-10T09:45:00Z",
		"key_facts":     []map[string]any{{"label": "Founded", "value": "1900"}, {"label": "Motto", "value": name}},
		"relationships": rels, "sources": sources}
	b, err := json.Marshal(d)
	require.NoError(t, err)
	return b
}

// sampleEntries: a club and a person (hostile names) linked to each other, a league the club
// competes in that is not in the batch, a venue named only by name, and a forbidden type.
func sampleEntries(t *testing.T) []Entry {
	src := []map[string]any{{"url": "https://example.org/a?q='x'", "title": hostile[0], "retrieved_at": "2025-01-10T09:30:00Z"}}
	return []Entry{
		{EntityID: "club-" + hostile[0], EntityType: "Club", Name: hostile[0], InstanceType: "entities", DossierPath: "entities/club.json",
			Dossier: dossierJSON(t, "club-"+hostile[0], "Club", hostile[0], []map[string]any{
				{"type": "COMPETES_IN", "target_id": "league-missing", "target_name": hostile[2], "confidence": 0.9},
				{"type": "PLAYS_AT", "target_name": "Grand Arena"},
				{"type": "DETACH_DELETE", "target_id": "x"},
			}, src)},
		{EntityID: "person-" + hostile[1], EntityType: "Person", Name: hostile[1], InstanceType: "persons", DossierPath: "persons/p.json",
			Dossier: dossierJSON(t, "person-"+hostile[1], "Person", hostile[1], []map[string]any{
				{"type": "WORKS_FOR", "target_id": "club-" + hostile[0], "target_name": hostile[0], "source_url": "https://example.org/a?q='x'"},
			}, src)},
		{EntityID: "venue-" + hostile[3], EntityType: "Venue", Name: hostile[3], InstanceType: "entities", DossierPath: "entities/v.json",
			Dossier: dossierJSON(t, "venue-"+hostile[3], "Venue", hostile[3], nil, nil)},
	}
}

func (b *testBundle) count(t *testing.T, query string, params map[string]any) int64 {
	t.Helper()
	res, err := neo4j.ExecuteQuery(context.Background(), b.driver, query, params, neo4j.EagerResultTransformer)
	require.NoError(t, err)
	require.Len(t, res.Records, 1)
	return res.Records[0].Values[0].(int64)
}

func TestWriteIsIdempotentAndStoresHostileNamesVerbatim(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	plan, err := Build(b.opts, "batch-1", sampleEntries(t), time.Now())
	require.NoError(t, err)
	require.Len(t, plan.Skipped, 1, "the unconfigured type is left out")
	require.Equal(t, "DETACH_DELETE", plan.Skipped[0].Type)

	rep, err := b.sink().Write(ctx, plan)
	require.NoError(t, err)
	require.True(t, rep.Validation.OK, "%v", rep.Validation.Problems)
	// 3 entities + 2 stubs (league-missing, name:grand arena) + 1 source.
	require.Equal(t, 6, rep.Counters.NodesCreated)
	// COMPETES_IN, PLAYS_AT, WORKS_FOR, and SUPPORTS from the source to both citing entities.
	require.Equal(t, 5, rep.Counters.RelationshipsCreated)
	require.Equal(t, 3, rep.Validation.NodesFound)
	require.Equal(t, 3, rep.Validation.RelsFound)
	stubs := map[string]string{}
	for _, u := range rep.Unverified {
		stubs[u.ID] = u.Action
	}
	require.Equal(t, map[string]string{"league-missing": "stub", "name:grand arena": "stub"}, stubs)

	again, err := b.sink().Write(ctx, plan)
	require.NoError(t, err)
	require.True(t, again.Counters.Zero(), "second write changed the graph: %+v", again.Counters)
	require.True(t, again.Validation.OK, "%v", again.Validation.Problems)
	require.Len(t, again.Unverified, 2, "stubs stay listed until their entity is enriched")

	// Verbatim: each hostile name reads back byte for byte, and the rest of the database is intact.
	for i, e := range sampleEntries(t) {
		res, err := neo4j.ExecuteQuery(ctx, b.driver, fmt.Sprintf("MATCH (n:`%s` {id: $id}) RETURN n.name, labels(n)", b.opts.EntityLabel),
			map[string]any{"id": e.EntityID}, neo4j.EagerResultTransformer)
		require.NoError(t, err)
		require.Len(t, res.Records, 1, "entity %d", i)
		require.Equal(t, e.Name, res.Records[0].Values[0])
		require.ElementsMatch(t, []any{b.opts.EntityLabel, b.opts.Labels[e.EntityType]}, res.Records[0].Values[1])
	}
	require.EqualValues(t, 2, b.count(t, fmt.Sprintf("MATCH (n:`%s`) RETURN count(n)", b.opts.UnverifiedLabel), nil))
	require.EqualValues(t, hostile[2], b.scalar(t, fmt.Sprintf("MATCH (n:`%s` {id: 'league-missing'}) RETURN n.name", b.opts.EntityLabel)))
}

func (b *testBundle) scalar(t *testing.T, query string) any {
	t.Helper()
	res, err := neo4j.ExecuteQuery(context.Background(), b.driver, query, nil, neo4j.EagerResultTransformer)
	require.NoError(t, err)
	require.Len(t, res.Records, 1)
	return res.Records[0].Values[0]
}

func TestEnrichingAStubRemovesItsUnverifiedLabel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	plan, err := Build(b.opts, "batch-1", sampleEntries(t)[:1], time.Now())
	require.NoError(t, err)
	_, err = b.sink().Write(ctx, plan)
	require.NoError(t, err)
	league := Entry{EntityID: "league-missing", EntityType: "League", Name: "The League", InstanceType: "leagues",
		Dossier: dossierJSON(t, "league-missing", "League", "The League", nil, nil)}
	plan2, err := Build(b.opts, "batch-2", []Entry{league}, time.Now())
	require.NoError(t, err)
	rep, err := b.sink().Write(ctx, plan2)
	require.NoError(t, err)
	require.Zero(t, rep.Counters.NodesCreated, "the stub becomes the entity, no second node")
	require.Equal(t, 1, rep.Counters.LabelsRemoved)
	require.EqualValues(t, "The League", b.scalar(t, fmt.Sprintf("MATCH (n:`%s` {id: 'league-missing'}) RETURN n.name", b.opts.EntityLabel)))
}

func TestMissingTargetReportLeavesRelationshipOut(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.opts.MissingTarget = MissingTargetReport
	plan, err := Build(b.opts, "batch-1", sampleEntries(t), time.Now())
	require.NoError(t, err)
	rep, err := b.sink().Write(context.Background(), plan)
	require.NoError(t, err)
	require.True(t, rep.Validation.OK, "%v", rep.Validation.Problems)
	require.Equal(t, 1, rep.Rels, "only WORKS_FOR, between two entities of the batch")
	require.Equal(t, 4, rep.Counters.NodesCreated, "3 entities and the source, no stub")
	var reported []string
	for _, u := range rep.Unverified {
		require.Equal(t, "reported", u.Action)
		reported = append(reported, u.ID)
	}
	require.ElementsMatch(t, []string{"league-missing", "name:grand arena"}, reported)
	require.Zero(t, b.count(t, fmt.Sprintf("MATCH (n:`%s`) RETURN count(n)", b.opts.UnverifiedLabel), nil))
}

func TestValidationFindsADuplicateRelationship(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	plan, err := Build(b.opts, "batch-1", sampleEntries(t), time.Now())
	require.NoError(t, err)
	_, err = b.sink().Write(ctx, plan)
	require.NoError(t, err)
	// Someone else adds a second WORKS_FOR between the same two entities.
	_, err = neo4j.ExecuteQuery(ctx, b.driver, fmt.Sprintf("MATCH (a:`%[1]s` {id: $a}), (c:`%[1]s` {id: $c}) CREATE (a)-[:WORKS_FOR]->(c)", b.opts.EntityLabel),
		map[string]any{"a": "person-" + hostile[1], "c": "club-" + hostile[0]}, neo4j.EagerResultTransformer)
	require.NoError(t, err)
	rep, err := b.sink().Write(ctx, plan)
	require.NoError(t, err)
	require.False(t, rep.Validation.OK)
	require.Len(t, rep.Validation.Problems, 1)
	require.Contains(t, rep.Validation.Problems[0], "found 2 times")
}

// dump reads every node and relationship under a namespace, with the namespace taken out of the
// labels, so two namespaces holding the same graph dump equal.
func (b *testBundle) dump(t *testing.T, opts Options, ns string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	q := fmt.Sprintf("MATCH (n) WHERE n:`%s` OR n:`%s` RETURN labels(n), properties(n)", opts.EntityLabel, opts.SourceLabel)
	res, err := neo4j.ExecuteQuery(ctx, b.driver, q, nil, neo4j.EagerResultTransformer)
	require.NoError(t, err)
	for _, r := range res.Records {
		var labels []string
		for _, l := range r.Values[0].([]any) {
			labels = append(labels, strings.TrimPrefix(l.(string), ns))
		}
		slices.Sort(labels)
		props, err := json.Marshal(r.Values[1])
		require.NoError(t, err)
		out = append(out, fmt.Sprintf("node %v %s", labels, props))
	}
	q = fmt.Sprintf("MATCH (a)-[r]->(c) WHERE a:`%s` OR a:`%s` RETURN coalesce(a.id, a.url), type(r), c.id, properties(r)", opts.EntityLabel, opts.SourceLabel)
	res, err = neo4j.ExecuteQuery(ctx, b.driver, q, nil, neo4j.EagerResultTransformer)
	require.NoError(t, err)
	for _, r := range res.Records {
		props, err := json.Marshal(r.Values[3])
		require.NoError(t, err)
		out = append(out, fmt.Sprintf("rel %v -%v-> %v %s", r.Values[0], r.Values[1], r.Values[2], props))
	}
	slices.Sort(out)
	return out
}

func TestCypherFileLoadsTheSameGraphAsTheDriver(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	entries := sampleEntries(t)

	viaDriver, err := Build(b.opts, "batch-1", entries, time.Now())
	require.NoError(t, err)
	_, err = b.sink().Write(ctx, viaDriver)
	require.NoError(t, err)

	nsFile := neo4jtest.Namespace(t)
	fileOpts := nsOptions(nsFile)
	viaFile, err := Build(fileOpts, "batch-1", entries, time.Now())
	require.NoError(t, err)
	dir := t.TempDir()
	rep, err := WriteFiles(dir, fileOpts, viaFile)
	require.NoError(t, err)
	require.Len(t, rep.Unverified, 2)
	cypher, err := os.ReadFile(dir + "/" + CypherFile)
	require.NoError(t, err)
	// Names with a quote, backslash or newline can only appear escaped.
	for _, h := range []string{hostile[0], hostile[3]} {
		require.NotContains(t, string(cypher), h)
	}
	// cypher-shell runs statements separated by ";" at the end of a line; so does this loop.
	n := 0
	for _, st := range strings.Split(string(cypher), ";\n") {
		if st = strings.TrimSpace(stripComments(st)); st == "" {
			continue
		}
		_, err := neo4j.ExecuteQuery(ctx, b.driver, st, nil, neo4j.EagerResultTransformer)
		require.NoError(t, err, "statement %d:\n%s", n, st)
		n++
	}
	require.Greater(t, n, 5)
	require.Equal(t, b.dump(t, b.opts, b.ns), b.dump(t, fileOpts, nsFile))

	nodes, err := os.ReadFile(dir + "/" + NodesFile)
	require.NoError(t, err)
	require.Equal(t, 4, strings.Count(string(nodes), "\n"), "3 entities and 1 source")
	rels, err := os.ReadFile(dir + "/" + RelationshipsFile)
	require.NoError(t, err)
	require.Equal(t, 5, strings.Count(string(rels), "\n"), "3 relationships and 2 SUPPORTS")
}

func stripComments(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "//") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func TestLiteralEscapesEverythingThatCouldEndAString(t *testing.T) {
	t.Parallel()
	s, err := literal("a'b\"c\\d\ne\u2028`")
	require.NoError(t, err)
	require.Equal(t, `'a\'b\"c\\d\u000Ae\u2028`+"`"+`'`, s)
	f, err := literal(1.0)
	require.NoError(t, err)
	require.Equal(t, "1.0", f)
}

func TestOptionsRefuseNamesThatAreNotIdentifiers(t *testing.T) {
	t.Parallel()
	o := nsOptions("T")
	o.Labels["Club"] = "Club` DETACH DELETE n //"
	_, err := Build(o, "b", nil, time.Now())
	require.Error(t, err)
	o = nsOptions("T")
	o.RelationshipTypes = append(o.RelationshipTypes, "SUPPORTS")
	_, err = Build(o, "b", nil, time.Now())
	require.Error(t, err)
}
