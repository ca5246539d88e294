package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/stretchr/testify/require"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
	"github.com/sportsintel/enrich/internal/neo4jtest"
)

// graphNS is one test's share of the shared Neo4j: its own labels for every node it writes,
// set in the coordinator's configuration, so parallel tests never see each other's nodes.
type graphNS struct {
	conn   neo4jtest.Conn
	ns     string
	driver neo4j.DriverWithContext
}

// entityTypes are the built-in entity types; each gets a label under the test's namespace.
var entityTypes = []string{"Club", "Organization", "Venue", "Partner", "Person", "DecisionMaker", "Executive",
	"League", "Competition", "GoverningBody"}

// requireGraph is neo4jtest.Require for the e2e package: TestMain took NEO4J_* out of the
// environment, so the saved values are asked first and the policy applies when there are none.
func requireGraph(t *testing.T) *graphNS {
	t.Helper()
	conn := neo4jtest.Conn{URI: neo4jEnv["NEO4J_URI"], User: neo4jEnv["NEO4J_USER"], Password: neo4jEnv["NEO4J_PASSWORD"]}
	if conn.URI == "" {
		conn = neo4jtest.Require(t) // skips or fails, as the policy says
	}
	auth := neo4j.NoAuth()
	if conn.Password != "" {
		auth = neo4j.BasicAuth(conn.User, conn.Password, "")
	}
	d, err := neo4j.NewDriverWithContext(conn.URI, auth)
	require.NoError(t, err)
	t.Cleanup(func() { d.Close(context.Background()) })
	return &graphNS{conn: conn, ns: neo4jtest.Namespace(t), driver: d}
}

// config is the neo4j block putting every label under the namespace.
func (g *graphNS) config(extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "neo4j:\n  entity_label: %sEntity\n  source_label: %sSource\n  unverified_label: %sUnverified\n  labels:\n",
		g.ns, g.ns, g.ns)
	for _, t := range entityTypes {
		fmt.Fprintf(&b, "    %s: %s%s\n", t, g.ns, t)
	}
	return b.String() + extra
}

// env opts a coordinator in to the test server.
func (g *graphNS) env() []string {
	return []string{"NEO4J_URI=" + g.conn.URI, "NEO4J_USER=" + g.conn.User, "NEO4J_PASSWORD=" + g.conn.Password}
}

func (g *graphNS) query(t *testing.T, cypher string, params map[string]any) []*neo4j.Record {
	t.Helper()
	res, err := neo4j.ExecuteQuery(context.Background(), g.driver, strings.ReplaceAll(cypher, "NS", g.ns), params,
		neo4j.EagerResultTransformer)
	require.NoError(t, err, cypher)
	return res.Records
}

func (g *graphNS) count(t *testing.T, cypher string) int64 {
	t.Helper()
	recs := g.query(t, cypher, nil)
	require.Len(t, recs, 1)
	return recs[0].Values[0].(int64)
}

// Names that must land in the graph exactly as given and do nothing else.
var hostileGraphNames = []string{
	`Robert'); MATCH (n) DETACH DELETE n; //`,
	"Back`tick`} Club) RETURN 1 //",
	`Ünïcødé ⚽ "double" \ backslash $rows {param} 北京`,
}

// graphEntities: a league, two clubs competing in it (one also plays at a venue that is not in
// the batch), two persons working for the clubs. The offline runner turns the *_id attributes
// into dossier relationships.
func graphEntities(t *testing.T) string {
	t.Helper()
	lines := []map[string]string{
		{"id": "league-epl", "type": "League", "name": "Premier League"},
		{"id": "club-a", "type": "Club", "name": hostileGraphNames[0], "league_id": "league-epl", "venue_id": "venue-missing", "venue": "Missing Ground"},
		{"id": "club-b", "type": "Club", "name": hostileGraphNames[1], "league_id": "league-epl"},
		{"id": "person-1", "type": "Person", "name": hostileGraphNames[2], "club_id": "club-a"},
		{"id": "person-2", "type": "Person", "name": "Plain Person", "club_id": "club-b"},
	}
	var buf bytes.Buffer
	for _, l := range lines {
		b, err := json.Marshal(l)
		require.NoError(t, err)
		buf.Write(append(b, '\n'))
	}
	path := filepath.Join(t.TempDir(), "graph.jsonl")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	return path
}

