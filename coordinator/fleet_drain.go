package coordinator

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"github.com/sportsintel/enrich/coordinator/store"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// An operator's drain reaches an agent through the coordinator that serves its stream: only
// that coordinator may send on the stream. `enrichctl agents drain` may land on any coordinator
// behind the balancer, so one that does not hold the stream records the request in the shared
// registry (store.AgentDrains) and the holder acts on it at its next registry refresh, within
// registryInterval.

// drainReason is what the agent logs when an operator drains it.
const drainReason = "drained by operator"

// drainSession stops leasing to the session and tells its agent to finish what it runs and exit.
func (s *Server) drainSession(sess *session) {
	sess.drain()
	sess.send(&enrichv1.ConnectResponse{Msg: &enrichv1.ConnectResponse_Drain{Drain: &enrichv1.Drain{Reason: drainReason, Exit: true}}})
}

// applyDrainRequests drains the sessions of this coordinator that another coordinator was asked
// to drain. It runs before the registry refresh, so that refresh already shows them draining.
func (s *Server) applyDrainRequests(ctx context.Context, drains store.AgentDrains, log hclog.Logger) {
	var ids []string
	for _, sess := range s.sessions.snapshot() {
		sess.mu.Lock()
		draining := sess.draining
		sess.mu.Unlock()
		if !draining {
			ids = append(ids, sess.id)
		}
	}
	if len(ids) == 0 {
		return
	}
	reqs, err := drains.DrainRequests(ctx, ids)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("read drain requests", "error", err)
		}
		return
	}
	for _, id := range reqs {
		if sess := s.sessions.get(id); sess != nil {
			s.drainSession(sess)
			log.Info("agent drained at another coordinator's request", "agent_id", sess.agentID, "session_id", id)
		}
	}
}

// forwardDrain asks the coordinator serving agentID's stream to drain it and returns the agent
// as the registry shows it.
func (s *Server) forwardDrain(ctx context.Context, agentID string) (*enrichv1.AgentInfo, bool, error) {
	drains, ok := s.st.(store.AgentDrains)
	if !ok {
		return nil, false, nil
	}
	rec, err := drains.RequestDrain(ctx, agentID, s.now().Add(-registryStale))
	if err != nil {
		return nil, false, err
	}
	s.log.Named("control").Info("agent drain forwarded to the coordinator serving it", "agent_id", agentID,
		"coordinator", rec.Coordinator, "session_id", rec.SessionID)
	return recordInfo(rec), true, nil
}
