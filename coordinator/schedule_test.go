package coordinator

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sportsintel/enrich/coordinator/config"
	"github.com/sportsintel/enrich/coordinator/store"
	"github.com/sportsintel/enrich/coordinator/store/sqlite"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// fakeClock is the coordinator's clock in these tests: runs are due when the test says so.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// schedBundle is a coordinator (without its listeners and loops) over a SQLite file, whose
// scheduler passes the tests drive one at a time with fireDue. Only the selection is replaced:
// a run prepares a fixed entity list instead of reading Neo4j, and everything after it (prepare,
// launch, the store's claim and records) is the real path.
type schedBundle struct {
	ctx   context.Context
	clock *fakeClock
	path  string
	cfg   *config.Config
	srv   *Server
	sched *scheduler
	ctl   *controlService
	// selections counts the runs that got as far as selecting entities.
	selections atomic.Int32
	// selectErr, when set, is what selecting fails with (Neo4j down).
	selectErr atomic.Pointer[error]
}

// 12:00:30 UTC: "*/5 * * * *" fires first at 12:05.
var schedT0 = time.Date(2026, 1, 8, 12, 0, 30, 0, time.UTC)

func setupSchedules(t *testing.T) *schedBundle {
	t.Helper()
	cfg := config.Default()
	cfg.Dossiers = filepath.Join(t.TempDir(), "dossiers")
	// Creating a schedule needs a knowledge graph; runs in these tests never dial it.
	cfg.Neo4j.URI = "bolt://127.0.0.1:1"
	// Batches these tests end are not consolidated (there is no graph to write to), so a run is
	// not held back for a consolidation that cannot happen; TestScheduleWaitsForConsolidation
	// turns it back on.
	auto := false
	cfg.Consolidation.Auto = &auto
	require.NoError(t, cfg.Validate())
	b := &schedBundle{ctx: context.Background(), clock: &fakeClock{t: schedT0}, path: filepath.Join(t.TempDir(), "enrich.db"), cfg: cfg}
	b.open(t)
	return b
}

// open starts a coordinator on the bundle's file: the first one, or the one after a restart.
func (b *schedBundle) open(t *testing.T) {
	t.Helper()
	b.srv, b.sched = b.coordinator(t)
	b.ctl = &controlService{s: b.srv}
}

// coordinator is one more coordinator on the bundle's file and clock.
func (b *schedBundle) coordinator(t *testing.T) (*Server, *scheduler) {
	t.Helper()
	st, err := sqlite.Open(b.ctx, b.path)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	srv := New(b.cfg, st, hclog.NewNullLogger(), prometheus.NewRegistry())
	srv.now = b.clock.Now
	// Run is not called (the tests drive the scheduler), but a batch a test cancels is
	// consolidated in the background under runCtx, as in a running coordinator.
	ctx, cancel := context.WithCancel(b.ctx)
	srv.runCtx = ctx
	t.Cleanup(func() { cancel(); srv.background.Wait() })
	sched := newScheduler(srv)
	sched.request = func(sc *store.Schedule) (*enrichv1.PrepareBatchRequest, error) {
		b.selections.Add(1)
		if err := b.selectErr.Load(); err != nil {
			return nil, *err
		}
		req := &enrichv1.PrepareBatchRequest{Size: int32(sc.Size)}
		for i := range 3 {
			req.Entities = append(req.Entities, &enrichv1.Entity{Id: fmt.Sprintf("club-%d", i), Type: "Club", Name: fmt.Sprintf("Club %d", i)})
		}
		return req, nil
	}
	return srv, sched
}

func (b *schedBundle) create(t *testing.T, req *enrichv1.CreateScheduleRequest) *enrichv1.Schedule {
	t.Helper()
	if req.GetNeo4JSource() == nil {
		req.Neo4JSource = &enrichv1.Neo4JSource{EntityTypes: []string{"Club"}, StaleAfter: durationpb.New(30 * 24 * time.Hour)}
	}
	res, err := b.ctl.CreateSchedule(b.ctx, req)
	require.NoError(t, err)
	return res.GetSchedule()
}

// at sets the clock and runs one scheduler pass.
func (b *schedBundle) at(t *testing.T, hhmmss string) {
	t.Helper()
	tm, err := time.Parse("15:04:05", hhmmss)
	require.NoError(t, err)
	b.clock.Set(time.Date(2026, 1, 8, tm.Hour(), tm.Minute(), tm.Second(), 0, time.UTC))
	b.sched.fireDue(b.ctx)
}

