package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// Agents on separate hosts: each agent runs in a network namespace of its own, joined to the
// coordinator's host by a veth pair, so cutting an agent's link is a real link going down (the
// kernel drops its packets; both ends keep their sockets open and learn nothing) rather than a
// process or proxy misbehaving.
//
// These tests need root and iproute2's `ip` (`make test` runs as root in CI, and .ci/run installs
// iproute2). Without them they fail, saying so, unless ENRICH_SKIP_NETNS=1 skips them on purpose.

// envSkipNetns, set to 1, skips the network-namespace tests instead of failing them.
const envSkipNetns = "ENRICH_SKIP_NETNS"

// netnsPrefix starts every namespace these tests create, followed by the creating process's pid,
// so a later run can delete what a crashed run left behind without touching a live run's.
const netnsPrefix = "enrich-e2e-"

var (
	// netnsMu serialises the choice of subnets between the tests of this process.
	netnsMu sync.Mutex
	// netnsSweep deletes leftovers of crashed runs once per process, before the first lab.
	netnsSweep sync.Once
)

// netLab is a coordinator address and n agent hosts, each a namespace with a veth link to the
// test's own namespace. Addresses come from one /24 of 10.0.0.0/8 not in use on this machine:
// .1/32 is the coordinator's, and host i has the /30 at .4(i+1) (.4(i+1)+1 on the test's side,
// .4(i+1)+2 inside the namespace).
type netLab struct {
	t       *testing.T
	coordIP string
	hosts   []*netHost
}

type netHost struct {
	ns      string // namespace name
	hostDev string // the link's end on the coordinator's side: set down to cut the host off
	ip      string // the agent's address
}

// requireNetns fails the test when it cannot make namespaces, unless ENRICH_SKIP_NETNS=1.
func requireNetns(t *testing.T) {
	t.Helper()
	if os.Getenv(envSkipNetns) == "1" {
		t.Skipf("%s=1: skipping a test that needs network namespaces", envSkipNetns)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("network-namespace tests need root (ip netns add, veth links); run as root or set %s=1 to skip them", envSkipNetns)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("network-namespace tests need iproute2's ip (apt-get install iproute2), or set %s=1 to skip them: %v", envSkipNetns, err)
	}
}

// ip runs iproute2's ip with args and fails the test with its output when it fails.
func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := ipRun(args...); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func ipRun(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	return string(out), err
}

// sweepNetns deletes namespaces that a run that is no longer alive left behind (a crash, or a
// kill -9 of go test, skips t.Cleanup). A namespace's veth ends go with it.
func sweepNetns(t *testing.T) {
	out, err := ipRun("netns", "list")
	if err != nil {
		t.Fatalf("ip netns list: %v\n%s (network namespaces unavailable; set %s=1 to skip these tests)", err, out, envSkipNetns)
	}
	for _, line := range strings.Split(out, "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, netnsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		if out, err := ipRun("netns", "delete", name); err != nil {
			t.Logf("delete leftover namespace %s: %v\n%s", name, err, out)
		} else {
			t.Logf("deleted namespace %s left by a run that died", name)
		}
	}
}

// freeSubnet picks a /24 of 10.0.0.0/8 that no address on this machine is in. Called with netnsMu held.
func freeSubnet(t *testing.T) string {
	t.Helper()
	out, err := ipRun("-o", "-4", "addr", "show")
	require.NoError(t, err, out)
	for range 100 {
		prefix := fmt.Sprintf("10.%d.%d.", 200+mrand.IntN(50), mrand.IntN(256))
		if !strings.Contains(out, " "+prefix) {
			return prefix
		}
	}
	t.Fatal("no free 10.x.y.0/24 for the test hosts")
	return ""
}

