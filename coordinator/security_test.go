package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/sportsintel/enrich/coordinator/auth"
	"github.com/sportsintel/enrich/coordinator/config"
	"github.com/sportsintel/enrich/coordinator/store"
	"github.com/sportsintel/enrich/coordinator/store/sqlite"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
	"github.com/sportsintel/enrich/internal/clientcreds"
	"github.com/sportsintel/enrich/internal/tlsutil"
)

// Secrets of the test tokens; the agent tokens' names are their agent ids.
var testSecrets = map[string]string{
	"admin":  "admin-token-0123456789abcdef",
	"viewer": "viewer-token-0123456789abcdef",
	"a1":     "agent-a1-token-0123456789abcdef",
	"a2":     "agent-a2-token-0123456789abcdef",
}

// secureBundle is a coordinator with TLS (client certificates requested) and tokens.
type secureBundle struct {
	*testBundle
	addr  string
	pki   string
	st    store.Store
	conns map[string]*grpc.ClientConn // by token name; "" has no token
}

func setupSecure(t *testing.T, mutate func(*config.Config)) *secureBundle {
	t.Helper()
	pki := t.TempDir()
	_, err := tlsutil.GenerateDev(pki, tlsutil.DevOptions{})
	require.NoError(t, err)
	tokensFile := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(tokensFile, []byte(fmt.Sprintf("admin admin %s\nviewer viewer %s\nagent a1 %s\nagent a2 %s\n",
		auth.Hash(testSecrets["admin"]), auth.Hash(testSecrets["viewer"]), auth.Hash(testSecrets["a1"]), auth.Hash(testSecrets["a2"]))), 0o600))
	tokens, err := auth.LoadTokens(tokensFile)
	require.NoError(t, err)
	reloader, err := tlsutil.NewReloader(tlsutil.ServerOptions{CertFile: filepath.Join(pki, tlsutil.ServerFile),
		KeyFile: filepath.Join(pki, tlsutil.ServerKeyFile), ClientCAFile: filepath.Join(pki, tlsutil.CAFile)})
	require.NoError(t, err)

	cfg := config.Default()
	cfg.Dossiers = filepath.Join(t.TempDir(), "dossiers")
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
	srv.SetSecurity(Security{TLS: reloader.Config(), Guard: auth.NewGuard(tokens)})
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, lis, nil) }()

	b := &secureBundle{addr: lis.Addr().String(), pki: pki, st: st, conns: map[string]*grpc.ClientConn{}}
	for _, name := range []string{"", "admin", "viewer", "a1", "a2"} {
		o := clientcreds.Options{Addr: b.addr, CAFile: filepath.Join(pki, tlsutil.CAFile), Token: testSecrets[name]}
		if strings.HasPrefix(name, "a") && name != "admin" {
			o.CertFile, o.KeyFile = filepath.Join(pki, tlsutil.AgentFile), filepath.Join(pki, tlsutil.AgentKeyFile)
		}
		opts, err := clientcreds.DialOptions(o)
		require.NoError(t, err)
		conn, err := grpc.NewClient(b.addr, opts...)
		require.NoError(t, err)
		b.conns[name] = conn
	}
	t.Cleanup(func() {
		for _, c := range b.conns {
			c.Close()
		}
		cancel()
		require.NoError(t, <-done)
		st.Close()
	})
	b.testBundle = &testBundle{ctx: ctx, srv: srv, conn: b.conns["admin"], ctl: enrichv1.NewControlServiceClient(b.conns["admin"])}
	return b
}

// agentAs connects a raw agent over the connection carrying token's credentials.
func (b *secureBundle) agentAs(t *testing.T, token, id string) *rawAgent {
	t.Helper()
	tb := *b.testBundle
	tb.conn = b.conns[token]
	return tb.agent(t, id, 4, "entities")
}

// helloErr opens a session as id with token and returns the error that ends it, if any.
func (b *secureBundle) helloErr(t *testing.T, token, id string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	stream, err := enrichv1.NewAgentServiceClient(b.conns[token]).Connect(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Hello{Hello: &enrichv1.Hello{
		AgentId: id, InstanceTypes: []string{"entities"}, Slots: 1}}}))
	m, err := stream.Recv()
	if err != nil {
		return err
	}
	require.NotNil(t, m.GetWelcome())
	return nil
}

