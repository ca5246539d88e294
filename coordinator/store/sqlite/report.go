package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sportsintel/enrich/coordinator/store"
)

// reportTx applies reports within one transaction: store.ReportPlan decides in memory on the
// items' heads, read with one query, and flush writes the group with a few multi-row statements.
// Four statements per report (read the item, insert the result, update the item, insert the
// event) were half of what the single SQLite writer spent per entity.
type reportTx struct {
	*store.ReportPlan
	tx *sql.Tx
}

// loadHeads reads the heads of the given items and returns a plan over them.
func loadHeads(ctx context.Context, tx *sql.Tx, ids []int64, now time.Time) (*reportTx, error) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	heads := make(map[int64]*store.ItemHead, len(ids))
	for start := 0; start < len(ids); start += maxRowsPerInsert {
		in, args := inList(ids[start:min(start+maxRowsPerInsert, len(ids))])
		rows, err := tx.QueryContext(ctx, `SELECT i.id, i.batch_id, i.instance_type, i.agent_id, i.session_id, i.state, i.token,
			i.attempt, i.max_attempts, COALESCE(r.token, 0)
			FROM items i LEFT JOIN results r ON r.item_id = i.id WHERE i.id IN `+in, args...)
		if err != nil {
			return nil, fmt.Errorf("read items: %w", err)
		}
		for rows.Next() {
			var id int64
			h := &store.ItemHead{}
			if err := rows.Scan(&id, &h.BatchID, &h.InstanceType, &h.AgentID, &h.SessionID, &h.State, &h.Token, &h.Attempt,
				&h.MaxAttempts, &h.ResultToken); err != nil {
				rows.Close()
				return nil, fmt.Errorf("scan item: %w", err)
			}
			heads[id] = h
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, fmt.Errorf("read items: %w", err)
		}
	}
	return &reportTx{ReportPlan: store.NewReportPlan(heads, now), tx: tx}, nil
}

// insertRows writes rows with multi-row INSERTs of at most maxRowsPerInsert rows, in order.
func insertRows(ctx context.Context, tx *sql.Tx, head string, width, n int, args func(i int) []any) error {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", width), ", ") + ")"
	for start := 0; start < n; start += maxRowsPerInsert {
		end := min(start+maxRowsPerInsert, n)
		vals := make([]any, 0, (end-start)*width)
		for i := start; i < end; i++ {
			vals = append(vals, args(i)...)
		}
		if _, err := tx.ExecContext(ctx, head+` VALUES `+strings.TrimSuffix(strings.Repeat(row+", ", end-start), ", "), vals...); err != nil {
			return err
		}
	}
	return nil
}

// flush writes what the reports decided. An item is decided once per plan, so no statement
// names an item twice; events keep the order they were recorded in.
func (r *reportTx) flush(ctx context.Context) error {
	now := ms(r.Now())
	if err := insertRows(ctx, r.tx, `INSERT INTO results (item_id, batch_id, token, agent_id, dossier, duration_ms, cost_usd,
		input_tokens, output_tokens, turns, session_id, runner, created_at)`, 13, len(r.Results), func(i int) []any {
		x := r.Results[i]
		m := x.Metrics
		return []any{x.ItemID, x.BatchID, x.Token, x.AgentID, x.Dossier, m.Duration.Milliseconds(), m.CostUSD, m.InputTokens,
			m.OutputTokens, m.Turns, m.SessionID, m.Runner, now}
	}); err != nil {
		return fmt.Errorf("insert results: %w", err)
	}
	// Successes differ only in their agent: one UPDATE per agent in the group.
	byAgent := map[string][]int64{}
	for _, x := range r.Succeeded {
		byAgent[x.AgentID] = append(byAgent[x.AgentID], x.ItemID)
	}
	for _, agent := range slices.Sorted(maps.Keys(byAgent)) {
		ids := byAgent[agent]
		for start := 0; start < len(ids); start += maxRowsPerInsert {
			in, args := inList(ids[start:min(start+maxRowsPerInsert, len(ids))])
			if _, err := r.tx.ExecContext(ctx, `UPDATE items SET state = ?, agent_id = ?, last_error = '', stderr_tail = '',
				expires_at = 0, updated_at = ? WHERE id IN `+in, append([]any{store.ItemSucceeded, agent, now}, args...)...); err != nil {
				return fmt.Errorf("mark items succeeded: %w", err)
			}
		}
	}
	for _, x := range r.Failed {
		if _, err := r.tx.ExecContext(ctx, `UPDATE items SET state = ?, next_attempt_at = ?, last_error = ?, stderr_tail = ?,
			expires_at = 0, updated_at = ? WHERE id = ?`, x.State, ms(x.NextAttemptAt), x.LastError, x.StderrTail, now, x.ItemID); err != nil {
			return fmt.Errorf("record failure of item %d: %w", x.ItemID, err)
		}
	}
	if err := insertRows(ctx, r.tx, `INSERT INTO events (item_id, batch_id, instance_type, token, attempt, kind, agent_id,
		message, duration_ms, cost_usd, at)`, 11, len(r.Events), func(i int) []any {
		e := r.Events[i]
		return []any{e.ItemID, e.BatchID, e.InstanceType, e.Token, e.Attempt, e.Kind, e.AgentID, e.Message,
			e.Metrics.Duration.Milliseconds(), e.Metrics.CostUSD, now}
	}); err != nil {
		return fmt.Errorf("record events: %w", err)
	}
	for _, id := range slices.Sorted(maps.Keys(r.Spent)) {
		if _, err := r.tx.ExecContext(ctx, `UPDATE batches SET spent_usd = spent_usd + ? WHERE id = ?`, r.Spent[id], id); err != nil {
			return fmt.Errorf("add the cost of runs to batch %s: %w", id, err)
		}
	}
	return nil
}

