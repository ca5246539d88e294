package coordinator

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/sportsintel/enrich/coordinator/consolidate"
	"github.com/sportsintel/enrich/coordinator/graph"
	"github.com/sportsintel/enrich/coordinator/store"
)

// batchesFinished records batches that just ended and, unless disabled, consolidates them.
func (s *Server) batchesFinished(ctx context.Context, ids []string) {
	for _, id := range ids {
		b, err := s.st.GetBatch(ctx, id)
		if err != nil {
			s.log.Error("read finished batch", "batch_id", id, "error", err)
			continue
		}
		s.metrics.batchesFinished.WithLabelValues(string(b.State)).Inc()
		s.log.Named("batch").Info("batch finished", "batch_id", id, "state", b.State)
		s.hub.publish(id)
		if s.cfg.Consolidation.AutoEnabled() {
			s.goBackground(func() { _, _ = s.consolidate(s.runCtx, id) })
		}
	}
}

// resumeConsolidation consolidates batches that ended while no coordinator was there to do it,
// and plans a new try for those whose graph write gave up on an unreachable server.
func (s *Server) resumeConsolidation(ctx context.Context) {
	if !s.cfg.Consolidation.AutoEnabled() {
		return
	}
	list, err := s.st.ListBatches(ctx, 1000)
	if err != nil {
		s.log.Error("list batches to consolidate", "error", err)
		return
	}
	for _, b := range list {
		switch {
		case !b.State.Terminal() || !b.ConsolidatedAt.IsZero():
		case b.ConsolidationError == "":
			s.goBackground(func() { s.consolidateUnlessDone(ctx, b.ID) })
		case graph.Unavailable(b.ConsolidationError) && s.cfg.Neo4j.Enabled():
			s.graphRetries.plan(s, b.ID)
		}
	}
}

// consolidate writes a batch's outputs (PDFs too when the configuration asks for them) into the
// configured graph and records the outcome on the batch.
func (s *Server) consolidate(ctx context.Context, id string) (*consolidate.Summary, error) {
	return s.consolidateWith(ctx, id, s.cfg.Consolidation.PDF, nil)
}

// consolidateWith is consolidate with PDF export chosen by the caller and, when target is set,
// the graph written into that server instead of the configured one. It waits while another
// consolidation of the batch runs, here or on another coordinator of the fleet.
func (s *Server) consolidateWith(ctx context.Context, id string, pdf bool, target *graph.Conn) (*consolidate.Summary, error) {
	release, err := s.claimConsolidation(ctx, id, true)
	if err != nil {
		return nil, err
	}
	defer release()
	return s.consolidateClaimed(ctx, id, pdf, target)
}

// consolidateUnlessDone consolidates an ended batch that nobody has consolidated, unless another
// consolidation of it runs: the batches it is called for were read before the claim, and one
// consolidated by another coordinator since must not be written twice.
func (s *Server) consolidateUnlessDone(ctx context.Context, id string) {
	release, err := s.claimConsolidation(ctx, id, false)
	if err != nil || release == nil {
		return
	}
	defer release()
	b, err := s.st.GetBatch(ctx, id)
	if err != nil || !b.State.Terminal() || !b.ConsolidatedAt.IsZero() || b.ConsolidationError != "" {
		return
	}
	_, _ = s.consolidateClaimed(ctx, id, s.cfg.Consolidation.PDF, nil)
}

// consolidationClaimTTL is how long a consolidation claim outlives its last renewal: a
// coordinator that dies mid-consolidation holds the batch back no longer than this.
const consolidationClaimTTL = 30 * time.Second

// claimConsolidation takes batch id's consolidation claim (store.Consolidations) and keeps it
// renewed until the returned release is called. While another consolidation holds it, it waits
// if wait is set and otherwise returns a nil release.
func (s *Server) claimConsolidation(ctx context.Context, id string, wait bool) (func(), error) {
	owner := s.fleetID() + "/" + newID("c-")
	log := s.log.Named("consolidate").With("batch_id", id)
	claim := func(ctx context.Context) (bool, error) {
		return s.st.ClaimConsolidation(ctx, store.ClaimConsolidationParams{ID: id, Owner: owner, Now: s.now(), TTL: consolidationClaimTTL})
	}
	for logged := false; ; {
		won, err := claim(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("claim consolidation", "error", err)
			}
			return nil, err
		}
		if won {
			break
		}
		if !wait {
			log.Debug("batch is being consolidated elsewhere; leaving it")
			return nil, nil
		}
		if !logged {
			log.Info("batch is being consolidated elsewhere; waiting for it to finish")
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("batch %s is being consolidated by another coordinator: %w", id, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(consolidationClaimTTL / 3)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			rctx, cancel := context.WithTimeout(context.Background(), consolidationClaimTTL/3)
			won, err := claim(rctx)
			cancel()
			if err == nil && !won {
				log.Warn("consolidation claim lost to another coordinator while consolidating (renewals failed for too long)")
			} else if err != nil {
				log.Warn("renew consolidation claim", "error", err)
			}
		}
	}()
	return func() {
		close(stop)
		<-stopped
		// Not ctx: a consolidation cut short by shutdown still hands the batch over at once.
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.st.ReleaseConsolidation(rctx, id, owner); err != nil {
			log.Warn("release consolidation claim", "error", err)
		}
	}, nil
}

