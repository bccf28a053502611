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

// userRow is a users row: a payment.User.
type userRow struct {
	ID         string    `db:"id"`
	TenantID   string    `db:"tenant_id"`
	ExternalID string    `db:"external_id"`
	Name       string    `db:"name"`
	Email      string    `db:"email"`
	Metadata   []byte    `db:"metadata"`
	CreatedAt  time.Time `db:"created_at"`
	Payin      []byte    `db:"payin_method"`
	Payout     []byte    `db:"payout_account"`
}

func (r userRow) toUser() payment.User {
	u := payment.User{ID: r.ID, TenantID: r.TenantID, ExternalID: r.ExternalID, Name: r.Name, Email: r.Email, CreatedAt: r.CreatedAt.UTC()}
	_ = json.Unmarshal(r.Metadata, &u.Metadata)
	if len(r.Payin) > 0 {
		u.PayinMethod = &payment.PayinMethod{}
		_ = json.Unmarshal(r.Payin, u.PayinMethod)
	}
	if len(r.Payout) > 0 {
		u.PayoutAccount = &payment.PayoutAccount{}
		_ = json.Unmarshal(r.Payout, u.PayoutAccount)
	}
	return u
}

const userColumns = `id, tenant_id, external_id, name, email, metadata, created_at, payin_method, payout_account`

// jsonOrNull encodes v, or SQL NULL for a nil pointer.
func jsonOrNull[T any](v *T) (any, error) {
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}

// CreateUser inserts a user; an existing external id is returned as it is,
// with created false.
func (s *Store) CreateUser(ctx context.Context, u payment.User) (payment.User, bool, error) {
	meta, _ := json.Marshal(nonNil(u.Metadata))
	payin, err := jsonOrNull(u.PayinMethod)
	if err != nil {
		return payment.User{}, false, err
	}
	payout, err := jsonOrNull(u.PayoutAccount)
	if err != nil {
		return payment.User{}, false, err
	}
	var r userRow
	err = s.q.QueryRowxContext(ctx, `
		INSERT INTO users (id, tenant_id, external_id, name, email, metadata, created_at, payin_method, payout_account)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
		ON CONFLICT (tenant_id, external_id) DO NOTHING
		RETURNING `+userColumns, NewID(payment.PrefixUser), u.TenantID, u.ExternalID, u.Name, u.Email, meta, s.now(),
		payin, payout).StructScan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		existing, err := s.GetUser(ctx, u.TenantID, u.ExternalID)
		return existing, false, err
	}
	if err != nil {
		return payment.User{}, false, translate(fmt.Errorf("create user: %w", err))
	}
	return r.toUser(), true, nil
}

// GetUser loads a tenant's user by id or external id.
func (s *Store) GetUser(ctx context.Context, tenantID, ref string) (payment.User, error) {
	var r userRow
	err := s.q.QueryRowxContext(ctx, `SELECT `+userColumns+` FROM users WHERE tenant_id = $1 AND (id = $2 OR external_id = $2)
		ORDER BY (id = $2) DESC LIMIT 1`, tenantID, ref).StructScan(&r)
	if err != nil {
		return payment.User{}, translate(fmt.Errorf("load user: %w", err))
	}
	return r.toUser(), nil
}

// invoiceRow is an invoices row: a payment.Invoice without its payer and
// payees.
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
	DueDate        sql.NullString `db:"due_date"`
	Metadata       []byte         `db:"metadata"`
	CreatedAt      time.Time      `db:"created_at"`
	Fingerprint    []byte         `db:"request_fingerprint"`
}

const invoiceColumns = `id, tenant_id, external_id, invoice_number, currency, amount_due, amount_reserved, amount_paid,
	status, payer_user_id, to_char(due_date, 'YYYY-MM-DD') AS due_date, metadata, created_at, request_fingerprint`

// NewInvoice is what a tenant asks to create.
type NewInvoice struct {
	TenantID        string
	ExternalID      string
	Currency        string
	AmountDue       int64
	PayerExternalID string // created on first use; empty for none
	Payees          []NewPayee
	Payers          []NewPayee // several payers with their shares; empty for PayerExternalID alone
	DueDate         *time.Time // only the date counts
	Metadata        map[string]string
	Fingerprint     []byte // of the request, to recognize its repeats; nil for none
}

// NewPayee names a payee by external id.
type NewPayee struct {
	ExternalID string
	Amount     int64
}

