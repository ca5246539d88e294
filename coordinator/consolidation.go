package coordinator

import (
	"context"

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
			s.goBackground(func() { _, _ = s.consolidate(ctx, b.ID) })
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
// the graph written into that server instead of the configured one. Consolidations run one at a
// time: they are I/O bound and rare.
func (s *Server) consolidateWith(ctx context.Context, id string, pdf bool, target *graph.Conn) (*consolidate.Summary, error) {
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