func (b *schedBundle) get(t *testing.T, name string) *enrichv1.Schedule {
	t.Helper()
	res, err := b.ctl.ListSchedules(b.ctx, &enrichv1.ListSchedulesRequest{})
	require.NoError(t, err)
	for _, sc := range res.GetSchedules() {
		if sc.GetName() == name {
			return sc
		}
	}
	t.Fatalf("no schedule %q", name)
	return nil
}

func (b *schedBundle) batches(t *testing.T) []*store.Batch {
	t.Helper()
	list, err := b.srv.st.ListBatches(b.ctx, 100)
	require.NoError(t, err)
	return list
}

func hm(h, m int) time.Time { return time.Date(2026, 1, 8, h, m, 0, 0, time.UTC) }

func TestScheduleFiresOnTime(t *testing.T) {
	t.Parallel()
	b := setupSchedules(t)
	sc := b.create(t, &enrichv1.CreateScheduleRequest{Name: "nightly", Cron: "*/5 * * * *", Size: 2, BudgetUsd: 7.5})
	require.True(t, sc.GetNextRunAt().AsTime().Equal(hm(12, 5)))
	require.Equal(t, "UTC", sc.GetTimezone(), "UTC unless a zone is given")

	b.at(t, "12:04:59")
	require.Empty(t, b.batches(t), "not before its time")
	require.Zero(t, b.selections.Load())

	b.at(t, "12:05:00")
	list := b.batches(t)
	require.Len(t, list, 1)
	batch := list[0]
	require.Equal(t, store.BatchRunning, batch.State, "prepared and launched")
	require.InDelta(t, 7.5, batch.BudgetUSD, 1e-9, "with the schedule's budget")
	require.True(t, strings.HasPrefix(batch.Source, "schedule nightly: "), batch.Source)
	counts, err := b.srv.st.BatchCounts(b.ctx, batch.ID)
	require.NoError(t, err)
	require.Equal(t, 2, counts["entities"].Total, "with the schedule's size")

	sc = b.get(t, "nightly")
	require.Equal(t, enrichv1.ScheduleOutcome_SCHEDULE_OUTCOME_LAUNCHED, sc.GetLastOutcome())
	require.Equal(t, batch.ID, sc.GetLastBatchId())
	require.True(t, sc.GetLastRunAt().AsTime().Equal(hm(12, 5)))
	require.True(t, sc.GetNextRunAt().AsTime().Equal(hm(12, 10)))
	require.Nil(t, sc.GetFiringSince(), "the run is recorded")

	// The same second again, and the rest of the period: nothing more.
	b.at(t, "12:05:00")
	b.at(t, "12:09:59")
	require.Len(t, b.batches(t), 1)
	require.EqualValues(t, 1, b.selections.Load())
}

// A restart in the same second as a run, and a second coordinator on the same database racing
// the first for the next run: each run fires once.
func TestScheduleNotTwiceAcrossRestartOrCoordinators(t *testing.T) {
	t.Parallel()
	b := setupSchedules(t)
	b.create(t, &enrichv1.CreateScheduleRequest{Name: "s", Cron: "*/5 * * * *"})
	b.at(t, "12:05:00")
	require.Len(t, b.batches(t), 1)
	first := b.batches(t)[0].ID
	// Cancel so the next run is not skipped for a running batch: only the claim may stop it.
	_, err := b.ctl.CancelBatch(b.ctx, &enrichv1.CancelBatchRequest{BatchId: first})
	require.NoError(t, err)

	b.open(t) // a restart: a new coordinator on the same file
	b.at(t, "12:05:00")
	b.at(t, "12:07:00")
	require.Len(t, b.batches(t), 1, "the restarted coordinator does not fire the run again")

	_, other := b.coordinator(t)
	b.clock.Set(hm(12, 10))
	var wg sync.WaitGroup
	for _, sr := range []*scheduler{b.sched, other} {
		wg.Add(1)
		go func() { defer wg.Done(); sr.fireDue(b.ctx) }()
	}
	wg.Wait()
	require.Len(t, b.batches(t), 2, "two coordinators, one run")
	require.EqualValues(t, 2, b.selections.Load())
}

