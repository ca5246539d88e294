package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sportsintel/enrich/coordinator/store"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
	"github.com/sportsintel/enrich/schemas"
)

type agentService struct {
	enrichv1.UnimplementedAgentServiceServer
	s *Server
}

var _ enrichv1.AgentServiceServer = (*agentService)(nil)

var agentIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)

// maxSlots bounds what one agent may ask for; a typo like --slots 40000 must not lease a batch.
const maxSlots = 1024

// helloTimeout bounds how long a new stream may stay silent before its Hello.
const helloTimeout = 30 * time.Second

func (a *agentService) Connect(stream enrichv1.AgentService_ConnectServer) error {
	s := a.s
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()

	hello, err := recvHello(ctx, stream)
	if err != nil {
		return err
	}
	if err := s.checkHello(hello); err != nil {
		return err
	}
	release, err := s.admitAgent(stream.Context(), hello)
	if err != nil {
		return err
	}
	defer release()
	sess := newSession(newID("s-"), hello, s.now(), cancel)
	log := s.log.Named("agent").With("agent_id", sess.agentID, "session_id", sess.id)
	if old := s.sessions.add(sess); old != nil {
		log.Info("agent reconnected; closing its previous session", "previous_session", old.id)
		old.cancel()
	}
	s.metrics.agentsConnected.Inc()
	defer func() {
		close(sess.done)
		s.sessions.remove(sess)
		s.metrics.agentsConnected.Dec()
		s.hub.publishAll()
		log.Info("agent disconnected")
	}()

	writeErr := make(chan error, 1)
	go func() { writeErr <- writeLoop(ctx, stream, sess) }()

	sess.send(&enrichv1.ConnectResponse{Msg: &enrichv1.ConnectResponse_Welcome{Welcome: &enrichv1.Welcome{
		SessionId:         sess.id,
		HeartbeatInterval: durationpb.New(s.cfg.Lease.HeartbeatInterval.D()),
		LeaseTtl:          durationpb.New(s.cfg.Lease.TTL.D()),
	}}})
	log.Info("agent connected", "types", sess.types, "slots", sess.slots, "version", sess.version,
		"hostname", sess.hostname, "held_leases", len(hello.GetHeldLeases()), "spooled", hello.GetSpooledResults())
	if held := hello.GetHeldLeases(); len(held) > 0 {
		s.adopt(ctx, sess, held, log)
	}
	s.releaseForgotten(ctx, sess, hello.GetHeldLeases(), log)
	// Before the read loop takes the session's first credit: a session to drain gets no lease.
	s.drainOnHello(ctx, sess, hello, log)
	s.hub.publishAll()
	s.rotateAtAge(ctx, sess, log)

	recvErr := make(chan error, 1)
	go func() { recvErr <- s.readLoop(ctx, stream, sess, log) }()
	select {
	case err = <-recvErr:
	case err = <-writeErr:
	case <-ctx.Done():
	}
	if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || ctx.Err() != nil {
		return nil
	}
	return err
}

