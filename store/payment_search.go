package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

// Listing payments across tenants and surfaces, for operators
// (`payd payments list`).

// StatusCond selects payments by status, as one surface names them or in
// the canonical vocabulary: Statuses (any of) of Surface ("" any); for
// payouts, Paid keeps only those recorded as paid (true) or only the
// rail-settled (false), as seed 002's PAID and SETTLED do.
type StatusCond struct {
	Surface  string
	Statuses []payment.Status
	Paid     *bool
}

// Search selects payments, newest first.
type Search struct {
	TenantID string       // "" for every tenant
	Surface  string       // "" for every surface
	Any      []StatusCond // a payment matching any of them; none: every status
	Since    time.Time    // created at or after (zero: any time)
	Limit    int
}

// SearchPayments returns up to Limit payments (with their attempts) and
// whether more follow.
func (s *Store) SearchPayments(ctx context.Context, f Search) ([]payment.Payment, bool, error) {
	args := []any{f.Limit + 1}
	var where []string
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.TenantID != "" {
		where = append(where, "p.tenant_id = "+arg(f.TenantID))
	}
	if f.Surface != "" {
		where = append(where, "p.surface = "+arg(f.Surface))
	}
	if !f.Since.IsZero() {
		where = append(where, "p.created_at >= "+arg(f.Since))
	}
	var ors []string
	for _, c := range f.Any {
		conds := []string{"true"}
		if c.Surface != "" {
			conds = append(conds, "p.surface = "+arg(c.Surface))
		}
		if len(c.Statuses) > 0 {
			ss := make([]string, len(c.Statuses))
			for i, st := range c.Statuses {
				ss[i] = string(st)
			}
			conds = append(conds, "p.status = ANY("+arg(pq.Array(ss))+")")
		}
		if c.Paid != nil {
			rails := arg(pq.Array(bankRails()))
			paid := `(d.imported_status = 'PAID' OR NOT (p.method = ANY(` + rails + `)))`
			if !*c.Paid {
				paid = `(d.imported_status IS DISTINCT FROM 'PAID' AND p.method = ANY(` + rails + `))`
			}
			conds = append(conds, paid)
		}
		ors = append(ors, "("+strings.Join(conds, " AND ")+")")
	}
	if len(ors) > 0 {
		where = append(where, "("+strings.Join(ors, " OR ")+")")
	}
	if len(where) == 0 {
		where = append(where, "true")
	}
	q := `SELECT ` + paymentColumns + paymentFrom + ` LEFT JOIN payout_details d ON d.payment_id = p.id WHERE ` +
		strings.Join(where, " AND ") + ` ORDER BY p.created_at DESC, p.id DESC LIMIT $1`
	return s.pagePayments(ctx, "search payments", f.Limit, q, args...)
}

// ImportedStatuses returns the status each payout among ids was imported
// with (absent: sent by payd, or not a payout), for its seed-002 status.
func (s *Store) ImportedStatuses(ctx context.Context, ids []string) (map[string]string, error) {
	var rows []struct {
		ID     string `db:"payment_id"`
		Status string `db:"imported_status"`
	}
	if err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT payment_id, imported_status FROM payout_details
		WHERE payment_id = ANY($1) AND imported_status IS NOT NULL`, pq.Array(ids)); err != nil {
		return nil, translate(fmt.Errorf("imported statuses: %w", err))
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Status
	}
	return out, nil
}
