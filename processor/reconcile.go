package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// reconcileSlice bounds the part of a window one pass holds in memory (the
// keys of its charges, for the check in the other direction).
const reconcileSlice = time.Hour

// reconcileMaxWindow bounds how far back a periodic run reaches when the
// last one is long gone (the scheduler was down).
const reconcileMaxWindow = 7 * 24 * time.Hour

// reconcileTask is the reconcile task: the scheduler's (a zero window: from
// where the last run ended to a grace before now) or an operator's.
func (p *Processor) reconcileTask(ctx context.Context, t *asynq.Task) error {
	pl, err := jobs.ParseReconcile(t)
	if err != nil {
		return err
	}
	from, to := pl.From, pl.To
	if to.IsZero() {
		from, to, err = p.ReconcileWindow(ctx)
		if err != nil {
			return err
		}
	}
	if !to.After(from) {
		return nil
	}
	_, err = p.Reconcile(ctx, from, to, "scheduler")
	return err
}

// ReconcileWindow is the periodic run's window: from where the last run of
// this gateway ended, less an overlap (a day back for the first run, a
// week at most), to a grace before now.
func (p *Processor) ReconcileWindow(ctx context.Context) (time.Time, time.Time, error) {
	now := p.Store.Now()
	to := now.Add(-p.cfg.ReconcileGrace)
	last, ok, err := p.Store.LastReconciled(ctx, p.cfg.GatewayName)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	from := to.Add(-24 * time.Hour)
	if ok {
		from = last.Add(-p.cfg.ReconcileOverlap)
	}
	if from.Before(to.Add(-reconcileMaxWindow)) {
		from = to.Add(-reconcileMaxWindow)
	}
	return from, to, nil
}

// Reconcile compares the gateway's ledger over [from, to) with payd's
// attempts and refunds, in both directions, and records every difference as
// a finding (one per gateway, kind and reference, however often it is
// seen). It acts where that is safe:
//   - a charge for a payment payd holds as not charged (canceled, failed) is
//     recorded and refunded (once per charge);
//   - a charge for a payment in review resolves it as succeeded.
//
// Everything else (a charge no attempt has, an extra charge of a payment
// that succeeded with another attempt, mismatched amounts, refunds payd did
// not ask for, a charge payd records that the gateway lacks) is left open
// for an operator. Charges of payments still in flight are left to the
// engine, which asks the gateway itself.
func (p *Processor) Reconcile(ctx context.Context, from, to time.Time, actorName string) (store.ReconcileReport, error) {
	rep := store.ReconcileReport{}
	run, err := p.Store.StartReconcileRun(ctx, p.cfg.GatewayName, from, to, actorName)
	if err != nil {
		p.Metrics.ReconciliationRuns.WithLabelValues("error").Inc()
		return rep, err
	}
	rep.Run = run
	for lo := run.From; lo.Before(run.To); lo = lo.Add(reconcileSlice) {
		hi := minTime(lo.Add(reconcileSlice), run.To)
		if err := p.reconcileSlice(ctx, lo, hi, &rep); err != nil {
			p.Metrics.ReconciliationRuns.WithLabelValues("error").Inc()
			return rep, fmt.Errorf("reconcile %s..%s: %w", lo.Format(time.RFC3339), hi.Format(time.RFC3339), err)
		}
	}
	if err := p.Store.FinishReconcileRun(ctx, run.ID, rep.Charges, rep.Refunds, len(rep.Findings)); err != nil {
		p.Metrics.ReconciliationRuns.WithLabelValues("error").Inc()
		return rep, err
	}
	p.Metrics.ReconciliationRuns.WithLabelValues("ok").Inc()
	p.Log.InfoContext(ctx, "reconciled", "gateway", p.cfg.GatewayName, "from", run.From, "to", run.To,
		"charges", rep.Charges, "refunds", rep.Refunds, "findings", len(rep.Findings), "new_findings", rep.New)
	return rep, nil
}