// CreateInvoice records an invoice with its payer and payees (users are
// created on first use). A taken external id is payment.ErrConflict,
// returned without aborting the caller's transaction (the insert does nothing on
// conflict), so that the caller may load the existing invoice in the same
// transaction: under READ COMMITTED a concurrent create of the same external
// id is waited for and then seen.
func (s *Store) CreateInvoice(ctx context.Context, ni NewInvoice) (payment.Invoice, error) {
	var id string
	err := s.InTx(ctx, func(tx *Store) error {
		meta, _ := json.Marshal(nonNil(ni.Metadata))
		var due, fp any
		if ni.DueDate != nil {
			due = ni.DueDate.Format(time.DateOnly)
		}
		if len(ni.Fingerprint) > 0 {
			fp = ni.Fingerprint
		}
		err := tx.q.QueryRowxContext(ctx, `
			INSERT INTO invoices (id, tenant_id, external_id, invoice_number, currency, amount_due, due_date, metadata,
				request_fingerprint, created_at)
			VALUES ($1, $2, $3, 'INV-' || upper(substr(md5($1), 1, 10)), $4, $5, $6::date, $7, $8, $9)
			ON CONFLICT (tenant_id, external_id) DO NOTHING
			RETURNING id`,
			NewID(payment.PrefixInvoice), ni.TenantID, ni.ExternalID, ni.Currency, ni.AmountDue, due, meta, fp, tx.now()).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("invoice external id %q: %w", ni.ExternalID, payment.ErrConflict)
		}
		if err != nil {
			return translate(fmt.Errorf("create invoice: %w", err))
		}
		// Users are created in external-id order, so two invoices naming
		// the same new users never wait on each other's inserts in a cycle.
		refs := []string{}
		if ni.PayerExternalID != "" {
			refs = append(refs, ni.PayerExternalID)
		}
		for _, p := range ni.Payees {
			refs = append(refs, p.ExternalID)
		}
		for _, p := range ni.Payers {
			refs = append(refs, p.ExternalID)
		}
		sort.Strings(refs)
		users := map[string]string{}
		for _, ref := range refs {
			if _, done := users[ref]; done {
				continue
			}
			u, _, err := tx.CreateUser(ctx, payment.User{TenantID: ni.TenantID, ExternalID: ref})
			if err != nil {
				return err
			}
			users[ref] = u.ID
		}
		if ni.PayerExternalID != "" {
			if _, err := tx.q.ExecContext(ctx, `UPDATE invoices SET payer_user_id = $2 WHERE id = $1`,
				id, users[ni.PayerExternalID]); err != nil {
				return translate(fmt.Errorf("set payer: %w", err))
			}
		}
		for _, p := range ni.Payees {
			if _, err := tx.q.ExecContext(ctx, `INSERT INTO invoice_payees (invoice_id, user_id, amount) VALUES ($1,$2,$3)`,
				id, users[p.ExternalID], p.Amount); err != nil {
				return translate(fmt.Errorf("add payee: %w", err))
			}
		}
		for _, p := range ni.Payers {
			if _, err := tx.q.ExecContext(ctx, `INSERT INTO invoice_payers (invoice_id, user_id, amount) VALUES ($1,$2,$3)`,
				id, users[p.ExternalID], p.Amount); err != nil {
				return translate(fmt.Errorf("add payer: %w", err))
			}
		}
		return nil
	})
	if err != nil {
		return payment.Invoice{}, err
	}
	return s.GetInvoice(ctx, ni.TenantID, id)
}

// GetInvoice loads a tenant's invoice by id or external id (an id wins when
// one invoice's external id is another's id).
func (s *Store) GetInvoice(ctx context.Context, tenantID, ref string) (payment.Invoice, error) {
	r, err := s.invoiceRow(ctx, tenantID, ref)
	if err != nil {
		return payment.Invoice{}, err
	}
	invs, err := s.completeInvoices(ctx, []invoiceRow{r})
	if err != nil {
		return payment.Invoice{}, err
	}
	return invs[0], nil
}

// InvoiceHead is GetInvoice without the payer and payees: one query, for the
// payment paths that need only the invoice's id, currency and status.
func (s *Store) InvoiceHead(ctx context.Context, tenantID, ref string) (payment.Invoice, error) {
	r, err := s.invoiceRow(ctx, tenantID, ref)
	if err != nil {
		return payment.Invoice{}, err
	}
	return r.toInvoice(), nil
}

// toInvoice converts a row, without the payer and payees.
func (r invoiceRow) toInvoice() payment.Invoice {
	inv := payment.Invoice{ID: r.ID, TenantID: r.TenantID, ExternalID: r.ExternalID, InvoiceNumber: r.InvoiceNumber,
		Currency: r.Currency, AmountDue: r.AmountDue, AmountReserved: r.AmountReserved, AmountPaid: r.AmountPaid,
		Status: r.Status, CreatedAt: r.CreatedAt.UTC(), Fingerprint: r.Fingerprint}
	if r.DueDate.Valid {
		if d, err := time.Parse(time.DateOnly, r.DueDate.String); err == nil {
			inv.DueDate = &d
		}
	}
	_ = json.Unmarshal(r.Metadata, &inv.Metadata)
	return inv
}

