package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/coordinator/store"
)

var scheduleTests = map[string]func(t *testing.T, b *bundle){
	"ScheduleLifecycle":       testScheduleLifecycle,
	"SchedulePauseResume":     testSchedulePauseResume,
	"ScheduleClaimOnce":       testScheduleClaimOnce,
	"ScheduleClaimConcurrent": testScheduleClaimConcurrent,
	"ScheduleBusyFiring":      testScheduleBusy,
}

const firingTimeout = 10 * time.Minute

func (b *bundle) schedule(t *testing.T, name string, next time.Time, paused bool) {
	t.Helper()
	require.NoError(t, b.st.CreateSchedule(b.ctx, store.CreateScheduleParams{Name: name, Cron: "0 2 * * *", Timezone: "Europe/London",
		Source: []byte{0x0a, 0x04, 'C', 'l', 'u', 'b'}, Size: 90, BudgetUSD: 12.5, Paused: paused, NextRunAt: next, Now: t0}))
}

func (b *bundle) claimRun(t *testing.T, name string, due, next, now time.Time) *store.ScheduleClaim {
	t.Helper()
	c, err := b.st.ClaimScheduleRun(b.ctx, store.ClaimScheduleRunParams{Name: name, Due: due, Next: next, Now: now, FiringTimeout: firingTimeout})
	require.NoError(t, err)
	return c
}

func testScheduleLifecycle(t *testing.T, b *bundle) {
	next := t0.Add(14 * time.Hour)
	b.schedule(t, "nightly", next, false)
	b.schedule(t, "another", next.Add(time.Hour), false)
	err := b.st.CreateSchedule(b.ctx, store.CreateScheduleParams{Name: "nightly", Cron: "@daily", Source: []byte{}, NextRunAt: next, Now: t0})
	require.ErrorIs(t, err, store.ErrExists, "names are unique")

	sc, err := b.st.GetSchedule(b.ctx, "nightly")
	require.NoError(t, err)
	require.Equal(t, "0 2 * * *", sc.Cron)
	require.Equal(t, "Europe/London", sc.Timezone)
	require.Equal(t, []byte{0x0a, 0x04, 'C', 'l', 'u', 'b'}, sc.Source, "the selection comes back verbatim")
	require.Equal(t, 90, sc.Size)
	require.InDelta(t, 12.5, sc.BudgetUSD, 1e-9)
	require.False(t, sc.Paused)
	require.True(t, sc.CreatedAt.Equal(t0))
	require.True(t, sc.NextRunAt.Equal(next))
	require.Equal(t, store.ScheduleNeverRun, sc.LastOutcome)
	require.True(t, sc.LastRunAt.IsZero())

	list, err := b.st.ListSchedules(b.ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, []string{"another", "nightly"}, []string{list[0].Name, list[1].Name}, "by name")

	due, err := b.st.DueSchedules(b.ctx, next.Add(-time.Millisecond))
	require.NoError(t, err)
	require.Empty(t, due, "not due before its time")
	due, err = b.st.DueSchedules(b.ctx, next)
	require.NoError(t, err)
	require.Len(t, due, 1)
	require.Equal(t, "nightly", due[0].Name)

	// A run: claimed, then recorded. Recording a launch sets the last batch; a failure keeps it.
	c := b.claimRun(t, "nightly", next, next.Add(24*time.Hour), next)
	require.NotNil(t, c)
	require.False(t, c.Busy)
	require.True(t, c.Schedule.NextRunAt.Equal(next), "the claim returns the schedule as it was")
	sc, err = b.st.GetSchedule(b.ctx, "nightly")
	require.NoError(t, err)
	require.True(t, sc.NextRunAt.Equal(next.Add(24*time.Hour)))
	require.True(t, sc.FiringSince.Equal(next), "firing until recorded")
	require.NoError(t, b.st.RecordScheduleRun(b.ctx, store.RecordScheduleRunParams{Name: "nightly", At: next,
		Outcome: store.ScheduleLaunched, BatchID: "b-1", EndsFiring: true}))
	sc, err = b.st.GetSchedule(b.ctx, "nightly")
	require.NoError(t, err)
	require.Equal(t, store.ScheduleLaunched, sc.LastOutcome)
	require.Equal(t, "b-1", sc.LastBatchID)
	require.True(t, sc.LastRunAt.Equal(next))
	require.True(t, sc.FiringSince.IsZero())
	require.NoError(t, b.st.RecordScheduleRun(b.ctx, store.RecordScheduleRunParams{Name: "nightly", At: next.Add(24 * time.Hour),
		Outcome: store.ScheduleFailed, Message: "neo4j unavailable", EndsFiring: true}))
	sc, err = b.st.GetSchedule(b.ctx, "nightly")
	require.NoError(t, err)
	require.Equal(t, store.ScheduleFailed, sc.LastOutcome)
	require.Equal(t, "neo4j unavailable", sc.LastMessage)
	require.Equal(t, "b-1", sc.LastBatchID, "a failed run keeps the last batch")

	require.NoError(t, b.st.DeleteSchedule(b.ctx, "nightly"))
	require.ErrorIs(t, b.st.DeleteSchedule(b.ctx, "nightly"), store.ErrNotFound)
	_, err = b.st.GetSchedule(b.ctx, "nightly")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, b.st.RecordScheduleRun(b.ctx, store.RecordScheduleRunParams{Name: "nightly", At: next}), store.ErrNotFound)
	require.Nil(t, b.claimRun(t, "nightly", next.Add(24*time.Hour), next.Add(48*time.Hour), next.Add(24*time.Hour)),
		"a deleted schedule is never claimed")
	list, err = b.st.ListSchedules(b.ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
}

