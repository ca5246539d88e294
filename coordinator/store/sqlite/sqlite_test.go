package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/coordinator/store"
	"github.com/sportsintel/enrich/coordinator/store/sqlite"
	"github.com/sportsintel/enrich/coordinator/store/storetest"
)

func open(t *testing.T) store.Store {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "enrich.db"))
	require.NoError(t, err)
	return st
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, open)
}

// A coordinator restart reopens the same file: everything committed is still there.
func TestReopenKeepsState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "enrich.db")
	st, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	now := time.Now().UTC()
	require.NoError(t, st.CreateBatch(ctx, store.CreateBatchParams{ID: "b1", CreatedAt: now, Items: []store.NewItem{
		{EntityID: "e1", EntityType: "Club", Name: "E1", InstanceType: "entities", Priority: store.PriorityNormal, Entity: []byte("{}"), MaxAttempts: 4},
	}}))
	require.NoError(t, st.LaunchBatch(ctx, store.LaunchBatchParams{ID: "b1", Now: now}))
	got, err := st.Claim(ctx, store.ClaimParams{AgentID: "a", InstanceTypes: []string{"entities"}, Limit: 1, LeaseTTL: time.Minute, Now: now})
	require.NoError(t, err)
	_, err = st.Report(ctx, store.ReportParams{Now: now, Completions: []store.Completion{{Lease: store.LeaseRef{ItemID: got[0].ID, Token: got[0].Token}, Dossier: []byte(`{"x":1}`)}}})
	require.NoError(t, err)
	require.NoError(t, st.Close())

	st, err = sqlite.Open(ctx, path)
	require.NoError(t, err)
	defer st.Close()
	b, err := st.GetBatch(ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, store.BatchCompleted, b.State)
	rows, err := st.Results(ctx, "b1")
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.JSONEq(t, `{"x":1}`, string(rows[0].Dossier))
}

// go test -bench ClaimAndReport ./coordinator/store/sqlite: one op is one entity leased and its
// result committed, in groups as the dispatcher and the committer form them.
func BenchmarkClaimAndReport(b *testing.B) {
	for _, group := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("group=%d", group), func(b *testing.B) {
			storetest.Bench(b, func(b *testing.B) store.Store {
				st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "enrich.db"))
				if err != nil {
					b.Fatal(err)
				}
				return st
			}, group)
		})
	}
}
