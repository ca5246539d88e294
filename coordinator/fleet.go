package coordinator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sportsintel/enrich/coordinator/store"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// Several coordinators can share one store (PostgreSQL) behind a load balancer. Any of them
// serves any agent stream and any enrichctl call; what they must agree on lives in the store:
//   - the agent registry: each coordinator publishes the sessions it serves every
//     registryInterval, so `enrichctl agents` on any of them lists the whole fleet;
//   - the reaper's leader lease (reaper.go): one coordinator at a time returns expired leases
//     and consolidates ended batches whose coordinator died first (consolidation.go);
//   - the change feed: batch changes committed by one coordinator wake the watchers and the
//     dispatcher of the others at once instead of at their next poll.
// With a store that implements none of this (SQLite: one coordinator per file) the loop only
// keeps the health status in step with the store's reachability.

// registryInterval is how often a coordinator refreshes its agents in the shared registry.
const registryInterval = time.Second

// registryStale is how long an agent row outlives its coordinator's last refresh: a coordinator
// killed without a goodbye leaves rows that are hidden after this and then pruned.
const registryStale = 15 * time.Second

// storeCheckInterval is how often the store's reachability is checked for the health service.
const storeCheckInterval = time.Second

// fleetID names this coordinator process in leader leases: unique across hosts and restarts.
func (s *Server) fleetID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%p", host, os.Getpid(), s)
}

// fleetLoop runs until ctx ends; it is started by Run.
func (s *Server) fleetLoop(ctx context.Context) {
	log := s.log.Named("fleet")
	if feed, ok := s.st.(store.ChangeFeed); ok {
		s.goBackground(func() {
			_ = feed.FollowChanges(ctx, func(batchID string) {
				s.hub.publish(batchID)
				s.wakeDispatcher()
			})
		})
	}
	reg, _ := s.st.(store.AgentRegistry)
	published := map[string]string{} // agent id -> session id this coordinator last published
	tick := time.NewTicker(min(registryInterval, storeCheckInterval))
	defer tick.Stop()
	var lastPrune time.Time
	healthy := true
	for {
		select {
		case <-ctx.Done():
			if reg != nil {
				// Agents of a stopping coordinator reconnect elsewhere; their rows there replace these.
				bye, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				for agent, sess := range published {
					_ = reg.RemoveAgent(bye, agent, sess)
				}
				cancel()
			}
			return
		case <-tick.C:
		}
		healthy = s.checkStore(ctx, healthy, log)
		if reg == nil || !healthy {
			continue
		}
		if drains, ok := reg.(store.AgentDrains); ok {
			s.applyDrainRequests(ctx, drains, log)
		}
		s.publishAgents(ctx, reg, published, log)
		if now := s.now(); now.Sub(lastPrune) > registryStale {
			lastPrune = now
			if n, err := reg.PruneAgents(ctx, now.Add(-4*registryStale)); err != nil && ctx.Err() == nil {
				log.Warn("prune agent registry", "error", err)
			} else if n > 0 {
				log.Info("pruned agents of coordinators that stopped refreshing them", "count", n)
			}
		}
	}
}

// checkStore pings the store and reports every gRPC service not serving while it is unreachable,
// so a load balancer's health check takes this coordinator out of rotation.
func (s *Server) checkStore(ctx context.Context, wasHealthy bool, log hclog.Logger) bool {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := s.st.Ping(pctx)
	cancel()
	if ctx.Err() != nil {
		return wasHealthy
	}
	healthy := err == nil
	if healthy == wasHealthy {
		return healthy
	}
	status := healthpb.HealthCheckResponse_SERVING
	if healthy {
		log.Info("store reachable again; serving")
	} else {
		status = healthpb.HealthCheckResponse_NOT_SERVING
		log.Error("store unreachable; reporting not serving", "error", err)
	}
	for _, svc := range []string{"", enrichv1.AgentService_ServiceDesc.ServiceName, enrichv1.ControlService_ServiceDesc.ServiceName} {
		s.health.SetServingStatus(svc, status)
	}
	return healthy
}

