package coordinator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sportsintel/enrich/coordinator/store"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// typeStats summarises the finished attempts of one instance type in a batch.
type typeStats struct {
	p50                       time.Duration
	cost                      float64
	attempts, failed, retries int
}

// progressEntry is one batch's attempt statistics as last read from the store.
type progressEntry struct {
	readAt time.Time
	// readCost is how long reading the statistics took: a batch whose history takes long to sum
	// is re-read less often (progressCostShare).
	readCost time.Duration
	key      string // the batch's counts when read: attempts only change when counts do (almost)
	types    map[string]*typeStats
	cost     float64
}

// progressCache keeps per-batch attempt statistics, so that many watchers and dashboard polls of
// a large batch read its attempts once per change rather than once each.
type progressCache struct {
	mu      sync.Mutex
	entries map[string]*progressEntry

	// fleetMu guards the agents of the whole fleet as last read from the shared registry.
	fleetMu     sync.Mutex
	fleetReadAt time.Time
	fleet       []store.AgentRecord
}

const (
	// progressMinAge bounds how often a busy batch's attempts are re-read.
	progressMinAge = 500 * time.Millisecond
	// progressMaxAge re-reads even when counts look unchanged (duplicates and stale reports move
	// cost without moving counts).
	progressMaxAge = 5 * time.Second
	// progressKeep drops entries of batches nobody asked about for a while.
	progressKeep = 10 * time.Minute
	// progressCostShare bounds the time spent re-reading a running batch's statistics to about
	// one part in this many: summing the history of a batch of 60,000 takes tens of
	// milliseconds on SQLite, and re-reading it every progressMinAge cost a tenth of the
	// coordinator's CPU while the batch ran.
	progressCostShare = 20
	// progressMaxWait bounds that interval, whatever one slow read took.
	progressMaxWait = 10 * time.Second
)

func countsKey(counts map[string]store.StateCounts) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "%s:%+v;", k, counts[k])
	}
	return sb.String()
}

// attemptStats returns batch id's statistics, reading the store when the cached ones may be stale.
func (s *Server) attemptStats(ctx context.Context, id string, counts map[string]store.StateCounts, terminal bool) (*progressEntry, error) {
	key := countsKey(counts)
	now := time.Now()
	c := s.progress
	c.mu.Lock()
	e := c.entries[id]
	c.mu.Unlock()
	if e != nil {
		age := now.Sub(e.readAt)
		minAge := min(max(progressMinAge, progressCostShare*e.readCost), progressMaxWait)
		fresh := age < max(progressMaxAge, minAge) && (e.key == key || (age < minAge && !terminal))
		if fresh {
			return e, nil
		}
	}
	totals, err := s.st.AttemptTotals(ctx, id)
	if err != nil {
		return nil, err
	}
	e = &progressEntry{readAt: now, readCost: time.Since(now), key: key, types: map[string]*typeStats{}}
	for typ, t := range totals {
		e.types[typ] = &typeStats{p50: t.MedianDuration, cost: t.CostUSD, attempts: t.Attempts, failed: t.Failed, retries: t.Retries}
		e.cost += t.CostUSD
	}
	c.mu.Lock()
	c.entries[id] = e
	for other, old := range c.entries {
		if now.Sub(old.readAt) > progressKeep {
			delete(c.entries, other)
		}
	}
	c.mu.Unlock()
	return e, nil
}

// servingAgent is what batch progress needs to know of a connected agent, wherever its stream is.
type servingAgent struct {
	types    []string
	slots    int
	draining bool
}

// servingAgents returns the agents connected to every coordinator sharing the store: this
// coordinator's sessions as they are now, the others' as their coordinators last published them
// (fleet.go). Every coordinator leases the same batches, so an estimate from local agents alone
// would be off by the number of coordinators. Without a shared registry it is the local sessions.
func (s *Server) servingAgents(ctx context.Context) []servingAgent {
	byID := map[string]servingAgent{}
	if reg, ok := s.st.(store.AgentRegistry); ok {
		for _, r := range s.fleetRecords(ctx, reg) {
			byID[r.AgentID] = servingAgent{types: r.InstanceTypes, slots: r.Slots, draining: r.Draining}
		}
	}
	for _, sess := range s.sessions.snapshot() {
		sess.mu.Lock()
		draining := sess.draining
		sess.mu.Unlock()
		byID[sess.agentID] = servingAgent{types: sess.types, slots: sess.slots, draining: draining}
	}
	out := make([]servingAgent, 0, len(byID))
	for _, a := range byID {
		out = append(out, a)
	}
	return out
}

