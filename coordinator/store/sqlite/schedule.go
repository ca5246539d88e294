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

const scheduleColumns = `name, cron, timezone, source, size, budget_usd, paused, created_at, next_run_at, firing_since,
	last_run_at, last_outcome, last_message, last_batch_id`

func scanSchedule(row interface{ Scan(...any) error }) (*store.Schedule, error) {
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
	_, err := s.write.ExecContext(ctx, `INSERT INTO schedules (name, cron, timezone, source, size, budget_usd, paused, created_at, next_run_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, p.Name, p.Cron, p.Timezone, p.Source, p.Size, p.BudgetUSD, p.Paused, ms(p.Now), next)
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return fmt.Errorf("schedule %q: %w", p.Name, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create schedule %q: %w", p.Name, err)
	}
	return nil
}

func (s *Store) GetSchedule(ctx context.Context, name string) (*store.Schedule, error) {
	sc, err := scanSchedule(s.read.QueryRowContext(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
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
		WHERE paused = 0 AND next_run_at > 0 AND next_run_at <= ? ORDER BY next_run_at, name`, ms(now))
}

func (s *Store) querySchedules(ctx context.Context, query string, args ...any) ([]*store.Schedule, error) {
	rows, err := s.read.QueryContext(ctx, query, args...)
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
	res, err := s.write.ExecContext(ctx, `DELETE FROM schedules WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete schedule %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("schedule %q: %w", name, store.ErrNotFound)
	}
	return nil
}

func (s *Store) SetSchedulePaused(ctx context.Context, p store.SetSchedulePausedParams) (*store.Schedule, error) {
	var out *store.Schedule
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// Only a change of state moves next_run_at: resuming a running schedule must not push
		// its next run later, pausing twice must not lose anything.
		if _, err := tx.ExecContext(ctx, `UPDATE schedules SET paused = ?, next_run_at = ? WHERE name = ? AND paused <> ?`,
			p.Paused, map[bool]int64{true: 0, false: ms(p.NextRunAt)}[p.Paused], p.Name, p.Paused); err != nil {
			return fmt.Errorf("pause schedule %q: %w", p.Name, err)
		}
		sc, err := scanSchedule(tx.QueryRowContext(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE name = ?`, p.Name))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("schedule %q: %w", p.Name, store.ErrNotFound)
		}
		out = sc
		return err
	})
	return out, err
}

func (s *Store) ClaimScheduleRun(ctx context.Context, p store.ClaimScheduleRunParams) (*store.ScheduleClaim, error) {
	var claim *store.ScheduleClaim
	// The transaction takes SQLite's write lock at BEGIN (_txlock=immediate): the read and the
	// update below see no other writer in between.
	err := s.tx(ctx, func(tx *sql.Tx) error {
		sc, err := scanSchedule(tx.QueryRowContext(ctx, `SELECT `+scheduleColumns+` FROM schedules
			WHERE name = ? AND paused = 0 AND next_run_at = ?`, p.Name, ms(p.Due)))
		if errors.Is(err, sql.ErrNoRows) {
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
		res, err := tx.ExecContext(ctx, `UPDATE schedules SET next_run_at = ?, firing_since = ? WHERE name = ? AND next_run_at = ?`,
			ms(p.Next), firing, p.Name, ms(p.Due))
		if err != nil {
			return fmt.Errorf("claim schedule %q: %w", p.Name, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			claim = &store.ScheduleClaim{Schedule: sc, Busy: busy}
		}
		return nil
	})
	return claim, err
}

func (s *Store) RecordScheduleRun(ctx context.Context, p store.RecordScheduleRunParams) error {
	res, err := s.write.ExecContext(ctx, `UPDATE schedules SET last_run_at = ?, last_outcome = ?, last_message = ?,
			last_batch_id = CASE WHEN ? <> '' THEN ? ELSE last_batch_id END,
			firing_since = CASE WHEN ? THEN 0 ELSE firing_since END
		WHERE name = ?`, ms(p.At), p.Outcome, p.Message, p.BatchID, p.BatchID, p.EndsFiring, p.Name)
	if err != nil {
		return fmt.Errorf("record run of schedule %q: %w", p.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("schedule %q: %w", p.Name, store.ErrNotFound)
	}
	return nil
}
