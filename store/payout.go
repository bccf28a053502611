package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

// Payouts (seed 002) are payments of surface "payouts": the same row, state
// machine and jobs, plus one payout_details row with what the seed adds.

// SurfacePayouts is the surface of payments created by POST /v1/payouts.
const SurfacePayouts = "payouts"

// SurfacePayments is payments.surface for seed-001 payments (and the payins of flows).
const SurfacePayments = "payments"

// payoutDetailsRow is a payout's payout_details row.
type payoutDetailsRow struct {
	PaymentID          string         `db:"payment_id"`
	TenantID           string         `db:"tenant_id"`
	ExternalPaymentID  string         `db:"external_payment_id"`
	ExternalSource     string         `db:"external_source"`
	ImportedStatus     sql.NullString `db:"imported_status"`
	AccountFingerprint string         `db:"account_fingerprint"`
	Details            []byte         `db:"details"`
}

func (r payoutDetailsRow) toDetails() payment.PayoutDetails {
	d := payment.PayoutDetails{PaymentID: r.PaymentID, TenantID: r.TenantID, ExternalPaymentID: r.ExternalPaymentID,
		ExternalSource: r.ExternalSource, ImportedStatus: r.ImportedStatus.String,
		AccountFingerprint: r.AccountFingerprint, Details: json.RawMessage(r.Details)}
	var times struct {
		ScheduledAt *time.Time `json:"scheduled_at"`
		SubmittedAt *time.Time `json:"submitted_at"`
	}
	if json.Unmarshal(r.Details, &times) == nil {
		d.ScheduledAt, d.SubmittedAt = utcp(times.ScheduledAt), utcp(times.SubmittedAt)
	}
	return d
}

