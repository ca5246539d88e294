package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sportsintel/enrich/coordinator/store"
)

// itemHead is what the report path needs to decide an outcome.
type itemHead struct {
	batchID, instanceType, agentID, sessionID string
	state                                     store.ItemState
	token                                     int64
	attempt, maxAttempts                      int
}

func loadHead(ctx context.Context, stmt *sql.Stmt, id int64) (*itemHead, error) {
	var h itemHead
	err := stmt.QueryRowContext(ctx, id).Scan(&h.batchID, &h.instanceType, &h.agentID, &h.sessionID, &h.state, &h.token, &h.attempt, &h.maxAttempts)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return &h, err
}

const headQuery = `SELECT batch_id, instance_type, agent_id, session_id, state, token, attempt, max_attempts FROM items WHERE id = ?`

// reportTx holds the prepared statements of one report transaction.
type reportTx struct {
	tx                                                *sql.Tx
	head, succeed, insertResult, event, failTo, spend *sql.Stmt
	now                                               int64
	touched                                           map[string]bool
}

func prepareReport(ctx context.Context, tx *sql.Tx, now time.Time) (*reportTx, error) {
	r := &reportTx{tx: tx, now: ms(now), touched: map[string]bool{}}
	var err error
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = tx.PrepareContext(ctx, q)
		return st
	}
	r.head = prep(headQuery)
	r.succeed = prep(`UPDATE items SET state = ?, agent_id = ?, last_error = '', stderr_tail = '', expires_at = 0, updated_at = ? WHERE id = ?`)
	r.insertResult = prep(`INSERT INTO results (item_id, batch_id, token, agent_id, dossier, duration_ms, cost_usd,
		input_tokens, output_tokens, turns, session_id, runner, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	r.event = prep(insertEvent)
	r.spend = prep(`UPDATE batches SET spent_usd = spent_usd + ? WHERE id = ?`)
	r.failTo = prep(`UPDATE items SET state = ?, next_attempt_at = ?, last_error = ?, stderr_tail = ?, expires_at = 0, updated_at = ? WHERE id = ?`)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("prepare report statements: %w", err)
	}
	return r, nil
}

func (r *reportTx) close() {
	for _, st := range []*sql.Stmt{r.head, r.succeed, r.insertResult, r.event, r.failTo, r.spend} {
		if st != nil {
			st.Close()
		}
	}
}

const insertEvent = `INSERT INTO events (item_id, batch_id, instance_type, token, attempt, kind, agent_id, message, duration_ms, cost_usd, at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func (r *reportTx) record(ctx context.Context, id int64, h *itemHead, token int64, agent string, kind store.EventKind, msg string, m store.Metrics) error {
	_, err := r.event.ExecContext(ctx, id, h.batchID, h.instanceType, token, h.attempt, kind, agent, msg, m.Duration.Milliseconds(), m.CostUSD, r.now)
	if err != nil {
		return fmt.Errorf("record %s event of item %d: %w", kind, id, err)
	}
	// Every recorded run was paid for, whatever became of its result: it counts against the
	// batch's budget.
	if m.CostUSD > 0 {
		if _, err := r.spend.ExecContext(ctx, m.CostUSD, h.batchID); err != nil {
			return fmt.Errorf("add the cost of item %d to its batch: %w", id, err)
		}
		r.touched[h.batchID] = true
	}
	return nil
}

func (r *reportTx) complete(ctx context.Context, c store.Completion) (store.CompletionResult, error) {
	h, err := loadHead(ctx, r.head, c.Lease.ItemID)
	if err != nil || h == nil {
		return store.CompletionResult{Outcome: store.OutcomeStale}, err
	}
	res := store.CompletionResult{BatchID: h.batchID}
	if c.Lease.Token > h.token || c.Lease.Token <= 0 {
		// Never granted: nothing to record against a lease that does not exist.
		res.Outcome = store.OutcomeStale
		return res, nil
	}
	switch h.state {
	case store.ItemSucceeded:
		// The same lease's result sent again (its Ack was lost) is the result already stored,
		// not more work: acknowledge it again and record nothing.
		var stored int64
		if err := r.tx.QueryRowContext(ctx, `SELECT token FROM results WHERE item_id = ?`, c.Lease.ItemID).Scan(&stored); err != nil {
			return res, fmt.Errorf("stored result of item %d: %w", c.Lease.ItemID, err)
		}
		if stored == c.Lease.Token {
			res.Outcome, res.Redelivered = store.OutcomeAccepted, true
			return res, nil
		}
		res.Outcome = store.OutcomeDuplicate
		return res, r.record(ctx, c.Lease.ItemID, h, c.Lease.Token, c.AgentID, store.EventDuplicate, "dropped: item already has a result", c.Metrics)
	case store.ItemCancelled:
		res.Outcome = store.OutcomeStale
		return res, r.record(ctx, c.Lease.ItemID, h, c.Lease.Token, c.AgentID, store.EventStale, "dropped: item was cancelled", c.Metrics)
	}
	// The work is real and paid for: a result from an older lease still wins if no result exists,
	// and the newer lease (if any) is superseded.
	if h.state == store.ItemLeased && h.token != c.Lease.Token {
		res.Superseded = &store.LeaseHolder{
			LeaseRef: store.LeaseRef{ItemID: c.Lease.ItemID, Token: h.token},
			BatchID:  h.batchID, AgentID: h.agentID, SessionID: h.sessionID,
		}
		if err := r.record(ctx, c.Lease.ItemID, h, h.token, h.agentID, store.EventSuperseded,
			fmt.Sprintf("a result from the older lease %d won", c.Lease.Token), store.Metrics{}); err != nil {
			return res, err
		}
	}
	m := c.Metrics
	if _, err := r.insertResult.ExecContext(ctx, c.Lease.ItemID, h.batchID, c.Lease.Token, c.AgentID, c.Dossier,
		m.Duration.Milliseconds(), m.CostUSD, m.InputTokens, m.OutputTokens, m.Turns, m.SessionID, m.Runner, r.now); err != nil {
		return res, fmt.Errorf("insert result of item %d: %w", c.Lease.ItemID, err)
	}
	if _, err := r.succeed.ExecContext(ctx, store.ItemSucceeded, c.AgentID, r.now, c.Lease.ItemID); err != nil {
		return res, fmt.Errorf("mark item %d succeeded: %w", c.Lease.ItemID, err)
	}
	r.touched[h.batchID] = true
	res.Outcome = store.OutcomeAccepted
	return res, r.record(ctx, c.Lease.ItemID, h, c.Lease.Token, c.AgentID, store.EventSucceeded, "", m)
}

// fail applies a failed attempt of the item's current lease.
func (r *reportTx) fail(ctx context.Context, f store.Failure, retryDelay func(int) time.Duration) (store.FailureResult, error) {
	h, err := loadHead(ctx, r.head, f.Lease.ItemID)
	if err != nil || h == nil {
		return store.FailureResult{Outcome: store.OutcomeStale}, err
	}
	res := store.FailureResult{BatchID: h.batchID}
	if f.Lease.Token > h.token || f.Lease.Token <= 0 {
		res.Outcome = store.OutcomeStale
		return res, nil
	}
	if h.state != store.ItemLeased || h.token != f.Lease.Token {
		res.Outcome = store.OutcomeStale
		return res, r.record(ctx, f.Lease.ItemID, h, f.Lease.Token, f.AgentID, store.EventStale, "ignored failure: "+f.Message, f.Metrics)
	}
	next, kind := store.ItemPending, store.EventRetrying
	var nextAt int64
	switch {
	case !f.Retryable:
		next, kind, res.Final = store.ItemFailed, store.EventFailedPermanent, true
	case h.attempt >= h.maxAttempts:
		next, kind, res.Final = store.ItemFailed, store.EventFailed, true
	case retryDelay != nil:
		nextAt = r.now + retryDelay(h.attempt).Milliseconds()
	}
	if _, err := r.failTo.ExecContext(ctx, next, nextAt, f.Message, f.StderrTail, r.now, f.Lease.ItemID); err != nil {
		return res, fmt.Errorf("record failure of item %d: %w", f.Lease.ItemID, err)
	}
	r.touched[h.batchID] = true
	res.Outcome = store.OutcomeAccepted
	return res, r.record(ctx, f.Lease.ItemID, h, f.Lease.Token, f.AgentID, kind, f.Message, f.Metrics)
}

// finishBatches ends every touched running batch that has no open item left.
func (r *reportTx) finishBatches(ctx context.Context) ([]string, error) {
	var finished []string
	for id := range r.touched {
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
				store.BatchBudgetExhausted, r.now, id); err != nil {
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
		if _, err := r.tx.ExecContext(ctx, `UPDATE batches SET state = ?, finished_at = ? WHERE id = ?`, end, r.now, id); err != nil {
			return nil, fmt.Errorf("finish batch %s: %w", id, err)
		}
		finished = append(finished, id)
	}
	return finished, nil
}

func (s *Store) Report(ctx context.Context, p store.ReportParams) (*store.ReportResult, error) {
	out := &store.ReportResult{}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		*out = store.ReportResult{}
		r, err := prepareReport(ctx, tx, p.Now)
		if err != nil {
			return err
		}
		defer r.close()
		for _, c := range p.Completions {
			res, err := r.complete(ctx, c)
			if err != nil {
				return err
			}
			out.Completions = append(out.Completions, res)
		}
		for _, f := range p.Failures {
			res, err := r.fail(ctx, f, p.RetryDelay)
			if err != nil {
				return err
			}
			out.Failures = append(out.Failures, res)
		}
		out.FinishedBatches, err = r.finishBatches(ctx)
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
			WHERE state = ? AND expires_at <= ?`, store.ItemLeased, ms(p.Now))
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
		r, err := prepareReport(ctx, tx, p.Now)
		if err != nil {
			return err
		}
		defer r.close()
		for i, h := range out.Expired {
			msg := "lease expired: no heartbeat from agent " + h.AgentID
			if timedOut[i] {
				msg = "timed out: the run exceeded its instance type's timeout"
			}
			if _, err := r.fail(ctx, store.Failure{Lease: h.LeaseRef, AgentID: h.AgentID, Retryable: true, Message: msg}, p.RetryDelay); err != nil {
				return err
			}
		}
		out.FinishedBatches, err = r.finishBatches(ctx)
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
		r, err := prepareReport(ctx, tx, p.Now)
		if err != nil {
			return err
		}
		defer r.close()
		for _, l := range p.Leases {
			h, err := loadHead(ctx, r.head, l.ItemID)
			if err != nil {
				return err
			}
			// Only the item's current lease can be released; anything else already ended.
			if h == nil || h.state != store.ItemLeased || h.token != l.Token {
				continue
			}
			if _, err := r.fail(ctx, store.Failure{Lease: l, AgentID: h.agentID, Retryable: true, Message: p.Message}, p.RetryDelay); err != nil {
				return err
			}
			out.Expired = append(out.Expired, store.LeaseHolder{LeaseRef: l, BatchID: h.batchID, AgentID: h.agentID, SessionID: h.sessionID})
		}
		out.FinishedBatches, err = r.finishBatches(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("release leases: %w", err)
	}
	return out, nil
}

func (s *Store) LeasesHeldBy(ctx context.Context, agentID string) ([]store.LeaseHolder, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, token, batch_id, agent_id, session_id FROM items WHERE state = ? AND agent_id = ?`,
		store.ItemLeased, agentID)
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
