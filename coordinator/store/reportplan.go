package store

import (
	"fmt"
	"time"
)

// ItemHead is what deciding a report needs to know of an item, read (and, where the backend
// can, locked) in the report's transaction.
type ItemHead struct {
	BatchID, InstanceType, AgentID, SessionID string
	State                                     ItemState
	Token                                     int64
	Attempt, MaxAttempts                      int
	// ResultToken is the token of the item's stored result, 0 when it has none.
	ResultToken int64
}

// ReportPlan decides the outcome of reports from the heads of their items, in memory, and
// collects the writes those outcomes imply by kind, so a backend writes a whole group with one
// statement per kind instead of several per report. Every backend decides through it, so they
// cannot drift apart on what a report means.
//
// A later report of the same item in the same plan sees the earlier one's outcome: an item's
// state is written at most once per plan (a second result is a duplicate, a second failure
// stale), so no write names an item twice.
type ReportPlan struct {
	heads map[int64]*ItemHead
	now   time.Time

	Results   []ResultWrite
	Succeeded []SucceededWrite
	Failed    []FailedWrite
	// Events are in the order they happened; their ids must follow it.
	Events []EventWrite
	// Spent is the cost to add to each batch's spending.
	Spent map[string]float64
	// Touched lists the batches whose items or spending changed.
	Touched map[string]bool
}

type ResultWrite struct {
	ItemID, Token    int64
	BatchID, AgentID string
	Dossier          []byte
	Metrics          Metrics
}

type SucceededWrite struct {
	ItemID  int64
	AgentID string
}

type FailedWrite struct {
	ItemID                int64
	State                 ItemState
	NextAttemptAt         time.Time // zero: at once
	LastError, StderrTail string
}

type EventWrite struct {
	ItemID, Token         int64
	Attempt               int
	BatchID, InstanceType string
	Kind                  EventKind
	AgentID, Message      string
	Metrics               Metrics
}

// NewReportPlan plans reports against heads (item id -> head; a missing item is unknown).
func NewReportPlan(heads map[int64]*ItemHead, now time.Time) *ReportPlan {
	return &ReportPlan{heads: heads, now: now, Spent: map[string]float64{}, Touched: map[string]bool{}}
}

// Head returns the head of an item, nil when the item is unknown.
func (p *ReportPlan) Head(itemID int64) *ItemHead { return p.heads[itemID] }

func (p *ReportPlan) record(id int64, h *ItemHead, token int64, agent string, kind EventKind, msg string, m Metrics) {
	p.Events = append(p.Events, EventWrite{ItemID: id, Token: token, Attempt: h.Attempt, BatchID: h.BatchID,
		InstanceType: h.InstanceType, Kind: kind, AgentID: agent, Message: msg, Metrics: m})
	// Every recorded run was paid for, whatever became of its result: it counts against the
	// batch's budget.
	if m.CostUSD > 0 {
		p.Spent[h.BatchID] += m.CostUSD
		p.Touched[h.BatchID] = true
	}
}

// Complete decides a result.
func (p *ReportPlan) Complete(c Completion) CompletionResult {
	h := p.heads[c.Lease.ItemID]
	if h == nil {
		return CompletionResult{Outcome: OutcomeStale}
	}
	res := CompletionResult{BatchID: h.BatchID}
	if c.Lease.Token > h.Token || c.Lease.Token <= 0 {
		// Never granted: nothing to record against a lease that does not exist.
		res.Outcome = OutcomeStale
		return res
	}
	switch h.State {
	case ItemSucceeded:
		// The same lease's result sent again (its Ack was lost) is the result already stored,
		// not more work: acknowledge it again and record nothing.
		if h.ResultToken == c.Lease.Token {
			res.Outcome, res.Redelivered = OutcomeAccepted, true
			return res
		}
		res.Outcome = OutcomeDuplicate
		p.record(c.Lease.ItemID, h, c.Lease.Token, c.AgentID, EventDuplicate, "dropped: item already has a result", c.Metrics)
		return res
	case ItemCancelled:
		res.Outcome = OutcomeStale
		p.record(c.Lease.ItemID, h, c.Lease.Token, c.AgentID, EventStale, "dropped: item was cancelled", c.Metrics)
		return res
	}
	// The work is real and paid for: a result from an older lease still wins if no result exists,
	// and the newer lease (if any) is superseded.
	if h.State == ItemLeased && h.Token != c.Lease.Token {
		res.Superseded = &LeaseHolder{
			LeaseRef: LeaseRef{ItemID: c.Lease.ItemID, Token: h.Token},
			BatchID:  h.BatchID, AgentID: h.AgentID, SessionID: h.SessionID,
		}
		p.record(c.Lease.ItemID, h, h.Token, h.AgentID, EventSuperseded,
			fmt.Sprintf("a result from the older lease %d won", c.Lease.Token), Metrics{})
	}
	p.Results = append(p.Results, ResultWrite{ItemID: c.Lease.ItemID, Token: c.Lease.Token, BatchID: h.BatchID,
		AgentID: c.AgentID, Dossier: c.Dossier, Metrics: c.Metrics})
	p.Succeeded = append(p.Succeeded, SucceededWrite{ItemID: c.Lease.ItemID, AgentID: c.AgentID})
	p.record(c.Lease.ItemID, h, c.Lease.Token, c.AgentID, EventSucceeded, "", c.Metrics)
	h.State, h.ResultToken, h.AgentID = ItemSucceeded, c.Lease.Token, c.AgentID
	p.Touched[h.BatchID] = true
	res.Outcome = OutcomeAccepted
	return res
}

// Fail decides a failed attempt; only the item's current lease can fail it.
func (p *ReportPlan) Fail(f Failure, retryDelay func(attempt int) time.Duration) FailureResult {
	h := p.heads[f.Lease.ItemID]
	if h == nil {
		return FailureResult{Outcome: OutcomeStale}
	}
	res := FailureResult{BatchID: h.BatchID}
	if f.Lease.Token > h.Token || f.Lease.Token <= 0 {
		res.Outcome = OutcomeStale
		return res
	}
	if h.State != ItemLeased || h.Token != f.Lease.Token {
		res.Outcome = OutcomeStale
		p.record(f.Lease.ItemID, h, f.Lease.Token, f.AgentID, EventStale, "ignored failure: "+f.Message, f.Metrics)
		return res
	}
	next, kind := ItemPending, EventRetrying
	var nextAt time.Time
	switch {
	case !f.Retryable:
		next, kind, res.Final = ItemFailed, EventFailedPermanent, true
	case h.Attempt >= h.MaxAttempts:
		next, kind, res.Final = ItemFailed, EventFailed, true
	case retryDelay != nil:
		nextAt = p.now.Add(retryDelay(h.Attempt))
	}
	p.Failed = append(p.Failed, FailedWrite{ItemID: f.Lease.ItemID, State: next, NextAttemptAt: nextAt,
		LastError: f.Message, StderrTail: f.StderrTail})
	p.record(f.Lease.ItemID, h, f.Lease.Token, f.AgentID, kind, f.Message, f.Metrics)
	h.State = next
	p.Touched[h.BatchID] = true
	res.Outcome = OutcomeAccepted
	return res
}

// Now is the time the plan's writes are stamped with.
func (p *ReportPlan) Now() time.Time { return p.now }
