package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

// User is a payer or payee, named by the tenant's external id.
type User struct {
	ID         string
	TenantID   string
	ExternalID string
	Name       string
	Email      string
	Metadata   map[string]string
	CreatedAt  time.Time
}

type userRow struct {
	ID         string    `db:"id"`
	TenantID   string    `db:"tenant_id"`
	ExternalID string    `db:"external_id"`
	Name       string    `db:"name"`
	Email      string    `db:"email"`
	Metadata   []byte    `db:"metadata"`
	CreatedAt  time.Time `db:"created_at"`
}

func (r userRow) toUser() User {
	u := User{ID: r.ID, TenantID: r.TenantID, ExternalID: r.ExternalID, Name: r.Name, Email: r.Email, CreatedAt: r.CreatedAt.UTC()}
	_ = json.Unmarshal(r.Metadata, &u.Metadata)
	return u
}

const userColumns = `id, tenant_id, external_id, name, email, metadata, created_at`

// CreateUser inserts a user; an existing external id is returned as it is,
// with created false.
func (s *Store) CreateUser(ctx context.Context, u User) (User, bool, error) {
	meta, _ := json.Marshal(nonNil(u.Metadata))
	var r userRow
	err := s.q.QueryRowxContext(ctx, `
		INSERT INTO users (id, tenant_id, external_id, name, email, metadata, created_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7)
		ON CONFLICT (tenant_id, external_id) DO NOTHING
		RETURNING `+userColumns, NewID(payment.PrefixUser), u.TenantID, u.ExternalID, u.Name, u.Email, meta, s.now()).StructScan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		existing, err := s.GetUser(ctx, u.TenantID, u.ExternalID)
		return existing, false, err
	}
	if err != nil {
		return User{}, false, translate(fmt.Errorf("create user: %w", err))
	}
	return r.toUser(), true, nil
}

// GetUser loads a tenant's user by id or external id.
func (s *Store) GetUser(ctx context.Context, tenantID, ref string) (User, error) {
	var r userRow
	err := s.q.QueryRowxContext(ctx, `SELECT `+userColumns+` FROM users WHERE tenant_id = $1 AND (id = $2 OR external_id = $2)
		ORDER BY (id = $2) DESC LIMIT 1`, tenantID, ref).StructScan(&r)
	if err != nil {
		return User{}, translate(fmt.Errorf("load user: %w", err))
	}
	return r.toUser(), nil
}

// Invoice is what payments pay. Its balances change only with applications.
type Invoice struct {
	ID             string
	TenantID       string
	ExternalID     string
	InvoiceNumber  string
	Currency       string
	AmountDue      int64
	AmountReserved int64
	AmountPaid     int64
	Status         string // OPEN, PARTIALLY_PAID, PAID, VOID (derived by the schema)
	Payer          *User
	Payees         []Payee
	DueDate        *time.Time
	Metadata       map[string]string
	CreatedAt      time.Time
}

// AmountRemaining is what is still to be paid.
func (i Invoice) AmountRemaining() int64 { return i.AmountDue - i.AmountPaid }

// Payee is a user paid out of an invoice, and how much.
type Payee struct {
	User   User
	Amount int64
}

type invoiceRow struct {
	ID             string         `db:"id"`
	TenantID       string         `db:"tenant_id"`
	ExternalID     string         `db:"external_id"`
	InvoiceNumber  string         `db:"invoice_number"`
	Currency       string         `db:"currency"`
	AmountDue      int64          `db:"amount_due"`
	AmountReserved int64          `db:"amount_reserved"`
	AmountPaid     int64          `db:"amount_paid"`
	Status         string         `db:"status"`
	PayerUserID    sql.NullString `db:"payer_user_id"`
	DueDate        sql.NullTime   `db:"due_date"`
	Metadata       []byte         `db:"metadata"`
	CreatedAt      time.Time      `db:"created_at"`
}

const invoiceColumns = `id, tenant_id, external_id, invoice_number, currency, amount_due, amount_reserved, amount_paid,
	status, payer_user_id, due_date, metadata, created_at`

// NewInvoice is what a tenant asks to create.
type NewInvoice struct {
	TenantID        string
	ExternalID      string
	Currency        string
	AmountDue       int64
	PayerExternalID string // created on first use; empty for none
	Payees          []NewPayee
	DueDate         *time.Time
	Metadata        map[string]string
}

// NewPayee names a payee by external id.
type NewPayee struct {
	ExternalID string
	Amount     int64
}

// CreateInvoice records an invoice with its payer and payees (users are
// created on first use). A taken external id is a *ConflictError.
func (s *Store) CreateInvoice(ctx context.Context, ni NewInvoice) (Invoice, error) {
	var id string
	err := s.InTx(ctx, func(tx *Store) error {
		var payer any
		if ni.PayerExternalID != "" {
			u, _, err := tx.CreateUser(ctx, User{TenantID: ni.TenantID, ExternalID: ni.PayerExternalID})
			if err != nil {
				return err
			}
			payer = u.ID
		}
		meta, _ := json.Marshal(nonNil(ni.Metadata))
		id = NewID(payment.PrefixInvoice)
		_, err := tx.q.ExecContext(ctx, `
			INSERT INTO invoices (id, tenant_id, external_id, invoice_number, currency, amount_due, payer_user_id, due_date, metadata, created_at)
			VALUES ($1, $2, $3, 'INV-' || upper(substr(md5($1), 1, 10)), $4, $5, $6, $7, $8, $9)`,
			id, ni.TenantID, ni.ExternalID, ni.Currency, ni.AmountDue, payer, ni.DueDate, meta, tx.now())
		if err != nil {
			return translate(fmt.Errorf("create invoice: %w", err))
		}
		for _, p := range ni.Payees {
			u, _, err := tx.CreateUser(ctx, User{TenantID: ni.TenantID, ExternalID: p.ExternalID})
			if err != nil {
				return err
			}
			if _, err := tx.q.ExecContext(ctx, `INSERT INTO invoice_payees (invoice_id, user_id, amount) VALUES ($1,$2,$3)`,
				id, u.ID, p.Amount); err != nil {
				return translate(fmt.Errorf("add payee: %w", err))
			}
		}
		return nil
	})
	if err != nil {
		return Invoice{}, err
	}
	return s.GetInvoice(ctx, ni.TenantID, id)
}

