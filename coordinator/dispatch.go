package coordinator

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sportsintel/enrich/coordinator/store"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// dispatchTick is how often the dispatcher looks for work nobody woke it for: items whose retry
// backoff just ended.
const dispatchTick = 250 * time.Millisecond

func (s *Server) dispatchLoop(ctx context.Context) {
	log := s.log.Named("dispatch")
	tick := time.NewTicker(dispatchTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-tick.C:
		}
		for _, sess := range s.sessions.snapshot() {
			if err := s.dispatchTo(ctx, sess); err != nil && ctx.Err() == nil {
				log.Error("claim work", "agent_id", sess.agentID, "error", err)
			}
		}
	}
}

// dispatchTo claims as many items as the session has credits for and sends them as leases.
func (s *Server) dispatchTo(ctx context.Context, sess *session) error {
	sess.grantMu.Lock()
	defer sess.grantMu.Unlock()
	want := sess.wanted()
	if want == 0 {
		return nil
	}
	start := time.Now()
	items, err := s.st.Claim(ctx, store.ClaimParams{
		AgentID:       sess.agentID,
		SessionID:     sess.id,
		InstanceTypes: sess.types,
		Limit:         want,
		MaxConcurrent: s.maxConcurrent(),
		Timeouts:      s.timeouts(),
		LeaseTTL:      s.cfg.Lease.TTL.D(),
		Now:           s.now(),
	})
	if err != nil || len(items) == 0 {
		return err
	}
	s.metrics.claimSeconds.Observe(time.Since(start).Seconds())
	granted := make(map[int64]leaseInfo, len(items))
	for _, it := range items {
		granted[it.ID] = leaseInfo{token: it.Token, instanceType: it.InstanceType, entityID: it.EntityID}
	}
	// Recorded before sending, so a result that races back is matched to its lease.
	asked := sess.granted(granted)
	batches := map[string]bool{}
	for i, it := range items {
		lease, err := s.leaseMsg(it)
		if err != nil {
			s.log.Error("build lease", "item_id", it.ID, "error", err)
			continue
		}
		if !sess.send(lease) {
			// The session ended; the lease expires and the reaper hands the item out again.
			break
		}
		s.metrics.leasesGranted.WithLabelValues(it.InstanceType).Inc()
		if i < len(asked) {
			s.metrics.dispatchSeconds.Observe(time.Since(asked[i]).Seconds())
		}
		batches[it.BatchID] = true
	}
	for id := range batches {
		s.hub.publish(id)
	}
	return nil
}

func (s *Server) leaseMsg(it *store.Item) (*enrichv1.ConnectResponse, error) {
	var ent enrichv1.Entity
	if err := proto.Unmarshal(it.Entity, &ent); err != nil {
		return nil, err
	}
	ic, _ := s.instance(it.InstanceType)
	return &enrichv1.ConnectResponse{Msg: &enrichv1.ConnectResponse_Lease{Lease: &enrichv1.Lease{
		Lease:        &enrichv1.LeaseRef{ItemId: it.ID, Token: it.Token},
		BatchId:      it.BatchID,
		Entity:       &ent,
		InstanceType: it.InstanceType,
		Attempt:      int32(it.Attempt),
		Deadline:     timestamp(it.Deadline),
		Schema:       ic.Schema,
		Prompt:       ic.Prompt,
		MaxCostUsd:   it.BudgetLeftUSD,
	}}}, nil
}
