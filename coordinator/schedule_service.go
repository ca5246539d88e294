package coordinator

import (
	"context"
	"errors"
	"math"
	"regexp"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sportsintel/enrich/coordinator/store"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// maxSchedules bounds the schedules one store holds: each is read every second by every
// coordinator, and thousands can only be a script gone wrong.
const maxSchedules = 1000

// scheduleName: names travel into batch sources, logs and command lines.
var scheduleName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

var scheduleOutcomes = map[store.ScheduleOutcome]enrichv1.ScheduleOutcome{
	store.ScheduleNeverRun: enrichv1.ScheduleOutcome_SCHEDULE_OUTCOME_UNSPECIFIED,
	store.ScheduleLaunched: enrichv1.ScheduleOutcome_SCHEDULE_OUTCOME_LAUNCHED,
	store.ScheduleSkipped:  enrichv1.ScheduleOutcome_SCHEDULE_OUTCOME_SKIPPED,
	store.ScheduleFailed:   enrichv1.ScheduleOutcome_SCHEDULE_OUTCOME_FAILED,
}

func scheduleProto(sc *store.Schedule) *enrichv1.Schedule {
	src := &enrichv1.Neo4JSource{}
	_ = proto.Unmarshal(sc.Source, src) // written by CreateSchedule from a valid message
	return &enrichv1.Schedule{Name: sc.Name, Cron: sc.Cron, Timezone: sc.Timezone, Neo4JSource: src, Size: int32(sc.Size),
		BudgetUsd: sc.BudgetUSD, Paused: sc.Paused, CreatedAt: timestamp(sc.CreatedAt), NextRunAt: timestamp(sc.NextRunAt),
		LastRunAt: timestamp(sc.LastRunAt), LastOutcome: scheduleOutcomes[sc.LastOutcome], LastMessage: sc.LastMessage,
		LastBatchId: sc.LastBatchID, FiringSince: timestamp(sc.FiringSince)}
}

// scheduleStoreError is storeError that also knows a taken name.
func scheduleStoreError(err error) error {
	if errors.Is(err, store.ErrExists) {
		return status.Errorf(codes.AlreadyExists, "%v: pick another --name, or delete the schedule first", err)
	}
	return storeError(err)
}

func (c *controlService) CreateSchedule(ctx context.Context, req *enrichv1.CreateScheduleRequest) (*enrichv1.CreateScheduleResponse, error) {
	s := c.s
	name := req.GetName()
	if name == "" {
		name = newID("schedule-")[:len("schedule-")+6]
	}
	if !scheduleName.MatchString(name) {
		return nil, status.Errorf(codes.InvalidArgument,
			"schedule name %q: 1-64 letters, digits, '.', '_' and '-', starting with a letter or digit", name)
	}
	sched, spec, tz, err := cronSchedule(req.GetCron(), req.GetTimezone())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v (five fields \"0 2 * * *\", or @daily, @hourly, @every 6h ...)", err)
	}
	now := s.now()
	first := nextRun(sched, now)
	if first.IsZero() {
		return nil, status.Errorf(codes.InvalidArgument, "cron %q never fires", spec)
	}
	src := req.GetNeo4JSource()
	if src == nil {
		return nil, status.Error(codes.InvalidArgument, "neo4j_source is required: a schedule selects from the knowledge graph")
	}
	if err := s.checkNeo4jSource(src); err != nil {
		return nil, err
	}
	if req.GetSize() < 0 || req.GetSize() > maxEntitiesPerBatch {
		return nil, status.Errorf(codes.InvalidArgument, "size must be 0..%d, got %d", maxEntitiesPerBatch, req.GetSize())
	}
	budget := req.GetBudgetUsd()
	if budget < 0 || math.IsNaN(budget) || math.IsInf(budget, 0) || budget > maxBudgetUSD {
		return nil, status.Errorf(codes.InvalidArgument, "budget_usd must be between 0 (the instance types' budgets) and %v, got %v", maxBudgetUSD, budget)
	}
	existing, err := s.st.ListSchedules(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	if len(existing) >= maxSchedules {
		return nil, status.Errorf(codes.ResourceExhausted, "%d schedules already: delete some first", len(existing))
	}
	raw, err := proto.Marshal(src)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode selection: %v", err)
	}
	if err := s.st.CreateSchedule(ctx, store.CreateScheduleParams{Name: name, Cron: spec, Timezone: tz, Source: raw,
		Size: int(req.GetSize()), BudgetUSD: budget, Paused: req.GetPaused(), NextRunAt: first, Now: now}); err != nil {
		return nil, scheduleStoreError(err)
	}
	sc, err := s.st.GetSchedule(ctx, name)
	if err != nil {
		return nil, storeError(err)
	}
	s.log.Named("schedule").Info("schedule created", "schedule", name, "cron", spec, "timezone", tz, "next_run_at", sc.NextRunAt)
	return &enrichv1.CreateScheduleResponse{Schedule: scheduleProto(sc)}, nil
}

