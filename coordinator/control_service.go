package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sportsintel/enrich/coordinator/consolidate"
	"github.com/sportsintel/enrich/coordinator/graph"
	"github.com/sportsintel/enrich/coordinator/store"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

type controlService struct {
	enrichv1.UnimplementedControlServiceServer
	s *Server
}

var _ enrichv1.ControlServiceServer = (*controlService)(nil)

// Input limits: a batch is prepared in one message and stored in one transaction.
const (
	maxEntitiesPerBatch = 100_000
	maxIDBytes          = 512
	maxNameBytes        = 1024
	maxAttributes       = 256
	maxAttributeBytes   = 64 << 10
	maxProblemsReported = 20
)

// storeError maps a store error to a status an operator can act on.
func storeError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, store.ErrInvalidState):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	default:
		return status.Errorf(codes.Unavailable, "store: %v", err)
	}
}

// problems collects input errors so one answer lists them all (up to a bound).
type problems struct {
	list  []string
	extra int
}

func (p *problems) add(line int32, format string, args ...any) {
	if len(p.list) >= maxProblemsReported {
		p.extra++
		return
	}
	msg := fmt.Sprintf(format, args...)
	if line > 0 {
		msg = fmt.Sprintf("line %d: %s", line, msg)
	}
	p.list = append(p.list, msg)
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	msg := strings.Join(p.list, "\n")
	if p.extra > 0 {
		msg += fmt.Sprintf("\n... and %d more", p.extra)
	}
	return status.Error(codes.InvalidArgument, msg)
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

type classified struct {
	ent      *enrichv1.Entity
	instance string
	priority store.Priority
	order    int
}

func (c *controlService) PrepareBatch(ctx context.Context, req *enrichv1.PrepareBatchRequest) (*enrichv1.PrepareBatchResponse, error) {
	return c.s.prepareBatch(ctx, req, "")
}

// prepareBatch is PrepareBatch for operators and for schedules (schedule.go); origin, when set,
// heads the batch's source so a batch says which schedule prepared it.
func (s *Server) prepareBatch(ctx context.Context, req *enrichv1.PrepareBatchRequest, origin string) (*enrichv1.PrepareBatchResponse, error) {
	ents := req.GetEntities()
	capacity, err := s.capacities(req.GetCapacity())
	if err != nil {
		return nil, err
	}
	source := keepHead(filepath.Base(req.GetSource()), 256)
	var notRead map[string]int32
	if src := req.GetNeo4JSource(); src != nil {
		if len(ents) > 0 {
			return nil, status.Error(codes.InvalidArgument, "entities and neo4j_source are exclusive: give one")
		}
		if req.GetSize() < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "size must not be negative, got %d", req.GetSize())
		}
		sel, err := s.selectFromNeo4j(ctx, src, capacity, int(req.GetSize()))
		if err != nil {
			return nil, err
		}
		if len(sel.entities) == 0 {
			return nil, sel.empty()
		}
		ents, notRead, source = sel.entities, sel.notRead, keepHead(sel.source, 256)
	}
	if origin != "" {
		source = keepHead(origin+source, 256)
	}
	if len(ents) == 0 {
		return nil, status.Error(codes.InvalidArgument, "no entities: the batch would be empty")
	}
	if len(ents) > maxEntitiesPerBatch {
		return nil, status.Errorf(codes.InvalidArgument, "%d entities: at most %d per batch", len(ents), maxEntitiesPerBatch)
	}
	var bad problems
	seen := map[string]int32{}
	var items []classified
	for i, e := range ents {
		line := e.GetSourceLine()
		switch {
		case e.GetId() == "":
			bad.add(line, "missing id")
		case len(e.GetId()) > maxIDBytes:
			bad.add(line, "id is %d bytes, at most %d", len(e.GetId()), maxIDBytes)
		case hasControl(e.GetId()):
			bad.add(line, "id %q contains control characters", e.GetId())
		default:
			if first, dup := seen[e.GetId()]; dup {
				bad.add(line, "duplicate id %q (first at line %d)", e.GetId(), first)
			}
			seen[e.GetId()] = line
		}
		if e.GetName() == "" {
			bad.add(line, "missing name")
		} else if len(e.GetName()) > maxNameBytes {
			bad.add(line, "name is %d bytes, at most %d", len(e.GetName()), maxNameBytes)
		}
		if len(e.GetAttributes()) > maxAttributes {
			bad.add(line, "%d attributes, at most %d", len(e.GetAttributes()), maxAttributes)
		}
		for k, v := range e.GetAttributes() {
			if len(k)+len(v) > maxAttributeBytes {
				bad.add(line, "attribute %q is larger than %d bytes", k, maxAttributeBytes)
			}
		}
		inst, ok := "", false
		if e.GetType() == "" {
			bad.add(line, "missing type")
		} else if inst, ok = s.cfg.InstanceForEntityType(e.GetType()); !ok {
			bad.add(line, "unknown entity type %q (known: %s)", e.GetType(), strings.Join(s.cfg.KnownEntityTypes(), ", "))
		}
		prio := e.GetPriority()
		if prio == enrichv1.Priority_PRIORITY_UNSPECIFIED {
			prio = req.GetDefaultPriority()
		}
		items = append(items, classified{ent: e, instance: inst, priority: priorityFromProto(prio), order: i})
	}
	if err := bad.err(); err != nil {
		return nil, err
	}

	// Most important first, file order within a priority; each type up to its capacity.
	sort.SliceStable(items, func(i, j int) bool { return items[i].priority > items[j].priority })
	taken := map[string]int{}
	leftOut := map[string]int32{}
	for inst, n := range notRead {
		leftOut[inst] += n
	}
	var chosen []classified
	for _, it := range items {
		if taken[it.instance] >= capacity[it.instance] || (req.GetSize() > 0 && len(chosen) >= int(req.GetSize())) {
			leftOut[it.instance]++
			continue
		}
		taken[it.instance]++
		chosen = append(chosen, it)
	}
	sort.SliceStable(chosen, func(i, j int) bool { return chosen[i].order < chosen[j].order })

	maxAttempts := s.cfg.RetryStrategy.Retries() + 1
	newItems := make([]store.NewItem, 0, len(chosen))
	for _, it := range chosen {
		e := proto.Clone(it.ent).(*enrichv1.Entity)
		e.Priority = map[store.Priority]enrichv1.Priority{store.PriorityHigh: enrichv1.Priority_PRIORITY_HIGH,
			store.PriorityNormal: enrichv1.Priority_PRIORITY_NORMAL, store.PriorityLow: enrichv1.Priority_PRIORITY_LOW}[it.priority]
		raw, err := proto.Marshal(e)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "encode entity %q: %v", e.GetId(), err)
		}
		newItems = append(newItems, store.NewItem{EntityID: e.GetId(), EntityType: e.GetType(), Name: e.GetName(),
			InstanceType: it.instance, Priority: it.priority, Entity: raw, MaxAttempts: maxAttempts})
	}
	now := s.now()
	id := batchID(now)
	if err := s.st.CreateBatch(ctx, store.CreateBatchParams{ID: id, Source: source, CreatedAt: now,
		OutputDir: s.outputDir(id, now), Items: newItems}); err != nil {
		return nil, storeError(err)
	}
	s.log.Named("control").Info("batch prepared", "batch_id", id, "entities", len(newItems), "source", source)
	b, err := s.batchProto(ctx, id)
	if err != nil {
		return nil, err
	}
	return &enrichv1.PrepareBatchResponse{Batch: b, LeftOut: stringKeys(leftOut)}, nil
}