func TestScheduleSkipsWhileBatchRuns(t *testing.T) {
	t.Parallel()
	b := setupSchedules(t)
	b.create(t, &enrichv1.CreateScheduleRequest{Name: "s", Cron: "*/5 * * * *"})
	b.at(t, "12:05:00")
	running := b.get(t, "s").GetLastBatchId()
	require.NotEmpty(t, running)

	// No agent: the batch is still running at the next run.
	b.at(t, "12:10:00")
	sc := b.get(t, "s")
	require.Equal(t, enrichv1.ScheduleOutcome_SCHEDULE_OUTCOME_SKIPPED, sc.GetLastOutcome())
	require.Equal(t, "batch "+running+" still running", sc.GetLastMessage())
	require.Equal(t, running, sc.GetLastBatchId(), "the running batch stays the last one")
	require.True(t, sc.GetLastRunAt().AsTime().Equal(hm(12, 10)))
	require.True(t, sc.GetNextRunAt().AsTime().Equal(hm(12, 15)))
	require.Len(t, b.batches(t), 1)
	require.EqualValues(t, 1, b.selections.Load(), "a skipped run selects nothing")

	// Once it has ended, the next run launches again.
	_, err := b.ctl.CancelBatch(b.ctx, &enrichv1.CancelBatchRequest{BatchId: running})
	require.NoError(t, err)
	b.at(t, "12:15:00")
	sc = b.get(t, "s")
	require.Equal(t, enrichv1.ScheduleOutcome_SCHEDULE_OUTCOME_LAUNCHED, sc.GetLastOutcome())
	require.NotEqual(t, running, sc.GetLastBatchId())
	require.Empty(t, sc.GetLastMessage())
	require.Len(t, b.batches(t), 2)
}

// A batch that ended but whose results are not in the graph yet holds the next run back: its
// entities still look stale, and selecting them again would pay for them twice.
func TestScheduleWaitsForConsolidation(t *testing.T) {
	t.Parallel()
	b := setupSchedules(t)
	b.cfg.Consolidation.Auto = nil // the default: consolidate as soon as a batch ends
	b.open(t)
	b.create(t, &enrichv1.CreateScheduleRequest{Name: "s", Cron: "*/5 * * * *"})
	b.at(t, "12:05:00")
	first := b.get(t, "s").GetLastBatchId()
	require.NotEmpty(t, first)
	_, err := b.ctl.CancelBatch(b.ctx, &enrichv1.CancelBatchRequest{BatchId: first})
	require.NoError(t, err)

	// The graph at bolt://127.0.0.1:1 never answers: the batch stays unconsolidated.
	b.at(t, "12:10:00")
	sc := b.get(t, "s")
	require.Equal(t, enrichv1.ScheduleOutcome_SCHEDULE_OUTCOME_SKIPPED, sc.GetLastOutcome())
	require.Contains(t, sc.GetLastMessage(), "batch "+first+" not consolidated yet")
	require.Len(t, b.batches(t), 1)
	require.EqualValues(t, 1, b.selections.Load(), "a skipped run selects nothing")
}

func TestSchedulePausedDoesNotFire(t *testing.T) {
	t.Parallel()
	b := setupSchedules(t)
	b.create(t, &enrichv1.CreateScheduleRequest{Name: "s", Cron: "*/5 * * * *"})
	res, err := b.ctl.PauseSchedule(b.ctx, &enrichv1.PauseScheduleRequest{Name: "s"})
	require.NoError(t, err)
	require.True(t, res.GetSchedule().GetPaused())
	require.Nil(t, res.GetSchedule().GetNextRunAt())

	b.at(t, "12:05:00")
	b.at(t, "12:10:00")
	require.Empty(t, b.batches(t))

	// Resumed at 12:12: the next run is 12:15; the runs missed while paused are not caught up.
	b.clock.Set(hm(12, 12))
	rres, err := b.ctl.ResumeSchedule(b.ctx, &enrichv1.ResumeScheduleRequest{Name: "s"})
	require.NoError(t, err)
	require.False(t, rres.GetSchedule().GetPaused())
	require.True(t, rres.GetSchedule().GetNextRunAt().AsTime().Equal(hm(12, 15)))
	b.at(t, "12:12:00")
	require.Empty(t, b.batches(t))
	b.at(t, "12:15:00")
	require.Len(t, b.batches(t), 1)

	_, err = b.ctl.PauseSchedule(b.ctx, &enrichv1.PauseScheduleRequest{Name: "missing"})
	require.Equal(t, codes.NotFound, status.Code(err))
}

