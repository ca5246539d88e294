package coordinator

import (
	"sync"
	"time"
)

// graphRetries plans the automatic retries of consolidations whose graph write gave up because
// Neo4j stayed unreachable for the whole neo4j.retry_timeout. The dossiers and the report are
// written by then; only the graph is behind, and the write resumes where it stopped (the sink
// skips committed rows by their content hash), so trying again later is cheap and safe.
//
// The plan lives in this process: a restarted coordinator rebuilds it from the recorded errors
// (resumeConsolidation), starting the backoff over. In a fleet, the coordinator that ran the
// consolidation holds its plan; the others show no retry time for it, and the leader's sweep
// (sweepConsolidations) leaves it alone: without the plan's attempt count in the store, a fleet
// taking over plans whose coordinator died could not tell them from plans whose retries are
// spent, and would retry those for ever. If that coordinator dies, the retry waits for a start
// or an enrichctl consolidate. The zero value is ready.
type graphRetries struct {
	mu    sync.Mutex
	plans map[string]*graphRetry
}

type graphRetry struct {
	attempt int       // retries planned for this outage so far
	at      time.Time // when the current one runs; zero once they are spent
	cancel  chan struct{}
}

// plan schedules the next retry of batch id, unless the retries allowed for one outage are
// spent (neo4j.consolidation_retries) or the coordinator is stopping.
func (g *graphRetries) plan(s *Server, id string) {
	n := s.cfg.Neo4j
	ctx := s.runCtx
	if ctx == nil || ctx.Err() != nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.plans == nil {
		g.plans = map[string]*graphRetry{}
	}
	r := g.plans[id]
	if r == nil {
		r = &graphRetry{}
		g.plans[id] = r
	}
	r.stop()
	log := s.log.Named("consolidate").With("batch_id", id)
	if r.attempt >= n.ConsolidationRetries {
		r.at = time.Time{}
		log.Error("graph still unreachable and the automatic consolidation retries are spent; run enrichctl consolidate",
			"retries", r.attempt)
		return
	}
	r.attempt++
	delay := n.RetryDelay(r.attempt)
	r.at = s.now().Add(delay)
	cancel := make(chan struct{})
	r.cancel = cancel
	log.Warn("graph unreachable; consolidating again later", "retry", r.attempt, "of", n.ConsolidationRetries, "in", delay)
	// Under goBackground, so shutdown waits for a retry that is running and stops one waiting.
	s.goBackground(func() {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return
		case <-cancel:
			return // done or planned anew meanwhile
		case <-t.C:
		}
		_, _ = s.consolidate(ctx, id)
	})
}

func (r *graphRetry) stop() {
	if r.cancel != nil {
		close(r.cancel)
		r.cancel = nil
	}
}

// done forgets id's plan: its graph is written.
func (g *graphRetries) done(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r := g.plans[id]; r != nil {
		r.stop()
	}
	delete(g.plans, id)
}

// next is when id's consolidation runs again by itself (zero: not planned here).
func (g *graphRetries) next(id string) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r := g.plans[id]; r != nil {
		return r.at
	}
	return time.Time{}
}
