-- What several coordinators on one database share besides batch state: the agents each one
-- serves (so any coordinator can list them all) and leader leases (so fleet-wide chores such as
-- the lease reaper run on one coordinator at a time).

-- +goose Up
CREATE TABLE agents (
    agent_id       TEXT PRIMARY KEY,
    session_id     TEXT NOT NULL,
    coordinator    TEXT NOT NULL,
    hostname       TEXT NOT NULL DEFAULT '',
    version        TEXT NOT NULL DEFAULT '',
    instance_types TEXT[] NOT NULL DEFAULT '{}',
    slots          INTEGER NOT NULL DEFAULT 0,
    in_flight      INTEGER NOT NULL DEFAULT 0,
    labels         JSONB NOT NULL DEFAULT '{}',
    draining       BOOLEAN NOT NULL DEFAULT false,
    connected_at   BIGINT NOT NULL,
    last_heartbeat BIGINT NOT NULL DEFAULT 0,
    last_seen      BIGINT NOT NULL
);
CREATE INDEX agents_last_seen ON agents (last_seen);

-- Leader leases use the database's clock, so coordinators on hosts whose clocks disagree still
-- agree on who leads.
CREATE TABLE leaders (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE leaders;
DROP TABLE agents;
