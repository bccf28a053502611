package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/payd/payd/payment"
)

// Payouts recorded from a source system (seed 002's external_payment_id):
// the walk that takes one to the status its source reports, shared by the
// create (intake, in the create's own transaction), the sync of a later push
// (intake) and the create task of payouts recorded before imports were
// walked at once (processor).

// PayoutWalk returns the guarded changes that take a payout made elsewhere
// from its status to target (canonical), one allowed transition at a time
// (payment.PayoutPath), keeping the times the source gave (each transition
// sets its time only where none is set). A walk that ends PROCESSING or SENT
// schedules the settle step at the expected settlement (given, or the
// rail's schedule from sent_at, submitted_at or now): nothing can be asked
// about a payout payd did not send. ok is false when no walk exists.
// Seq, AnySeq and Actor are the caller's to set.
func PayoutWalk(pay payment.Payment, det payment.PayoutDetails, target payment.Status, why string, now time.Time) ([]Change, bool) {
	path, ok := payment.PayoutPath(pay.Status, target, pay.SentAt != nil, pay.SettledAt != nil)
	if !ok {
		return nil, false
	}
	settleAt := func(base *time.Time) time.Time {
		if pay.ExpectedSettlementAt != nil {
			return *pay.ExpectedSettlementAt
		}
		b := now
		if base != nil {
			b = *base
		}
		return payment.ExpectedSettlement(pay.Method, b)
	}
	out := make([]Change, 0, len(path))
	from := pay.Status
	for i, to := range path {
		c := Change{PaymentID: pay.ID, From: from, To: to, Reason: why}
		last := i == len(path)-1
		switch to {
		case payment.StatusProcessing:
			if last {
				at := settleAt(det.SubmittedAt)
				c.ExpectedSettlementAt, c.NextStep, c.NextStepAt = &at, payment.StepSettle, at
			}
		case payment.StatusSent:
			if last {
				base := pay.SentAt
				if base == nil {
					base = &now // the transition sets sent_at to now
				}
				at := settleAt(base)
				c.ExpectedSettlementAt, c.NextStep, c.NextStepAt = &at, payment.StepSettle, at
			}
		case payment.StatusSucceeded:
			settled := now
			if pay.SettledAt != nil {
				settled = *pay.SettledAt
			}
			c.SettledAt = &settled
		case payment.StatusReturned:
			c.ErrorCode, c.ErrorMessage = "returned", "returned by the receiving bank (reported by the source)"
		case payment.StatusFailed:
			c.ErrorCode, c.ErrorMessage = "failed", "payout failed (reported by the source)"
		case payment.StatusCanceled:
			c.ErrorCode, c.ErrorMessage = "canceled", "payout canceled before it was sent (reported by the source)"
		}
		out = append(out, c)
		from = to
	}
	return out, true
}

// walkPayout applies PayoutWalk to a payout in this transaction (its row
// locked), guarded on status only, and returns the last change (zero when
// nothing moved) and the step sequence after it.
func (s *Store) walkPayout(ctx context.Context, id string, target payment.Status, why, actor string) (Change, int, error) {
	pay, err := s.LockPayment(ctx, id)
	if err != nil {
		return Change{}, 0, err
	}
	det, err := s.PayoutDetailsOf(ctx, id)
	if err != nil {
		return Change{}, 0, err
	}
	changes, ok := PayoutWalk(pay, det, target, why, s.now())
	if !ok {
		return Change{}, 0, &payment.PayoutConflictError{Field: "status", Code: "payout_conflict_status",
			Message: fmt.Sprintf("the payout is %s; %s cannot follow it",
				payment.PayoutStatusName(pay.Status, pay.Method, det.ImportedStatus), payment.PayoutStatusName(target, pay.Method, det.ImportedStatus))}
	}
	var last Change
	seq := pay.StepSeq
	for _, c := range changes {
		c.AnySeq, c.Actor = true, actor
		if seq, err = s.ApplyWith(ctx, nil, c); err != nil {
			return Change{}, 0, err
		}
		last = c
	}
	return last, seq, nil
}

