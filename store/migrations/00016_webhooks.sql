-- +goose Up
-- Webhook endpoints and deliveries (issue 23, part 2). Every event a
-- tenant's enabled endpoint subscribes to gets one delivery row, written by
-- a trigger on events in the transaction that wrote the event (so in the
-- transaction of the transition itself); the dispatcher enqueues a
-- webhook:deliver task for every delivery due (next_at), under step_seq
-- (its TaskID), as the sweeper does for every step. Every try is logged in
-- webhook_delivery_attempts.
CREATE TABLE webhook_endpoints (
    id              text PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants (id),
    url             text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description     text NOT NULL DEFAULT '',
    enabled_events  text[] NOT NULL CHECK (cardinality(enabled_events) > 0),
    status          text NOT NULL CHECK (status IN ('enabled','disabled')),
    disabled_reason text NOT NULL DEFAULT '',
    -- the signing secret, sealed with PAYD_WEBHOOK_KEYS (AES-256-GCM, bound
    -- to the endpoint id): a database dump alone cannot sign
    secret_sealed   text NOT NULL,
    -- after a rotation the old secret keeps signing until previous_until
    previous_sealed text,
    previous_until  timestamptz,
    -- since when every delivery try has failed (NULL after a success)
    failing_since   timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    deleted_at      timestamptz
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE webhook_deliveries (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL,
    event_id         text NOT NULL REFERENCES events (id),
    endpoint_id      text NOT NULL REFERENCES webhook_endpoints (id),
    status           text NOT NULL CHECK (status IN ('pending','delivered','failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_at          timestamptz,
    step_seq         integer NOT NULL DEFAULT 1 CHECK (step_seq > 0),
    swept            boolean NOT NULL DEFAULT false,
    event_at         timestamptz NOT NULL, -- when the event happened (delivery latency is measured from it)
    delivered_at     timestamptz,
    last_status_code integer,
    last_error       text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    UNIQUE (event_id, endpoint_id),
    CHECK ((status = 'pending') = (next_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE next_at IS NOT NULL;
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC);

CREATE TABLE webhook_delivery_attempts (
    id          bigserial PRIMARY KEY,
    delivery_id text NOT NULL REFERENCES webhook_deliveries (id),
    endpoint_id text NOT NULL,
    tenant_id   text NOT NULL,
    event_id    text NOT NULL,
    attempt     integer NOT NULL,
    status_code integer,              -- NULL: no answer (connection refused, timeout, refused address)
    latency_ms  integer NOT NULL,
    error       text NOT NULL DEFAULT '',
    next_at     timestamptz,          -- the next try, NULL when none
    created_at  timestamptz NOT NULL
);
CREATE INDEX webhook_delivery_attempts_endpoint ON webhook_delivery_attempts (endpoint_id, id DESC);

-- +goose StatementBegin
CREATE FUNCTION webhook_fanout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (id, tenant_id, event_id, endpoint_id, status, next_at, event_at, created_at)
    SELECT 'whd_' || replace(gen_random_uuid()::text, '-', ''), NEW.tenant_id, NEW.id, e.id, 'pending',
           NEW.created_at, NEW.created_at, NEW.created_at
    FROM webhook_endpoints e
    WHERE e.tenant_id = NEW.tenant_id AND e.status = 'enabled' AND e.deleted_at IS NULL
      AND (NEW.type = ANY (e.enabled_events) OR '*' = ANY (e.enabled_events));
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER events_webhook_fanout AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION webhook_fanout();

-- +goose Down
DROP TRIGGER events_webhook_fanout ON events;
DROP FUNCTION webhook_fanout();
DROP TABLE webhook_delivery_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