// graphReport is the part of report.json these tests read.
type graphReport struct {
	Graph struct {
		Target   string         `json:"target"`
		URI      string         `json:"uri"`
		Nodes    int            `json:"nodes"`
		Rels     int            `json:"relationships"`
		Counters map[string]int `json:"counters"`
		Unverif  []struct {
			ID     string `json:"id"`
			Action string `json:"action"`
		} `json:"unverified_targets"`
		Validation struct {
			Checked  bool     `json:"checked"`
			OK       bool     `json:"ok"`
			Problems []string `json:"problems"`
		} `json:"validation"`
		Error string `json:"error"`
	} `json:"graph"`
}

func readGraphReport(t *testing.T, dir string) graphReport {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	require.NoError(t, err)
	var r graphReport
	require.NoError(t, json.Unmarshal(raw, &r))
	return r
}

func (g *graphNS) runBatch(t *testing.T, c *cluster) (string, string) {
	t.Helper()
	c.agent(g.ns+"-agent", "--slots", "4", "--offline-delay", "5ms-20ms")
	c.waitAgents(1)
	id := batchIDFrom(t, c.enrichctl("prepare", "--from", graphEntities(t)))
	r := c.enrichctl("launch", id, "--wait")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	return id, c.waitConsolidated(id).GetOutputDir()
}

