package main

import (
	"context"
	"encoding/json"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/sportsintel/enrich/agent"
	"github.com/sportsintel/enrich/agent/runner"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// runRecord is one run as its agent saw it, in wall-clock nanoseconds: agents and coordinator
// share the host clock, so these compare with the coordinator's timestamps.
type runRecord struct {
	ItemID  int64  `json:"item_id"`
	Entity  string `json:"entity"`
	Type    string `json:"type"`
	StartNS int64  `json:"start_ns"`
	EndNS   int64  `json:"end_ns"`
}

// agentReport is what an agent process prints on exit. The agent's own dispatch latencies are
// left out: its first credits wait from connect to launch, which says nothing about dispatch.
type agentReport struct {
	Runs []runRecord `json:"runs"`
}

// timedRunner records when each run starts and ends around the offline runner.
type timedRunner struct {
	inner runner.Runner
	mu    sync.Mutex
	runs  []runRecord
}

func (t *timedRunner) Run(ctx context.Context, lease *enrichv1.Lease) (*runner.Output, error) {
	start := time.Now()
	out, err := t.inner.Run(ctx, lease)
	rec := runRecord{ItemID: lease.GetLease().GetItemId(), Entity: lease.GetEntity().GetId(), Type: lease.GetInstanceType(),
		StartNS: start.UnixNano(), EndNS: time.Now().UnixNano()}
	t.mu.Lock()
	t.runs = append(t.runs, rec)
	t.mu.Unlock()
	return out, err
}

// runAgent is one benchmark agent process: the real agent package, all three types, the
// offline runner sleeping each entity's drawn work. It prints its agentReport on SIGTERM.
func runAgent(addr, id string, slots int, seed uint64) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	offline := &runner.Offline{DelayFor: func(l *enrichv1.Lease) time.Duration {
		// An unknown type cannot happen: the benchmark refuses the batch before launching it.
		d, _ := workFor(seed, l.GetInstanceType(), l.GetEntity().GetId())
		return d
	}}
	tr := &timedRunner{inner: offline}
	a, err := agent.New(agent.Config{Coordinator: addr, ID: id, Types: []string{"entities", "persons", "leagues"},
		Slots: slots, Runner: tr})
	if err != nil {
		return err
	}
	if err := a.Run(ctx); err != nil {
		return err
	}
	tr.mu.Lock()
	rep := agentReport{Runs: tr.runs}
	tr.mu.Unlock()
	return json.NewEncoder(os.Stdout).Encode(rep)
}
