package postgres

import (
	"context"
	"fmt"

	"github.com/sportsintel/enrich/coordinator/store"
)

// terminalStates is the SQL list of store.BatchState.Terminal states.
const terminalStates = `'completed', 'completed_with_failures', 'cancelled', 'budget_exhausted'`

// The claim's times are the coordinators' clocks, like every time on a batch: a claim outlives
// its owner's last renewal by its TTL, far more than the clocks of a fleet drift apart.

func (s *Store) ClaimConsolidation(ctx context.Context, p store.ClaimConsolidationParams) (bool, error) {
	// Concurrent claimers queue on the row lock; each re-evaluates the WHERE against the row the
	// one before committed, so at most one of them finds it free.
	tag, err := s.pool.Exec(ctx, `UPDATE batches SET consolidation_owner = $1, consolidation_until = $2
		WHERE id = $3 AND (consolidation_owner = $1 OR consolidation_owner = '' OR consolidation_until < $4)`,
		p.Owner, ms(p.Now.Add(p.TTL)), p.ID, ms(p.Now))
	if err != nil {
		return false, fmt.Errorf("claim consolidation of batch %s: %w", p.ID, err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	if _, err := s.GetBatch(ctx, p.ID); err != nil {
		return false, err
	}
	return false, nil
}

func (s *Store) ReleaseConsolidation(ctx context.Context, id, owner string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE batches SET consolidation_owner = '', consolidation_until = 0
		WHERE id = $1 AND consolidation_owner = $2`, id, owner); err != nil {
		return fmt.Errorf("release consolidation of batch %s: %w", id, err)
	}
	return nil
}

func (s *Store) UnconsolidatedBatches(ctx context.Context, p store.UnconsolidatedParams) ([]*store.Batch, error) {
	var limit *int
	if p.Limit > 0 {
		limit = &p.Limit
	}
	out, err := s.queryBatches(ctx, `SELECT `+batchColumns+` FROM batches
		WHERE state IN (`+terminalStates+`) AND finished_at > 0 AND finished_at <= $1 AND consolidated_at = 0
			AND (consolidation_owner = '' OR consolidation_until < $2) AND (NOT $4 OR consolidation_error = '')
		ORDER BY finished_at, id LIMIT $3`, ms(p.EndedBefore), ms(p.Now), limit, p.SkipFailed)
	if err != nil {
		return nil, fmt.Errorf("list unconsolidated batches: %w", err)
	}
	return out, nil
}
