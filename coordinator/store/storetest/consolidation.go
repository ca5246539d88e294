package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/coordinator/store"
)

var consolidationTests = map[string]func(t *testing.T, b *bundle){
	"UnconsolidatedBatches":        testUnconsolidatedBatches,
	"ConsolidationClaim":           testConsolidationClaim,
	"ConsolidationClaimConcurrent": testConsolidationClaimConcurrent,
	"ConsolidationClaimNotFound":   testConsolidationClaimNotFound,
	"ConsolidationClaimAnyBatch":   testConsolidationClaimConsolidated,
}

const claimTTL = time.Minute

// ended creates a launched batch of one item and cancels it at end.
func (b *bundle) ended(t *testing.T, id string, end time.Time) {
	t.Helper()
	b.batch(t, id, t0, item("e-"+id, "entities", store.PriorityNormal))
	b.launch(t, id)
	_, err := b.st.CancelBatch(b.ctx, store.CancelBatchParams{ID: id, Reason: "test", Now: end})
	require.NoError(t, err)
}

func (b *bundle) claimConsolidation(t *testing.T, id, owner string, now time.Time) bool {
	t.Helper()
	won, err := b.st.ClaimConsolidation(b.ctx, store.ClaimConsolidationParams{ID: id, Owner: owner, Now: now, TTL: claimTTL})
	require.NoError(t, err)
	return won
}

func (b *bundle) unconsolidated(t *testing.T, endedBefore, now time.Time) []string {
	t.Helper()
	list, err := b.st.UnconsolidatedBatches(b.ctx, store.UnconsolidatedParams{EndedBefore: endedBefore, Now: now})
	require.NoError(t, err)
	out := []string{}
	for _, bt := range list {
		require.True(t, bt.State.Terminal())
		out = append(out, bt.ID)
	}
	return out
}

// The batches a fleet's leader must consolidate: ended before the grace, not consolidated, not
// being consolidated; failed consolidations are listed with their error.
func testUnconsolidatedBatches(t *testing.T, b *bundle) {
	b.ended(t, "late", t0.Add(5*time.Minute))
	b.ended(t, "early", t0.Add(time.Minute))
	b.ended(t, "done", t0.Add(time.Minute))
	require.NoError(t, b.st.MarkConsolidated(b.ctx, store.MarkConsolidatedParams{ID: "done", OutputDir: "out/done", Now: t0.Add(2 * time.Minute)}))
	b.ended(t, "failed", t0.Add(2*time.Minute))
	require.NoError(t, b.st.MarkConsolidated(b.ctx, store.MarkConsolidatedParams{ID: "failed", Error: "disk full", Now: t0.Add(3 * time.Minute)}))
	b.batch(t, "running", t0, item("r1", "entities", store.PriorityNormal))
	b.launch(t, "running")
	b.batch(t, "prepared", t0, item("p1", "entities", store.PriorityNormal))

	now := t0.Add(10 * time.Minute)
	require.Equal(t, []string{"early", "failed", "late"}, b.unconsolidated(t, now, now), "oldest end first")
	require.Equal(t, []string{"early", "failed"}, b.unconsolidated(t, t0.Add(4*time.Minute), now),
		"a batch that ended within the grace is its own coordinator's")
	list, err := b.st.UnconsolidatedBatches(b.ctx, store.UnconsolidatedParams{EndedBefore: now, Now: now, Limit: 1})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "early", list[0].ID)
	require.True(t, list[0].FinishedAt.Equal(t0.Add(time.Minute)))
	failed, err := b.st.UnconsolidatedBatches(b.ctx, store.UnconsolidatedParams{EndedBefore: t0.Add(2 * time.Minute), Now: now})
	require.NoError(t, err)
	require.Len(t, failed, 2)
	require.Equal(t, "disk full", failed[1].ConsolidationError)
	// The sweep's view: failed batches left out before the limit applies, so they cannot crowd
	// out the rest.
	list, err = b.st.UnconsolidatedBatches(b.ctx, store.UnconsolidatedParams{EndedBefore: now, Now: now, Limit: 2, SkipFailed: true})
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, []string{"early", "late"}, []string{list[0].ID, list[1].ID})

	require.True(t, b.claimConsolidation(t, "early", "c1", now))
	require.Equal(t, []string{"failed", "late"}, b.unconsolidated(t, now, now.Add(time.Second)), "a live claim hides the batch")
	require.Equal(t, []string{"early", "failed", "late"}, b.unconsolidated(t, now, now.Add(claimTTL+time.Second)),
		"an expired one does not: its coordinator died")

}