// close writes the plan and ends the batches it left without open items.
func (r *reportTx) close(ctx context.Context) ([]string, error) {
	if err := r.flush(ctx); err != nil {
		return nil, err
	}
	return r.finishBatches(ctx)
}

// finishBatches ends every touched running batch that has no open item left.
func (r *reportTx) finishBatches(ctx context.Context) ([]string, error) {
	var finished []string
	now := ms(r.Now())
	for _, id := range slices.Sorted(maps.Keys(r.Touched)) {
		var open, leased, failed int
		var st store.BatchState
		var budget, spent float64
		if err := r.tx.QueryRowContext(ctx, `SELECT state, budget_usd, spent_usd FROM batches WHERE id = ?`, id).Scan(&st, &budget, &spent); err != nil {
			return nil, fmt.Errorf("batch %s state: %w", id, err)
		}
		if st != store.BatchRunning {
			continue
		}
		// An indexed existence check, not a count: this runs on every commit of a running batch.
		if err := r.tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM items WHERE batch_id = ? AND state IN (?, ?))`,
			id, store.ItemPending, store.ItemLeased).Scan(&open); err != nil {
			return nil, fmt.Errorf("count open items of %s: %w", id, err)
		}
		if open > 0 {
			if budget <= 0 || spent < budget {
				continue
			}
			// Out of budget: nothing new is leased; the batch stops once its runs in flight end.
			if err := r.tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM items WHERE batch_id = ? AND state = ?)`,
				id, store.ItemLeased).Scan(&leased); err != nil {
				return nil, fmt.Errorf("count leased items of %s: %w", id, err)
			}
			if leased > 0 {
				continue
			}
			if _, err := r.tx.ExecContext(ctx, `UPDATE batches SET state = ?, finished_at = ? WHERE id = ?`,
				store.BatchBudgetExhausted, now, id); err != nil {
				return nil, fmt.Errorf("stop batch %s at its budget: %w", id, err)
			}
			finished = append(finished, id)
			continue
		}
		if err := r.tx.QueryRowContext(ctx, `SELECT count(*) FROM items WHERE batch_id = ? AND state = ?`,
			id, store.ItemFailed).Scan(&failed); err != nil {
			return nil, fmt.Errorf("count failed items of %s: %w", id, err)
		}
		end := store.BatchCompleted
		if failed > 0 {
			end = store.BatchCompletedWithFailures
		}
		if _, err := r.tx.ExecContext(ctx, `UPDATE batches SET state = ?, finished_at = ? WHERE id = ?`, end, now, id); err != nil {
			return nil, fmt.Errorf("finish batch %s: %w", id, err)
		}
		finished = append(finished, id)
	}
	return finished, nil
}

