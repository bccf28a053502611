-- +goose Up
-- Fewer index entries and row locks per payment (docs/BENCHMARKS.md: 31
-- B-tree insertions and 7 WAL-logged row locks per card payment before).
--
-- The audit trail is read by payment (the timeline, time to final), never
-- by id alone: one primary key (payment_id, id) serves both, instead of a
-- key on id plus an index on (payment_id, id). Its reference to payments
-- goes: every audit row is written by the statement that writes its
-- payment, and the check cost a KEY SHARE lock (a WAL record) on the
-- payment's row for each of the three rows a card payment writes.
ALTER TABLE payment_events DROP CONSTRAINT payment_events_payment_id_fkey;
ALTER TABLE payment_events DROP CONSTRAINT payment_events_pkey;
DROP INDEX payment_events_payment;
ALTER TABLE payment_events ADD PRIMARY KEY (payment_id, id);

-- The body's idempotency_key is unique per tenant; most payments have none,
-- and their NULLs took an index entry on every insert and (non-HOT) update.
ALTER TABLE payments DROP CONSTRAINT payments_tenant_id_idempotency_key_key;
CREATE UNIQUE INDEX payments_tenant_id_idempotency_key_key ON payments (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- +goose Down
DROP INDEX payments_tenant_id_idempotency_key_key;
ALTER TABLE payments ADD CONSTRAINT payments_tenant_id_idempotency_key_key UNIQUE (tenant_id, idempotency_key);
ALTER TABLE payment_events DROP CONSTRAINT payment_events_pkey;
ALTER TABLE payment_events ADD PRIMARY KEY (id);
CREATE INDEX payment_events_payment ON payment_events (payment_id, id);
ALTER TABLE payment_events ADD CONSTRAINT payment_events_payment_id_fkey FOREIGN KEY (payment_id) REFERENCES payments (id);