func (s *Store) invoiceRow(ctx context.Context, tenantID, ref string) (invoiceRow, error) {
	var r invoiceRow
	err := s.q.QueryRowxContext(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE tenant_id = $1 AND (id = $2 OR external_id = $2)
		ORDER BY (id = $2) DESC LIMIT 1`, tenantID, ref).StructScan(&r)
	if err != nil {
		return r, translate(fmt.Errorf("load invoice: %w", err))
	}
	return r, nil
}

// InvoiceByExternalID loads a tenant's invoice by its external id only (a
// create's business key must never match another invoice's id).
func (s *Store) InvoiceByExternalID(ctx context.Context, tenantID, externalID string) (payment.Invoice, error) {
	var r invoiceRow
	err := s.q.QueryRowxContext(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE tenant_id = $1 AND external_id = $2`,
		tenantID, externalID).StructScan(&r)
	if err != nil {
		return payment.Invoice{}, translate(fmt.Errorf("load invoice by external id: %w", err))
	}
	invs, err := s.completeInvoices(ctx, []invoiceRow{r})
	if err != nil {
		return payment.Invoice{}, err
	}
	return invs[0], nil
}

// InvoiceExists reports whether the tenant has an invoice with this id (not
// external id): list cursors are ids.
func (s *Store) InvoiceExists(ctx context.Context, tenantID, id string) (bool, error) {
	var ok bool
	err := s.q.QueryRowxContext(ctx, `SELECT EXISTS (SELECT 1 FROM invoices WHERE tenant_id = $1 AND id = $2)`, tenantID, id).Scan(&ok)
	if err != nil {
		return false, translate(fmt.Errorf("invoice exists: %w", err))
	}
	return ok, nil
}

// InvoiceFilter selects a page of a tenant's invoices.
type InvoiceFilter struct {
	TenantID      string
	Status        string // OPEN, PARTIALLY_PAID, PAID, VOID; empty for all
	Limit         int
	StartingAfter string // an invoice id; empty for the first page
}

// ListInvoices returns a page of a tenant's invoices, newest first, and
// whether more follow.
func (s *Store) ListInvoices(ctx context.Context, f InvoiceFilter) ([]payment.Invoice, bool, error) {
	var rows []invoiceRow
	err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT `+invoiceColumns+` FROM invoices WHERE tenant_id = $1
		AND ($3 = '' OR (created_at, id) < (SELECT created_at, id FROM invoices WHERE id = $3 AND tenant_id = $1))
		AND ($4 = '' OR status = $4)
		ORDER BY created_at DESC, id DESC LIMIT $2`, f.TenantID, f.Limit+1, f.StartingAfter, f.Status)
	if err != nil {
		return nil, false, translate(fmt.Errorf("list invoices: %w", err))
	}
	more := len(rows) > f.Limit
	if more {
		rows = rows[:f.Limit]
	}
	invs, err := s.completeInvoices(ctx, rows)
	return invs, more, err
}

func (s *Store) completeInvoices(ctx context.Context, rows []invoiceRow) ([]payment.Invoice, error) {
	out := make([]payment.Invoice, len(rows))
	ids := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.toInvoice()
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
		SELECT i.id AS invoice_id, 'payer' AS role, 0 AS amount, u.id, u.tenant_id, u.external_id, u.name, u.email, u.metadata, u.created_at,
			u.payin_method, u.payout_account
		FROM invoices i JOIN users u ON u.id = i.payer_user_id WHERE i.id = ANY($1)
		UNION ALL
		SELECT p.invoice_id, 'payee', p.amount, u.id, u.tenant_id, u.external_id, u.name, u.email, u.metadata, u.created_at,
			u.payin_method, u.payout_account
		FROM invoice_payees p JOIN users u ON u.id = p.user_id WHERE p.invoice_id = ANY($1)
		UNION ALL
		SELECT p.invoice_id, 'payers', p.amount, u.id, u.tenant_id, u.external_id, u.name, u.email, u.metadata, u.created_at,
			u.payin_method, u.payout_account
		FROM invoice_payers p JOIN users u ON u.id = p.user_id WHERE p.invoice_id = ANY($1)
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
		switch p.Role {
		case "payer":
			inv.Payer = &u
		case "payers":
			inv.Payers = append(inv.Payers, payment.Payee{User: u, Amount: p.Amount})
		default:
			inv.Payees = append(inv.Payees, payment.Payee{User: u, Amount: p.Amount})
		}
	}
	for i := range out {
		sort.Slice(out[i].Payees, func(a, b int) bool { return out[i].Payees[a].User.ExternalID < out[i].Payees[b].User.ExternalID })
		sort.Slice(out[i].Payers, func(a, b int) bool { return out[i].Payers[a].User.ExternalID < out[i].Payers[b].User.ExternalID })
	}
	return out, nil
}
