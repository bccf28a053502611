-- +goose Up
-- Notifications a gateway pushed (charge succeeded, payment settled, payment
-- returned). A notification is only a hint: it makes payd ask the gateway
-- now; it never writes a payment status. One row per (gateway, notification
-- id), however often the gateway delivers it, so it is acted on once and
-- operators can see what arrived, when, how often, and what came of it.
CREATE TABLE gateway_notifications (
    gateway           text NOT NULL CHECK (length(gateway) BETWEEN 1 AND 40),
    notification_id   text NOT NULL CHECK (length(notification_id) BETWEEN 1 AND 100),
    type              text NOT NULL CHECK (length(type) BETWEEN 1 AND 64),
    idempotency_key   text NOT NULL DEFAULT '' CHECK (length(idempotency_key) <= 200),
    gateway_reference text NOT NULL DEFAULT '' CHECK (length(gateway_reference) <= 200),
    occurred_at       timestamptz NOT NULL,
    received_at       timestamptz NOT NULL,
    deliveries        integer NOT NULL DEFAULT 1 CHECK (deliveries > 0),
    payment_id        text REFERENCES payments (id),
    tenant_id         text REFERENCES tenants (id),
    processed_at      timestamptz,
    outcome           text NOT NULL DEFAULT '',
    PRIMARY KEY (gateway, notification_id),
    CHECK ((processed_at IS NULL) = (outcome = ''))
);

CREATE INDEX gateway_notifications_received ON gateway_notifications (received_at DESC);
CREATE INDEX gateway_notifications_payment ON gateway_notifications (payment_id) WHERE payment_id IS NOT NULL;
-- notifications that name only the gateway's reference find their attempt here
CREATE INDEX payment_attempts_reference ON payment_attempts (gateway_reference) WHERE gateway_reference <> '';

-- +goose Down
DROP INDEX payment_attempts_reference;
DROP TABLE gateway_notifications;
