-- +goose Up
-- Operator tools (issue 24): API key revocation that every intake process
-- hears at once, the audit trail of key revocations and rotations, and
-- the link from a FAILED payment to the payment an operator retried it as.

-- Every intake process caches key lookups (intake/auth.go). A change of a
-- key's revocation (revoked now, or scheduled by a rotation's grace), or
-- its deletion, is sent on payd_api_keys with the key's id, at commit,
-- whichever statement made it; each process LISTENs and drops the key from
-- its cache (store/api_key_watch.go).
-- +goose StatementBegin
CREATE FUNCTION notify_api_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('payd_api_keys', OLD.id);
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER api_keys_changed AFTER UPDATE ON api_keys FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.key_hash IS DISTINCT FROM NEW.key_hash
          OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id)
    EXECUTE FUNCTION notify_api_key_change();
CREATE TRIGGER api_keys_deleted AFTER DELETE ON api_keys FOR EACH ROW
    EXECUTE FUNCTION notify_api_key_change();

-- The audit row of each change to a key after its creation: who revoked or
-- rotated it, why, and when it stops (or stopped) working.
CREATE TABLE api_key_events (
    id          bigserial PRIMARY KEY,
    key_id      text NOT NULL REFERENCES api_keys (id),
    tenant_id   text NOT NULL REFERENCES tenants (id),
    action      text NOT NULL CHECK (action IN ('revoked', 'rotated')),
    revoked_at  timestamptz NOT NULL,        -- when the key stops being accepted
    replaced_by text REFERENCES api_keys (id), -- the new key of a rotation
    actor       text NOT NULL,
    reason      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    CHECK ((action = 'rotated') = (replaced_by IS NOT NULL))
);
CREATE INDEX api_key_events_key ON api_key_events (key_id, id);

-- A FAILED payment stays FAILED (terminal states absorb): an operator's
-- retry is a new payment with its own attempts and gateway keys, linked
-- here. The primary key retries a payment at most once, whoever races.
CREATE TABLE payment_retries (
    payment_id text PRIMARY KEY REFERENCES payments (id),     -- the FAILED payment
    retry_id   text NOT NULL UNIQUE REFERENCES payments (id), -- the payment it was retried as
    tenant_id  text NOT NULL REFERENCES tenants (id),
    actor      text NOT NULL,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL,
    CHECK (payment_id <> retry_id)
);

-- +goose Down
DROP TABLE payment_retries;
DROP TABLE api_key_events;
DROP TRIGGER api_keys_deleted ON api_keys;
DROP TRIGGER api_keys_changed ON api_keys;
DROP FUNCTION notify_api_key_change();
