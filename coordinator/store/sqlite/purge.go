package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/sportsintel/enrich/coordinator/store"
)

func (s *Store) PurgeEntity(ctx context.Context, p store.PurgeEntityParams) ([]store.PurgedItem, error) {
	var purged []store.PurgedItem
	err := s.tx(ctx, func(tx *sql.Tx) error {
		purged = purged[:0]
		q := `SELECT i.id, i.batch_id, i.instance_type, b.output_dir, b.state, EXISTS (SELECT 1 FROM results r WHERE r.item_id = i.id)
			FROM items i JOIN batches b ON b.id = i.batch_id WHERE i.entity_id = ?`
		args := []any{p.EntityID}
		if p.BatchID != "" {
			q += ` AND i.batch_id = ?`
			args = append(args, p.BatchID)
		}
		rows, err := tx.QueryContext(ctx, q+` ORDER BY i.id`, args...)
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
		if err := rows.Close(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return fmt.Errorf("entity %q: %w", p.EntityID, store.ErrNotFound)
		}
		in, idArgs := inList(ids)
		for _, table := range []string{"events WHERE item_id", "results WHERE item_id", "items WHERE id"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` IN `+in, idArgs...); err != nil {
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
