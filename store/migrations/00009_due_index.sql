-- +goose Up
-- payments_due covered only payments with a next step (WHERE next_step IS
-- NOT NULL). Every guarded update of a step (… AND next_step = $step)
-- implies that predicate, so the planner could read the small-looking
-- partial index instead of the primary key and filter every payment in
-- flight: under a backlog of 30,000 payments the claim statement read 200
-- buffers per row (docs/BENCHMARKS.md, "1M existing payments"). Over every
-- payment, the index can serve only what orders or ranges by next_step_at —
-- the sweeper and the overdue gauge — and the updates read by key.
DROP INDEX payments_due;
CREATE INDEX payments_due ON payments (next_step_at);

-- +goose Down
DROP INDEX payments_due;
CREATE INDEX payments_due ON payments (next_step_at) WHERE next_step IS NOT NULL;
