package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/sportsintel/enrich/coordinator/store"
)

func (s *Store) AttemptTotals(ctx context.Context, batchID string) (map[string]store.AttemptTotals, error) {
	// percentile_disc(0.5) is the lower middle of an even count, as the SQLite store computes it.
	rows, err := s.pool.Query(ctx, `SELECT instance_type, count(*),
		count(*) FILTER (WHERE kind IN ('retrying', 'failed', 'failed_permanent')),
		count(*) FILTER (WHERE kind = 'retrying'),
		coalesce(sum(cost_usd), 0),
		coalesce(percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE kind = 'succeeded'), 0)
		FROM events WHERE batch_id = $1 AND kind = ANY($2) GROUP BY instance_type`, batchID, runEndingKinds)
	if err != nil {
		return nil, fmt.Errorf("sum attempts of %s: %w", batchID, err)
	}
	defer rows.Close()
	out := map[string]store.AttemptTotals{}
	for rows.Next() {
		var typ string
		var t store.AttemptTotals
		var medianMS int64
		if err := rows.Scan(&typ, &t.Attempts, &t.Failed, &t.Retries, &t.CostUSD, &medianMS); err != nil {
			return nil, fmt.Errorf("sum attempts of %s: %w", batchID, err)
		}
		t.MedianDuration = time.Duration(medianMS) * time.Millisecond
		out[typ] = t
	}
	return out, rows.Err()
}