func recvHello(ctx context.Context, stream enrichv1.AgentService_ConnectServer) (*enrichv1.Hello, error) {
	type recv struct {
		msg *enrichv1.ConnectRequest
		err error
	}
	ch := make(chan recv, 1)
	go func() {
		m, err := stream.Recv()
		ch <- recv{m, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		if r.msg.GetHello() == nil {
			return nil, status.Error(codes.InvalidArgument, "the first message of a session must be Hello")
		}
		return r.msg.GetHello(), nil
	case <-time.After(helloTimeout):
		return nil, status.Errorf(codes.DeadlineExceeded, "no Hello within %s", helloTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Server) checkHello(h *enrichv1.Hello) error {
	if !agentIDPattern.MatchString(h.GetAgentId()) {
		return status.Errorf(codes.InvalidArgument, "agent id %q: use 1-128 letters, digits and . _ : @ -", h.GetAgentId())
	}
	if len(h.GetInstanceTypes()) == 0 {
		return status.Errorf(codes.InvalidArgument, "agent %s serves no instance type (known: %v)", h.GetAgentId(), s.cfg.InstanceNames())
	}
	for i, t := range h.GetInstanceTypes() {
		name, ok := s.cfg.ResolveInstance(t)
		if !ok {
			return status.Errorf(codes.InvalidArgument, "agent %s: unknown instance type %q (known: %v)", h.GetAgentId(), t, s.cfg.InstanceNames())
		}
		h.InstanceTypes[i] = name
	}
	if h.GetSlots() < 1 || h.GetSlots() > maxSlots {
		return status.Errorf(codes.InvalidArgument, "agent %s: slots must be 1..%d, got %d", h.GetAgentId(), maxSlots, h.GetSlots())
	}
	return nil
}

// adopt re-binds leases an agent still runs after a reconnect; those it no longer holds are
// cancelled on the agent.
func (s *Server) adopt(ctx context.Context, sess *session, held []*enrichv1.LeaseRef, log hclog.Logger) {
	refs := s.ownedOnly(ctx, sess, leaseRefs(held))
	lost, err := s.st.ExtendLeases(ctx, store.ExtendLeasesParams{AgentID: sess.agentID, SessionID: sess.id, Leases: refs,
		LeaseTTL: s.cfg.Lease.TTL.D(), Now: s.now()})
	if err != nil {
		log.Error("adopt held leases", "error", err)
		return
	}
	lostSet := map[store.LeaseRef]bool{}
	for _, l := range lost {
		lostSet[l] = true
		sess.send(cancelMsg(l, "lease no longer held (expired or reassigned while disconnected)"))
	}
	for _, r := range refs {
		if !lostSet[r] {
			sess.hold(r.ItemID, leaseInfo{token: r.Token})
		}
	}
	log.Info("adopted held leases", "held", len(refs)-len(lost), "lost", len(lost))
}

// releaseForgotten ends, at once, the leases the store says this agent holds but its Hello did
// not list: a restarted agent lost those runs, and waiting for their TTL would only delay the
// retry.
func (s *Server) releaseForgotten(ctx context.Context, sess *session, held []*enrichv1.LeaseRef, log hclog.Logger) {
	owned, err := s.st.LeasesHeldBy(ctx, sess.agentID)
	if err != nil {
		log.Error("list leases held by the agent", "error", err)
		return
	}
	listed := map[store.LeaseRef]bool{}
	for _, r := range leaseRefs(held) {
		listed[r] = true
	}
	var forgotten []store.LeaseRef
	for _, h := range owned {
		if !listed[h.LeaseRef] {
			forgotten = append(forgotten, h.LeaseRef)
		}
	}
	s.releaseLeases(ctx, forgotten, "agent "+sess.agentID+" reconnected without this run (restarted or lost it)", log)
}

// releaseLeases ends leases their agent no longer runs and retries their items.
func (s *Server) releaseLeases(ctx context.Context, refs []store.LeaseRef, reason string, log hclog.Logger) {
	if len(refs) == 0 {
		return
	}
	res, err := s.st.ReleaseLeases(ctx, store.ReleaseParams{Leases: refs, Message: reason, Now: s.now(), RetryDelay: s.retryDelay})
	if err != nil {
		log.Error("release leases", "error", err)
		return
	}
	if len(res.Expired) == 0 {
		return
	}
	log.Warn("leases released", "count", len(res.Expired), "reason", reason)
	s.leasesEnded(ctx, res, "lease released: "+reason)
}

func writeLoop(ctx context.Context, stream enrichv1.AgentService_ConnectServer, sess *session) error {
	for {
		select {
		case msg := <-sess.out:
			if err := stream.Send(msg); err != nil {
				sess.cancel()
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Server) readLoop(ctx context.Context, stream enrichv1.AgentService_ConnectServer, sess *session, log hclog.Logger) error {
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		switch m := msg.Msg.(type) {
		case *enrichv1.ConnectRequest_Credit:
			sess.addCredit(int(m.Credit.GetCount()))
			s.wakeDispatcher()
		case *enrichv1.ConnectRequest_Heartbeat:
			s.onHeartbeat(ctx, sess, m.Heartbeat, log)
		case *enrichv1.ConnectRequest_Result:
			s.onResult(ctx, sess, m.Result, log)
		case *enrichv1.ConnectRequest_Failure:
			s.onFailure(ctx, sess, m.Failure, log)
		case *enrichv1.ConnectRequest_CancelAck:
			ref := m.CancelAck.GetLease()
			sess.release(ref.GetItemId(), ref.GetToken())
		case *enrichv1.ConnectRequest_Hello:
			return status.Error(codes.InvalidArgument, "Hello may only be sent once per session")
		default:
			return status.Errorf(codes.InvalidArgument, "unknown agent message %T", m)
		}
	}
}

func (s *Server) onHeartbeat(ctx context.Context, sess *session, hb *enrichv1.Heartbeat, log hclog.Logger) {
	if problem := keepHead(hb.GetHealthProblem(), 512); problem != "" && problem != sess.problem() {
		log.Warn("agent reports a health problem", "problem", problem)
	}
	sess.heartbeat(s.now(), keepHead(hb.GetHealthProblem(), 512))
	refs := make([]store.LeaseRef, 0, len(hb.GetLeases()))
	listed := make(map[int64]int64, len(hb.GetLeases()))
	for _, lp := range hb.GetLeases() {
		ref := store.LeaseRef{ItemID: lp.GetLease().GetItemId(), Token: lp.GetLease().GetToken()}
		refs = append(refs, ref)
		listed[ref.ItemID] = ref.Token
	}
	if gone := sess.unlisted(listed); len(gone) > 0 {
		s.releaseLeases(ctx, gone, "agent "+sess.agentID+" stopped reporting this lease in its heartbeats (no runner alive)", log)
	}
	if refs = s.ownedOnly(ctx, sess, refs); len(refs) == 0 {
		return
	}
	lost, err := s.st.ExtendLeases(ctx, store.ExtendLeasesParams{AgentID: sess.agentID, SessionID: sess.id, Leases: refs,
		LeaseTTL: s.cfg.Lease.TTL.D(), Now: s.now()})
	if err != nil {
		if ctx.Err() != nil {
			return // the session ended while the heartbeat was handled: nothing to extend
		}
		log.Error("extend leases", "error", err)
		return
	}
	for _, l := range lost {
		sess.release(l.ItemID, l.Token)
		sess.send(cancelMsg(l, "lease no longer held (expired, reassigned or cancelled)"))
	}
}

// onResult validates a dossier on the session's goroutine (so validation runs in parallel across
// agents) and queues it for the committer.
func (s *Server) onResult(ctx context.Context, sess *session, res *enrichv1.Result, log hclog.Logger) {
	ref := store.LeaseRef{ItemID: res.GetLease().GetItemId(), Token: res.GetLease().GetToken()}
	if ok, why := s.ownsLease(ctx, sess, ref); !ok {
		s.refuseReport(sess, ref, why, log)
		return
	}
	metrics := metricsFromProto(res.GetMetrics())
	problem := s.checkDossierSize(res.GetDossierJson())
	if problem == "" {
		problem = s.checkDossier(ctx, sess, ref.ItemID, res.GetDossierJson())
	}
	if problem != "" {
		log.Warn("dossier rejected", "item_id", ref.ItemID, "token", ref.Token, "reason", problem)
		s.queueReport(ctx, report{sess: sess, rejected: true, failure: &store.Failure{Lease: ref, AgentID: sess.agentID,
			Retryable: true, Message: "dossier rejected: " + problem, Metrics: metrics}})
		return
	}
	s.queueReport(ctx, report{sess: sess, completion: &store.Completion{Lease: ref, AgentID: sess.agentID,
		Dossier: res.GetDossierJson(), Metrics: metrics}})
}

func (s *Server) onFailure(ctx context.Context, sess *session, f *enrichv1.Failure, log hclog.Logger) {
	ref := store.LeaseRef{ItemID: f.GetLease().GetItemId(), Token: f.GetLease().GetToken()}
	if ok, why := s.ownsLease(ctx, sess, ref); !ok {
		s.refuseReport(sess, ref, why, log)
		return
	}
	msg := f.GetMessage()
	if msg == "" {
		msg = "runner failed without a message"
	}
	s.queueReport(ctx, report{sess: sess, failure: &store.Failure{
		Lease:      store.LeaseRef{ItemID: f.GetLease().GetItemId(), Token: f.GetLease().GetToken()},
		AgentID:    sess.agentID,
		Retryable:  f.GetRetryable(),
		Message:    keepHead(msg, 4096),
		StderrTail: keepTail(f.GetStderrTail(), 8192),
		Metrics:    metricsFromProto(f.GetMetrics()),
	}})
}

// checkDossier returns why a dossier cannot be accepted for the item, or "".
func (s *Server) checkDossier(ctx context.Context, sess *session, itemID int64, doc []byte) string {
	info, ok := sess.lease(itemID)
	if !ok || info.instanceType == "" {
		// A result re-sent from an agent's spool after a reconnect: look the item up.
		it, err := s.st.ItemByID(ctx, itemID)
		if err != nil {
			return fmt.Sprintf("unknown work item %d", itemID)
		}
		info = leaseInfo{instanceType: it.InstanceType, entityID: it.EntityID}
	}
	ic, ok := s.instance(info.instanceType)
	if !ok {
		return fmt.Sprintf("instance type %q is no longer configured", info.instanceType)
	}
	if err := schemas.ValidateEntity(ic.Schema, doc, info.entityID); err != nil {
		return err.Error()
	}
	return ""
}

// keepHead bounds a message to its first n bytes, keepTail a log to its last n bytes; both keep
// the text valid UTF-8 where the cut splits a rune.
func keepHead(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

func keepTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + strings.ToValidUTF8(s[len(s)-n:], "")
}

func cancelMsg(l store.LeaseRef, reason string) *enrichv1.ConnectResponse {
	return &enrichv1.ConnectResponse{Msg: &enrichv1.ConnectResponse_Cancel{Cancel: &enrichv1.Cancel{
		Lease: &enrichv1.LeaseRef{ItemId: l.ItemID, Token: l.Token}, Reason: reason}}}
}

func leaseRefs(refs []*enrichv1.LeaseRef) []store.LeaseRef {
	out := make([]store.LeaseRef, 0, len(refs))
	for _, r := range refs {
		out = append(out, store.LeaseRef{ItemID: r.GetItemId(), Token: r.GetToken()})
	}
	return out
}
