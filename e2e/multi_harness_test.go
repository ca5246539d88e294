package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sportsintel/enrich/coordinator/store/invariant"
	"github.com/sportsintel/enrich/coordinator/store/postgres"
	"github.com/sportsintel/enrich/coordinator/store/postgres/pgtest"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// fleet is several coordinator processes on one PostgreSQL schema behind a real haproxy in gRPC
// (HTTP/2 cleartext) mode. Agents and enrichctl talk only to the balancer.
type fleet struct {
	*cluster
	storeURL string
	coords   []*fleetMember
	lb       *proc
}

type fleetMember struct {
	addr, httpAddr string
	args           []string
	proc           *proc
}

// haproxyConfig balances gRPC streams round-robin over the coordinators. The health check reads
// each coordinator's /readyz (503 while draining or without its database), and a connection
// refused by a dead coordinator is retried on another one.
func haproxyConfig(listen string, members []*fleetMember) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    maxconn 2000
defaults
    mode http
    timeout connect 1s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    retries 3
    option redispatch
frontend grpc
    bind %s proto h2
    default_backend coordinators
backend coordinators
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz
    http-check expect status 200
    default-server inter 300ms fall 2 rise 1
`, listen)
	for i, m := range members {
		_, port, _ := strings.Cut(m.httpAddr, ":")
		fmt.Fprintf(&b, "    server c%d %s proto h2 check port %s check-proto h1\n", i+1, m.addr, port)
	}
	return b.String()
}

func haproxyPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/haproxy", "/usr/local/sbin/haproxy"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("haproxy")
	require.NoError(t, err, "haproxy is needed for the several-coordinator tests (apt-get install haproxy)")
	return p
}

// startExternal starts a program that is not one of ours (haproxy, nginx) the way start does.
func startExternal(t *testing.T, path string, args ...string) *proc {
	t.Helper()
	name := filepath.Base(path)
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("--- %s log ---\n%s", name, tail(string(out), 4000))
		}
	})
	return p
}

// newFleet starts n coordinators on a fresh PostgreSQL schema, haproxy in front of them, and
// returns a cluster whose address is the balancer's.
func newFleet(t *testing.T, n int, config string) *fleet {
	t.Helper()
	return newFleetWith(t, fleetOpts{n: n, config: config})
}

// balancer starts a load balancer on listen in front of the fleet's coordinators; dir is the
// fleet's folder for its configuration.
type balancer func(t *testing.T, dir, listen string, members []*fleetMember) *proc

type fleetOpts struct {
	n      int
	config string // enrich.yaml contents
	// lb is the balancer in front of the coordinators (default: haproxy).
	lb balancer
	// coordArgs are added to every coordinator's command line.
	coordArgs []string
}

// startHAProxy runs haproxy with haproxyConfig in the foreground.
func startHAProxy(t *testing.T, dir, listen string, members []*fleetMember) *proc {
	t.Helper()
	cfg := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(cfg, []byte(haproxyConfig(listen, members)), 0o644))
	return startExternal(t, haproxyPath(t), "-db", "-f", cfg)
}

// newFleetWith starts opts.n coordinators on a fresh PostgreSQL schema and a balancer in front of
// them, and returns a cluster whose address is the balancer's.
func newFleetWith(t *testing.T, opts fleetOpts) *fleet {
	t.Helper()
	n, config := opts.n, opts.config
	if opts.lb == nil {
		opts.lb = startHAProxy
	}
	url := pgtest.Schema(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "enrich.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(config), 0o644))
	f := &fleet{storeURL: url}
	for range n {
		m := &fleetMember{addr: freeAddr(t), httpAddr: freeAddr(t)}
		// One dossier folder: whichever coordinator ends a batch writes its outputs there.
		m.args = []string{"--listen", m.addr, "--http", m.httpAddr, "--store", url, "--dossiers", filepath.Join(dir, "dossiers"),
			"--config", cfgPath, "--log-level", "debug"}
		m.args = append(m.args, opts.coordArgs...)
		m.proc = start(t, "enrich-coordinator", m.args...)
		f.coords = append(f.coords, m)
	}
	for _, m := range f.coords {
		waitServing(t, m.addr)
	}
	lbAddr := freeAddr(t)
	f.lb = opts.lb(t, dir, lbAddr, f.coords)
	conn, err := grpc.NewClient(lbAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	f.cluster = &cluster{t: t, addr: lbAddr, dir: dir, dossiers: filepath.Join(dir, "dossiers"), ctl: enrichv1.NewControlServiceClient(conn)}
	waitServing(t, lbAddr)
	return f
}

// waitServing waits until the gRPC health service at addr says SERVING.
func waitServing(t *testing.T, addr string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil && res.GetStatus() == healthpb.HealthCheckResponse_SERVING
	}, 30*time.Second, 50*time.Millisecond, "%s never became healthy", addr)
}

// restart stops coordinator i gracefully (it drains its agents) and starts it again.
func (f *fleet) restart(i int) {
	f.t.Helper()
	m := f.coords[i]
	m.proc.stop()
	m.proc = start(f.t, "enrich-coordinator", m.args...)
	waitServing(f.t, m.addr)
}

// agents lists the agents this coordinator reports, asked directly rather than through the
// balancer: agent id -> the coordinator serving its stream.
func (m *fleetMember) agents(t *testing.T) map[string]string {
	t.Helper()
	conn, err := grpc.NewClient(m.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	res, err := enrichv1.NewControlServiceClient(conn).ListAgents(context.Background(), &enrichv1.ListAgentsRequest{})
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, a := range res.GetAgents() {
		out[a.GetAgentId()] = a.GetCoordinator()
	}
	return out
}

// agentsByCoordinator lists, for each agent, the coordinator address its session is on.
func (f *fleet) agentsByCoordinator() map[string]string {
	f.t.Helper()
	res, err := f.ctl.ListAgents(context.Background(), &enrichv1.ListAgentsRequest{})
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, a := range res.GetAgents() {
		out[a.GetAgentId()] = a.GetCoordinator()
	}
	return out
}

// checkInvariants replays the batch's history from the shared database.
func (f *fleet) checkInvariants(batchID string) *invariant.Report {
	f.t.Helper()
	ctx := context.Background()
	st, err := postgres.Open(ctx, f.storeURL)
	require.NoError(f.t, err)
	defer st.Close()
	rep, err := invariant.Check(ctx, st, batchID)
	require.NoError(f.t, err)
	f.t.Log(rep.String())
	require.NoError(f.t, rep.Err())
	return rep
}

// agentAt starts an agent connected to coordinator m directly rather than through the balancer,
// so a test knows which coordinator holds its stream.
func (f *fleet) agentAt(m *fleetMember, id string, args ...string) *proc {
	f.t.Helper()
	return start(f.t, "enrich-agent", append([]string{"--coordinator", m.addr, "--id", id, "--log-level", "debug",
		"--drain-grace", "3s"}, args...)...)
}

// direct is a cluster view of coordinator m alone: its enrichctl and ControlService calls go to
// m, not through the balancer.
func (f *fleet) direct(m *fleetMember) *cluster {
	f.t.Helper()
	conn, err := grpc.NewClient(m.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(f.t, err)
	f.t.Cleanup(func() { conn.Close() })
	return &cluster{t: f.t, addr: m.addr, httpAddr: m.httpAddr, dir: f.dir, dossiers: f.dossiers,
		ctl: enrichv1.NewControlServiceClient(conn)}
}