// callAny calls any method with an empty request and reads one answer.
func callAny(ctx context.Context, conn *grpc.ClientConn, fullMethod string, in, out protoreflect.MessageDescriptor, clientStream, serverStream bool) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: clientStream, ServerStreams: serverStream}, fullMethod)
	if err != nil {
		return err
	}
	if err := s.SendMsg(dynamicpb.NewMessage(in)); err != nil && !errors.Is(err, context.Canceled) {
		// The status arrives with RecvMsg.
		_ = err
	}
	_ = s.CloseSend()
	return s.RecvMsg(dynamicpb.NewMessage(out))
}

// TestEveryMethodHasARule walks every method of every service the coordinator serves (and
// every method in the enrich.v1 descriptors) and calls each with no token and with each
// role's token over TLS: each must be allowed or denied exactly as auth.Methods says. A new
// RPC without a rule fails here.
func TestEveryMethodHasARule(t *testing.T) {
	t.Parallel()
	b := setupSecure(t, nil)
	gs := b.srv.GRPCServer()
	served := gs.GetServiceInfo()
	gs.Stop()

	// Every enrich.v1 service in the descriptors is served.
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if fd.Package() != "enrich.v1" {
			return true
		}
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			_, ok := served[string(sd.FullName())]
			require.True(t, ok, "service %s is in the protos but not served", sd.FullName())
		}
		return true
	})

	callers := map[string]auth.Role{"": "", "admin": auth.RoleAdmin, "viewer": auth.RoleViewer, "a1": auth.RoleAgent}
	checked := map[string]bool{}
	for svc, info := range served {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
		require.NoError(t, err, svc)
		sd := d.(protoreflect.ServiceDescriptor)
		require.Equal(t, sd.Methods().Len(), len(info.Methods), "%s: descriptor and server disagree", svc)
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			rule, ok := auth.Methods[full]
			require.True(t, ok, "%s has no access rule in auth.Methods", full)
			checked[full] = true
			md := sd.Methods().ByName(protoreflect.Name(m.Name))
			require.NotNil(t, md, full)
			for name, role := range callers {
				err := callAny(b.ctx, b.conns[name], full, md.Input(), md.Output(), m.IsClientStream, m.IsServerStream)
				code := status.Code(err)
				switch {
				case rule.Public:
					require.NotContains(t, []codes.Code{codes.Unauthenticated, codes.PermissionDenied}, code, "%s by %q: %v", full, name, err)
				case name == "":
					require.Equal(t, codes.Unauthenticated, code, "%s without a token: %v", full, err)
				case rule.Allows(role):
					require.NotContains(t, []codes.Code{codes.Unauthenticated, codes.PermissionDenied}, code, "%s by %s: %v", full, role, err)
				default:
					require.Equal(t, codes.PermissionDenied, code, "%s by %s: %v", full, role, err)
				}
			}
		}
	}
	require.GreaterOrEqual(t, len(checked), 18, "every method of AgentService, ControlService, health and reflection")
	// A method that does not exist never reaches a handler (a served method without a rule is
	// denied by the guard: auth.TestUnlistedMethodIsDenied).
	err := b.conns["admin"].Invoke(b.ctx, "/enrich.v1.ControlService/Unknown", &enrichv1.GetBatchRequest{}, &enrichv1.GetBatchResponse{})
	require.Equal(t, codes.Unimplemented, status.Code(err), "%v", err)
}

func TestAgentIdentityIsBoundToItsToken(t *testing.T) {
	t.Parallel()
	b := setupSecure(t, nil)
	err := b.helloErr(t, "a1", "a2")
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	require.ErrorContains(t, err, `token "a1" may not connect as agent "a2"`)
	require.NoError(t, b.helloErr(t, "a1", "a1"))
	err = b.helloErr(t, "admin", "admin")
	require.Equal(t, codes.PermissionDenied, status.Code(err), "an operator's token cannot pose as an agent: %v", err)
}

