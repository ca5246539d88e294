// Package invariant checks a batch's stored history against the promises the coordinator makes:
// no paid work lost, none repeated, every attempt accounted for. It reads only through
// store.Store, so every backend and every fault test (agent kills, coordinator crashes, cut
// links, several coordinators) can run the same checker over what it left behind.
package invariant

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sportsintel/enrich/coordinator/store"
)

// Violation is one broken promise about one item.
type Violation struct {
	ItemID   int64
	EntityID string
	Problem  string
}

func (v Violation) String() string {
	return fmt.Sprintf("item %d (%s): %s", v.ItemID, v.EntityID, v.Problem)
}

// Report summarises a batch's history and lists every violation found.
type Report struct {
	BatchID string
	State   store.BatchState
	Items   int
	// Grants counts leases granted; Runs counts runs that ended (reports and expiries).
	Grants, Runs                         int
	Succeeded, Failed, Cancelled, Open   int
	Retries, Duplicates, Stale, LateWins int
	Superseded, Requeued                 int
	Violations                           []Violation
}

// Err is nil when the history keeps every promise, or lists the violations.
func (r *Report) Err() error {
	if len(r.Violations) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "batch %s: %d invariant violations:", r.BatchID, len(r.Violations))
	for i, v := range r.Violations {
		if i == 50 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(r.Violations)-i)
			break
		}
		b.WriteString("\n  " + v.String())
	}
	return errors.New(b.String())
}

func (r *Report) String() string {
	return fmt.Sprintf("batch %s (%s): %d items: %d succeeded, %d failed, %d cancelled, %d open; %d grants, %d runs ended, "+
		"%d retries, %d duplicates dropped, %d stale reports, %d late results won, %d leases superseded, %d requeued; %d violations",
		r.BatchID, r.State, r.Items, r.Succeeded, r.Failed, r.Cancelled, r.Open, r.Grants, r.Runs,
		r.Retries, r.Duplicates, r.Stale, r.LateWins, r.Superseded, r.Requeued, len(r.Violations))
}

// Check reads a batch's items, results and events and verifies, for every item:
//   - grants carry strictly increasing tokens, one attempt each, and never overlap: a new lease is
//     granted only after the previous one ended;
//   - every report and expiry names a granted token, and only the current lease can fail the item;
//   - every granted lease ends exactly once (result, failure, expiry, supersession or cancellation)
//     once the batch has ended;
//   - at most one result is accepted, the item is succeeded exactly when one was, and the stored
//     dossier is the one from that lease;
//   - an item failed after exactly its attempt budget, unless a failure was permanent; a cancelled
//     item has no result; the attempt counter equals the number of grants.
func Check(ctx context.Context, st store.Store, batchID string) (*Report, error) {
	b, err := st.GetBatch(ctx, batchID)
	if err != nil {
		return nil, err
	}
	items, err := st.ListItems(ctx, store.ListItemsParams{BatchID: batchID})
	if err != nil {
		return nil, err
	}
	results, err := st.Results(ctx, batchID)
	if err != nil {
		return nil, err
	}
	events, err := st.Events(ctx, batchID)
	if err != nil {
		return nil, err
	}
	rep := &Report{BatchID: batchID, State: b.State, Items: len(items)}
	byItem := map[int64][]*store.Event{}
	for _, e := range events {
		byItem[e.ItemID] = append(byItem[e.ItemID], e)
	}
	resultOf := map[int64]*store.ResultRow{}
	for _, r := range results {
		if _, dup := resultOf[r.Item.ID]; dup {
			rep.add(r.Item, "two stored results")
		}
		resultOf[r.Item.ID] = r
	}
	known := map[int64]bool{}
	for _, it := range items {
		known[it.ID] = true
		// A batch stopped at its budget keeps the items it never ran pending, to resume later.
		rep.checkItem(it, byItem[it.ID], resultOf[it.ID], b.State.Terminal() && b.State != store.BatchBudgetExhausted)
	}
	for id := range byItem {
		if !known[id] {
			rep.Violations = append(rep.Violations, Violation{ItemID: id, Problem: "events for an item that is not in the batch"})
		}
	}
	for id, r := range resultOf {
		if !known[id] {
			rep.add(r.Item, "a stored result for an item that is not in the batch")
		}
	}
	return rep, nil
}

func (r *Report) add(it *store.Item, format string, args ...any) {
	r.Violations = append(r.Violations, Violation{ItemID: it.ID, EntityID: it.EntityID, Problem: fmt.Sprintf(format, args...)})
}

// itemHistory replays one item's events.
type itemHistory struct {
	granted   map[int64]bool
	closed    map[int64]bool
	open      int64 // the current lease's token, 0 when none
	lastToken int64
	grants    int
	successes []int64 // tokens whose result was accepted
	// last is the latest event that decided the item's state.
	last *store.Event
}

