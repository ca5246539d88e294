package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sportsintel/enrich/coordinator/store"
)

func (s *Store) AttemptTotals(ctx context.Context, batchID string) (map[string]store.AttemptTotals, error) {
	in, kinds := inList(runEndingKinds)
	args := append([]any{store.EventRetrying, store.EventFailed, store.EventFailedPermanent, store.EventRetrying,
		store.EventSucceeded, batchID}, kinds...)
	rows, err := s.read.QueryContext(ctx, `SELECT instance_type, count(*), sum(kind IN (?, ?, ?)), sum(kind = ?),
		total(cost_usd), sum(kind = ?)
		FROM events WHERE batch_id = ? AND kind IN `+in+` GROUP BY instance_type`, args...)
	if err != nil {
		return nil, fmt.Errorf("sum attempts of %s: %w", batchID, err)
	}
	out := map[string]store.AttemptTotals{}
	succeeded := map[string]int{}
	for rows.Next() {
		var typ string
		var t store.AttemptTotals
		var ok int
		if err := rows.Scan(&typ, &t.Attempts, &t.Failed, &t.Retries, &t.CostUSD, &ok); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sum attempts of %s: %w", batchID, err)
		}
		out[typ], succeeded[typ] = t, ok
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("sum attempts of %s: %w", batchID, err)
	}
	// SQLite has no percentile function: the median is the middle row of the sorted durations.
	for typ, n := range succeeded {
		if n == 0 {
			continue
		}
		var medianMS int64
		if err := s.read.QueryRowContext(ctx, `SELECT duration_ms FROM events
			WHERE batch_id = ? AND instance_type = ? AND kind = ? ORDER BY duration_ms LIMIT 1 OFFSET ?`,
			batchID, typ, store.EventSucceeded, (n-1)/2).Scan(&medianMS); err != nil && !errors.Is(err, sql.ErrNoRows) {
			// No row: the batch's history was purged between the two reads.
			return nil, fmt.Errorf("median run time of %s in %s: %w", typ, batchID, err)
		}
		t := out[typ]
		t.MedianDuration = time.Duration(medianMS) * time.Millisecond
		out[typ] = t
	}
	return out, nil
}
