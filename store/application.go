package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

// lineRow is a payment_applications row: a payment.Line.
type lineRow struct {
	ID               string         `db:"id"`
	PaymentID        string         `db:"payment_id"`
	InvoiceID        string         `db:"invoice_id"`
	AppliedAmount    int64          `db:"applied_amount"`
	PaymentAmount    int64          `db:"payment_amount"`
	AppliedCurrency  string         `db:"applied_currency"`
	FXRate           sql.NullString `db:"fx_rate_line"`
	FXAt             sql.NullTime   `db:"fx_at_line"`
	DiscountAmount   sql.NullInt64  `db:"discount_amount"`
	DiscountCurrency sql.NullString `db:"discount_currency"`
	FeeAmount        sql.NullInt64  `db:"fee_amount_line"`
	FeeCurrency      sql.NullString `db:"fee_currency_line"`
	RemittanceLabel  string         `db:"remittance_label"`
	RemittanceValue  sql.NullString `db:"remittance_value"`
	Notes            sql.NullString `db:"notes"`
	State            string         `db:"state"`
	ReleasedAmount   int64          `db:"released_amount"`
	CreatedAt        time.Time      `db:"created_at"`
}

const lineColumns = `id, payment_id, invoice_id, applied_amount, payment_amount, applied_currency, fx_rate_line::text AS fx_rate_line,
	fx_at_line, discount_amount, discount_currency, fee_amount_line, fee_currency_line, remittance_label, remittance_value,
	notes, state, released_amount, created_at`

func i64p(n sql.NullInt64) *int64 {
	if !n.Valid {
		return nil
	}
	return &n.Int64
}

func (r lineRow) toLine() payment.Line {
	return payment.Line{ID: r.ID, PaymentID: r.PaymentID, InvoiceID: r.InvoiceID, AppliedAmount: r.AppliedAmount,
		PaymentAmount: r.PaymentAmount, AppliedCurrency: r.AppliedCurrency, FXRate: r.FXRate.String, FXAt: tp(r.FXAt),
		DiscountAmount: i64p(r.DiscountAmount), DiscountCurrency: r.DiscountCurrency.String, FeeAmount: i64p(r.FeeAmount),
		FeeCurrency: r.FeeCurrency.String, RemittanceLabel: r.RemittanceLabel, RemittanceValue: r.RemittanceValue.String,
		Notes: r.Notes.String, State: r.State, ReleasedAmount: r.ReleasedAmount, CreatedAt: r.CreatedAt.UTC()}
}

