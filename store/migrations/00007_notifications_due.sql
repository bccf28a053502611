-- +goose Up
-- Notifications received but not yet acted on: the sweeper re-enqueues those
-- whose task was lost (a Redis wipe right after they were recorded).
CREATE INDEX gateway_notifications_unprocessed ON gateway_notifications (received_at) WHERE processed_at IS NULL;

-- +goose Down
DROP INDEX gateway_notifications_unprocessed;
