package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sportsintel/enrich/coordinator/store"
)

// BenchOpener returns a new, empty store for a benchmark; Bench closes it.
type BenchOpener func(b *testing.B) store.Store

// Bench measures the store's hot path: claim a group of leases, then commit their results in one
// report, as the dispatcher and the group committer do. One op is one entity leased and
// completed; the batch is refilled outside the timer when it runs out.
func Bench(b *testing.B, open BenchOpener, group int) {
	ctx := context.Background()
	st := open(b)
	defer st.Close()
	const batchSize = 20000
	dossier := []byte(`{"entity_id":"x","summary":"benchmark"}`)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	left, batches := 0, 0
	refill := func() {
		b.StopTimer()
		items := make([]store.NewItem, batchSize)
		for i := range items {
			items[i] = store.NewItem{EntityID: fmt.Sprintf("e%06d", i), EntityType: "Club", Name: "Club", InstanceType: "entities",
				Priority: store.PriorityNormal, Entity: []byte(`{}`), MaxAttempts: 4}
		}
		id := fmt.Sprintf("bench-%d", batches)
		batches++
		if err := st.CreateBatch(ctx, store.CreateBatchParams{ID: id, CreatedAt: now, Items: items}); err != nil {
			b.Fatal(err)
		}
		if err := st.LaunchBatch(ctx, store.LaunchBatchParams{ID: id, Now: now}); err != nil {
			b.Fatal(err)
		}
		left = batchSize
		b.StartTimer()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		if left == 0 {
			refill()
		}
		n := min(group, b.N-done, left)
		got, err := st.Claim(ctx, store.ClaimParams{AgentID: "a", SessionID: "s", InstanceTypes: []string{"entities"},
			Limit: n, LeaseTTL: time.Minute, Now: now})
		if err != nil {
			b.Fatal(err)
		}
		p := store.ReportParams{Now: now}
		for _, it := range got {
			p.Completions = append(p.Completions, store.Completion{Lease: store.LeaseRef{ItemID: it.ID, Token: it.Token},
				AgentID: "a", Dossier: dossier, Metrics: store.Metrics{Duration: time.Second}})
		}
		if _, err := st.Report(ctx, p); err != nil {
			b.Fatal(err)
		}
		done += len(got)
		left -= len(got)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entities/s")
}