// newNetLab creates the coordinator's address and n agent hosts, and deletes them all when the
// test ends, whatever its outcome.
func newNetLab(t *testing.T, n int) *netLab {
	t.Helper()
	requireNetns(t)
	netnsSweep.Do(func() { sweepNetns(t) })
	var b [3]byte
	_, _ = rand.Read(b[:])
	tag := hex.EncodeToString(b[:]) // in interface names too: at most 15 bytes, "ev"+6+"h"+2
	nsName := func(role string) string { return fmt.Sprintf("%s%d-%s-%s", netnsPrefix, os.Getpid(), tag, role) }
	addNS := func(name string) {
		ip(t, "netns", "add", name)
		// Registered before any process starts in it, so it runs after they are stopped.
		t.Cleanup(func() {
			if out, err := ipRun("netns", "delete", name); err != nil {
				t.Errorf("delete namespace %s: %v\n%s", name, err, out)
			}
		})
		ip(t, "-n", name, "link", "set", "lo", "up")
	}

	netnsMu.Lock()
	defer netnsMu.Unlock()
	prefix := freeSubnet(t)
	lab := &netLab{t: t, coordIP: prefix + "1"}

	// The coordinator's address sits on a veth whose peer lives in a namespace of its own: a
	// link that stays up whichever agent link is cut (this kernel may have no dummy links).
	coordNS := nsName("c")
	addNS(coordNS)
	coordDev := "ev" + tag + "c"
	ip(t, "link", "add", coordDev, "type", "veth", "peer", "name", "eth0", "netns", coordNS)
	ip(t, "-n", coordNS, "link", "set", "eth0", "up")
	ip(t, "addr", "add", lab.coordIP+"/32", "dev", coordDev)
	ip(t, "link", "set", coordDev, "up")

	for i := range n {
		h := &netHost{ns: nsName(fmt.Sprintf("a%d", i)), hostDev: fmt.Sprintf("ev%sh%d", tag, i)}
		base := 4 * (i + 1)
		gw := fmt.Sprintf("%s%d", prefix, base+1)
		h.ip = fmt.Sprintf("%s%d", prefix, base+2)
		addNS(h.ns)
		// Created with its peer already inside the namespace, so deleting the namespace always
		// deletes the pair: no half can be left on this side.
		ip(t, "link", "add", h.hostDev, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
		ip(t, "addr", "add", gw+"/30", "dev", h.hostDev)
		ip(t, "link", "set", h.hostDev, "up")
		ip(t, "-n", h.ns, "addr", "add", h.ip+"/30", "dev", "eth0")
		ip(t, "-n", h.ns, "link", "set", "eth0", "up")
		ip(t, "-n", h.ns, "route", "add", "default", "via", gw)
		lab.hosts = append(lab.hosts, h)
	}
	return lab
}

// cut takes host h off the network: its link goes down on the coordinator's side.
func (l *netLab) cut(h *netHost) { l.t.Helper(); ip(l.t, "link", "set", h.hostDev, "down") }

// restore brings host h's link back.
func (l *netLab) restore(h *netHost) { l.t.Helper(); ip(l.t, "link", "set", h.hostDev, "up") }

// coordinator starts a coordinator on SQLite listening on the lab's coordinator address (not
// loopback, so in plaintext only with --insecure); its HTTP side stays on loopback.
func (l *netLab) coordinator(config string) *cluster {
	t := l.t
	t.Helper()
	lis, err := net.Listen("tcp", net.JoinHostPort(l.coordIP, "0"))
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())
	dir := t.TempDir()
	c := &cluster{t: t, addr: addr, httpAddr: freeAddr(t), dir: dir, dossiers: filepath.Join(dir, "dossiers")}
	cfgPath := filepath.Join(dir, "enrich.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(config), 0o644))
	c.args = []string{"--listen", c.addr, "--insecure", "--http", c.httpAddr, "--store", "sqlite:" + filepath.Join(dir, "enrich.db"),
		"--dossiers", c.dossiers, "--config", cfgPath, "--log-level", "debug"}
	c.coord = start(t, "enrich-coordinator", c.args...)
	waitServing(t, c.addr)
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	c.ctl = enrichv1.NewControlServiceClient(conn)
	return c
}

// agent starts enrich-agent inside host h's namespace (ip netns exec execs it, so the pid is the
// agent's), connected to c over h's link.
func (l *netLab) agent(c *cluster, h *netHost, id string, args ...string) *proc {
	t := l.t
	t.Helper()
	logPath := filepath.Join(t.TempDir(), id+".log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	all := append([]string{"netns", "exec", h.ns, filepath.Join(binDir, "enrich-agent"), "--coordinator", c.addr, "--insecure",
		"--id", id, "--log-level", "debug", "--drain-grace", "3s", "--spool", t.TempDir()}, args...)
	cmd := exec.Command("ip", all...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("--- agent %s on %s (%s) log ---\n%s", id, h.ns, h.ip, tail(string(out), 6000))
		}
	})
	return p
}

// agentSeen returns when the coordinator last heard from the agent, zero when it is not connected.
func agentSeen(c *cluster, id string) time.Time {
	res, err := c.ctl.ListAgents(context.Background(), &enrichv1.ListAgentsRequest{})
	if err != nil {
		return time.Time{}
	}
	for _, a := range res.GetAgents() {
		if a.GetAgentId() == id {
			return a.GetLastHeartbeat().AsTime()
		}
	}
	return time.Time{}
}