// fleetRecords reads the shared registry at most once per registryInterval (its rows change no
// more often), so many watchers and dashboard polls cost one query a second. When the read fails
// it keeps the last list: an estimate from slightly old agents beats none, and the store error
// shows up in the health check.
func (s *Server) fleetRecords(ctx context.Context, reg store.AgentRegistry) []store.AgentRecord {
	c := s.progress
	c.fleetMu.Lock()
	defer c.fleetMu.Unlock()
	if now := time.Now(); now.Sub(c.fleetReadAt) >= registryInterval {
		recs, err := reg.ListAgents(ctx, s.now().Add(-registryStale))
		if err != nil {
			if ctx.Err() == nil {
				s.log.Named("progress").Warn("read the agent registry", "error", err)
			}
			return c.fleet
		}
		c.fleet, c.fleetReadAt = recs, now
	}
	return c.fleet
}

// agentsServing counts the agents of the whole fleet connected for each instance type.
func (s *Server) agentsServing(ctx context.Context) map[string]int {
	out := map[string]int{}
	for _, a := range s.servingAgents(ctx) {
		for _, t := range a.types {
			out[t]++
		}
	}
	return out
}

// servingSlots estimates the runner slots working for each instance type of a batch, over the
// agents of every coordinator. An agent's slots are shared by the types it serves, so each
// agent's slots are split evenly among its types that still have open work here; draining agents
// take no new work and count for nothing. The sum is capped by the type's fleet-wide
// max_concurrent.
func (s *Server) servingSlots(ctx context.Context, counts map[string]store.StateCounts) map[string]int {
	share := map[string]float64{}
	for _, a := range s.servingAgents(ctx) {
		if a.draining {
			continue
		}
		var open []string
		for _, t := range a.types {
			if counts[t].Open() > 0 {
				open = append(open, t)
			}
		}
		for _, t := range open {
			share[t] += float64(a.slots) / float64(len(open))
		}
	}
	caps := s.maxConcurrent()
	out := map[string]int{}
	for t, v := range share {
		n := int(v + 0.5)
		if v > 0 && n == 0 {
			n = 1
		}
		if c := caps[t]; c > 0 {
			n = min(n, c)
		}
		out[t] = n
	}
	return out
}

// eta estimates how long a type's open items take: pending items need a whole median run each,
// leased ones are on average half done; the work spreads over the serving slots, but never over
// more slots than there are open items. It returns false when there is no basis for an estimate.
func eta(c store.StateCounts, p50 time.Duration, slots int) (time.Duration, bool) {
	if c.Open() == 0 {
		return 0, true
	}
	if p50 <= 0 || slots <= 0 {
		return 0, false
	}
	work := time.Duration(c.Pending)*p50 + time.Duration(c.Leased)*p50/2
	par := min(slots, c.Open())
	d := work / time.Duration(par)
	if floor := p50 / 2; d < floor {
		d = floor
	}
	return d, true
}

// addProgress fills the attempt statistics, slots and ETA of a batch's instance progress.
func (s *Server) addProgress(ctx context.Context, b *store.Batch, counts map[string]store.StateCounts, out *enrichv1.Batch) error {
	if b.State == store.BatchPrepared {
		return nil
	}
	st, err := s.attemptStats(ctx, b.ID, counts, b.State.Terminal())
	if err != nil {
		return err
	}
	out.CostUsd = st.cost
	var slots map[string]int
	if b.State == store.BatchRunning {
		slots = s.servingSlots(ctx, counts)
	}
	for _, ip := range out.GetInstances() {
		name := ip.GetInstanceType()
		ts := st.types[name]
		if ts == nil {
			ts = &typeStats{}
		}
		if ts.p50 > 0 {
			ip.DurationP50 = durationpb.New(ts.p50)
		}
		ip.CostUsd = ts.cost
		ip.Attempts = int32(ts.attempts)
		ip.FailedAttempts = int32(ts.failed)
		ip.Retries = int32(ts.retries)
		ip.Slots = int32(slots[name])
		if b.State == store.BatchRunning {
			if d, ok := eta(counts[name], ts.p50, slots[name]); ok {
				ip.Eta = durationpb.New(d)
			}
		}
	}
	return nil
}