// checkNeo4jSource refuses at creation what would make every run fail at 2 a.m.: no graph,
// unknown or unlabelled entity types, an impossible staleness window.
func (s *Server) checkNeo4jSource(src *enrichv1.Neo4JSource) error {
	n := s.cfg.Neo4j
	if !n.Enabled() {
		return status.Error(codes.FailedPrecondition,
			"schedule from neo4j: the coordinator has no knowledge graph (set neo4j.uri or NEO4J_URI)")
	}
	var bad problems
	for _, raw := range src.GetEntityTypes() {
		t := strings.TrimSpace(raw)
		if _, ok := s.cfg.InstanceForEntityType(t); !ok {
			bad.add(0, "unknown entity type %q (known: %s)", t, strings.Join(s.cfg.KnownEntityTypes(), ", "))
		} else if _, ok := n.LabelFor(t); !ok {
			bad.add(0, "entity type %q has no label in neo4j.labels", t)
		}
	}
	if d := src.GetStaleAfter(); d != nil {
		if age := d.AsDuration(); !d.IsValid() || age <= 0 || age > maxStaleAfter {
			bad.add(0, "stale_after must be between 1s and %s, got %s", maxStaleAfter, age)
		}
	}
	return bad.err()
}

func (c *controlService) ListSchedules(ctx context.Context, _ *enrichv1.ListSchedulesRequest) (*enrichv1.ListSchedulesResponse, error) {
	list, err := c.s.st.ListSchedules(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	out := &enrichv1.ListSchedulesResponse{}
	for _, sc := range list {
		out.Schedules = append(out.Schedules, scheduleProto(sc))
	}
	return out, nil
}

func (c *controlService) DeleteSchedule(ctx context.Context, req *enrichv1.DeleteScheduleRequest) (*enrichv1.DeleteScheduleResponse, error) {
	if err := c.s.st.DeleteSchedule(ctx, req.GetName()); err != nil {
		return nil, storeError(err)
	}
	c.s.log.Named("schedule").Info("schedule deleted", "schedule", req.GetName())
	return &enrichv1.DeleteScheduleResponse{}, nil
}

func (c *controlService) PauseSchedule(ctx context.Context, req *enrichv1.PauseScheduleRequest) (*enrichv1.PauseScheduleResponse, error) {
	sc, err := c.s.st.SetSchedulePaused(ctx, store.SetSchedulePausedParams{Name: req.GetName(), Paused: true})
	if err != nil {
		return nil, storeError(err)
	}
	c.s.log.Named("schedule").Info("schedule paused", "schedule", sc.Name)
	return &enrichv1.PauseScheduleResponse{Schedule: scheduleProto(sc)}, nil
}

func (c *controlService) ResumeSchedule(ctx context.Context, req *enrichv1.ResumeScheduleRequest) (*enrichv1.ResumeScheduleResponse, error) {
	s := c.s
	cur, err := s.st.GetSchedule(ctx, req.GetName())
	if err != nil {
		return nil, storeError(err)
	}
	sched, _, _, err := cronSchedule(cur.Cron, cur.Timezone)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "schedule %q: %v: delete and create it again", cur.Name, err)
	}
	// From now on: the runs missed while paused are not caught up.
	sc, err := s.st.SetSchedulePaused(ctx, store.SetSchedulePausedParams{Name: cur.Name, Paused: false, NextRunAt: nextRun(sched, s.now())})
	if err != nil {
		return nil, storeError(err)
	}
	s.log.Named("schedule").Info("schedule resumed", "schedule", sc.Name, "next_run_at", sc.NextRunAt)
	return &enrichv1.ResumeScheduleResponse{Schedule: scheduleProto(sc)}, nil
}
