// Package postgres is the Store backend for several coordinators sharing one PostgreSQL database.
//
// Concurrency rules, which every method follows so that coordinators never step on each other:
//   - Claims pick pending rows with FOR UPDATE SKIP LOCKED: two coordinators claiming at once get
//     disjoint items and never wait for each other.
//   - Anything that changes an item first locks its row (in item id order, so two writers never
//     deadlock on items), decides from the locked row, and writes the item's events while it
//     still holds the lock: an item's events are therefore in its commit order.
//   - A batch is finished by whoever locks its row after the last open item closed: the batch row
//     is locked before the "no open item left" check, so of two reports closing the last two
//     items, the second to lock sees the first's commit.
//   - A fleet-wide cap (max_concurrent) is checked under a per-type transaction advisory lock.
//   - Serialization failures and deadlocks (SQLSTATE 40001, 40P01) are retried whole.
//
// Claims, heartbeat extensions and reports are batched: each is a handful of statements for the
// whole group, whatever its size.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sportsintel/enrich/coordinator/store"
)

// Store is a store.Store on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
	// channel is the LISTEN/NOTIFY channel of this database's batch changes.
	channel string
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.AgentRegistry = (*Store)(nil)
	_ store.Leadership    = (*Store)(nil)
	_ store.ChangeFeed    = (*Store)(nil)
)

// notifyChannel carries the ids of changed batches to every coordinator listening.
const notifyChannel = "enrich_batch_changed"

// Open connects to the database at url (postgres://...), applies pending migrations and returns
// the store. Several coordinators may open the same database at once: migrations run under an
// advisory lock, one coordinator at a time.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The URL may carry a password: never echo it.
		return nil, errors.New("postgres: cannot parse the store URL (expected postgres://user:password@host:port/database)")
	}
	if cfg.MaxConns < 8 {
		// Claims, commits, heartbeats, the reaper and watchers run at once; a pool of the
		// default size (the CPU count) would queue them behind each other on a small host.
		cfg.MaxConns = 8
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect to %s: %w", cfg.ConnConfig.Host, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool, channel: notifyChannel}, nil
}

func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

func (s *Store) Ping(ctx context.Context) error {
	return s.pool.Ping(ctx)
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

// maxTxAttempts bounds the retries of a transaction that lost a serialization race or deadlock.
const maxTxAttempts = 8

// tx runs fn in a transaction, retrying it whole when PostgreSQL aborted it to break a deadlock
// or a serialization conflict. fn must reset whatever it returns through closures.
func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		if err == nil || !retryable(err) || attempt == maxTxAttempts {
			return err
		}
		wait := time.Duration(attempt) * time.Duration(1+rand.IntN(5)) * time.Millisecond
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// notify tells every listening coordinator that these batches changed; PostgreSQL delivers it
// at commit, once per distinct batch.
func (s *Store) notify(ctx context.Context, tx pgx.Tx, batchIDs []string) error {
	if len(batchIDs) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, b) FROM unnest($2::text[]) AS b`, s.channel, batchIDs); err != nil {
		return fmt.Errorf("notify batch changes: %w", err)
	}
	return nil
}

func (s *Store) CreateBatch(ctx context.Context, p store.CreateBatchParams) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO batches (id, source, state, created_at, output_dir) VALUES ($1, $2, $3, $4, $5)`,
			p.ID, p.Source, store.BatchPrepared, ms(p.CreatedAt), p.OutputDir); err != nil {
			return fmt.Errorf("insert batch: %w", err)
		}
		// COPY: a 100,000-entity batch is one stream, not 100,000 statements.
		created := ms(p.CreatedAt)
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"items"},
			[]string{"batch_id", "entity_id", "entity_type", "name", "instance_type", "priority", "entity", "state", "max_attempts", "updated_at"},
			pgx.CopyFromSlice(len(p.Items), func(i int) ([]any, error) {
				it := p.Items[i]
				return []any{p.ID, it.EntityID, it.EntityType, it.Name, it.InstanceType, int32(it.Priority), it.Entity,
					string(store.ItemPending), int32(it.MaxAttempts), created}, nil
			}))
		if err != nil {
			return fmt.Errorf("insert items: %w", err)
		}
		return s.notify(ctx, tx, []string{p.ID})
	})
}