// GetInvoice loads a tenant's invoice by id or external id.
func (s *Store) GetInvoice(ctx context.Context, tenantID, ref string) (Invoice, error) {
	var r invoiceRow
	err := s.q.QueryRowxContext(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE tenant_id = $1 AND (id = $2 OR external_id = $2)
		ORDER BY (id = $2) DESC LIMIT 1`, tenantID, ref).StructScan(&r)
	if err != nil {
		return Invoice{}, translate(fmt.Errorf("load invoice: %w", err))
	}
	invs, err := s.completeInvoices(ctx, []invoiceRow{r})
	if err != nil {
		return Invoice{}, err
	}
	return invs[0], nil
}

// ListInvoices returns a page of a tenant's invoices, newest first.
func (s *Store) ListInvoices(ctx context.Context, tenantID string, limit int, startingAfter string) ([]Invoice, bool, error) {
	var rows []invoiceRow
	err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT `+invoiceColumns+` FROM invoices WHERE tenant_id = $1
		AND ($3 = '' OR (created_at, id) < (SELECT created_at, id FROM invoices WHERE id = $3 AND tenant_id = $1))
		ORDER BY created_at DESC, id DESC LIMIT $2`, tenantID, limit+1, startingAfter)
	if err != nil {
		return nil, false, translate(fmt.Errorf("list invoices: %w", err))
	}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	invs, err := s.completeInvoices(ctx, rows)
	return invs, more, err
}

func (s *Store) completeInvoices(ctx context.Context, rows []invoiceRow) ([]Invoice, error) {
	out := make([]Invoice, len(rows))
	ids := make([]string, len(rows))
	for i, r := range rows {
		out[i] = Invoice{ID: r.ID, TenantID: r.TenantID, ExternalID: r.ExternalID, InvoiceNumber: r.InvoiceNumber,
			Currency: r.Currency, AmountDue: r.AmountDue, AmountReserved: r.AmountReserved, AmountPaid: r.AmountPaid,
			Status: r.Status, DueDate: tp(r.DueDate), CreatedAt: r.CreatedAt.UTC()}
		_ = json.Unmarshal(r.Metadata, &out[i].Metadata)
		ids[i] = r.ID
	}
	if len(rows) == 0 {
		return out, nil
	}
	var parties []struct {
		InvoiceID string `db:"invoice_id"`
		Role      string `db:"role"`
		Amount    int64  `db:"amount"`
		userRow
	}
	err := sqlx.SelectContext(ctx, s.q, &parties, `
		SELECT i.id AS invoice_id, 'payer' AS role, 0 AS amount, u.id, u.tenant_id, u.external_id, u.name, u.email, u.metadata, u.created_at
		FROM invoices i JOIN users u ON u.id = i.payer_user_id WHERE i.id = ANY($1)
		UNION ALL
		SELECT p.invoice_id, 'payee', p.amount, u.id, u.tenant_id, u.external_id, u.name, u.email, u.metadata, u.created_at
		FROM invoice_payees p JOIN users u ON u.id = p.user_id WHERE p.invoice_id = ANY($1)
		ORDER BY 1, 2, 3`, pq.Array(ids))
	if err != nil {
		return nil, translate(fmt.Errorf("load invoice parties: %w", err))
	}
	idx := map[string]int{}
	for i, id := range ids {
		idx[id] = i
	}
	for _, p := range parties {
		inv := &out[idx[p.InvoiceID]]
		u := p.userRow.toUser()
		if p.Role == "payer" {
			inv.Payer = &u
		} else {
			inv.Payees = append(inv.Payees, Payee{User: u, Amount: p.Amount})
		}
	}
	for i := range out {
		sort.Slice(out[i].Payees, func(a, b int) bool { return out[i].Payees[a].User.ExternalID < out[i].Payees[b].User.ExternalID })
	}
	return out, nil
}

// EnsureInvoice is the core issue's implicit invoice: the tenant's invoice
// named by ref, created on first reference with no limit on what it may be
// paid. TEMPORARY: kept only until every caller creates invoices first.
func (s *Store) EnsureInvoice(ctx context.Context, tenantID, ref, currency string) (Invoice, error) {
	inv, err := s.GetInvoice(ctx, tenantID, ref)
	if err == nil || !isNotFound(err) {
		return inv, err
	}
	if _, err := s.q.ExecContext(ctx, `
		INSERT INTO invoices (id, tenant_id, external_id, invoice_number, currency, amount_due, implicit, created_at)
		VALUES ($1, $2, $3, 'INV-' || upper(substr(md5($1), 1, 10)), $4, 1000000000000000000, true, $5)
		ON CONFLICT (tenant_id, external_id) DO NOTHING`, NewID(payment.PrefixInvoice), tenantID, ref, currency, s.now()); err != nil {
		return inv, translate(fmt.Errorf("create implicit invoice: %w", err))
	}
	return s.GetInvoice(ctx, tenantID, ref)
}