// consolidateClaimed writes the batch under its claim. Consolidations run one at a time in a
// coordinator: they are I/O bound and rare.
func (s *Server) consolidateClaimed(ctx context.Context, id string, pdf bool, target *graph.Conn) (*consolidate.Summary, error) {
	s.consolidating.Lock()
	defer s.consolidating.Unlock()
	log := s.log.Named("consolidate").With("batch_id", id)
	sum, err := consolidate.Write(ctx, s.st, id, s.cfg.InstanceNames(), s.now())
	var graphErr error
	if err == nil {
		// The dossiers are on disk and in the store already: a graph failure loses nothing and
		// is recorded on the batch, and consolidating again resumes the write.
		graphErr = s.writeGraph(ctx, log, id, sum, target)
	}
	if err == nil && pdf {
		sum.PDFs, err = consolidate.WritePDFs(sum)
	}
	mark := store.MarkConsolidatedParams{ID: id, Now: s.now()}
	if err != nil {
		mark.Error = err.Error()
		log.Error("consolidation failed; results stay in the store", "error", err)
	} else {
		mark.OutputDir = sum.Dir
		if graphErr != nil {
			mark.Error = graphErr.Error()
			err = graphErr
			log.Error("dossiers and report written, the knowledge graph is not", "dir", sum.Dir, "error", graphErr)
		} else {
			log.Info("batch consolidated", "dir", sum.Dir, "dossiers", sum.Dossiers)
		}
	}
	if b, gerr := s.st.GetBatch(ctx, id); gerr == nil && mark.OutputDir == "" {
		mark.OutputDir = b.OutputDir
	}
	if merr := s.st.MarkConsolidated(ctx, mark); merr != nil && ctx.Err() == nil {
		log.Error("record consolidation", "error", merr)
	}
	switch {
	case err == nil:
		s.graphRetries.done(id)
	case target == nil && graph.Unavailable(mark.Error) && ctx.Err() == nil:
		// Only a write to the configured server is tried again by itself: an operator's
		// one-off target (enrichctl consolidate --neo4j) is theirs to repeat.
		s.graphRetries.plan(s, id)
	}
	s.hub.publish(id)
	return sum, err
}

// A coordinator that dies between ending a batch and consolidating it (or during it) leaves the
// batch unconsolidated. The reaper's leader takes such batches over while it runs, so they do not
// wait for some coordinator's restart (resumeConsolidation).
const (
	// consolidationGrace leaves a batch that just ended to the coordinator that ended it: it
	// claims the batch at once, and only one that died cannot.
	consolidationGrace = 10 * time.Second
	// consolidationSweepEvery bounds how often the leader looks.
	consolidationSweepEvery = 5 * time.Second
)

// consolidationSweep is the leader's state for sweepConsolidations; zero durations are the defaults.
type consolidationSweep struct {
	grace, every time.Duration
	last         time.Time
}

// sweepConsolidations consolidates ended batches that nobody consolidated or is consolidating.
// Only the reaper's leader calls it, from its loop. Batches whose consolidation failed are left
// alone: the error needs an operator, or (an unreachable graph) is retried by the coordinator
// that recorded it, or after a restart.
func (s *Server) sweepConsolidations(ctx context.Context) {
	if !s.cfg.Consolidation.AutoEnabled() {
		return
	}
	sw := &s.sweep
	grace, every := cmp.Or(sw.grace, consolidationGrace), cmp.Or(sw.every, consolidationSweepEvery)
	now := s.now()
	if now.Sub(sw.last) < every {
		return
	}
	sw.last = now
	list, err := s.st.UnconsolidatedBatches(ctx, store.UnconsolidatedParams{EndedBefore: now.Add(-grace), Now: now, Limit: 100,
		SkipFailed: true})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Named("consolidate").Warn("list unconsolidated batches", "error", err)
		}
		return
	}
	for _, b := range list {
		s.log.Named("consolidate").Info("batch ended without being consolidated; consolidating it", "batch_id", b.ID,
			"ended", now.Sub(b.FinishedAt).Round(time.Second))
		s.goBackground(func() { s.consolidateUnlessDone(s.runCtx, b.ID) })
	}
}
