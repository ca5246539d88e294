-- +goose Up
-- Every lease granted and ended inserted into and deleted from three partial indexes on leased
-- items. Leased items are few (at most the fleet's slots), so the one on expires_at serves the
-- per-type cap count and the per-agent lookup too, scanning them all with a filter; the other
-- two cost the hot path four index writes per entity for queries that touch a few hundred rows.
DROP INDEX IF EXISTS items_leased_type;
DROP INDEX IF EXISTS items_leased_agent;

-- +goose Down
CREATE INDEX items_leased_type ON items (instance_type) WHERE state = 'leased';
CREATE INDEX items_leased_agent ON items (agent_id) WHERE state = 'leased';
