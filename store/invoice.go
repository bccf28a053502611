package store

import (
	"context"
	"fmt"

	"github.com/payd/payd/payment"
)

// Invoice is a destination that payments pay.
type Invoice struct {
	ID            string `db:"id"`
	TenantID      string `db:"tenant_id"`
	ExternalID    string `db:"external_id"`
	InvoiceNumber string `db:"invoice_number"`
	Currency      string `db:"currency"`
}

// EnsureInvoice returns the tenant's invoice named by destination (its id or
// external id), creating an implicit one on first reference. The invoices
// resource replaces implicit creation once it lands.
func (s *Store) EnsureInvoice(ctx context.Context, tenantID, destination, currency string) (Invoice, error) {
	var inv Invoice
	err := s.q.QueryRowxContext(ctx, `SELECT id, tenant_id, external_id, invoice_number, currency FROM invoices
		WHERE tenant_id = $1 AND (id = $2 OR external_id = $2) ORDER BY (id = $2) DESC LIMIT 1`, tenantID, destination).StructScan(&inv)
	if err == nil {
		return inv, nil
	}
	if err = translate(err); !isNotFound(err) {
		return inv, fmt.Errorf("load invoice: %w", err)
	}
	id := NewID(payment.PrefixInvoice)
	err = s.q.QueryRowxContext(ctx, `
		INSERT INTO invoices (id, tenant_id, external_id, invoice_number, currency, implicit, created_at)
		VALUES ($1, $2, $3, 'INV-' || upper(substr(md5($1), 1, 10)), $4, true, $5)
		ON CONFLICT (tenant_id, external_id) DO UPDATE SET external_id = EXCLUDED.external_id
		RETURNING id, tenant_id, external_id, invoice_number, currency`,
		id, tenantID, destination, currency, s.now()).StructScan(&inv)
	if err != nil {
		return inv, translate(fmt.Errorf("create implicit invoice: %w", err))
	}
	return inv, nil
}
