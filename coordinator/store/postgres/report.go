package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sportsintel/enrich/coordinator/store"
)

// reporter applies reports to locked items within one transaction: store.ReportPlan decides
// in memory on the locked rows, and flush writes the group with one statement per kind of write.
type reporter struct {
	*store.ReportPlan
}

// lockItems locks the given items in id order (the order every writer takes item locks in, so
// writers never deadlock on them) and returns a plan over their heads.
func lockItems(ctx context.Context, tx pgx.Tx, ids []int64, now time.Time) (*reporter, error) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	heads := make(map[int64]*store.ItemHead, len(ids))
	r := &reporter{store.NewReportPlan(heads, now)}
	if len(ids) == 0 {
		return r, nil
	}
	rows, err := tx.Query(ctx, `SELECT i.id, i.batch_id, i.instance_type, i.agent_id, i.session_id, i.state, i.token, i.attempt,
		i.max_attempts, COALESCE(r.token, 0)
		FROM items i LEFT JOIN results r ON r.item_id = i.id WHERE i.id = ANY($1) ORDER BY i.id FOR UPDATE OF i`, ids)
	if err != nil {
		return nil, fmt.Errorf("lock items: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		h := &store.ItemHead{}
		if err := rows.Scan(&id, &h.BatchID, &h.InstanceType, &h.AgentID, &h.SessionID, &h.State, &h.Token, &h.Attempt,
			&h.MaxAttempts, &h.ResultToken); err != nil {
			return nil, fmt.Errorf("scan item: %w", err)
		}
		heads[id] = h
	}
	return r, rows.Err()
}

// flush writes what the reports decided: one statement per kind of write, each taking its rows
// as arrays, all sent in one round trip. An item is decided once per group (a second report of
// it sees the first's outcome in memory), so no statement names an item twice. Events keep the
// order they were recorded in: their ids are the history's order.
func (r *reporter) flush(ctx context.Context, tx pgx.Tx) error {
	b := &pgx.Batch{}
	now := ms(r.Now())
	if len(r.Results) > 0 {
		var (
			items, tokens, durations, inTokens, outTokens, turns []int64
			batches, agents, sessions, runners                   []string
			dossiers                                             [][]byte
			costs                                                []float64
		)
		for _, x := range r.Results {
			m := x.Metrics
			items, tokens, batches, agents, dossiers = append(items, x.ItemID), append(tokens, x.Token), append(batches, x.BatchID),
				append(agents, x.AgentID), append(dossiers, x.Dossier)
			durations, costs, inTokens, outTokens, turns = append(durations, m.Duration.Milliseconds()), append(costs, m.CostUSD),
				append(inTokens, m.InputTokens), append(outTokens, m.OutputTokens), append(turns, int64(m.Turns))
			sessions, runners = append(sessions, m.SessionID), append(runners, m.Runner)
		}
		b.Queue(`INSERT INTO results (item_id, batch_id, token, agent_id, dossier, duration_ms, cost_usd,
			input_tokens, output_tokens, turns, session_id, runner, created_at)
			SELECT u.*, $13::bigint FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bytea[], $6::bigint[],
				$7::float8[], $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::text[]) AS u`,
			items, batches, tokens, agents, dossiers, durations, costs, inTokens, outTokens, turns, sessions, runners, now)
	}
	if len(r.Succeeded) > 0 {
		ids, agents := make([]int64, len(r.Succeeded)), make([]string, len(r.Succeeded))
		for i, x := range r.Succeeded {
			ids[i], agents[i] = x.ItemID, x.AgentID
		}
		b.Queue(`UPDATE items SET state = $1, agent_id = u.agent_id, last_error = '', stderr_tail = '', expires_at = 0, updated_at = $2
			FROM unnest($3::bigint[], $4::text[]) AS u(id, agent_id) WHERE items.id = u.id`,
			store.ItemSucceeded, now, ids, agents)
	}
	if n := len(r.Failed); n > 0 {
		ids, nextAt := make([]int64, n), make([]int64, n)
		states, errs, tails := make([]string, n), make([]string, n), make([]string, n)
		for i, x := range r.Failed {
			ids[i], states[i], nextAt[i], errs[i], tails[i] = x.ItemID, string(x.State), ms(x.NextAttemptAt), x.LastError, x.StderrTail
		}
		b.Queue(`UPDATE items SET state = u.state, next_attempt_at = u.next_attempt_at, last_error = u.last_error,
			stderr_tail = u.stderr_tail, expires_at = 0, updated_at = $1
			FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[]) AS u(id, state, next_attempt_at, last_error, stderr_tail)
			WHERE items.id = u.id`, now, ids, states, nextAt, errs, tails)
	}
	if n := len(r.Events); n > 0 {
		items, tokens, attempts, durations := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		batches, types, kinds, agents, msgs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		costs := make([]float64, n)
		for i, e := range r.Events {
			items[i], tokens[i], attempts[i], durations[i], costs[i] = e.ItemID, e.Token, int64(e.Attempt), e.Metrics.Duration.Milliseconds(), e.Metrics.CostUSD
			batches[i], types[i], kinds[i], agents[i], msgs[i] = e.BatchID, e.InstanceType, string(e.Kind), e.AgentID, e.Message
		}
		b.Queue(`INSERT INTO events (item_id, batch_id, instance_type, token, attempt, kind, agent_id, message, duration_ms, cost_usd, at)
			SELECT u.item_id, u.batch_id, u.instance_type, u.token, u.attempt, u.kind, u.agent_id, u.message, u.duration_ms, u.cost_usd, $11
			FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[],
				$9::bigint[], $10::float8[]) WITH ORDINALITY
				AS u(item_id, batch_id, instance_type, token, attempt, kind, agent_id, message, duration_ms, cost_usd, n)
			ORDER BY u.n`, items, batches, types, tokens, attempts, kinds, agents, msgs, durations, costs, now)
	}
	// The batch rows are locked after the items: the order every writer takes.
	for _, id := range slices.Sorted(maps.Keys(r.Spent)) {
		b.Queue(`UPDATE batches SET spent_usd = spent_usd + $1 WHERE id = $2`, r.Spent[id], id)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write reports: %w", err)
	}
	return nil
}

