// Package storetest is the conformance suite every store.Store backend must pass. A backend's
// test calls Run with a function that opens a fresh, empty store.
package storetest

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/coordinator/store"
	"github.com/sportsintel/enrich/coordinator/store/invariant"
)

// Opener returns a new, empty store; the suite closes it.
type Opener func(t *testing.T) store.Store

var t0 = time.Date(2026, 1, 8, 12, 0, 0, 0, time.UTC)

const ttl = 30 * time.Second

func noDelay(int) time.Duration { return 0 }

type bundle struct {
	ctx context.Context
	st  store.Store
}

func setup(t *testing.T, open Opener) *bundle {
	st := open(t)
	t.Cleanup(func() { _ = st.Close() })
	return &bundle{ctx: context.Background(), st: st}
}

func item(id, typ string, prio store.Priority) store.NewItem {
	return store.NewItem{EntityID: id, EntityType: "Club", Name: "Name of " + id, InstanceType: typ, Priority: prio,
		Entity: []byte(`{"id":"` + id + `"}`), MaxAttempts: 4}
}

func (b *bundle) batch(t *testing.T, id string, created time.Time, items ...store.NewItem) {
	t.Helper()
	require.NoError(t, b.st.CreateBatch(b.ctx, store.CreateBatchParams{ID: id, Source: "test", CreatedAt: created, OutputDir: "out/" + id, Items: items}))
}

func (b *bundle) launch(t *testing.T, id string, types ...string) {
	t.Helper()
	require.NoError(t, b.st.LaunchBatch(b.ctx, store.LaunchBatchParams{ID: id, InstanceTypes: types, Now: t0}))
}

func (b *bundle) claim(t *testing.T, agent string, limit int, types ...string) []*store.Item {
	t.Helper()
	return b.claimAt(t, t0, agent, limit, types...)
}

func (b *bundle) claimAt(t *testing.T, now time.Time, agent string, limit int, types ...string) []*store.Item {
	t.Helper()
	items, err := b.st.Claim(b.ctx, store.ClaimParams{AgentID: agent, SessionID: agent + "-s", InstanceTypes: types,
		Limit: limit, LeaseTTL: ttl, Timeouts: map[string]time.Duration{"entities": time.Minute}, Now: now})
	require.NoError(t, err)
	return items
}

func (b *bundle) complete(t *testing.T, it *store.Item, token int64) *store.ReportResult {
	t.Helper()
	res, err := b.st.Report(b.ctx, store.ReportParams{Now: t0, RetryDelay: noDelay, Completions: []store.Completion{{
		Lease: store.LeaseRef{ItemID: it.ID, Token: token}, AgentID: "a1", Dossier: []byte(`{"ok":true}`),
		Metrics: store.Metrics{Duration: 1500 * time.Millisecond, CostUSD: 0.25, Runner: "test"}}}})
	require.NoError(t, err)
	return res
}

func (b *bundle) fail(t *testing.T, it *store.Item, token int64, retryable bool) *store.ReportResult {
	t.Helper()
	res, err := b.st.Report(b.ctx, store.ReportParams{Now: t0, RetryDelay: noDelay, Failures: []store.Failure{{
		Lease: store.LeaseRef{ItemID: it.ID, Token: token}, AgentID: "a1", Retryable: retryable, Message: "boom", StderrTail: "trace"}}})
	require.NoError(t, err)
	return res
}

func (b *bundle) state(t *testing.T, batch, entity string) *store.Item {
	t.Helper()
	it, err := b.st.GetItem(b.ctx, batch, entity)
	require.NoError(t, err)
	return it
}

func (b *bundle) batchState(t *testing.T, id string) store.BatchState {
	t.Helper()
	bt, err := b.st.GetBatch(b.ctx, id)
	require.NoError(t, err)
	return bt.State
}

// holds asserts the batch's history keeps every invariant and returns the checker's report.
func (b *bundle) holds(t *testing.T, batch string) *invariant.Report {
	t.Helper()
	rep, err := invariant.Check(b.ctx, b.st, batch)
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	return rep
}

func (b *bundle) kinds(t *testing.T, batch string, itemID int64) []store.EventKind {
	t.Helper()
	events, err := b.st.Events(b.ctx, batch)
	require.NoError(t, err)
	var out []store.EventKind
	for _, e := range events {
		if e.ItemID == itemID {
			out = append(out, e.Kind)
		}
	}
	return out
}

func ids(items []*store.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.EntityID
	}
	return out
}