func stringKeys(m map[string]int32) map[string]int32 {
	out := map[string]int32{}
	for k, v := range m {
		if v > 0 {
			out[k] = v
		}
	}
	return out
}

// capacities returns each instance type's batch capacity with the request's overrides applied.
func (s *Server) capacities(overrides map[string]int32) (map[string]int, error) {
	out := map[string]int{}
	for name, ic := range s.cfg.ResourceAllocation {
		out[name] = ic.BatchCapacity
	}
	for key, n := range overrides {
		name, ok := s.cfg.ResolveInstance(key)
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "capacity for unknown instance type %q (known: %s)", key, strings.Join(s.cfg.InstanceNames(), ", "))
		}
		if n < 0 || n > maxEntitiesPerBatch {
			return nil, status.Errorf(codes.InvalidArgument, "capacity of %s must be 0..%d, got %d", name, maxEntitiesPerBatch, n)
		}
		out[name] = int(n)
	}
	return out, nil
}

// batchID is sortable by creation time and unique: "20260108-120000-1a2b3c".
func batchID(now time.Time) string {
	return now.Format("20060102-150405") + "-" + newID("")[:6]
}

// outputDir picks the batch's consolidation folder: dossiers/parallel_batch_<UTC timestamp>, with
// the batch id appended only when two batches start in the same second.
func (s *Server) outputDir(id string, now time.Time) string {
	s.outputDirsMu.Lock()
	defer s.outputDirsMu.Unlock()
	dir := filepath.Join(s.cfg.Dossiers, "parallel_batch_"+now.Format("20060102T150405Z"))
	if _, err := os.Stat(dir); err == nil || s.outputDirs[dir] {
		dir = filepath.Join(s.cfg.Dossiers, "parallel_batch_"+id)
	}
	s.outputDirs[dir] = true
	return dir
}