// A schedule created paused waits for resume.
func TestScheduleCreatedPaused(t *testing.T) {
	t.Parallel()
	b := setupSchedules(t)
	sc := b.create(t, &enrichv1.CreateScheduleRequest{Name: "s", Cron: "@every 1m", Paused: true})
	require.True(t, sc.GetPaused())
	b.at(t, "13:00:00")
	require.Empty(t, b.batches(t))
}

func TestScheduleDeleted(t *testing.T) {
	t.Parallel()
	b := setupSchedules(t)
	b.create(t, &enrichv1.CreateScheduleRequest{Name: "s", Cron: "*/5 * * * *"})
	_, err := b.ctl.DeleteSchedule(b.ctx, &enrichv1.DeleteScheduleRequest{Name: "s"})
	require.NoError(t, err)
	b.at(t, "12:05:00")
	require.Empty(t, b.batches(t))
	require.Zero(t, b.selections.Load())
	res, err := b.ctl.ListSchedules(b.ctx, &enrichv1.ListSchedulesRequest{})
	require.NoError(t, err)
	require.Empty(t, res.GetSchedules())
	_, err = b.ctl.DeleteSchedule(b.ctx, &enrichv1.DeleteScheduleRequest{Name: "s"})
	require.Equal(t, codes.NotFound, status.Code(err))
}

// A failed run is recorded with its reason and not retried before the next cron time.
func TestScheduleFailureWaitsForNextRun(t *testing.T) {
	t.Parallel()
	b := setupSchedules(t)
	b.create(t, &enrichv1.CreateScheduleRequest{Name: "s", Cron: "*/5 * * * *"})
	down := status.Error(codes.Unavailable, "prepare from neo4j at bolt://127.0.0.1:1: connection refused")
	b.selectErr.Store(&down)

	b.at(t, "12:05:00")
	sc := b.get(t, "s")
	require.Equal(t, enrichv1.ScheduleOutcome_SCHEDULE_OUTCOME_FAILED, sc.GetLastOutcome())
	require.Equal(t, "prepare from neo4j at bolt://127.0.0.1:1: connection refused", sc.GetLastMessage())
	require.Empty(t, sc.GetLastBatchId())
	require.True(t, sc.GetNextRunAt().AsTime().Equal(hm(12, 10)))
	for _, at := range []string{"12:05:01", "12:06:00", "12:09:59"} {
		b.at(t, at)
	}
	require.EqualValues(t, 1, b.selections.Load(), "no retry before the next run")

	b.selectErr.Store(nil)
	b.at(t, "12:10:00")
	sc = b.get(t, "s")
	require.Equal(t, enrichv1.ScheduleOutcome_SCHEDULE_OUTCOME_LAUNCHED, sc.GetLastOutcome())
	require.Len(t, b.batches(t), 1)
}

// Runs missed while no coordinator was up fire once, not once per missed time.
func TestScheduleMissedRunsFireOnce(t *testing.T) {
	t.Parallel()
	b := setupSchedules(t)
	b.create(t, &enrichv1.CreateScheduleRequest{Name: "s", Cron: "*/5 * * * *"})
	b.at(t, "13:02:00")
	b.at(t, "13:02:01")
	require.Len(t, b.batches(t), 1)
	sc := b.get(t, "s")
	require.True(t, sc.GetLastRunAt().AsTime().Equal(hm(12, 5)), "recorded at the time it was due")
	require.True(t, sc.GetNextRunAt().AsTime().Equal(hm(13, 5)), "then on the cron again from now")
}

// A run claimed while an earlier run of the schedule is still preparing its batch (on another
// coordinator) is skipped and says so.
func TestScheduleSkipsWhileEarlierRunPrepares(t *testing.T) {
	t.Parallel()
	b := setupSchedules(t)
	b.create(t, &enrichv1.CreateScheduleRequest{Name: "s", Cron: "@every 1m"})
	// Another coordinator claimed the 12:01:30 run and is still selecting.
	c, err := b.srv.st.ClaimScheduleRun(b.ctx, store.ClaimScheduleRunParams{Name: "s", Due: schedT0.Add(time.Minute),
		Next: schedT0.Add(2 * time.Minute), Now: schedT0.Add(time.Minute), FiringTimeout: scheduleFiringTimeout})
	require.NoError(t, err)
	require.NotNil(t, c)
	b.at(t, "12:02:30")
	sc := b.get(t, "s")
	require.Equal(t, enrichv1.ScheduleOutcome_SCHEDULE_OUTCOME_SKIPPED, sc.GetLastOutcome())
	require.Contains(t, sc.GetLastMessage(), "still preparing its batch")
	require.NotNil(t, sc.GetFiringSince(), "the earlier run is still marked")
	require.Empty(t, b.batches(t))
}

