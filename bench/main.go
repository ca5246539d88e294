// Command bench measures throughput and lease dispatch latency of the real system: a coordinator
// process on a SQLite file and several agent processes with a zero-work runner, over loopback gRPC.
// It prints a table and, last, `bench: <N> entities/s p50=<ms> p99=<ms>`.
//
// Agents are this same binary started with -agent: they run the agent package with a zero-work
// runner (a valid dossier made once per schema, stamped with each lease's entity id) and print
// their dispatch latencies (credit sent -> lease received) on exit. The table also gives the CPU
// time the coordinators and the agents used per entity (a database server's is not included).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sportsintel/enrich/agent"
	"github.com/sportsintel/enrich/agent/runner"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

func main() {
	var (
		agentMode   = flag.Bool("agent", false, "run as one benchmark agent (internal)")
		coordinator = flag.String("coordinator", "", "coordinator address (agent mode)")
		id          = flag.String("id", "bench", "agent id (agent mode)")
		entities    = flag.Int("entities", 20000, "entities in the batch")
		agents      = flag.Int("agents", 4, "agent processes")
		slots       = flag.Int("slots", 256, "slots per agent")
		bin         = flag.String("bin", "bin", "folder holding enrich-coordinator")
		storeURL    = flag.String("store", "", "postgres://... to run the coordinators on PostgreSQL (default: a SQLite file)")
		coords      = flag.Int("coordinators", 1, "coordinator processes sharing the store (PostgreSQL only); agents are spread over them")
		cpuProfile  = flag.String("cpuprofile", "", "agent mode: write a CPU profile of this agent to the file")
	)
	flag.Parse()
	var err error
	if *agentMode {
		err = runAgent(*coordinator, *id, *slots, *cpuProfile)
	} else {
		err = runBench(*bin, *storeURL, *coords, *entities, *agents, *slots)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func runAgent(addr, id string, slots int, cpuProfile string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	a, err := agent.New(agent.Config{Coordinator: addr, ID: id, Types: []string{"entities", "persons", "leagues"}, Slots: slots,
		Runner: &zeroWork{templates: map[string][]byte{}}})
	if err != nil {
		return err
	}
	if err := a.Run(ctx); err != nil {
		return err
	}
	st := a.Stats()
	micros := make([]int64, len(st.DispatchLatencies))
	for i, d := range st.DispatchLatencies {
		micros[i] = d.Microseconds()
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"runs": st.RunsEnded, "latency_us": micros})
}

// zeroWork is the benchmark's runner: it answers at once with a valid dossier about the lease's
// entity, made once per schema by the offline runner and stamped with the entity id. Generating
// and self-validating an offline dossier per lease cost the agents more CPU than the whole
// coordinator did, and it is not what the benchmark measures: the runner's own work. The
// coordinator still validates every dossier it receives.
type zeroWork struct {
	mu        sync.Mutex
	templates map[string][]byte
}

const templateID = "bench-entity-id-placeholder"

func (z *zeroWork) Run(_ context.Context, lease *enrichv1.Lease) (*runner.Output, error) {
	z.mu.Lock()
	tmpl, ok := z.templates[lease.GetSchema()]
	if !ok {
		var err error
		tmpl, err = runner.OfflineDossier(&enrichv1.Entity{Id: templateID, Type: "Club", Name: "Bench Club"},
			lease.GetInstanceType(), lease.GetSchema(), time.Now())
		if err != nil {
			z.mu.Unlock()
			return nil, err
		}
		z.templates[lease.GetSchema()] = tmpl
	}
	z.mu.Unlock()
	// Bench entity ids need no JSON escaping.
	doc := bytes.ReplaceAll(tmpl, []byte(templateID), []byte(lease.GetEntity().GetId()))
	return &runner.Output{Dossier: doc, Metrics: &enrichv1.RunMetrics{Runner: "bench"}}, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func runBench(bin, storeURL string, coords, n, agents, slots int) error {
	work, err := os.MkdirTemp("", "enrich-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if storeURL == "" {
		if coords != 1 {
			return fmt.Errorf("several coordinators need a shared store: pass -store postgres://...")
		}
		storeURL = "sqlite:" + filepath.Join(work, "enrich.db")
	}
	// Consolidation writes two files per entity after the batch ends; it is not what is measured.
	cfgPath := filepath.Join(work, "enrich.yaml")
	if err := os.WriteFile(cfgPath, []byte("consolidation:\n  auto: false\n"), 0o644); err != nil {
		return err
	}
	var addrs []string
	var coordProcs []*exec.Cmd
	for i := range coords {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		httpAddr, err := freeAddr()
		if err != nil {
			return err
		}
		if h := os.Getenv("BENCH_HTTP"); h != "" && i == 0 {
			httpAddr = h
		}
		coord := exec.Command(filepath.Join(bin, "enrich-coordinator"), "--listen", addr, "--http", httpAddr,
			"--store", storeURL, "--dossiers", filepath.Join(work, "dossiers"), "--config", cfgPath, "--log-level", "warn")
		coord.Stderr = os.Stderr
		if err := coord.Start(); err != nil {
			return fmt.Errorf("start coordinator (run `make build` first): %w", err)
		}
		defer func() {
			if coord.ProcessState == nil {
				_ = coord.Process.Signal(syscall.SIGTERM)
				_ = coord.Wait()
			}
		}()
		coordProcs = append(coordProcs, coord)
		addrs = append(addrs, addr)
	}
	addr := addrs[0]

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20), grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx := context.Background()
	if err := waitHealthy(ctx, conn); err != nil {
		return err
	}
	ctl := enrichv1.NewControlServiceClient(conn)

	self, err := os.Executable()
	if err != nil {
		return err
	}
	type agentProc struct {
		cmd *exec.Cmd
		out *os.File
	}
	var procs []agentProc
	for i := range agents {
		out, err := os.Create(filepath.Join(work, fmt.Sprintf("agent-%d.json", i)))
		if err != nil {
			return err
		}
		// Agents spread over the coordinators as a round-robin load balancer would spread them.
		cmd := exec.Command(self, "-agent", "-coordinator", addrs[i%len(addrs)], "-id", fmt.Sprintf("bench-%d", i), "-slots", fmt.Sprint(slots))
		if p := os.Getenv("BENCH_AGENT_PROFILE"); p != "" && i == 0 {
			cmd.Args = append(cmd.Args, "-cpuprofile", p)
		}
		cmd.Stdout, cmd.Stderr = out, os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		procs = append(procs, agentProc{cmd, out})
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		res, err := ctl.ListAgents(ctx, &enrichv1.ListAgentsRequest{})
		if err == nil && len(res.GetAgents()) == agents {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agents did not connect")
		}
		time.Sleep(50 * time.Millisecond)
	}

	req := &enrichv1.PrepareBatchRequest{Source: "bench", Capacity: map[string]int32{"entities": int32(n)}}
	for i := range n {
		req.Entities = append(req.Entities, &enrichv1.Entity{Id: fmt.Sprintf("bench-%06d", i), Type: "Club", Name: fmt.Sprintf("Bench Club %d", i)})
	}
	prepStart := time.Now()
	prep, err := ctl.PrepareBatch(ctx, req)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	prepDur := time.Since(prepStart)
	id := prep.GetBatch().GetId()
	if _, err := ctl.LaunchBatch(ctx, &enrichv1.LaunchBatchRequest{BatchId: id}); err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	var b *enrichv1.Batch
	for {
		res, err := ctl.GetBatch(ctx, &enrichv1.GetBatchRequest{BatchId: id})
		if err != nil {
			return err
		}
		b = res.GetBatch()
		if b.GetFinishedAt() != nil {
			break
		}
		// Progress counts cost the coordinator a pass over the batch's index; poll gently. The
		// measurement uses the coordinator's own timestamps, so polling adds no error.
		time.Sleep(250 * time.Millisecond)
	}
	// Coordinator timestamps: from the launch to the commit of the last result.
	elapsed := b.GetFinishedAt().AsTime().Sub(b.GetLaunchedAt().AsTime())
	succeeded := 0
	for _, p := range b.GetInstances() {
		succeeded += int(p.GetSucceeded())
	}

	var lat []time.Duration
	var agentCPU, coordCPU time.Duration
	runs := 0
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Wait()
		agentCPU += cpuTime(p.cmd)
		p.out.Close()
		raw, err := os.ReadFile(p.out.Name())
		if err != nil {
			return err
		}
		var st struct {
			Runs      int     `json:"runs"`
			LatencyUS []int64 `json:"latency_us"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("agent stats: %w", err)
		}
		runs += st.Runs
		for _, us := range st.LatencyUS {
			lat = append(lat, time.Duration(us)*time.Microsecond)
		}
	}
	slices.Sort(lat)
	rate := float64(succeeded) / elapsed.Seconds()

	// Everything the processes did, preparing the batch included; a database server's own work is
	// not in it.
	for _, c := range coordProcs {
		_ = c.Process.Signal(syscall.SIGTERM)
		_ = c.Wait()
		coordCPU += cpuTime(c)
	}
	perEntity := func(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d.Microseconds())/float64(n)) }

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	store, _, _ := strings.Cut(storeURL, ":")
	fmt.Fprintln(tw, "store\tcoordinators\tentities\tagents\tslots/agent\tsucceeded\tprepare\trun\tentities/s\tdispatch p50\tp90\tp99\tmax\tCPU/entity: coordinators\tagents\t")
	fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", store, coords, n, agents, slots, succeeded, prepDur.Round(time.Millisecond),
		elapsed.Round(time.Millisecond), rate, q(lat, 0.5), q(lat, 0.9), q(lat, 0.99), q(lat, 1), perEntity(coordCPU), perEntity(agentCPU))
	tw.Flush()
	if succeeded != n || runs < n {
		return fmt.Errorf("only %d of %d entities succeeded (%d runs)", succeeded, n, runs)
	}
	fmt.Printf("bench: %d entities/s p50=%.2f p99=%.2f\n", int(rate), ms(q(lat, 0.5)), ms(q(lat, 0.99)))
	return nil
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

func q(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

// cpuTime is the user and system time an exited process used.
func cpuTime(c *exec.Cmd) time.Duration {
	if c.ProcessState == nil {
		return 0
	}
	return c.ProcessState.UserTime() + c.ProcessState.SystemTime()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
