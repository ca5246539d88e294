package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/sportsintel/enrich/coordinator/config"
	"github.com/sportsintel/enrich/ctl/entityfile"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

type setup struct {
	bin, entities, order string
	seed                 uint64
	slots                int
}

// outcome is one agent count's measurement.
type outcome struct {
	agents, slots int
	makespan      time.Duration
	bound         bound
	listSched     time.Duration // zero-overhead greedy schedule in the coordinator's lease order
	typeSched     time.Duration // the same, longest instance type first within a priority
	lptSched      time.Duration // the same, longest work first, priorities ignored
	tl            timeline
}

func runAll(s setup, counts []int) error {
	ents, err := entityfile.Read(s.entities)
	if err != nil {
		return err
	}
	if ents, err = ordered(ents, s.order, s.seed); err != nil {
		return err
	}
	var outs []outcome
	for _, n := range counts {
		o, err := runOnce(s, ents, n)
		if err != nil {
			return fmt.Errorf("%d agents: %w", n, err)
		}
		outs = append(outs, o)
	}
	printTables(os.Stdout, s, len(ents), outs)
	return nil
}

// ordered returns the batch's entities in the order they should be leased. The coordinator
// leases by priority, then file order, so the file order is the lever:
//   - file keeps the file and its priorities, as an operator launching it would;
//   - type sorts by the instance type's mean work, longest type first, keeping priorities and
//     file order within a type: what the coordinator could do itself, knowing only per-type
//     expected durations, without overriding priorities;
//   - longest sorts by each entity's drawn work and drops the priorities: the best case, with
//     knowledge no real coordinator has.
func ordered(ents []*enrichv1.Entity, order string, seed uint64) ([]*enrichv1.Entity, error) {
	if order == "file" {
		return ents, nil
	}
	if order != "type" && order != "longest" {
		return nil, fmt.Errorf("-order %q: want file, type or longest", order)
	}
	cfg := config.Default()
	key := map[string]time.Duration{}
	out := make([]*enrichv1.Entity, len(ents))
	for i, e := range ents {
		typ, ok := cfg.InstanceForEntityType(e.GetType())
		if !ok {
			return nil, fmt.Errorf("entity %s: no instance type for %q", e.GetId(), e.GetType())
		}
		out[i] = e
		if order == "type" {
			key[e.GetId()] = meanWork(typ)
			continue
		}
		w, err := workFor(seed, typ, e.GetId())
		if err != nil {
			return nil, err
		}
		key[e.GetId()] = w
		out[i] = proto.CloneOf(e)
		out[i].Priority = enrichv1.Priority_PRIORITY_UNSPECIFIED
	}
	slices.SortStableFunc(out, func(a, b *enrichv1.Entity) int { return cmp.Compare(key[b.GetId()], key[a.GetId()]) })
	return out, nil
}

// coordinatorConfig keeps consolidation out of the makespan (it runs after the batch ends, and
// writes files the measurement does not need) and sets the seed's per-type caps.
func coordinatorConfig() string {
	var b strings.Builder
	b.WriteString("consolidation:\n  auto: false\nresource_allocation:\n")
	for _, typ := range slices.Sorted(maps.Keys(seedCaps)) {
		fmt.Fprintf(&b, "  %s:\n    max_concurrent: %d\n", typ, seedCaps[typ])
	}
	return b.String()
}