func TestScheduleCronAndTimeZone(t *testing.T) {
	t.Parallel()
	b := setupSchedules(t)
	// 02:00 in New York in January is 07:00 UTC.
	sc := b.create(t, &enrichv1.CreateScheduleRequest{Name: "ny", Cron: "0 2 * * *", Timezone: "America/New_York"})
	require.True(t, sc.GetNextRunAt().AsTime().Equal(time.Date(2026, 1, 9, 7, 0, 0, 0, time.UTC)), sc.GetNextRunAt().AsTime().String())
	sc = b.create(t, &enrichv1.CreateScheduleRequest{Name: "tz-prefix", Cron: "CRON_TZ=Asia/Tokyo 0 2 * * *"})
	require.Equal(t, "Asia/Tokyo", sc.GetTimezone())
	require.Equal(t, "0 2 * * *", sc.GetCron())
	require.True(t, sc.GetNextRunAt().AsTime().Equal(time.Date(2026, 1, 8, 17, 0, 0, 0, time.UTC)))
	sc = b.create(t, &enrichv1.CreateScheduleRequest{Name: "daily", Cron: "@daily"})
	require.True(t, sc.GetNextRunAt().AsTime().Equal(time.Date(2026, 1, 9, 0, 0, 0, 0, time.UTC)))
	sc = b.create(t, &enrichv1.CreateScheduleRequest{Cron: "@every 2s"})
	require.True(t, strings.HasPrefix(sc.GetName(), "schedule-"), "a name is picked: %s", sc.GetName())
	require.True(t, sc.GetNextRunAt().AsTime().Equal(schedT0.Add(2*time.Second)))

	for _, tc := range []struct {
		req  *enrichv1.CreateScheduleRequest
		code codes.Code
		msg  string
	}{
		{&enrichv1.CreateScheduleRequest{Name: "x", Cron: "0 2 * *"}, codes.InvalidArgument, "expected exactly 5 fields"},
		{&enrichv1.CreateScheduleRequest{Name: "x", Cron: "0 2 30 2 *"}, codes.InvalidArgument, "never fires"},
		{&enrichv1.CreateScheduleRequest{Name: "x", Cron: "0 2 * * *", Timezone: "Mars/Olympus"}, codes.InvalidArgument, `unknown time zone "Mars/Olympus"`},
		{&enrichv1.CreateScheduleRequest{Name: "x", Cron: "CRON_TZ=Asia/Tokyo 0 2 * * *", Timezone: "UTC"}, codes.InvalidArgument, "give one"},
		{&enrichv1.CreateScheduleRequest{Name: "bad name!", Cron: "@daily"}, codes.InvalidArgument, "schedule name"},
		{&enrichv1.CreateScheduleRequest{Name: "x", Cron: "@daily", Neo4JSource: &enrichv1.Neo4JSource{EntityTypes: []string{"Stadium"}}}, codes.InvalidArgument, `unknown entity type "Stadium"`},
		{&enrichv1.CreateScheduleRequest{Name: "x", Cron: "@daily", BudgetUsd: -1}, codes.InvalidArgument, "budget_usd"},
		{&enrichv1.CreateScheduleRequest{Name: "ny", Cron: "@daily"}, codes.AlreadyExists, `schedule "ny"`},
	} {
		if tc.req.Neo4JSource == nil {
			tc.req.Neo4JSource = &enrichv1.Neo4JSource{}
		}
		_, err := b.ctl.CreateSchedule(b.ctx, tc.req)
		require.Equal(t, tc.code, status.Code(err), "%v: %v", tc.req, err)
		require.Contains(t, err.Error(), tc.msg)
	}
	_, err := b.ctl.CreateSchedule(b.ctx, &enrichv1.CreateScheduleRequest{Name: "x", Cron: "@daily"})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "a schedule must say what to select")

	// Without a knowledge graph there is nothing a schedule could select.
	b.cfg.Neo4j.URI = ""
	_, err = b.ctl.CreateSchedule(b.ctx, &enrichv1.CreateScheduleRequest{Name: "x", Cron: "@daily", Neo4JSource: &enrichv1.Neo4JSource{}})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
}
