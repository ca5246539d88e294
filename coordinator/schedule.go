package coordinator

// Schedules: a schedule prepares a batch from the knowledge graph and launches it on a cron.
//
// Every coordinator runs the scheduler loop, leader or not. Correctness does not rest on
// leadership: each run is claimed in the store by moving the schedule's next_run_at from the
// value this coordinator read to the next cron time (store.Schedules.ClaimScheduleRun), so of
// any number of coordinators sharing a database, and of one coordinator before and after a
// restart, exactly one fires each run. The claim comes first and the work after it: a
// coordinator that dies mid-firing loses that run rather than repeating paid work.
//
// A run is skipped, and recorded as skipped with the reason, while the batch of the schedule's
// previous run is still running, or while the previous run is itself still preparing (a firing
// mark held from the claim until the run is recorded; it lapses after scheduleFiringTimeout, in
// case its coordinator died). A run that fails (Neo4j unreachable, nothing to enrich) is
// recorded with the reason and the schedule waits for its next cron time: nothing retries in a
// loop. Runs missed while no coordinator was up fire once at start, not once per missed time.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // schedule time zones resolve on hosts without a zoneinfo database

	"github.com/hashicorp/go-hclog"
	"github.com/robfig/cron/v3"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sportsintel/enrich/coordinator/store"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

const (
	// scheduleTick is how often each coordinator asks the store for due schedules: a run starts
	// at most this late, and the query is one indexed read.
	scheduleTick = time.Second
	// scheduleFiringTimeout bounds how long a run may prepare and launch its batch; a firing
	// mark older than this is taken for a coordinator that died mid-run.
	scheduleFiringTimeout = 10 * time.Minute
)

// cronParser reads the standard five fields and descriptors (@daily, @every 6h), with an
// optional CRON_TZ= prefix. Only robfig/cron's parser is used: runs are timed and claimed here.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// cronSchedule parses spec in the time zone tz ("" is UTC). A CRON_TZ= or TZ= prefix of spec
// names the zone too; it must then agree with tz. It returns the spec without the prefix and
// the zone it is read in.
func cronSchedule(spec, tz string) (cron.Schedule, string, string, error) {
	spec = strings.TrimSpace(spec)
	for _, prefix := range []string{"CRON_TZ=", "TZ="} {
		if !strings.HasPrefix(spec, prefix) {
			continue
		}
		zone, rest, _ := strings.Cut(strings.TrimPrefix(spec, prefix), " ")
		if tz != "" && tz != zone {
			return nil, "", "", fmt.Errorf("time zone %q in the cron and %q given: give one", zone, tz)
		}
		tz, spec = zone, strings.TrimSpace(rest)
	}
	if spec == "" {
		return nil, "", "", fmt.Errorf("empty cron")
	}
	if tz == "" {
		tz = "UTC"
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return nil, "", "", fmt.Errorf("unknown time zone %q", tz)
	}
	sched, err := cronParser.Parse("CRON_TZ=" + tz + " " + spec)
	if err != nil {
		return nil, "", "", fmt.Errorf("cron %q: %v", spec, err)
	}
	return sched, spec, tz, nil
}

// nextRun is the first time after now that sc fires, in UTC; zero if never again.
func nextRun(sched cron.Schedule, now time.Time) time.Time {
	next := sched.Next(now)
	if next.IsZero() {
		return next
	}
	return next.UTC()
}

// scheduler fires due schedules for one coordinator.
type scheduler struct {
	s   *Server
	log hclog.Logger
	// request turns a schedule into the PrepareBatch request of one run. Tests replace it to
	// prepare from a fixed entity list; everything after it is the real path.
	request func(sc *store.Schedule) (*enrichv1.PrepareBatchRequest, error)
}

func newScheduler(s *Server) *scheduler {
	return &scheduler{s: s, log: s.log.Named("schedule"), request: neo4jRequest}
}

// neo4jRequest is a run's PrepareBatch request: the schedule's stored selection.
func neo4jRequest(sc *store.Schedule) (*enrichv1.PrepareBatchRequest, error) {
	src := &enrichv1.Neo4JSource{}
	if err := proto.Unmarshal(sc.Source, src); err != nil {
		return nil, fmt.Errorf("stored selection unreadable: %v", err)
	}
	return &enrichv1.PrepareBatchRequest{Neo4JSource: src, Size: int32(sc.Size)}, nil
}

