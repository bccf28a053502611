package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/payd/payd/payment"
)

// LateCharge is a charge the gateway made for a payment payd holds as not
// charged (canceled or failed): a 3-D Secure challenge completed after the
// cancel, or a charge found later by a void, an inquiry, a gateway
// notification or reconciliation.
type LateCharge struct {
	PaymentID  string
	AttemptKey string // the idempotency key the gateway charged under
	Reference  string // the gateway's reference of the charge
	Amount     payment.Money
	Source     string // what found it: void, notification, reconciliation, …
	Actor      string
}

// ErrChargeMismatch: the gateway charged another amount or currency than
// the payment's. payd does not guess what to give back: an operator
// decides (reconciliation files a finding).
var ErrChargeMismatch = errors.New("the charge's amount or currency is not the payment's")

// RecordLateCharge records a late charge and starts its refund, in one
// transaction (the caller's, if any): the attempt is marked charged
// (SUCCEEDED, error code charge_after_cancel, with the charge's reference),
// a PENDING refund of the whole charge (reason charge_after_cancel) is
// reserved on the payment, and a note in its timeline says what happened.
// The payment keeps its status. It is idempotent per charge: a charge
// already recorded returns its refund with fresh false, so a charge found
// again (by every reconciliation run, say) is refunded once.
//
// It returns payment.ErrInvalidState for a payment that is not canceled or
// failed (the engine, or review, decides about payments in flight),
// payment.ErrNotFound when no attempt of the payment has the key, and
// ErrChargeMismatch when the charge is not the payment's amount.
func (s *Store) RecordLateCharge(ctx context.Context, lc LateCharge) (refund payment.Refund, fresh bool, err error) {
	err = s.InTx(ctx, func(tx *Store) error {
		pay, err := tx.LockPayment(ctx, lc.PaymentID)
		if err != nil {
			return err
		}
		var r refundRow
		err = tx.q.QueryRowxContext(ctx, `SELECT `+refundColumns+` FROM refunds
			WHERE payment_id = $1 AND charge_reference = $2 AND reason = $3`,
			lc.PaymentID, lc.Reference, payment.RefundReasonChargeAfterCancel).StructScan(&r)
		if err == nil {
			refund = r.toRefund()
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return translate(fmt.Errorf("late charge refund of %s: %w", lc.PaymentID, err))
		}
		if pay.Status != payment.StatusCanceled && pay.Status != payment.StatusFailed {
			return fmt.Errorf("late charge for %s in %s: %w", lc.PaymentID, pay.Status, payment.ErrInvalidState)
		}
		if lc.Amount != pay.Amount || lc.Amount.Minor > pay.Amount.Minor-pay.RefundedAmount-pay.RefundPendingAmount {
			return fmt.Errorf("late charge of %d %s for %s (%d %s): %w", lc.Amount.Minor, lc.Amount.Currency,
				lc.PaymentID, pay.Amount.Minor, pay.Amount.Currency, ErrChargeMismatch)
		}
		now := tx.now()
		var n int
		err = tx.q.QueryRowxContext(ctx, `UPDATE payment_attempts SET status = 'SUCCEEDED', failure_class = '',
				error_code = $3, error_message = $4, gateway_reference = $5, next_retry_at = NULL,
				finished_at = COALESCE(finished_at, $6), updated_at = $6
			WHERE payment_id = $1 AND idempotency_key = $2 RETURNING attempt_number`,
			lc.PaymentID, lc.AttemptKey, payment.RefundReasonChargeAfterCancel,
			"charged after the payment was "+lower(pay.Status)+" (found by "+lc.Source+"); refunded", lc.Reference, now).Scan(&n)
		if err != nil {
			return translate(fmt.Errorf("record late charge on %s: %w", lc.AttemptKey, err))
		}
		if _, err := tx.q.ExecContext(ctx, `UPDATE payments SET refund_pending_amount = refund_pending_amount + $2,
				updated_at = $3, updated_by = $4 WHERE id = $1`, lc.PaymentID, lc.Amount.Minor, now, lc.Actor); err != nil {
			return translate(fmt.Errorf("reserve late charge refund: %w", err))
		}
		err = tx.q.QueryRowxContext(ctx, `
			INSERT INTO refunds (id, payment_id, tenant_id, amount, currency, reason, status, next_at, created_by, created_at,
				charge_reference)
			VALUES ($1,$2,$3,$4,$5,$6,'PENDING',$7,$8,$7,$9) RETURNING `+refundColumns,
			NewID(payment.PrefixRefund), lc.PaymentID, pay.TenantID, lc.Amount.Minor, lc.Amount.Currency,
			payment.RefundReasonChargeAfterCancel, now, lc.Actor, lc.Reference).StructScan(&r)
		if err != nil {
			return translate(fmt.Errorf("insert late charge refund: %w", err))
		}
		refund, fresh = r.toRefund(), true
		return tx.insertEvent(ctx, payment.Event{PaymentID: pay.ID, TenantID: pay.TenantID, From: pay.Status, To: pay.Status,
			AttemptNumber: n, Actor: lc.Actor, CreatedAt: now,
			Reason: fmt.Sprintf("attempt %d charged %s %s after the payment was %s (%s, found by %s): refund %s started",
				n, payment.FormatMajor(lc.Amount.Minor, lc.Amount.Currency), lc.Amount.Currency, lower(pay.Status),
				lc.Reference, lc.Source, refund.ID)})
	})
	return refund, fresh, err
}

func lower(st payment.Status) string {
	b := []byte(st)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