func (c *controlService) LaunchBatch(ctx context.Context, req *enrichv1.LaunchBatchRequest) (*enrichv1.LaunchBatchResponse, error) {
	s := c.s
	var types []string
	for _, t := range req.GetInstanceTypes() {
		name, ok := s.cfg.ResolveInstance(strings.TrimSpace(t))
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "unknown instance type %q (known: %s, or their aliases)", t, strings.Join(s.cfg.InstanceNames(), ", "))
		}
		if !slices.Contains(types, name) {
			types = append(types, name)
		}
	}
	budget := req.GetBudgetUsd()
	if budget < 0 || math.IsNaN(budget) || math.IsInf(budget, 0) || budget > maxBudgetUSD {
		return nil, status.Errorf(codes.InvalidArgument, "budget_usd must be between 0 (keep the batch's) and %v, got %v", maxBudgetUSD, budget)
	}
	if budget == 0 {
		var err error
		if budget, err = s.defaultBudget(ctx, req.GetBatchId()); err != nil {
			return nil, storeError(err)
		}
	}
	if err := s.st.LaunchBatch(ctx, store.LaunchBatchParams{ID: req.GetBatchId(), InstanceTypes: types, BudgetUSD: budget, Now: s.now()}); err != nil {
		return nil, storeError(err)
	}
	s.log.Named("control").Info("batch launched", "batch_id", req.GetBatchId(), "instance_types", types, "budget_usd", budget)
	s.hub.publish(req.GetBatchId())
	s.wakeDispatcher()
	b, err := s.batchProto(ctx, req.GetBatchId())
	return &enrichv1.LaunchBatchResponse{Batch: b}, err
}

// maxBudgetUSD refuses budgets that can only be typing mistakes.
const maxBudgetUSD = 1_000_000

// defaultBudget is the budget of a batch launched for the first time without one: the sum of its
// instance types' budget_usd, or none (0) if any of its types has none.
func (s *Server) defaultBudget(ctx context.Context, id string) (float64, error) {
	b, err := s.st.GetBatch(ctx, id)
	if err != nil || b.State != store.BatchPrepared {
		return 0, err
	}
	counts, err := s.st.BatchCounts(ctx, id)
	if err != nil {
		return 0, err
	}
	total := 0.0
	for name := range counts {
		ic, ok := s.instance(name)
		if !ok || ic.BudgetUSD <= 0 {
			return 0, nil
		}
		total += ic.BudgetUSD
	}
	return total, nil
}

func (c *controlService) GetBatch(ctx context.Context, req *enrichv1.GetBatchRequest) (*enrichv1.GetBatchResponse, error) {
	b, err := c.s.batchProto(ctx, req.GetBatchId())
	return &enrichv1.GetBatchResponse{Batch: b}, err
}

func (c *controlService) ListBatches(ctx context.Context, req *enrichv1.ListBatchesRequest) (*enrichv1.ListBatchesResponse, error) {
	list, err := c.s.st.ListBatches(ctx, int(req.GetLimit()))
	if err != nil {
		return nil, storeError(err)
	}
	out := &enrichv1.ListBatchesResponse{}
	for _, b := range list {
		pb, err := c.s.batchProto(ctx, b.ID)
		if err != nil {
			return nil, err
		}
		out.Batches = append(out.Batches, pb)
	}
	return out, nil
}

// watchRefresh re-reads a watched batch even without notifications, so agent arrivals and
// retry backoffs show up.
const watchRefresh = time.Second

func (c *controlService) WatchBatch(req *enrichv1.WatchBatchRequest, stream enrichv1.ControlService_WatchBatchServer) error {
	s := c.s
	ctx := stream.Context()
	changed, unsubscribe := s.hub.subscribe(req.GetBatchId())
	defer unsubscribe()
	tick := time.NewTicker(watchRefresh)
	defer tick.Stop()
	var last *enrichv1.Batch
	for {
		b, err := s.batchProto(ctx, req.GetBatchId())
		if err != nil {
			return err
		}
		if last == nil || !proto.Equal(b, last) {
			if err := stream.Send(&enrichv1.WatchBatchResponse{Batch: b}); err != nil {
				return err
			}
			last = b
		}
		if s.watchDone(b) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			// Coalesce bursts: many results land within a few milliseconds of each other.
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return nil
			}
		case <-tick.C:
		}
	}
}

