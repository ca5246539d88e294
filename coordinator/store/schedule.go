package store

import (
	"context"
	"errors"
	"time"
)

// ErrExists is returned when a name that must be unique is taken.
var ErrExists = errors.New("already exists")

// ScheduleOutcome is what a schedule's last run did.
type ScheduleOutcome string

const (
	// ScheduleNeverRun: the schedule has not fired yet.
	ScheduleNeverRun ScheduleOutcome = ""
	// ScheduleLaunched: a batch was prepared and launched.
	ScheduleLaunched ScheduleOutcome = "launched"
	// ScheduleSkipped: the previous run's batch was still running; nothing was prepared.
	ScheduleSkipped ScheduleOutcome = "skipped"
	// ScheduleFailed: preparing or launching failed; the message says why.
	ScheduleFailed ScheduleOutcome = "failed"
)

// Schedule is a recurring prepare-and-launch. The store knows nothing of cron: the coordinator
// computes NextRunAt and the store only keeps it and lets one claimer advance it.
type Schedule struct {
	Name     string
	Cron     string
	Timezone string
	// Source is the serialized selection (an enrich.v1.Neo4jSource), handed back verbatim.
	Source    []byte
	Size      int
	BudgetUSD float64
	Paused    bool
	CreatedAt time.Time
	// NextRunAt is when the schedule fires next; zero while paused.
	NextRunAt time.Time
	// FiringSince is set from a claim until its run is recorded: a run is preparing or launching.
	FiringSince time.Time
	LastRunAt   time.Time
	LastOutcome ScheduleOutcome
	LastMessage string
	LastBatchID string
}

type CreateScheduleParams struct {
	Name      string
	Cron      string
	Timezone  string
	Source    []byte
	Size      int
	BudgetUSD float64
	Paused    bool
	// NextRunAt is the first run; ignored (kept zero) when Paused.
	NextRunAt time.Time
	Now       time.Time
}

type SetSchedulePausedParams struct {
	Name   string
	Paused bool
	// NextRunAt is the first run after resuming; ignored when pausing.
	NextRunAt time.Time
}

type ClaimScheduleRunParams struct {
	Name string
	// Due is the NextRunAt the caller read: the claim wins only while it is still the schedule's,
	// so of any number of claimers (coordinators of a fleet, or one before and after a restart)
	// exactly one wins each run.
	Due time.Time
	// Next is the run after this one, written by the winning claim.
	Next time.Time
	Now  time.Time
	// FiringTimeout: a firing that started longer ago than this is taken for dead (its coordinator
	// stopped before recording it) and no longer holds the schedule back.
	FiringTimeout time.Duration
}

// ScheduleClaim is a won claim of one run.
type ScheduleClaim struct {
	// Schedule is the schedule as it was when claimed, read under the claim's lock.
	Schedule *Schedule
	// Busy is set when an earlier run of the schedule is still firing: this run must be recorded
	// as skipped and must not prepare anything. The earlier run keeps its FiringSince.
	Busy bool
}

type RecordScheduleRunParams struct {
	Name string
	// At is the cron time of the run.
	At      time.Time
	Outcome ScheduleOutcome
	Message string
	// BatchID, when set, becomes the schedule's last batch; empty keeps the last one.
	BatchID string
	// EndsFiring clears FiringSince: set by the run that claimed it, never by a skip recorded
	// while another run fires.
	EndsFiring bool
}

// Schedules is the part of a Store that keeps schedules. Every backend implements it (Store
// embeds it); it is separate only so its contract reads in one place.
type Schedules interface {
	// CreateSchedule returns ErrExists when the name is taken.
	CreateSchedule(ctx context.Context, p CreateScheduleParams) error
	GetSchedule(ctx context.Context, name string) (*Schedule, error)
	// ListSchedules returns every schedule by name.
	ListSchedules(ctx context.Context) ([]*Schedule, error)
	// DeleteSchedule returns ErrNotFound when there is no such schedule.
	DeleteSchedule(ctx context.Context, name string) error
	// SetSchedulePaused pauses (NextRunAt becomes zero) or resumes (NextRunAt is p.NextRunAt) a
	// schedule; pausing a paused or resuming a running schedule changes nothing.
	SetSchedulePaused(ctx context.Context, p SetSchedulePausedParams) (*Schedule, error)
	// DueSchedules lists the schedules that are not paused and whose NextRunAt is at or before now.
	DueSchedules(ctx context.Context, now time.Time) ([]*Schedule, error)
	// ClaimScheduleRun atomically moves NextRunAt from p.Due to p.Next and marks the run firing
	// (unless an earlier run still fires: then Busy). It returns nil when the schedule is gone,
	// paused, or its NextRunAt is no longer p.Due: another claimer won this run.
	ClaimScheduleRun(ctx context.Context, p ClaimScheduleRunParams) (*ScheduleClaim, error)
	// RecordScheduleRun stores a run's outcome. A schedule deleted meanwhile returns ErrNotFound.
	RecordScheduleRun(ctx context.Context, p RecordScheduleRunParams) error
}
