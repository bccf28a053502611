package processor

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// refund gives back money through the gateway (keyed by the refund id, so a
// repeat never refunds twice), or records it for payments that never went
// through one. The payment's refunded amount and status change in the same
// transaction as the refund's outcome.
func (p *Processor) refund(ctx context.Context, t *asynq.Task) error {
	pl, err := jobs.ParseRefund(t)
	if err != nil {
		return err
	}
	r, err := p.Store.GetRefund(ctx, "", pl.RefundID)
	if err != nil {
		return err
	}
	if r.Status != payment.RefundPending || r.StepSeq != pl.Seq {
		return payment.ErrStale
	}
	pay, err := p.Store.GetPayment(ctx, "", r.PaymentID)
	if err != nil {
		return err
	}
	res := connector.Result{Status: connector.StatusSucceeded}
	// the refund of a charge that landed after the payment was canceled or
	// failed gives that charge back, whatever the payment's status
	late := r.Reason == payment.RefundReasonChargeAfterCancel && r.ChargeReference != ""
	if late {
		gctx, cancel := p.gatewayCtx(ctx)
		res, err = p.Gateway.Refund(gctx, connector.RefundRequest{IdempotencyKey: r.ID, PaymentID: pay.ID,
			GatewayReference: r.ChargeReference, Amount: payment.Money{Minor: r.Amount, Currency: r.Currency}})
		cancel()
		if err != nil {
			return fmt.Errorf("refund %s: %w", r.ID, err) // idempotent by key: retrying is safe
		}
	} else if pay.Status != payment.StatusSucceeded && pay.Status != payment.StatusPartiallyRefunded {
		// the payment left the refundable states (returned): release the reservation
		res = connector.Result{Status: connector.StatusDeclined, Code: "payment_not_refundable",
			Message: "the payment is " + string(pay.Status) + " and can no longer be refunded"}
	} else if pay.ProcessPayment && pay.GatewayReference != "" {
		gctx, cancel := p.gatewayCtx(ctx)
		res, err = p.Gateway.Refund(gctx, connector.RefundRequest{IdempotencyKey: r.ID, PaymentID: pay.ID,
			GatewayReference: pay.GatewayReference, Amount: payment.Money{Minor: r.Amount, Currency: r.Currency}})
		cancel()
		if err != nil {
			return fmt.Errorf("refund %s: %w", r.ID, err) // idempotent by key: retrying is safe
		}
	}
	err = p.Store.InTx(ctx, func(tx *store.Store) error {
		// Decide from the locked row: concurrent refunds of one payment
		// serialize here, so the last one sees every earlier one.
		cur, err := tx.LockPayment(ctx, pay.ID)
		if err != nil {
			return err
		}
		if res.Status != connector.StatusSucceeded {
			if err := tx.FinishRefund(ctx, r.ID, r.StepSeq, payment.RefundFailed, res.Reference, nonEmpty(res.Message, res.Code)); err != nil {
				return err
			}
			c := store.Change{PaymentID: pay.ID, From: cur.Status, To: cur.Status, AnySeq: true,
				KeepSchedule: true, RefundReleased: r.Amount, Actor: actor}
			if late {
				// the gateway still holds the money: said in the timeline, and
				// reconciliation keeps it open for an operator
				c.Audit, c.Reason = true, fmt.Sprintf("refund %s of the late charge %s failed (%s): the gateway still holds it",
					r.ID, r.ChargeReference, nonEmpty(res.Message, res.Code))
			}
			_, err := tx.Apply(ctx, c)
			return err
		}
		if late {
			if err := tx.FinishRefund(ctx, r.ID, r.StepSeq, payment.RefundSucceeded, res.Reference, ""); err != nil {
				return err
			}
			_, err = tx.Apply(ctx, store.Change{PaymentID: pay.ID, From: cur.Status, To: cur.Status, AnySeq: true,
				KeepSchedule: true, Audit: true, RefundedDelta: r.Amount, Actor: actor,
				Reason: fmt.Sprintf("refund %s of the late charge %s (%s %s) succeeded", r.ID, r.ChargeReference,
					payment.FormatMajor(r.Amount, r.Currency), r.Currency)})
			return err
		}
		if err := tx.FinishRefund(ctx, r.ID, r.StepSeq, payment.RefundSucceeded, res.Reference, ""); err != nil {
			return err
		}
		to := payment.StatusPartiallyRefunded
		if cur.RefundedAmount+r.Amount == cur.Amount.Minor {
			to = payment.StatusRefunded
		}
		_, err = tx.Apply(ctx, store.Change{PaymentID: pay.ID, From: cur.Status, To: to, AnySeq: true, KeepSchedule: true,
			Audit: true, RefundedDelta: r.Amount, Actor: actor,
			Reason: fmt.Sprintf("refund %s of %s %s succeeded", r.ID, payment.FormatMajor(r.Amount, r.Currency), r.Currency)})
		return err
	})
	if errors.Is(err, payment.ErrStale) {
		// The payment moved (another refund landed first): try again with a
		// fresh read; the gateway call is idempotent by the refund id.
		return fmt.Errorf("refund %s: %w", r.ID, errNotYet)
	}
	if err == nil && res.Status == connector.StatusSucceeded {
		p.Metrics.Transitions.WithLabelValues(string(pay.Status), "refund").Inc()
	}
	return err
}