const batchColumns = `id, source, state, created_at, launched_at, finished_at, consolidated_at, output_dir, consolidation_error,
	budget_usd, spent_usd`

func scanBatch(row pgx.Row) (*store.Batch, error) {
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
	b, err := scanBatch(s.pool.QueryRow(ctx, `SELECT `+batchColumns+` FROM batches WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	out, err := s.queryBatches(ctx, `SELECT `+batchColumns+` FROM batches ORDER BY created_at DESC, id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	return out, nil
}

// queryBatches runs a query selecting batchColumns and scans its rows.
func (s *Store) queryBatches(ctx context.Context, q string, args ...any) ([]*store.Batch, error) {
	rows, err := s.pool.Query(ctx, q, args...)
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

// lockBatch locks a batch's row for the rest of the transaction and returns its state.
func lockBatch(ctx context.Context, tx pgx.Tx, id string) (store.BatchState, error) {
	var st store.BatchState
	err := tx.QueryRow(ctx, `SELECT state FROM batches WHERE id = $1 FOR UPDATE`, id).Scan(&st)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("batch %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("lock batch %q: %w", id, err)
	}
	return st, nil
}

func (s *Store) LaunchBatch(ctx context.Context, p store.LaunchBatchParams) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		st, err := lockBatch(ctx, tx, p.ID)
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
		if err := tx.QueryRow(ctx, `SELECT budget_usd, spent_usd FROM batches WHERE id = $1`, p.ID).Scan(&budget, &spent); err != nil {
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
			if _, err := tx.Exec(ctx, `UPDATE items SET state = $1, updated_at = $2 WHERE batch_id = $3 AND state = $4`,
				store.ItemPending, now, p.ID, store.ItemSkipped); err != nil {
				return fmt.Errorf("unskip items: %w", err)
			}
		} else if p.InstanceTypes != nil {
			if _, err := tx.Exec(ctx, `UPDATE items SET state = $1, updated_at = $2 WHERE batch_id = $3 AND state = $4 AND instance_type = ANY($5)`,
				store.ItemPending, now, p.ID, store.ItemSkipped, p.InstanceTypes); err != nil {
				return fmt.Errorf("unskip items: %w", err)
			}
			// A running batch keeps the types already running; only a prepared batch skips the rest.
			if st == store.BatchPrepared {
				if _, err := tx.Exec(ctx, `UPDATE items SET state = $1, updated_at = $2 WHERE batch_id = $3 AND state = $4 AND NOT (instance_type = ANY($5))`,
					store.ItemSkipped, now, p.ID, store.ItemPending, p.InstanceTypes); err != nil {
					return fmt.Errorf("skip items: %w", err)
				}
			}
		}
		var open int
		q, args := `SELECT count(*) FROM items WHERE batch_id = $1 AND state IN ($2, $3)`, []any{p.ID, store.ItemPending, store.ItemLeased}
		if p.InstanceTypes != nil {
			q += ` AND instance_type = ANY($4)`
			args = append(args, p.InstanceTypes)
		}
		if err := tx.QueryRow(ctx, q, args...).Scan(&open); err != nil {
			return fmt.Errorf("count open items: %w", err)
		}
		if open == 0 {
			return fmt.Errorf("batch %q has no items to run for the selected instance types: %w", p.ID, store.ErrInvalidState)
		}
		if _, err := tx.Exec(ctx, `UPDATE batches SET state = $1, launched_at = CASE WHEN launched_at = 0 THEN $2 ELSE launched_at END,
			finished_at = 0, budget_usd = $3 WHERE id = $4`, store.BatchRunning, now, budget, p.ID); err != nil {
			return fmt.Errorf("launch batch: %w", err)
		}
		if st == store.BatchBudgetExhausted {
			// Resumed: its next end is a new one, to be consolidated again.
			if _, err := tx.Exec(ctx, `UPDATE batches SET consolidated_at = 0, consolidation_error = '' WHERE id = $1`, p.ID); err != nil {
				return fmt.Errorf("resume batch: %w", err)
			}
		}
		return s.notify(ctx, tx, []string{p.ID})
	})
}

