package coordinator

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sportsintel/enrich/coordinator/store"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// An operator's drain reaches an agent through the coordinator that serves its stream: only
// that coordinator may send on the stream. `enrichctl agents drain` may land on any coordinator
// behind the balancer, so one that does not hold the stream records the request in the store
// (store.AgentDrains), under the agent's id. The coordinator serving the agent acts on it at its
// next registry refresh, within registryInterval; a coordinator that accepts a new session of the
// agent acts on it before it grants that session anything. So a request made while the agent
// moves to another coordinator follows it there. The request is removed once a Drain went out.
//
// A drained agent that reconnects (to finish and deliver its runs, e.g. after its coordinator
// died) says so in its Hello, and its new session is draining from the start: no new leases.
// A restarted agent process is not draining and takes work again.

// drainReason is what the agent logs when an operator drains it.
const drainReason = "drained by operator"

// drainRequestLapse is how long a drain request waits for the agent to connect somewhere. An
// agent gone for longer has died rather than moved, and whatever starts later under its id is
// a new process the operator did not ask about.
const drainRequestLapse = 10 * time.Minute

// drainSession stops leasing to the session and tells its agent to finish what it runs and exit.
// It reports whether the Drain went out on a live session.
func (s *Server) drainSession(sess *session) bool {
	return sess.stopGranting(&enrichv1.ConnectResponse{Msg: &enrichv1.ConnectResponse_Drain{Drain: &enrichv1.Drain{Reason: drainReason, Exit: true}}})
}

// applyDrainRequests drains the sessions of this coordinator whose agents another coordinator
// was asked to drain. It runs before the registry refresh, so that refresh already shows them
// draining.
func (s *Server) applyDrainRequests(ctx context.Context, drains store.AgentDrains, log hclog.Logger) {
	var ids []string
	for _, sess := range s.sessions.snapshot() {
		sess.mu.Lock()
		draining := sess.draining
		sess.mu.Unlock()
		if !draining {
			ids = append(ids, sess.agentID)
		}
	}
	if len(ids) == 0 {
		return
	}
	reqs, err := drains.DrainRequests(ctx, ids, s.now().Add(-drainRequestLapse))
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("read drain requests", "error", err)
		}
		return
	}
	for _, agentID := range reqs {
		if sess := s.sessions.agent(agentID); sess != nil {
			s.drainRequested(ctx, drains, sess, log)
		}
	}
}

// drainRequested drains a session whose agent has a drain request and, once the Drain went out,
// removes the request. A session that ended first leaves it for the agent's next session.
func (s *Server) drainRequested(ctx context.Context, drains store.AgentDrains, sess *session, log hclog.Logger) {
	if !s.drainSession(sess) {
		return
	}
	log.Info("agent drained at an operator's request made through another coordinator", "agent_id", sess.agentID, "session_id", sess.id)
	if err := drains.DrainSent(ctx, sess.agentID); err != nil && ctx.Err() == nil {
		// The request stays: a later session of the agent is drained again, which is what it asked.
		log.Warn("clear drain request", "agent_id", sess.agentID, "error", err)
	}
}

// drainOnHello settles, before a new session is granted anything, whether it starts draining:
// its agent was draining already, or an operator asked for a drain that no coordinator has
// delivered yet.
func (s *Server) drainOnHello(ctx context.Context, sess *session, hello *enrichv1.Hello, log hclog.Logger) {
	drains, shared := s.st.(store.AgentDrains)
	if hello.GetDraining() {
		sess.drain()
		log.Info("agent reconnected while draining; it gets no new leases")
		// A request made meanwhile is already satisfied; left in place, it would drain a new
		// process started under the same id.
		if shared {
			if err := drains.DrainSent(ctx, sess.agentID); err != nil && ctx.Err() == nil {
				log.Warn("clear drain request", "error", err)
			}
		}
		return
	}
	if !shared {
		return
	}
	reqs, err := drains.DrainRequests(ctx, []string{sess.agentID}, s.now().Add(-drainRequestLapse))
	if err != nil {
		// The next registry refresh tries again, within registryInterval.
		if ctx.Err() == nil {
			log.Warn("read drain request", "error", err)
		}
		return
	}
	if len(reqs) > 0 {
		s.drainRequested(ctx, drains, sess, log)
	}
}

// forwardDrain asks the coordinator serving agentID's stream to drain it and returns the agent
// as the registry shows it.
func (s *Server) forwardDrain(ctx context.Context, agentID string) (*enrichv1.AgentInfo, bool, error) {
	drains, ok := s.st.(store.AgentDrains)
	if !ok {
		return nil, false, nil
	}
	now := s.now()
	rec, err := drains.RequestDrain(ctx, agentID, now.Add(-registryStale), now)
	if err != nil {
		return nil, false, err
	}
	s.log.Named("control").Info("agent drain forwarded to the coordinator serving it", "agent_id", agentID,
		"coordinator", rec.Coordinator, "session_id", rec.SessionID)
	return recordInfo(rec), true, nil
}