func (r *Report) checkItem(it *store.Item, events []*store.Event, result *store.ResultRow, batchEnded bool) {
	h := itemHistory{granted: map[int64]bool{}, closed: map[int64]bool{}}
	closeOpen := func(e *store.Event) {
		if h.open != e.Token {
			if h.open == 0 {
				r.add(it, "%s of lease %d, which is not open (event %d)", e.Kind, e.Token, e.ID)
			} else {
				r.add(it, "%s of lease %d while lease %d is the current one (event %d)", e.Kind, e.Token, h.open, e.ID)
			}
			return
		}
		h.closed[e.Token] = true
		h.open = 0
	}
	for _, e := range events {
		if e.Kind.EndsRun() {
			r.Runs++
		}
		if e.Kind != store.EventGranted && e.Token != 0 && !h.granted[e.Token] {
			r.add(it, "%s names lease %d, which was never granted (event %d)", e.Kind, e.Token, e.ID)
		}
		switch e.Kind {
		case store.EventGranted:
			r.Grants++
			h.grants++
			if e.Token <= h.lastToken {
				r.add(it, "grant token %d is not higher than the previous %d (event %d)", e.Token, h.lastToken, e.ID)
			}
			if h.open != 0 {
				r.add(it, "lease %d granted while lease %d was still open (event %d)", e.Token, h.open, e.ID)
			}
			if e.Attempt != h.grants {
				r.add(it, "grant %d carries attempt %d (event %d)", h.grants, e.Attempt, e.ID)
			}
			h.granted[e.Token] = true
			h.open, h.lastToken = e.Token, e.Token
		case store.EventSucceeded:
			if len(h.successes) > 0 {
				r.add(it, "a second result was accepted (lease %d after lease %d)", e.Token, h.successes[0])
			}
			h.successes = append(h.successes, e.Token)
			switch {
			case h.open == e.Token:
				closeOpen(e)
			case h.open != 0:
				r.add(it, "late result of lease %d accepted while lease %d was open and not superseded", e.Token, h.open)
			default:
				r.LateWins++
			}
			h.last = e
		case store.EventRetrying, store.EventFailed, store.EventFailedPermanent:
			if e.Kind == store.EventRetrying {
				r.Retries++
			}
			closeOpen(e)
			h.last = e
		case store.EventSuperseded:
			r.Superseded++
			closeOpen(e)
		case store.EventCancelled:
			if e.Token != 0 {
				closeOpen(e)
			} else if h.open != 0 {
				r.add(it, "cancelled as not leased while lease %d was open (event %d)", h.open, e.ID)
			}
			h.last = e
		case store.EventRequeued:
			r.Requeued++
			if h.last == nil || (h.last.Kind != store.EventFailed && h.last.Kind != store.EventFailedPermanent) {
				r.add(it, "requeued without having failed (event %d)", e.ID)
			}
			h.last = e
		case store.EventDuplicate:
			r.Duplicates++
			if len(h.successes) == 0 {
				r.add(it, "a result was dropped as a duplicate before any was accepted (event %d)", e.ID)
			}
		case store.EventStale:
			r.Stale++
		default:
			r.add(it, "unknown event kind %q (event %d)", e.Kind, e.ID)
		}
	}

	if it.Attempt != h.grants {
		r.add(it, "attempt counter %d, but %d leases were granted", it.Attempt, h.grants)
	}
	if it.State == store.ItemLeased {
		if h.open != it.Token {
			r.add(it, "leased with token %d, but the open lease in its history is %d", it.Token, h.open)
		}
	} else if h.open != 0 {
		r.add(it, "%s, but lease %d never ended", it.State, h.open)
	}
	r.checkOutcome(it, &h, result)
	if batchEnded {
		switch it.State {
		case store.ItemSucceeded, store.ItemFailed, store.ItemCancelled, store.ItemSkipped:
		default:
			r.add(it, "still %s after the batch ended", it.State)
		}
	}
}

func (r *Report) checkOutcome(it *store.Item, h *itemHistory, result *store.ResultRow) {
	switch it.State {
	case store.ItemSucceeded:
		r.Succeeded++
		if len(h.successes) == 0 {
			r.add(it, "succeeded without an accepted result in its history")
		}
		if result == nil {
			r.add(it, "succeeded but no dossier is stored")
		} else if len(h.successes) > 0 && result.Token != h.successes[0] {
			r.add(it, "the stored dossier came from lease %d, the accepted result from lease %d", result.Token, h.successes[0])
		}
		if h.grants > it.MaxAttempts {
			r.add(it, "%d leases granted, more than its budget of %d", h.grants, it.MaxAttempts)
		}
	case store.ItemFailed:
		r.Failed++
		switch {
		case h.last == nil:
			r.add(it, "failed without a failure in its history")
		case h.last.Kind == store.EventFailed:
			if it.Attempt != it.MaxAttempts {
				r.add(it, "failed after %d attempts, its budget is %d", it.Attempt, it.MaxAttempts)
			}
		case h.last.Kind == store.EventFailedPermanent:
			if it.Attempt > it.MaxAttempts {
				r.add(it, "failed after %d attempts, more than its budget of %d", it.Attempt, it.MaxAttempts)
			}
		default:
			r.add(it, "failed, but the last decision in its history was %s", h.last.Kind)
		}
	case store.ItemCancelled:
		r.Cancelled++
		if h.last == nil || h.last.Kind != store.EventCancelled {
			r.add(it, "cancelled without a cancellation in its history")
		}
	case store.ItemPending, store.ItemLeased:
		r.Open++
	}
	if it.State != store.ItemSucceeded {
		if len(h.successes) > 0 {
			r.add(it, "%s, but a result was accepted for lease %d", it.State, h.successes[0])
		}
		if result != nil {
			r.add(it, "%s, but a dossier is stored", it.State)
		}
	}
}
