package coordinator

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sportsintel/enrich/agent/runner"
	"github.com/sportsintel/enrich/coordinator/config"
	"github.com/sportsintel/enrich/coordinator/store/sqlite"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type testBundle struct {
	ctx  context.Context
	srv  *Server
	conn *grpc.ClientConn
	ctl  enrichv1.ControlServiceClient
}

// setup runs a real coordinator on a loopback listener with a SQLite file.
func setup(t *testing.T, mutate func(*config.Config)) *testBundle {
	t.Helper()
	cfg := config.Default()
	cfg.Dossiers = filepath.Join(t.TempDir(), "dossiers")
	cfg.RetryStrategy.BaseDelay = config.Duration(10 * time.Millisecond)
	cfg.RetryStrategy.MaxDelay = config.Duration(20 * time.Millisecond)
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "enrich.db"))
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := New(cfg, st, hclog.NewNullLogger(), prometheus.NewRegistry())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, lis, nil) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		conn.Close()
		cancel()
		require.NoError(t, <-done)
		st.Close()
	})
	return &testBundle{ctx: ctx, srv: srv, conn: conn, ctl: enrichv1.NewControlServiceClient(conn)}
}

// launch prepares and launches a batch of n entities of one entity type.
func (b *testBundle) launch(t *testing.T, entityType string, n int) string {
	t.Helper()
	req := &enrichv1.PrepareBatchRequest{}
	for i := range n {
		req.Entities = append(req.Entities, &enrichv1.Entity{Id: fmt.Sprintf("e-%03d", i), Type: entityType,
			Name: fmt.Sprintf("Entity %d", i), SourceLine: int32(i + 1)})
	}
	res, err := b.ctl.PrepareBatch(b.ctx, req)
	require.NoError(t, err)
	_, err = b.ctl.LaunchBatch(b.ctx, &enrichv1.LaunchBatchRequest{BatchId: res.GetBatch().GetId()})
	require.NoError(t, err)
	return res.GetBatch().GetId()
}

// rawAgent speaks the agent protocol by hand, so tests control every message.
type rawAgent struct {
	t      *testing.T
	stream enrichv1.AgentService_ConnectClient
	msgs   chan *enrichv1.ConnectResponse
}

func (b *testBundle) agent(t *testing.T, id string, slots int32, types ...string) *rawAgent {
	t.Helper()
	return b.agentCtx(t, b.ctx, id, slots, nil, types...)
}

// agentCtx connects an agent whose stream ends with ctx and whose Hello lists held leases.
func (b *testBundle) agentCtx(t *testing.T, ctx context.Context, id string, slots int32, held []*enrichv1.LeaseRef, types ...string) *rawAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	stream, err := enrichv1.NewAgentServiceClient(b.conn).Connect(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Hello{Hello: &enrichv1.Hello{
		AgentId: id, InstanceTypes: types, Slots: slots, HeldLeases: held}}}))
	first, err := stream.Recv()
	require.NoError(t, err)
	require.NotNil(t, first.GetWelcome(), "first message is Welcome")
	a := &rawAgent{t: t, stream: stream, msgs: make(chan *enrichv1.ConnectResponse, 1000)}
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				close(a.msgs)
				return
			}
			a.msgs <- m
		}
	}()
	return a
}

func (a *rawAgent) send(m *enrichv1.ConnectRequest) {
	a.t.Helper()
	require.NoError(a.t, a.stream.Send(m))
}

func (a *rawAgent) credit(n int32) {
	a.send(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Credit{Credit: &enrichv1.Credit{Count: n}}})
}

// leases collects the leases that arrive within quiet of each other.
func (a *rawAgent) leases(quiet time.Duration) []*enrichv1.Lease {
	var out []*enrichv1.Lease
	for {
		select {
		case m, ok := <-a.msgs:
			if !ok {
				return out
			}
			if l := m.GetLease(); l != nil {
				out = append(out, l)
			}
		case <-time.After(quiet):
			return out
		}
	}
}

func (a *rawAgent) ack() *enrichv1.Ack {
	a.t.Helper()
	for {
		select {
		case m := <-a.msgs:
			if ack := m.GetAck(); ack != nil {
				return ack
			}
		case <-time.After(5 * time.Second):
			a.t.Fatal("no Ack within 5s")
		}
	}
}

