-- Batch spend budgets: what a batch may spend and what its runs have reported so far.

-- +goose Up
ALTER TABLE batches ADD COLUMN budget_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN spent_usd DOUBLE PRECISION NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE batches DROP COLUMN spent_usd;
ALTER TABLE batches DROP COLUMN budget_usd;
