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

// settle checks a bank payment with its rail: a SENT payment settles (or is
// returned); a settled one is watched for returns until its return window
// closes.
func (p *Processor) settle(ctx context.Context, t *asynq.Task) error {
	pay, err := p.stepPayment(ctx, t, payment.StepSettle, payment.StatusSent, payment.StatusSucceeded, payment.StatusProcessing)
	if err != nil {
		return err
	}
	// PROCESSING only for a payout imported as paid: made elsewhere, no
	// rail reference to ask about
	imported := !pay.ProcessPayment && pay.GatewayReference == ""
	if pay.Status == payment.StatusProcessing && !imported {
		return payment.ErrStale
	}
	if imported {
		// made elsewhere: there is no rail reference to ask about
		return p.record(ctx, pay, decideImportedSettlement(pay, p.Store.Now()))
	}
	gctx, cancel := p.gatewayCtx(ctx)
	res, err := p.Gateway.Settlement(gctx, pay.GatewayReference)
	cancel()
	if err != nil {
		return fmt.Errorf("settlement of %s: %w", pay.ID, err)
	}
	now := p.Store.Now()
	return p.record(ctx, pay, decideSettlement(pay, res, now, p.cfg.SettlePoll, p.cfg.ReturnWindow))
}

// decideSettlement is the pure part of settle.
func decideSettlement(pay payment.Payment, res connector.Result, now time.Time, poll, window time.Duration) decision {
	same := func(at time.Time, step payment.Step) store.Change {
		return store.Change{PaymentID: pay.ID, From: pay.Status, To: pay.Status, NextStep: step, NextStepAt: at}
	}
	var d decision
	d.outcome = string(res.Status)
	switch res.Status {
	case connector.StatusSettled:
		if pay.Status == payment.StatusSent {
			settled := orNow(res.SettledAt, now)
			until := settled.Add(window)
			d.changes = append(d.changes, store.Change{PaymentID: pay.ID, From: payment.StatusSent, To: payment.StatusSucceeded,
				SettledAt: &settled, ReturnWatchUntil: &until, NextStep: payment.StepSettle, NextStepAt: now.Add(poll),
				Attempt: pay.AttemptCount, Reason: "settled on the " + string(pay.Method) + " rail"})
			return d
		}
		if pay.ReturnWatchUntil != nil && now.After(*pay.ReturnWatchUntil) {
			d.changes = append(d.changes, same(time.Time{}, payment.StepNone))
			return d
		}
		d.changes = append(d.changes, same(now.Add(poll), payment.StepSettle))
	case connector.StatusReturned:
		why := "returned by the receiving bank with " + res.Code + ": " + payment.ReturnReason(res.Code)
		var settled *time.Time
		from := pay.Status
		if !res.SettledAt.IsZero() {
			s := res.SettledAt
			settled = &s
			if from == payment.StatusSent {
				// it settled before it was returned, though payd learns of
				// both at once (its check came after the return): the
				// settlement is recorded first, so the invoice and the
				// audit trail show what the rail did
				d.changes = append(d.changes, store.Change{PaymentID: pay.ID, From: payment.StatusSent,
					To: payment.StatusSucceeded, SettledAt: settled, Attempt: pay.AttemptCount,
					Reason: "settled on the " + string(pay.Method) + " rail"})
				from = payment.StatusSucceeded
			}
		}
		d.changes = append(d.changes, store.Change{PaymentID: pay.ID, From: from, To: payment.StatusReturned,
			SettledAt: settled, ReturnCode: res.Code, ErrorCode: "returned_" + res.Code,
			ErrorMessage: why, Attempt: pay.AttemptCount, Reason: why})
	default: // still sent: look again when it is due
		at := now.Add(poll)
		switch {
		case res.SettleAt.After(now) && res.SettleAt.Before(at):
			at = res.SettleAt
		case !res.SettleAt.IsZero() && !res.SettleAt.After(now):
			// the rail's settlement time has passed on payd's clock but it
			// says not yet (the two clocks differ a little): look again
			// shortly, not a whole poll later
			at = now.Add(min(poll, settleRecheck))
		}
		d.changes = append(d.changes, same(at, payment.StepSettle))
	}
	return d
}

// settleRecheck is how soon a bank payment is checked again when the
// rail's announced settlement time has passed but it is still pending.
const settleRecheck = time.Second

func orNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t
}
