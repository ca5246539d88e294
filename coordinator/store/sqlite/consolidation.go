package sqlite

import (
	"context"
	"fmt"

	"github.com/sportsintel/enrich/coordinator/store"
)

// terminalStates is the SQL list of store.BatchState.Terminal states.
const terminalStates = `'completed', 'completed_with_failures', 'cancelled', 'budget_exhausted'`

func (s *Store) ClaimConsolidation(ctx context.Context, p store.ClaimConsolidationParams) (bool, error) {
	res, err := s.write.ExecContext(ctx, `UPDATE batches SET consolidation_owner = ?, consolidation_until = ?
		WHERE id = ? AND (consolidation_owner = ? OR consolidation_owner = '' OR consolidation_until < ?)`,
		p.Owner, ms(p.Now.Add(p.TTL)), p.ID, p.Owner, ms(p.Now))
	if err != nil {
		return false, fmt.Errorf("claim consolidation of batch %s: %w", p.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	if _, err := s.GetBatch(ctx, p.ID); err != nil {
		return false, err
	}
	return false, nil
}

func (s *Store) ReleaseConsolidation(ctx context.Context, id, owner string) error {
	if _, err := s.write.ExecContext(ctx, `UPDATE batches SET consolidation_owner = '', consolidation_until = 0
		WHERE id = ? AND consolidation_owner = ?`, id, owner); err != nil {
		return fmt.Errorf("release consolidation of batch %s: %w", id, err)
	}
	return nil
}

func (s *Store) UnconsolidatedBatches(ctx context.Context, p store.UnconsolidatedParams) ([]*store.Batch, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = -1
	}
	out, err := s.queryBatches(ctx, `SELECT `+batchColumns+` FROM batches
		WHERE state IN (`+terminalStates+`) AND finished_at > 0 AND finished_at <= ? AND consolidated_at = 0
			AND (consolidation_owner = '' OR consolidation_until < ?) AND (? = 0 OR consolidation_error = '')
		ORDER BY finished_at, id LIMIT ?`, ms(p.EndedBefore), ms(p.Now), p.SkipFailed, limit)
	if err != nil {
		return nil, fmt.Errorf("list unconsolidated batches: %w", err)
	}
	return out, nil
}