func TestCreditsBoundLeases(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.launch(t, "Club", 20)
	a := b.agent(t, "a1", 4, "entities")

	a.credit(2)
	require.Len(t, a.leases(300*time.Millisecond), 2, "exactly as many leases as credits")
	a.credit(1)
	require.Len(t, a.leases(300*time.Millisecond), 1)
	a.credit(100)
	require.Len(t, a.leases(300*time.Millisecond), 4, "outstanding credits never exceed the agent's slots")
}

func TestPriorityOrderAcrossBatches(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	low := &enrichv1.PrepareBatchRequest{DefaultPriority: enrichv1.Priority_PRIORITY_LOW, Entities: []*enrichv1.Entity{
		{Id: "low-1", Type: "Club", Name: "Low"}}}
	high := &enrichv1.PrepareBatchRequest{Entities: []*enrichv1.Entity{
		{Id: "normal-1", Type: "Club", Name: "Normal"},
		{Id: "high-1", Type: "Club", Name: "High", Priority: enrichv1.Priority_PRIORITY_HIGH}}}
	for _, req := range []*enrichv1.PrepareBatchRequest{low, high} {
		res, err := b.ctl.PrepareBatch(b.ctx, req)
		require.NoError(t, err)
		_, err = b.ctl.LaunchBatch(b.ctx, &enrichv1.LaunchBatchRequest{BatchId: res.GetBatch().GetId()})
		require.NoError(t, err)
	}
	a := b.agent(t, "a1", 1, "entities")
	var order []string
	for range 3 {
		a.credit(1)
		got := a.leases(200 * time.Millisecond)
		require.Len(t, got, 1)
		order = append(order, got[0].GetEntity().GetId())
		a.send(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Failure{Failure: &enrichv1.Failure{
			Lease: got[0].GetLease(), Retryable: false, Message: "stop"}}})
		a.ack()
	}
	require.Equal(t, []string{"high-1", "normal-1", "low-1"}, order)
}

func TestMaxConcurrentIsFleetWide(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *config.Config) {
		ic := c.ResourceAllocation["entities"]
		ic.MaxConcurrent = 3
		c.ResourceAllocation["entities"] = ic
	})
	b.launch(t, "Club", 10)
	a1 := b.agent(t, "a1", 5, "entities")
	a2 := b.agent(t, "a2", 5, "entities")
	a1.credit(5)
	a2.credit(5)
	got1 := a1.leases(300 * time.Millisecond)
	got2 := a2.leases(300 * time.Millisecond)
	require.Len(t, append(got1, got2...), 3, "max_concurrent caps leases in flight across agents")

	// Finishing one frees one place.
	holder, leases := a1, got1
	if len(got1) == 0 {
		holder, leases = a2, got2
	}
	holder.send(resultFor(t, leases[0]))
	require.Equal(t, enrichv1.AckOutcome_ACK_OUTCOME_ACCEPTED, holder.ack().GetOutcome())
	more := append(a1.leases(300*time.Millisecond), a2.leases(300*time.Millisecond)...)
	require.Len(t, more, 1)
}

func resultFor(t *testing.T, l *enrichv1.Lease) *enrichv1.ConnectRequest {
	t.Helper()
	out, err := (&runner.Offline{}).Run(context.Background(), l)
	require.NoError(t, err)
	return &enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Result{Result: &enrichv1.Result{
		Lease: l.GetLease(), DossierJson: out.Dossier, Metrics: out.Metrics}}}
}

