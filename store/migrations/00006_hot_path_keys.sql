-- +goose Up
-- The per-payment tables keep their tenant_id but no longer reference
-- tenants. A foreign-key check takes a KEY SHARE lock on the referenced row,
-- and every payment, attempt, audit row, line and idempotency record of a
-- tenant referenced the same tenants row: concurrent writers of one tenant
-- turned that row's lock into a new MultiXact on every insert (7 of them per
-- card payment), WAL-logged each time — the most frequent statement under
-- load (docs/BENCHMARKS.md). tenant_id on these rows is copied from the
-- payment, or from the API key that authenticated the request, in the
-- statement that writes them; tenants are never deleted. The references to
-- payments, invoices and users stay.
ALTER TABLE payments DROP CONSTRAINT payments_tenant_id_fkey;
ALTER TABLE payment_attempts DROP CONSTRAINT payment_attempts_tenant_id_fkey;
ALTER TABLE payment_events DROP CONSTRAINT payment_events_tenant_id_fkey;
ALTER TABLE payment_applications DROP CONSTRAINT payment_applications_tenant_id_fkey;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_tenant_id_fkey;
ALTER TABLE refunds DROP CONSTRAINT refunds_tenant_id_fkey;
ALTER TABLE payout_details DROP CONSTRAINT payout_details_tenant_id_fkey;
ALTER TABLE blocked_accounts DROP CONSTRAINT blocked_accounts_tenant_id_fkey;
ALTER TABLE gateway_notifications DROP CONSTRAINT gateway_notifications_tenant_id_fkey;

-- +goose Down
ALTER TABLE gateway_notifications ADD CONSTRAINT gateway_notifications_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE blocked_accounts ADD CONSTRAINT blocked_accounts_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE payout_details ADD CONSTRAINT payout_details_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE refunds ADD CONSTRAINT refunds_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE payment_applications ADD CONSTRAINT payment_applications_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE payment_events ADD CONSTRAINT payment_events_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE payment_attempts ADD CONSTRAINT payment_attempts_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE payments ADD CONSTRAINT payments_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);
