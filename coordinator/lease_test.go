package coordinator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sportsintel/enrich/coordinator/config"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// longTTL makes sure only the rule under test, not the lease TTL, can take a lease back.
func longTTL(c *config.Config) {
	c.Lease.TTL = config.Duration(time.Hour)
	c.Lease.HeartbeatInterval = config.Duration(time.Minute)
}

func (b *testBundle) item(t *testing.T, batch, entity string) *enrichv1.Item {
	t.Helper()
	res, err := b.ctl.ListItems(b.ctx, &enrichv1.ListItemsRequest{BatchId: batch})
	require.NoError(t, err)
	for _, it := range res.GetItems() {
		if it.GetEntity().GetId() == entity {
			return it
		}
	}
	t.Fatalf("no item %s in batch %s", entity, batch)
	return nil
}

func (a *rawAgent) heartbeat(leases ...*enrichv1.Lease) {
	hb := &enrichv1.Heartbeat{}
	for _, l := range leases {
		hb.Leases = append(hb.Leases, &enrichv1.LeaseProgress{Lease: l.GetLease(), Stage: "running"})
	}
	a.send(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Heartbeat{Heartbeat: hb}})
}

// cancelFor waits for a Cancel naming the lease.
func (a *rawAgent) cancelFor(l *enrichv1.Lease) *enrichv1.Cancel {
	a.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-a.msgs:
			require.True(a.t, ok, "stream closed before the cancel")
			if c := m.GetCancel(); c != nil && c.GetLease().GetItemId() == l.GetLease().GetItemId() {
				return c
			}
		case <-timeout:
			a.t.Fatalf("no cancel for item %d", l.GetLease().GetItemId())
		}
	}
}

// An agent that keeps heartbeating but no longer lists a lease (its runner died) loses that lease
// after two heartbeats, long before the TTL, and the item is retried.
func TestLeaseOmittedFromHeartbeatsIsReleased(t *testing.T) {
	b := setup(t, longTTL)
	id := b.launch(t, "Club", 2)
	a := b.agent(t, "a1", 2, "entities")
	a.credit(2)
	got := a.leases(300 * time.Millisecond)
	require.Len(t, got, 2)
	kept, dropped := got[0], got[1]

	a.heartbeat(kept)
	require.Equal(t, enrichv1.ItemState_ITEM_STATE_LEASED, b.item(t, id, dropped.GetEntity().GetId()).GetState(),
		"one missed heartbeat may be a lease crossing a heartbeat on the wire")
	a.heartbeat(kept)
	c := a.cancelFor(dropped)
	require.Equal(t, dropped.GetLease().GetToken(), c.GetLease().GetToken())

	it := b.item(t, id, dropped.GetEntity().GetId())
	require.Contains(t, []enrichv1.ItemState{enrichv1.ItemState_ITEM_STATE_PENDING, enrichv1.ItemState_ITEM_STATE_LEASED}, it.GetState())
	require.Contains(t, it.GetLastError(), "no runner alive")
	require.Equal(t, enrichv1.ItemState_ITEM_STATE_LEASED, b.item(t, id, kept.GetEntity().GetId()).GetState())

	// The released item is granted again, with a higher token, to whoever asks.
	a.credit(1)
	again := a.leases(300 * time.Millisecond)
	require.Len(t, again, 1)
	require.Equal(t, dropped.GetEntity().GetId(), again[0].GetEntity().GetId())
	require.Greater(t, again[0].GetLease().GetToken(), dropped.GetLease().GetToken())
	require.Equal(t, int32(2), again[0].GetAttempt())
}

// An agent restarted without its runs says so in Hello: the leases the store still binds to it
// are released at once instead of waiting out the TTL; the ones it lists are kept.
func TestReconnectWithoutRunsReleasesLeases(t *testing.T) {
	b := setup(t, longTTL)
	id := b.launch(t, "Club", 2)
	ctx, cancel := context.WithCancel(b.ctx)
	first := b.agentCtx(t, ctx, "a1", 2, nil, "entities")
	first.credit(2)
	got := first.leases(300 * time.Millisecond)
	require.Len(t, got, 2)
	cancel()

	second := b.agentCtx(t, b.ctx, "a1", 2, []*enrichv1.LeaseRef{got[0].GetLease()}, "entities")
	require.Eventually(t, func() bool {
		return b.item(t, id, got[1].GetEntity().GetId()).GetState() != enrichv1.ItemState_ITEM_STATE_LEASED ||
			b.item(t, id, got[1].GetEntity().GetId()).GetAttempt() > 1
	}, 10*time.Second, 20*time.Millisecond)
	lost := b.item(t, id, got[1].GetEntity().GetId())
	require.Contains(t, lost.GetLastError(), "reconnected without this run")
	held := b.item(t, id, got[0].GetEntity().GetId())
	require.Equal(t, enrichv1.ItemState_ITEM_STATE_LEASED, held.GetState())
	require.Equal(t, int32(1), held.GetAttempt(), "the listed lease is kept, not retried")
	second.send(resultFor(t, got[0]))
	require.Equal(t, enrichv1.AckOutcome_ACK_OUTCOME_ACCEPTED, second.ack().GetOutcome())
}

