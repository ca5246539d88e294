package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sportsintel/enrich/internal/clientcreds"
	"github.com/sportsintel/enrich/internal/tlsutil"
)

// secureCluster is a coordinator with TLS, required client certificates and tokens; every
// process is a real binary.
type secureCluster struct {
	t        *testing.T
	dir, pki string
	addr     string
	httpAddr string
	dossiers string
	secrets  map[string]string // token name -> secret
	procs    []*proc
	outputs  []string // enrichctl stdout and stderr
}

// run runs a binary to completion with extra environment and returns its output and exit code.
func (c *secureCluster) run(env []string, name string, args ...string) ctlResult {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), args...)
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
	c.outputs = append(c.outputs, res.stdout, res.stderr)
	return res
}

// ctl runs enrichctl over TLS as token (a name in secrets), the token passed in ENRICH_TOKEN.
func (c *secureCluster) ctl(token string, args ...string) ctlResult {
	c.t.Helper()
	var env []string
	if token != "" {
		env = append(env, "ENRICH_TOKEN="+c.secrets[token])
	}
	// --client-auth require applies to every client of the listener, enrichctl included.
	return c.run(env, "enrichctl", append([]string{"--addr", c.addr, "--ca", filepath.Join(c.pki, tlsutil.CAFile),
		"--cert", filepath.Join(c.pki, tlsutil.AgentFile), "--key", filepath.Join(c.pki, tlsutil.AgentKeyFile)}, args...)...)
}

// startEnv is start with extra environment variables.
func startEnv(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("--- %s log ---\n%s", name, tail(string(out), 6000))
		}
	})
	return p
}

func newSecureCluster(t *testing.T) *secureCluster {
	t.Helper()
	dir := t.TempDir()
	c := &secureCluster{t: t, dir: dir, pki: filepath.Join(dir, "pki"), addr: freeAddr(t), httpAddr: freeAddr(t),
		dossiers: filepath.Join(dir, "dossiers"), secrets: map[string]string{}}
	require.Equal(t, 0, c.run(nil, "enrichctl", "certs", "init", c.pki).code)

	// Tokens made and hashed by enrichctl itself; the coordinator sees only the hashes.
	var lines []string
	for _, tok := range []struct{ role, name string }{{"admin", "ops"}, {"viewer", "grafana"}, {"agent", "agent-off"}, {"agent", "agent-exec"}} {
		r := c.run(nil, "enrichctl", "tokens", "new", "--role", tok.role, "--name", tok.name, "-o", "json")
		require.Equal(t, 0, r.code, r.stderr)
		var out struct{ Secret, Line string }
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
		c.secrets[tok.name] = out.Secret
		lines = append(lines, out.Line)
	}
	tokens := filepath.Join(dir, "tokens")
	require.NoError(t, os.WriteFile(tokens, []byte(strings.Join(lines, "\n")+"\n"), 0o600))

	c.procs = append(c.procs, startEnv(t, nil, "enrich-coordinator", "--listen", c.addr, "--http", c.httpAddr,
		"--store", "sqlite:"+filepath.Join(dir, "enrich.db"), "--dossiers", c.dossiers, "--log-level", "debug",
		"--tls-cert", filepath.Join(c.pki, tlsutil.ServerFile), "--tls-key", filepath.Join(c.pki, tlsutil.ServerKeyFile),
		"--client-ca", filepath.Join(c.pki, tlsutil.CAFile), "--client-auth", "require", "--tokens", tokens))

	// Health is open to probes, but only over TLS with a client certificate here.
	opts, err := clientcreds.DialOptions(clientcreds.Options{Addr: c.addr, CAFile: filepath.Join(c.pki, tlsutil.CAFile),
		CertFile: filepath.Join(c.pki, tlsutil.AgentFile), KeyFile: filepath.Join(c.pki, tlsutil.AgentKeyFile)})
	require.NoError(t, err)
	conn, err := grpc.NewClient(c.addr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil && res.GetStatus() == healthpb.HealthCheckResponse_SERVING
	}, 30*time.Second, 50*time.Millisecond, "coordinator never became healthy")
	return c
}

func (c *secureCluster) agent(env []string, id string, args ...string) {
	c.t.Helper()
	base := []string{"--coordinator", c.addr, "--id", id, "--log-level", "debug", "--drain-grace", "3s",
		"--ca", filepath.Join(c.pki, tlsutil.CAFile), "--cert", filepath.Join(c.pki, tlsutil.AgentFile),
		"--key", filepath.Join(c.pki, tlsutil.AgentKeyFile)}
	c.procs = append(c.procs, startEnv(c.t, env, "enrich-agent", append(base, args...)...))
}