// Run runs the whole suite.
func Run(t *testing.T, open Opener) {
	tests := map[string]func(t *testing.T, b *bundle){
		"BatchLifecycle":               testBatchLifecycle,
		"NotFound":                     testNotFound,
		"ClaimOrdersByPriorityThenAge": testClaimOrder,
		"ClaimOnlyRunningBatches":      testClaimOnlyRunning,
		"ClaimRespectsMaxConcurrent":   testClaimMaxConcurrent,
		"ClaimNeverTwice":              testClaimNeverTwice,
		"LaunchSelectedInstanceTypes":  testLaunchSelected,
		"CompleteAndDuplicate":         testCompleteAndDuplicate,
		"LateResultSupersedesLease":    testLateResult,
		"FailureRetriesThenFails":      testFailureRetries,
		"PermanentFailure":             testPermanentFailure,
		"StaleFailureIgnored":          testStaleFailure,
		"RetryDelayHonoured":           testRetryDelay,
		"ExtendAndReap":                testExtendAndReap,
		"ReapAtDeadline":               testReapAtDeadline,
		"CancelBatch":                  testCancelBatch,
		"RetryFailed":                  testRetryFailed,
		"ResultsAndAttempts":           testResultsAndAttempts,
		"GroupReport":                  testGroupReport,
		"EventHistory":                 testEventHistory,
		"ReleaseLeases":                testReleaseLeases,
		"LeasesHeldBy":                 testLeasesHeldBy,
		"BudgetStopsLeasing":           testBudget,
		"PurgeEntity":                  testPurgeEntity,
	}
	maps.Copy(tests, scheduleTests)
	maps.Copy(tests, attemptTests)
	maps.Copy(tests, consolidationTests)
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, setup(t, open))
		})
	}
}

func testBatchLifecycle(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal), item("p1", "persons", store.PriorityNormal))
	b.batch(t, "b2", t0.Add(time.Second), item("e1", "entities", store.PriorityNormal))

	bt, err := b.st.GetBatch(b.ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, store.BatchPrepared, bt.State)
	require.Equal(t, "test", bt.Source)
	require.Equal(t, "out/b1", bt.OutputDir)
	require.True(t, bt.CreatedAt.Equal(t0))

	list, err := b.st.ListBatches(b.ctx, 10)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "b2", list[0].ID, "newest first")

	counts, err := b.st.BatchCounts(b.ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, store.StateCounts{Total: 1, Pending: 1}, counts["entities"])
	require.Equal(t, store.StateCounts{Total: 1, Pending: 1}, counts["persons"])

	// Nothing is claimable before launch.
	require.Empty(t, b.claim(t, "a1", 10, "entities", "persons"))
	b.launch(t, "b1")
	require.Equal(t, store.BatchRunning, b.batchState(t, "b1"))
	err = b.st.LaunchBatch(b.ctx, store.LaunchBatchParams{ID: "b1", Now: t0})
	require.ErrorIs(t, err, store.ErrInvalidState, "launching twice")

	got := b.claim(t, "a1", 10, "entities", "persons")
	require.ElementsMatch(t, []string{"e1", "p1"}, ids(got))
	for _, it := range got {
		require.Equal(t, store.ItemLeased, it.State)
		require.Equal(t, int64(1), it.Token)
		require.Equal(t, 1, it.Attempt)
		require.Equal(t, "a1", it.AgentID)
		require.Equal(t, "a1-s", it.SessionID)
		require.JSONEq(t, `{"id":"`+it.EntityID+`"}`, string(it.Entity))
		byID, err := b.st.ItemByID(b.ctx, it.ID)
		require.NoError(t, err)
		require.Equal(t, it, byID)
	}
	res := b.complete(t, got[0], 1)
	require.Empty(t, res.FinishedBatches)
	res = b.complete(t, got[1], 1)
	require.Equal(t, []string{"b1"}, res.FinishedBatches)
	bt, err = b.st.GetBatch(b.ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, store.BatchCompleted, bt.State)
	require.True(t, bt.FinishedAt.Equal(t0))

	require.NoError(t, b.st.MarkConsolidated(b.ctx, store.MarkConsolidatedParams{ID: "b1", OutputDir: "dir", Now: t0}))
	bt, err = b.st.GetBatch(b.ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, "dir", bt.OutputDir)
	require.True(t, bt.ConsolidatedAt.Equal(t0))
	require.NoError(t, b.st.MarkConsolidated(b.ctx, store.MarkConsolidatedParams{ID: "b1", OutputDir: "dir", Error: "disk full", Now: t0}))
	bt, err = b.st.GetBatch(b.ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, "disk full", bt.ConsolidationError)
	require.True(t, bt.ConsolidatedAt.IsZero())
}

