-- +goose Up
-- The monitor counts open flows by status at every scrape: an index over
-- the open ones only, so the count never reads the settled history.
CREATE INDEX payment_flows_open ON payment_flows (status) WHERE status IN ('pending','processing','failed');

-- +goose Down
DROP INDEX payment_flows_open;
