package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

// Listing payments: one filter, two ways to page (a cursor or an offset),
// and a count that stops early.

// ListFilter selects a page of payments in created_at order (then id),
// newest first unless Ascending. A zero field does not filter.
type ListFilter struct {
	TenantID string
	Surface  string
	Statuses []payment.Status // any of; empty for all
	Methods  []payment.Method // any of; empty for all
	// DestinationType, DestinationID, Currency and GatewayReference match
	// the column exactly.
	DestinationType  string
	DestinationID    string
	Currency         string
	GatewayReference string
	IDs              []string   // any of; empty for all
	CreatedFrom      *time.Time // created_at at or after
	CreatedTo        *time.Time // created_at at or before
	// None: the caller knows that nothing matches (a filter on something
	// payd never records); the page is empty without a query.
	None      bool
	Ascending bool
	Limit     int
	// StartingAfter (a payment id: the page starts after it) or Offset (rows
	// skipped), not both.
	StartingAfter string
	Offset        int
}

// where is the filter's WHERE clause over payments p and its arguments,
// numbered from $1 (the tenant).
func (f ListFilter) where() (string, []any) {
	args := []any{f.TenantID}
	// a deleted payment (DELETE /v1/payments/{id}) is never listed; the
	// list index is partial on the same condition
	where := []string{"p.tenant_id = $1", "p.deleted_at IS NULL"}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Surface != "" {
		add("p.surface = $%d", f.Surface)
	}
	if len(f.Statuses) > 0 {
		ss := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			ss[i] = string(st)
		}
		add("p.status = ANY($%d)", pq.Array(ss))
	}
	if len(f.Methods) > 0 {
		ms := make([]string, len(f.Methods))
		for i, m := range f.Methods {
			ms[i] = string(m)
		}
		add("p.method = ANY($%d)", pq.Array(ms))
	}
	for _, c := range []struct{ col, v string }{{"destination_type", f.DestinationType},
		{"destination_id", f.DestinationID}, {"currency", f.Currency}, {"gateway_reference", f.GatewayReference}} {
		if c.v != "" {
			add("p."+c.col+" = $%d", c.v)
		}
	}
	if len(f.IDs) > 0 {
		add("p.id = ANY($%d)", pq.Array(f.IDs))
	}
	if f.CreatedFrom != nil {
		add("p.created_at >= $%d", *f.CreatedFrom)
	}
	if f.CreatedTo != nil {
		add("p.created_at <= $%d", *f.CreatedTo)
	}
	if f.StartingAfter != "" {
		cmp := "<"
		if f.Ascending {
			cmp = ">"
		}
		add(`(p.created_at, p.id) `+cmp+` (SELECT created_at, id FROM payments WHERE id = $%d AND tenant_id = $1)`, f.StartingAfter)
	}
	return strings.Join(where, " AND "), args
}

func (f ListFilter) orderBy() string {
	if f.Ascending {
		return ` ORDER BY p.created_at, p.id`
	}
	return ` ORDER BY p.created_at DESC, p.id DESC`
}

// ListPayments returns up to Limit payments and whether more follow.
//
// An offset page first takes the page's ids alone, skipping Offset entries
// of an index (payments_tenant_surface_list: index-only when the filter is
// on tenant, surface, created_at and its INCLUDEd status, method and
// currency), then reads only those rows: the skipped rows are never read
// from the table, so the page's cost grows with Offset by index entries
// only. Filters on other columns read each row they check.
func (s *Store) ListPayments(ctx context.Context, f ListFilter) ([]payment.Payment, bool, error) {
	if f.None {
		return nil, false, nil
	}
	where, args := f.where()
	args = append(args, f.Limit+1)
	lim := len(args)
	var q string
	if f.Offset > 0 {
		args = append(args, f.Offset)
		q = `SELECT ` + paymentColumns + paymentFrom + ` WHERE p.id = ANY(ARRAY(SELECT p.id FROM payments p WHERE ` +
			where + f.orderBy() + fmt.Sprintf(` LIMIT $%d OFFSET $%d))`, lim, len(args)) + f.orderBy()
	} else {
		q = `SELECT ` + paymentColumns + paymentFrom + ` WHERE ` + where + f.orderBy() + fmt.Sprintf(` LIMIT $%d`, lim)
	}
	return s.pagePayments(ctx, "list payments", f.Limit, q, args...)
}

// CountPayments counts the payments the filter matches (Limit, Offset and
// StartingAfter aside), reading at most upTo of them: it answers upTo when
// at least that many match. An exact count of a large tenant would read
// every row; the list's caller never needs more than the rows it can page
// to.
func (s *Store) CountPayments(ctx context.Context, f ListFilter, upTo int) (int, error) {
	if f.None {
		return 0, nil
	}
	f.StartingAfter = ""
	where, args := f.where()
	args = append(args, upTo)
	var n int
	err := s.q.QueryRowxContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM payments p WHERE `+where+
		fmt.Sprintf(` LIMIT $%d) m`, len(args)), args...).Scan(&n)
	if err != nil {
		return 0, translate(fmt.Errorf("count payments: %w", err))
	}
	return n, nil
}
