-- +goose Up
-- Money safety at the edges: a void step before a cancel or an expiry, a
-- slow inquiry schedule for payments in review, refunds of charges that land
-- for a payment payd holds as uncharged, and reconciliation findings.

-- The void step: a payment awaiting a customer action is voided at the
-- gateway before it is canceled or expires.
ALTER TABLE payments DROP CONSTRAINT payments_next_step_check;
ALTER TABLE payments ADD CONSTRAINT payments_next_step_check
    CHECK (next_step IN ('create','submit','inquire','settle','void')) NOT VALID;
ALTER TABLE payments VALIDATE CONSTRAINT payments_next_step_check;

-- REQUIRES_REVIEW keeps being inquired on a slow schedule, so it may have a
-- next step; the absorbing statuses still may not.
ALTER TABLE payments DROP CONSTRAINT payments_check2;
ALTER TABLE payments ADD CONSTRAINT payments_absorbing_no_step
    CHECK (next_step IS NULL OR status NOT IN ('FAILED','CANCELED','RETURNED','REFUNDED')) NOT VALID;
ALTER TABLE payments VALIDATE CONSTRAINT payments_absorbing_no_step;

-- Set when the merchant cancels a payment that awaits a customer action:
-- its void step then cancels it (an expiry's void fails it instead).
ALTER TABLE payments ADD COLUMN cancel_requested_at timestamptz;

-- The charge a refund gives back. Empty: the payment's own charge
-- (gateway_reference). A charge that landed after payd held the payment as
-- uncharged is refunded once: one refund per such charge.
ALTER TABLE refunds ADD COLUMN charge_reference text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX refunds_late_charge ON refunds (payment_id, charge_reference)
    WHERE reason = 'charge_after_cancel';

-- Reconciliation: what the gateway's ledger says that payd's records do not.
-- One row per (gateway, kind, reference), however often a run sees it.
CREATE TABLE reconciliation_findings (
    id            bigserial PRIMARY KEY,
    gateway       text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('charge_after_close', 'charge_for_review', 'unknown_charge',
                      'extra_charge', 'amount_mismatch', 'attempt_without_charge', 'unknown_refund',
                      'refund_mismatch', 'refund_unrecorded')),
    reference     text NOT NULL,  -- the gateway's charge or refund reference, or payd's attempt key
    payment_id    text NOT NULL DEFAULT '',
    tenant_id     text NOT NULL DEFAULT '',
    amount        bigint NOT NULL DEFAULT 0 CHECK (amount >= 0),
    currency      text NOT NULL DEFAULT '',
    detail        text NOT NULL DEFAULT '',
    action        text NOT NULL DEFAULT '',  -- what payd did about it, '' for nothing (an operator's)
    action_ref    text NOT NULL DEFAULT '',  -- e.g. the refund started
    status        text NOT NULL CHECK (status IN ('open', 'acted', 'resolved')),
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    seen_count    integer NOT NULL DEFAULT 1 CHECK (seen_count > 0),
    resolved_at   timestamptz,
    resolved_by   text NOT NULL DEFAULT '',
    UNIQUE (gateway, kind, reference)
);
CREATE INDEX reconciliation_findings_open ON reconciliation_findings (first_seen_at) WHERE status = 'open';
CREATE INDEX reconciliation_findings_payment ON reconciliation_findings (payment_id) WHERE payment_id <> '';

-- Each reconciliation run and its window; the periodic run starts where
-- the last one ended (with an overlap).
CREATE TABLE reconciliation_runs (
    id          bigserial PRIMARY KEY,
    gateway     text NOT NULL,
    window_from timestamptz NOT NULL,
    window_to   timestamptz NOT NULL CHECK (window_to > window_from),
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    charges     integer NOT NULL DEFAULT 0,
    refunds     integer NOT NULL DEFAULT 0,
    findings    integer NOT NULL DEFAULT 0,
    actor       text NOT NULL DEFAULT ''
);
CREATE INDEX reconciliation_runs_gateway ON reconciliation_runs (gateway, window_to DESC);

-- Payments in review by age (the review gauge) and the review list.
CREATE INDEX payments_in_review ON payments (updated_at) WHERE status = 'REQUIRES_REVIEW';

-- +goose Down
DROP INDEX payments_in_review;
DROP TABLE reconciliation_runs;
DROP TABLE reconciliation_findings;
DROP INDEX refunds_late_charge;
ALTER TABLE refunds DROP COLUMN charge_reference;
ALTER TABLE payments DROP COLUMN cancel_requested_at;
ALTER TABLE payments DROP CONSTRAINT payments_absorbing_no_step;
ALTER TABLE payments ADD CONSTRAINT payments_check2
    CHECK (next_step IS NULL OR status NOT IN ('FAILED','CANCELED','RETURNED','REFUNDED','REQUIRES_REVIEW'));
ALTER TABLE payments DROP CONSTRAINT payments_next_step_check;
ALTER TABLE payments ADD CONSTRAINT payments_next_step_check
    CHECK (next_step IN ('create','submit','inquire','settle'));
