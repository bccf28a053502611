-- +goose NO TRANSACTION
-- +goose Up
-- GET /v1/payments pages by offset (the seed-001 vendor's convention) as
-- well as by cursor. An offset page is the ids of one surface's payments of
-- a tenant in created_at order, skipped and taken from this index alone
-- (an index-only scan: no heap read for a skipped row), then only the page's
-- rows are read (store.ListPayments). payments_tenant_list has no surface,
-- so skipping through it reads every skipped row to check the surface. The
-- capped count of pagination.total walks the same index. The filters most
-- lists use (payment_status, payment_method_type, currency) are INCLUDEd,
-- so that they too are checked on index entries, not rows: method and
-- currency never change, and status is already in payments_tenant_status,
-- so a status change was never a HOT update anyway. Deleted payments
-- (DELETE /v1/payments/{id}, 00021) are never listed, so the index leaves
-- them out (partial), and a list's "deleted_at IS NULL" costs no heap read.
--
-- Built CONCURRENTLY, outside a transaction (NO TRANSACTION above), so that
-- upgrading a deployment with millions of payments does not block its
-- writes while the index builds. A build that failed midway leaves an
-- INVALID index of that name, which the DROP clears before the next try.
DROP INDEX CONCURRENTLY IF EXISTS payments_tenant_surface_list;
CREATE INDEX CONCURRENTLY payments_tenant_surface_list ON payments (tenant_id, surface, created_at DESC, id DESC)
    INCLUDE (status, method, currency) WHERE deleted_at IS NULL;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS payments_tenant_surface_list;