// finishBatches ends every touched running batch that has no open item left. The batch row is
// locked before the check: of two transactions closing a batch's last items at once, the one
// that locks second sees the other's commit and finishes the batch.
func (r *reporter) finishBatches(ctx context.Context, tx pgx.Tx) ([]string, error) {
	var finished []string
	for _, id := range keys(r.Touched) {
		var st store.BatchState
		var budget, spent float64
		if err := tx.QueryRow(ctx, `SELECT state, budget_usd, spent_usd FROM batches WHERE id = $1 FOR UPDATE`, id).Scan(&st, &budget, &spent); err != nil {
			return nil, fmt.Errorf("lock batch %s: %w", id, err)
		}
		if st != store.BatchRunning {
			continue
		}
		var open, leased, failed bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM items WHERE batch_id = $1 AND state IN ($2, $3)),
			EXISTS (SELECT 1 FROM items WHERE batch_id = $1 AND state = $3),
			EXISTS (SELECT 1 FROM items WHERE batch_id = $1 AND state = $4)`,
			id, store.ItemPending, store.ItemLeased, store.ItemFailed).Scan(&open, &leased, &failed); err != nil {
			return nil, fmt.Errorf("open items of %s: %w", id, err)
		}
		if open {
			// Out of budget: nothing new is leased; the batch stops once its runs in flight end.
			if budget <= 0 || spent < budget || leased {
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE batches SET state = $1, finished_at = $2 WHERE id = $3`,
				store.BatchBudgetExhausted, ms(r.Now()), id); err != nil {
				return nil, fmt.Errorf("stop batch %s at its budget: %w", id, err)
			}
			finished = append(finished, id)
			continue
		}
		end := store.BatchCompleted
		if failed {
			end = store.BatchCompletedWithFailures
		}
		if _, err := tx.Exec(ctx, `UPDATE batches SET state = $1, finished_at = $2 WHERE id = $3`, end, ms(r.Now()), id); err != nil {
			return nil, fmt.Errorf("finish batch %s: %w", id, err)
		}
		finished = append(finished, id)
	}
	return finished, nil
}