// Lines returns the lines of payments, oldest first, released ones included.
func (s *Store) Lines(ctx context.Context, paymentIDs []string) (map[string][]payment.Line, error) {
	var rows []lineRow
	if err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT `+lineColumns+` FROM payment_applications
		WHERE payment_id = ANY($1) ORDER BY payment_id, created_at, id`, pq.Array(paymentIDs)); err != nil {
		return nil, translate(fmt.Errorf("load lines: %w", err))
	}
	out := map[string][]payment.Line{}
	for _, r := range rows {
		out[r.PaymentID] = append(out[r.PaymentID], r.toLine())
	}
	return out, nil
}

// ApplyLines applies lines of a payment to invoices: with replace, every
// earlier line is taken back first (its amount returned to its invoice),
// else the lines are added. Each line's amount is reserved on its invoice
// under the invoice's row lock (a succeeded payment's lines count as paid at
// once); the schema refuses a reservation past the amount due, so concurrent
// payments can never over-apply an invoice. The sum of the payment's lines
// never exceeds its amount (payment.ErrLinesExceedAmount). Lines must name
// invoices of the payment's tenant (callers resolve them first).
func (s *Store) ApplyLines(ctx context.Context, paymentID string, lines []payment.Line, replace bool) error {
	return s.InTx(ctx, func(tx *Store) error {
		pay, err := tx.LockPayment(ctx, paymentID)
		if err != nil {
			return err
		}
		if replace {
			if err := tx.releaseLines(ctx, paymentID, -1, true); err != nil {
				return err
			}
		}
		var used int64
		if err := tx.q.QueryRowxContext(ctx, `SELECT COALESCE(sum(payment_amount - released_amount), 0) FROM payment_applications
			WHERE payment_id = $1 AND state <> 'released'`, paymentID).Scan(&used); err != nil {
			return translate(fmt.Errorf("sum lines: %w", err))
		}
		for _, l := range lines {
			used += l.PaymentAmount
		}
		if used > pay.Amount.Minor {
			return payment.ErrLinesExceedAmount
		}
		return tx.insertLines(ctx, pay, lines)
	})
}

// insertLines reserves (or records) each line on its invoice, in invoice id
// order so concurrent payments never deadlock.
func (s *Store) insertLines(ctx context.Context, pay payment.Payment, lines []payment.Line) error {
	state := "reserved"
	if pay.Status == payment.StatusSucceeded || pay.Status == payment.StatusPartiallyRefunded {
		state = "applied"
	}
	if pay.Status.Absorbing() || pay.Status == payment.StatusRequiresReview {
		state = "released" // a failed or returned payment pays nothing: record the lines only
	}
	// lock invoices in id order so concurrent payments never deadlock
	ordered := append([]payment.Line(nil), lines...)
	sort.SliceStable(ordered, func(i, j int) bool { return ordered[i].InvoiceID < ordered[j].InvoiceID })
	for _, l := range ordered {
		if state != "released" {
			if err := s.moveInvoice(ctx, pay.TenantID, l.InvoiceID, l.AppliedAmount, state == "applied"); err != nil {
				return err
			}
		}
		released := int64(0)
		if state == "released" {
			released = l.AppliedAmount
		}
		var fx any
		if l.FXRate != "" {
			fx = l.FXRate
		}
		label := l.RemittanceLabel
		if label == "" {
			label = "Invoice"
		}
		_, err := s.q.ExecContext(ctx, `
			INSERT INTO payment_applications (id, tenant_id, payment_id, invoice_id, applied_amount, payment_amount,
				applied_currency, fx_rate_line, fx_at_line, discount_amount, discount_currency, fee_amount_line,
				fee_currency_line, remittance_label, remittance_value, notes, state, released_amount, created_at)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,NULLIF($11,''),$12,NULLIF($13,''),$14,NULLIF($15,''),NULLIF($16,''),$17,$18,$19)`,
			NewID(payment.PrefixLine), pay.TenantID, pay.ID, l.InvoiceID, l.AppliedAmount, l.PaymentAmount,
			l.AppliedCurrency, fx, l.FXAt, l.DiscountAmount, l.DiscountCurrency, l.FeeAmount, l.FeeCurrency,
			label, l.RemittanceValue, l.Notes, state, released, s.now())
		if err != nil {
			return translate(fmt.Errorf("insert line: %w", err))
		}
	}
	return nil
}

// moveInvoice reserves delta on an invoice (and counts it as paid when
// paid), or gives it back when delta is negative. The CHECK on the invoice's
// balances is the guard against over-application.
func (s *Store) moveInvoice(ctx context.Context, tenantID, invoiceID string, delta int64, paid bool) error {
	paidDelta := int64(0)
	if paid {
		paidDelta = delta
	}
	res, err := s.q.ExecContext(ctx, `UPDATE invoices SET amount_reserved = amount_reserved + $3, amount_paid = amount_paid + $4
		WHERE id = $1 AND tenant_id = $2`, invoiceID, tenantID, delta, paidDelta)
	if err != nil {
		err = translate(err)
		if errors.Is(err, payment.ErrInvoiceOverApplied) {
			return &payment.InvoiceOverAppliedError{InvoiceID: invoiceID}
		}
		return fmt.Errorf("move invoice %s: %w", invoiceID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("invoice %s: %w", invoiceID, payment.ErrNotFound)
	}
	return nil
}

// markLinesApplied counts a payment's reserved lines as paid on their
// invoices: the payment succeeded.
func (s *Store) markLinesApplied(ctx context.Context, paymentID string) error {
	var rows []struct {
		InvoiceID string `db:"invoice_id"`
		TenantID  string `db:"tenant_id"`
		Amount    int64  `db:"amount"`
	}
	if err := sqlx.SelectContext(ctx, s.q, &rows, `
		WITH moved AS (UPDATE payment_applications SET state = 'applied'
			WHERE payment_id = $1 AND state = 'reserved' RETURNING invoice_id, tenant_id, applied_amount - released_amount AS amount)
		SELECT invoice_id, tenant_id, sum(amount)::bigint AS amount FROM moved GROUP BY invoice_id, tenant_id ORDER BY invoice_id`,
		paymentID); err != nil {
		return translate(fmt.Errorf("apply lines of %s: %w", paymentID, err))
	}
	for _, r := range rows {
		if _, err := s.q.ExecContext(ctx, `UPDATE invoices SET amount_paid = amount_paid + $2 WHERE id = $1`, r.InvoiceID, r.Amount); err != nil {
			return translate(fmt.Errorf("pay invoice %s: %w", r.InvoiceID, err))
		}
	}
	return nil
}

// releaseLines gives back up to `amount` (in the payment's minor units; -1
// for everything) of a payment's lines to their invoices, oldest line first:
// the payment failed, was returned or refunded. With remove the lines are
// deleted instead of marked released (replace_lines).
func (s *Store) releaseLines(ctx context.Context, paymentID string, amount int64, remove bool) error {
	var rows []lineRow
	if err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT `+lineColumns+` FROM payment_applications
		WHERE payment_id = $1 ORDER BY created_at, id FOR UPDATE`, paymentID); err != nil {
		return translate(fmt.Errorf("load lines of %s: %w", paymentID, err))
	}
	type move struct {
		invoice     string
		delta, paid int64
	}
	var moves []move
	for _, r := range rows {
		if amount == 0 {
			break
		}
		left := r.AppliedAmount - r.ReleasedAmount
		if r.State == "released" || left == 0 {
			if remove {
				if _, err := s.q.ExecContext(ctx, `DELETE FROM payment_applications WHERE id = $1`, r.ID); err != nil {
					return translate(err)
				}
			}
			continue
		}
		give := left
		if amount > 0 {
			// refunds are in the payment's currency; lines of one currency map 1:1
			give = min(left, amount*r.AppliedAmount/r.PaymentAmount)
			amount -= give * r.PaymentAmount / r.AppliedAmount
		}
		m := move{invoice: r.InvoiceID, delta: -give}
		if r.State == "applied" {
			m.paid = -give
		}
		moves = append(moves, m)
		var err error
		switch {
		case remove:
			_, err = s.q.ExecContext(ctx, `DELETE FROM payment_applications WHERE id = $1`, r.ID)
		case give == left:
			_, err = s.q.ExecContext(ctx, `UPDATE payment_applications SET state = 'released', released_amount = applied_amount WHERE id = $1`, r.ID)
		default:
			_, err = s.q.ExecContext(ctx, `UPDATE payment_applications SET released_amount = released_amount + $2 WHERE id = $1`, r.ID, give)
		}
		if err != nil {
			return translate(fmt.Errorf("release line %s: %w", r.ID, err))
		}
	}
	sort.SliceStable(moves, func(i, j int) bool { return moves[i].invoice < moves[j].invoice })
	for _, m := range moves {
		if _, err := s.q.ExecContext(ctx, `UPDATE invoices SET amount_reserved = amount_reserved + $2, amount_paid = amount_paid + $3
			WHERE id = $1`, m.invoice, m.delta, m.paid); err != nil {
			return translate(fmt.Errorf("release on invoice %s: %w", m.invoice, err))
		}
	}
	return nil
}

