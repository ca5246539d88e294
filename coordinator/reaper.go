package coordinator

import (
	"context"
	"time"

	"github.com/sportsintel/enrich/coordinator/store"
)

func (s *Server) reapLoop(ctx context.Context) {
	interval := min(max(s.cfg.Lease.TTL.D()/10, 100*time.Millisecond), 5*time.Second)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.reap(ctx)
		}
	}
}

// reap returns expired leases to pending and tells their holders, if still connected, to stop.
func (s *Server) reap(ctx context.Context) {
	res, err := s.st.ReapExpired(ctx, store.ReapParams{Now: s.now(), RetryDelay: s.retryDelay})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Named("reaper").Error("reap expired leases", "error", err)
		}
		return
	}
	if len(res.Expired) == 0 {
		return
	}
	s.log.Named("reaper").Info("leases expired", "count", len(res.Expired))
	touched := map[string]bool{}
	for _, h := range res.Expired {
		s.cancelLease(h, "lease expired")
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
