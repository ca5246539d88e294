// Package sqlite is the embedded Store backend: one SQLite file in WAL mode, for a single
// coordinator. Writes go through one connection (SQLite has one writer anyway) and every
// multi-row change is one transaction, so a group of results costs one commit.
package sqlite

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	_ "modernc.org/sqlite"

	"github.com/sportsintel/enrich/coordinator/store"
)

//go:embed schema.sql
var schemaSQL string

// Store is a store.Store on one SQLite file.
type Store struct {
	write *sql.DB // one connection: SQLite serialises writers, queueing here is cheaper than busy retries
	read  *sql.DB
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path and applies the schema.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty path")
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()

	write, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	if _, err := write.ExecContext(ctx, schemaSQL); err != nil {
		write.Close()
		return nil, fmt.Errorf("apply schema to %s: %w", path, err)
	}
	if err := addMissingColumns(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("upgrade schema of %s: %w", path, err)
	}
	read, err := sql.Open("sqlite", dsn)
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	read.SetMaxOpenConns(4)
	return &Store{write: write, read: read}, nil
}

// addedColumns are columns added after the first release: a database created before them gets
// them on open (CREATE TABLE IF NOT EXISTS leaves an existing table as it is).
var addedColumns = []struct{ table, column, ddl string }{
	{"batches", "budget_usd", "REAL NOT NULL DEFAULT 0"},
	{"batches", "spent_usd", "REAL NOT NULL DEFAULT 0"},
	{"batches", "consolidation_owner", "TEXT NOT NULL DEFAULT ''"},
	{"batches", "consolidation_until", "INTEGER NOT NULL DEFAULT 0"},
}

func addMissingColumns(ctx context.Context, db *sql.DB) error {
	for _, c := range addedColumns {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, c.table, c.column).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if _, err := db.ExecContext(ctx, `ALTER TABLE `+c.table+` ADD COLUMN `+c.column+` `+c.ddl); err != nil {
				return fmt.Errorf("add %s.%s: %w", c.table, c.column, err)
			}
		}
	}
	return nil
}

func (s *Store) Close() error {
	return errors.Join(s.read.Close(), s.write.Close())
}

func (s *Store) Ping(ctx context.Context) error {
	return s.read.PingContext(ctx)
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (s *Store) CreateBatch(ctx context.Context, p store.CreateBatchParams) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO batches (id, source, state, created_at, output_dir) VALUES (?, ?, ?, ?, ?)`,
			p.ID, p.Source, store.BatchPrepared, ms(p.CreatedAt), p.OutputDir); err != nil {
			return fmt.Errorf("insert batch: %w", err)
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO items
			(batch_id, entity_id, entity_type, name, instance_type, priority, entity, state, max_attempts, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("prepare insert item: %w", err)
		}
		defer stmt.Close()
		for _, it := range p.Items {
			if _, err := stmt.ExecContext(ctx, p.ID, it.EntityID, it.EntityType, it.Name, it.InstanceType,
				int(it.Priority), it.Entity, store.ItemPending, it.MaxAttempts, ms(p.CreatedAt)); err != nil {
				return fmt.Errorf("insert item %q: %w", it.EntityID, err)
			}
		}
		return nil
	})
}

const batchColumns = `id, source, state, created_at, launched_at, finished_at, consolidated_at, output_dir, consolidation_error,
	budget_usd, spent_usd`

func scanBatch(row interface{ Scan(...any) error }) (*store.Batch, error) {
	var b store.Batch
	var created, launched, finished, consolidated int64
	if err := row.Scan(&b.ID, &b.Source, &b.State, &created, &launched, &finished, &consolidated,
		&b.OutputDir, &b.ConsolidationError, &b.BudgetUSD, &b.SpentUSD); err != nil {
		return nil, err
	}
	b.CreatedAt, b.LaunchedAt, b.FinishedAt, b.ConsolidatedAt = fromMS(created), fromMS(launched), fromMS(finished), fromMS(consolidated)
	return &b, nil
}

func (s *Store) GetBatch(ctx context.Context, id string) (*store.Batch, error) {
	b, err := scanBatch(s.read.QueryRowContext(ctx, `SELECT `+batchColumns+` FROM batches WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("batch %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get batch %q: %w", id, err)
	}
	return b, nil
}

