package processor

import (
	"context"
	"errors"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// create takes a recorded PENDING payment through its first gateway attempt, or,
// when no gateway is involved (OFFLINE, CREDITS), records it as succeeded.
// A seed-001 payment recorded with process_payment=false has no create step
// until POST /v1/payments/{id}/process schedules one (and sets
// process_payment); a row with a create step and process_payment=false is
// one recorded before that meaning (issue 25), under the old one: recorded
// as paid, as it was promised. Payouts decide in decidePayoutCreate: a
// scheduled payout waits for its date, an imported one walks the lifecycle
// to the status it was imported with.
func (p *Processor) create(ctx context.Context, t *asynq.Task) error {
	pl, err := jobs.ParseStep(t)
	if err != nil {
		return err
	}
	// Most payments go to a gateway: the first attempt is claimed at once,
	// with no read before it. The claim is the same guarded transaction a
	// submit makes (on the create step's sequence), so a create that runs
	// twice claims once; it claims only a payment bound for a gateway.
	claim, err := p.Store.ClaimAttempt(ctx, pl.PaymentID, payment.StepCreate, pl.Seq, p.inquireAt(), actor)
	if err == nil {
		return p.attempt(ctx, claim)
	}
	if !errors.Is(err, payment.ErrStale) {
		return err
	}
	pay, err := p.Store.PaymentHead(ctx, pl.PaymentID)
	if err != nil {
		return err
	}
	if pay.Status != payment.StatusPending || pay.NextStep != payment.StepCreate || pay.StepSeq != pl.Seq {
		return payment.ErrStale
	}
	now := p.Store.Now()
	if pay.Surface == store.SurfacePayouts {
		det, err := p.Store.PayoutDetailsOf(ctx, pay.ID)
		if err != nil {
			return err
		}
		return p.record(ctx, pay, decidePayoutCreate(pay, det, now))
	}
	if !pay.ProcessPayment || pay.Method.WithoutGateway() {
		return p.record(ctx, pay, decision{changes: []store.Change{
			{PaymentID: pay.ID, From: payment.StatusPending, To: payment.StatusProcessing, Reason: "recording without a gateway"},
			{PaymentID: pay.ID, From: payment.StatusProcessing, To: payment.StatusSucceeded,
				Reason: recordedReason(pay)},
		}})
	}
	// bound for a gateway, yet not claimed: another run claimed it just now
	return payment.ErrStale
}

// recordedReason is the audit reason of a payment recorded as paid without
// a gateway.
func recordedReason(pay payment.Payment) string {
	if !pay.ProcessPayment {
		return "recorded as paid (" + string(pay.Method) + ", process_payment=false, recorded before issue 25)"
	}
	return "recorded as paid without a gateway (" + string(pay.Method) + ")"
}
