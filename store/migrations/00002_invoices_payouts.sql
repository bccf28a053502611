-- +goose Up
-- Users, invoices with balances, applications of payments to invoices, and
-- the bank-rail details of payouts (seed 002). Invoice balances are columns
-- guarded by CHECKs and changed only under the invoice's row lock, so no
-- number of concurrent payments can over-apply an invoice.

CREATE TABLE users (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    external_id text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 255),
    name        text NOT NULL DEFAULT '',
    email       text NOT NULL DEFAULT '',
    metadata    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL,
    UNIQUE (tenant_id, external_id)
);

ALTER TABLE invoices
    ADD COLUMN amount_reserved bigint NOT NULL DEFAULT 0, -- applications of payments not failed: never above amount_due
    ADD COLUMN amount_paid     bigint NOT NULL DEFAULT 0, -- applications of succeeded payments, less what was returned or refunded
    ADD COLUMN payer_user_id   text REFERENCES users (id),
    ADD COLUMN due_date        date,
    ADD COLUMN metadata        jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN voided_at       timestamptz,
    ADD CONSTRAINT invoice_balances CHECK (amount_paid >= 0 AND amount_paid <= amount_reserved AND amount_reserved <= amount_due),
    ADD COLUMN status text GENERATED ALWAYS AS (
        CASE WHEN voided_at IS NOT NULL THEN 'VOID'
             WHEN amount_paid = 0 THEN 'OPEN'
             WHEN amount_paid < amount_due THEN 'PARTIALLY_PAID'
             ELSE 'PAID' END) STORED;

CREATE INDEX invoices_tenant_list ON invoices (tenant_id, created_at DESC, id DESC);

-- who is paid out of an invoice (payment flows build on this)
CREATE TABLE invoice_payees (
    invoice_id text NOT NULL REFERENCES invoices (id),
    user_id    text NOT NULL REFERENCES users (id),
    amount     bigint NOT NULL CHECK (amount > 0),
    PRIMARY KEY (invoice_id, user_id)
);

-- One line of a payment applied to an invoice. Reserved while the payment
-- is under way, applied when it succeeds, released (in part or whole) when it
-- fails, is returned or refunded.
CREATE TABLE payment_applications (
    id                text PRIMARY KEY,
    tenant_id         text NOT NULL REFERENCES tenants (id),
    payment_id        text NOT NULL REFERENCES payments (id),
    invoice_id        text NOT NULL REFERENCES invoices (id),
    applied_amount    bigint NOT NULL CHECK (applied_amount > 0),      -- minor units of the invoice's currency
    payment_amount    bigint NOT NULL CHECK (payment_amount > 0),      -- the same, in minor units of the payment's currency
    applied_currency  text NOT NULL CHECK (applied_currency ~ '^[A-Z]{3}$'),
    fx_rate_line      numeric(24, 12) CHECK (fx_rate_line > 0),
    fx_at_line        timestamptz,
    discount_amount   bigint CHECK (discount_amount >= 0),
    discount_currency text,
    fee_amount_line   bigint CHECK (fee_amount_line >= 0),
    fee_currency_line text,
    remittance_label  text NOT NULL DEFAULT 'Invoice',
    remittance_value  text,
    notes             text,
    state             text NOT NULL CHECK (state IN ('reserved','applied','released')),
    released_amount   bigint NOT NULL DEFAULT 0 CHECK (released_amount >= 0),
    created_at        timestamptz NOT NULL,
    CHECK (released_amount <= applied_amount)
);

CREATE INDEX payment_applications_payment ON payment_applications (payment_id);
CREATE INDEX payment_applications_invoice ON payment_applications (invoice_id);

-- The seed-002 fields of a payout that are not the payment itself.
CREATE TABLE payout_details (
    payment_id          text PRIMARY KEY REFERENCES payments (id),
    tenant_id           text NOT NULL REFERENCES tenants (id),
    external_payment_id text NOT NULL CHECK (length(external_payment_id) BETWEEN 1 AND 255),
    external_source     text NOT NULL DEFAULT 'UNKNOWN',
    imported_status     text,            -- the status given on create, when importing a payment made elsewhere
    account_fingerprint text NOT NULL,   -- SHA-256 of the beneficiary account, to block it after certain returns
    details             jsonb NOT NULL,  -- every other seed field, as given
    UNIQUE (tenant_id, external_payment_id)
);

-- Beneficiary accounts that must not be paid again (ACH returns R02, R03, R04).
CREATE TABLE blocked_accounts (
    tenant_id           text NOT NULL REFERENCES tenants (id),
    account_fingerprint text NOT NULL,
    return_code         text NOT NULL,
    payment_id          text NOT NULL REFERENCES payments (id),
    created_at          timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, account_fingerprint)
);

-- +goose Down
DROP TABLE blocked_accounts;
DROP TABLE payout_details;
DROP TABLE payment_applications;
DROP TABLE invoice_payees;
ALTER TABLE invoices DROP COLUMN status, DROP CONSTRAINT invoice_balances, DROP COLUMN voided_at, DROP COLUMN metadata,
    DROP COLUMN due_date, DROP COLUMN payer_user_id, DROP COLUMN amount_paid, DROP COLUMN amount_reserved;
DROP TABLE users;