// hostileEntities are ids and names meant to escape the batch folder, break file systems,
// inject template actions, SQL or shell, and confuse readers.
var hostileEntities = []map[string]string{
	{"id": "../../../../escape-person", "type": "Person", "name": "Path Traversal"},
	{"id": `..\..\windows\evil`, "type": "Person", "name": "Backslashes"},
	{"id": "..", "type": "Person", "name": "Dot dot"},
	{"id": "/etc/passwd", "type": "Person", "name": "Absolute"},
	{"id": "evil\u202egnp.exe", "type": "Person", "name": "Right-to-left override \u202e"},
	{"id": "{{.SchemaJSON}}", "type": "Person", "name": `{{template "x"}}{{printf "%s" .Entity}}`},
	{"id": "CON", "type": "League", "name": "Windows device name"},
	{"id": "a/b/c", "type": "League", "name": "Separators"},
	{"id": strings.Repeat("ü", 250), "type": "League", "name": "Very long id"},
	{"id": "Robert'); DROP TABLE items;--", "type": "League", "name": "SQL"},
	{"id": "club-$(touch pwned)`touch pwned2`", "type": "Club", "name": "Shell; rm -rf /"},
	{"id": "club-plain", "type": "Club", "name": "Plain"},
}

// TestSecureBatchEndToEnd runs a batch over mutual TLS with tokens and hostile entity ids, then
// checks that roles are enforced, that every dossier stays inside the batch folder, and that no
// token value appears in any log or output file.
//
// Not parallel: it starts four processes with TLS, and running it beside the chaos drill on two
// cores starves that drill's time budget.
func TestSecureBatchEndToEnd(t *testing.T) {
	c := newSecureCluster(t)

	// The exec agent's runner records its environment: the agent's token must not be there.
	envDir := filepath.Join(c.dir, "runner-env")
	require.NoError(t, os.MkdirAll(envDir, 0o755))
	workDir := filepath.Join(c.dir, "work")
	script := filepath.Join(c.dir, "runner.sh")
	require.NoError(t, os.WriteFile(script, []byte(`#!/bin/sh
cat >/dev/null
env > "`+envDir+`/env.$$"
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
printf '{"entity_id":"%s","entity_type":"Club","name":"n","instance_type":"entities","mode":"offline","summary":"s","confidence":0,"key_facts":[],"relationships":[],"sources":[],"generated_at":"%s"}\n' "$ENRICH_ENTITY_ID" "$now"
`), 0o755))
	tokenFile := filepath.Join(c.dir, "agent-off.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(c.secrets["agent-off"]+"\n"), 0o600))
	c.agent(nil, "agent-off", "--types", "persons,leagues", "--slots", "4", "--token-file", tokenFile)
	c.agent([]string{"ENRICH_TOKEN=" + c.secrets["agent-exec"]}, "agent-exec", "--types", "entities", "--slots", "2",
		"--runner", "exec", "--exec", script, "--workdir", workDir)
	// An agent whose token names another agent id is refused (and keeps retrying, harmlessly).
	c.agent([]string{"ENRICH_TOKEN=" + c.secrets["agent-exec"]}, "impostor", "--types", "entities")

	var file bytes.Buffer
	for _, e := range hostileEntities {
		line, err := json.Marshal(e)
		require.NoError(t, err)
		file.Write(append(line, '\n'))
	}
	entities := filepath.Join(c.dir, "hostile.jsonl")
	require.NoError(t, os.WriteFile(entities, file.Bytes(), 0o644))

	// Roles: no token and a viewer cannot prepare; the admin can.
	r := c.ctl("", "prepare", "--from", entities)
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "missing token")
	r = c.ctl("grafana", "prepare", "--from", entities)
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "grafana (role viewer) may not call /enrich.v1.ControlService/PrepareBatch")
	r = c.ctl("ops", "prepare", "--from", entities)
	id := batchIDFrom(t, r)
	r = c.ctl("ops", "launch", id, "--wait")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	r = c.ctl("grafana", "status", id, "-o", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var st struct {
		Batch struct {
			OutputDir      string `json:"outputDir"`
			ConsolidatedAt string `json:"consolidatedAt"`
		} `json:"batch"`
	}
	require.Eventually(t, func() bool {
		r := c.ctl("grafana", "status", id, "-o", "json")
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &st) == nil && st.Batch.ConsolidatedAt != ""
	}, time.Minute, 200*time.Millisecond, "batch never consolidated")

	// Every file of the run is inside the batch folder, one dossier per entity.
	batchDir := st.Batch.OutputDir
	require.Equal(t, c.dossiers, filepath.Dir(batchDir))
	ids := map[string]bool{}
	require.NoError(t, filepath.WalkDir(c.dossiers, func(path string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		rel, err := filepath.Rel(batchDir, path)
		require.NoError(t, err)
		if path != c.dossiers {
			require.False(t, strings.HasPrefix(rel, ".."), "%s is outside the batch folder", path)
		}
		if strings.HasSuffix(path, ".json") && filepath.Base(filepath.Dir(path)) != filepath.Base(batchDir) {
			raw, err := os.ReadFile(path)
			require.NoError(t, err)
			var head struct {
				EntityID string `json:"entity_id"`
			}
			require.NoError(t, json.Unmarshal(raw, &head), path)
			require.False(t, ids[head.EntityID], "two dossiers for %q", head.EntityID)
			ids[head.EntityID] = true
		}
		return nil
	}))
	for _, e := range hostileEntities {
		require.True(t, ids[e["id"]], "no dossier for %q", e["id"])
	}
	require.Len(t, ids, len(hostileEntities))
	for _, name := range []string{"pwned", "pwned2"} {
		require.NoFileExists(t, filepath.Join(workDir, name), "an id reached a shell unquoted")
	}
	envs, err := filepath.Glob(filepath.Join(envDir, "env.*"))
	require.NoError(t, err)
	require.NotEmpty(t, envs, "the exec runner ran")

	// HTTP over TLS: probes are open, metrics and the dashboard need a viewer's token.
	pool, err := tlsutil.LoadCertPool(filepath.Join(c.pki, tlsutil.CAFile))
	require.NoError(t, err)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(path, token string) int {
		req, err := http.NewRequest(http.MethodGet, "https://"+c.httpAddr+path, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+c.secrets[token])
		}
		res, err := hc.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	require.Equal(t, http.StatusOK, get("/healthz", ""))
	require.Equal(t, http.StatusUnauthorized, get("/metrics", ""))
	require.Equal(t, http.StatusOK, get("/metrics", "grafana"))
	require.Equal(t, http.StatusForbidden, get("/api/batches", "agent-off"))
	require.Equal(t, http.StatusOK, get("/api/batches/"+id, "grafana"))
	require.Equal(t, http.StatusForbidden, get("/debug/pprof/", "grafana"))

	// The impostor was refused by name.
	impostorLog, err := os.ReadFile(c.procs[3].log)
	require.NoError(t, err)
	require.Contains(t, string(impostorLog), `may not connect as agent \"impostor\"`)

	// No secret anywhere: logs, dossiers, report, payload, database, runner environments, CLI output.
	for _, p := range c.procs {
		p.stop()
	}
	var files []string
	for _, p := range c.procs {
		files = append(files, p.log)
	}
	require.NoError(t, filepath.WalkDir(c.dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && path != filepath.Join(c.dir, "tokens") &&
			!strings.HasSuffix(path, ".token") {
			files = append(files, path)
		}
		return err
	}))
	require.Greater(t, len(files), 30)
	for name, secret := range c.secrets {
		for _, f := range files {
			raw, err := os.ReadFile(f)
			require.NoError(t, err)
			require.False(t, bytes.Contains(raw, []byte(secret)), "token %s found in %s", name, f)
		}
		for _, out := range c.outputs {
			if strings.HasPrefix(out, "{") && strings.Contains(out, `"secret"`) {
				continue // enrichctl tokens new prints the secret by design
			}
			require.NotContains(t, out, secret, "token %s in enrichctl output", name)
		}
	}
}

// TestPlaintextOffLoopbackIsRefused: the coordinator will not listen on an address other hosts
// can reach without TLS, unless told --insecure.
func TestPlaintextOffLoopbackIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(binDir, "enrich-coordinator"), "--listen", "0.0.0.0:0", "--http", "127.0.0.1:0",
		"--store", "sqlite:"+filepath.Join(dir, "enrich.db"), "--dossiers", filepath.Join(dir, "d"))
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "refusing to serve listen 0.0.0.0:0 without TLS")
}
