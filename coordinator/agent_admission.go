package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sportsintel/enrich/coordinator/auth"
	"github.com/sportsintel/enrich/coordinator/store"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// admitAgent decides whether a validated Hello may open a session: the token must allow the
// agent id, the agent id must be under its rate of new sessions, and under its count of open
// streams. release gives the stream's place back when the session ends.
func (s *Server) admitAgent(ctx context.Context, h *enrichv1.Hello) (release func(), err error) {
	agentID := h.GetAgentId()
	if id := auth.IdentityFrom(ctx); id != nil && !id.MayUseAgentID(agentID) {
		return nil, status.Errorf(codes.PermissionDenied, "token %q may not connect as agent %q: an agent token's name (or its agent_ids) is the agent id",
			id.Name, agentID)
	}
	if ok, wait := s.admit.hellos.Allow(agentID); !ok {
		return nil, status.Errorf(codes.ResourceExhausted, "agent %s reconnects too often: more than limits.hello_per_minute (%d, burst limits.hello_burst %d); retry in %s",
			agentID, s.cfg.Limits.HelloPerMinute, s.cfg.Limits.HelloBurst, helloRetryHint(wait))
	}
	release, ok := s.admit.streams.Acquire(agentID)
	if !ok {
		return nil, status.Errorf(codes.ResourceExhausted, "agent %s already has limits.max_streams_per_agent (%d) open streams",
			agentID, s.cfg.Limits.MaxStreamsPerAgent)
	}
	return release, nil
}

// ownsLease reports whether the session's agent was granted the lease it reports on. Without
// this check any agent could finish, fail or keep alive another agent's work by guessing an
// item id and token (both small integers). Unknown tokens (never granted) pass, so the store
// records them as stale as before. A store error also passes: refusing would Ack the report and
// make the agent drop a spooled, paid-for result, while the store still fences it by token.
func (s *Server) ownsLease(ctx context.Context, sess *session, ref store.LeaseRef) (bool, string) {
	if l, ok := sess.lease(ref.ItemID); ok && l.token == ref.Token {
		return true, ""
	}
	it, err := s.st.ItemByID(ctx, ref.ItemID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, fmt.Sprintf("unknown work item %d", ref.ItemID)
	case err != nil:
		return true, ""
	}
	switch {
	case ref.Token <= 0 || ref.Token > it.Token:
		return true, ""
	case ref.Token == it.Token:
		if it.AgentID == sess.agentID {
			return true, ""
		}
		return false, fmt.Sprintf("lease %d/%d is held by another agent", ref.ItemID, ref.Token)
	}
	// An older lease of the item (a late result after a re-lease): who was it granted to?
	holder, found, err := s.grants.holder(ctx, s.st, it.BatchID, ref)
	switch {
	case err != nil:
		return true, ""
	case !found:
		return false, fmt.Sprintf("lease %d/%d was never granted", ref.ItemID, ref.Token)
	case holder != sess.agentID:
		return false, fmt.Sprintf("lease %d/%d was granted to another agent", ref.ItemID, ref.Token)
	}
	return true, ""
}

// grantIndex answers "which agent was lease (item, token) granted to" from the batch's event
// history. Reading a batch's events takes long on a big batch, and late results come in bursts
// after a restart; a session blocked on that read misses heartbeats and its leases expire, which
// makes more late results. So one read serves every lookup of that batch for grantRescan.
type grantIndex struct {
	mu      sync.Mutex
	batches map[string]*batchGrants
}

type batchGrants struct {
	mu     sync.Mutex
	read   time.Time
	holder map[store.LeaseRef]string
}

const (
	grantRescan = 2 * time.Second
	grantForget = 10 * time.Minute
)

func (g *grantIndex) holder(ctx context.Context, st store.Store, batchID string, ref store.LeaseRef) (string, bool, error) {
	g.mu.Lock()
	if g.batches == nil {
		g.batches = map[string]*batchGrants{}
	}
	now := time.Now()
	for id, b := range g.batches {
		if b.mu.TryLock() {
			if now.Sub(b.read) > grantForget {
				delete(g.batches, id)
			}
			b.mu.Unlock()
		}
	}
	b, ok := g.batches[batchID]
	if !ok {
		b = &batchGrants{}
		g.batches[batchID] = b
	}
	g.mu.Unlock()

	// One reader per batch at a time; the others wait and use what it read.
	b.mu.Lock()
	defer b.mu.Unlock()
	if h, ok := b.holder[ref]; ok {
		return h, true, nil
	}
	if b.holder != nil && time.Since(b.read) < grantRescan {
		return "", false, nil
	}
	events, err := st.Events(ctx, batchID)
	if err != nil {
		return "", false, err
	}
	b.holder, b.read = make(map[store.LeaseRef]string, len(events)), time.Now()
	for _, e := range events {
		if e.Kind == store.EventGranted {
			b.holder[store.LeaseRef{ItemID: e.ItemID, Token: e.Token}] = e.AgentID
		}
	}
	h, ok := b.holder[ref]
	return h, ok, nil
}

// ownedOnly drops from refs the leases whose current holder is another agent, and tells the
// session to stop them: a heartbeat or Hello must not extend or adopt someone else's lease.
func (s *Server) ownedOnly(ctx context.Context, sess *session, refs []store.LeaseRef) []store.LeaseRef {
	out := refs[:0:0]
	for _, r := range refs {
		if l, ok := sess.lease(r.ItemID); ok && l.token == r.Token {
			out = append(out, r)
			continue
		}
		it, err := s.st.ItemByID(ctx, r.ItemID)
		if err == nil && it.Token == r.Token && it.AgentID != "" && it.AgentID != sess.agentID {
			s.log.Warn("agent listed a lease held by another agent; refused", "agent_id", sess.agentID,
				"item_id", r.ItemID, "token", r.Token)
			sess.send(cancelMsg(r, "lease is held by another agent"))
			continue
		}
		out = append(out, r)
	}
	return out
}

// refuseReport answers a result or failure for a lease the agent does not hold: nothing is
// stored, and the Ack (stale) lets the agent drop its spool copy instead of re-sending it
// forever.
func (s *Server) refuseReport(sess *session, ref store.LeaseRef, why string, log hclog.Logger) {
	log.Warn("report refused", "item_id", ref.ItemID, "token", ref.Token, "reason", why)
	sess.send(ackMsg(ref, enrichv1.AckOutcome_ACK_OUTCOME_STALE, "refused: "+why))
}

// checkDossierSize returns why a dossier is too large to accept, or "".
func (s *Server) checkDossierSize(doc []byte) string {
	if n, limit := len(doc), s.cfg.Limits.MaxDossierBytes; n > limit {
		return fmt.Sprintf("dossier is %d bytes: more than limits.max_dossier_bytes (%d)", n, limit)
	}
	return ""
}
