// Package store is the coordinator's durable state: batches, their work items, leases, results and
// attempts. Store is the one seam every backend implements; storetest holds the conformance suite
// each backend must pass.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is returned when a batch or item does not exist.
var ErrNotFound = errors.New("not found")

// ErrInvalidState is returned when an operation does not apply to the batch's current state.
var ErrInvalidState = errors.New("invalid state")

// BatchState mirrors enrich.v1.BatchState.
type BatchState string

const (
	BatchPrepared              BatchState = "prepared"
	BatchRunning               BatchState = "running"
	BatchCompleted             BatchState = "completed"
	BatchCompletedWithFailures BatchState = "completed_with_failures"
	BatchCancelled             BatchState = "cancelled"
	// BatchBudgetExhausted: the batch's reported cost reached its budget; no lease is granted, the
	// items never run stay pending, and a launch with a larger budget resumes it.
	BatchBudgetExhausted BatchState = "budget_exhausted"
)

// Terminal reports whether no item of the batch will run again without an operator's action.
func (s BatchState) Terminal() bool {
	return s == BatchCompleted || s == BatchCompletedWithFailures || s == BatchCancelled || s == BatchBudgetExhausted
}

// ItemState mirrors enrich.v1.ItemState.
type ItemState string

const (
	ItemPending   ItemState = "pending"
	ItemLeased    ItemState = "leased"
	ItemSucceeded ItemState = "succeeded"
	ItemFailed    ItemState = "failed"
	ItemCancelled ItemState = "cancelled"
	ItemSkipped   ItemState = "skipped"
)

// Priority ranks pending items; higher is leased first.
type Priority int

const (
	PriorityLow    Priority = 1
	PriorityNormal Priority = 2
	PriorityHigh   Priority = 3
)

// Batch is one prepared set of entities.
type Batch struct {
	ID                 string
	Source             string
	State              BatchState
	CreatedAt          time.Time
	LaunchedAt         time.Time
	FinishedAt         time.Time
	ConsolidatedAt     time.Time
	OutputDir          string
	ConsolidationError string
	// BudgetUSD caps what the batch may spend; 0 means no cap. SpentUSD is the cost reported by
	// every run so far, duplicates included: they were paid too.
	BudgetUSD float64
	SpentUSD  float64
}

// NewItem is one entity to add to a new batch.
type NewItem struct {
	EntityID     string
	EntityType   string
	Name         string
	InstanceType string
	Priority     Priority
	// Entity is the serialized entity record handed to runners verbatim.
	Entity      []byte
	MaxAttempts int
}

// Item is one entity of a batch with its processing state.
type Item struct {
	ID            int64
	BatchID       string
	EntityID      string
	EntityType    string
	Name          string
	InstanceType  string
	Priority      Priority
	Entity        []byte
	State         ItemState
	Attempt       int
	MaxAttempts   int
	Token         int64
	AgentID       string
	SessionID     string
	LeasedAt      time.Time
	ExpiresAt     time.Time
	Deadline      time.Time
	NextAttemptAt time.Time
	UpdatedAt     time.Time
	LastError     string
	StderrTail    string
	// BudgetLeftUSD is set by Claim: what the item's batch may still spend when the lease was
	// granted, 0 when the batch has no budget. It caps the run's own spending.
	BudgetLeftUSD float64
}

// StateCounts counts a batch's items of one instance type by state.
type StateCounts struct {
	Total, Pending, Leased, Succeeded, Failed, Cancelled, Skipped int
	// Retrying counts pending items that have been attempted before.
	Retrying int
}

// Open is the number of items that still need work.
func (c StateCounts) Open() int { return c.Pending + c.Leased }

// Add counts n items in state st, attempted of which have been tried before (retrying, when
// pending). Backends feed it the rows of a GROUP BY state.
func (c *StateCounts) Add(st ItemState, n, attempted int) {
	c.Total += n
	switch st {
	case ItemPending:
		c.Pending += n
		c.Retrying += attempted
	case ItemLeased:
		c.Leased += n
	case ItemSucceeded:
		c.Succeeded += n
	case ItemFailed:
		c.Failed += n
	case ItemCancelled:
		c.Cancelled += n
	case ItemSkipped:
		c.Skipped += n
	}
}

// CheckPurgeable refuses to purge an entity from a batch that has not ended: its items may still
// be leased or about to be.
func CheckPurgeable(entityID, batchID string, st BatchState) error {
	if st.Terminal() {
		return nil
	}
	return fmt.Errorf("entity %q is in batch %s, which is %s: cancel it or let it end first: %w", entityID, batchID, st, ErrInvalidState)
}

// Metrics describe one runner invocation.
type Metrics struct {
	Duration     time.Duration
	CostUSD      float64
	InputTokens  int64
	OutputTokens int64
	Turns        int
	SessionID    string
	Runner       string
}

// LeaseRef names one grant of one item.
type LeaseRef struct {
	ItemID int64
	Token  int64
}

