package processor

import (
	"context"
	"time"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/jobs"
	"github.com/payd/payd/store"
)

// submit makes one attempt at the gateway (a retry; the first attempt is
// made by the create step). The attempt's intent (and a
// safety-net inquiry) is committed before the call; the call is made
// outside any transaction with the attempt's idempotency key; the outcome is
// recorded in one guarded transaction.
func (p *Processor) submit(ctx context.Context, t *asynq.Task) error {
	pl, err := jobs.ParseStep(t)
	if err != nil {
		return err
	}
	claim, err := p.Store.ClaimSubmit(ctx, pl.PaymentID, pl.Seq, p.inquireAt(), actor)
	if err != nil {
		return err
	}
	return p.attempt(ctx, claim)
}

// inquireAt is when a claimed attempt's safety-net inquiry falls due.
func (p *Processor) inquireAt() time.Time {
	return p.Store.Now().Add(p.cfg.GatewayTimeout + p.cfg.InquiryGrace)
}

// attempt calls the gateway for a claimed attempt, outside any transaction,
// and records the outcome.
func (p *Processor) attempt(ctx context.Context, claim store.Claim) error {
	pay, att := claim.Payment, claim.Attempt
	gctx, cancel := p.gatewayCtx(ctx)
	start := time.Now()
	res, gerr := p.Gateway.Charge(gctx, chargeRequest(pay, att))
	cancel()
	d := decide(pay, att, res, gerr, false, p.cfg.Policy, p.Store.Now())
	p.Metrics.AttemptOutcomes.WithLabelValues(string(pay.Method), d.outcome).Inc()
	p.Metrics.AttemptLatency.WithLabelValues(string(pay.Method), d.outcome).Observe(time.Since(start).Seconds())
	p.Log.InfoContext(ctx, "attempt", "payment_id", pay.ID, "attempt", att.Number, "outcome", d.outcome)
	return p.record(ctx, pay, d)
}
