-- +goose Up
-- Gateway notifications are recovered like every payment step and refund
-- try (00004): a notification not yet acted on carries when the sweeper
-- should look at it next (next_at, its receipt at first), the step
-- sequence its task is named by (gateway:notification…, a fresh task ID
-- each time the sweeper re-arms it) and the swept flag. The sweeper claims
-- due rows oldest first (FOR UPDATE SKIP LOCKED) and pushes next_at out by
-- its lease, so a notification whose task keeps failing goes to the back
-- of the line instead of starving newer ones (the sweep used to list the
-- oldest unprocessed rows with a fixed LIMIT, every time); one still due a
-- lease later has its task inspected and, when archived or stuck, re-armed
-- under step_seq + 1 (the old task is then stale).
--
-- next_at defaults to now() and no CHECK ties it to processed_at, so code
-- of the previous release (which neither sets nor clears it) still inserts
-- and finishes rows while this one rolls out; the sweeper reads only rows
-- with processed_at IS NULL. The default is evaluated once for the rows
-- that exist (no table rewrite); those not yet processed are then due from
-- their receipt, as before.
ALTER TABLE gateway_notifications
    ADD COLUMN next_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN step_seq integer NOT NULL DEFAULT 1 CHECK (step_seq > 0),
    ADD COLUMN swept boolean NOT NULL DEFAULT false;
UPDATE gateway_notifications SET next_at = received_at WHERE processed_at IS NULL;

-- the sweeper ranges and orders by next_at over the rows not yet processed
DROP INDEX gateway_notifications_unprocessed;
CREATE INDEX gateway_notifications_due ON gateway_notifications (next_at) WHERE processed_at IS NULL;

-- +goose Down
DROP INDEX gateway_notifications_due;
CREATE INDEX gateway_notifications_unprocessed ON gateway_notifications (received_at) WHERE processed_at IS NULL;
ALTER TABLE gateway_notifications DROP COLUMN swept, DROP COLUMN step_seq, DROP COLUMN next_at;
