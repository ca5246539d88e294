package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// nginxConfig is the nginx configuration of docs/load-balancer.md, listening on listen (a port,
// or HOST:PORT) in front of the coordinators' gRPC addresses. main and http are added at the top
// of the main and http contexts: the tests put nginx's pid file, logs and temp folders there;
// the documented configuration has none (TestNginxConfigIsTheDocumentedOne).
func nginxConfig(listen string, coordinators []string, main, http string) string {
	var b strings.Builder
	b.WriteString(main)
	b.WriteString("events { worker_connections 4096; }\nhttp {\n")
	b.WriteString(http)
	b.WriteString("    upstream coordinators {\n")
	for _, c := range coordinators {
		fmt.Fprintf(&b, "        server %s max_fails=2 fail_timeout=5s;\n", c)
	}
	fmt.Fprintf(&b, `        keepalive 32;
    }
    server {
        listen %s http2;
        # The longest nginx waits between two reads from a coordinator (or writes to it). The
        # coordinator does not answer heartbeats, and enrichctl watch waits for changes: the
        # 60 s defaults would cut quiet streams.
        grpc_read_timeout 1h;
        grpc_send_timeout 1h;
        client_body_timeout 1h;
        # A prepared batch travels in one message (limits.max_message_bytes).
        client_max_body_size 16m;
        location / {
            grpc_pass grpc://coordinators;
            grpc_next_upstream error timeout http_502 http_503;
        }
    }
}
`, listen)
	return b.String()
}

func nginxPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("nginx")
	require.NoError(t, err, "nginx is needed for the nginx load-balancer test (apt-get install nginx)")
	return p
}

// startNginx runs nginx in the foreground with the documented configuration. Everything nginx
// writes (pid file, logs, temp folders) stays under a prefix of its own, so it needs no system
// folder and leaves nothing behind. Run as root, nginx's workers switch to nobody: the prefix is
// world-readable so they can reach their temp folders.
func startNginx(t *testing.T, _, listen string, members []*fleetMember) *proc {
	t.Helper()
	path := nginxPath(t)
	prefix, err := os.MkdirTemp("", "enrich-nginx-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(prefix) })
	require.NoError(t, os.Chmod(prefix, 0o755))
	main := fmt.Sprintf("daemon off;\nworker_processes 1;\npid %[1]s/nginx.pid;\nerror_log %[1]s/error.log info;\n", prefix)
	var http strings.Builder
	fmt.Fprintf(&http, "    access_log %s/access.log;\n", prefix)
	for _, temp := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&http, "    %[1]s_temp_path %[2]s/%[1]s_temp;\n", temp, prefix)
	}
	var coords []string
	for _, m := range members {
		coords = append(coords, m.addr)
	}
	cfg := filepath.Join(prefix, "nginx.conf")
	require.NoError(t, os.WriteFile(cfg, []byte(nginxConfig(listen, coords, main, http.String())), 0o644))
	// nginx -t first: a configuration error is reported as such rather than as a balancer that
	// never answers.
	out, err := exec.Command(path, "-t", "-p", prefix+"/", "-c", cfg).CombinedOutput()
	require.NoError(t, err, "nginx -t: %s", out)
	p := startExternal(t, path, "-p", prefix+"/", "-c", cfg)
	// Registered after startExternal's cleanup, so it runs first: show nginx's own logs on failure.
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"error.log", "access.log"} {
				b, _ := os.ReadFile(filepath.Join(prefix, name))
				t.Logf("--- nginx %s ---\n%s", name, tail(string(b), 4000))
			}
		}
	})
	return p
}

// The configuration docs/load-balancer.md shows for nginx is the one the test below runs, with
// the addresses of real hosts.
func TestNginxConfigIsTheDocumentedOne(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot(), "docs", "load-balancer.md"))
	require.NoError(t, err)
	m := regexp.MustCompile("(?s)\n## nginx\n.*?\n```\n(.*?)```\n").FindSubmatch(doc)
	require.NotNil(t, m, "docs/load-balancer.md has an nginx section with a configuration block")
	want := nginxConfig("7400", []string{"10.0.0.11:7400", "10.0.0.12:7400", "10.0.0.13:7400"}, "", "")
	require.Equal(t, want, string(m[1]), "docs/load-balancer.md's nginx configuration differs from nginxConfig")
}