func testNotFound(t *testing.T, b *bundle) {
	_, err := b.st.GetBatch(b.ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = b.st.GetItem(b.ctx, "nope", "x")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = b.st.ItemByID(b.ctx, 424242)
	require.ErrorIs(t, err, store.ErrNotFound)
	err = b.st.LaunchBatch(b.ctx, store.LaunchBatchParams{ID: "nope", Now: t0})
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = b.st.CancelBatch(b.ctx, store.CancelBatchParams{ID: "nope", Now: t0})
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = b.st.Result(b.ctx, 424242)
	require.ErrorIs(t, err, store.ErrNotFound)
	err = b.st.MarkConsolidated(b.ctx, store.MarkConsolidatedParams{ID: "nope", Now: t0})
	require.ErrorIs(t, err, store.ErrNotFound)
	// A duplicate batch id is refused and leaves the first intact.
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal))
	err = b.st.CreateBatch(b.ctx, store.CreateBatchParams{ID: "b1", CreatedAt: t0, Items: []store.NewItem{item("zz", "entities", store.PriorityNormal)}})
	require.Error(t, err)
	_, err = b.st.GetItem(b.ctx, "b1", "zz")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testClaimOrder(t *testing.T, b *bundle) {
	b.batch(t, "old", t0, item("old-low", "entities", store.PriorityLow), item("old-normal", "entities", store.PriorityNormal))
	b.batch(t, "new", t0.Add(time.Minute), item("new-high", "entities", store.PriorityHigh),
		item("new-normal", "entities", store.PriorityNormal), item("new-high-p", "persons", store.PriorityHigh))
	b.launch(t, "old")
	b.launch(t, "new")
	got := b.claim(t, "a1", 3, "entities", "persons")
	require.Equal(t, []string{"new-high", "new-high-p", "old-normal"}, ids(got))
	got = b.claim(t, "a1", 10, "entities", "persons")
	require.Equal(t, []string{"new-normal", "old-low"}, ids(got))
}

func testClaimOnlyRunning(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal))
	b.batch(t, "b2", t0, item("e2", "entities", store.PriorityNormal))
	b.launch(t, "b2")
	require.Equal(t, []string{"e2"}, ids(b.claim(t, "a1", 10, "entities")))
	require.Empty(t, b.claim(t, "a1", 10, "persons"), "wrong type")
	require.Empty(t, b.claim(t, "a1", 0, "entities"), "no credit")
}

func testClaimMaxConcurrent(t *testing.T, b *bundle) {
	var items []store.NewItem
	for i := range 10 {
		items = append(items, item(fmt.Sprintf("e%d", i), "entities", store.PriorityNormal))
	}
	items = append(items, item("p1", "persons", store.PriorityNormal))
	b.batch(t, "b1", t0, items...)
	b.launch(t, "b1")
	claim := func(agent string) []*store.Item {
		got, err := b.st.Claim(b.ctx, store.ClaimParams{AgentID: agent, SessionID: agent, InstanceTypes: []string{"entities", "persons"},
			Limit: 10, MaxConcurrent: map[string]int{"entities": 3}, LeaseTTL: ttl, Now: t0})
		require.NoError(t, err)
		return got
	}
	first := claim("a1")
	require.Len(t, first, 4, "3 entities (cap) + 1 person")
	require.Empty(t, claim("a2"), "the cap is fleet-wide")
	b.complete(t, first[0], first[0].Token)
	again := claim("a2")
	require.Len(t, again, 1, "a finished lease frees one place under the cap")
}

func testClaimNeverTwice(t *testing.T, b *bundle) {
	var items []store.NewItem
	for i := range 50 {
		items = append(items, item(fmt.Sprintf("e%02d", i), "entities", store.PriorityNormal))
	}
	b.batch(t, "b1", t0, items...)
	b.launch(t, "b1")
	seen := map[int64]string{}
	results := make(chan []*store.Item, 5)
	for a := range 5 {
		go func() {
			got, err := b.st.Claim(b.ctx, store.ClaimParams{AgentID: fmt.Sprint("a", a), SessionID: "s", InstanceTypes: []string{"entities"},
				Limit: 12, LeaseTTL: ttl, Now: t0})
			if err != nil {
				t.Error(err)
			}
			results <- got
		}()
	}
	total := 0
	for range 5 {
		for _, it := range <-results {
			_, dup := seen[it.ID]
			require.False(t, dup, "item %s claimed twice", it.EntityID)
			seen[it.ID] = it.AgentID
			total++
		}
	}
	require.Equal(t, 50, total)
}

func testLaunchSelected(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal), item("p1", "persons", store.PriorityNormal),
		item("l1", "leagues", store.PriorityNormal))
	b.launch(t, "b1", "entities", "persons")
	counts, err := b.st.BatchCounts(b.ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, 1, counts["leagues"].Skipped)
	require.Empty(t, b.claim(t, "a1", 10, "leagues"))
	for _, it := range b.claim(t, "a1", 10, "entities", "persons") {
		b.complete(t, it, it.Token)
	}
	require.Equal(t, store.BatchCompleted, b.batchState(t, "b1"), "skipped items do not hold the batch open")
	// Launching the skipped type later runs it.
	b.launch(t, "b1", "leagues")
	require.Equal(t, store.BatchRunning, b.batchState(t, "b1"))
	require.Equal(t, []string{"l1"}, ids(b.claim(t, "a1", 10, "leagues")))
	err = b.st.LaunchBatch(b.ctx, store.LaunchBatchParams{ID: "b1", InstanceTypes: []string{"nothing"}, Now: t0})
	require.ErrorIs(t, err, store.ErrInvalidState, "no item of that type")
}

