-- Times are Unix milliseconds (INTEGER) so the same queries work on PostgreSQL (BIGINT).
CREATE TABLE IF NOT EXISTS batches (
    id                  TEXT PRIMARY KEY,
    source              TEXT NOT NULL DEFAULT '',
    state               TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    launched_at         INTEGER NOT NULL DEFAULT 0,
    finished_at         INTEGER NOT NULL DEFAULT 0,
    consolidated_at     INTEGER NOT NULL DEFAULT 0,
    output_dir          TEXT NOT NULL DEFAULT '',
    consolidation_error TEXT NOT NULL DEFAULT '',
    budget_usd          REAL NOT NULL DEFAULT 0,
    spent_usd           REAL NOT NULL DEFAULT 0,
    -- Who is consolidating the batch, until when (store.Consolidations).
    consolidation_owner TEXT NOT NULL DEFAULT '',
    consolidation_until INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS items (
    id              INTEGER PRIMARY KEY,
    batch_id        TEXT NOT NULL REFERENCES batches(id),
    entity_id       TEXT NOT NULL,
    entity_type     TEXT NOT NULL,
    name            TEXT NOT NULL,
    instance_type   TEXT NOT NULL,
    priority        INTEGER NOT NULL,
    entity          BLOB NOT NULL,
    state           TEXT NOT NULL,
    attempt         INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL,
    token           INTEGER NOT NULL DEFAULT 0,
    agent_id        TEXT NOT NULL DEFAULT '',
    session_id      TEXT NOT NULL DEFAULT '',
    leased_at       INTEGER NOT NULL DEFAULT 0,
    expires_at      INTEGER NOT NULL DEFAULT 0,
    deadline        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    stderr_tail     TEXT NOT NULL DEFAULT '',
    UNIQUE (batch_id, entity_id)
);

-- The claim path: pending items of one type, highest priority first, then oldest. Partial, like
-- the index on leased items below: an index on every item that names its state is written twice
-- on each change of state (out of the old place, into the new), and every lease changes state
-- twice. Queries that use them say 'pending' and 'leased' literally, so SQLite can tell they
-- apply. (Databases made before keep their rows; the old indexes are dropped here.)
DROP INDEX IF EXISTS items_claim;
DROP INDEX IF EXISTS items_expiry;
CREATE INDEX IF NOT EXISTS items_pending ON items (instance_type, priority DESC, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS items_leased ON items (expires_at) WHERE state = 'leased';
CREATE INDEX IF NOT EXISTS items_batch ON items (batch_id, state);
-- Covers the per-type progress counts, read by every watcher, without touching the rows.
CREATE INDEX IF NOT EXISTS items_batch_progress ON items (batch_id, instance_type, state, attempt);

CREATE TABLE IF NOT EXISTS results (
    item_id       INTEGER PRIMARY KEY REFERENCES items(id),
    batch_id      TEXT NOT NULL,
    token         INTEGER NOT NULL,
    agent_id      TEXT NOT NULL,
    dossier       BLOB NOT NULL,
    duration_ms   INTEGER NOT NULL,
    cost_usd      REAL NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    turns         INTEGER NOT NULL,
    session_id    TEXT NOT NULL,
    runner        TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS results_batch ON results (batch_id);

-- The history of every item: each grant, each run's end, each dropped report, cancellation and
-- requeue. Reports read the run-ending events; the invariant checker reads all of them.
CREATE TABLE IF NOT EXISTS events (
    id            INTEGER PRIMARY KEY,
    item_id       INTEGER NOT NULL,
    batch_id      TEXT NOT NULL,
    instance_type TEXT NOT NULL,
    token         INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    agent_id      TEXT NOT NULL,
    message       TEXT NOT NULL,
    duration_ms   INTEGER NOT NULL,
    cost_usd      REAL NOT NULL,
    at            INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_batch ON events (batch_id, id);

-- Recurring prepare-and-launch runs. next_run_at is what a firing claims: the claim is an UPDATE
-- that only succeeds while next_run_at still holds the value the claimer read, so a run fires
-- once even across a restart. next_run_at is 0 while paused.
CREATE TABLE IF NOT EXISTS schedules (
    name          TEXT PRIMARY KEY,
    cron          TEXT NOT NULL,
    timezone      TEXT NOT NULL DEFAULT '',
    source        BLOB NOT NULL,
    size          INTEGER NOT NULL DEFAULT 0,
    budget_usd    REAL NOT NULL DEFAULT 0,
    paused        INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    next_run_at   INTEGER NOT NULL DEFAULT 0,
    firing_since  INTEGER NOT NULL DEFAULT 0,
    last_run_at   INTEGER NOT NULL DEFAULT 0,
    last_outcome  TEXT NOT NULL DEFAULT '',
    last_message  TEXT NOT NULL DEFAULT '',
    last_batch_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (next_run_at) WHERE paused = 0;
