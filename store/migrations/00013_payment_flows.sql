-- +goose Up
-- Payment flows (seed 000): one invoice settled through a plan of batches
-- (collect from the payers, then pay the payees once that money settled),
-- recomputed by the flow:recompute task after every transition of one of
-- the flow's payments.
--
-- What a flow needs of its users: a default payin method and a payout
-- account, both validated by intake and kept as given (normalized).
ALTER TABLE users
    ADD COLUMN payin_method   jsonb, -- {"payment_method_type": "CARD"|"ACH", "payment_method_id": …}
    ADD COLUMN payout_account jsonb; -- {"method": …, "beneficiary_name": …, …} (seed 002's names)

-- Several payers of one invoice, each with its share of amount_due (the
-- shares sum to it; invoices.payer_user_id stays the one-payer shorthand).
CREATE TABLE invoice_payers (
    invoice_id text NOT NULL REFERENCES invoices (id),
    user_id    text NOT NULL REFERENCES users (id),
    amount     bigint NOT NULL CHECK (amount > 0),
    PRIMARY KEY (invoice_id, user_id)
);

CREATE TABLE payment_flows (
    id             text PRIMARY KEY,
    tenant_id      text NOT NULL REFERENCES tenants (id),
    external_id    text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 255),
    type           text NOT NULL CHECK (type = 'single_invoice_settlement'),
    invoice_id     text NOT NULL REFERENCES invoices (id),
    status         text NOT NULL CHECK (status IN ('pending','processing','settled','failed','canceled')),
    blocked_reason text NOT NULL DEFAULT '',
    -- what the invoice had paid or reserved by other payments when the
    -- flow was created: the payins collect only the rest
    paid_outside   bigint NOT NULL CHECK (paid_outside >= 0),
    plan_version   integer NOT NULL DEFAULT 0 CHECK (plan_version >= 0),
    request_fingerprint bytea NOT NULL,
    created_by     text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    canceled_at    timestamptz,
    settled_at     timestamptz,
    -- the flow:recompute step: due at next_at under step_seq (the task's
    -- ID flow:recompute:<id>:<seq>); a transition of one of the flow's
    -- payments bumps both in its own transaction (trigger below)
    next_at        timestamptz,
    step_seq       integer NOT NULL DEFAULT 1 CHECK (step_seq > 0),
    swept          boolean NOT NULL DEFAULT false,
    UNIQUE (tenant_id, external_id)
);
-- one flow per invoice at a time: a new one only once the last failed or was canceled
CREATE UNIQUE INDEX payment_flows_one_per_invoice ON payment_flows (invoice_id) WHERE status IN ('pending','processing');
CREATE INDEX payment_flows_due ON payment_flows (next_at) WHERE next_at IS NOT NULL;
CREATE INDEX payment_flows_tenant ON payment_flows (tenant_id, created_at DESC, id DESC);

ALTER TABLE payments ADD COLUMN flow_id text REFERENCES payment_flows (id);
CREATE INDEX payments_flow ON payments (flow_id) WHERE flow_id IS NOT NULL;

-- The payments a flow created. The primary key is the guard that a plan
-- payment is created once: one per flow, batch, user and generation (a
-- generation replaces a failed payin), whatever number of recomputes run.
CREATE TABLE payment_flow_payments (
    flow_id    text NOT NULL REFERENCES payment_flows (id),
    batch      text NOT NULL CHECK (batch IN ('payins','payouts')),
    user_id    text NOT NULL REFERENCES users (id),
    generation integer NOT NULL CHECK (generation > 0),
    payment_id text NOT NULL UNIQUE REFERENCES payments (id),
    method_id  text NOT NULL, -- the payin method or payout account fingerprint it was made with
    created_at timestamptz NOT NULL,
    PRIMARY KEY (flow_id, batch, user_id, generation)
);

-- Every version of a flow's plan, stored only when it changed.
CREATE TABLE payment_flow_plans (
    flow_id      text NOT NULL REFERENCES payment_flows (id),
    version      integer NOT NULL CHECK (version > 0),
    status       text NOT NULL,
    plan         jsonb NOT NULL,
    generated_at timestamptz NOT NULL,
    PRIMARY KEY (flow_id, version)
);

-- The flow's audit trail: creation, each status change, cancel.
CREATE TABLE payment_flow_events (
    id          bigserial PRIMARY KEY,
    flow_id     text NOT NULL REFERENCES payment_flows (id),
    tenant_id   text NOT NULL REFERENCES tenants (id),
    from_status text,
    to_status   text NOT NULL,
    reason      text NOT NULL,
    actor       text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX payment_flow_events_flow ON payment_flow_events (flow_id, id);

-- A status change of a flow's payment makes the flow's recompute due, in
-- the transaction of the change, whichever statement made it (the batched
-- hot-path statement included): the processor enqueues the step after its
-- commit, and the sweeper recovers it if that enqueue is lost.
-- +goose StatementBegin
CREATE FUNCTION payment_flow_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE payment_flows SET next_at = NEW.updated_at, step_seq = step_seq + 1, swept = false
    WHERE id = NEW.flow_id;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER payments_flow_due AFTER UPDATE OF status ON payments
    FOR EACH ROW WHEN (NEW.flow_id IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION payment_flow_due();

-- +goose Down
DROP TRIGGER payments_flow_due ON payments;
DROP FUNCTION payment_flow_due();
DROP TABLE payment_flow_events;
DROP TABLE payment_flow_plans;
DROP TABLE payment_flow_payments;
DROP INDEX payments_flow;
ALTER TABLE payments DROP COLUMN flow_id;
DROP TABLE payment_flows;
DROP TABLE invoice_payers;
ALTER TABLE users DROP COLUMN payout_account, DROP COLUMN payin_method;