func testCompleteAndDuplicate(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal), item("e2", "entities", store.PriorityNormal))
	b.launch(t, "b1")
	got := b.claim(t, "a1", 1, "entities")
	res := b.complete(t, got[0], 1)
	require.Equal(t, store.OutcomeAccepted, res.Completions[0].Outcome)
	require.Equal(t, "b1", res.Completions[0].BatchID)
	require.Nil(t, res.Completions[0].Superseded)
	// The same lease's result again (the agent never saw the Ack): acknowledged, nothing recorded.
	res = b.complete(t, got[0], 1)
	require.Equal(t, store.OutcomeAccepted, res.Completions[0].Outcome)
	require.True(t, res.Completions[0].Redelivered)
	require.Nil(t, res.Completions[0].Superseded)
	// A token that was never granted cannot deliver anything.
	res = b.complete(t, got[0], 7)
	require.Equal(t, store.OutcomeStale, res.Completions[0].Outcome)
	rows, err := b.st.Results(b.ctx, "b1")
	require.NoError(t, err)
	require.Len(t, rows, 1, "never two results for one item")
	require.Equal(t, int64(1), rows[0].Token)
	require.Equal(t, store.ItemSucceeded, b.state(t, "b1", "e1").State)
	require.Equal(t, []store.EventKind{store.EventGranted, store.EventSucceeded}, b.kinds(t, "b1", got[0].ID))
	b.holds(t, "b1")
}

func testLateResult(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal))
	b.launch(t, "b1")
	first := b.claim(t, "a1", 1, "entities")[0]
	// The first lease expires; the item is granted again with a higher token.
	later := t0.Add(ttl + time.Second)
	_, err := b.st.ReapExpired(b.ctx, store.ReapParams{Now: later, RetryDelay: noDelay})
	require.NoError(t, err)
	second := b.claimAt(t, later, "a2", 1, "entities")[0]
	require.Greater(t, second.Token, first.Token)
	// The late result of the first lease is real work: it is kept and the second lease superseded.
	res := b.complete(t, first, first.Token)
	require.Equal(t, store.OutcomeAccepted, res.Completions[0].Outcome)
	require.NotNil(t, res.Completions[0].Superseded)
	require.Equal(t, second.Token, res.Completions[0].Superseded.Token)
	require.Equal(t, "a2", res.Completions[0].Superseded.AgentID)
	// The second lease's result then is a duplicate.
	res = b.complete(t, second, second.Token)
	require.Equal(t, store.OutcomeDuplicate, res.Completions[0].Outcome)
	rep := b.holds(t, "b1")
	require.Equal(t, 1, rep.LateWins)
	require.Equal(t, 1, rep.Superseded)
	require.Equal(t, 1, rep.Duplicates)
	require.Equal(t, []store.EventKind{store.EventGranted, store.EventRetrying, store.EventGranted, store.EventSuperseded,
		store.EventSucceeded, store.EventDuplicate}, b.kinds(t, "b1", first.ID))
}

func testFailureRetries(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal))
	b.launch(t, "b1")
	for attempt := 1; attempt <= 4; attempt++ {
		got := b.claim(t, "a1", 1, "entities")
		require.Len(t, got, 1, "attempt %d", attempt)
		require.Equal(t, attempt, got[0].Attempt)
		res := b.fail(t, got[0], got[0].Token, true)
		require.Equal(t, attempt == 4, res.Failures[0].Final, "attempt %d", attempt)
	}
	it := b.state(t, "b1", "e1")
	require.Equal(t, store.ItemFailed, it.State)
	require.Equal(t, "boom", it.LastError)
	require.Equal(t, "trace", it.StderrTail)
	require.Equal(t, store.BatchCompletedWithFailures, b.batchState(t, "b1"))
	require.Equal(t, 3, b.holds(t, "b1").Retries)
}

func testPermanentFailure(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal), item("e2", "entities", store.PriorityNormal))
	b.launch(t, "b1")
	got := b.claim(t, "a1", 2, "entities")
	res := b.fail(t, got[0], got[0].Token, false)
	require.True(t, res.Failures[0].Final)
	require.Equal(t, store.ItemFailed, b.state(t, "b1", got[0].EntityID).State)
	require.Equal(t, store.BatchRunning, b.batchState(t, "b1"), "the other item keeps the batch going")
	b.complete(t, got[1], got[1].Token)
	require.Equal(t, store.BatchCompletedWithFailures, b.batchState(t, "b1"))
	b.holds(t, "b1")
	require.Equal(t, []store.EventKind{store.EventGranted, store.EventFailedPermanent}, b.kinds(t, "b1", got[0].ID))
}

func testStaleFailure(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal))
	b.launch(t, "b1")
	got := b.claim(t, "a1", 1, "entities")[0]
	res := b.fail(t, got, got.Token+5, true)
	require.Equal(t, store.OutcomeStale, res.Failures[0].Outcome)
	require.Equal(t, store.ItemLeased, b.state(t, "b1", "e1").State)
}