// watchDone reports whether a watched batch will not change without an operator: it ended and its
// consolidation (if automatic) has finished or failed.
func (s *Server) watchDone(b *enrichv1.Batch) bool {
	switch b.GetState() {
	case enrichv1.BatchState_BATCH_STATE_COMPLETED, enrichv1.BatchState_BATCH_STATE_COMPLETED_WITH_FAILURES,
		enrichv1.BatchState_BATCH_STATE_CANCELLED:
	default:
		return false
	}
	return !s.cfg.Consolidation.AutoEnabled() || b.GetConsolidatedAt() != nil || b.GetConsolidationError() != ""
}

func (c *controlService) CancelBatch(ctx context.Context, req *enrichv1.CancelBatchRequest) (*enrichv1.CancelBatchResponse, error) {
	s := c.s
	if err := s.cancelBatch(ctx, req.GetBatchId(), keepHead(req.GetReason(), 512)); err != nil {
		return nil, storeError(err)
	}
	b, err := s.batchProto(ctx, req.GetBatchId())
	return &enrichv1.CancelBatchResponse{Batch: b}, err
}

func (c *controlService) RetryBatch(ctx context.Context, req *enrichv1.RetryBatchRequest) (*enrichv1.RetryBatchResponse, error) {
	s := c.s
	n, err := s.st.RetryFailed(ctx, store.RetryFailedParams{ID: req.GetBatchId(), Attempts: s.cfg.RetryStrategy.Retries() + 1, Now: s.now()})
	if err != nil {
		return nil, storeError(err)
	}
	s.log.Named("control").Info("failed items requeued", "batch_id", req.GetBatchId(), "count", n)
	s.hub.publish(req.GetBatchId())
	s.wakeDispatcher()
	b, err := s.batchProto(ctx, req.GetBatchId())
	return &enrichv1.RetryBatchResponse{Batch: b, Requeued: int32(n)}, err
}

func (c *controlService) ConsolidateBatch(ctx context.Context, req *enrichv1.ConsolidateBatchRequest) (*enrichv1.ConsolidateBatchResponse, error) {
	s := c.s
	b, err := s.st.GetBatch(ctx, req.GetBatchId())
	if err != nil {
		return nil, storeError(err)
	}
	if b.State == store.BatchPrepared {
		return nil, status.Errorf(codes.FailedPrecondition, "batch %s was never launched: nothing to consolidate", b.ID)
	}
	target, err := neo4jTarget(req.GetNeo4J())
	if err != nil {
		return nil, err
	}
	sum, err := s.consolidateWith(ctx, b.ID, req.GetPdf() || s.cfg.Consolidation.PDF, target)
	if err != nil {
		code := codes.Internal
		if graph.Unavailable(err.Error()) {
			code = codes.Unavailable
		}
		return nil, status.Errorf(code, "consolidate %s: %v", b.ID, err)
	}
	pb, err := s.batchProto(ctx, b.ID)
	return &enrichv1.ConsolidateBatchResponse{Batch: pb, OutputDir: sum.Dir, Dossiers: int32(sum.Dossiers), Pdfs: int32(sum.PDFs)}, err
}

func (c *controlService) ListItems(ctx context.Context, req *enrichv1.ListItemsRequest) (*enrichv1.ListItemsResponse, error) {
	s := c.s
	if _, err := s.st.GetBatch(ctx, req.GetBatchId()); err != nil {
		return nil, storeError(err)
	}
	p := store.ListItemsParams{BatchID: req.GetBatchId(), Limit: int(req.GetLimit())}
	for _, st := range req.GetStates() {
		v, ok := itemStateFromProto(st)
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "unknown item state %v", st)
		}
		p.States = append(p.States, v)
	}
	if t := req.GetInstanceType(); t != "" {
		name, ok := s.cfg.ResolveInstance(t)
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "unknown instance type %q (known: %s)", t, strings.Join(s.cfg.InstanceNames(), ", "))
		}
		p.InstanceType = name
	}
	items, err := s.st.ListItems(ctx, p)
	if err != nil {
		return nil, storeError(err)
	}
	out := &enrichv1.ListItemsResponse{}
	for _, it := range items {
		out.Items = append(out.Items, itemToProto(it))
	}
	return out, nil
}