// Before this check, any connected agent could finish, fail or keep alive another agent's
// lease by naming its item id and token.
func TestReportsOnAnotherAgentsLeaseAreRefused(t *testing.T) {
	t.Parallel()
	b := setupSecure(t, nil)
	batch := b.launch(t, "Club", 2)
	owner := b.agentAs(t, "a1", "a1")
	owner.credit(2)
	leases := owner.leases(300 * time.Millisecond)
	require.Len(t, leases, 2)
	thief := b.agentAs(t, "a2", "a2")

	// A result for a1's lease, sent by a2, is refused and stores nothing.
	thief.send(resultFor(t, leases[0]))
	ack := thief.ack()
	require.Equal(t, enrichv1.AckOutcome_ACK_OUTCOME_STALE, ack.GetOutcome())
	require.Contains(t, ack.GetMessage(), "refused: lease")
	// So is a failure, and a heartbeat naming the lease gets it cancelled on a2, not extended.
	thief.send(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Failure{Failure: &enrichv1.Failure{
		Lease: leases[1].GetLease(), Retryable: false, Message: "sabotage"}}})
	require.Contains(t, thief.ack().GetMessage(), "held by another agent")
	thief.send(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Heartbeat{Heartbeat: &enrichv1.Heartbeat{
		Leases: []*enrichv1.LeaseProgress{{Lease: leases[1].GetLease()}}}}})
	require.Eventually(t, func() bool {
		select {
		case m := <-thief.msgs:
			return m.GetCancel() != nil && m.GetCancel().GetReason() == "lease is held by another agent"
		default:
			return false
		}
	}, 5*time.Second, 10*time.Millisecond)

	for _, l := range leases {
		it, err := b.st.ItemByID(b.ctx, l.GetLease().GetItemId())
		require.NoError(t, err)
		require.Equal(t, store.ItemLeased, it.State, "stored state is intact")
		require.Equal(t, "a1", it.AgentID)
	}
	_, err := b.st.Result(b.ctx, leases[0].GetLease().GetItemId())
	require.ErrorIs(t, err, store.ErrNotFound)

	// The holder still delivers.
	owner.send(resultFor(t, leases[0]))
	require.Equal(t, enrichv1.AckOutcome_ACK_OUTCOME_ACCEPTED, owner.ack().GetOutcome())
	require.Equal(t, int32(1), b.progress(t, batch).GetSucceeded())
}

// progress sums the batch's instance progress (one instance type here).
func (b *secureBundle) progress(t *testing.T, id string) *enrichv1.InstanceProgress {
	t.Helper()
	res, err := b.ctl.GetBatch(b.ctx, &enrichv1.GetBatchRequest{BatchId: id})
	require.NoError(t, err)
	require.Len(t, res.GetBatch().GetInstances(), 1)
	return res.GetBatch().GetInstances()[0]
}