func testRetryDelay(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal))
	b.launch(t, "b1")
	got := b.claim(t, "a1", 1, "entities")[0]
	_, err := b.st.Report(b.ctx, store.ReportParams{Now: t0, RetryDelay: func(n int) time.Duration { return time.Duration(n) * time.Minute },
		Failures: []store.Failure{{Lease: store.LeaseRef{ItemID: got.ID, Token: got.Token}, Retryable: true, Message: "rate limited"}}})
	require.NoError(t, err)
	it := b.state(t, "b1", "e1")
	require.Equal(t, store.ItemPending, it.State)
	require.True(t, it.NextAttemptAt.Equal(t0.Add(time.Minute)), "next attempt at %v", it.NextAttemptAt)
	require.Empty(t, b.claim(t, "a1", 1, "entities"), "not before the backoff")
	later, err := b.st.Claim(b.ctx, store.ClaimParams{AgentID: "a1", InstanceTypes: []string{"entities"}, Limit: 1, LeaseTTL: ttl, Now: t0.Add(time.Minute)})
	require.NoError(t, err)
	require.Len(t, later, 1)
	counts, err := b.st.BatchCounts(b.ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, 1, counts["entities"].Leased)
}

func testExtendAndReap(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal), item("e2", "entities", store.PriorityNormal))
	b.launch(t, "b1")
	got := b.claim(t, "a1", 2, "entities")
	// e1 is heartbeated (from a new session after a reconnect), e2 is not.
	lost, err := b.st.ExtendLeases(b.ctx, store.ExtendLeasesParams{AgentID: "a1", SessionID: "s2", LeaseTTL: ttl, Now: t0.Add(20 * time.Second),
		Leases: []store.LeaseRef{{ItemID: got[0].ID, Token: got[0].Token}, {ItemID: got[1].ID, Token: got[1].Token + 1}}})
	require.NoError(t, err)
	require.Equal(t, []store.LeaseRef{{ItemID: got[1].ID, Token: got[1].Token + 1}}, lost, "a wrong token is not held")
	require.Equal(t, "s2", b.state(t, "b1", got[0].EntityID).SessionID)

	res, err := b.st.ReapExpired(b.ctx, store.ReapParams{Now: t0.Add(ttl + time.Second), RetryDelay: noDelay})
	require.NoError(t, err)
	require.Len(t, res.Expired, 1)
	require.Equal(t, got[1].ID, res.Expired[0].ItemID)
	e2 := b.state(t, "b1", got[1].EntityID)
	require.Equal(t, store.ItemPending, e2.State)
	require.Contains(t, e2.LastError, "lease expired")
	require.Equal(t, store.ItemLeased, b.state(t, "b1", got[0].EntityID).State)
	b.holds(t, "b1")
}

func testReapAtDeadline(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal))
	b.launch(t, "b1")
	got := b.claim(t, "a1", 1, "entities")[0]
	require.True(t, got.Deadline.Equal(t0.Add(time.Minute)), "deadline from the type's timeout")
	// Heartbeats cannot extend a lease past its deadline.
	for now := t0; now.Before(t0.Add(2 * time.Minute)); now = now.Add(10 * time.Second) {
		_, err := b.st.ExtendLeases(b.ctx, store.ExtendLeasesParams{AgentID: "a1", SessionID: "s", LeaseTTL: ttl, Now: now,
			Leases: []store.LeaseRef{{ItemID: got.ID, Token: got.Token}}})
		require.NoError(t, err)
	}
	it := b.state(t, "b1", "e1")
	require.True(t, it.ExpiresAt.Equal(it.Deadline), "expiry %v capped at deadline %v", it.ExpiresAt, it.Deadline)
	res, err := b.st.ReapExpired(b.ctx, store.ReapParams{Now: t0.Add(time.Minute), RetryDelay: noDelay})
	require.NoError(t, err)
	require.Len(t, res.Expired, 1)
	require.Contains(t, b.state(t, "b1", "e1").LastError, "timed out")
}

func testCancelBatch(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal), item("e2", "entities", store.PriorityNormal))
	b.launch(t, "b1")
	got := b.claim(t, "a1", 1, "entities")[0]
	held, err := b.st.CancelBatch(b.ctx, store.CancelBatchParams{ID: "b1", Reason: "operator", Now: t0})
	require.NoError(t, err)
	require.Len(t, held, 1)
	require.Equal(t, got.ID, held[0].ItemID)
	require.Equal(t, "a1-s", held[0].SessionID)
	require.Equal(t, store.BatchCancelled, b.batchState(t, "b1"))
	counts, err := b.st.BatchCounts(b.ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, 2, counts["entities"].Cancelled)
	require.Empty(t, b.claim(t, "a1", 10, "entities"))
	res := b.complete(t, got, got.Token)
	require.Equal(t, store.OutcomeStale, res.Completions[0].Outcome, "a result after cancel changes nothing")
	_, err = b.st.CancelBatch(b.ctx, store.CancelBatchParams{ID: "b1", Now: t0})
	require.ErrorIs(t, err, store.ErrInvalidState)
	err = b.st.LaunchBatch(b.ctx, store.LaunchBatchParams{ID: "b1", Now: t0})
	require.ErrorIs(t, err, store.ErrInvalidState)
	rep := b.holds(t, "b1")
	require.Equal(t, 2, rep.Cancelled)
	require.Equal(t, 1, rep.Stale)
}

