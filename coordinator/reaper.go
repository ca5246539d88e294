package coordinator

import (
	"context"
	"time"

	"github.com/sportsintel/enrich/coordinator/store"
)

// reaperLease names the leader lease that lets one coordinator of a fleet reap at a time.
const reaperLease = "reaper"

func (s *Server) reapInterval() time.Duration {
	return min(max(s.cfg.Lease.TTL.D()/10, 100*time.Millisecond), 5*time.Second)
}

// reaperLeaseTTL outlives a few missed ticks of the leader, so a slow tick does not hand the
// lease around, yet a dead leader's lease lapses within seconds.
func (s *Server) reaperLeaseTTL() time.Duration {
	return 3*s.reapInterval() + time.Second
}

func (s *Server) reapLoop(ctx context.Context) {
	tick := time.NewTicker(s.reapInterval())
	defer tick.Stop()
	defer func() {
		// A stopping leader hands over at once instead of leaving its lease to lapse.
		if l, ok := s.st.(store.Leadership); ok {
			bye, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = l.Resign(bye, reaperLease, s.fleetID())
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if s.reap(ctx) {
				s.sweepConsolidations(ctx)
			}
		}
	}
}

// leadsReaper reports whether this coordinator may reap now: always with a store it has to
// itself, and only while it holds the reaper's leader lease with a store shared by a fleet.
func (s *Server) leadsReaper(ctx context.Context) bool {
	l, ok := s.st.(store.Leadership)
	if !ok {
		return true
	}
	lead, err := l.TryLead(ctx, reaperLease, s.fleetID(), s.reaperLeaseTTL())
	if err != nil {
		if ctx.Err() == nil {
			s.log.Named("reaper").Warn("reaper leader lease", "error", err)
		}
		return false
	}
	return lead
}

// reap returns expired leases to pending and tells their holders, if still connected, to stop.
// In a fleet only the leader reaps; holders connected to another coordinator learn that their
// lease is gone from their next heartbeat there. It reports whether this coordinator leads.
func (s *Server) reap(ctx context.Context) bool {
	if !s.leadsReaper(ctx) {
		return false
	}
	res, err := s.st.ReapExpired(ctx, store.ReapParams{Now: s.now(), RetryDelay: s.retryDelay})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Named("reaper").Error("reap expired leases", "error", err)
		}
		return true
	}
	if len(res.Expired) == 0 {
		return true
	}
	s.log.Named("reaper").Info("leases expired", "count", len(res.Expired))
	s.leasesEnded(ctx, res, "lease expired")
	return true
}

// leasesEnded follows up leases the store ended without a report (expired or released): their
// holders are told to stop, watchers see the change, the dispatcher hands the items out again,
// and batches that thereby ended are finished.
func (s *Server) leasesEnded(ctx context.Context, res *store.ReapResult, reason string) {
	touched := map[string]bool{}
	for _, h := range res.Expired {
		s.cancelLease(h, reason)
		s.metrics.leasesExpired.Inc()
		touched[h.BatchID] = true
	}
	for id := range touched {
		s.hub.publish(id)
	}
	s.wakeDispatcher()
	s.batchesFinished(ctx, res.FinishedBatches)
	s.stopOnFinalExpiry(ctx, res.Expired)
}