func runOnce(s setup, ents []*enrichv1.Entity, agents int) (outcome, error) {
	o := outcome{agents: agents, slots: agents * s.slots}
	work, err := os.MkdirTemp("", "enrich-bench-agents-")
	if err != nil {
		return o, err
	}
	defer os.RemoveAll(work)
	addr, stop, err := startCoordinator(work, s.bin)
	if err != nil {
		return o, err
	}
	defer stop()

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return o, err
	}
	defer conn.Close()
	ctx := context.Background()
	if err := waitHealthy(ctx, conn); err != nil {
		return o, err
	}
	ctl := enrichv1.NewControlServiceClient(conn)

	procs, err := startAgents(work, addr, agents, s)
	if err != nil {
		return o, err
	}
	defer procs.kill()
	if err := waitAgents(ctx, ctl, agents); err != nil {
		return o, err
	}

	prep, err := ctl.PrepareBatch(ctx, &enrichv1.PrepareBatchRequest{Source: "bench-agents", Entities: ents})
	if err != nil {
		return o, fmt.Errorf("prepare: %w", err)
	}
	batchID := prep.GetBatch().GetId()
	items, err := listItems(ctx, ctl, batchID)
	if err != nil {
		return o, err
	}
	if len(items) != len(ents) {
		return o, fmt.Errorf("prepared %d of %d entities", len(items), len(ents))
	}
	jobs, err := leaseOrder(items, s.seed)
	if err != nil {
		return o, err
	}
	o.bound = idealMakespan(jobs, o.slots, seedCaps)
	o.listSched = listSchedule(jobs, o.slots, seedCaps)
	o.typeSched = listSchedule(typeFirst(jobs), o.slots, seedCaps)
	o.lptSched = listSchedule(longestFirst(jobs), o.slots, seedCaps)

	if _, err := ctl.LaunchBatch(ctx, &enrichv1.LaunchBatchRequest{BatchId: batchID}); err != nil {
		return o, fmt.Errorf("launch: %w", err)
	}
	b, err := waitFinished(ctx, ctl, batchID)
	if err != nil {
		return o, err
	}
	o.makespan = b.GetFinishedAt().AsTime().Sub(b.GetLaunchedAt().AsTime())
	if err := allSucceeded(b, len(ents)); err != nil {
		return o, err
	}
	if items, err = listItems(ctx, ctl, batchID); err != nil {
		return o, err
	}
	reports, err := procs.stop()
	if err != nil {
		return o, err
	}
	o.tl = newTimeline(b, items, reports, s.slots, s.seed)
	if len(o.tl.runs) != len(ents) {
		return o, fmt.Errorf("%d runs for %d entities: a lease was retried, the makespan is not comparable", len(o.tl.runs), len(ents))
	}
	return o, nil
}