func testRetryFailed(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal), item("e2", "entities", store.PriorityNormal))
	b.launch(t, "b1")
	got := b.claim(t, "a1", 2, "entities")
	b.fail(t, got[0], got[0].Token, false)
	b.complete(t, got[1], got[1].Token)
	require.Equal(t, store.BatchCompletedWithFailures, b.batchState(t, "b1"))

	n, err := b.st.RetryFailed(b.ctx, store.RetryFailedParams{ID: "b1", Attempts: 2, Now: t0})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, store.BatchRunning, b.batchState(t, "b1"))
	for attempt := 0; attempt < 2; attempt++ {
		again := b.claim(t, "a1", 10, "entities")
		require.Equal(t, []string{got[0].EntityID}, ids(again), "only the failed item, fresh budget (try %d)", attempt)
		b.fail(t, again[0], again[0].Token, true)
	}
	require.Equal(t, store.ItemFailed, b.state(t, "b1", got[0].EntityID).State)
	require.Equal(t, store.ItemSucceeded, b.state(t, "b1", got[1].EntityID).State)
	n, err = b.st.RetryFailed(b.ctx, store.RetryFailedParams{ID: "b1", Attempts: 1, Now: t0})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	rep := b.holds(t, "b1")
	require.Equal(t, 2, rep.Requeued, "two operator retries")
}

func testResultsAndAttempts(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal))
	b.launch(t, "b1")
	got := b.claim(t, "a1", 1, "entities")[0]
	b.fail(t, got, got.Token, true)
	got = b.claim(t, "a1", 1, "entities")[0]
	b.complete(t, got, got.Token)

	rows, err := b.st.Results(b.ctx, "b1")
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.Equal(t, "e1", rows[0].Item.EntityID)
	require.JSONEq(t, `{"ok":true}`, string(rows[0].Dossier))
	require.Equal(t, 1500*time.Millisecond, rows[0].Metrics.Duration)
	require.InDelta(t, 0.25, rows[0].Metrics.CostUSD, 1e-9)
	require.Equal(t, "test", rows[0].Metrics.Runner)
	one, err := b.st.Result(b.ctx, got.ID)
	require.NoError(t, err)
	require.Equal(t, rows[0].Dossier, one.Dossier)

	attempts, err := b.st.Attempts(b.ctx, "b1")
	require.NoError(t, err)
	require.Len(t, attempts, 2)
	require.Equal(t, "retrying", attempts[0].Outcome)
	require.Equal(t, "boom", attempts[0].Message)
	require.Equal(t, "succeeded", attempts[1].Outcome)
	require.Equal(t, "entities", attempts[1].InstanceType)
}

func testGroupReport(t *testing.T, b *bundle) {
	var items []store.NewItem
	for i := range 20 {
		items = append(items, item(fmt.Sprintf("e%02d", i), "entities", store.PriorityNormal))
	}
	b.batch(t, "b1", t0, items...)
	b.launch(t, "b1")
	got := b.claim(t, "a1", 20, "entities")
	p := store.ReportParams{Now: t0, RetryDelay: noDelay}
	for i, it := range got {
		ref := store.LeaseRef{ItemID: it.ID, Token: it.Token}
		if i%5 == 0 {
			p.Failures = append(p.Failures, store.Failure{Lease: ref, Retryable: false, Message: "bad"})
			continue
		}
		p.Completions = append(p.Completions, store.Completion{Lease: ref, AgentID: "a1", Dossier: []byte(`{}`)})
	}
	res, err := b.st.Report(b.ctx, p)
	require.NoError(t, err)
	require.Len(t, res.Completions, 16)
	require.Len(t, res.Failures, 4)
	require.Equal(t, []string{"b1"}, res.FinishedBatches)
	counts, err := b.st.BatchCounts(b.ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, store.StateCounts{Total: 20, Succeeded: 16, Failed: 4}, counts["entities"])
	b.holds(t, "b1")
}

