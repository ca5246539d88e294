package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sportsintel/enrich/coordinator/store"
)

func (s *Store) PurgeEntity(ctx context.Context, p store.PurgeEntityParams) ([]store.PurgedItem, error) {
	var purged []store.PurgedItem
	err := s.tx(ctx, func(tx pgx.Tx) error {
		purged = purged[:0]
		// FOR UPDATE on the batches too: a batch cannot be relaunched while its items go.
		rows, err := tx.Query(ctx, `SELECT i.id, i.batch_id, i.instance_type, b.output_dir, b.state,
				EXISTS (SELECT 1 FROM results r WHERE r.item_id = i.id)
			FROM items i JOIN batches b ON b.id = i.batch_id
			WHERE i.entity_id = $1 AND ($2 = '' OR i.batch_id = $2) ORDER BY i.id FOR UPDATE`, p.EntityID, p.BatchID)
		if err != nil {
			return fmt.Errorf("find entity %q: %w", p.EntityID, err)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			var state store.BatchState
			it := store.PurgedItem{EntityID: p.EntityID}
			if err := rows.Scan(&id, &it.BatchID, &it.InstanceType, &it.OutputDir, &state, &it.HadResult); err != nil {
				rows.Close()
				return err
			}
			if err := store.CheckPurgeable(p.EntityID, it.BatchID, state); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
			purged = append(purged, it)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return fmt.Errorf("entity %q: %w", p.EntityID, store.ErrNotFound)
		}
		for _, table := range []string{"events WHERE item_id", "results WHERE item_id", "items WHERE id"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` = ANY($1)`, ids); err != nil {
				return fmt.Errorf("purge entity %q: %w", p.EntityID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return purged, nil
}
