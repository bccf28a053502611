package processor

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// inquire asks the gateway what happened to the current attempt, by its
// idempotency key: after an unknown outcome, after a worker died mid-attempt,
// while a customer action is awaited, and on a slow schedule while the
// payment is in review (the first answer resolves it). It never charges.
func (p *Processor) inquire(ctx context.Context, t *asynq.Task) error {
	pay, err := p.stepPayment(ctx, t, payment.StepInquire,
		payment.StatusProcessing, payment.StatusRequiresAction, payment.StatusRequiresReview)
	if err != nil {
		return err
	}
	att, ok := lastAttempt(pay)
	if !ok {
		return errNoAttempt
	}
	if att.Status == payment.AttemptSucceeded || att.Status == payment.AttemptFailed {
		return payment.ErrStale
	}
	gctx, cancel := p.gatewayCtx(ctx)
	start := time.Now()
	res, gerr := connector.InquireAttempt(gctx, p.Gateway, gatewayAttempt(pay, att))
	cancel()
	res, gerr = p.unconfirmedNotFound(att, res, gerr)
	d := decide(pay, att, res, gerr, true, p.cfg.Policy, p.Store.Now())
	p.Metrics.AttemptOutcomes.WithLabelValues(string(pay.Method), "inquiry_"+d.outcome).Inc()
	p.Metrics.AttemptLatency.WithLabelValues(string(pay.Method), "inquiry_"+d.outcome).Observe(time.Since(start).Seconds())
	p.Log.InfoContext(ctx, "inquiry", "payment_id", pay.ID, "attempt", att.Number, "outcome", d.outcome)
	if err := p.record(ctx, pay, d); err != nil {
		return err
	}
	if pay.Status == payment.StatusRequiresReview {
		for _, c := range d.changes {
			if c.From != c.To {
				p.Metrics.ReviewResolutions.WithLabelValues(string(c.To), "inquiry").Inc()
			}
		}
	}
	return nil
}

// gatewayAttempt is attempt a of payment pay as the gateway is asked about
// it: its key, the reference the gateway answered (if any) and the very
// charge request the attempt sent (see attempt), for a gateway that replays
// it under the same key.
//
// An attempt awaiting a customer action keeps its reference on the payment
// (the attempt is still STARTED): that one is the current attempt's.
func gatewayAttempt(pay payment.Payment, a payment.Attempt) connector.Attempt {
	ref := a.GatewayReference
	if ref == "" && pay.Status == payment.StatusRequiresAction && a.Number == pay.AttemptCount {
		ref = pay.GatewayReference
	}
	return connector.Attempt{IdempotencyKey: a.IdempotencyKey, Reference: ref, StartedAt: a.StartedAt,
		Charge: chargeRequest(pay, a)}
}

// chargeRequest is what attempt a of pay sends to the gateway.
func chargeRequest(pay payment.Payment, a payment.Attempt) connector.ChargeRequest {
	return connector.ChargeRequest{IdempotencyKey: a.IdempotencyKey, PaymentID: pay.ID, Amount: pay.Amount,
		Method: pay.Method, PaymentMethodID: pay.PaymentMethodID}
}

// unconfirmedNotFound: a "not found" from a gateway that does not fence
// keys, about an attempt whose key could still act there
// (connector.NotFoundFinal), confirms nothing. It becomes an unknown
// outcome, asked about again on the inquiry schedule, so that a new
// attempt never follows a charge that may still land.
func (p *Processor) unconfirmedNotFound(a payment.Attempt, res connector.Result, gerr error) (connector.Result, error) {
	if gerr != nil || res.Status != connector.StatusNotFound ||
		connector.NotFoundFinal(connector.CapabilitiesOf(p.Gateway), a.StartedAt, p.Store.Now()) {
		return res, gerr
	}
	return connector.Result{}, &connector.Error{Class: payment.FailureUnknown, Code: "not_found_unfenced", MaybeProcessed: true,
		Err: errors.New("the gateway does not fence keys and the attempt's key may still act: not found is not proof")}
}