// ListAgents lists the agents of every coordinator sharing the store (fleet.go).
func (c *controlService) ListAgents(ctx context.Context, _ *enrichv1.ListAgentsRequest) (*enrichv1.ListAgentsResponse, error) {
	agents, err := c.s.fleetAgents(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	return &enrichv1.ListAgentsResponse{Agents: agents}, nil
}

// DrainAgent drains an agent connected here at once, or one connected to another coordinator
// sharing the store within a second, through that coordinator (fleet_drain.go).
func (c *controlService) DrainAgent(ctx context.Context, req *enrichv1.DrainAgentRequest) (*enrichv1.DrainAgentResponse, error) {
	// A session that ends before the Drain goes out (its agent is moving to another coordinator)
	// falls through to the shared request, which follows the agent.
	if sess := c.s.sessions.agent(req.GetAgentId()); sess != nil && c.s.drainSession(sess) {
		c.s.log.Named("control").Info("agent drained", "agent_id", sess.agentID)
		return &enrichv1.DrainAgentResponse{Agent: sess.info(c.s.advertised)}, nil
	}
	info, forwarded, err := c.s.forwardDrain(ctx, req.GetAgentId())
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && !forwarded):
		return nil, status.Errorf(codes.NotFound, "agent %q is not connected", req.GetAgentId())
	case err != nil:
		return nil, storeError(err)
	}
	return &enrichv1.DrainAgentResponse{Agent: info}, nil
}

func (c *controlService) GetDossier(ctx context.Context, req *enrichv1.GetDossierRequest) (*enrichv1.GetDossierResponse, error) {
	it, err := c.s.st.GetItem(ctx, req.GetBatchId(), req.GetEntityId())
	if err != nil {
		return nil, storeError(err)
	}
	res, err := c.s.st.Result(ctx, it.ID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, status.Errorf(codes.NotFound, "entity %q has no dossier yet (state %s)", it.EntityID, it.State)
		}
		return nil, storeError(err)
	}
	pi := itemToProto(it)
	pi.Metrics = metricsToProto(res.Metrics)
	return &enrichv1.GetDossierResponse{Item: pi, DossierJson: res.Dossier}, nil
}

// batchProto reads a batch with its per-instance progress and agent coverage.
func (s *Server) batchProto(ctx context.Context, id string) (*enrichv1.Batch, error) {
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "batch id is required")
	}
	b, err := s.st.GetBatch(ctx, id)
	if err != nil {
		return nil, storeError(err)
	}
	counts, err := s.st.BatchCounts(ctx, id)
	if err != nil {
		return nil, storeError(err)
	}
	agents := s.agentsServing(ctx)
	out := &enrichv1.Batch{
		Id:                 b.ID,
		State:              batchStates[b.State],
		CreatedAt:          timestamp(b.CreatedAt),
		LaunchedAt:         timestamp(b.LaunchedAt),
		FinishedAt:         timestamp(b.FinishedAt),
		ConsolidatedAt:     timestamp(b.ConsolidatedAt),
		OutputDir:          b.OutputDir,
		Source:             b.Source,
		ConsolidationError: b.ConsolidationError,
		BudgetUsd:          b.BudgetUSD,
	}
	if at := s.graphRetries.next(b.ID); !at.IsZero() && b.ConsolidationError != "" {
		out.ConsolidationRetryAt = timestamppb.New(at)
	}
	for _, name := range consolidate.OrderedKeys(counts, s.cfg.InstanceNames()) {
		c := counts[name]
		out.Instances = append(out.Instances, &enrichv1.InstanceProgress{
			InstanceType:    name,
			Total:           int32(c.Total),
			Pending:         int32(c.Pending),
			Leased:          int32(c.Leased),
			Succeeded:       int32(c.Succeeded),
			Failed:          int32(c.Failed),
			Cancelled:       int32(c.Cancelled),
			Skipped:         int32(c.Skipped),
			Retrying:        int32(c.Retrying),
			Agents:          int32(agents[name]),
			WaitingForAgent: b.State == store.BatchRunning && c.Pending > 0 && agents[name] == 0,
		})
	}
	if err := s.addProgress(ctx, b, counts, out); err != nil {
		return nil, storeError(err)
	}
	return out, nil
}
