-- +goose Up
-- swept marks a step the sweeper already re-enqueued once: if the step is
-- still due after the sweep lease, the sweeper inspects its task and may give
-- the step a fresh task ID. Any change of schedule clears it.
ALTER TABLE payments ADD COLUMN swept boolean NOT NULL DEFAULT false;
ALTER TABLE refunds ADD COLUMN swept boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE refunds DROP COLUMN swept;
ALTER TABLE payments DROP COLUMN swept;
