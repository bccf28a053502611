-- +goose Up
-- GET /v1/payments pages by offset (the seed-001 vendor's convention) as
-- well as by cursor. An offset page is the ids of one surface's payments of
-- a tenant in created_at order, skipped and taken from this index alone
-- (an index-only scan: no heap read for a skipped row), then only the page's
-- rows are read (store.ListPayments). payments_tenant_list has no surface,
-- so skipping through it reads every skipped row to check the surface. The
-- capped count of pagination.total walks the same index.
CREATE INDEX payments_tenant_surface_list ON payments (tenant_id, surface, created_at DESC, id DESC);

-- +goose Down
DROP INDEX payments_tenant_surface_list;
