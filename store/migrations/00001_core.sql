-- +goose Up
-- Core schema. Invariants live here as well as in code: amounts are integer
-- minor units with CHECKs, statuses are closed sets, keys are unique, and
-- refunds can never exceed the amount.

CREATE TABLE tenants (
    id         text PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id         text PRIMARY KEY,
    tenant_id  text NOT NULL REFERENCES tenants (id),
    key_hash   bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32), -- SHA-256 of the secret; the secret is never stored
    hint       text NOT NULL,                                      -- last 4 characters, for operators
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

CREATE TABLE invoices (
    id             text PRIMARY KEY,
    tenant_id      text NOT NULL REFERENCES tenants (id),
    external_id    text NOT NULL,
    invoice_number text NOT NULL,
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_due     bigint NOT NULL DEFAULT 0 CHECK (amount_due >= 0),
    created_at     timestamptz NOT NULL,
    UNIQUE (tenant_id, external_id),
    UNIQUE (tenant_id, invoice_number)
);

CREATE TABLE payments (
    id                     text PRIMARY KEY,
    tenant_id              text NOT NULL REFERENCES tenants (id),
    surface                text NOT NULL,
    amount                 bigint NOT NULL CHECK (amount >= 0), -- 0 only for card verification (sessions)
    currency               text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    method                 text NOT NULL CHECK (method IN ('CARD','ACH','OFFLINE','CREDITS','WIRE','SEPA','SWIFT','RTP','CHECK','VIRTUAL_CARD','PAYPAL','OTHER')),
    payment_method_id      text NOT NULL DEFAULT '',
    destination_type       text NOT NULL DEFAULT '',
    destination_id         text NOT NULL DEFAULT '',
    invoice_id             text REFERENCES invoices (id),
    idempotency_key        text,
    request_fingerprint    bytea,
    process_payment        boolean NOT NULL,
    track_attempts         boolean NOT NULL,
    status                 text NOT NULL CHECK (status IN ('PENDING','PROCESSING','REQUIRES_ACTION','SENT','SUCCEEDED','PARTIALLY_REFUNDED','REFUNDED','RETURNED','FAILED','CANCELED','REQUIRES_REVIEW')),
    next_step              text CHECK (next_step IN ('create','submit','inquire','settle')),
    next_step_at           timestamptz,
    step_seq               integer NOT NULL DEFAULT 1 CHECK (step_seq > 0),
    attempt_count          integer NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    refunded_amount        bigint NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    refund_pending_amount  bigint NOT NULL DEFAULT 0 CHECK (refund_pending_amount >= 0),
    gateway_reference      text NOT NULL DEFAULT '',
    error_code             text NOT NULL DEFAULT '',
    error_message          text NOT NULL DEFAULT '',
    return_code            text NOT NULL DEFAULT '',
    action_url             text NOT NULL DEFAULT '', -- where the customer completes a required action (3DS)
    metadata               jsonb NOT NULL DEFAULT '{}',
    created_by             text NOT NULL DEFAULT '',
    updated_by             text NOT NULL DEFAULT '',
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    succeeded_at           timestamptz,
    failed_at              timestamptz,
    refunded_at            timestamptz,
    canceled_at            timestamptz,
    sent_at                timestamptz,
    expected_settlement_at timestamptz,
    settled_at             timestamptz,
    returned_at            timestamptz,
    return_watch_until     timestamptz,
    UNIQUE (tenant_id, idempotency_key),
    CHECK (refunded_amount + refund_pending_amount <= amount),
    CHECK ((next_step IS NULL) = (next_step_at IS NULL)),
    -- absorbing states need nothing more
    CHECK (next_step IS NULL OR status NOT IN ('FAILED','CANCELED','RETURNED','REFUNDED','REQUIRES_REVIEW'))
);

CREATE INDEX payments_due ON payments (next_step_at) WHERE next_step IS NOT NULL;
CREATE INDEX payments_tenant_list ON payments (tenant_id, created_at DESC, id DESC);
CREATE INDEX payments_tenant_status ON payments (tenant_id, status, created_at DESC, id DESC);

CREATE TABLE payment_attempts (
    id                text PRIMARY KEY,
    payment_id        text NOT NULL REFERENCES payments (id),
    tenant_id         text NOT NULL REFERENCES tenants (id),
    attempt_number    integer NOT NULL CHECK (attempt_number > 0),
    status            text NOT NULL CHECK (status IN ('STARTED','SUCCEEDED','FAILED','UNKNOWN')),
    idempotency_key   text NOT NULL UNIQUE,
    failure_class     text NOT NULL DEFAULT '' CHECK (failure_class IN ('','hard_decline','soft_decline','rate_limited','transient','unknown')),
    error_code        text NOT NULL DEFAULT '',
    error_message     text NOT NULL DEFAULT '',
    gateway_reference text NOT NULL DEFAULT '',
    inquiry_count     integer NOT NULL DEFAULT 0 CHECK (inquiry_count >= 0),
    next_retry_at     timestamptz,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz,
    created_by        text NOT NULL DEFAULT '',
    updated_at        timestamptz NOT NULL,
    UNIQUE (payment_id, attempt_number),
    CHECK ((status IN ('SUCCEEDED','FAILED')) = (finished_at IS NOT NULL))
);

CREATE TABLE payment_events (
    id             bigserial PRIMARY KEY,
    payment_id     text NOT NULL REFERENCES payments (id),
    tenant_id      text NOT NULL REFERENCES tenants (id),
    from_status    text,
    to_status      text NOT NULL,
    reason         text NOT NULL,
    attempt_number integer NOT NULL DEFAULT 0,
    actor          text NOT NULL,
    created_at     timestamptz NOT NULL
);

CREATE INDEX payment_events_payment ON payment_events (payment_id, id);

CREATE TABLE refunds (
    id                text PRIMARY KEY,
    payment_id        text NOT NULL REFERENCES payments (id),
    tenant_id         text NOT NULL REFERENCES tenants (id),
    amount            bigint NOT NULL CHECK (amount > 0),
    currency          text NOT NULL,
    reason            text NOT NULL DEFAULT '',
    status            text NOT NULL CHECK (status IN ('PENDING','SUCCEEDED','FAILED')),
    gateway_reference text NOT NULL DEFAULT '',
    error_message     text NOT NULL DEFAULT '',
    step_seq          integer NOT NULL DEFAULT 1,
    next_at           timestamptz,
    created_by        text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL,
    finished_at       timestamptz,
    CHECK ((status = 'PENDING') = (next_at IS NOT NULL))
);

CREATE INDEX refunds_payment ON refunds (payment_id);
CREATE INDEX refunds_due ON refunds (next_at) WHERE next_at IS NOT NULL;

-- Idempotency-Key records: one per (tenant, route, key). A row is in flight
-- until the request's own transaction completes it with the response.
CREATE TABLE idempotency_keys (
    tenant_id     text NOT NULL REFERENCES tenants (id),
    route         text NOT NULL,
    key           text NOT NULL,
    fingerprint   bytea NOT NULL,
    state         text NOT NULL CHECK (state IN ('in_flight','done')),
    response_code integer,
    response_body bytea,
    owner         text NOT NULL,          -- token of the request holding the key while in flight
    locked_until  timestamptz NOT NULL,
    expires_at    timestamptz,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, route, key)
);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE refunds;
DROP TABLE payment_events;
DROP TABLE payment_attempts;
DROP TABLE payments;
DROP TABLE invoices;
DROP TABLE api_keys;
DROP TABLE tenants;