func TestResultsAreValidatedAndAcked(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id := b.launch(t, "Club", 3)
	a := b.agent(t, "a1", 3, "entities")
	a.credit(3)
	leases := a.leases(300 * time.Millisecond)
	require.Len(t, leases, 3)

	// A valid dossier is committed, then acked.
	a.send(resultFor(t, leases[0]))
	require.Equal(t, enrichv1.AckOutcome_ACK_OUTCOME_ACCEPTED, a.ack().GetOutcome())
	// The same lease's result again (the Ack was lost) is acknowledged again, not a duplicate.
	a.send(resultFor(t, leases[0]))
	again := a.ack()
	require.Equal(t, enrichv1.AckOutcome_ACK_OUTCOME_ACCEPTED, again.GetOutcome())
	require.Equal(t, "already accepted", again.GetMessage())
	// A dossier that breaks the schema is rejected and counts as a failed attempt.
	a.send(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Result{Result: &enrichv1.Result{
		Lease: leases[1].GetLease(), DossierJson: []byte(`{"entity_id":"x"}`)}}})
	ack := a.ack()
	require.Equal(t, enrichv1.AckOutcome_ACK_OUTCOME_REJECTED, ack.GetOutcome())
	require.Contains(t, ack.GetMessage(), "dossier rejected")
	// A valid dossier about another entity is rejected too.
	wrong := resultFor(t, leases[0])
	wrong.GetResult().Lease = leases[2].GetLease()
	a.send(wrong)
	ack = a.ack()
	require.Equal(t, enrichv1.AckOutcome_ACK_OUTCOME_REJECTED, ack.GetOutcome())
	require.Contains(t, ack.GetMessage(), "the lease is for")

	items, err := b.ctl.ListItems(b.ctx, &enrichv1.ListItemsRequest{BatchId: id})
	require.NoError(t, err)
	states := map[string]enrichv1.ItemState{}
	for _, it := range items.GetItems() {
		states[it.GetEntity().GetId()] = it.GetState()
	}
	require.Equal(t, enrichv1.ItemState_ITEM_STATE_SUCCEEDED, states[leases[0].GetEntity().GetId()])
	require.Equal(t, enrichv1.ItemState_ITEM_STATE_PENDING, states[leases[1].GetEntity().GetId()], "rejected dossiers are retried")
}

func TestHelloIsValidated(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for name, hello := range map[string]*enrichv1.Hello{
		"bad id":       {AgentId: "../etc", InstanceTypes: []string{"entities"}, Slots: 1},
		"no types":     {AgentId: "a", Slots: 1},
		"unknown type": {AgentId: "a", InstanceTypes: []string{"stadiums"}, Slots: 1},
		"zero slots":   {AgentId: "a", InstanceTypes: []string{"entities"}},
		"huge slots":   {AgentId: "a", InstanceTypes: []string{"entities"}, Slots: 1 << 20},
	} {
		stream, err := enrichv1.NewAgentServiceClient(b.conn).Connect(b.ctx)
		require.NoError(t, err)
		require.NoError(t, stream.Send(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Hello{Hello: hello}}))
		_, err = stream.Recv()
		require.Equal(t, codes.InvalidArgument, status.Code(err), name)
	}
}

func TestPrepareRefusesBadEntities(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, err := b.ctl.PrepareBatch(b.ctx, &enrichv1.PrepareBatchRequest{Entities: []*enrichv1.Entity{
		{Id: "a", Type: "Club", Name: "A", SourceLine: 1},
		{Id: "s", Type: "Stadium", Name: "S", SourceLine: 2},
		{Id: "a", Type: "Club", Name: "A2", SourceLine: 3},
		{Id: "x\x00y", Type: "Club", Name: "X", SourceLine: 4},
	}})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	msg := status.Convert(err).Message()
	require.Contains(t, msg, `line 2: unknown entity type "Stadium" (known: `)
	require.Contains(t, msg, `line 3: duplicate id "a" (first at line 1)`)
	require.Contains(t, msg, `line 4: id "x\x00y" contains control characters`)
	list, err := b.ctl.ListBatches(b.ctx, &enrichv1.ListBatchesRequest{})
	require.NoError(t, err)
	require.Empty(t, list.GetBatches())
}

func TestPrepareCapsEachInstanceType(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	req := &enrichv1.PrepareBatchRequest{Capacity: map[string]int32{"1": 2}}
	for i := range 5 {
		req.Entities = append(req.Entities, &enrichv1.Entity{Id: fmt.Sprint("c", i), Type: "Club", Name: "C"})
	}
	req.Entities = append(req.Entities, &enrichv1.Entity{Id: "vip", Type: "Club", Name: "VIP", Priority: enrichv1.Priority_PRIORITY_HIGH},
		&enrichv1.Entity{Id: "p", Type: "Person", Name: "P"})
	res, err := b.ctl.PrepareBatch(b.ctx, req)
	require.NoError(t, err)
	require.Equal(t, map[string]int32{"entities": 4}, res.GetLeftOut())
	items, err := b.ctl.ListItems(b.ctx, &enrichv1.ListItemsRequest{BatchId: res.GetBatch().GetId()})
	require.NoError(t, err)
	var ids []string
	for _, it := range items.GetItems() {
		ids = append(ids, it.GetEntity().GetId())
	}
	require.ElementsMatch(t, []string{"c0", "vip", "p"}, ids, "the most important entities fill the capacity")
}