func (s *Store) ListBatches(ctx context.Context, limit int) ([]*store.Batch, error) {
	if limit <= 0 {
		limit = 50
	}
	out, err := s.queryBatches(ctx, `SELECT `+batchColumns+` FROM batches ORDER BY created_at DESC, id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	return out, nil
}

// queryBatches runs a query selecting batchColumns and scans its rows.
func (s *Store) queryBatches(ctx context.Context, q string, args ...any) ([]*store.Batch, error) {
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Batch
	for rows.Next() {
		b, err := scanBatch(rows)
		if err != nil {
			return nil, fmt.Errorf("scan batch: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

func batchState(ctx context.Context, tx *sql.Tx, id string) (store.BatchState, error) {
	var st store.BatchState
	err := tx.QueryRowContext(ctx, `SELECT state FROM batches WHERE id = ?`, id).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("batch %q: %w", id, store.ErrNotFound)
	}
	return st, err
}

func (s *Store) LaunchBatch(ctx context.Context, p store.LaunchBatchParams) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		st, err := batchState(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		if st == store.BatchCancelled {
			return fmt.Errorf("batch %q is cancelled: %w", p.ID, store.ErrInvalidState)
		}
		if st == store.BatchRunning && p.InstanceTypes == nil && p.BudgetUSD <= 0 {
			return fmt.Errorf("batch %q is already running: %w", p.ID, store.ErrInvalidState)
		}
		var budget, spent float64
		if err := tx.QueryRowContext(ctx, `SELECT budget_usd, spent_usd FROM batches WHERE id = ?`, p.ID).Scan(&budget, &spent); err != nil {
			return fmt.Errorf("batch %q budget: %w", p.ID, err)
		}
		if p.BudgetUSD > 0 {
			budget = p.BudgetUSD
		}
		if budget > 0 && spent >= budget {
			return fmt.Errorf("batch %q already spent $%.2f of its $%.2f budget; launch it with a larger budget: %w",
				p.ID, spent, budget, store.ErrInvalidState)
		}
		now := ms(p.Now)
		// Resuming an exhausted batch or raising a running one's budget leaves skipped types alone.
		resume := st == store.BatchBudgetExhausted || st == store.BatchRunning
		if p.InstanceTypes == nil && !resume {
			if _, err := tx.ExecContext(ctx, `UPDATE items SET state = ?, updated_at = ? WHERE batch_id = ? AND state = ?`,
				store.ItemPending, now, p.ID, store.ItemSkipped); err != nil {
				return fmt.Errorf("unskip items: %w", err)
			}
		} else if p.InstanceTypes != nil {
			in, args := inList(p.InstanceTypes)
			if _, err := tx.ExecContext(ctx, `UPDATE items SET state = ?, updated_at = ? WHERE batch_id = ? AND state = ? AND instance_type IN `+in,
				append([]any{store.ItemPending, now, p.ID, store.ItemSkipped}, args...)...); err != nil {
				return fmt.Errorf("unskip items: %w", err)
			}
			// A running batch keeps the types already running; only a prepared batch skips the rest.
			if st == store.BatchPrepared {
				if _, err := tx.ExecContext(ctx, `UPDATE items SET state = ?, updated_at = ? WHERE batch_id = ? AND state = ? AND instance_type NOT IN `+in,
					append([]any{store.ItemSkipped, now, p.ID, store.ItemPending}, args...)...); err != nil {
					return fmt.Errorf("skip items: %w", err)
				}
			}
		}
		var open int
		q, args := `SELECT count(*) FROM items WHERE batch_id = ? AND state IN (?, ?)`, []any{p.ID, store.ItemPending, store.ItemLeased}
		if p.InstanceTypes != nil {
			in, typeArgs := inList(p.InstanceTypes)
			q += ` AND instance_type IN ` + in
			args = append(args, typeArgs...)
		}
		if err := tx.QueryRowContext(ctx, q, args...).Scan(&open); err != nil {
			return fmt.Errorf("count open items: %w", err)
		}
		if open == 0 {
			return fmt.Errorf("batch %q has no items to run for the selected instance types: %w", p.ID, store.ErrInvalidState)
		}
		_, err = tx.ExecContext(ctx, `UPDATE batches SET state = ?, launched_at = CASE WHEN launched_at = 0 THEN ? ELSE launched_at END,
			finished_at = 0, budget_usd = ? WHERE id = ?`, store.BatchRunning, now, budget, p.ID)
		if err == nil && st == store.BatchBudgetExhausted {
			// Resumed: its next end is a new one, to be consolidated again.
			_, err = tx.ExecContext(ctx, `UPDATE batches SET consolidated_at = 0, consolidation_error = '' WHERE id = ?`, p.ID)
		}
		return err
	})
}

func inList[T any](vals []T) (string, []any) {
	if len(vals) == 0 {
		return "(NULL)", nil
	}
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return "(" + strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ") + ")", args
}

func (s *Store) CancelBatch(ctx context.Context, p store.CancelBatchParams) ([]store.LeaseHolder, error) {
	var held []store.LeaseHolder
	err := s.tx(ctx, func(tx *sql.Tx) error {
		st, err := batchState(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		if st.Terminal() {
			return fmt.Errorf("batch %q already ended (%s): %w", p.ID, st, store.ErrInvalidState)
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, token, agent_id, session_id FROM items WHERE batch_id = ? AND state = ?`, p.ID, store.ItemLeased)
		if err != nil {
			return fmt.Errorf("list leased items: %w", err)
		}
		for rows.Next() {
			h := store.LeaseHolder{BatchID: p.ID}
			if err := rows.Scan(&h.ItemID, &h.Token, &h.AgentID, &h.SessionID); err != nil {
				rows.Close()
				return err
			}
			held = append(held, h)
		}
		rows.Close()
		now := ms(p.Now)
		reason := "cancelled"
		if p.Reason != "" {
			reason = "cancelled: " + p.Reason
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO events (item_id, batch_id, instance_type, token, attempt, kind, agent_id, message, duration_ms, cost_usd, at)
			SELECT id, batch_id, instance_type, CASE WHEN state = ? THEN token ELSE 0 END, attempt, ?, agent_id, ?, 0, 0, ?
			FROM items WHERE batch_id = ? AND state IN (?, ?, ?)`,
			store.ItemLeased, store.EventCancelled, reason, now, p.ID, store.ItemPending, store.ItemLeased, store.ItemSkipped); err != nil {
			return fmt.Errorf("record cancellations: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE items SET state = ?, last_error = ?, updated_at = ? WHERE batch_id = ? AND state IN (?, ?, ?)`,
			store.ItemCancelled, reason, now, p.ID, store.ItemPending, store.ItemLeased, store.ItemSkipped); err != nil {
			return fmt.Errorf("cancel items: %w", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE batches SET state = ?, finished_at = ? WHERE id = ?`, store.BatchCancelled, now, p.ID)
		return err
	})
	return held, err
}

func (s *Store) RetryFailed(ctx context.Context, p store.RetryFailedParams) (int, error) {
	var n int
	err := s.tx(ctx, func(tx *sql.Tx) error {
		st, err := batchState(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		if st == store.BatchCancelled || st == store.BatchPrepared {
			return fmt.Errorf("batch %q is %s: %w", p.ID, st, store.ErrInvalidState)
		}
		if st == store.BatchBudgetExhausted {
			return fmt.Errorf("batch %q spent its budget; launch it with a larger budget first: %w", p.ID, store.ErrInvalidState)
		}
		now := ms(p.Now)
		if _, err := tx.ExecContext(ctx, `INSERT INTO events (item_id, batch_id, instance_type, token, attempt, kind, agent_id, message, duration_ms, cost_usd, at)
			SELECT id, batch_id, instance_type, 0, attempt, ?, '', ?, 0, 0, ? FROM items WHERE batch_id = ? AND state = ?`,
			store.EventRequeued, fmt.Sprintf("requeued with %d more attempts", p.Attempts), now, p.ID, store.ItemFailed); err != nil {
			return fmt.Errorf("record requeues: %w", err)
		}
		res, err := tx.ExecContext(ctx, `UPDATE items SET state = ?, max_attempts = attempt + ?, next_attempt_at = 0, updated_at = ?
			WHERE batch_id = ? AND state = ?`, store.ItemPending, p.Attempts, now, p.ID, store.ItemFailed)
		if err != nil {
			return fmt.Errorf("requeue failed items: %w", err)
		}
		affected, _ := res.RowsAffected()
		n = int(affected)
		if n > 0 {
			_, err = tx.ExecContext(ctx, `UPDATE batches SET state = ?, finished_at = 0, consolidated_at = 0 WHERE id = ?`, store.BatchRunning, p.ID)
		}
		return err
	})
	return n, err
}

func (s *Store) BatchCounts(ctx context.Context, id string) (map[string]store.StateCounts, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT instance_type, state, count(*),
		sum(CASE WHEN attempt > 0 THEN 1 ELSE 0 END) FROM items WHERE batch_id = ? GROUP BY instance_type, state`, id)
	if err != nil {
		return nil, fmt.Errorf("count items: %w", err)
	}
	defer rows.Close()
	out := map[string]store.StateCounts{}
	for rows.Next() {
		var typ string
		var st store.ItemState
		var n, attempted int
		if err := rows.Scan(&typ, &st, &n, &attempted); err != nil {
			return nil, err
		}
		c := out[typ]
		c.Add(st, n, attempted)
		out[typ] = c
	}
	return out, rows.Err()
}

var itemColumnNames = []string{"id", "batch_id", "entity_id", "entity_type", "name", "instance_type", "priority",
	"entity", "state", "attempt", "max_attempts", "token", "agent_id", "session_id", "leased_at", "expires_at",
	"deadline", "next_attempt_at", "updated_at", "last_error", "stderr_tail"}

var itemColumns = strings.Join(itemColumnNames, ", ")

// scanItem scans the item columns, then any extra columns the query appended.
func scanItem(row interface{ Scan(...any) error }, extra ...any) (*store.Item, error) {
	var it store.Item
	var leased, expires, deadline, next, updated int64
	dest := append([]any{&it.ID, &it.BatchID, &it.EntityID, &it.EntityType, &it.Name, &it.InstanceType, &it.Priority,
		&it.Entity, &it.State, &it.Attempt, &it.MaxAttempts, &it.Token, &it.AgentID, &it.SessionID,
		&leased, &expires, &deadline, &next, &updated, &it.LastError, &it.StderrTail}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	it.LeasedAt, it.ExpiresAt, it.Deadline = fromMS(leased), fromMS(expires), fromMS(deadline)
	it.NextAttemptAt, it.UpdatedAt = fromMS(next), fromMS(updated)
	return &it, nil
}

func (s *Store) ListItems(ctx context.Context, p store.ListItemsParams) ([]*store.Item, error) {
	q := `SELECT ` + itemColumns + ` FROM items WHERE batch_id = ?`
	args := []any{p.BatchID}
	if len(p.States) > 0 {
		in, a := inList(p.States)
		q += ` AND state IN ` + in
		args = append(args, a...)
	}
	if p.InstanceType != "" {
		q += ` AND instance_type = ?`
		args = append(args, p.InstanceType)
	}
	q += ` ORDER BY id`
	if p.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, p.Limit)
	}
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list items: %w", err)
	}
	defer rows.Close()
	var out []*store.Item
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, fmt.Errorf("scan item: %w", err)
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