// failure_handling: stop_batch cancels the batch when one item fails for good: pending items are
// cancelled and running leases stopped. The default, continue_with_remaining, is tested by
// every other failure test.
func TestStopBatchOnFinalFailure(t *testing.T) {
	b := setup(t, func(c *config.Config) { c.RetryStrategy.FailureHandling = config.FailureStopBatch })
	id := b.launch(t, "Club", 5)
	a := b.agent(t, "a1", 2, "entities")
	a.credit(2)
	got := a.leases(300 * time.Millisecond)
	require.Len(t, got, 2)
	a.send(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Failure{Failure: &enrichv1.Failure{
		Lease: got[0].GetLease(), Retryable: false, Message: "exit status 65"}}})
	c := a.cancelFor(got[1])
	require.Equal(t, "batch cancelled", c.GetReason())

	res, err := b.ctl.GetBatch(b.ctx, &enrichv1.GetBatchRequest{BatchId: id})
	require.NoError(t, err)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_CANCELLED, res.GetBatch().GetState())
	p := res.GetBatch().GetInstances()[0]
	require.Equal(t, int32(1), p.GetFailed())
	require.Equal(t, int32(4), p.GetCancelled())
	it := b.item(t, id, "e-004")
	require.Contains(t, it.GetLastError(), "stop_batch")
	require.Contains(t, it.GetLastError(), "exit status 65")
}

// A batch stops leasing at its budget, lets the runs in flight finish, ends budget_exhausted with
// the rest pending, and resumes when launched with a larger budget. Leases carry what is left.
func TestBudgetStopsAndResumesBatch(t *testing.T) {
	b := setup(t, nil)
	req := &enrichv1.PrepareBatchRequest{}
	for i := range 3 {
		req.Entities = append(req.Entities, &enrichv1.Entity{Id: fmt.Sprintf("e-%03d", i), Type: "Club", Name: "Club", SourceLine: int32(i + 1)})
	}
	prep, err := b.ctl.PrepareBatch(b.ctx, req)
	require.NoError(t, err)
	id := prep.GetBatch().GetId()
	_, err = b.ctl.LaunchBatch(b.ctx, &enrichv1.LaunchBatchRequest{BatchId: id, BudgetUsd: -1})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = b.ctl.LaunchBatch(b.ctx, &enrichv1.LaunchBatchRequest{BatchId: id, BudgetUsd: 1})
	require.NoError(t, err)

	a := b.agent(t, "a1", 2, "entities")
	a.credit(2)
	got := a.leases(300 * time.Millisecond)
	require.Len(t, got, 2)
	require.InDelta(t, 1.0, got[0].GetMaxCostUsd(), 1e-9)
	a.send(withCost(resultFor(t, got[0]), time.Second, 0.7))
	a.ack()
	a.send(withCost(resultFor(t, got[1]), time.Second, 0.7))
	a.ack()
	a.credit(1)
	require.Empty(t, a.leases(300*time.Millisecond), "no lease once the budget is spent")

	res, err := b.ctl.GetBatch(b.ctx, &enrichv1.GetBatchRequest{BatchId: id})
	require.NoError(t, err)
	require.Equal(t, enrichv1.BatchState_BATCH_STATE_BUDGET_EXHAUSTED, res.GetBatch().GetState())
	require.InDelta(t, 1.0, res.GetBatch().GetBudgetUsd(), 1e-9)
	require.Equal(t, int32(1), res.GetBatch().GetInstances()[0].GetPending())

	_, err = b.ctl.LaunchBatch(b.ctx, &enrichv1.LaunchBatchRequest{BatchId: id, BudgetUsd: 1.2})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "a budget already spent cannot resume: %v", err)
	_, err = b.ctl.LaunchBatch(b.ctx, &enrichv1.LaunchBatchRequest{BatchId: id, BudgetUsd: 3})
	require.NoError(t, err)
	last := a.leases(2 * time.Second)
	require.Len(t, last, 1)
	require.InDelta(t, 1.6, last[0].GetMaxCostUsd(), 1e-9)
	a.send(withCost(resultFor(t, last[0]), time.Second, 0.2))
	require.Equal(t, enrichv1.AckOutcome_ACK_OUTCOME_ACCEPTED, a.ack().GetOutcome())
	require.Eventually(t, func() bool {
		res, err := b.ctl.GetBatch(b.ctx, &enrichv1.GetBatchRequest{BatchId: id})
		return err == nil && res.GetBatch().GetState() == enrichv1.BatchState_BATCH_STATE_COMPLETED
	}, 5*time.Second, 20*time.Millisecond)
}

// Without --budget-usd, a first launch takes the sum of its instance types' budget_usd.
func TestDefaultBudgetFromInstanceTypes(t *testing.T) {
	b := setup(t, func(c *config.Config) {
		ic := c.ResourceAllocation["entities"]
		ic.BudgetUSD = 2.5
		c.ResourceAllocation["entities"] = ic
	})
	id := b.launch(t, "Club", 2)
	res, err := b.ctl.GetBatch(b.ctx, &enrichv1.GetBatchRequest{BatchId: id})
	require.NoError(t, err)
	require.InDelta(t, 2.5, res.GetBatch().GetBudgetUsd(), 1e-9)

	// A type without a budget leaves a batch that has items of it without one.
	id = b.launch(t, "League", 1)
	res, err = b.ctl.GetBatch(b.ctx, &enrichv1.GetBatchRequest{BatchId: id})
	require.NoError(t, err)
	require.Zero(t, res.GetBatch().GetBudgetUsd())
}