// PayoutSync is a later push of a payout its source already sent: what
// intake checked and merged.
type PayoutSync struct {
	TenantID, PaymentID string
	// Status is the status pushed; empty when the push names none (the
	// status stays).
	Status      payment.PayoutStatus
	Source      string
	Fingerprint []byte          // of this push: an identical push again is a replay
	Details     json.RawMessage // the recorded details with this push's fields over them
	// Times the source gave in this push. They replace what payd filled in
	// itself (a transition's now); intake refuses one that contradicts a
	// time the source gave before.
	SentAt, SettledAt, ReturnedAt, ExpectedSettlementAt *time.Time
	// Lines, when HasLines: replace (true) takes back every earlier line
	// first, false appends.
	HasLines bool
	Lines    []payment.Line
	Replace  bool
	Actor    string
}

// SyncPayout records a later push of a payout in this transaction (the
// caller holds the external id's advisory lock, InsertPayout's): its
// details and times, the walk to its status (each step a guarded change
// with its audit row, so the outbox triggers emit its events), then its
// lines under the invoices' row locks. A payout payd sends itself is taken
// over by its source only while INITIATED: the push switches it to
// recording (process_payment=false) under the row lock, so the create
// task's claim, guarded on PENDING, can no longer send it; once an attempt
// has started, its status comes from the rail and a push that names
// another is a *payment.PayoutConflictError (status). It returns the last
// change made (zero when the status stayed) and the step sequence after it.
func (s *Store) SyncPayout(ctx context.Context, ps PayoutSync) (Change, int, error) {
	var last Change
	var seq int
	err := s.InTx(ctx, func(tx *Store) error {
		pay, err := tx.LockPayment(ctx, ps.PaymentID)
		if err != nil {
			return err
		}
		det, err := tx.PayoutDetailsOf(ctx, ps.PaymentID)
		if err != nil {
			return err
		}
		imported := det.ImportedStatus
		target := pay.Status
		shown := payment.PayoutStatus(payment.PayoutStatusName(pay.Status, pay.Method, det.ImportedStatus))
		if ps.Status != "" && ps.Status.Canonical() != shown.Canonical() {
			if pay.ProcessPayment && pay.Status != payment.StatusPending {
				return &payment.PayoutConflictError{Field: "status", Code: "payout_conflict_status",
					Message: fmt.Sprintf("payd is sending this payout itself and it is %s; its status comes from the rail, not from %s",
						shown, ps.Status)}
			}
			target = ps.Status.Canonical()
		}
		if ps.Status != "" && ps.Status != payment.PayoutInitiated && (!pay.ProcessPayment || target != pay.Status) {
			imported = string(ps.Status)
		}
		var imp any
		if imported != "" {
			imp = imported
		}
		if _, err := tx.q.ExecContext(ctx, `UPDATE payments SET request_fingerprint = $2,
			process_payment = CASE WHEN $7 THEN false ELSE process_payment END,
			sent_at = COALESCE($3, sent_at), settled_at = COALESCE($4, settled_at), returned_at = COALESCE($5, returned_at),
			expected_settlement_at = COALESCE(expected_settlement_at, $6), updated_at = $8
			WHERE id = $1`, ps.PaymentID, ps.Fingerprint, ps.SentAt, ps.SettledAt, ps.ReturnedAt, ps.ExpectedSettlementAt,
			target != pay.Status, tx.now()); err != nil {
			return translate(fmt.Errorf("record push of %s: %w", ps.PaymentID, err))
		}
		if _, err := tx.q.ExecContext(ctx, `UPDATE payout_details SET details = $2, imported_status = $3, external_source = $4
			WHERE payment_id = $1`, ps.PaymentID, []byte(ps.Details), imp, ps.Source); err != nil {
			return translate(fmt.Errorf("record push details of %s: %w", ps.PaymentID, err))
		}
		seq = pay.StepSeq
		if target != pay.Status {
			why := fmt.Sprintf("synced as %s from %s", ps.Status, ps.Source)
			if last, seq, err = tx.walkPayout(ctx, ps.PaymentID, target, why, ps.Actor); err != nil {
				return err
			}
		}
		if ps.HasLines {
			return tx.ApplyLines(ctx, ps.PaymentID, ps.Lines, ps.Replace)
		}
		return nil
	})
	return last, seq, err
}
