package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/coordinator/store/invariant"
	"github.com/sportsintel/enrich/coordinator/store/sqlite"
)

var (
	faultRunnerOnce sync.Once
	faultRunnerErr  error
)

// faultRunner builds the seeded misbehaving runner (testdata/faultrunner) once and returns its path.
func faultRunner(t *testing.T) string {
	t.Helper()
	path := filepath.Join(binDir, "faultrunner")
	faultRunnerOnce.Do(func() {
		cmd := exec.Command("go", "build", "-o", path, "./e2e/testdata/faultrunner")
		cmd.Dir = repoRoot()
		out, err := cmd.CombinedOutput()
		if err != nil {
			faultRunnerErr = fmt.Errorf("build faultrunner: %v\n%s", err, out)
		}
	})
	require.NoError(t, faultRunnerErr)
	return path
}

// faultAgentArgs runs the fault runner through the agent's exec runner. The command line is
// the runner's whole configuration, so each agent can misbehave differently.
func faultAgentArgs(t *testing.T, runnerFlags string) []string {
	t.Helper()
	return []string{"--runner", "exec", "--exec", "exec " + faultRunner(t) + " " + runnerFlags, "--exec-grace", "300ms"}
}

// kill9 ends the process with SIGKILL, as a crash would: no drain, no flush, no goodbye.
func (p *proc) kill9() {
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	err := <-p.done
	p.done <- err
}

// crashCoordinator kills the coordinator with SIGKILL and starts it again on the same database.
func (c *cluster) crashCoordinator() {
	c.t.Helper()
	c.coord.kill9()
	c.coord = start(c.t, "enrich-coordinator", c.args...)
}

// checkInvariants replays the batch's stored history and fails the test on any broken promise.
func (c *cluster) checkInvariants(batchID string) *invariant.Report {
	c.t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(c.dir, "enrich.db"))
	require.NoError(c.t, err)
	defer st.Close()
	rep, err := invariant.Check(ctx, st, batchID)
	require.NoError(c.t, err)
	c.t.Log(rep.String())
	require.NoError(c.t, rep.Err())
	return rep
}

// writeEntities writes n Club entities (ids club-0000...) as JSONL and returns the file.
func writeEntities(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		line, err := json.Marshal(map[string]string{"id": fmt.Sprintf("club-%04d", i), "type": "Club",
			"name": fmt.Sprintf("Club %d", i), "country": "Spain", "sport": "Football"})
		require.NoError(t, err)
		b.Write(line)
		b.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "entities.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	return path
}

// jsonFiles counts the dossiers of one instance type in a consolidated batch folder.
func jsonFiles(t *testing.T, dir, instanceType string) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, instanceType, "*.json"))
	require.NoError(t, err)
	return len(files)
}

// pausableProxy forwards TCP connections to a target and can hold all traffic, both ways, as a
// network partition that leaves connections open would.
type pausableProxy struct {
	lis    net.Listener
	target string

	mu      sync.Mutex
	paused  bool
	resumed chan struct{}
}

func newPausableProxy(t *testing.T, target string) *pausableProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &pausableProxy{lis: lis, target: target, resumed: make(chan struct{})}
	close(p.resumed)
	var conns sync.WaitGroup
	go func() {
		for {
			in, err := lis.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			conns.Add(2)
			go func() { defer conns.Done(); p.pipe(out, in) }()
			go func() { defer conns.Done(); p.pipe(in, out) }()
		}
	}()
	t.Cleanup(func() { lis.Close() })
	return p
}

func (p *pausableProxy) addr() string { return p.lis.Addr().String() }

func (p *pausableProxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused {
		p.paused = true
		p.resumed = make(chan struct{})
	}
}

func (p *pausableProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.paused = false
		close(p.resumed)
	}
}

func (p *pausableProxy) gate() {
	p.mu.Lock()
	ch := p.resumed
	p.mu.Unlock()
	<-ch
}

// pipe copies src to dst, holding each chunk while the proxy is paused.
func (p *pausableProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// alive reports whether a process exists (and is not a zombie).
func alive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, timeout, 20*time.Millisecond, msg)
}