func (s *Store) Report(ctx context.Context, p store.ReportParams) (*store.ReportResult, error) {
	out := &store.ReportResult{}
	ids := make([]int64, 0, len(p.Completions)+len(p.Failures))
	for _, c := range p.Completions {
		ids = append(ids, c.Lease.ItemID)
	}
	for _, f := range p.Failures {
		ids = append(ids, f.Lease.ItemID)
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		*out = store.ReportResult{}
		r, err := loadHeads(ctx, tx, ids, p.Now)
		if err != nil {
			return err
		}
		for _, c := range p.Completions {
			out.Completions = append(out.Completions, r.Complete(c))
		}
		for _, f := range p.Failures {
			out.Failures = append(out.Failures, r.Fail(f, p.RetryDelay))
		}
		out.FinishedBatches, err = r.close(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	return out, nil
}

func (s *Store) ExtendLeases(ctx context.Context, p store.ExtendLeasesParams) ([]store.LeaseRef, error) {
	var lost []store.LeaseRef
	err := s.tx(ctx, func(tx *sql.Tx) error {
		lost = lost[:0]
		stmt, err := tx.PrepareContext(ctx, `UPDATE items SET expires_at = CASE WHEN deadline < ? THEN deadline ELSE ? END,
			agent_id = ?, session_id = ? WHERE id = ? AND token = ? AND state = ?`)
		if err != nil {
			return fmt.Errorf("prepare extend: %w", err)
		}
		defer stmt.Close()
		expires := ms(p.Now.Add(p.LeaseTTL))
		for _, l := range p.Leases {
			res, err := stmt.ExecContext(ctx, expires, expires, p.AgentID, p.SessionID, l.ItemID, l.Token, store.ItemLeased)
			if err != nil {
				return fmt.Errorf("extend lease of item %d: %w", l.ItemID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				lost = append(lost, l)
			}
		}
		return nil
	})
	return lost, err
}

func (s *Store) ReapExpired(ctx context.Context, p store.ReapParams) (*store.ReapResult, error) {
	out := &store.ReapResult{}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		*out = store.ReapResult{}
		rows, err := tx.QueryContext(ctx, `SELECT id, token, batch_id, agent_id, session_id, expires_at >= deadline FROM items
			WHERE state = 'leased' AND expires_at <= ?`, ms(p.Now))
		if err != nil {
			return fmt.Errorf("select expired leases: %w", err)
		}
		var timedOut []bool
		for rows.Next() {
			var h store.LeaseHolder
			var pastDeadline bool
			if err := rows.Scan(&h.ItemID, &h.Token, &h.BatchID, &h.AgentID, &h.SessionID, &pastDeadline); err != nil {
				rows.Close()
				return err
			}
			out.Expired = append(out.Expired, h)
			timedOut = append(timedOut, pastDeadline)
		}
		rows.Close()
		if len(out.Expired) == 0 {
			return nil
		}
		ids := make([]int64, len(out.Expired))
		for i, h := range out.Expired {
			ids[i] = h.ItemID
		}
		r, err := loadHeads(ctx, tx, ids, p.Now)
		if err != nil {
			return err
		}
		for i, h := range out.Expired {
			msg := "lease expired: no heartbeat from agent " + h.AgentID
			if timedOut[i] {
				msg = "timed out: the run exceeded its instance type's timeout"
			}
			r.Fail(store.Failure{Lease: h.LeaseRef, AgentID: h.AgentID, Retryable: true, Message: msg}, p.RetryDelay)
		}
		out.FinishedBatches, err = r.close(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reap expired leases: %w", err)
	}
	return out, nil
}

func (s *Store) ReleaseLeases(ctx context.Context, p store.ReleaseParams) (*store.ReapResult, error) {
	out := &store.ReapResult{}
	if len(p.Leases) == 0 {
		return out, nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		*out = store.ReapResult{}
		ids := make([]int64, len(p.Leases))
		for i, l := range p.Leases {
			ids[i] = l.ItemID
		}
		r, err := loadHeads(ctx, tx, ids, p.Now)
		if err != nil {
			return err
		}
		for _, l := range p.Leases {
			h := r.Head(l.ItemID)
			// Only the item's current lease can be released; anything else already ended.
			if h == nil || h.State != store.ItemLeased || h.Token != l.Token {
				continue
			}
			holder := store.LeaseHolder{LeaseRef: l, BatchID: h.BatchID, AgentID: h.AgentID, SessionID: h.SessionID}
			r.Fail(store.Failure{Lease: l, AgentID: h.AgentID, Retryable: true, Message: p.Message}, p.RetryDelay)
			out.Expired = append(out.Expired, holder)
		}
		out.FinishedBatches, err = r.close(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("release leases: %w", err)
	}
	return out, nil
}

func (s *Store) LeasesHeldBy(ctx context.Context, agentID string) ([]store.LeaseHolder, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, token, batch_id, agent_id, session_id FROM items WHERE state = 'leased' AND agent_id = ?`,
		agentID)
	if err != nil {
		return nil, fmt.Errorf("leases held by %s: %w", agentID, err)
	}
	defer rows.Close()
	var out []store.LeaseHolder
	for rows.Next() {
		var h store.LeaseHolder
		if err := rows.Scan(&h.ItemID, &h.Token, &h.BatchID, &h.AgentID, &h.SessionID); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

func (s *Store) queryResults(ctx context.Context, where string, arg any) ([]*store.ResultRow, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT i.`+strings.Join(itemColumnNames, ", i.")+`, r.token, r.dossier, r.duration_ms,
		r.cost_usd, r.input_tokens, r.output_tokens, r.turns, r.session_id, r.runner
		FROM results r JOIN items i ON i.id = r.item_id WHERE `+where+` ORDER BY i.id`, arg)
	if err != nil {
		return nil, fmt.Errorf("query results: %w", err)
	}
	defer rows.Close()
	var out []*store.ResultRow
	for rows.Next() {
		var row store.ResultRow
		var durMS int64
		m := &row.Metrics
		row.Item, err = scanItem(rows, &row.Token, &row.Dossier, &durMS, &m.CostUSD, &m.InputTokens, &m.OutputTokens, &m.Turns, &m.SessionID, &m.Runner)
		if err != nil {
			return nil, fmt.Errorf("scan result: %w", err)
		}
		m.Duration = time.Duration(durMS) * time.Millisecond
		out = append(out, &row)
	}
	return out, rows.Err()
}

func (s *Store) Results(ctx context.Context, batchID string) ([]*store.ResultRow, error) {
	return s.queryResults(ctx, "r.batch_id = ?", batchID)
}

func (s *Store) Result(ctx context.Context, itemID int64) (*store.ResultRow, error) {
	rows, err := s.queryResults(ctx, "r.item_id = ?", itemID)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("result of item %d: %w", itemID, store.ErrNotFound)
	}
	return rows[0], nil
}

// runEndingKinds are the events Attempts returns.
var runEndingKinds = []store.EventKind{store.EventSucceeded, store.EventRetrying, store.EventFailed,
	store.EventFailedPermanent, store.EventDuplicate, store.EventStale}

func (s *Store) Attempts(ctx context.Context, batchID string) ([]*store.Attempt, error) {
	events, err := s.events(ctx, batchID, runEndingKinds)
	if err != nil {
		return nil, err
	}
	out := make([]*store.Attempt, 0, len(events))
	for _, e := range events {
		out = append(out, &store.Attempt{ItemID: e.ItemID, Token: e.Token, InstanceType: e.InstanceType, AgentID: e.AgentID,
			Outcome: string(e.Kind), Message: e.Message, Metrics: e.Metrics, EndedAt: e.At})
	}
	return out, nil
}

func (s *Store) Events(ctx context.Context, batchID string) ([]*store.Event, error) {
	return s.events(ctx, batchID, nil)
}

func (s *Store) events(ctx context.Context, batchID string, kinds []store.EventKind) ([]*store.Event, error) {
	q := `SELECT id, item_id, batch_id, instance_type, token, attempt, kind, agent_id, message, duration_ms, cost_usd, at
		FROM events WHERE batch_id = ?`
	args := []any{batchID}
	if len(kinds) > 0 {
		in, kargs := inList(kinds)
		q += ` AND kind IN ` + in
		args = append(args, kargs...)
	}
	rows, err := s.read.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []*store.Event
	for rows.Next() {
		var e store.Event
		var durMS, at int64
		if err := rows.Scan(&e.ID, &e.ItemID, &e.BatchID, &e.InstanceType, &e.Token, &e.Attempt, &e.Kind, &e.AgentID,
			&e.Message, &durMS, &e.Metrics.CostUSD, &at); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		e.Metrics.Duration = time.Duration(durMS) * time.Millisecond
		e.At = fromMS(at)
		out = append(out, &e)
	}
	return out, rows.Err()
}

func (s *Store) MarkConsolidated(ctx context.Context, p store.MarkConsolidatedParams) error {
	at := ms(p.Now)
	if p.Error != "" {
		at = 0
	}
	res, err := s.write.ExecContext(ctx, `UPDATE batches SET output_dir = ?, consolidation_error = ?, consolidated_at = ? WHERE id = ?`,
		p.OutputDir, p.Error, at, p.ID)
	if err != nil {
		return fmt.Errorf("mark batch %s consolidated: %w", p.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("batch %q: %w", p.ID, store.ErrNotFound)
	}
	return nil
}