func (sr *scheduler) loop(ctx context.Context) {
	tick := time.NewTicker(scheduleTick)
	defer tick.Stop()
	for {
		sr.fireDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// fireDue claims every due run and fires the ones it won, together, and returns when they are
// done: the next pass only starts after them, and tests see one pass as one step.
func (sr *scheduler) fireDue(ctx context.Context) {
	now := sr.s.now()
	due, err := sr.s.st.DueSchedules(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			sr.log.Warn("read due schedules", "error", err)
		}
		return
	}
	var wg sync.WaitGroup
	for _, sc := range due {
		var next time.Time
		sched, _, _, err := cronSchedule(sc.Cron, sc.Timezone)
		if err == nil {
			next = nextRun(sched, now)
		}
		// A schedule whose cron no longer parses (or never fires again) is claimed with no next
		// run: it fires this once, shows the reason, and stops instead of failing every second.
		claim, cerr := sr.s.st.ClaimScheduleRun(ctx, store.ClaimScheduleRunParams{Name: sc.Name, Due: sc.NextRunAt,
			Next: next, Now: now, FiringTimeout: scheduleFiringTimeout})
		if cerr != nil {
			if ctx.Err() == nil {
				sr.log.Warn("claim schedule run", "schedule", sc.Name, "error", cerr)
			}
			continue
		}
		if claim == nil {
			continue // another coordinator won this run
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sr.fire(ctx, claim, sc.NextRunAt, err)
		}()
	}
	wg.Wait()
}

// fire runs one claimed run and records its outcome.
func (sr *scheduler) fire(ctx context.Context, claim *store.ScheduleClaim, at time.Time, cronErr error) {
	sc := claim.Schedule
	rec := store.RecordScheduleRunParams{Name: sc.Name, At: at, EndsFiring: !claim.Busy}
	switch {
	case claim.Busy:
		rec.Outcome, rec.Message = store.ScheduleSkipped,
			fmt.Sprintf("the run of %s is still preparing its batch", sc.FiringSince.Format(time.RFC3339))
	case cronErr != nil:
		rec.Outcome, rec.Message = store.ScheduleFailed, cronErr.Error()
	default:
		rec.Outcome, rec.Message, rec.BatchID = sr.run(ctx, sc)
	}
	// The record must land even when the coordinator is stopping: it clears the firing mark.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := sr.s.st.RecordScheduleRun(rctx, rec); err != nil {
		sr.log.Warn("record schedule run", "schedule", sc.Name, "error", err)
	}
	kv := []any{"schedule", sc.Name, "run_at", at, "outcome", rec.Outcome, "batch_id", rec.BatchID, "message", rec.Message}
	switch rec.Outcome {
	case store.ScheduleFailed:
		sr.log.Error("schedule run failed", kv...)
	case store.ScheduleSkipped:
		sr.log.Warn("schedule run skipped", kv...)
	default:
		sr.log.Info("schedule run launched", kv...)
	}
}

// run prepares and launches one run's batch, unless the previous one still runs.
func (sr *scheduler) run(ctx context.Context, sc *store.Schedule) (store.ScheduleOutcome, string, string) {
	ctx, cancel := context.WithTimeout(ctx, scheduleFiringTimeout)
	defer cancel()
	if sc.LastBatchID != "" {
		b, err := sr.s.st.GetBatch(ctx, sc.LastBatchID)
		switch {
		case err == nil && b.State == store.BatchRunning:
			return store.ScheduleSkipped, fmt.Sprintf("batch %s still running", b.ID), ""
		case err == nil && b.State.Terminal() && b.ConsolidatedAt.IsZero() && sr.s.cfg.Consolidation.AutoEnabled():
			// Until its results are in the graph the entities it enriched still look stale, and a
			// new selection would pay for them again.
			why := fmt.Sprintf("batch %s not consolidated yet", b.ID)
			if b.ConsolidationError != "" {
				why += " (" + keepHead(b.ConsolidationError, 200) + ")"
			}
			return store.ScheduleSkipped, why, ""
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return store.ScheduleFailed, fmt.Sprintf("read batch %s: %v", sc.LastBatchID, err), ""
		}
	}
	req, err := sr.request(sc)
	if err != nil {
		return store.ScheduleFailed, errorMessage(err), ""
	}
	prep, err := sr.s.prepareBatch(ctx, req, "schedule "+sc.Name+": ")
	if err != nil {
		return store.ScheduleFailed, "prepare: " + errorMessage(err), ""
	}
	id := prep.GetBatch().GetId()
	cs := &controlService{s: sr.s}
	if _, err := cs.LaunchBatch(ctx, &enrichv1.LaunchBatchRequest{BatchId: id, BudgetUsd: sc.BudgetUSD}); err != nil {
		return store.ScheduleFailed, fmt.Sprintf("launch %s: %s", id, errorMessage(err)), id
	}
	return store.ScheduleLaunched, "", id
}

// errorMessage is a status error's message without the "rpc error: code = ..." wrapping.
func errorMessage(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}