func utcp(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

const payoutDetailsColumns = `payment_id, tenant_id, external_payment_id, external_source, imported_status,
	account_fingerprint, details`

// NewPayout is what intake records for POST /v1/payouts.
type NewPayout struct {
	Payment            NewPayment // Surface is set to SurfacePayouts
	ExternalPaymentID  string
	ExternalSource     string
	ImportedStatus     string // empty for a payout payd sends
	AccountFingerprint string // empty when no beneficiary account is named
	Details            json.RawMessage
	// Lifecycle times known on import. They are written with the row, and
	// each transition sets its time only where none is set, so these stay.
	SentAt               *time.Time
	ExpectedSettlementAt *time.Time
	SettledAt            *time.Time
	ReturnedAt           *time.Time
	// Lines apply the payout to invoices of the tenant (reserved at once).
	Lines []payment.Line
}

// InsertPayout records a new payout with its details and lines, in one
// transaction: PENDING (next step create) when payd sends it, or, when it
// was made elsewhere (ImportedStatus), walked at once to that status
// (PayoutWalk), each step audited. Creates with one external payment
// id are serialized by a transaction-scoped advisory lock, so the second of
// two concurrent creates sees the first and gets a
// *payment.PayoutExistsError instead of a unique violation. A payout to a
// blocked account is payment.ErrAccountBlocked; lines that would over-apply
// an invoice are a *payment.InvoiceOverAppliedError.
func (s *Store) InsertPayout(ctx context.Context, np NewPayout) (payment.Payment, error) {
	var id string
	err := s.InTx(ctx, func(tx *Store) error {
		if _, err := tx.q.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 2002))`,
			"payout|"+np.Payment.TenantID+"|"+np.ExternalPaymentID); err != nil {
			return translate(fmt.Errorf("lock external payment id: %w", err))
		}
		var existing struct {
			ID          string `db:"payment_id"`
			Fingerprint []byte `db:"request_fingerprint"`
		}
		err := tx.q.QueryRowxContext(ctx, `SELECT d.payment_id, p.request_fingerprint FROM payout_details d
			JOIN payments p ON p.id = d.payment_id WHERE d.tenant_id = $1 AND d.external_payment_id = $2`,
			np.Payment.TenantID, np.ExternalPaymentID).StructScan(&existing)
		switch {
		case err == nil:
			return &payment.PayoutExistsError{PaymentID: existing.ID, Fingerprint: existing.Fingerprint}
		case !errors.Is(err, sql.ErrNoRows):
			return translate(fmt.Errorf("payout by external id: %w", err))
		}
		if np.AccountFingerprint != "" {
			blocked, err := tx.AccountBlocked(ctx, np.Payment.TenantID, np.AccountFingerprint)
			if err != nil {
				return err
			}
			if blocked {
				return payment.ErrAccountBlocked
			}
		}
		p := np.Payment
		p.Surface = SurfacePayouts
		pay, err := tx.InsertPayment(ctx, p)
		if err != nil {
			return err
		}
		id = pay.ID
		if _, err := tx.q.ExecContext(ctx, `UPDATE payments SET sent_at = $2, expected_settlement_at = $3,
			settled_at = $4, returned_at = $5 WHERE id = $1`,
			id, np.SentAt, np.ExpectedSettlementAt, np.SettledAt, np.ReturnedAt); err != nil {
			return translate(fmt.Errorf("record import times of %s: %w", id, err))
		}
		var imported any
		if np.ImportedStatus != "" {
			imported = np.ImportedStatus
		}
		details := np.Details
		if len(details) == 0 {
			details = json.RawMessage(`{}`)
		}
		if _, err := tx.q.ExecContext(ctx, `INSERT INTO payout_details (`+payoutDetailsColumns+`)
			VALUES ($1,$2,$3,$4,$5,$6,$7)`, id, p.TenantID, np.ExternalPaymentID, np.ExternalSource, imported,
			np.AccountFingerprint, []byte(details)); err != nil {
			return translate(fmt.Errorf("insert payout details of %s: %w", id, err))
		}
		if len(np.Lines) > 0 {
			if err := tx.ApplyLines(ctx, id, np.Lines, true); err != nil {
				return err
			}
		}
		if np.ImportedStatus == "" {
			return nil
		}
		// made elsewhere: walked to its status now, so the answer shows it
		why := fmt.Sprintf("imported as %s from %s", np.ImportedStatus, np.ExternalSource)
		_, _, err = tx.walkPayout(ctx, id, payment.PayoutStatus(np.ImportedStatus).Canonical(), why, p.Actor)
		return err
	})
	if err != nil {
		return payment.Payment{}, err
	}
	return s.GetPayment(ctx, np.Payment.TenantID, id)
}

// AccountBlocked reports whether a tenant's beneficiary account (by
// fingerprint) was blocked by a return.
func (s *Store) AccountBlocked(ctx context.Context, tenantID, fingerprint string) (bool, error) {
	var ok bool
	err := s.q.QueryRowxContext(ctx, `SELECT EXISTS (SELECT 1 FROM blocked_accounts
		WHERE tenant_id = $1 AND account_fingerprint = $2)`, tenantID, fingerprint).Scan(&ok)
	if err != nil {
		return false, translate(fmt.Errorf("blocked account: %w", err))
	}
	return ok, nil
}

// GetPayout loads a tenant's payout (empty tenantID: any tenant's). A
// payment of another surface is payment.ErrNotFound.
func (s *Store) GetPayout(ctx context.Context, tenantID, id string) (payment.Payout, error) {
	pay, err := s.GetPayment(ctx, tenantID, id)
	if err != nil {
		return payment.Payout{}, err
	}
	out, err := s.completePayouts(ctx, []payment.Payment{pay})
	if err != nil {
		return payment.Payout{}, err
	}
	if len(out) == 0 {
		return payment.Payout{}, fmt.Errorf("payout %s: %w", id, payment.ErrNotFound)
	}
	return out[0], nil
}

// PayoutDetailsOf loads the details of a payout of any tenant (workers).
func (s *Store) PayoutDetailsOf(ctx context.Context, paymentID string) (payment.PayoutDetails, error) {
	var r payoutDetailsRow
	err := s.q.QueryRowxContext(ctx, `SELECT `+payoutDetailsColumns+` FROM payout_details WHERE payment_id = $1`,
		paymentID).StructScan(&r)
	if err != nil {
		return payment.PayoutDetails{}, translate(fmt.Errorf("load payout details of %s: %w", paymentID, err))
	}
	return r.toDetails(), nil
}

// completePayouts adds details and lines to payments, dropping any that is
// not a payout.
func (s *Store) completePayouts(ctx context.Context, pays []payment.Payment) ([]payment.Payout, error) {
	ids := make([]string, len(pays))
	for i, p := range pays {
		ids[i] = p.ID
	}
	var rows []payoutDetailsRow
	if err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT `+payoutDetailsColumns+` FROM payout_details
		WHERE payment_id = ANY($1)`, pq.Array(ids)); err != nil {
		return nil, translate(fmt.Errorf("load payout details: %w", err))
	}
	details := make(map[string]payment.PayoutDetails, len(rows))
	for _, r := range rows {
		details[r.PaymentID] = r.toDetails()
	}
	lines, err := s.Lines(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]payment.Payout, 0, len(pays))
	for _, p := range pays {
		d, ok := details[p.ID]
		if !ok || p.Surface != SurfacePayouts {
			continue
		}
		out = append(out, payment.Payout{Payment: p, Details: d, Lines: lines[p.ID]})
	}
	return out, nil
}