// LeaseHolder is a lease and the agent session that holds it.
type LeaseHolder struct {
	LeaseRef
	BatchID   string
	AgentID   string
	SessionID string
}

type CreateBatchParams struct {
	ID        string
	Source    string
	CreatedAt time.Time
	OutputDir string
	Items     []NewItem
}

type LaunchBatchParams struct {
	ID string
	// InstanceTypes selects the instance types to run; nil runs all. Items of other types become
	// skipped, skipped items of selected types become pending again.
	InstanceTypes []string
	// BudgetUSD, when more than 0, sets the batch's budget. A batch that exhausted its budget
	// needs one larger than what it spent to run again.
	BudgetUSD float64
	Now       time.Time
}

type CancelBatchParams struct {
	ID     string
	Reason string
	Now    time.Time
}

type RetryFailedParams struct {
	ID string
	// Attempts is the fresh attempt budget each failed item gets.
	Attempts int
	Now      time.Time
}

type ListItemsParams struct {
	BatchID      string
	States       []ItemState
	InstanceType string
	Limit        int
}

type ClaimParams struct {
	AgentID   string
	SessionID string
	// InstanceTypes the agent serves.
	InstanceTypes []string
	// Limit is the most items to claim (the agent's outstanding credits).
	Limit int
	// MaxConcurrent caps the items of a type leased fleet-wide; absent or 0 means no cap.
	MaxConcurrent map[string]int
	// Timeouts is the per-entity run timeout of each type; the lease's deadline is Now+timeout.
	Timeouts map[string]time.Duration
	LeaseTTL time.Duration
	Now      time.Time
}

// Completion is a dossier delivered for a lease.
type Completion struct {
	Lease   LeaseRef
	AgentID string
	Dossier []byte
	Metrics Metrics
}

// Failure is a run that produced no usable dossier.
type Failure struct {
	Lease      LeaseRef
	AgentID    string
	Retryable  bool
	Message    string
	StderrTail string
	Metrics    Metrics
}

type ReportParams struct {
	Completions []Completion
	Failures    []Failure
	Now         time.Time
	// RetryDelay returns how long an item waits before its next attempt after failing attempt n.
	RetryDelay func(attempt int) time.Duration
}

// Outcome says what happened to a reported result or failure.
type Outcome string

const (
	// OutcomeAccepted: the report changed the item.
	OutcomeAccepted Outcome = "accepted"
	// OutcomeDuplicate: the item already had a result; the dossier was dropped.
	OutcomeDuplicate Outcome = "duplicate"
	// OutcomeStale: the lease was superseded or the item ended; nothing changed.
	OutcomeStale Outcome = "stale"
)

type CompletionResult struct {
	Outcome Outcome
	BatchID string
	// Redelivered is set when the lease's result had already been accepted: an agent re-sent it
	// because it never saw the acknowledgement. Nothing changed.
	Redelivered bool
	// Superseded is set when a late result won over a newer lease that must now be cancelled.
	Superseded *LeaseHolder
}

type FailureResult struct {
	Outcome Outcome
	BatchID string
	// Final is true when the item failed for good (permanent failure or attempts exhausted).
	Final bool
}

type ReportResult struct {
	Completions []CompletionResult
	Failures    []FailureResult
	// FinishedBatches lists batches this report ended.
	FinishedBatches []string
}

type ExtendLeasesParams struct {
	AgentID   string
	SessionID string
	Leases    []LeaseRef
	LeaseTTL  time.Duration
	Now       time.Time
}

type ReapParams struct {
	Now        time.Time
	RetryDelay func(attempt int) time.Duration
}

type ReleaseParams struct {
	Leases []LeaseRef
	// Message is recorded as the item's last error.
	Message    string
	Now        time.Time
	RetryDelay func(attempt int) time.Duration
}

type ReapResult struct {
	Expired         []LeaseHolder
	FinishedBatches []string
}

// ResultRow is an accepted dossier with its item.
type ResultRow struct {
	Item *Item
	// Token is the lease whose run produced the dossier.
	Token   int64
	Dossier []byte
	Metrics Metrics
}

// EventKind names one step in an item's history.
type EventKind string

const (
	// EventGranted: a lease was granted with a new token and attempt number.
	EventGranted EventKind = "granted"
	// EventSucceeded: a result was accepted; the item has its one dossier.
	EventSucceeded EventKind = "succeeded"
	// EventRetrying: a run failed, its lease expired or was released; the item will run again.
	EventRetrying EventKind = "retrying"
	// EventFailed: the item's last allowed attempt failed.
	EventFailed EventKind = "failed"
	// EventFailedPermanent: a failure retrying cannot fix ended the item before its budget.
	EventFailedPermanent EventKind = "failed_permanent"
	// EventDuplicate: a result arrived after another was accepted and was dropped.
	EventDuplicate EventKind = "duplicate"
	// EventStale: a report for a lease that no longer counts was ignored.
	EventStale EventKind = "stale"
	// EventSuperseded: a late result from an older lease won; this newer lease was cancelled.
	EventSuperseded EventKind = "superseded"
	// EventCancelled: the batch was cancelled while the item was open.
	EventCancelled EventKind = "cancelled"
	// EventRequeued: an operator's retry gave the failed item a fresh attempt budget.
	EventRequeued EventKind = "requeued"
)

