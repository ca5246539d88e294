package coordinator

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sportsintel/enrich/coordinator/config"
	"github.com/sportsintel/enrich/coordinator/store"
	"github.com/sportsintel/enrich/coordinator/store/postgres"
	"github.com/sportsintel/enrich/coordinator/store/postgres/pgtest"
	"github.com/sportsintel/enrich/coordinator/store/sqlite"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// What one coordinator of a fleet leaves undone when it dies is finished by the others: batches
// it ended but did not consolidate, drains it was asked to deliver.

// countingStore counts consolidations recorded through it; it embeds the PostgreSQL store so
// the fleet interfaces (registry, leader lease, drains) stay visible to the coordinator.
type countingStore struct {
	*postgres.Store
	marks *atomic.Int32
}

func (c countingStore) MarkConsolidated(ctx context.Context, p store.MarkConsolidatedParams) error {
	c.marks.Add(1)
	return c.Store.MarkConsolidated(ctx, p)
}

func fleetConfig(t *testing.T, dossiers string) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Dossiers = dossiers
	// A short TTL makes the reaper (and so the leader's sweep) tick every 100 ms.
	cfg.Lease.TTL = config.Duration(time.Second)
	cfg.Lease.HeartbeatInterval = config.Duration(200 * time.Millisecond)
	require.NoError(t, cfg.Validate())
	return cfg
}

type member struct {
	srv  *Server
	ctl  enrichv1.ControlServiceClient
	conn *grpc.ClientConn
}

// startMember runs a coordinator on st until the test ends.
func startMember(t *testing.T, cfg *config.Config, st store.Store, prepare func(*Server)) *member {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := New(cfg, st, hclog.NewNullLogger(), prometheus.NewRegistry())
	if prepare != nil {
		prepare(srv)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, lis, nil) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		conn.Close()
		cancel()
		require.NoError(t, <-done)
	})
	return &member{srv: srv, ctl: enrichv1.NewControlServiceClient(conn), conn: conn}
}

// endedBehindTheFleetsBack creates, launches and cancels a batch through the store alone: no
// running coordinator ended it, as when the one that did died before consolidating it.
func endedBehindTheFleetsBack(t *testing.T, st store.Store, dossiers, id string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	require.NoError(t, st.CreateBatch(ctx, store.CreateBatchParams{ID: id, Source: "test", CreatedAt: now,
		OutputDir: filepath.Join(dossiers, id), Items: []store.NewItem{{EntityID: "club-1", EntityType: "Club", Name: "Club 1",
			InstanceType: "entities", Priority: store.PriorityNormal, Entity: []byte(`{"id":"club-1"}`), MaxAttempts: 4}}}))
	require.NoError(t, st.LaunchBatch(ctx, store.LaunchBatchParams{ID: id, Now: now}))
	_, err := st.CancelBatch(ctx, store.CancelBatchParams{ID: id, Reason: "test", Now: now})
	require.NoError(t, err)
}

func openPostgres(t *testing.T, url string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

// A batch ended while the coordinators run, by one that died before consolidating it, is
// consolidated by the fleet (its reaper's leader) without any restart, and once.
func TestFleetConsolidatesBatchItsCoordinatorLeft(t *testing.T) {
	t.Parallel()
	url := pgtest.Schema(t)
	dossiers := filepath.Join(t.TempDir(), "dossiers")
	cfg := fleetConfig(t, dossiers)
	var marks atomic.Int32
	short := func(s *Server) { s.sweep.grace, s.sweep.every = 300*time.Millisecond, 100*time.Millisecond }
	a := startMember(t, cfg, countingStore{openPostgres(t, url), &marks}, short)
	startMember(t, cfg, countingStore{openPostgres(t, url), &marks}, short)
	raw := openPostgres(t, url)

	endedBehindTheFleetsBack(t, raw, dossiers, "b-orphan")
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, err := raw.GetBatch(context.Background(), "b-orphan")
		require.NoError(t, err)
		if !b.ConsolidatedAt.IsZero() {
			require.Empty(t, b.ConsolidationError)
			break
		}
		require.True(t, time.Now().Before(deadline), "the batch is still unconsolidated")
		time.Sleep(50 * time.Millisecond)
	}
	require.FileExists(t, filepath.Join(dossiers, "b-orphan", "report.json"))
	// Several more sweeps of both coordinators: nobody consolidates it again.
	time.Sleep(time.Second)
	require.EqualValues(t, 1, marks.Load(), "consolidated once across the fleet")
	res, err := a.ctl.GetBatch(context.Background(), &enrichv1.GetBatchRequest{BatchId: "b-orphan"})
	require.NoError(t, err)
	require.NotNil(t, res.GetBatch().GetConsolidatedAt())
}

// barrierStore lets every caller list unconsolidated batches before any of them consolidates,
// the worst case of two coordinators sweeping at once.
type barrierStore struct {
	store.Store
	listed *sync.WaitGroup
	marks  *atomic.Int32
}

func (b barrierStore) UnconsolidatedBatches(ctx context.Context, p store.UnconsolidatedParams) ([]*store.Batch, error) {
	list, err := b.Store.UnconsolidatedBatches(ctx, p)
	b.listed.Done()
	b.listed.Wait()
	return list, err
}

