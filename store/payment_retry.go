package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/payd/payd/payment"
)

// An operator's retry of a FAILED payment (`payd payments retry`): a new
// payment, linked to the failed one in payment_retries. The failed
// payment stays FAILED, its attempts and their gateway keys untouched; the
// new one has its own (<new id>:1, …), so no gateway key is ever used
// twice, and it runs the normal job path from PENDING (create, submit).

// Retry is an operator's request to retry a payment.
type Retry struct {
	PaymentID string
	Policy    payment.RetryPolicy // decides (payment.RetryPolicy.OperatorRetry) on the locked row
	Actor     string              // operator:<name>
	Reason    string
}

// AlreadyRetriedError: the payment was retried before, as RetryID.
type AlreadyRetriedError struct{ PaymentID, RetryID string }

func (e *AlreadyRetriedError) Error() string {
	return fmt.Sprintf("payment %s was retried already, as %s", e.PaymentID, e.RetryID)
}

// RetryOf returns the payment a payment was retried as and the one it is a
// retry of ("" for none).
func (s *Store) RetryOf(ctx context.Context, id string) (retriedAs, retryOf string, err error) {
	err = s.q.QueryRowxContext(ctx, `SELECT
		COALESCE((SELECT retry_id FROM payment_retries WHERE payment_id = $1), ''),
		COALESCE((SELECT payment_id FROM payment_retries WHERE retry_id = $1), '')`, id).Scan(&retriedAs, &retryOf)
	if err != nil {
		return "", "", translate(fmt.Errorf("retries of %s: %w", id, err))
	}
	return retriedAs, retryOf, nil
}

// RetryPayment records a retry in one transaction, on the failed
// payment's row lock: the policy's decision on the row as locked
// (payment.ErrInvalidState when it is not FAILED, *payment.RetryRefusedError),
// *AlreadyRetriedError if it was retried before, else the new PENDING
// payment (next step create, due now, so the sweeper enqueues it if the
// caller's enqueue is lost) with the failed payment's amount, method,
// payment method, invoice, metadata and lines (reserved again on their
// invoices: an invoice paid meanwhile refuses it,
// *payment.InvoiceOverAppliedError), its creation audit row, a note on the
// failed payment's timeline (FAILED → FAILED) naming it, and the link.
// The caller enqueues the new payment's create step after commit.
func (s *Store) RetryPayment(ctx context.Context, r Retry) (payment.Payment, error) {
	var out payment.Payment
	err := s.InTx(ctx, func(tx *Store) error {
		old, err := tx.LockPayment(ctx, r.PaymentID)
		if err != nil {
			return err
		}
		atts, err := tx.attempts(ctx, []string{old.ID})
		if err != nil {
			return err
		}
		old.Attempts = atts[old.ID]
		if err := r.Policy.OperatorRetry(old); err != nil {
			return err
		}
		var prior string
		err = tx.q.QueryRowxContext(ctx, `SELECT retry_id FROM payment_retries WHERE payment_id = $1`, old.ID).Scan(&prior)
		if err = translate(err); err == nil {
			return &AlreadyRetriedError{PaymentID: old.ID, RetryID: prior}
		} else if !errors.Is(err, payment.ErrNotFound) {
			return fmt.Errorf("retries of %s: %w", old.ID, err)
		}
		why := fmt.Sprintf("retry of %s by %s: %s", old.ID, r.Actor, r.Reason)
		pay, err := tx.InsertPayment(ctx, NewPayment{TenantID: old.TenantID, Surface: old.Surface, Amount: old.Amount,
			Method: old.Method, PaymentMethodID: old.PaymentMethodID, DestinationType: old.DestinationType,
			DestinationID: old.DestinationID, InvoiceID: old.InvoiceID, ProcessPayment: old.ProcessPayment,
			TrackAttempts: old.TrackAttempts, Metadata: old.Metadata, Gateway: old.Gateway, Options: old.Options,
			Actor: r.Actor, Reason: why})
		if err != nil {
			return err
		}
		lines, err := tx.Lines(ctx, []string{old.ID})
		if err != nil {
			return err
		}
		if len(lines[old.ID]) > 0 {
			if err := tx.insertLines(ctx, pay, lines[old.ID]); err != nil {
				return err
			}
		}
		now := tx.now()
		if err := tx.insertEvent(ctx, payment.Event{PaymentID: old.ID, TenantID: old.TenantID, From: payment.StatusFailed,
			To: payment.StatusFailed, Reason: fmt.Sprintf("retried as %s by %s: %s", pay.ID, r.Actor, r.Reason),
			AttemptNumber: old.AttemptCount, Actor: r.Actor, CreatedAt: now}); err != nil {
			return fmt.Errorf("note the retry on %s: %w", old.ID, err)
		}
		if _, err := tx.q.ExecContext(ctx, `INSERT INTO payment_retries (payment_id, retry_id, tenant_id, actor, reason, created_at)
			VALUES ($1,$2,$3,$4,$5,$6)`, old.ID, pay.ID, old.TenantID, r.Actor, r.Reason, now); err != nil {
			return translate(fmt.Errorf("link the retry of %s: %w", old.ID, err))
		}
		out = pay
		return nil
	})
	return out, err
}
