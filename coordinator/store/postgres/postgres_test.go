package postgres_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/coordinator/store"
	"github.com/sportsintel/enrich/coordinator/store/postgres"
	"github.com/sportsintel/enrich/coordinator/store/postgres/pgtest"
	"github.com/sportsintel/enrich/coordinator/store/storetest"
)

func open(t *testing.T) store.Store {
	st, err := postgres.Open(context.Background(), pgtest.Schema(t))
	require.NoError(t, err)
	return st
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, open)
}

// Coordinators starting together on an empty database all come up: the migrations run once,
// under the advisory lock, and nobody fails on a half-created schema.
func TestConcurrentStartMigratesOnce(t *testing.T) {
	t.Parallel()
	url := pgtest.Schema(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := postgres.Open(ctx, url)
			if err == nil {
				err = st.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var applied int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM enrich_schema_version WHERE version_id > 0 AND is_applied`).Scan(&applied))
	migrations, err := filepath.Glob("migrations/*.sql")
	require.NoError(t, err)
	require.Equal(t, len(migrations), applied, "each migration recorded once")
}

// Two stores on one database stand for two coordinators: a lease granted through one is
// extended, completed and reaped through the other, and the batch ends exactly once.
func TestTwoCoordinatorsShareLeases(t *testing.T) {
	t.Parallel()
	url := pgtest.Schema(t)
	ctx := context.Background()
	a, err := postgres.Open(ctx, url)
	require.NoError(t, err)
	defer a.Close()
	b, err := postgres.Open(ctx, url)
	require.NoError(t, err)
	defer b.Close()
	now := time.Now().UTC()
	items := []store.NewItem{
		{EntityID: "e1", EntityType: "Club", Name: "E1", InstanceType: "entities", Priority: store.PriorityNormal, Entity: []byte("{}"), MaxAttempts: 4},
		{EntityID: "e2", EntityType: "Club", Name: "E2", InstanceType: "entities", Priority: store.PriorityNormal, Entity: []byte("{}"), MaxAttempts: 4},
	}
	require.NoError(t, a.CreateBatch(ctx, store.CreateBatchParams{ID: "b1", CreatedAt: now, Items: items}))
	require.NoError(t, b.LaunchBatch(ctx, store.LaunchBatchParams{ID: "b1", Now: now}))
	got, err := a.Claim(ctx, store.ClaimParams{AgentID: "ag", SessionID: "s1", InstanceTypes: []string{"entities"}, Limit: 2, LeaseTTL: time.Second, Now: now})
	require.NoError(t, err)
	require.Len(t, got, 2)
	// The agent reconnected to coordinator b: its heartbeat keeps e1 alive there, e2 is forgotten.
	lost, err := b.ExtendLeases(ctx, store.ExtendLeasesParams{AgentID: "ag", SessionID: "s2", LeaseTTL: time.Minute, Now: now.Add(500 * time.Millisecond),
		Leases: []store.LeaseRef{{ItemID: got[0].ID, Token: got[0].Token}}})
	require.NoError(t, err)
	require.Empty(t, lost)
	reaped, err := b.ReapExpired(ctx, store.ReapParams{Now: now.Add(2 * time.Second)})
	require.NoError(t, err)
	require.Len(t, reaped.Expired, 1)
	require.Equal(t, got[1].ID, reaped.Expired[0].ItemID)
	again, err := a.Claim(ctx, store.ClaimParams{AgentID: "ag2", SessionID: "s3", InstanceTypes: []string{"entities"}, Limit: 2, LeaseTTL: time.Minute, Now: now.Add(2 * time.Second)})
	require.NoError(t, err)
	require.Len(t, again, 1)

	// Both results land at once, one through each coordinator: the batch finishes exactly once.
	var wg sync.WaitGroup
	finished := make(chan []string, 2)
	for i, st := range []store.Store{a, b} {
		it := []*store.Item{got[0], again[0]}[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := st.Report(ctx, store.ReportParams{Now: now.Add(3 * time.Second), Completions: []store.Completion{{
				Lease: store.LeaseRef{ItemID: it.ID, Token: it.Token}, AgentID: it.AgentID, Dossier: []byte(`{}`)}}})
			if err != nil {
				t.Error(err)
				return
			}
			finished <- res.FinishedBatches
		}()
	}
	wg.Wait()
	close(finished)
	var ends int
	for f := range finished {
		ends += len(f)
	}
	require.Equal(t, 1, ends, "exactly one report ends the batch")
	bt, err := a.GetBatch(ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, store.BatchCompleted, bt.State)
}

func TestAgentRegistry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := postgres.Open(ctx, pgtest.Schema(t))
	require.NoError(t, err)
	defer st.Close()
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	rec := store.AgentRecord{AgentID: "a1", SessionID: "s1", Coordinator: "c1:7400", Hostname: "h", InstanceTypes: []string{"entities"},
		Slots: 4, InFlight: 2, Labels: map[string]string{"zone": "x"}, ConnectedAt: t0, LastSeen: t0}
	require.NoError(t, st.PutAgents(ctx, []store.AgentRecord{rec}))
	// A reconnect to another coordinator replaces the row; the old session's late refresh does not win.
	newer := rec
	newer.SessionID, newer.Coordinator, newer.ConnectedAt, newer.LastSeen = "s2", "c2:7400", t0.Add(time.Second), t0.Add(time.Second)
	require.NoError(t, st.PutAgents(ctx, []store.AgentRecord{newer}))
	stale := rec
	stale.LastSeen = t0.Add(2 * time.Second)
	require.NoError(t, st.PutAgents(ctx, []store.AgentRecord{stale}))
	list, err := st.ListAgents(ctx, time.Time{})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "s2", list[0].SessionID)
	require.Equal(t, "c2:7400", list[0].Coordinator)
	require.Equal(t, map[string]string{"zone": "x"}, list[0].Labels)
	// The old session's goodbye does not remove the new one.
	require.NoError(t, st.RemoveAgent(ctx, "a1", "s1"))
	list, err = st.ListAgents(ctx, time.Time{})
	require.NoError(t, err)
	require.Len(t, list, 1)
	n, err := st.PruneAgents(ctx, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	list, err = st.ListAgents(ctx, time.Time{})
	require.NoError(t, err)
	require.Empty(t, list)
}

func TestLeadership(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := postgres.Open(ctx, pgtest.Schema(t))
	require.NoError(t, err)
	defer st.Close()
	ok, err := st.TryLead(ctx, "reaper", "c1", 300*time.Millisecond)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = st.TryLead(ctx, "reaper", "c2", time.Second)
	require.NoError(t, err)
	require.False(t, ok, "held by c1")
	ok, err = st.TryLead(ctx, "reaper", "c1", 300*time.Millisecond)
	require.NoError(t, err)
	require.True(t, ok, "renewed by its holder")
	time.Sleep(400 * time.Millisecond)
	ok, err = st.TryLead(ctx, "reaper", "c2", time.Minute)
	require.NoError(t, err)
	require.True(t, ok, "taken over after the lease lapsed")
	require.NoError(t, st.Resign(ctx, "reaper", "c2"))
	ok, err = st.TryLead(ctx, "reaper", "c1", time.Minute)
	require.NoError(t, err)
	require.True(t, ok, "free at once after a resignation")
}

// A change committed through one store reaches a listener on another.
func TestChangeFeed(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := pgtest.Schema(t)
	a, err := postgres.Open(ctx, url)
	require.NoError(t, err)
	defer a.Close()
	b, err := postgres.Open(ctx, url)
	require.NoError(t, err)
	defer b.Close()
	// Unique batch id: the channel is per database, and other tests share it.
	id := "feed-" + time.Now().Format("150405.000000000")
	seen := make(chan struct{})
	var once sync.Once
	go func() {
		_ = b.FollowChanges(ctx, func(batch string) {
			if batch == id {
				once.Do(func() { close(seen) })
			}
		})
	}()
	// The listener may not be subscribed yet: keep changing the batch until it hears one.
	require.NoError(t, a.CreateBatch(ctx, store.CreateBatchParams{ID: id, CreatedAt: time.Now(), Items: []store.NewItem{
		{EntityID: "e1", EntityType: "Club", Name: "E1", InstanceType: "entities", Priority: store.PriorityNormal, Entity: []byte("{}"), MaxAttempts: 4}}}))
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-seen:
			return
		case <-tick.C:
			require.NoError(t, a.MarkConsolidated(ctx, store.MarkConsolidatedParams{ID: id, Now: time.Now()}))
		case <-ctx.Done():
			t.Fatal("no notification within 30s")
		}
	}
}
