-- +goose Up
-- Seed 001's vendor API in full (issue 25): the gateway a payment goes to,
-- the request options the vendor's client sends, and the delete of a
-- payment that moved no money.

-- gateway is the connector a payment was bound for when it was created
-- (its name: "sandbox", "stripe"); NULL for a payment that goes to no
-- gateway (OFFLINE, CREDITS, an imported payout). It is what the response's
-- payment_gateway shows, so it names the connector of the day the payment
-- was made, not of today.
ALTER TABLE payments ADD COLUMN gateway text CHECK (gateway IS NULL OR gateway <> '');

-- options are the vendor's request fields payd records but does not act on
-- (success_url, cancel_url, save_card_and_make_default): kept to answer
-- with them, never interpreted by the state machine.
ALTER TABLE payments ADD COLUMN options jsonb NOT NULL DEFAULT '{}'::jsonb;

-- deleted_at: DELETE /v1/payments/{id} of a payment that never went to a
-- gateway. The row stays (its audit trail and its released invoice line
-- with it) CANCELED, and the API answers 404 for it from then on.
ALTER TABLE payments ADD COLUMN deleted_at timestamptz;
ALTER TABLE payments ADD CONSTRAINT payments_deleted_canceled
    CHECK (deleted_at IS NULL OR (status = 'CANCELED' AND attempt_count = 0)) NOT VALID;
ALTER TABLE payments VALIDATE CONSTRAINT payments_deleted_canceled;

-- +goose Down
ALTER TABLE payments DROP CONSTRAINT payments_deleted_canceled;
ALTER TABLE payments DROP COLUMN deleted_at;
ALTER TABLE payments DROP COLUMN options;
ALTER TABLE payments DROP COLUMN gateway;