func testEventHistory(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal))
	b.launch(t, "b1")
	first := b.claim(t, "a1", 1, "entities")[0]
	b.fail(t, first, first.Token, true)
	second := b.claim(t, "a2", 1, "entities")[0]
	b.complete(t, second, second.Token)

	events, err := b.st.Events(b.ctx, "b1")
	require.NoError(t, err)
	require.Len(t, events, 4)
	want := []struct {
		kind    store.EventKind
		token   int64
		attempt int
		agent   string
	}{
		{store.EventGranted, first.Token, 1, "a1"},
		{store.EventRetrying, first.Token, 1, "a1"},
		{store.EventGranted, second.Token, 2, "a2"},
		{store.EventSucceeded, second.Token, 2, "a1"},
	}
	for i, w := range want {
		e := events[i]
		require.Equal(t, w.kind, e.Kind, "event %d", i)
		require.Equal(t, w.token, e.Token, "event %d", i)
		require.Equal(t, w.attempt, e.Attempt, "event %d", i)
		require.Equal(t, w.agent, e.AgentID, "event %d", i)
		require.Equal(t, first.ID, e.ItemID)
		require.Equal(t, "entities", e.InstanceType)
		require.True(t, e.At.Equal(t0), "event %d at %v", i, e.At)
		if i > 0 {
			require.Greater(t, e.ID, events[i-1].ID, "commit order")
		}
	}
	require.Equal(t, 1500*time.Millisecond, events[3].Metrics.Duration)
	rows, err := b.st.Results(b.ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, second.Token, rows[0].Token, "the stored dossier names the lease that produced it")
	rep := b.holds(t, "b1")
	require.Equal(t, 2, rep.Grants)
	require.Equal(t, 2, rep.Runs)
	require.Equal(t, 1, rep.Succeeded)
}

func testReleaseLeases(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal), item("e2", "entities", store.PriorityNormal))
	b.launch(t, "b1")
	got := b.claim(t, "a1", 2, "entities")
	res, err := b.st.ReleaseLeases(b.ctx, store.ReleaseParams{Now: t0, RetryDelay: noDelay, Message: "agent no longer runs it",
		Leases: []store.LeaseRef{{ItemID: got[0].ID, Token: got[0].Token}, {ItemID: got[1].ID, Token: got[1].Token + 1}}})
	require.NoError(t, err)
	require.Len(t, res.Expired, 1, "only the current lease is released")
	require.Equal(t, got[0].ID, res.Expired[0].ItemID)
	require.Equal(t, "a1", res.Expired[0].AgentID)
	e1 := b.state(t, "b1", got[0].EntityID)
	require.Equal(t, store.ItemPending, e1.State)
	require.Equal(t, "agent no longer runs it", e1.LastError)
	require.Equal(t, store.ItemLeased, b.state(t, "b1", got[1].EntityID).State)
	// Released twice: nothing more happens.
	res, err = b.st.ReleaseLeases(b.ctx, store.ReleaseParams{Now: t0, RetryDelay: noDelay, Message: "again",
		Leases: []store.LeaseRef{{ItemID: got[0].ID, Token: got[0].Token}}})
	require.NoError(t, err)
	require.Empty(t, res.Expired)
	again := b.claim(t, "a2", 1, "entities")
	require.Equal(t, []string{got[0].EntityID}, ids(again))
	b.complete(t, again[0], again[0].Token)
	b.complete(t, got[1], got[1].Token)
	require.Equal(t, store.BatchCompleted, b.batchState(t, "b1"))
	require.Equal(t, 1, b.holds(t, "b1").Retries)
}

func testLeasesHeldBy(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal), item("e2", "entities", store.PriorityNormal),
		item("e3", "entities", store.PriorityNormal))
	b.launch(t, "b1")
	mine := b.claim(t, "a1", 2, "entities")
	b.claim(t, "a2", 1, "entities")
	b.complete(t, mine[1], mine[1].Token)
	held, err := b.st.LeasesHeldBy(b.ctx, "a1")
	require.NoError(t, err)
	require.Len(t, held, 1)
	require.Equal(t, store.LeaseHolder{LeaseRef: store.LeaseRef{ItemID: mine[0].ID, Token: mine[0].Token}, BatchID: "b1",
		AgentID: "a1", SessionID: "a1-s"}, held[0])
	none, err := b.st.LeasesHeldBy(b.ctx, "nobody")
	require.NoError(t, err)
	require.Empty(t, none)
}

