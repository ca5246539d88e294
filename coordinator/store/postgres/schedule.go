package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sportsintel/enrich/coordinator/store"
)

const scheduleColumns = `name, cron, timezone, source, size, budget_usd, paused, created_at, next_run_at, firing_since,
	last_run_at, last_outcome, last_message, last_batch_id`

func scanSchedule(row pgx.Row) (*store.Schedule, error) {
	var sc store.Schedule
	var created, next, firing, last int64
	if err := row.Scan(&sc.Name, &sc.Cron, &sc.Timezone, &sc.Source, &sc.Size, &sc.BudgetUSD, &sc.Paused, &created, &next,
		&firing, &last, &sc.LastOutcome, &sc.LastMessage, &sc.LastBatchID); err != nil {
		return nil, err
	}
	sc.CreatedAt, sc.NextRunAt, sc.FiringSince, sc.LastRunAt = fromMS(created), fromMS(next), fromMS(firing), fromMS(last)
	return &sc, nil
}

func (s *Store) CreateSchedule(ctx context.Context, p store.CreateScheduleParams) error {
	next := ms(p.NextRunAt)
	if p.Paused {
		next = 0
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO schedules (name, cron, timezone, source, size, budget_usd, paused, created_at, next_run_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, p.Name, p.Cron, p.Timezone, p.Source, p.Size, p.BudgetUSD, p.Paused, ms(p.Now), next)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("schedule %q: %w", p.Name, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create schedule %q: %w", p.Name, err)
	}
	return nil
}

func (s *Store) GetSchedule(ctx context.Context, name string) (*store.Schedule, error) {
	sc, err := scanSchedule(s.pool.QueryRow(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("schedule %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get schedule %q: %w", name, err)
	}
	return sc, nil
}

func (s *Store) ListSchedules(ctx context.Context) ([]*store.Schedule, error) {
	return s.querySchedules(ctx, `SELECT `+scheduleColumns+` FROM schedules ORDER BY name`)
}

func (s *Store) DueSchedules(ctx context.Context, now time.Time) ([]*store.Schedule, error) {
	return s.querySchedules(ctx, `SELECT `+scheduleColumns+` FROM schedules
		WHERE NOT paused AND next_run_at > 0 AND next_run_at <= $1 ORDER BY next_run_at, name`, ms(now))
}

func (s *Store) querySchedules(ctx context.Context, query string, args ...any) ([]*store.Schedule, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	defer rows.Close()
	var out []*store.Schedule
	for rows.Next() {
		sc, err := scanSchedule(rows)
		if err != nil {
			return nil, fmt.Errorf("scan schedule: %w", err)
		}
		out = append(out, sc)
	}
	return out, rows.Err()
}

func (s *Store) DeleteSchedule(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM schedules WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("delete schedule %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("schedule %q: %w", name, store.ErrNotFound)
	}
	return nil
}

func (s *Store) SetSchedulePaused(ctx context.Context, p store.SetSchedulePausedParams) (*store.Schedule, error) {
	next := ms(p.NextRunAt)
	if p.Paused {
		next = 0
	}
	var out *store.Schedule
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// Only a change of state moves next_run_at: resuming a running schedule must not push
		// its next run later, pausing twice must not lose anything.
		if _, err := tx.Exec(ctx, `UPDATE schedules SET paused = $1, next_run_at = $2 WHERE name = $3 AND paused <> $1`,
			p.Paused, next, p.Name); err != nil {
			return fmt.Errorf("pause schedule %q: %w", p.Name, err)
		}
		sc, err := scanSchedule(tx.QueryRow(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE name = $1`, p.Name))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("schedule %q: %w", p.Name, store.ErrNotFound)
		}
		out = sc
		return err
	})
	return out, err
}

func (s *Store) ClaimScheduleRun(ctx context.Context, p store.ClaimScheduleRunParams) (*store.ScheduleClaim, error) {
	var claim *store.ScheduleClaim
	err := s.tx(ctx, func(tx pgx.Tx) error {
		claim = nil
		// FOR UPDATE makes concurrent claimers queue on the row; once the first commits, the
		// others re-check next_run_at against the new row and find no match: one claim per run.
		sc, err := scanSchedule(tx.QueryRow(ctx, `SELECT `+scheduleColumns+` FROM schedules
			WHERE name = $1 AND NOT paused AND next_run_at = $2 FOR UPDATE`, p.Name, ms(p.Due)))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("claim schedule %q: %w", p.Name, err)
		}
		busy := !sc.FiringSince.IsZero() && p.Now.Sub(sc.FiringSince) < p.FiringTimeout
		firing := ms(p.Now)
		if busy {
			firing = ms(sc.FiringSince)
		}
		tag, err := tx.Exec(ctx, `UPDATE schedules SET next_run_at = $1, firing_since = $2 WHERE name = $3 AND next_run_at = $4`,
			ms(p.Next), firing, p.Name, ms(p.Due))
		if err != nil {
			return fmt.Errorf("claim schedule %q: %w", p.Name, err)
		}
		if tag.RowsAffected() == 1 {
			claim = &store.ScheduleClaim{Schedule: sc, Busy: busy}
		}
		return nil
	})
	return claim, err
}

func (s *Store) RecordScheduleRun(ctx context.Context, p store.RecordScheduleRunParams) error {
	tag, err := s.pool.Exec(ctx, `UPDATE schedules SET last_run_at = $1, last_outcome = $2, last_message = $3,
			last_batch_id = CASE WHEN $4 <> '' THEN $4 ELSE last_batch_id END,
			firing_since = CASE WHEN $5 THEN 0 ELSE firing_since END
		WHERE name = $6`, ms(p.At), string(p.Outcome), p.Message, p.BatchID, p.EndsFiring, p.Name)
	if err != nil {
		return fmt.Errorf("record run of schedule %q: %w", p.Name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("schedule %q: %w", p.Name, store.ErrNotFound)
	}
	return nil
}