func testSchedulePauseResume(t *testing.T, b *bundle) {
	next := t0.Add(time.Hour)
	b.schedule(t, "s", next, false)
	b.schedule(t, "born-paused", next, true)
	sc, err := b.st.GetSchedule(b.ctx, "born-paused")
	require.NoError(t, err)
	require.True(t, sc.Paused)
	require.True(t, sc.NextRunAt.IsZero(), "a paused schedule has no next run")

	sc, err = b.st.SetSchedulePaused(b.ctx, store.SetSchedulePausedParams{Name: "s", Paused: true})
	require.NoError(t, err)
	require.True(t, sc.Paused)
	require.True(t, sc.NextRunAt.IsZero())
	due, err := b.st.DueSchedules(b.ctx, next.Add(time.Hour))
	require.NoError(t, err)
	require.Empty(t, due, "paused schedules are never due")
	require.Nil(t, b.claimRun(t, "s", next, next.Add(time.Hour), next), "nor claimed with the time read before the pause")

	resumeAt := next.Add(3 * time.Hour)
	sc, err = b.st.SetSchedulePaused(b.ctx, store.SetSchedulePausedParams{Name: "s", Paused: false, NextRunAt: resumeAt})
	require.NoError(t, err)
	require.False(t, sc.Paused)
	require.True(t, sc.NextRunAt.Equal(resumeAt))
	// Resuming a running schedule leaves its next run alone.
	sc, err = b.st.SetSchedulePaused(b.ctx, store.SetSchedulePausedParams{Name: "s", Paused: false, NextRunAt: resumeAt.Add(time.Hour)})
	require.NoError(t, err)
	require.True(t, sc.NextRunAt.Equal(resumeAt))

	_, err = b.st.SetSchedulePaused(b.ctx, store.SetSchedulePausedParams{Name: "missing", Paused: true})
	require.ErrorIs(t, err, store.ErrNotFound)
}

// A run is claimed once: a second claim with the same due time (a coordinator that read the
// schedule before the first claim, or the same one after a restart) loses.
func testScheduleClaimOnce(t *testing.T, b *bundle) {
	next := t0.Add(time.Minute)
	b.schedule(t, "s", next, false)
	require.NotNil(t, b.claimRun(t, "s", next, next.Add(time.Minute), next))
	require.Nil(t, b.claimRun(t, "s", next, next.Add(time.Minute), next.Add(time.Second)), "the same run twice")
	require.Nil(t, b.claimRun(t, "s", next.Add(-time.Minute), next, next), "a run older than the schedule's next")
	due, err := b.st.DueSchedules(b.ctx, next.Add(30*time.Second))
	require.NoError(t, err)
	require.Empty(t, due, "the claim moved the next run")
}

// Claimers racing for the same runs, as coordinators of a fleet do every second: each run is
// won exactly once.
func testScheduleClaimConcurrent(t *testing.T, b *bundle) {
	const claimers, runs = 8, 15
	b.schedule(t, "s", t0, false)
	for r := range runs {
		due, next := t0.Add(time.Duration(r)*time.Minute), t0.Add(time.Duration(r+1)*time.Minute)
		var won atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, claimers)
		for range claimers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				c, err := b.st.ClaimScheduleRun(b.ctx, store.ClaimScheduleRunParams{Name: "s", Due: due, Next: next, Now: due, FiringTimeout: firingTimeout})
				if err != nil {
					errs <- err
					return
				}
				if c != nil {
					won.Add(1)
					errs <- b.st.RecordScheduleRun(b.ctx, store.RecordScheduleRunParams{Name: "s", At: due, Outcome: store.ScheduleLaunched, EndsFiring: true})
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.EqualValues(t, 1, won.Load(), "run %d won by exactly one claimer", r)
	}
	sc, err := b.st.GetSchedule(b.ctx, "s")
	require.NoError(t, err)
	require.True(t, sc.NextRunAt.Equal(t0.Add(runs*time.Minute)))
}

// A run that comes due while the previous one still prepares is claimed as busy (to be recorded
// as a skip) and leaves the firing mark alone; a firing older than the timeout no longer counts.
func testScheduleBusy(t *testing.T, b *bundle) {
	b.schedule(t, "s", t0, false)
	first := b.claimRun(t, "s", t0, t0.Add(time.Second), t0)
	require.NotNil(t, first)
	require.False(t, first.Busy)

	second := b.claimRun(t, "s", t0.Add(time.Second), t0.Add(2*time.Second), t0.Add(time.Second))
	require.NotNil(t, second)
	require.True(t, second.Busy, "the first run has not been recorded")
	require.NoError(t, b.st.RecordScheduleRun(b.ctx, store.RecordScheduleRunParams{Name: "s", At: t0.Add(time.Second),
		Outcome: store.ScheduleSkipped, Message: "previous run still preparing"}))
	sc, err := b.st.GetSchedule(b.ctx, "s")
	require.NoError(t, err)
	require.True(t, sc.FiringSince.Equal(t0), "a skip leaves the first run's mark")

	// The first run's coordinator died: after the timeout the next run fires anyway.
	late := t0.Add(firingTimeout + time.Second)
	third := b.claimRun(t, "s", t0.Add(2*time.Second), late.Add(time.Second), late)
	require.NotNil(t, third)
	require.False(t, third.Busy)
	sc, err = b.st.GetSchedule(b.ctx, "s")
	require.NoError(t, err)
	require.True(t, sc.FiringSince.Equal(late))
}