// publishAgents writes this coordinator's sessions to the registry in one round trip and removes
// the ones that ended since the last call.
func (s *Server) publishAgents(ctx context.Context, reg store.AgentRegistry, published map[string]string, log hclog.Logger) {
	now := s.now()
	sessions := s.sessions.snapshot()
	recs := make([]store.AgentRecord, 0, len(sessions))
	current := make(map[string]string, len(sessions))
	for _, sess := range sessions {
		info := sess.info(s.advertised)
		recs = append(recs, store.AgentRecord{
			AgentID: info.GetAgentId(), SessionID: info.GetSessionId(), Coordinator: s.advertised, Hostname: info.GetHostname(),
			Version: info.GetVersion(), InstanceTypes: info.GetInstanceTypes(), Slots: int(info.GetSlots()),
			InFlight: int(info.GetInFlight()), Labels: info.GetLabels(), Draining: info.GetDraining(),
			ConnectedAt: info.GetConnectedAt().AsTime(), LastHeartbeat: info.GetLastHeartbeat().AsTime(), LastSeen: now,
		})
		current[info.GetAgentId()] = info.GetSessionId()
	}
	if err := reg.PutAgents(ctx, recs); err != nil {
		if ctx.Err() == nil {
			log.Warn("publish agents to the registry", "error", err)
		}
		return
	}
	for agent, sess := range published {
		if current[agent] != sess {
			if err := reg.RemoveAgent(ctx, agent, sess); err != nil {
				log.Warn("remove agent from the registry", "agent_id", agent, "error", err)
				continue
			}
		}
		delete(published, agent)
	}
	for agent, sess := range current {
		published[agent] = sess
	}
}

// fleetAgents lists the agents connected to every coordinator sharing the store: this
// coordinator's own sessions as they are now, the others' as their coordinators last published
// them. Without a shared registry it is this coordinator's sessions.
func (s *Server) fleetAgents(ctx context.Context) ([]*enrichv1.AgentInfo, error) {
	byID := map[string]*enrichv1.AgentInfo{}
	if reg, ok := s.st.(store.AgentRegistry); ok {
		recs, err := reg.ListAgents(ctx, s.now().Add(-registryStale))
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			byID[r.AgentID] = recordInfo(r)
		}
	}
	for _, sess := range s.sessions.snapshot() {
		byID[sess.agentID] = sess.info(s.advertised)
	}
	out := make([]*enrichv1.AgentInfo, 0, len(byID))
	for _, a := range byID {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b *enrichv1.AgentInfo) int { return strings.Compare(a.GetAgentId(), b.GetAgentId()) })
	return out, nil
}

// recordInfo is an agent as its coordinator last published it to the registry.
func recordInfo(r store.AgentRecord) *enrichv1.AgentInfo {
	return &enrichv1.AgentInfo{
		AgentId: r.AgentID, SessionId: r.SessionID, Hostname: r.Hostname, Version: r.Version,
		InstanceTypes: r.InstanceTypes, Slots: int32(r.Slots), InFlight: int32(r.InFlight),
		ConnectedAt: timestamp(r.ConnectedAt), LastHeartbeat: timestamp(r.LastHeartbeat),
		Draining: r.Draining, Labels: r.Labels, Coordinator: r.Coordinator,
	}
}

// connectionAge is the keepalive MaxConnectionAge and its grace; zero age means no limit.
type connectionAge struct{ age, grace time.Duration }

// SetConnectionAge makes the gRPC server end every client connection after age (grpc-go adds
// ±10% jitter so a fleet's agents do not reconnect in step): it sends GOAWAY, waits up to grace
// for open streams, then closes the connection. Agents reconnect through the load balancer,
// often to another coordinator, and re-adopt the leases they hold, so a coordinator added to a
// fleet gets its share of long-lived streams. Call it before Run; age 0 disables the limit.
func (s *Server) SetConnectionAge(age, grace time.Duration) {
	s.connAge = connectionAge{age: age, grace: grace}
}

// rotateReason tells an agent why its stream is being moved.
const rotateReason = "stream reached the coordinator's max connection age: reconnect to rebalance"

// rotateAtAge moves an agent's stream before the gRPC server's connection age cuts it. A cut
// stream loses the leases granted in its last moments (the agent never sees them, and when it
// reconnects without them they are released and count as attempts). So before the age (at
// 70-85% of it, clear of grpc-go's own ±10% jitter, spread so a fleet's agents do not move in
// step) the session stops taking leases and tells the agent to move on (Drain without exit);
// the agent keeps reading for a second, then dials a new connection, which the balancer may
// send anywhere, and its runs are adopted there. Agents dial a new connection for every
// session, so a session's age is its connection's. An agent that does not move on is cut after
// the grace, as grpc-go would.
func (s *Server) rotateAtAge(ctx context.Context, sess *session, log hclog.Logger) {
	age := s.connAge.age
	if age <= 0 {
		return
	}
	after := time.Duration(float64(age) * (0.7 + 0.15*rand.Float64()))
	go func() {
		t := time.NewTimer(after)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		log.Info("asking the agent to reconnect", "reason", rotateReason, "after", after.Round(time.Second))
		sess.stopGranting(&enrichv1.ConnectResponse{Msg: &enrichv1.ConnectResponse_Drain{Drain: &enrichv1.Drain{Reason: rotateReason}}})
		t.Reset(max(s.connAge.grace, 2*time.Second))
		select {
		case <-ctx.Done():
		case <-t.C:
			log.Warn("agent did not reconnect after being asked; closing its stream")
			sess.cancel()
		}
	}()
}
