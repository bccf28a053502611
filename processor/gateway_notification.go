package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// notification acts on a gateway notification (gateway:notification). The
// notification is only a hint: it never writes a status. If the payment it
// names is waiting on the gateway at a step the gateway can answer (an
// inquiry of the current attempt, or a settlement check of the current
// charge), that step runs now, with the payment's current step sequence,
// through its own handler: the gateway's answer is applied by the same
// guarded update and audit path as a polled one, and the scheduled task of
// that step becomes stale. Duplicates of a notification are one task (one
// TaskID) and one row (processed once); distinct notifications about one
// change (settled, then returned, in any order) each ask the gateway, whose
// answer is the same truth whichever arrives first.
//
// The task names the notification's step sequence: when the sweeper
// re-armed the notification (its task was archived or stuck) under a newer
// one, this task is stale and does nothing, and only the task of the
// current sequence records the outcome (store.FinishNotificationTask), so a
// notification is processed once.
func (p *Processor) notification(ctx context.Context, t *asynq.Task) error {
	pl, err := jobs.ParseNotification(t)
	if err != nil {
		return err
	}
	n, err := p.Store.GetNotification(ctx, pl.Gateway, pl.NotificationID)
	if err != nil {
		return err
	}
	if n.ProcessedAt != nil || n.Seq != pl.Seq {
		return payment.ErrStale
	}
	outcome, paymentID, err := p.actOnNotification(ctx, n.IdempotencyKey, n.Reference)
	if err != nil {
		return err
	}
	if err := p.Store.FinishNotificationTask(ctx, n.Gateway, n.ID, n.Seq, paymentID, outcome); err != nil {
		return err
	}
	p.Metrics.GatewayNotificationChecks.WithLabelValues(connector.NotificationTypeLabel(n.Type), outcome).Inc()
	p.Log.InfoContext(ctx, "gateway notification", "notification_type", n.Type, "payment_id", paymentID, "outcome", outcome)
	return nil
}

// notifyRounds bounds how often one notification re-reads its payment after
// losing a race (see actOnNotification).
const notifyRounds = 3

// actOnNotification runs the payment's pending gateway step now when the
// notification is about it. Outcomes: checked (the gateway was asked and
// its answer recorded), stale (other runs kept getting there first),
// unknown_payment, other_attempt (about an earlier attempt or another
// charge), nothing_due (the payment is not waiting on the gateway).
//
// A notification often arrives while the call that caused it is still being
// recorded (the gateway notifies before its answer reaches the worker, or
// instead of an answer that was lost). Its check then loses the guarded
// update to the submit's record, and the row may now wait on the gateway
// at a new step (an inquiry an hour away, for an unknown outcome): so a
// stale check reads the row again and asks again, a few times.
func (p *Processor) actOnNotification(ctx context.Context, key, ref string) (string, string, error) {
	att, err := p.Store.FindAttempt(ctx, key, ref)
	if errors.Is(err, payment.ErrNotFound) {
		return "unknown_payment", "", nil
	}
	if err != nil {
		return "", "", err
	}
	outcome := "stale"
	for range notifyRounds {
		outcome, err = p.checkNotified(ctx, att)
		if err != nil || outcome != "stale" {
			break
		}
	}
	return outcome, att.PaymentID, err
}

// checkNotified runs once the gateway step of the attempt's payment, if it
// waits on one.
func (p *Processor) checkNotified(ctx context.Context, att store.AttemptRef) (string, error) {
	pay, err := p.Store.GetPayment(ctx, "", att.PaymentID)
	if err != nil {
		return "", err
	}
	if pay.Status == payment.StatusCanceled || pay.Status == payment.StatusFailed {
		// payd holds it as not charged: a charge notified now is a late one
		return p.checkLateCharge(ctx, pay, att.Number, "notification")
	}
	if att.Number != pay.AttemptCount {
		// an inquiry of the current attempt on the strength of a
		// notification about another could fence a charge still in flight
		return "other_attempt", nil
	}
	var step func(context.Context, *asynq.Task) error
	var typ string
	switch pay.NextStep {
	case payment.StepInquire:
		step, typ = p.inquire, jobs.TypePaymentInquire
	case payment.StepSettle:
		if pay.GatewayReference == "" {
			return "nothing_due", nil // imported: no rail reference to ask about
		}
		step, typ = p.settle, jobs.TypePaymentSettle
	case payment.StepVoid:
		// a cancel or an expiry is voiding the action: void now, so a
		// challenge completed meanwhile is refunded at once
		step, typ = p.void, jobs.TypePaymentVoid
	default:
		return "nothing_due", nil
	}
	b, err := json.Marshal(jobs.StepPayload{PaymentID: pay.ID, Seq: pay.StepSeq})
	if err != nil {
		return "", err
	}
	err = step(ctx, asynq.NewTask(typ, b))
	if errors.Is(err, payment.ErrStale) {
		return "stale", nil
	}
	if err != nil {
		return "", err
	}
	return "checked", nil
}

// checkLateCharge asks the gateway about attempt n of a payment payd holds
// as not charged (canceled or failed), on the strength of a hint that it
// charged (a notification, reconciliation). A charge the gateway confirms is
// recorded and refunded (store.RecordLateCharge; once per charge, however
// often it is found). Outcomes: late_charge (refund started), refunded
// already (recorded before), nothing_due (the gateway says not charged).
func (p *Processor) checkLateCharge(ctx context.Context, pay payment.Payment, n int, source string) (string, error) {
	var att payment.Attempt
	for _, a := range pay.Attempts {
		if a.Number == n {
			att = a
		}
	}
	if att.ID == "" {
		return "", fmt.Errorf("attempt %d of %s: %w", n, pay.ID, errNoAttempt)
	}
	if att.Status == payment.AttemptSucceeded {
		return "refunded_already", nil
	}
	gctx, cancel := p.gatewayCtx(ctx)
	res, err := connector.InquireAttempt(gctx, p.Gateway, gatewayAttempt(pay, att))
	cancel()
	if err != nil {
		return "", fmt.Errorf("inquire late charge of %s: %w", att.IdempotencyKey, err) // retried
	}
	if res.Status != connector.StatusSucceeded {
		return "nothing_due", nil
	}
	r, fresh, err := p.Store.RecordLateCharge(ctx, store.LateCharge{PaymentID: pay.ID, AttemptKey: att.IdempotencyKey,
		Reference: res.Reference, Amount: pay.Amount, Source: source, Actor: actor})
	if err != nil {
		return "", err
	}
	if !fresh {
		return "refunded_already", nil
	}
	p.startLateRefund(ctx, source, r)
	return "late_charge", nil
}