func testBudget(t *testing.T, b *bundle) {
	b.batch(t, "b1", t0, item("e1", "entities", store.PriorityNormal), item("e2", "entities", store.PriorityNormal),
		item("e3", "entities", store.PriorityNormal))
	require.NoError(t, b.st.LaunchBatch(b.ctx, store.LaunchBatchParams{ID: "b1", BudgetUSD: 1, Now: t0}))
	got := b.claim(t, "a1", 2, "entities")
	require.Len(t, got, 2)
	require.InDelta(t, 1.0, got[0].BudgetLeftUSD, 1e-9, "a lease knows what its batch may still spend")
	report := func(it *store.Item, cost float64) {
		_, err := b.st.Report(b.ctx, store.ReportParams{Now: t0, RetryDelay: noDelay, Completions: []store.Completion{{
			Lease: store.LeaseRef{ItemID: it.ID, Token: it.Token}, AgentID: "a1", Dossier: []byte(`{}`), Metrics: store.Metrics{CostUSD: cost}}}})
		require.NoError(t, err)
	}
	// Over budget with a run still in flight: nothing new is leased, the run may finish.
	report(got[0], 1.2)
	require.Equal(t, store.BatchRunning, b.batchState(t, "b1"))
	require.Empty(t, b.claim(t, "a1", 5, "entities"), "no lease once the budget is spent")
	report(got[1], 0.3)
	bt, err := b.st.GetBatch(b.ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, store.BatchBudgetExhausted, bt.State)
	require.InDelta(t, 1.5, bt.SpentUSD, 1e-9)
	require.InDelta(t, 1.0, bt.BudgetUSD, 1e-9)
	require.False(t, bt.FinishedAt.IsZero())
	require.Equal(t, store.ItemPending, b.state(t, "b1", "e3").State, "what never ran stays pending")
	b.holds(t, "b1")

	_, err = b.st.RetryFailed(b.ctx, store.RetryFailedParams{ID: "b1", Attempts: 1, Now: t0})
	require.ErrorIs(t, err, store.ErrInvalidState, "retry cannot bypass the budget")
	err = b.st.LaunchBatch(b.ctx, store.LaunchBatchParams{ID: "b1", BudgetUSD: 1.5, Now: t0})
	require.ErrorIs(t, err, store.ErrInvalidState, "a budget already spent cannot resume")
	require.NoError(t, b.st.LaunchBatch(b.ctx, store.LaunchBatchParams{ID: "b1", BudgetUSD: 2, Now: t0}))
	require.Equal(t, store.BatchRunning, b.batchState(t, "b1"))
	last := b.claim(t, "a1", 5, "entities")
	require.Equal(t, []string{"e3"}, ids(last))
	require.InDelta(t, 0.5, last[0].BudgetLeftUSD, 1e-9)
	report(last[0], 0.1)
	require.Equal(t, store.BatchCompleted, b.batchState(t, "b1"))
	b.holds(t, "b1")

	// Failures and duplicates were paid too.
	b.batch(t, "b2", t0, item("f1", "entities", store.PriorityNormal))
	require.NoError(t, b.st.LaunchBatch(b.ctx, store.LaunchBatchParams{ID: "b2", BudgetUSD: 0.5, Now: t0}))
	f := b.claim(t, "a1", 1, "entities")[0]
	_, err = b.st.Report(b.ctx, store.ReportParams{Now: t0, RetryDelay: noDelay, Failures: []store.Failure{{
		Lease: store.LeaseRef{ItemID: f.ID, Token: f.Token}, Retryable: true, Message: "max turns", Metrics: store.Metrics{CostUSD: 0.7}}}})
	require.NoError(t, err)
	bt, err = b.st.GetBatch(b.ctx, "b2")
	require.NoError(t, err)
	require.Equal(t, store.BatchBudgetExhausted, bt.State)
	require.InDelta(t, 0.7, bt.SpentUSD, 1e-9)
}

func testPurgeEntity(t *testing.T, b *bundle) {
	for _, id := range []string{"b1", "b2"} {
		b.batch(t, id, t0, item("p1", "persons", store.PriorityNormal), item("p2", "persons", store.PriorityNormal))
		b.launch(t, id)
	}
	// b1 ends; b2 still runs with p1 in it.
	for _, it := range b.claim(t, "a1", 2, "persons") {
		b.complete(t, it, it.Token)
	}
	require.Equal(t, store.BatchCompleted, b.batchState(t, "b1"))
	_, err := b.st.PurgeEntity(b.ctx, store.PurgeEntityParams{EntityID: "p1"})
	require.ErrorIs(t, err, store.ErrInvalidState, "not while a batch holding it runs")
	require.Equal(t, store.ItemSucceeded, b.state(t, "b1", "p1").State, "a refused purge deletes nothing")

	got, err := b.st.PurgeEntity(b.ctx, store.PurgeEntityParams{EntityID: "p1", BatchID: "b1"})
	require.NoError(t, err)
	require.Equal(t, []store.PurgedItem{{BatchID: "b1", EntityID: "p1", InstanceType: "persons", OutputDir: "out/b1", HadResult: true}}, got)
	_, err = b.st.GetItem(b.ctx, "b1", "p1")
	require.ErrorIs(t, err, store.ErrNotFound)
	rows, err := b.st.Results(b.ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, []string{"p2"}, []string{rows[0].Item.EntityID})
	require.Len(t, rows, 1)
	counts, err := b.st.BatchCounts(b.ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, 1, counts["persons"].Total)
	b.holds(t, "b1") // also proves no event of the purged item is left
	require.Equal(t, store.ItemPending, b.state(t, "b2", "p1").State, "another batch is untouched")

	_, err = b.st.PurgeEntity(b.ctx, store.PurgeEntityParams{EntityID: "p1", BatchID: "b1"})
	require.ErrorIs(t, err, store.ErrNotFound)
}