func TestLimitsAreEnforced(t *testing.T) {
	t.Parallel()
	b := setupSecure(t, func(c *config.Config) {
		c.Limits.MaxMessageBytes = 64 << 10
		c.Limits.MaxDossierBytes = 2 << 10
		c.Limits.MaxEntitiesPerBatch = 3
		c.Limits.MaxAttributes = 2
		c.Limits.MaxAttributeBytes = 100
		c.Limits.MaxStreamsPerAgent = 1
		c.Limits.HelloPerMinute = 1
		c.Limits.HelloBurst = 2
	})
	ent := func(i int, attrs map[string]string) *enrichv1.Entity {
		return &enrichv1.Entity{Id: fmt.Sprintf("e%d", i), Type: "Club", Name: "Club", SourceLine: int32(i + 1), Attributes: attrs}
	}
	prepare := func(ents ...*enrichv1.Entity) error {
		_, err := b.ctl.PrepareBatch(b.ctx, &enrichv1.PrepareBatchRequest{Entities: ents})
		return err
	}
	for name, tc := range map[string]struct {
		ents []*enrichv1.Entity
		code codes.Code
		want string
	}{
		"entities":       {[]*enrichv1.Entity{ent(0, nil), ent(1, nil), ent(2, nil), ent(3, nil)}, codes.InvalidArgument, "4 entities: more than limits.max_entities_per_batch (3)"},
		"attributes":     {[]*enrichv1.Entity{ent(0, map[string]string{"a": "1", "b": "2", "c": "3"})}, codes.InvalidArgument, "line 1: 3 attributes: more than limits.max_attributes (2)"},
		"attribute size": {[]*enrichv1.Entity{ent(0, map[string]string{"bio": strings.Repeat("x", 200)})}, codes.InvalidArgument, `line 1: attribute "bio" is 203 bytes: more than limits.max_attribute_bytes (100)`},
		"message size":   {[]*enrichv1.Entity{{Id: "big", Type: "Club", Name: strings.Repeat("n", 70<<10)}}, codes.ResourceExhausted, "larger than max"},
	} {
		err := prepare(tc.ents...)
		require.Equal(t, tc.code, status.Code(err), "%s: %v", name, err)
		require.ErrorContains(t, err, tc.want, name)
	}
	list, err := b.ctl.ListBatches(b.ctx, &enrichv1.ListBatchesRequest{})
	require.NoError(t, err)
	require.Empty(t, list.GetBatches(), "refused batches store nothing")

	// Streams per agent: a second open session of a1 is refused while the first is open.
	first := b.agentAs(t, "a1", "a1")
	err = b.helloErr(t, "a1", "a1")
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "limits.max_streams_per_agent (1)")

	// Hello rate, checked before the stream count: a2's burst of two is one session kept open
	// and one refused for streams; the third Hello is refused for its rate.
	b.agentAs(t, "a2", "a2")
	err = b.helloErr(t, "a2", "a2")
	require.ErrorContains(t, err, "limits.max_streams_per_agent (1)")
	err = b.helloErr(t, "a2", "a2")
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "more than limits.hello_per_minute (1, burst limits.hello_burst 2)")

	// Dossier size: an oversized dossier is rejected with the limit named; the item stays open.
	require.NoError(t, prepare(ent(0, nil)))
	list, err = b.ctl.ListBatches(b.ctx, &enrichv1.ListBatchesRequest{})
	require.NoError(t, err)
	_, err = b.ctl.LaunchBatch(b.ctx, &enrichv1.LaunchBatchRequest{BatchId: list.GetBatches()[0].GetId()})
	require.NoError(t, err)
	first.credit(1)
	leases := first.leases(300 * time.Millisecond)
	require.Len(t, leases, 1)
	first.send(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Result{Result: &enrichv1.Result{
		Lease: leases[0].GetLease(), DossierJson: []byte(`{"entity_id":"e0","pad":"` + strings.Repeat("x", 3<<10) + `"}`)}}})
	ack := first.ack()
	require.Equal(t, enrichv1.AckOutcome_ACK_OUTCOME_REJECTED, ack.GetOutcome())
	require.Contains(t, ack.GetMessage(), "more than limits.max_dossier_bytes (2048)")
	_, err = b.st.Result(b.ctx, leases[0].GetLease().GetItemId())
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestCheckExposure(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	w, err := CheckExposure(cfg, false)
	require.NoError(t, err)
	require.Empty(t, w, "loopback without TLS or tokens is local use: no warning")

	cfg.Listen = "0.0.0.0:7400"
	_, err = CheckExposure(cfg, true)
	require.ErrorContains(t, err, "refusing to serve listen 0.0.0.0:7400 without TLS")

	cfg.TLS.Insecure = true
	w, err = CheckExposure(cfg, false)
	require.NoError(t, err)
	require.Len(t, w, 2)
	require.Contains(t, w[0], "plaintext (--insecure)")
	require.Contains(t, w[1], "no authentication")

	cfg.TLS = config.TLSConfig{Cert: "c", Key: "k"}
	w, err = CheckExposure(cfg, true)
	require.NoError(t, err)
	require.Empty(t, w)
}

// A late result of an older lease is still accepted from the agent that held that lease (the
// work is real), and refused from any other agent.
func TestLateResultOnlyFromTheOlderLeasesHolder(t *testing.T) {
	t.Parallel()
	b := setupSecure(t, func(c *config.Config) {
		c.RetryStrategy.BaseDelay = config.Duration(time.Millisecond)
		c.RetryStrategy.MaxDelay = config.Duration(2 * time.Millisecond)
	})
	b.launch(t, "Club", 1)
	ctx, cancel := context.WithCancel(b.ctx)
	tb := *b.testBundle
	tb.conn = b.conns["a1"]
	first := tb.agentCtx(t, ctx, "a1", 1, nil, "entities")
	first.credit(1)
	old := first.leases(300 * time.Millisecond)
	require.Len(t, old, 1)
	cancel()

	// a1 comes back without the run: its lease is released and a2 takes the item.
	again := b.agentAs(t, "a1", "a1")
	other := b.agentAs(t, "a2", "a2")
	other.credit(1)
	var newer []*enrichv1.Lease
	require.Eventually(t, func() bool {
		newer = append(newer, other.leases(100*time.Millisecond)...)
		return len(newer) == 1
	}, 10*time.Second, 10*time.Millisecond)
	require.Greater(t, newer[0].GetLease().GetToken(), old[0].GetLease().GetToken())

	other.send(resultFor(t, old[0]))
	ack := other.ack()
	require.Equal(t, enrichv1.AckOutcome_ACK_OUTCOME_STALE, ack.GetOutcome())
	require.Contains(t, ack.GetMessage(), "was granted to another agent")

	again.send(resultFor(t, old[0]))
	require.Equal(t, enrichv1.AckOutcome_ACK_OUTCOME_ACCEPTED, again.ack().GetOutcome(), "the older lease's holder wins")
}