func (p *Processor) reconcileSlice(ctx context.Context, from, to time.Time, rep *store.ReconcileReport) error {
	charged := map[string]bool{} // keys the gateway charged in the slice
	q := connector.ListQuery{From: from, To: to, Limit: connector.MaxListLimit}
	for {
		gctx, cancel := p.gatewayCtx(ctx)
		page, err := p.Gateway.List(gctx, q)
		cancel()
		if err != nil {
			return err
		}
		var charges, refunds []connector.LedgerEntry
		for _, e := range page.Entries {
			switch e.Kind {
			case connector.EntryCharge:
				charges = append(charges, e)
				charged[e.IdempotencyKey] = true
			case connector.EntryRefund:
				refunds = append(refunds, e)
			}
		}
		if err := p.reconcileCharges(ctx, charges, rep); err != nil {
			return err
		}
		if err := p.reconcileRefunds(ctx, refunds, rep); err != nil {
			return err
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	// the other direction: attempts payd records as charged that the
	// gateway has no charge for
	const batch = 1000
	for after := from; ; {
		atts, err := p.Store.SucceededAttempts(ctx, after, to, batch)
		if err != nil {
			return err
		}
		for _, a := range atts {
			if !charged[a.Attempt.IdempotencyKey] {
				p.find(ctx, rep, store.Finding{Kind: store.FindingAttemptWithoutCharge, Reference: a.Attempt.IdempotencyKey,
					PaymentID: a.Attempt.PaymentID, TenantID: a.TenantID, Amount: a.Amount.Minor, Currency: a.Amount.Currency,
					Detail: fmt.Sprintf("attempt %d is recorded as charged (%s) but the gateway lists no charge for its key",
						a.Attempt.Number, a.Attempt.GatewayReference)})
			}
		}
		if len(atts) < batch {
			break
		}
		// attempts that started at the same instant as the last one are
		// read again: harmless (findings are upserts)
		after = atts[len(atts)-1].Attempt.StartedAt
		if !after.After(from) {
			break
		}
	}
	return nil
}

func (p *Processor) reconcileCharges(ctx context.Context, charges []connector.LedgerEntry, rep *store.ReconcileReport) error {
	if len(charges) == 0 {
		return nil
	}
	keys := make([]string, len(charges))
	for i, e := range charges {
		keys[i] = e.IdempotencyKey
	}
	atts, err := p.Store.AttemptsByKey(ctx, keys)
	if err != nil {
		return err
	}
	for _, e := range charges {
		rep.Charges++
		if err := p.reconcileCharge(ctx, e, atts, rep); err != nil {
			return err
		}
	}
	return nil
}

func (p *Processor) reconcileCharge(ctx context.Context, e connector.LedgerEntry, atts map[string]store.ChargedAttempt, rep *store.ReconcileReport) error {
	f := store.Finding{Reference: e.Reference, PaymentID: e.PaymentID, Amount: e.Amount.Minor, Currency: e.Amount.Currency}
	ca, ok := atts[e.IdempotencyKey]
	if !ok {
		f.Kind, f.Detail = store.FindingUnknownCharge, fmt.Sprintf("the gateway charged key %q, which no attempt of payd has", e.IdempotencyKey)
		p.find(ctx, rep, f)
		return nil
	}
	f.PaymentID, f.TenantID = ca.Attempt.PaymentID, ca.TenantID
	if e.Amount != ca.Amount {
		f.Kind = store.FindingAmountMismatch
		f.Detail = fmt.Sprintf("the gateway charged %d %s under attempt %d, the payment is %d %s",
			e.Amount.Minor, e.Amount.Currency, ca.Attempt.Number, ca.Amount.Minor, ca.Amount.Currency)
		p.find(ctx, rep, f)
		return nil
	}
	if e.Status != connector.StatusSucceeded && e.Status != connector.StatusSettled {
		// a bank payment still on the rail, or returned: no money kept
		return nil
	}
	closed := ca.PaymentStatus == payment.StatusCanceled || ca.PaymentStatus == payment.StatusFailed
	switch {
	case ca.Attempt.Status == payment.AttemptSucceeded && !closed:
		return nil // agreed
	case closed:
		// a charge for a payment payd holds as not charged: refund it (or
		// find the refund started before)
		lc := store.LateCharge{PaymentID: ca.Attempt.PaymentID, AttemptKey: e.IdempotencyKey, Reference: e.Reference,
			Amount: e.Amount, Source: "reconciliation", Actor: "reconcile"}
		r, fresh, err := p.Store.RecordLateCharge(ctx, lc)
		if errors.Is(err, store.ErrChargeMismatch) {
			f.Kind, f.Detail = store.FindingAmountMismatch, err.Error()
			p.find(ctx, rep, f)
			return nil
		}
		if err != nil {
			return err
		}
		if fresh {
			p.startLateRefund(ctx, "reconciliation", r)
		}
		f.Kind = store.FindingChargeAfterClose
		f.Detail = fmt.Sprintf("attempt %d was charged after the payment was %s; refund %s (%s)",
			ca.Attempt.Number, ca.PaymentStatus, r.ID, r.Status)
		if r.Status == payment.RefundFailed {
			f.Detail = fmt.Sprintf("attempt %d was charged after the payment was %s and its refund %s failed (%s): the gateway still holds it",
				ca.Attempt.Number, ca.PaymentStatus, r.ID, r.ErrorMessage)
		} else {
			f.Action, f.ActionRef = "refund", r.ID
		}
		p.find(ctx, rep, f)
	case ca.PaymentStatus == payment.StatusRequiresReview && ca.Attempt.Number == ca.AttemptCount:
		reason := fmt.Sprintf("charge %s of attempt %d found in the gateway's ledger by reconciliation", e.Reference, ca.Attempt.Number)
		err := p.Store.ResolveReview(ctx, store.Resolution{PaymentID: ca.Attempt.PaymentID, To: payment.StatusSucceeded,
			Attempt: ca.Attempt, GatewayReference: e.Reference, Actor: "reconcile", Reason: reason})
		if errors.Is(err, payment.ErrStale) {
			return nil // resolved meanwhile
		}
		if err != nil {
			return err
		}
		p.Metrics.ReviewResolutions.WithLabelValues(string(payment.StatusSucceeded), "reconciliation").Inc()
		f.Kind, f.Detail, f.Action, f.ActionRef = store.FindingChargeForReview, reason, "review_resolved", ca.Attempt.PaymentID
		p.find(ctx, rep, f)
	case ca.Attempt.Number != ca.AttemptCount || ca.PaymentStatus.Final():
		// another attempt of the payment decided it, yet this one charged
		f.Kind = store.FindingExtraCharge
		f.Detail = fmt.Sprintf("the gateway charged attempt %d (%s in payd) of a payment that is %s with attempt %d",
			ca.Attempt.Number, ca.Attempt.Status, ca.PaymentStatus, ca.AttemptCount)
		p.find(ctx, rep, f)
	}
	// otherwise the payment is in flight: the engine asks the gateway itself
	return nil
}

func (p *Processor) reconcileRefunds(ctx context.Context, refunds []connector.LedgerEntry, rep *store.ReconcileReport) error {
	if len(refunds) == 0 {
		return nil
	}
	ids := make([]string, len(refunds))
	for i, e := range refunds {
		ids[i] = e.IdempotencyKey
	}
	ours, err := p.Store.RefundsByID(ctx, ids)
	if err != nil {
		return err
	}
	for _, e := range refunds {
		rep.Refunds++
		f := store.Finding{Reference: e.Reference, PaymentID: e.PaymentID, Amount: e.Amount.Minor, Currency: e.Amount.Currency}
		r, ok := ours[e.IdempotencyKey]
		switch {
		case !ok:
			f.Kind = store.FindingUnknownRefund
			f.Detail = fmt.Sprintf("the gateway refunded %d %s of charge %s under key %q, which payd never asked for",
				e.Amount.Minor, e.Amount.Currency, e.ChargeReference, e.IdempotencyKey)
		case r.Amount != e.Amount.Minor || r.Currency != e.Amount.Currency:
			f.Kind, f.PaymentID, f.TenantID = store.FindingRefundMismatch, r.PaymentID, r.TenantID
			f.Detail = fmt.Sprintf("refund %s: the gateway refunded %d %s, payd asked for %d %s",
				r.ID, e.Amount.Minor, e.Amount.Currency, r.Amount, r.Currency)
		case r.Status == payment.RefundFailed:
			f.Kind, f.PaymentID, f.TenantID = store.FindingRefundUnrecorded, r.PaymentID, r.TenantID
			f.Detail = fmt.Sprintf("refund %s is FAILED in payd but the gateway made it", r.ID)
		default:
			continue // agreed, or still being recorded
		}
		p.find(ctx, rep, f)
	}
	return nil
}

// find records a finding, counts a new one, and adds it to the report.
func (p *Processor) find(ctx context.Context, rep *store.ReconcileReport, f store.Finding) {
	f.Gateway = p.cfg.GatewayName
	stored, fresh, err := p.Store.RecordFinding(ctx, f)
	if err != nil {
		// the next run finds it again
		p.Log.ErrorContext(ctx, "record reconciliation finding", "kind", f.Kind, "reference", f.Reference, "err", err)
		return
	}
	if fresh {
		rep.New++
		p.Metrics.ReconciliationFindings.WithLabelValues(f.Kind).Inc()
		p.Log.WarnContext(ctx, "reconciliation finding", "kind", f.Kind, "reference", f.Reference,
			"payment_id", f.PaymentID, "action", f.Action)
	}
	rep.Findings = append(rep.Findings, stored)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
