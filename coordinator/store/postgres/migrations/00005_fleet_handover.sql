-- What lets one coordinator of a fleet finish what another left undone when it died.
--
-- Consolidation claims: the coordinator consolidating a batch names itself and an expiry on the
-- batch (renewed while it works), so no two coordinators consolidate one batch at once and the
-- reaper's leader can take over batches whose consolidator died.
--
-- Drain requests: `enrichctl agents drain` through any coordinator records one per agent id. It
-- stays until a coordinator serving a session of that agent sent it the Drain, wherever the
-- agent reconnected meanwhile.

-- +goose Up
ALTER TABLE batches ADD COLUMN consolidation_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE batches ADD COLUMN consolidation_until BIGINT NOT NULL DEFAULT 0;
-- The leader looks for ended, unconsolidated batches every few seconds.
CREATE INDEX batches_unconsolidated ON batches (finished_at) WHERE consolidated_at = 0 AND finished_at > 0;

CREATE TABLE agent_drains (
    agent_id     TEXT PRIMARY KEY,
    requested_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE agent_drains;
DROP INDEX batches_unconsolidated;
ALTER TABLE batches DROP COLUMN consolidation_until;
ALTER TABLE batches DROP COLUMN consolidation_owner;
