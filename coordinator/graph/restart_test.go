package graph

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/internal/neo4jtest"
)

// neo4jScript starts and stops a private server through the project's own script, so the test
// can stop it without disturbing the shared one.
func neo4jScript(t *testing.T, env []string, verb string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join("..", "..", "scripts", "neo4j.sh"), verb)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	require.NoError(t, err, "neo4j.sh %s: %s", verb, stderr)
	return string(out)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestServerStoppedMidWriteIsRetriedAndResumed stops a private Neo4j after the first chunks are
// committed and starts it again on the same port and store: the sink retries with backoff,
// carries on from the chunk that failed, and the graph ends complete and valid.
func TestServerStoppedMidWriteIsRetriedAndResumed(t *testing.T) {
	t.Parallel()
	neo4jtest.Require(t) // the same policy as every Neo4j test
	dir := t.TempDir()
	port := freePort(t)
	env := []string{"NEO4J_STATE_DIR=" + filepath.Join(dir, "state"), "NEO4J_DATA_DIR=" + filepath.Join(dir, "data"),
		fmt.Sprintf("NEO4J_PORT=%d", port)}
	out := neo4jScript(t, env, "start")
	t.Cleanup(func() { neo4jScript(t, env, "stop") })
	require.Contains(t, out, fmt.Sprintf("NEO4J_URI=bolt://127.0.0.1:%d", port))

	conn := Conn{URI: fmt.Sprintf("bolt://127.0.0.1:%d", port), User: "neo4j", Password: "enrich-dev-password"}
	d, err := Open(conn)
	require.NoError(t, err)
	defer d.Close(context.Background())
	opts := nsOptions("R")
	opts.BatchSize = 3
	var entries []Entry
	for i := range 30 {
		id := fmt.Sprintf("club-%02d", i)
		rels := []map[string]any{{"type": "COMPETES_IN", "target_id": "league-1", "target_name": "League One"}}
		entries = append(entries, Entry{EntityID: id, EntityType: "Club", Name: "Club " + id, InstanceType: "entities",
			Dossier: dossierJSON(t, id, "Club", "Club "+id, rels, nil)})
	}
	plan, err := Build(opts, "batch-restart", entries, time.Now())
	require.NoError(t, err)

	var once sync.Once
	var restartOut []byte
	var restartErr error
	var stopped, restarted = make(chan struct{}), make(chan struct{})
	retrying, written := make(chan struct{}), make(chan struct{})
	var retryOnce sync.Once
	var logs strings.Builder
	var mu sync.Mutex
	sink := &Sink{Driver: d, Opts: opts, RetryTimeout: 3 * time.Minute, BaseDelay: 200 * time.Millisecond,
		Logf: func(f string, a ...any) {
			mu.Lock()
			fmt.Fprintf(&logs, f+"\n", a...)
			mu.Unlock()
			retryOnce.Do(func() { close(retrying) })
		},
		OnChunk: func(done, total int) {
			if done != 4 {
				return
			}
			once.Do(func() {
				// Stop synchronously so the next chunk meets a dead server, restart in the background.
				neo4jScript(t, env, "stop")
				close(stopped)
				go func() {
					defer close(restarted)
					// Start again only once the sink has met the outage: a server back within
					// the driver's own retry time (5s, Open) hides it from the sink, and on a
					// quiet machine a restart can be that fast.
					select {
					case <-retrying:
					case <-written:
					}
					cmd := exec.Command(filepath.Join("..", "..", "scripts", "neo4j.sh"), "start")
					cmd.Env = append(os.Environ(), env...)
					restartOut, restartErr = cmd.CombinedOutput()
				}()
			})
		}}
	rep, err := sink.Write(context.Background(), plan)
	close(written)
	<-restarted
	require.NoError(t, restartErr, "restart: %s", restartOut)
	require.NoError(t, err)
	select {
	case <-stopped:
	default:
		t.Fatal("the server was never stopped")
	}
	require.Positive(t, rep.Retries, "the outage must have been retried")
	mu.Lock()
	require.Contains(t, logs.String(), "retrying")
	mu.Unlock()
	require.True(t, rep.Validation.OK, "%v", rep.Validation.Problems)
	require.Equal(t, 30, rep.Validation.NodesFound)
	require.Equal(t, 30, rep.Validation.RelsFound)

	again, err := sink.Write(context.Background(), plan)
	require.NoError(t, err)
	require.True(t, again.Counters.Zero(), "chunks written before the stop survived the restart: %+v", again.Counters)
}
