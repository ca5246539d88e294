-- The schema mirrors the SQLite backend's so both stores answer the same conformance suite and
-- the invariant checker reads the same event history. Times are Unix milliseconds (BIGINT), as
-- in SQLite, so a coordinator's clock, not the database's, decides lease expiry everywhere.

-- +goose Up
CREATE TABLE batches (
    id                  TEXT PRIMARY KEY,
    source              TEXT NOT NULL DEFAULT '',
    state               TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    launched_at         BIGINT NOT NULL DEFAULT 0,
    finished_at         BIGINT NOT NULL DEFAULT 0,
    consolidated_at     BIGINT NOT NULL DEFAULT 0,
    output_dir          TEXT NOT NULL DEFAULT '',
    consolidation_error TEXT NOT NULL DEFAULT ''
);

CREATE TABLE items (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id        TEXT NOT NULL REFERENCES batches(id),
    entity_id       TEXT NOT NULL,
    entity_type     TEXT NOT NULL,
    name            TEXT NOT NULL,
    instance_type   TEXT NOT NULL,
    priority        INTEGER NOT NULL,
    entity          BYTEA NOT NULL,
    state           TEXT NOT NULL,
    attempt         INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL,
    token           BIGINT NOT NULL DEFAULT 0,
    agent_id        TEXT NOT NULL DEFAULT '',
    session_id      TEXT NOT NULL DEFAULT '',
    leased_at       BIGINT NOT NULL DEFAULT 0,
    expires_at      BIGINT NOT NULL DEFAULT 0,
    deadline        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    updated_at      BIGINT NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    stderr_tail     TEXT NOT NULL DEFAULT '',
    UNIQUE (batch_id, entity_id)
);

-- The claim path reads only pending rows: a partial index stays small while a batch drains.
CREATE INDEX items_claim ON items (instance_type, priority DESC, id) WHERE state = 'pending';
CREATE INDEX items_batch ON items (batch_id, state);
CREATE INDEX items_batch_progress ON items (batch_id, instance_type, state, attempt);
-- The reaper and the fleet-wide cap read only leased rows.
CREATE INDEX items_leased ON items (expires_at) WHERE state = 'leased';
CREATE INDEX items_leased_type ON items (instance_type) WHERE state = 'leased';
CREATE INDEX items_leased_agent ON items (agent_id) WHERE state = 'leased';

CREATE TABLE results (
    item_id       BIGINT PRIMARY KEY REFERENCES items(id),
    batch_id      TEXT NOT NULL,
    token         BIGINT NOT NULL,
    agent_id      TEXT NOT NULL,
    dossier       BYTEA NOT NULL,
    duration_ms   BIGINT NOT NULL,
    cost_usd      DOUBLE PRECISION NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    turns         INTEGER NOT NULL,
    session_id    TEXT NOT NULL,
    runner        TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX results_batch ON results (batch_id);

-- Every item's history. Events of one item are written while its row is locked, so their ids
-- follow the item's commit order even with several coordinators writing at once.
CREATE TABLE events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id       BIGINT NOT NULL,
    batch_id      TEXT NOT NULL,
    instance_type TEXT NOT NULL,
    token         BIGINT NOT NULL,
    attempt       INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    agent_id      TEXT NOT NULL,
    message       TEXT NOT NULL,
    duration_ms   BIGINT NOT NULL,
    cost_usd      DOUBLE PRECISION NOT NULL,
    at            BIGINT NOT NULL
);
CREATE INDEX events_batch ON events (batch_id, id);

-- +goose Down
DROP TABLE events;
DROP TABLE results;
DROP TABLE items;
DROP TABLE batches;