// PayoutFilter selects a page of payouts, newest first.
type PayoutFilter struct {
	TenantID string
	Statuses []payment.Status // any of; empty for all
	// Paid, when set, keeps only payouts recorded as paid (imported as PAID,
	// or a method that is not a bank rail) or only the others.
	Paid              *bool
	ExternalPaymentID string
	Limit             int
	StartingAfter     string // a payout id; the page starts after it
}

// ListPayouts returns up to Limit payouts and whether more follow.
func (s *Store) ListPayouts(ctx context.Context, f PayoutFilter) ([]payment.Payout, bool, error) {
	args := []any{f.TenantID, f.Limit + 1, SurfacePayouts}
	where := []string{"p.tenant_id = $1", "p.surface = $3"}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if len(f.Statuses) > 0 {
		ss := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			ss[i] = string(st)
		}
		add("p.status = ANY($%d)", pq.Array(ss))
	}
	if f.Paid != nil {
		paid := `(d.imported_status = 'PAID' OR NOT (p.method = ANY($%d)))`
		if !*f.Paid {
			paid = `(d.imported_status IS DISTINCT FROM 'PAID' AND p.method = ANY($%d))`
		}
		add(paid, pq.Array(bankRails()))
	}
	if f.ExternalPaymentID != "" {
		add("d.external_payment_id = $%d", f.ExternalPaymentID)
	}
	if f.StartingAfter != "" {
		add(`(p.created_at, p.id) < (SELECT created_at, id FROM payments WHERE id = $%d AND tenant_id = $1)`, f.StartingAfter)
	}
	q := `SELECT ` + paymentColumns + paymentFrom + ` JOIN payout_details d ON d.payment_id = p.id WHERE ` +
		strings.Join(where, " AND ") + ` ORDER BY p.created_at DESC, p.id DESC LIMIT $2`
	pays, more, err := s.pagePayments(ctx, "list payouts", f.Limit, q, args...)
	if err != nil {
		return nil, false, err
	}
	out, err := s.completePayouts(ctx, pays)
	return out, more, err
}

func bankRails() []string {
	var out []string
	for _, m := range []payment.Method{payment.MethodCard, payment.MethodACH, payment.MethodOffline,
		payment.MethodCredits, payment.MethodWire, payment.MethodSEPA, payment.MethodSWIFT, payment.MethodRTP,
		payment.MethodCheck, payment.MethodVirtualCard, payment.MethodPayPal, payment.MethodOther} {
		if m.BankRail() {
			out = append(out, string(m))
		}
	}
	return out
}

// InvoiceCurrencies returns the currency of each of the tenant's invoices
// among ids; an id of another tenant, or of none, is absent.
func (s *Store) InvoiceCurrencies(ctx context.Context, tenantID string, ids []string) (map[string]string, error) {
	var rows []struct {
		ID       string `db:"id"`
		Currency string `db:"currency"`
	}
	if err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT id, currency FROM invoices WHERE tenant_id = $1 AND id = ANY($2)`,
		tenantID, pq.Array(ids)); err != nil {
		return nil, translate(fmt.Errorf("resolve invoices: %w", err))
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Currency
	}
	return out, nil
}