// A claim is one owner's until it expires or is released; its owner renews it.
func testConsolidationClaim(t *testing.T, b *bundle) {
	b.ended(t, "b1", t0)
	require.True(t, b.claimConsolidation(t, "b1", "c1", t0))
	require.False(t, b.claimConsolidation(t, "b1", "c2", t0.Add(time.Second)), "held by c1")
	require.True(t, b.claimConsolidation(t, "b1", "c1", t0.Add(50*time.Second)), "renewed by its owner")
	require.False(t, b.claimConsolidation(t, "b1", "c2", t0.Add(claimTTL+time.Second)), "the renewal moved the expiry")
	require.True(t, b.claimConsolidation(t, "b1", "c2", t0.Add(50*time.Second+claimTTL+time.Millisecond)), "expired: taken over")

	// The previous owner's late release must not free the new owner's claim.
	now := t0.Add(2 * claimTTL)
	require.NoError(t, b.st.ReleaseConsolidation(b.ctx, "b1", "c1"))
	require.False(t, b.claimConsolidation(t, "b1", "c3", now))
	require.NoError(t, b.st.ReleaseConsolidation(b.ctx, "b1", "c2"))
	require.True(t, b.claimConsolidation(t, "b1", "c3", now), "released: free at once")
	require.NoError(t, b.st.ReleaseConsolidation(b.ctx, "b1", "c3"))
	require.NoError(t, b.st.ReleaseConsolidation(b.ctx, "b1", "c3"), "releasing twice is harmless")
}

// Consolidators racing for one batch, as a fleet's leader and the coordinator that ended it may:
// exactly one wins each round.
func testConsolidationClaimConcurrent(t *testing.T, b *bundle) {
	const claimers, rounds = 8, 10
	b.ended(t, "b1", t0)
	for r := range rounds {
		now := t0.Add(time.Duration(r) * 2 * claimTTL) // every round starts after the last claim expired
		var won atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, claimers)
		for c := range claimers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ok, err := b.st.ClaimConsolidation(b.ctx, store.ClaimConsolidationParams{ID: "b1", Owner: fmt.Sprintf("c%d-%d", r, c), Now: now, TTL: claimTTL})
				if ok {
					won.Add(1)
				}
				errs <- err
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.EqualValues(t, 1, won.Load(), "round %d won by exactly one claimer", r)
	}
}

func testConsolidationClaimNotFound(t *testing.T, b *bundle) {
	_, err := b.st.ClaimConsolidation(b.ctx, store.ClaimConsolidationParams{ID: "missing", Owner: "c1", Now: t0, TTL: claimTTL})
	require.ErrorIs(t, err, store.ErrNotFound)
	require.NoError(t, b.st.ReleaseConsolidation(b.ctx, "missing", "c1"))
}

// An operator may consolidate any batch again, consolidated or running: the claim does not care.
func testConsolidationClaimConsolidated(t *testing.T, b *bundle) {
	b.ended(t, "b1", t0)
	require.NoError(t, b.st.MarkConsolidated(b.ctx, store.MarkConsolidatedParams{ID: "b1", OutputDir: "out/b1", Now: t0}))
	require.True(t, b.claimConsolidation(t, "b1", "c1", t0))
	b.batch(t, "b2", t0, item("x1", "entities", store.PriorityNormal))
	b.launch(t, "b2")
	require.True(t, b.claimConsolidation(t, "b2", "c1", t0))
	got, err := b.st.GetBatch(b.ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, "out/b1", got.OutputDir, "a claim changes nothing else on the batch")
	require.False(t, got.ConsolidatedAt.IsZero())
}
