-- +goose Up
-- Invoices are created through POST /v1/invoices; their external_id is a
-- business key, unique per tenant forever (DESIGN.md §5). The fingerprint of
-- the normalized request that created an invoice lets an identical repeat get
-- the same invoice back and refuses another request under the same
-- external_id. An invoice written without one (by an operator, or the test
-- harness) has none: creating it again through the API is a conflict.

ALTER TABLE invoices
    ADD COLUMN request_fingerprint bytea CHECK (request_fingerprint IS NULL OR length(request_fingerprint) = 32),
    ADD CONSTRAINT invoice_external_id_length CHECK (length(external_id) BETWEEN 1 AND 255) NOT VALID;

-- +goose Down
ALTER TABLE invoices DROP CONSTRAINT invoice_external_id_length, DROP COLUMN request_fingerprint;