// A batch run by real agents is consolidated into the real Neo4j by a coordinator that opted in
// with its own labels: the graph holds what the dossiers say, hostile names verbatim, and a
// second consolidation changes nothing. Then prepare --from neo4j selects from seeded nodes.
func TestGraphConsolidationAndSelection(t *testing.T) {
	t.Parallel()
	g := requireGraph(t)
	c := newCluster(t, clusterOpts{config: g.config(""), env: g.env()})
	id, dir := g.runBatch(t, c)

	rep := readGraphReport(t, dir)
	require.Equal(t, "neo4j", rep.Graph.Target)
	require.Empty(t, rep.Graph.Error)
	require.True(t, rep.Graph.Validation.Checked)
	require.True(t, rep.Graph.Validation.OK, "%v", rep.Graph.Validation.Problems)
	require.Equal(t, 5, rep.Graph.Nodes)
	require.Equal(t, 5, rep.Graph.Rels, "2 COMPETES_IN, 1 PLAYS_AT, 2 WORKS_FOR")
	require.Equal(t, 6, rep.Graph.Counters["nodes_created"], "5 entities and the venue stub")
	require.Equal(t, 5, rep.Graph.Counters["relationships_created"])
	require.Len(t, rep.Graph.Unverif, 1)
	require.Equal(t, "venue-missing", rep.Graph.Unverif[0].ID)

	// What the server holds, counted under this test's labels only.
	require.EqualValues(t, 5, g.count(t, "MATCH (n:NSEntity) WHERE NOT n:NSUnverified RETURN count(n)"))
	require.EqualValues(t, 1, g.count(t, "MATCH (n:NSEntity:NSUnverified {id: 'venue-missing'}) RETURN count(n)"))
	require.EqualValues(t, 2, g.count(t, "MATCH (:NSEntity:NSClub)-[:COMPETES_IN]->(:NSEntity:NSLeague {id: 'league-epl'}) RETURN count(*)"))
	require.EqualValues(t, 2, g.count(t, "MATCH (:NSEntity:NSPerson)-[:WORKS_FOR]->(:NSEntity:NSClub) RETURN count(*)"))
	require.EqualValues(t, 5, g.count(t, "MATCH (:NSEntity)-[r]->(:NSEntity) RETURN count(r)"))
	for i, name := range hostileGraphNames {
		recs := g.query(t, "MATCH (n:NSEntity {name: $name}) RETURN n.id, n.batch_id", map[string]any{"name": name})
		require.Len(t, recs, 1, "hostile name %d stored verbatim, once", i)
		require.Equal(t, id, recs[0].Values[1])
	}

	// A second consolidation writes nothing: every counter is zero and the graph is unchanged.
	r := c.enrichctl("consolidate", id)
	require.Equal(t, 0, r.code, r.stderr)
	rep = readGraphReport(t, dir)
	require.True(t, rep.Graph.Validation.OK, "%v", rep.Graph.Validation.Problems)
	for k, v := range rep.Graph.Counters {
		require.Zero(t, v, "second consolidation changed %s", k)
	}
	require.EqualValues(t, 6, g.count(t, "MATCH (n:NSEntity) RETURN count(n)"))
	require.EqualValues(t, 5, g.count(t, "MATCH (:NSEntity)-[r]->(:NSEntity) RETURN count(r)"))

	// Seed nodes as an operator's graph would hold them: priorities, ages, one never enriched.
	now := time.Now().UTC()
	ago := func(days int) any { return now.Add(-time.Duration(days) * 24 * time.Hour) }
	hostileID := "club-`x`}) DETACH DELETE n //"
	seed := []map[string]any{
		{"id": "club-old", "label": "Club", "priority": "high", "at": ago(90)},
		{"id": "club-older", "label": "Club", "priority": "high", "at": ago(400)},
		{"id": hostileID, "label": "Club", "priority": "HIGH", "at": nil, "name": hostileGraphNames[0]},
		{"id": "club-fresh", "label": "Club", "priority": "high", "at": ago(1)},
		{"id": "club-never", "label": "Club", "priority": nil, "at": nil},
		{"id": "club-low", "label": "Club", "priority": "low", "at": ago(200)},
		{"id": "person-x", "label": "Person", "priority": "normal", "at": ago(31)},
		{"id": "person-y", "label": "Person", "priority": nil, "at": nil},
		{"id": "venue-z", "label": "Venue", "priority": "high", "at": nil},
	}
	for _, s := range seed {
		// Seeding is the test's own Cypher; the label is one of the test's, never input.
		g.query(t, "CREATE (n:NSEntity:NS"+s["label"].(string)+" {id: $id, name: coalesce($name, $id), priority: $priority, enriched_at: $at, country: 'GB'})",
			map[string]any{"id": s["id"], "name": s["name"], "priority": s["priority"], "at": s["at"]})
	}

	// Capacity 2 for clubs: the high ones first, the stalest of those first (never enriched
	// before 400 days before 90); the fresh one is not stale, the batch's clubs were just written.
	r = c.enrichctl("prepare", "--from", "neo4j", "--types", "Club,Person", "--stale-after", "30d", "--instance1", "2", "-o", "json")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	var prep struct {
		Batch   struct{ ID, Source string } `json:"batch"`
		LeftOut map[string]int              `json:"leftOut"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &prep))
	require.Equal(t, map[string]int{"entities": 3}, prep.LeftOut, "club-old, club-never and club-low did not fit")
	require.Contains(t, prep.Batch.Source, "neo4j:")
	items := batchItems(t, c, prep.Batch.ID)
	require.ElementsMatch(t, []string{"club-older", hostileID, "person-x", "person-y"}, sortedKeys(items))
	require.Equal(t, hostileGraphNames[0], items[hostileID].GetEntity().GetName(), "a hostile name is read back verbatim")
	require.Equal(t, enrichv1.Priority_PRIORITY_HIGH, items[hostileID].GetEntity().GetPriority())
	require.Equal(t, "GB", items["club-older"].GetEntity().GetAttributes()["country"], "other properties become attributes")

	// --priority high keeps only high nodes, stale or not; --size caps the batch.
	r = c.enrichctl("prepare", "--from", "neo4j", "--types", "Club,Venue", "--priority", "high", "-o", "json")
	require.Equal(t, 0, r.code, r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &prep))
	require.ElementsMatch(t, []string{"club-fresh", "club-old", "club-older", hostileID, "venue-z"}, sortedKeys(batchItems(t, c, prep.Batch.ID)))
	r = c.enrichctl("prepare", "--from", "neo4j", "--types", "Club", "--priority", "high", "--size", "1", "-o", "json")
	require.Equal(t, 0, r.code, r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &prep))
	require.Equal(t, []string{hostileID}, sortedKeys(batchItems(t, c, prep.Batch.ID)), "never enriched is the stalest")

	// Bad selections are refused with a reason and create nothing.
	r = c.enrichctl("prepare", "--from", "neo4j", "--types", "Stadium")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `unknown entity type "Stadium"`)
	r = c.enrichctl("prepare", "--from", "neo4j", "--types", "Competition")
	require.Equal(t, 1, r.code, r.stdout)
	require.Contains(t, r.stderr, "nothing to enrich")
}

func batchItems(t *testing.T, c *cluster, id string) map[string]*enrichv1.Item {
	t.Helper()
	res, err := c.ctl.ListItems(context.Background(), &enrichv1.ListItemsRequest{BatchId: id})
	require.NoError(t, err)
	out := map[string]*enrichv1.Item{}
	for _, it := range res.GetItems() {
		out[it.GetEntity().GetId()] = it
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// enrichctlEnv runs enrichctl with extra environment variables.
func (c *cluster) enrichctlEnv(env []string, args ...string) ctlResult {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "enrichctl"), append([]string{"--addr", c.addr}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	res := ctlResult{stdout: out.String(), stderr: errOut.String()}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		res.code = exitErr.ExitCode()
	} else {
		require.NoError(c.t, err)
	}
	return res
}

// A coordinator without a graph writes graph.cypher; enrichctl consolidate --neo4j loads the
// finished batch into a server later, with the coordinator's labels. The password travels in
// the environment and the request only: it is in no output, log or report.
func TestConsolidateIntoGivenNeo4j(t *testing.T) {
	t.Parallel()
	g := requireGraph(t)
	c := newCluster(t, clusterOpts{config: g.config("")})
	id, dir := g.runBatch(t, c)
	require.FileExists(t, filepath.Join(dir, "graph.cypher"))
	require.Equal(t, "files", readGraphReport(t, dir).Graph.Target)
	require.Zero(t, g.count(t, "MATCH (n:NSEntity) RETURN count(n)"))

	var outputs strings.Builder
	pw := []string{"NEO4J_PASSWORD=" + g.conn.Password}
	r := c.enrichctlEnv(pw, "consolidate", id, "--neo4j", g.conn.URI, "--neo4j-user", g.conn.User)
	outputs.WriteString(r.stdout + r.stderr)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "graph       written to "+g.conn.URI)
	rep := readGraphReport(t, dir)
	require.Equal(t, "neo4j", rep.Graph.Target)
	require.True(t, rep.Graph.Validation.OK, "%v", rep.Graph.Validation.Problems)
	require.Equal(t, 6, rep.Graph.Counters["nodes_created"])
	require.EqualValues(t, 5, g.count(t, "MATCH (n:NSEntity) WHERE NOT n:NSUnverified RETURN count(n)"))
	require.EqualValues(t, 5, g.count(t, "MATCH (:NSEntity)-[r]->(:NSEntity) RETURN count(r)"))

	// A wrong password fails with the server's reason, and the batch says so.
	wrong := "wrong-" + g.ns
	r = c.enrichctlEnv([]string{"NEO4J_PASSWORD=" + wrong}, "consolidate", id, "--neo4j", g.conn.URI)
	require.Equal(t, 1, r.code, r.stdout)
	require.Contains(t, r.stderr, "graph:")
	outputs.WriteString(r.stdout + r.stderr)
	st := c.enrichctl("status", id)
	require.Contains(t, st.stdout, "consolidation  failed: graph:")
	outputs.WriteString(st.stdout + st.stderr)
	// Credentials in the URI are refused before anything is dialled.
	r = c.enrichctl("consolidate", id, "--neo4j", "bolt://neo4j:"+wrong+"@127.0.0.1:1")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "leave the credentials out of the uri")
	require.NotContains(t, r.stderr, wrong, "a refused uri is not echoed")

	report, err := os.ReadFile(filepath.Join(dir, "report.json"))
	require.NoError(t, err)
	c.coord.stop()
	log, err := os.ReadFile(c.coord.log)
	require.NoError(t, err)
	for _, secret := range []string{g.conn.Password, wrong} {
		require.NotContains(t, outputs.String(), secret)
		require.NotContains(t, string(report), secret)
		require.NotContains(t, string(log), secret, "the coordinator logs no password")
	}
}

// switchableListener stands in for a Neo4j that is down, then back: while down it accepts and
// drops every connection at once (as a refusing host does, without freeing the port for anyone
// else); while up it forwards to the real server.
type switchableListener struct {
	lis    net.Listener
	up     atomic.Bool
	target string
}

func newSwitchableListener(t *testing.T, target string) *switchableListener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &switchableListener{lis: lis, target: target}
	var wg sync.WaitGroup
	go func() {
		for {
			in, err := lis.Accept()
			if err != nil {
				return
			}
			if !s.up.Load() {
				in.Close()
				continue
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(func() { lis.Close() })
	return s
}

// When the graph write gives up on an unreachable Neo4j, the batch shows the failure and when
// the coordinator tries again; it then consolidates by itself once the server is back.
func TestGraphConsolidationRetriedWhenNeo4jReturns(t *testing.T) {
	t.Parallel()
	g := requireGraph(t)
	host := strings.TrimSuffix(strings.TrimPrefix(g.conn.URI, "bolt://"), "/")
	sw := newSwitchableListener(t, host)
	env := g.env()
	env[0] = "NEO4J_URI=bolt://" + sw.lis.Addr().String()
	c := newCluster(t, clusterOpts{env: env, config: g.config(
		"  retry_timeout: 1s\n  consolidation_retry_delay: 2s\n  consolidation_retry_max_delay: 4s\n")})
	c.agent(g.ns+"-agent", "--slots", "4", "--offline-delay", "5ms-20ms")
	c.waitAgents(1)
	id := batchIDFrom(t, c.enrichctl("prepare", "--from", graphEntities(t)))
	r := c.enrichctl("launch", id, "--wait")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)

	var b *enrichv1.Batch
	require.Eventually(t, func() bool {
		b = c.batch(id)
		return b.GetConsolidationRetryAt() != nil
	}, time.Minute, 50*time.Millisecond, "no retry planned")
	require.Contains(t, b.GetConsolidationError(), "neo4j unavailable after")
	st := c.enrichctl("status", id)
	require.Contains(t, st.stdout, "consolidation  failed: graph:")
	require.Contains(t, st.stdout, "the coordinator tries again at")
	// The dossiers are on disk all along.
	require.FileExists(t, filepath.Join(b.GetOutputDir(), "report.json"))

	sw.up.Store(true)
	b = c.waitConsolidated(id)
	require.Empty(t, b.GetConsolidationError())
	require.Nil(t, b.GetConsolidationRetryAt())
	rep := readGraphReport(t, b.GetOutputDir())
	require.True(t, rep.Graph.Validation.OK, "%v", rep.Graph.Validation.Problems)
	require.EqualValues(t, 5, g.count(t, "MATCH (n:NSEntity) WHERE NOT n:NSUnverified RETURN count(n)"))
	st = c.enrichctl("status", id)
	require.Contains(t, st.stdout, "consolidation  done ")
}
