package store

import (
	"context"
	"time"
)

// Consolidating a batch writes its dossiers, report and graph from the store. Several
// coordinators sharing a store may each set out to consolidate the same batch: the one that
// ended it, another that found it unconsolidated after that one died, an operator's enrichctl
// consolidate. Two at once would write the same files and graph rows side by side, so each
// takes the batch's consolidation claim first: an owner and an expiry on the batch, taken by one
// conditional UPDATE and renewed while the work runs. A claim its owner stopped renewing (the
// coordinator died) expires and may be taken by another.

type ClaimConsolidationParams struct {
	ID string
	// Owner names one consolidation run; renewing a claim passes the same owner.
	Owner string
	Now   time.Time
	// TTL is how long the claim holds without renewal: Now+TTL becomes its expiry.
	TTL time.Duration
}

type UnconsolidatedParams struct {
	// EndedBefore leaves out batches that ended after it: the coordinator that ended them is
	// consolidating them right now.
	EndedBefore time.Time
	// Now leaves out batches whose claim is live at Now.
	Now   time.Time
	Limit int
	// SkipFailed leaves out batches whose consolidation failed (ConsolidationError set): the
	// sweep leaves those to an operator, and must not let a hundred of them hide the rest.
	SkipFailed bool
}

// Consolidations is the part of a Store that keeps consolidation claims. Every backend
// implements it (Store embeds it).
type Consolidations interface {
	// ClaimConsolidation makes p.Owner the batch's consolidator until p.Now+p.TTL, unless another
	// owner's claim is live at p.Now, and reports whether p.Owner holds it now. Claiming again
	// with the same owner renews the claim. It returns ErrNotFound when there is no such batch.
	ClaimConsolidation(ctx context.Context, p ClaimConsolidationParams) (bool, error)
	// ReleaseConsolidation ends owner's claim on the batch, if owner still holds it.
	ReleaseConsolidation(ctx context.Context, id, owner string) error
	// UnconsolidatedBatches lists batches in a terminal state that ended (FinishedAt set) at or
	// before p.EndedBefore, have no ConsolidatedAt, and are not claimed at p.Now; those that
	// ended first come first, at most p.Limit (0: no limit). Batches whose consolidation failed
	// are listed too unless p.SkipFailed: ConsolidationError says why.
	UnconsolidatedBatches(ctx context.Context, p UnconsolidatedParams) ([]*Batch, error)
}