func (s *Store) GetItem(ctx context.Context, batchID, entityID string) (*store.Item, error) {
	it, err := scanItem(s.read.QueryRowContext(ctx, `SELECT `+itemColumns+` FROM items WHERE batch_id = ? AND entity_id = ?`, batchID, entityID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("entity %q in batch %q: %w", entityID, batchID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get item: %w", err)
	}
	return it, nil
}

func (s *Store) ItemByID(ctx context.Context, id int64) (*store.Item, error) {
	it, err := scanItem(s.read.QueryRowContext(ctx, `SELECT `+itemColumns+` FROM items WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("item %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get item %d: %w", id, err)
	}
	return it, nil
}

type candidate struct {
	id         int64
	priority   int
	typ        string
	budgetLeft float64
}

func (s *Store) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Item, error) {
	if p.Limit <= 0 || len(p.InstanceTypes) == 0 {
		return nil, nil
	}
	var claimed []*store.Item
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := ms(p.Now)
		var cands []candidate
		for _, typ := range p.InstanceTypes {
			room := p.Limit
			if limit := p.MaxConcurrent[typ]; limit > 0 {
				var leased int
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM items WHERE instance_type = ? AND state = 'leased'`,
					typ).Scan(&leased); err != nil {
					return fmt.Errorf("count leased %s: %w", typ, err)
				}
				room = min(room, limit-leased)
			}
			if room <= 0 {
				continue
			}
			rows, err := tx.QueryContext(ctx, `SELECT i.id, i.priority, CASE WHEN b.budget_usd > 0 THEN b.budget_usd - b.spent_usd ELSE 0 END
				FROM items i JOIN batches b ON b.id = i.batch_id
				WHERE i.instance_type = ? AND i.state = 'pending' AND i.next_attempt_at <= ? AND b.state = ?
				AND (b.budget_usd = 0 OR b.spent_usd < b.budget_usd)
				ORDER BY i.priority DESC, i.id LIMIT ?`, typ, now, store.BatchRunning, room)
			if err != nil {
				return fmt.Errorf("select pending %s: %w", typ, err)
			}
			for rows.Next() {
				c := candidate{typ: typ}
				if err := rows.Scan(&c.id, &c.priority, &c.budgetLeft); err != nil {
					rows.Close()
					return err
				}
				cands = append(cands, c)
			}
			rows.Close()
		}
		// Each type's query is already ordered; merging keeps priority-then-age across types.
		sort.Slice(cands, func(i, j int) bool {
			if cands[i].priority != cands[j].priority {
				return cands[i].priority > cands[j].priority
			}
			return cands[i].id < cands[j].id
		})
		if len(cands) > p.Limit {
			cands = cands[:p.Limit]
		}
		if len(cands) == 0 {
			return nil
		}
		// One UPDATE per instance type (the deadline depends on the type) and one INSERT for the
		// grant events: the claim path is the hottest transaction there is.
		byType := map[string][]candidate{}
		var typeOrder []string
		for _, c := range cands {
			if _, ok := byType[c.typ]; !ok {
				typeOrder = append(typeOrder, c.typ)
			}
			byType[c.typ] = append(byType[c.typ], c)
		}
		budgetLeft := make(map[int64]float64, len(cands))
		for _, c := range cands {
			budgetLeft[c.id] = c.budgetLeft
		}
		for _, typ := range typeOrder {
			timeout := p.Timeouts[typ]
			if timeout <= 0 {
				timeout = defaultTimeout
			}
			deadline := now + timeout.Milliseconds()
			expires := now + min(p.LeaseTTL, timeout).Milliseconds()
			idList := make([]int64, len(byType[typ]))
			for k, c := range byType[typ] {
				idList[k] = c.id
			}
			in, idArgs := inList(idList)
			rows, err := tx.QueryContext(ctx, `UPDATE items SET state = ?, token = token + 1, attempt = attempt + 1,
				agent_id = ?, session_id = ?, leased_at = ?, deadline = ?, expires_at = ?, updated_at = ?
				WHERE state = ? AND id IN `+in+` RETURNING `+itemColumns,
				append([]any{store.ItemLeased, p.AgentID, p.SessionID, now, deadline, expires, now, store.ItemPending}, idArgs...)...)
			if err != nil {
				return fmt.Errorf("claim %s items: %w", typ, err)
			}
			for rows.Next() {
				it, err := scanItem(rows)
				if err != nil {
					rows.Close()
					return fmt.Errorf("scan claimed item: %w", err)
				}
				it.BudgetLeftUSD = budgetLeft[it.ID]
				claimed = append(claimed, it)
			}
			if err := errors.Join(rows.Err(), rows.Close()); err != nil {
				return fmt.Errorf("claim %s items: %w", typ, err)
			}
		}
		// RETURNING order is unspecified; callers get the claim order.
		sort.Slice(claimed, func(i, j int) bool {
			if claimed[i].Priority != claimed[j].Priority {
				return claimed[i].Priority > claimed[j].Priority
			}
			return claimed[i].ID < claimed[j].ID
		})
		const eventParams = 11
		for start := 0; start < len(claimed); start += maxRowsPerInsert {
			chunk := claimed[start:min(start+maxRowsPerInsert, len(claimed))]
			args := make([]any, 0, len(chunk)*eventParams)
			for _, it := range chunk {
				args = append(args, it.ID, it.BatchID, it.InstanceType, it.Token, it.Attempt, store.EventGranted, p.AgentID, "", 0, 0, now)
			}
			values := strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?), ", len(chunk)), ", ")
			if _, err := tx.ExecContext(ctx, `INSERT INTO events (item_id, batch_id, instance_type, token, attempt, kind, agent_id,
				message, duration_ms, cost_usd, at) VALUES `+values, args...); err != nil {
				return fmt.Errorf("record grants: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// maxRowsPerInsert keeps a multi-row INSERT well under SQLite's bound-parameter limit.
const maxRowsPerInsert = 256

// defaultTimeout bounds a lease whose type has no configured timeout.
const defaultTimeout = 15 * time.Minute