func (b barrierStore) MarkConsolidated(ctx context.Context, p store.MarkConsolidatedParams) error {
	b.marks.Add(1)
	return b.Store.MarkConsolidated(ctx, p)
}

// Two coordinators that both find the same batch unconsolidated write it once: the claim lets
// one through, and the other finds it taken or already done.
func TestConsolidationSweepsRacingWriteOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, dossiers := filepath.Join(dir, "enrich.db"), filepath.Join(dir, "dossiers")
	cfg := fleetConfig(t, dossiers)
	var listed sync.WaitGroup
	var marks atomic.Int32
	listed.Add(2)
	var servers []*Server
	for range 2 {
		st, err := sqlite.Open(context.Background(), path)
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		srv := New(cfg, barrierStore{Store: st, listed: &listed, marks: &marks}, hclog.NewNullLogger(), prometheus.NewRegistry())
		srv.sweep.grace = time.Millisecond
		ctx, cancel := context.WithCancel(context.Background())
		srv.runCtx = ctx
		t.Cleanup(cancel)
		servers = append(servers, srv)
	}
	st, err := sqlite.Open(context.Background(), path)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	endedBehindTheFleetsBack(t, st, dossiers, "b-1")
	time.Sleep(10 * time.Millisecond)

	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Add(1)
		go func() { defer wg.Done(); srv.sweepConsolidations(context.Background()) }()
	}
	wg.Wait()
	for _, srv := range servers {
		srv.background.Wait()
	}
	require.EqualValues(t, 1, marks.Load(), "one consolidation, not one per coordinator")
	b, err := st.GetBatch(context.Background(), "b-1")
	require.NoError(t, err)
	require.False(t, b.ConsolidatedAt.IsZero())
}

// An operator's drain made while the agent's stream moves to another coordinator is not lost:
// the coordinator that accepts the agent's next session drains it before granting anything.
func TestDrainRequestFollowsAgentToAnotherCoordinator(t *testing.T) {
	t.Parallel()
	url := pgtest.Schema(t)
	dossiers := filepath.Join(t.TempDir(), "dossiers")
	cfg := fleetConfig(t, dossiers)
	a := startMember(t, cfg, openPostgres(t, url), nil)
	b := startMember(t, cfg, openPostgres(t, url), nil)
	raw := openPostgres(t, url)
	ctx := context.Background()

	// The agent's row as a coordinator that is about to lose its stream published it: that
	// coordinator never acts on the request.
	now := time.Now().UTC()
	require.NoError(t, raw.PutAgents(ctx, []store.AgentRecord{{AgentID: "mover", SessionID: "s-old", Coordinator: "gone:7400",
		InstanceTypes: []string{"entities"}, Slots: 2, ConnectedAt: now, LastSeen: now}}))
	res, err := b.ctl.DrainAgent(ctx, &enrichv1.DrainAgentRequest{AgentId: "mover"})
	require.NoError(t, err)
	require.Equal(t, "gone:7400", res.GetAgent().GetCoordinator())
	require.NoError(t, raw.RemoveAgent(ctx, "mover", "s-old"))

	tb := &testBundle{ctx: ctx, srv: a.srv, conn: a.conn, ctl: a.ctl}
	tb.launch(t, "Club", 3)
	ag := tb.agent(t, "mover", 2, "entities")
	ag.credit(2)
	var drain *enrichv1.Drain
	var leases int
	timeout := time.After(5 * time.Second)
	for drain == nil {
		select {
		case m := <-ag.msgs:
			if m.GetLease() != nil {
				leases++
			}
			drain = m.GetDrain()
		case <-timeout:
			t.Fatal("the agent's new session was not drained")
		}
	}
	require.True(t, drain.GetExit())
	require.Empty(t, ag.leases(500*time.Millisecond))
	require.Zero(t, leases, "a session to drain gets no lease")
	reqs, err := raw.DrainRequests(ctx, []string{"mover"}, time.Time{})
	require.NoError(t, err)
	require.Empty(t, reqs, "delivered: the request is done")
}

// A drained agent that reconnects (to deliver what it still runs) stays draining: its new
// session gets no lease and is listed as draining.
func TestDrainingAgentReconnectsWithoutLeases(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.launch(t, "Club", 3)
	stream, err := enrichv1.NewAgentServiceClient(b.conn).Connect(b.ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Hello{Hello: &enrichv1.Hello{
		AgentId: "drained", InstanceTypes: []string{"entities"}, Slots: 2, Draining: true}}}))
	first, err := stream.Recv()
	require.NoError(t, err)
	require.NotNil(t, first.GetWelcome())
	require.NoError(t, stream.Send(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Credit{Credit: &enrichv1.Credit{Count: 2}}}))
	got := make(chan *enrichv1.ConnectResponse, 10)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				close(got)
				return
			}
			got <- m
		}
	}()
	select {
	case m := <-got:
		require.Nil(t, m.GetLease(), "a draining agent got a lease")
	case <-time.After(700 * time.Millisecond):
	}
	res, err := b.ctl.ListAgents(b.ctx, &enrichv1.ListAgentsRequest{})
	require.NoError(t, err)
	require.Len(t, res.GetAgents(), 1)
	require.True(t, res.GetAgents()[0].GetDraining())
}