// settleLines keeps invoice balances in step with a payment's transition,
// in the transition's own transaction.
// The rule (which transition moves lines how) is linesOf and
// Change.blocksAccount, shared with the batched statement of Record.
func (s *Store) settleLines(ctx context.Context, c Change) error {
	switch linesOf(c) {
	case "apply":
		return s.markLinesApplied(ctx, c.PaymentID)
	case "release":
		if c.blocksAccount() {
			// the beneficiary account is closed or does not exist: no more payouts to it
			if _, err := s.q.ExecContext(ctx, `
				INSERT INTO blocked_accounts (tenant_id, account_fingerprint, return_code, payment_id, created_at)
				SELECT tenant_id, account_fingerprint, $2, payment_id, $3 FROM payout_details WHERE payment_id = $1
				ON CONFLICT DO NOTHING`, c.PaymentID, c.ReturnCode, s.now()); err != nil {
				return translate(fmt.Errorf("block account of %s: %w", c.PaymentID, err))
			}
		}
		return s.releaseLines(ctx, c.PaymentID, -1, false)
	}
	if c.RefundedDelta > 0 && c.From != payment.StatusCanceled && c.From != payment.StatusFailed {
		// (a refund of a charge that landed after a cancel gives nothing
		// back to the invoices: the cancel released the lines)
		return s.releaseLines(ctx, c.PaymentID, c.RefundedDelta, false)
	}
	return nil
}
