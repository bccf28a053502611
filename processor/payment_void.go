package processor

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// void cancels, at the gateway, the customer action a payment awaits
// (payment:void): the merchant canceled the payment, or the action
// expired. Only once the gateway has voided it (or says it never saw the
// key, which fences it) does the payment become CANCELED or FAILED, so a
// challenge the customer completes later can no longer charge. If the
// customer's action had already charged, a canceled payment is canceled
// and the charge refunded at once; an expired one succeeded in time.
func (p *Processor) void(ctx context.Context, t *asynq.Task) error {
	pay, err := p.stepPayment(ctx, t, payment.StepVoid, payment.StatusRequiresAction)
	if err != nil {
		return err
	}
	att, ok := lastAttempt(pay)
	if !ok {
		return errNoAttempt
	}
	gctx, cancel := p.gatewayCtx(ctx)
	res, gerr := connector.VoidAttempt(gctx, p.Gateway, gatewayAttempt(pay, att))
	cancel()
	res, gerr = p.unconfirmedNotFound(att, res, gerr)
	d := decideVoid(pay, att, res, gerr, p.cfg.Policy, p.Store.Now())
	reason := "expiry"
	if pay.CancelRequestedAt != nil {
		reason = "cancel"
	}
	p.Metrics.Voids.WithLabelValues(reason, d.outcome).Inc()
	p.Log.InfoContext(ctx, "void", "payment_id", pay.ID, "attempt", att.Number, "reason", reason, "outcome", d.outcome)
	return p.record(ctx, pay, d)
}

// decideVoid maps the gateway's answer to a void of attempt a of payment p
// (REQUIRES_ACTION, its void step due) to a decision; pure. A payment whose
// cancel the merchant asked for (CancelRequestedAt) ends CANCELED; one whose
// action expired ends FAILED (action_expired).
//   - voided, never seen (now fenced), or declined (the customer refused the
//     challenge): not charged, the final status;
//   - charged (the customer completed before the void): an expired payment
//     succeeded in time; a canceled one is canceled and its charge refunded
//     in the same transaction (store.RecordLateCharge);
//   - no usable answer: the void is tried again on the inquiry schedule (the
//     attempt's outcome is unknown meanwhile). When the schedule is spent,
//     the payment takes its final status anyway: the attempt stays UNKNOWN,
//     and a charge that lands later is found (a notification, an inquiry or
//     reconciliation) and refunded.
func decideVoid(p payment.Payment, a payment.Attempt, res connector.Result, gerr error, pol payment.RetryPolicy, now time.Time) decision {
	canceled := p.CancelRequestedAt != nil
	final, code, msg := payment.StatusFailed, "action_expired", "customer action not completed in time"
	why := "customer action expired"
	if canceled {
		final, code, msg = payment.StatusCanceled, "canceled", "payment canceled"
		why = "canceled by the merchant"
	}
	from := payment.StatusRequiresAction
	var d decision
	switch {
	case gerr != nil:
		ge := connector.AsError(gerr)
		return voidUnknown(p, a, final, code, msg, why, ge.Code, "void: no answer from the gateway ("+ge.Code+")", pol, now)
	case res.Status != connector.StatusVoided && res.Status != connector.StatusNotFound &&
		res.Status != connector.StatusDeclined && res.Status != connector.StatusSucceeded:
		// an answer a void should not get (still requires action, a bank
		// status): as good as none
		return voidUnknown(p, a, final, code, msg, why, "unexpected_status", "void answered "+string(res.Status), pol, now)
	}
	switch res.Status {
	case connector.StatusVoided, connector.StatusNotFound, connector.StatusDeclined:
		d.outcome = "voided"
		d.attempt = &store.AttemptResult{AttemptID: a.ID, Status: payment.AttemptFailed, FailureClass: payment.FailureHardDecline,
			ErrorCode: code, ErrorMessage: msg + "; voided at the gateway (" + string(res.Status) + ")", GatewayReference: res.Reference}
		d.changes = append(d.changes, store.Change{PaymentID: p.ID, From: from, To: final, Attempt: a.Number,
			ErrorCode: code, ErrorMessage: msg,
			Reason: fmt.Sprintf("%s; attempt %d voided at the gateway (%s)", why, a.Number, res.Status)})
	case connector.StatusSucceeded:
		d.outcome = "charged"
		if !canceled {
			// the customer completed the action before the void reached the
			// gateway: the payment succeeded in time
			d.attempt = &store.AttemptResult{AttemptID: a.ID, Status: payment.AttemptSucceeded, GatewayReference: res.Reference}
			d.changes = append(d.changes,
				store.Change{PaymentID: p.ID, From: from, To: payment.StatusProcessing, Attempt: a.Number,
					Reason: "customer action completed before it expired"},
				store.Change{PaymentID: p.ID, From: payment.StatusProcessing, To: payment.StatusSucceeded,
					GatewayReference: res.Reference, Attempt: a.Number,
					Reason: fmt.Sprintf("attempt %d charged (found by the void at expiry)", a.Number)})
			return d
		}
		// canceled, yet charged: the payment is canceled as asked and the
		// charge refunded (RecordLateCharge marks the attempt charged)
		d.changes = append(d.changes, store.Change{PaymentID: p.ID, From: from, To: final, Attempt: a.Number,
			ErrorCode: code, ErrorMessage: msg,
			Reason: fmt.Sprintf("%s; the customer's action had already charged attempt %d: refunding it", why, a.Number)})
		d.lateCharge = &store.LateCharge{PaymentID: p.ID, AttemptKey: a.IdempotencyKey, Reference: res.Reference,
			Amount: p.Amount, Source: "void", Actor: actor}
	}
	return d
}

// voidUnknown: the void got no usable answer. It is tried again on the
// inquiry schedule; once that is spent the payment takes its final status
// with its attempt UNKNOWN (a late charge is refunded when found).
func voidUnknown(p payment.Payment, a payment.Attempt, final payment.Status, code, msg, why, errCode, errMsg string,
	pol payment.RetryPolicy, now time.Time) decision {
	from := payment.StatusRequiresAction
	tries := a.InquiryCount + 1
	d := decision{attempt: &store.AttemptResult{AttemptID: a.ID, Status: payment.AttemptUnknown,
		FailureClass: payment.FailureUnknown, ErrorCode: errCode, ErrorMessage: errMsg, CountInquiry: true}}
	if at, ok := pol.NextInquiry(tries, now); ok {
		d.outcome = "unknown"
		d.changes = append(d.changes, store.Change{PaymentID: p.ID, From: from, To: from, NextStep: payment.StepVoid, NextStepAt: at})
		return d
	}
	d.outcome = "gave_up"
	d.changes = append(d.changes, store.Change{PaymentID: p.ID, From: from, To: final, Attempt: a.Number,
		ErrorCode: code, ErrorMessage: msg,
		Reason: fmt.Sprintf("%s; the void of attempt %d got no answer after %d tries: a charge that lands later will be refunded",
			why, a.Number, tries)})
	return d
}