// startCoordinator starts a coordinator on a fresh SQLite file in dir; stop ends it.
func startCoordinator(dir, bin string) (addr string, stop func(), err error) {
	cfgPath := filepath.Join(dir, "enrich.yaml")
	if err := os.WriteFile(cfgPath, []byte(coordinatorConfig()), 0o644); err != nil {
		return "", nil, err
	}
	if addr, err = freeAddr(); err != nil {
		return "", nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	coord := exec.Command(filepath.Join(bin, "enrich-coordinator"), "--listen", addr, "--http", httpAddr,
		"--store", "sqlite:"+filepath.Join(dir, "enrich.db"), "--dossiers", filepath.Join(dir, "dossiers"),
		"--config", cfgPath, "--log-level", "warn")
	coord.Stderr = os.Stderr
	if err := coord.Start(); err != nil {
		return "", nil, fmt.Errorf("start coordinator (run `make build` first): %w", err)
	}
	return addr, func() { _ = coord.Process.Signal(syscall.SIGTERM); _ = coord.Wait() }, nil
}

// leaseOrder is the batch's items in the order the coordinator claims them: by priority, then
// item id, which prepare gives in file order. The entity a lease carries holds the item's
// priority, prepare's default applied.
func leaseOrder(items []*enrichv1.Item, seed uint64) ([]job, error) {
	items = slices.Clone(items)
	slices.SortFunc(items, func(a, b *enrichv1.Item) int {
		return cmp.Or(cmp.Compare(b.GetEntity().GetPriority(), a.GetEntity().GetPriority()), cmp.Compare(a.GetItemId(), b.GetItemId()))
	})
	jobs := make([]job, len(items))
	for i, it := range items {
		w, err := workFor(seed, it.GetInstanceType(), it.GetEntity().GetId())
		if err != nil {
			return nil, err
		}
		jobs[i] = job{typ: it.GetInstanceType(), work: w, priority: int(it.GetEntity().GetPriority())}
	}
	return jobs, nil
}

func allSucceeded(b *enrichv1.Batch, n int) error {
	ok := 0
	for _, p := range b.GetInstances() {
		ok += int(p.GetSucceeded())
	}
	if ok != n {
		return fmt.Errorf("only %d of %d entities succeeded", ok, n)
	}
	return nil
}

// agentProc is one agent process and the file its report goes to.
type agentProc struct {
	cmd *exec.Cmd
	out *os.File
}

type agentProcs []agentProc

func startAgents(dir, addr string, n int, s setup) (agentProcs, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var procs agentProcs
	for i := range n {
		out, err := os.Create(filepath.Join(dir, fmt.Sprintf("agent-%d.json", i)))
		if err != nil {
			procs.kill()
			return nil, err
		}
		cmd := exec.Command(self, "-agent", "-coordinator", addr, "-id", fmt.Sprintf("bench-%d", i),
			"-slots", fmt.Sprint(s.slots), "-seed", fmt.Sprint(s.seed))
		cmd.Stdout, cmd.Stderr = out, os.Stderr
		if err := cmd.Start(); err != nil {
			out.Close()
			procs.kill()
			return nil, err
		}
		procs = append(procs, agentProc{cmd, out})
	}
	return procs, nil
}

// stop asks every agent to exit and reads what each measured.
func (p agentProcs) stop() ([]agentReport, error) {
	for _, a := range p {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
	}
	var reports []agentReport
	for _, a := range p {
		_ = a.cmd.Wait()
		a.out.Close()
		raw, err := os.ReadFile(a.out.Name())
		if err != nil {
			return nil, err
		}
		var rep agentReport
		if err := json.Unmarshal(raw, &rep); err != nil {
			return nil, fmt.Errorf("agent report %s: %w", filepath.Base(a.out.Name()), err)
		}
		reports = append(reports, rep)
	}
	return reports, nil
}

// kill ends agents still running after an error; after stop it finds nothing to do.
func (p agentProcs) kill() {
	for _, a := range p {
		if a.cmd.ProcessState == nil {
			_ = a.cmd.Process.Kill()
			_ = a.cmd.Wait()
		}
		a.out.Close()
	}
}

func waitAgents(ctx context.Context, ctl enrichv1.ControlServiceClient, n int) error {
	for deadline := time.Now().Add(30 * time.Second); ; {
		res, err := ctl.ListAgents(ctx, &enrichv1.ListAgentsRequest{})
		if err == nil && len(res.GetAgents()) == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d agents did not connect within 30s", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitFinished(ctx context.Context, ctl enrichv1.ControlServiceClient, id string) (*enrichv1.Batch, error) {
	for deadline := time.Now().Add(5 * time.Minute); ; {
		res, err := ctl.GetBatch(ctx, &enrichv1.GetBatchRequest{BatchId: id})
		if err != nil {
			return nil, err
		}
		if b := res.GetBatch(); b.GetFinishedAt() != nil {
			return b, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("batch %s not finished after 5 minutes", id)
		}
		// The makespan comes from the coordinator's timestamps, so the poll period adds no
		// error; a slow poll leaves the two cores to the system under test.
		time.Sleep(100 * time.Millisecond)
	}
}

func listItems(ctx context.Context, ctl enrichv1.ControlServiceClient, id string) ([]*enrichv1.Item, error) {
	res, err := ctl.ListItems(ctx, &enrichv1.ListItemsRequest{BatchId: id, Limit: 10000})
	if err != nil {
		return nil, fmt.Errorf("list items: %w", err)
	}
	return res.GetItems(), nil
}

func waitHealthy(ctx context.Context, conn *grpc.ClientConn) error {
	h := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, cancel := context.WithTimeout(ctx, time.Second)
		res, err := h.Check(c, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && res.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("coordinator not healthy: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
