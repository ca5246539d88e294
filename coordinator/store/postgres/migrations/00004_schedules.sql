-- Recurring prepare-and-launch runs, as in the SQLite backend. next_run_at is what a firing
-- claims: an UPDATE that only succeeds while next_run_at still holds the value the claimer read,
-- so each run fires once across every coordinator sharing the database and across restarts.
-- next_run_at is 0 while paused.

-- +goose Up
CREATE TABLE schedules (
    name          TEXT PRIMARY KEY,
    cron          TEXT NOT NULL,
    timezone      TEXT NOT NULL DEFAULT '',
    source        BYTEA NOT NULL,
    size          INTEGER NOT NULL DEFAULT 0,
    budget_usd    DOUBLE PRECISION NOT NULL DEFAULT 0,
    paused        BOOLEAN NOT NULL DEFAULT false,
    created_at    BIGINT NOT NULL,
    next_run_at   BIGINT NOT NULL DEFAULT 0,
    firing_since  BIGINT NOT NULL DEFAULT 0,
    last_run_at   BIGINT NOT NULL DEFAULT 0,
    last_outcome  TEXT NOT NULL DEFAULT '',
    last_message  TEXT NOT NULL DEFAULT '',
    last_batch_id TEXT NOT NULL DEFAULT ''
);
-- Every coordinator asks for due schedules every second.
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE NOT paused;

-- +goose Down
DROP TABLE schedules;