// close flushes the writes, finishes batches and notifies watchers of every touched batch.
func (s *Store) closeReport(ctx context.Context, tx pgx.Tx, r *reporter) ([]string, error) {
	if err := r.flush(ctx, tx); err != nil {
		return nil, err
	}
	finished, err := r.finishBatches(ctx, tx)
	if err != nil {
		return nil, err
	}
	return finished, s.notify(ctx, tx, keys(r.Touched))
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
	err := s.tx(ctx, func(tx pgx.Tx) error {
		*out = store.ReportResult{}
		r, err := lockItems(ctx, tx, ids, p.Now)
		if err != nil {
			return err
		}
		for _, c := range p.Completions {
			out.Completions = append(out.Completions, r.Complete(c))
		}
		for _, f := range p.Failures {
			out.Failures = append(out.Failures, r.Fail(f, p.RetryDelay))
		}
		out.FinishedBatches, err = s.closeReport(ctx, tx, r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	return out, nil
}

func (s *Store) ExtendLeases(ctx context.Context, p store.ExtendLeasesParams) ([]store.LeaseRef, error) {
	if len(p.Leases) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(p.Leases))
	tokens := make([]int64, len(p.Leases))
	for i, l := range p.Leases {
		ids[i], tokens[i] = l.ItemID, l.Token
	}
	expires := ms(p.Now.Add(p.LeaseTTL))
	held := map[store.LeaseRef]bool{}
	// One statement for the whole heartbeat. It takes its row locks in id order, as reports do:
	// an UPDATE joined to the list locks rows in whatever order its plan visits them, which
	// deadlocked against a report of the same agent's leases.
	err := s.tx(ctx, func(tx pgx.Tx) error {
		clear(held)
		rows, err := tx.Query(ctx, `WITH locked AS (
				SELECT items.id FROM items JOIN unnest($4::bigint[], $5::bigint[]) AS l(id, token)
					ON items.id = l.id AND items.token = l.token
				WHERE items.state = $6 ORDER BY items.id FOR UPDATE OF items
			)
			UPDATE items SET expires_at = LEAST(deadline, $1), agent_id = $2, session_id = $3
			FROM locked WHERE items.id = locked.id
			RETURNING items.id, items.token`, expires, p.AgentID, p.SessionID, ids, tokens, store.ItemLeased)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var l store.LeaseRef
			if err := rows.Scan(&l.ItemID, &l.Token); err != nil {
				return err
			}
			held[l] = true
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("extend leases: %w", err)
	}
	var lost []store.LeaseRef
	for _, l := range p.Leases {
		if !held[l] {
			lost = append(lost, l)
		}
	}
	return lost, nil
}

func (s *Store) ReapExpired(ctx context.Context, p store.ReapParams) (*store.ReapResult, error) {
	out := &store.ReapResult{}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		*out = store.ReapResult{}
		// SKIP LOCKED: a lease whose result is being committed right now is not expired, and a
		// reaper on another coordinator never waits on this one.
		rows, err := tx.Query(ctx, `SELECT id, token, batch_id, agent_id, session_id, expires_at >= deadline FROM items
			WHERE state = 'leased' AND expires_at <= $1 ORDER BY id FOR UPDATE SKIP LOCKED`, ms(p.Now))
		if err != nil {
			return fmt.Errorf("select expired leases: %w", err)
		}
		var timedOut []bool
		var ids []int64
		for rows.Next() {
			var h store.LeaseHolder
			var pastDeadline bool
			if err := rows.Scan(&h.ItemID, &h.Token, &h.BatchID, &h.AgentID, &h.SessionID, &pastDeadline); err != nil {
				rows.Close()
				return err
			}
			out.Expired = append(out.Expired, h)
			timedOut = append(timedOut, pastDeadline)
			ids = append(ids, h.ItemID)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("select expired leases: %w", err)
		}
		if len(out.Expired) == 0 {
			return nil
		}
		// Already locked above; this reads their heads.
		r, err := lockItems(ctx, tx, ids, p.Now)
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
		out.FinishedBatches, err = s.closeReport(ctx, tx, r)
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
	ids := make([]int64, len(p.Leases))
	for i, l := range p.Leases {
		ids[i] = l.ItemID
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		*out = store.ReapResult{}
		r, err := lockItems(ctx, tx, ids, p.Now)
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
		out.FinishedBatches, err = s.closeReport(ctx, tx, r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("release leases: %w", err)
	}
	return out, nil
}

func (s *Store) LeasesHeldBy(ctx context.Context, agentID string) ([]store.LeaseHolder, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, token, batch_id, agent_id, session_id FROM items WHERE state = 'leased' AND agent_id = $1 ORDER BY id`,
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
	cols := "i." + itemColumnNames[0]
	for _, c := range itemColumnNames[1:] {
		cols += ", i." + c
	}
	rows, err := s.pool.Query(ctx, `SELECT `+cols+`, r.token, r.dossier, r.duration_ms,
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
	return s.queryResults(ctx, "r.batch_id = $1", batchID)
}

func (s *Store) Result(ctx context.Context, itemID int64) (*store.ResultRow, error) {
	rows, err := s.queryResults(ctx, "r.item_id = $1", itemID)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("result of item %d: %w", itemID, store.ErrNotFound)
	}
	return rows[0], nil
}

// runEndingKinds are the events Attempts returns.
var runEndingKinds = []string{string(store.EventSucceeded), string(store.EventRetrying), string(store.EventFailed),
	string(store.EventFailedPermanent), string(store.EventDuplicate), string(store.EventStale)}

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

func (s *Store) events(ctx context.Context, batchID string, kinds []string) ([]*store.Event, error) {
	q := `SELECT id, item_id, batch_id, instance_type, token, attempt, kind, agent_id, message, duration_ms, cost_usd, at
		FROM events WHERE batch_id = $1`
	args := []any{batchID}
	if len(kinds) > 0 {
		q += ` AND kind = ANY($2)`
		args = append(args, kinds)
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY id`, args...)
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
	tag, err := s.pool.Exec(ctx, `UPDATE batches SET output_dir = $1, consolidation_error = $2, consolidated_at = $3 WHERE id = $4`,
		p.OutputDir, p.Error, at, p.ID)
	if err != nil {
		return fmt.Errorf("mark batch %s consolidated: %w", p.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("batch %q: %w", p.ID, store.ErrNotFound)
	}
	_, _ = s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, p.ID)
	return nil
}
