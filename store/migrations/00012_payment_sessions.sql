-- +goose Up
-- Payment sessions (seed 003): a merchant creates a session, the customer
-- (or the merchant's server) submits it with session_data, which intake
-- exchanges with the gateway for a one-time token before anything is
-- stored. Each submit records a new payment tied to the session
-- (payments.session_id), run by the same jobs as every payment; the session
-- follows its payment's terminal transitions in the same statement.
--
-- The session secret is kept only as its SHA-256 (shown once, in the 201);
-- session_data is never stored anywhere. next_at is when the session:expire
-- step is due (expires_on while the session can still expire), swept by the
-- sweeper like every step, under step_seq (the task's ID).
CREATE TABLE payment_sessions (
    id                text PRIMARY KEY,
    tenant_id         text NOT NULL REFERENCES tenants (id),
    status            text NOT NULL CHECK (status IN ('ACTIVE','PROCESSING','COMPLETED','FAILED','EXPIRED','CANCELED')),
    amount            bigint NOT NULL CHECK (amount >= 0),
    currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    reference         text NOT NULL DEFAULT '',
    description       text NOT NULL DEFAULT '',
    display_name      text NOT NULL DEFAULT '',
    locale            text NOT NULL,
    success_url       text NOT NULL CHECK (length(success_url) <= 1024),
    failure_url       text NOT NULL CHECK (length(failure_url) <= 1024),
    enabled_methods   text[] NOT NULL,              -- what the customer may pay with (card, ach)
    request           jsonb NOT NULL DEFAULT '{}',  -- the request's other fields, echoed by GET
    token             text NOT NULL UNIQUE,         -- payment_session_token: random, unguessable
    secret_hash       bytea NOT NULL CHECK (length(secret_hash) = 32), -- SHA-256 of payment_session_secret
    invoice_id        text REFERENCES invoices (id), -- the invoice a successful payment settles
    expires_on        timestamptz NOT NULL,
    retry_limit       integer NOT NULL CHECK (retry_limit BETWEEN 1 AND 20), -- payments a session may make
    attempts_used     integer NOT NULL DEFAULT 0 CHECK (attempts_used >= 0 AND attempts_used <= retry_limit),
    payment_id        text REFERENCES payments (id),  -- the latest payment
    submit_lock_until timestamptz,                    -- a submit is exchanging session_data until then
    last_error_code   text NOT NULL DEFAULT '',
    last_error_msg    text NOT NULL DEFAULT '',
    next_at           timestamptz,
    step_seq          integer NOT NULL DEFAULT 1 CHECK (step_seq > 0),
    swept             boolean NOT NULL DEFAULT false,
    created_by        text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    completed_at      timestamptz,
    expired_at        timestamptz,
    canceled_at       timestamptz,                    -- the merchant canceled it (POST …/cancel)
    -- finished sessions have nothing due
    CHECK (next_at IS NULL OR status NOT IN ('COMPLETED','EXPIRED','CANCELED')),
    CHECK (status <> 'ACTIVE' OR payment_id IS NULL),
    CHECK (status NOT IN ('PROCESSING','COMPLETED','FAILED') OR payment_id IS NOT NULL)
);
CREATE INDEX payment_sessions_due ON payment_sessions (next_at) WHERE next_at IS NOT NULL;
CREATE INDEX payment_sessions_tenant ON payment_sessions (tenant_id, created_at DESC);

ALTER TABLE payments ADD COLUMN session_id text REFERENCES payment_sessions (id);
CREATE INDEX payments_session ON payments (session_id) WHERE session_id IS NOT NULL;

-- The audit trail of sessions: every transition, with the payment it
-- concerns (none for creation and an expiry before any submit). A
-- payment's timeline shows its session's events.
CREATE TABLE payment_session_events (
    id          bigserial PRIMARY KEY,
    session_id  text NOT NULL REFERENCES payment_sessions (id),
    tenant_id   text NOT NULL REFERENCES tenants (id),
    payment_id  text REFERENCES payments (id),
    from_status text,
    to_status   text NOT NULL,
    reason      text NOT NULL,
    actor       text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX payment_session_events_session ON payment_session_events (session_id, id);

-- +goose Down
DROP TABLE payment_session_events;
DROP INDEX payments_session;
ALTER TABLE payments DROP COLUMN session_id;
DROP TABLE payment_sessions;