func (s *Store) CancelBatch(ctx context.Context, p store.CancelBatchParams) ([]store.LeaseHolder, error) {
	var held []store.LeaseHolder
	err := s.tx(ctx, func(tx pgx.Tx) error {
		held = nil
		// Items first, in id order, then the batch: the order every report takes its locks in.
		rows, err := tx.Query(ctx, `SELECT id, state, token, agent_id, session_id FROM items
			WHERE batch_id = $1 AND state IN ($2, $3, $4) ORDER BY id FOR UPDATE`,
			p.ID, store.ItemPending, store.ItemLeased, store.ItemSkipped)
		if err != nil {
			return fmt.Errorf("lock open items: %w", err)
		}
		for rows.Next() {
			h := store.LeaseHolder{BatchID: p.ID}
			var st store.ItemState
			if err := rows.Scan(&h.ItemID, &st, &h.Token, &h.AgentID, &h.SessionID); err != nil {
				rows.Close()
				return err
			}
			if st == store.ItemLeased {
				held = append(held, h)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("lock open items: %w", err)
		}
		st, err := lockBatch(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		if st.Terminal() {
			return fmt.Errorf("batch %q already ended (%s): %w", p.ID, st, store.ErrInvalidState)
		}
		now := ms(p.Now)
		reason := "cancelled"
		if p.Reason != "" {
			reason = "cancelled: " + p.Reason
		}
		open := []string{string(store.ItemPending), string(store.ItemLeased), string(store.ItemSkipped)}
		if _, err := tx.Exec(ctx, `INSERT INTO events (item_id, batch_id, instance_type, token, attempt, kind, agent_id, message, duration_ms, cost_usd, at)
			SELECT id, batch_id, instance_type, CASE WHEN state = $1 THEN token ELSE 0 END, attempt, $2, agent_id, $3, 0, 0, $4
			FROM items WHERE batch_id = $5 AND state = ANY($6) ORDER BY id`,
			store.ItemLeased, store.EventCancelled, reason, now, p.ID, open); err != nil {
			return fmt.Errorf("record cancellations: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE items SET state = $1, last_error = $2, updated_at = $3 WHERE batch_id = $4 AND state = ANY($5)`,
			store.ItemCancelled, reason, now, p.ID, open); err != nil {
			return fmt.Errorf("cancel items: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE batches SET state = $1, finished_at = $2 WHERE id = $3`, store.BatchCancelled, now, p.ID); err != nil {
			return fmt.Errorf("cancel batch: %w", err)
		}
		return s.notify(ctx, tx, []string{p.ID})
	})
	return held, err
}

func (s *Store) RetryFailed(ctx context.Context, p store.RetryFailedParams) (int, error) {
	var n int
	err := s.tx(ctx, func(tx pgx.Tx) error {
		n = 0
		if _, err := tx.Exec(ctx, `SELECT 1 FROM items WHERE batch_id = $1 AND state = $2 ORDER BY id FOR UPDATE`, p.ID, store.ItemFailed); err != nil {
			return fmt.Errorf("lock failed items: %w", err)
		}
		st, err := lockBatch(ctx, tx, p.ID)
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
		if _, err := tx.Exec(ctx, `INSERT INTO events (item_id, batch_id, instance_type, token, attempt, kind, agent_id, message, duration_ms, cost_usd, at)
			SELECT id, batch_id, instance_type, 0, attempt, $1, '', $2, 0, 0, $3 FROM items WHERE batch_id = $4 AND state = $5 ORDER BY id`,
			store.EventRequeued, fmt.Sprintf("requeued with %d more attempts", p.Attempts), now, p.ID, store.ItemFailed); err != nil {
			return fmt.Errorf("record requeues: %w", err)
		}
		tag, err := tx.Exec(ctx, `UPDATE items SET state = $1, max_attempts = attempt + $2, next_attempt_at = 0, updated_at = $3
			WHERE batch_id = $4 AND state = $5`, store.ItemPending, p.Attempts, now, p.ID, store.ItemFailed)
		if err != nil {
			return fmt.Errorf("requeue failed items: %w", err)
		}
		n = int(tag.RowsAffected())
		if n > 0 {
			if _, err := tx.Exec(ctx, `UPDATE batches SET state = $1, finished_at = 0, consolidated_at = 0 WHERE id = $2`, store.BatchRunning, p.ID); err != nil {
				return fmt.Errorf("reopen batch: %w", err)
			}
		}
		return s.notify(ctx, tx, []string{p.ID})
	})
	return n, err
}

func (s *Store) BatchCounts(ctx context.Context, id string) (map[string]store.StateCounts, error) {
	rows, err := s.pool.Query(ctx, `SELECT instance_type, state, count(*),
		count(*) FILTER (WHERE attempt > 0) FROM items WHERE batch_id = $1 GROUP BY instance_type, state`, id)
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
func scanItem(row pgx.Row, extra ...any) (*store.Item, error) {
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
	q := `SELECT ` + itemColumns + ` FROM items WHERE batch_id = $1`
	args := []any{p.BatchID}
	if len(p.States) > 0 {
		states := make([]string, len(p.States))
		for i, st := range p.States {
			states[i] = string(st)
		}
		args = append(args, states)
		q += fmt.Sprintf(` AND state = ANY($%d)`, len(args))
	}
	if p.InstanceType != "" {
		args = append(args, p.InstanceType)
		q += fmt.Sprintf(` AND instance_type = $%d`, len(args))
	}
	q += ` ORDER BY id`
	if p.Limit > 0 {
		args = append(args, p.Limit)
		q += fmt.Sprintf(` LIMIT $%d`, len(args))
	}
	rows, err := s.pool.Query(ctx, q, args...)
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
	it, err := scanItem(s.pool.QueryRow(ctx, `SELECT `+itemColumns+` FROM items WHERE batch_id = $1 AND entity_id = $2`, batchID, entityID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("entity %q in batch %q: %w", entityID, batchID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get item: %w", err)
	}
	return it, nil
}

func (s *Store) ItemByID(ctx context.Context, id int64) (*store.Item, error) {
	it, err := scanItem(s.pool.QueryRow(ctx, `SELECT `+itemColumns+` FROM items WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
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

// claimLockSpace is the first key of the per-type advisory locks that guard fleet-wide caps.
const claimLockSpace = 0x656e72 // "enr"

// defaultTimeout bounds a lease whose type has no configured timeout.
const defaultTimeout = 15 * time.Minute

func (s *Store) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Item, error) {
	if p.Limit <= 0 || len(p.InstanceTypes) == 0 {
		return nil, nil
	}
	// Sorted, so two claims taking several types' cap locks take them in the same order.
	types := slices.Clone(p.InstanceTypes)
	slices.Sort(types)
	var claimed []*store.Item
	err := s.tx(ctx, func(tx pgx.Tx) error {
		claimed = nil
		now := ms(p.Now)
		// Room under each type's fleet-wide cap, counted under the type's lock: two coordinators
		// counting at once would both see room.
		room := make(map[string]int, len(types))
		for _, typ := range types {
			room[typ] = p.Limit
			if limit := p.MaxConcurrent[typ]; limit > 0 {
				if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, claimLockSpace, typ); err != nil {
					return fmt.Errorf("lock cap of %s: %w", typ, err)
				}
				var leased int
				// State literal, not a parameter: a cached generic plan can then still use the
				// partial index on leased items.
				if err := tx.QueryRow(ctx, `SELECT count(*) FROM items WHERE instance_type = $1 AND state = 'leased'`,
					typ).Scan(&leased); err != nil {
					return fmt.Errorf("count leased %s: %w", typ, err)
				}
				room[typ] = min(p.Limit, limit-leased)
			}
		}
		// The batches that may lease, read after the cap locks (a batch that stopped while this
		// claim waited on one is seen stopped) and apart from the item query: joining them into
		// it made the planner sort every pending item of the type on each claim (42 ms for
		// 40,000 pending items) instead of walking items_claim in order and stopping at the
		// limit (0.3 ms). Checking the batch again in the granting UPDATE cost far more than
		// that (a plan that turned a claim into 260 ms).
		open, err := leasingBatches(ctx, tx)
		if err != nil || len(open) == 0 {
			return err
		}
		openIDs := slices.Collect(maps.Keys(open))
		var cands []candidate
		for _, typ := range types {
			if room[typ] <= 0 {
				continue
			}
			// 'pending' literal, for the partial index items_claim, as above.
			rows, err := tx.Query(ctx, `SELECT id, priority, batch_id FROM items
				WHERE instance_type = $1 AND state = 'pending' AND next_attempt_at <= $2 AND batch_id = ANY($3)
				ORDER BY priority DESC, id LIMIT $4 FOR UPDATE SKIP LOCKED`, typ, now, openIDs, room[typ])
			if err != nil {
				return fmt.Errorf("select pending %s: %w", typ, err)
			}
			for rows.Next() {
				c := candidate{typ: typ}
				var batchID string
				if err := rows.Scan(&c.id, &c.priority, &batchID); err != nil {
					rows.Close()
					return err
				}
				c.budgetLeft = open[batchID]
				cands = append(cands, c)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("select pending %s: %w", typ, err)
			}
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
		ids := make([]int64, len(cands))
		timeouts := make([]int64, len(cands))
		budgetLeft := make(map[int64]float64, len(cands))
		for i, c := range cands {
			budgetLeft[c.id] = c.budgetLeft
			timeout := p.Timeouts[c.typ]
			if timeout <= 0 {
				timeout = defaultTimeout
			}
			ids[i], timeouts[i] = c.id, timeout.Milliseconds()
		}
		// One statement grants every lease and records every grant.
		rows, err := tx.Query(ctx, `WITH granted AS (
				UPDATE items SET state = $1, token = token + 1, attempt = attempt + 1, agent_id = $2, session_id = $3,
					leased_at = $4, deadline = $4 + c.timeout_ms, expires_at = $4 + LEAST($5, c.timeout_ms), updated_at = $4
				FROM unnest($6::bigint[], $7::bigint[]) AS c(id, timeout_ms)
				WHERE items.id = c.id AND items.state = $8
				RETURNING items.*
			), recorded AS (
				INSERT INTO events (item_id, batch_id, instance_type, token, attempt, kind, agent_id, message, duration_ms, cost_usd, at)
				SELECT id, batch_id, instance_type, token, attempt, $9, $2, '', 0, 0, $4 FROM granted ORDER BY id
			)
			SELECT `+itemColumns+` FROM granted`,
			store.ItemLeased, p.AgentID, p.SessionID, now, p.LeaseTTL.Milliseconds(), ids, timeouts, store.ItemPending, store.EventGranted)
		if err != nil {
			return fmt.Errorf("claim items: %w", err)
		}
		byID := make(map[int64]*store.Item, len(ids))
		for rows.Next() {
			it, err := scanItem(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("scan claimed item: %w", err)
			}
			byID[it.ID] = it
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("claim items: %w", err)
		}
		batches := map[string]bool{}
		for _, id := range ids {
			if it := byID[id]; it != nil {
				it.BudgetLeftUSD = budgetLeft[id]
				claimed = append(claimed, it)
				batches[it.BatchID] = true
			}
		}
		return s.notify(ctx, tx, keys(batches))
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// leasingBatches returns the running batches with budget left, each with what it has left (0
// for a batch without a budget). A batch out of budget leases nothing more.
func leasingBatches(ctx context.Context, tx pgx.Tx) (map[string]float64, error) {
	rows, err := tx.Query(ctx, `SELECT id, CASE WHEN budget_usd > 0 THEN budget_usd - spent_usd ELSE 0 END FROM batches
		WHERE state = $1 AND (budget_usd = 0 OR spent_usd < budget_usd)`, store.BatchRunning)
	if err != nil {
		return nil, fmt.Errorf("running batches: %w", err)
	}
	defer rows.Close()
	out := map[string]float64{}
	for rows.Next() {
		var id string
		var left float64
		if err := rows.Scan(&id, &left); err != nil {
			return nil, fmt.Errorf("running batches: %w", err)
		}
		out[id] = left
	}
	return out, rows.Err()
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
