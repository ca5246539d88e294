package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/coordinator/store"
)

var attemptTests = map[string]func(t *testing.T, b *bundle){
	"AttemptTotals": testAttemptTotals,
}

// testAttemptTotals checks the store's per-type sums against the runs themselves: successes with
// distinct run times (for the median), a retried and a permanent failure, and a duplicate that
// was paid for but changed nothing.
func testAttemptTotals(t *testing.T, b *bundle) {
	var items []store.NewItem
	for _, id := range []string{"e1", "e2", "e3", "e4", "e5"} {
		items = append(items, item(id, "entities", store.PriorityNormal))
	}
	items = append(items, item("p1", "persons", store.PriorityNormal), item("l1", "leagues", store.PriorityNormal))
	b.batch(t, "b1", t0, items...)
	b.batch(t, "other", t0, item("x1", "entities", store.PriorityNormal))
	b.launch(t, "b1")
	b.launch(t, "other")

	report := func(p store.ReportParams) {
		t.Helper()
		p.Now, p.RetryDelay = t0, noDelay
		_, err := b.st.Report(b.ctx, p)
		require.NoError(t, err)
	}
	done := func(it *store.Item, token int64, d time.Duration, cost float64) store.Completion {
		return store.Completion{Lease: store.LeaseRef{ItemID: it.ID, Token: token}, AgentID: "a1", Dossier: []byte(`{}`),
			Metrics: store.Metrics{Duration: d, CostUSD: cost}}
	}
	failed := func(it *store.Item, retryable bool, cost float64) store.Failure {
		return store.Failure{Lease: store.LeaseRef{ItemID: it.ID, Token: it.Token}, AgentID: "a1", Retryable: retryable,
			Message: "boom", Metrics: store.Metrics{Duration: time.Second, CostUSD: cost}}
	}

	ents := b.claim(t, "a1", 5, "entities")
	require.Len(t, ents, 5)
	// e1..e3 succeed in 4 s, 1 s, 3 s; e4 fails and is retried; e5 fails for good.
	report(store.ReportParams{
		Completions: []store.Completion{done(ents[0], ents[0].Token, 4*time.Second, 0.5),
			done(ents[1], ents[1].Token, time.Second, 0.25), done(ents[2], ents[2].Token, 3*time.Second, 0.25)},
		Failures: []store.Failure{failed(ents[3], true, 0.125), failed(ents[4], false, 0.125)},
	})
	retry := b.claim(t, "a1", 1, "entities")
	require.Len(t, retry, 1)
	report(store.ReportParams{Completions: []store.Completion{done(retry[0], retry[0].Token, 2*time.Second, 0.5)}})
	// The first lease's run of e4 ends late: a duplicate, paid for, no success of its own.
	report(store.ReportParams{Completions: []store.Completion{done(ents[3], ents[3].Token, 9*time.Second, 1)}})

	p1 := b.claim(t, "a1", 1, "persons")
	require.Len(t, p1, 1)
	report(store.ReportParams{Completions: []store.Completion{done(p1[0], p1[0].Token, 7*time.Second, 2)}})
	// Another batch's runs never count here.
	x1 := b.claim(t, "a1", 1, "entities")
	require.Len(t, x1, 1)
	report(store.ReportParams{Completions: []store.Completion{done(x1[0], x1[0].Token, time.Hour, 100)}})

	totals, err := b.st.AttemptTotals(b.ctx, "b1")
	require.NoError(t, err)
	require.Len(t, totals, 2, "leagues has no finished run yet")
	ent := totals["entities"]
	require.Equal(t, 7, ent.Attempts)
	require.Equal(t, 2, ent.Failed)
	require.Equal(t, 1, ent.Retries)
	require.InDelta(t, 2.75, ent.CostUSD, 1e-9)
	// Successes took 1, 2, 3, 4 s: the lower middle.
	require.Equal(t, 2*time.Second, ent.MedianDuration)
	require.Equal(t, store.AttemptTotals{Attempts: 1, CostUSD: 2, MedianDuration: 7 * time.Second}, totals["persons"])

	// The same sums as the runs listed one by one.
	attempts, err := b.st.Attempts(b.ctx, "b1")
	require.NoError(t, err)
	var listed int
	var cost float64
	for _, a := range attempts {
		if a.InstanceType == "entities" {
			listed++
			cost += a.Metrics.CostUSD
		}
	}
	require.Equal(t, listed, ent.Attempts)
	require.InDelta(t, cost, ent.CostUSD, 1e-9)

	none, err := b.st.AttemptTotals(b.ctx, "no-such-batch")
	require.NoError(t, err)
	require.Empty(t, none)
}
