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
// payments can never over-apply an invoice. The payment amounts of the
// payment's lines never add up to more than its amount
// (payment.ErrLinesExceedAmount); a line released for a failure or return
// no longer counts, one that refunds took back still does, since refunds are
// carved out of the lines (releaseRefunded). Lines added to a payment that
// was already refunded carry their part of its refunds at once, so the
// invoices never show more paid than the payment kept (amount − refunded).
// Lines must name invoices of the payment's tenant (callers resolve them
// first).
func (s *Store) ApplyLines(ctx context.Context, paymentID string, lines []payment.Line, replace bool) error {
	return s.InTx(ctx, func(tx *Store) error {
		pay, err := tx.LockPayment(ctx, paymentID)
		if err != nil {
			return err
		}
		if replace {
			if err := tx.releaseLines(ctx, paymentID, true); err != nil {
				return err
			}
		}
		// Refunds were carved out of the lines of a payment that succeeded
		// and was refunded (a late charge refunded after a cancel or a
		// failure was not: those lines were released whole).
		carved := pay.RefundedAmount > 0 && (pay.Status == payment.StatusSucceeded ||
			pay.Status == payment.StatusPartiallyRefunded || pay.Status == payment.StatusRefunded)
		// Each sum is of amounts of at most 1e14 (the API's limit) or of
		// lines that passed this check: numeric in SQL, no overflow.
		var used int64
		if err := tx.q.QueryRowxContext(ctx, `SELECT COALESCE(sum(payment_amount), 0)::int8 FROM payment_applications
			WHERE payment_id = $1 AND (state <> 'released' OR $2)`, paymentID, carved).Scan(&used); err != nil {
			return translate(fmt.Errorf("sum lines: %w", err))
		}
		for _, l := range lines {
			if l.PaymentAmount > pay.Amount.Minor-used {
				return payment.ErrLinesExceedAmount
			}
			used += max(l.PaymentAmount, 0) // the schema refuses a line that is not positive
		}
		if err := tx.insertLines(ctx, pay, lines); err != nil {
			return err
		}
		if carved {
			return tx.releaseRefunded(ctx, paymentID)
		}
		return nil
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

// releaseLines gives every line of a payment back to its invoice, whole:
// the payment failed, was canceled or returned. With remove the lines are
// deleted instead of marked released (replace_lines).
func (s *Store) releaseLines(ctx context.Context, paymentID string, remove bool) error {
	rows, err := s.lockLines(ctx, paymentID)
	if err != nil {
		return err
	}
	var moves []lineMove
	for _, r := range rows {
		left := r.AppliedAmount - r.ReleasedAmount
		var err error
		switch {
		case remove:
			_, err = s.q.ExecContext(ctx, `DELETE FROM payment_applications WHERE id = $1`, r.ID)
		case r.State != "released" && left > 0:
			_, err = s.q.ExecContext(ctx, `UPDATE payment_applications SET state = 'released', released_amount = applied_amount WHERE id = $1`, r.ID)
		}
		if err != nil {
			return translate(fmt.Errorf("release line %s: %w", r.ID, err))
		}
		if r.State != "released" && left > 0 {
			moves = append(moves, moveOf(r, left))
		}
	}
	return s.moveInvoices(ctx, moves)
}

// releaseRefunded brings a payment's lines in step with its cumulative
// refunded amount (the payments row as this transaction sees it), by
// payment.RefundedLines: refunds are carved out of the lines oldest first
// (created_at, id) in the payment's currency and converted to each line's
// invoice currency exactly; each line not yet released gives back to its
// invoice the difference between what that rule says it has given back and
// what it has (released_amount), and a line that has given back all it
// applied is marked released. It is a function of the cumulative amount
// only, so running it again changes nothing, successive partial refunds
// telescope exactly (no unit lost or invented however they are split), and
// a full refund releases every line entirely. A line is never taken back
// below what it already released, and never past what it applied, so an
// invoice's paid amount stays within [0, amount_due].
//
// It runs in the transaction of the refund's transition (after the update
// of refunded_amount), and after ApplyLines adds lines to a refunded
// payment, so new lines carry the refunds the old ones did not.
func (s *Store) releaseRefunded(ctx context.Context, paymentID string) error {
	rows, err := s.lockLines(ctx, paymentID)
	if err != nil {
		return err
	}
	var refunded int64
	if err := s.q.QueryRowxContext(ctx, `SELECT refunded_amount FROM payments WHERE id = $1`, paymentID).Scan(&refunded); err != nil {
		return translate(fmt.Errorf("load refunded amount of %s: %w", paymentID, err))
	}
	amounts := make([]payment.LineAmount, len(rows))
	for i, r := range rows {
		amounts[i] = payment.LineAmount{Payment: r.PaymentAmount, Applied: r.AppliedAmount}
	}
	want, err := payment.RefundedLines(refunded, amounts)
	if err != nil {
		return fmt.Errorf("refunded lines of %s: %w", paymentID, err)
	}
	var moves []lineMove
	for i, r := range rows {
		give := want[i].Applied - r.ReleasedAmount
		if r.State == "released" || give <= 0 {
			continue
		}
		if _, err := s.q.ExecContext(ctx, `UPDATE payment_applications SET released_amount = released_amount + $2,
			state = CASE WHEN released_amount + $2 = applied_amount THEN 'released' ELSE state END WHERE id = $1`,
			r.ID, give); err != nil {
			return translate(fmt.Errorf("release line %s: %w", r.ID, err))
		}
		moves = append(moves, moveOf(r, give))
	}
	return s.moveInvoices(ctx, moves)
}

// lockLines loads every line of a payment, oldest first, locked.
func (s *Store) lockLines(ctx context.Context, paymentID string) ([]lineRow, error) {
	var rows []lineRow
	if err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT `+lineColumns+` FROM payment_applications
		WHERE payment_id = $1 ORDER BY created_at, id FOR UPDATE`, paymentID); err != nil {
		return nil, translate(fmt.Errorf("load lines of %s: %w", paymentID, err))
	}
	return rows, nil
}

// lineMove is what releasing part of a line does to its invoice.
type lineMove struct {
	invoice     string
	delta, paid int64
}

// moveOf gives back give applied units of line r: from the invoice's
// reservation, and from its paid amount when the line counted as paid.
func moveOf(r lineRow, give int64) lineMove {
	m := lineMove{invoice: r.InvoiceID, delta: -give}
	if r.State == "applied" {
		m.paid = -give
	}
	return m
}

// moveInvoices applies line moves to their invoices, in invoice id order so
// concurrent transactions never deadlock on them.
func (s *Store) moveInvoices(ctx context.Context, moves []lineMove) error {
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
		return s.releaseLines(ctx, c.PaymentID, false)
	}
	if c.RefundedDelta > 0 && c.From != payment.StatusCanceled && c.From != payment.StatusFailed {
		// (a refund of a charge that landed after a cancel gives nothing
		// back to the invoices: the cancel released the lines)
		return s.releaseRefunded(ctx, c.PaymentID)
	}
	return nil
}