// One agent's link goes down for longer than the lease TTL while its runners keep working: its
// leases expire and a second agent, on another host, takes them over. When the link comes back
// the cut agent delivers its finished runs late; fencing drops those whose entity already
// succeeded (duplicates) and accepts the others (cancelling the newer lease). One dossier per
// entity, and the replayed history keeps every promise.
func TestNetnsLinkCutPastLeaseTTL(t *testing.T) {
	t.Parallel()
	lab := newNetLab(t, 2)
	c := lab.coordinator(faultConfig(20, "1m"))
	victim, other := lab.hosts[0], lab.hosts[1]
	cutAgent := lab.agent(c, victim, "agent-cut", append([]string{"--types", "entities", "--slots", "4"},
		faultAgentArgs(t, "-delay 2500ms")...)...)
	c.waitAgents(1)
	id := launchInsecure(t, c, 4)
	waitFor(t, 20*time.Second, "all leased by the agent about to be cut", func() bool { return c.progress(id, "entities").GetLeased() == 4 })

	lab.cut(victim)
	cutAt := time.Now()
	// Past the TTL (2s) without a heartbeat the leases expire and the items go back to pending.
	waitFor(t, 10*time.Second, "the cut agent's leases expired", func() bool { return c.progress(id, "entities").GetLeased() == 0 })
	// Two entities finish at once on the other host, two take 3 s more there, so the cut
	// agent's late results (its runs end 2.5 s after they started) meet both cases.
	plan := writePlan(t, "club-0000 ok", "club-0001 ok", "club-0002 slow", "club-0003 slow")
	lab.agent(c, other, "agent-other", append([]string{"--types", "entities", "--slots", "4"},
		faultAgentArgs(t, "-delay 10ms -plan "+plan)...)...)
	waitFor(t, 20*time.Second, "the fast ones done on the other host", func() bool { return c.progress(id, "entities").GetSucceeded() >= 2 })
	require.True(t, alive(cutAgent.cmd.Process.Pid), "the cut agent keeps running")
	// Its runners go on behind the cut; give them time to end, then bring the link back.
	time.Sleep(max(0, 3*time.Second-time.Since(cutAt)))
	lab.restore(victim)
	t.Logf("link of %s down for %v", victim.ns, time.Since(cutAt).Round(time.Millisecond))
	restoredAt := time.Now()
	waitFor(t, 20*time.Second, "the cut agent heard from again", func() bool { return agentSeen(c, "agent-cut").After(restoredAt) })

	b := c.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	require.Equal(t, 4, jsonFiles(t, b.GetOutputDir(), "entities"), "one dossier per entity")
	// The batch may end before the late duplicates arrive: wait for all four late results.
	var late int
	waitFor(t, 20*time.Second, "the cut agent's four late results fenced", func() bool {
		rep := c.checkInvariants(id)
		late = rep.Duplicates + rep.LateWins
		return late == 4
	})
	rep := c.checkInvariants(id)
	require.Equal(t, 4, rep.Succeeded)
	require.Equal(t, rep.LateWins, rep.Superseded, "every late win cancelled the newer lease")
	t.Logf("late results: %d duplicates, %d accepted late", rep.Duplicates, rep.LateWins)
}

// Every agent's link goes down in turn for longer than the lease TTL while a batch runs, then
// comes back: the batch completes with one dossier per entity and a clean history.
func TestNetnsRollingLinkFlap(t *testing.T) {
	t.Parallel()
	const n = 200
	lab := newNetLab(t, 3)
	c := lab.coordinator(faultConfig(n, "1m"))
	for i, h := range lab.hosts {
		lab.agent(c, h, fmt.Sprintf("agent-%d", i), append([]string{"--types", "entities", "--slots", "3"},
			faultAgentArgs(t, "-delay 300ms-500ms")...)...)
	}
	c.waitAgents(3)
	id := launchInsecure(t, c, n)
	done := int32(0)
	for i, h := range lab.hosts {
		waitFor(t, 30*time.Second, "progress before the next flap", func() bool { return c.progress(id, "entities").GetSucceeded() > done+10 })
		require.Equal(t, enrichv1.BatchState_BATCH_STATE_RUNNING, c.batch(id).GetState(), "the flap must hit a running batch")
		lab.cut(h)
		time.Sleep(3 * time.Second) // past the 2 s TTL
		lab.restore(h)
		up := time.Now()
		waitFor(t, 20*time.Second, "the agent heard from again", func() bool { return agentSeen(c, fmt.Sprintf("agent-%d", i)).After(up) })
		done = c.progress(id, "entities").GetSucceeded()
		t.Logf("flapped %s at %d succeeded", h.ns, done)
	}
	b := c.waitConsolidated(id)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_COMPLETED, b.GetState())
	require.Equal(t, n, jsonFiles(t, b.GetOutputDir(), "entities"), "one dossier per entity")
	rep := c.checkInvariants(id)
	require.Equal(t, n, rep.Succeeded)
	require.Greater(t, rep.Grants, n, "leases lapsed behind the cuts and were granted again")
	require.Len(t, agentsOf(t, c), 3, "every agent is back")
}

// launchInsecure prepares and launches n entities with enrichctl, in plaintext to the
// coordinator's non-loopback address.
func launchInsecure(t *testing.T, c *cluster, n int) string {
	t.Helper()
	id := batchIDFrom(t, c.enrichctl("--insecure", "prepare", "--from", writeEntities(t, n)))
	r := c.enrichctl("--insecure", "launch", id)
	require.Equal(t, 0, r.code, r.stderr)
	return id
}

func agentsOf(t *testing.T, c *cluster) []*enrichv1.AgentInfo {
	t.Helper()
	res, err := c.ctl.ListAgents(context.Background(), &enrichv1.ListAgentsRequest{})
	require.NoError(t, err)
	return res.GetAgents()
}