// EndsRun reports whether the event closes a run an agent was paid for (a report or an expiry),
// as opposed to a grant or an operator's action.
func (k EventKind) EndsRun() bool {
	switch k {
	case EventSucceeded, EventRetrying, EventFailed, EventFailedPermanent, EventDuplicate, EventStale:
		return true
	}
	return false
}

// Event is one step of an item's history, in commit order.
type Event struct {
	ID           int64
	ItemID       int64
	BatchID      string
	InstanceType string
	Token        int64
	// Attempt is the item's attempt number when the event happened.
	Attempt int
	Kind    EventKind
	AgentID string
	Message string
	Metrics Metrics
	At      time.Time
}

// Attempt is one finished run of an item, whatever its outcome.
type Attempt struct {
	ItemID       int64
	Token        int64
	InstanceType string
	AgentID      string
	Outcome      string
	Message      string
	Metrics      Metrics
	EndedAt      time.Time
}

type MarkConsolidatedParams struct {
	ID        string
	OutputDir string
	// Error is the consolidation failure, empty on success.
	Error string
	Now   time.Time
}

// Store is implemented by every backend. All methods are safe for concurrent use.
type Store interface {
	CreateBatch(ctx context.Context, p CreateBatchParams) error
	GetBatch(ctx context.Context, id string) (*Batch, error)
	// ListBatches returns the newest batches first.
	ListBatches(ctx context.Context, limit int) ([]*Batch, error)
	LaunchBatch(ctx context.Context, p LaunchBatchParams) error
	// CancelBatch cancels every open item and returns the leases that were in flight.
	CancelBatch(ctx context.Context, p CancelBatchParams) ([]LeaseHolder, error)
	RetryFailed(ctx context.Context, p RetryFailedParams) (int, error)
	BatchCounts(ctx context.Context, id string) (map[string]StateCounts, error)
	ListItems(ctx context.Context, p ListItemsParams) ([]*Item, error)
	GetItem(ctx context.Context, batchID, entityID string) (*Item, error)
	ItemByID(ctx context.Context, id int64) (*Item, error)

	// Claim leases up to p.Limit pending items of running batches to an agent session, highest
	// priority then oldest first, within each type's fleet-wide cap. Each claimed item gets a new,
	// higher token and attempt+1.
	Claim(ctx context.Context, p ClaimParams) ([]*Item, error)
	// Report commits results and failures in one transaction.
	Report(ctx context.Context, p ReportParams) (*ReportResult, error)
	// ExtendLeases moves the expiry of leases the session still holds and re-binds them to the
	// session (after a reconnect). It returns the leases the session no longer holds.
	ExtendLeases(ctx context.Context, p ExtendLeasesParams) ([]LeaseRef, error)
	// ReapExpired returns leases past their expiry to pending (or failed, when out of attempts).
	ReapExpired(ctx context.Context, p ReapParams) (*ReapResult, error)
	// ReleaseLeases ends the given leases now, as if they had expired, when they are still the
	// items' current leases: the agent said it no longer runs them.
	ReleaseLeases(ctx context.Context, p ReleaseParams) (*ReapResult, error)
	// LeasesHeldBy lists the current leases granted to an agent, whatever its session.
	LeasesHeldBy(ctx context.Context, agentID string) ([]LeaseHolder, error)

	Results(ctx context.Context, batchID string) ([]*ResultRow, error)
	Result(ctx context.Context, itemID int64) (*ResultRow, error)
	// Attempts lists the batch's finished runs (events that end a run) in commit order.
	Attempts(ctx context.Context, batchID string) ([]*Attempt, error)
	// AttemptTotals sums the batch's finished runs per instance type (attempts.go).
	AttemptTotals(ctx context.Context, batchID string) (map[string]AttemptTotals, error)
	// Events lists the batch's whole history in commit order.
	Events(ctx context.Context, batchID string) ([]*Event, error)
	MarkConsolidated(ctx context.Context, p MarkConsolidatedParams) error

	// Schedules (schedule.go).
	Schedules
	// Consolidation claims (consolidation.go).
	Consolidations

	// PurgeEntity deletes everything stored about one entity (its items, results and events) in
	// one batch or, with BatchID empty, in all. It refuses with ErrInvalidState while a batch
	// holding it has not ended, and returns ErrNotFound when nothing matches.
	PurgeEntity(ctx context.Context, p PurgeEntityParams) ([]PurgedItem, error)

	Ping(ctx context.Context) error
	Close() error
}

type PurgeEntityParams struct {
	EntityID string
	BatchID  string
}

// PurgedItem is one deleted item, with what the caller needs to delete its files too.
type PurgedItem struct {
	BatchID      string
	EntityID     string
	InstanceType string
	OutputDir    string
	HadResult    bool
}
