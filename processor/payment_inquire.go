package processor

import (
	"context"
	"time"

	"github.com/hibiken/asynq"

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
	res, gerr := p.Gateway.Inquire(gctx, att.IdempotencyKey)
	cancel()
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
