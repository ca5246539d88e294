// Package e2e runs the real binaries: a coordinator process, agent processes and enrichctl, talking
// gRPC over loopback sockets, with a real SQLite file and real runner subprocesses.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

var binDir string

// neo4jEnv is the test server's NEO4J_* variables as `make test` exported them. TestMain takes
// them out of the environment, so no coordinator, agent or enrichctl started by these tests
// inherits them: a coordinator with NEO4J_URI would consolidate every batch into the shared
// server under the default labels, colliding with every other test that does the same. A test
// that wants the graph opts in with neo4jCoordinatorEnv and its own labels (neo4j_test.go).
var neo4jEnv = map[string]string{}

func TestMain(m *testing.M) {
	for _, k := range []string{"NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD"} {
		if v, ok := os.LookupEnv(k); ok {
			neo4jEnv[k] = v
			os.Unsetenv(k)
		}
	}
	dir, err := os.MkdirTemp("", "enrich-e2e-bin-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	for name, pkg := range map[string]string{
		"enrich-coordinator": "./coordinator/cmd/enrich-coordinator",
		"enrich-agent":       "./agent/cmd/enrich-agent",
		"enrichctl":          "./ctl/cmd/enrichctl",
	} {
		cmd := exec.Command("go", "build", "-race", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = repoRoot()
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", name, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func examplePath(name string) string { return filepath.Join(repoRoot(), "examples", name) }

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// proc is a started binary whose output goes to a log file shown when the test fails.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan error
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startWithEnv(t, nil, name, args...)
}

// startWithEnv is start with variables added to the test's environment (NAME=value).
func startWithEnv(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("--- %s %s log ---\n%s", name, strings.Join(args, " "), tail(string(out), 6000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// stop ends the process and its group gracefully, then by force.
func (p *proc) stop() {
	select {
	case <-p.done:
		p.done <- nil
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		p.done <- <-p.done
	}
}

// cluster is one coordinator with its files.
type cluster struct {
	t        *testing.T
	addr     string
	httpAddr string
	dir      string
	dossiers string
	coord    *proc
	args     []string
	env      []string
	ctl      enrichv1.ControlServiceClient
}

type clusterOpts struct {
	config string // enrich.yaml contents
	// env is added to the coordinator's environment, e.g. neo4jCoordinatorEnv to opt in to the
	// test server (TestMain keeps NEO4J_* from every process otherwise).
	env []string
}

func newCluster(t *testing.T, opts clusterOpts) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{t: t, addr: freeAddr(t), httpAddr: freeAddr(t), dir: dir, dossiers: filepath.Join(dir, "dossiers")}
	args := []string{"--listen", c.addr, "--http", c.httpAddr, "--store", "sqlite:" + filepath.Join(dir, "enrich.db"),
		"--dossiers", c.dossiers, "--log-level", "debug"}
	if opts.config != "" {
		path := filepath.Join(dir, "enrich.yaml")
		require.NoError(t, os.WriteFile(path, []byte(opts.config), 0o644))
		args = append(args, "--config", path)
	}
	c.args, c.env = args, opts.env
	c.coord = startWithEnv(t, c.env, "enrich-coordinator", args...)
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	health := healthpb.NewHealthClient(conn)
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil && res.GetStatus() == healthpb.HealthCheckResponse_SERVING
	}, 30*time.Second, 50*time.Millisecond, "coordinator never became healthy")
	c.ctl = enrichv1.NewControlServiceClient(conn)
	return c
}

// restartCoordinator stops the coordinator process and starts it again on the same address and
// database, as an operator's restart would.
func (c *cluster) restartCoordinator() {
	c.t.Helper()
	c.coord.stop()
	c.coord = startWithEnv(c.t, c.env, "enrich-coordinator", c.args...)
}

func (c *cluster) agent(id string, args ...string) *proc {
	c.t.Helper()
	return start(c.t, "enrich-agent", append([]string{"--coordinator", c.addr, "--id", id, "--log-level", "debug", "--drain-grace", "3s"}, args...)...)
}

// waitAgents waits until n agents are connected.
func (c *cluster) waitAgents(n int) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		res, err := c.ctl.ListAgents(context.Background(), &enrichv1.ListAgentsRequest{})
		return err == nil && len(res.GetAgents()) == n
	}, 30*time.Second, 50*time.Millisecond, "expected %d agents", n)
}

type ctlResult struct {
	stdout, stderr string
	code           int
}

// enrichctl runs the CLI against the cluster.
func (c *cluster) enrichctl(args ...string) ctlResult {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "enrichctl"), append([]string{"--addr", c.addr}, args...)...)
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

func (c *cluster) batch(id string) *enrichv1.Batch {
	c.t.Helper()
	res, err := c.ctl.GetBatch(context.Background(), &enrichv1.GetBatchRequest{BatchId: id})
	require.NoError(c.t, err)
	return res.GetBatch()
}

func (c *cluster) progress(id, instance string) *enrichv1.InstanceProgress {
	c.t.Helper()
	for _, p := range c.batch(id).GetInstances() {
		if p.GetInstanceType() == instance {
			return p
		}
	}
	return &enrichv1.InstanceProgress{}
}

// waitConsolidated waits until the batch ended and its outputs were written.
func (c *cluster) waitConsolidated(id string) *enrichv1.Batch {
	c.t.Helper()
	var b *enrichv1.Batch
	require.Eventually(c.t, func() bool {
		// Errors are expected while a coordinator restarts; keep asking.
		res, err := c.ctl.GetBatch(context.Background(), &enrichv1.GetBatchRequest{BatchId: id})
		b = res.GetBatch()
		return err == nil && b.GetConsolidatedAt() != nil
	}, 2*time.Minute, 50*time.Millisecond, "batch %s never consolidated", id)
	return b
}
