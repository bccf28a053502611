-- +goose Up
-- Merchant events (issue 23, part 1): an outbox written by triggers, in the
-- transaction of the transition that makes each event, whichever statement
-- made it (the batched hot-path statement of store/payment_change.go
-- included) and without a round trip of its own. GET /v1/events reads it;
-- delivery to webhook endpoints reads it later. See docs/events.md.
--
-- Which transition is which event is data, not code: event_sources says
-- which object type a table's row is (by its surface, for payments) and
-- which of its columns never leave payd; event_types names the event of
-- each status an object enters. A new surface adds rows here (and, for a
-- new table, one CREATE TRIGGER … EXECUTE FUNCTION emit_event()).

CREATE TABLE event_sources (
    source_table text NOT NULL,            -- TG_TABLE_NAME of the trigger
    surface      text NOT NULL DEFAULT '*', -- the row's surface column ('*': any, or a table without one)
    object_type  text NOT NULL,
    redact       text[] NOT NULL DEFAULT '{}', -- columns left out of the snapshot: secrets, one-time tokens
    PRIMARY KEY (source_table, surface)
);

CREATE TABLE event_types (
    object_type text NOT NULL,
    status      text NOT NULL,              -- the status the object enters
    reason      text NOT NULL DEFAULT '*',  -- the row's blocked_reason ('*': any)
    type        text NOT NULL CHECK (type ~ '^[a-z_]+\.[a-z_]+$'),
    PRIMARY KEY (object_type, status, reason)
);

INSERT INTO event_sources (source_table, surface, object_type, redact) VALUES
    -- seed-001 payments and the payins of flows: payment_method_id is the merchant's own reference, shown by GET
    ('payments', '*', 'payment', '{request_fingerprint}'),
    -- a session's payment: payment_method_id is the gateway's one-time token of session_data
    ('payments', 'sessions', 'payment', '{request_fingerprint,payment_method_id}'),
    -- a payout: payment_method_id is the beneficiary account's key (the payout shows its own fields)
    ('payments', 'payouts', 'payout', '{request_fingerprint,payment_method_id}'),
    ('payment_sessions', '*', 'payment_session', '{secret_hash,token,submit_lock_until}'),
    ('payment_flows', '*', 'payment_flow', '{request_fingerprint}');

INSERT INTO event_types (object_type, status, reason, type) VALUES
    ('payment', 'PROCESSING', '*', 'payment.processing'),
    ('payment', 'REQUIRES_ACTION', '*', 'payment.requires_action'),
    ('payment', 'REQUIRES_REVIEW', '*', 'payment.requires_review'),
    ('payment', 'SENT', '*', 'payment.sent'),
    ('payment', 'SUCCEEDED', '*', 'payment.succeeded'),
    ('payment', 'FAILED', '*', 'payment.failed'),
    ('payment', 'CANCELED', '*', 'payment.canceled'),
    ('payment', 'PARTIALLY_REFUNDED', '*', 'payment.partially_refunded'),
    ('payment', 'REFUNDED', '*', 'payment.refunded'),
    ('payment', 'RETURNED', '*', 'payment.returned'),
    ('payout', 'PROCESSING', '*', 'payout.processing'),
    ('payout', 'REQUIRES_ACTION', '*', 'payout.requires_action'),
    ('payout', 'REQUIRES_REVIEW', '*', 'payout.requires_review'),
    ('payout', 'SENT', '*', 'payout.sent'),
    ('payout', 'SUCCEEDED', '*', 'payout.settled'),
    ('payout', 'FAILED', '*', 'payout.failed'),
    ('payout', 'CANCELED', '*', 'payout.canceled'),
    ('payout', 'PARTIALLY_REFUNDED', '*', 'payout.partially_refunded'),
    ('payout', 'REFUNDED', '*', 'payout.returned'),
    ('payout', 'RETURNED', '*', 'payout.returned'),
    ('payment_session', 'COMPLETED', '*', 'payment_session.completed'),
    ('payment_session', 'FAILED', '*', 'payment_session.failed'),
    ('payment_session', 'EXPIRED', '*', 'payment_session.expired'),
    ('payment_session', 'CANCELED', '*', 'payment_session.canceled'),
    ('payment_flow', 'processing', '*', 'payment_flow.processing'),
    ('payment_flow', 'settled', '*', 'payment_flow.settled'),
    ('payment_flow', 'failed', '*', 'payment_flow.failed'),
    -- a payin failed and its payer has no new method: the merchant can
    -- unblock it (PATCH /v1/users/{id}), so it is blocked, not failed
    ('payment_flow', 'failed', 'payin_failed', 'payment_flow.blocked'),
    ('payment_flow', 'canceled', '*', 'payment_flow.canceled');

-- The outbox. seq orders the events of one object (a bigserial taken while
-- the transition holds the object's row lock, so it follows the order the
-- transitions committed in); created_at is the transition's own time
-- (updated_at of the row: payd's clock, not the database's now()); data is
-- the row as the transition left it, less event_sources.redact.
CREATE TABLE events (
    seq         bigserial PRIMARY KEY,
    id          text NOT NULL UNIQUE,
    tenant_id   text NOT NULL,
    type        text NOT NULL,
    object_type text NOT NULL,
    object_id   text NOT NULL,
    data        jsonb NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX events_tenant ON events (tenant_id, seq DESC);
CREATE INDEX events_object ON events (object_id, seq DESC);

-- +goose StatementBegin
CREATE FUNCTION emit_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    snap jsonb := to_jsonb(NEW);
    src  event_sources;
    typ  text;
    at   timestamptz := COALESCE(NEW.updated_at, clock_timestamp());
BEGIN
    SELECT * INTO src FROM event_sources
    WHERE source_table = TG_TABLE_NAME AND surface IN (COALESCE(snap->>'surface', '*'), '*')
    ORDER BY surface = '*' LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT t.type INTO typ FROM event_types t
    WHERE t.object_type = src.object_type AND t.status = NEW.status
      AND t.reason IN (COALESCE(snap->>'blocked_reason', '*'), '*')
    ORDER BY t.reason = '*' LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL; -- a status with no event (PENDING, ACTIVE, a session's PROCESSING)
    END IF;
    INSERT INTO events (id, tenant_id, type, object_type, object_id, data, created_at)
    VALUES ('evt_' || overlay(overlay(replace(gen_random_uuid()::text, '-', '')
                placing lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0') FROM 1 FOR 12)
                placing '7' FROM 13 FOR 1),
            NEW.tenant_id, typ, src.object_type, NEW.id, snap - src.redact, at);
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER payments_emit_event AFTER UPDATE OF status ON payments
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION emit_event();
CREATE TRIGGER payment_sessions_emit_event AFTER UPDATE OF status ON payment_sessions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION emit_event();
-- a flow's failure whose reason changes (blocked → failed for good) is an event too
CREATE TRIGGER payment_flows_emit_event AFTER UPDATE OF status, blocked_reason ON payment_flows
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR
                       (NEW.status = 'failed' AND OLD.blocked_reason IS DISTINCT FROM NEW.blocked_reason))
    EXECUTE FUNCTION emit_event();

-- +goose Down
DROP TRIGGER payment_flows_emit_event ON payment_flows;
DROP TRIGGER payment_sessions_emit_event ON payment_sessions;
DROP TRIGGER payments_emit_event ON payments;
DROP FUNCTION emit_event();
DROP TABLE events;
DROP TABLE event_types;
DROP TABLE event_sources;