// Three coordinators on one PostgreSQL behind nginx with the documented configuration; agents
// and enrichctl go through nginx. kill -9 of a coordinator that serves agent streams mid-batch:
// nginx ends those streams, the agents reconnect through it to the coordinators still up, and
// the batch completes with a history that shows nothing lost and nothing accepted twice.
func TestNginxFleetCoordinatorKilledMidBatch(t *testing.T) {
	t.Parallel()
	f := newFleetWith(t, fleetOpts{n: 3, config: faultConfig(150, "1m"), lb: startNginx})
	for i := range 3 {
		f.agent(fmt.Sprintf("agent-%d", i), "--types", "entities", "--slots", "4", "--spool", t.TempDir(),
			"--offline-delay", "50ms-150ms")
	}
	// enrichctl through nginx lists the fleet and where each agent's stream landed.
	var load map[string]int
	waitFor(t, 30*time.Second, "enrichctl agents through nginx lists the three agents", func() bool {
		agents := f.ctlAgents()
		load = map[string]int{}
		for _, a := range agents {
			load[a.Coordinator]++
		}
		return len(agents) == 3
	})
	victim := f.coords[0]
	for _, m := range f.coords {
		if load[m.addr] > load[victim.addr] {
			victim = m
		}
	}
	require.Positive(t, load[victim.addr])

	id := f.launch(150)
	waitFor(t, time.Minute, "a third of the batch done", func() bool { return f.succeeded(id) >= 50 })
	victim.proc.kill9()
	t.Logf("killed coordinator %s (serving %d agents) at %d succeeded", victim.addr, load[victim.addr], f.succeeded(id))
	waitFor(t, 30*time.Second, "the victim's agents moved to a live coordinator", func() bool {
		agents := f.ctlAgents()
		if len(agents) != 3 {
			return false
		}
		for _, a := range agents {
			if a.Coordinator == victim.addr {
				return false
			}
		}
		return true
	})

	// enrichctl watch through nginx follows the batch to its end: exit 0, every entity succeeded.
	r := f.enrichctl("watch", id)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	b := f.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	require.Equal(t, 150, jsonFiles(t, b.GetOutputDir(), "entities"))
	rep := f.checkInvariants(id)
	require.Equal(t, 150, rep.Succeeded)
}

type ctlAgent struct {
	AgentID     string `json:"agentId"`
	Coordinator string `json:"coordinator"`
}

// ctlAgents is `enrichctl agents -o json` through the balancer; nil while it fails (a
// coordinator just died).
func (f *fleet) ctlAgents() []ctlAgent {
	f.t.Helper()
	r := f.enrichctl("agents", "-o", "json")
	if r.code != 0 {
		return nil
	}
	var out struct {
		Agents []ctlAgent `json:"agents"`
	}
	require.NoError(f.t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	return out.Agents
}

// Both coordinators behind nginx restarted in turn (SIGTERM: Drain to their agents, then stop)
// while a batch runs: the agents move through nginx to the coordinator still up, keep their
// leases, and the batch completes with a clean history.
func TestNginxFleetRollingRestart(t *testing.T) {
	t.Parallel()
	f := newFleetWith(t, fleetOpts{n: 2, config: faultConfig(120, "1m"), lb: startNginx})
	for i := range 2 {
		f.agent(fmt.Sprintf("agent-%d", i), "--types", "entities", "--slots", "3", "--spool", t.TempDir(),
			"--offline-delay", "100ms-200ms")
	}
	waitFor(t, 30*time.Second, "two agents", func() bool { return len(f.ctlAgents()) == 2 })
	id := f.launch(120)
	done := int32(0)
	for i := range f.coords {
		waitFor(t, time.Minute, "progress before the next restart", func() bool { return f.succeeded(id) > done+10 })
		done = f.succeeded(id)
		f.restart(i)
		t.Logf("restarted coordinator %d at %d succeeded", i, done)
	}
	r := f.enrichctl("watch", id)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	b := f.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	rep := f.checkInvariants(id)
	require.Equal(t, 120, rep.Succeeded)
	// A drain hands leases over: nothing waited for a lease to expire and ran again.
	require.Equal(t, rep.Items, rep.Grants, "every entity leased once")
}
