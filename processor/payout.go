package processor

import (
	"fmt"
	"time"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// Payouts (seed 002) run through the same create, submit and settle tasks as
// every payment; this file holds the decisions that only payouts need, as
// pure functions of (payout, now).
//
// A payout payd sends itself (status INITIATED on create) is submitted to
// the gateway at once. One with a later scheduled_at waits in INITIATED
// (and may be canceled) with its create step due at that date. One on a
// method that is not a bank rail (CARD, VIRTUAL_CARD, PAYPAL, OTHER) has no
// connector to go through: it is recorded as paid (at its date).
//
// A payout imported with another status was made elsewhere: payd never calls
// the gateway for it (process_payment=false) and walks the lifecycle to the
// status it was given, one audited transition at a time, keeping the times it
// was given (each transition sets its time only where none is set):
//
//	PROCESSING  PENDING→PROCESSING, then settles at expected_settlement_at
//	SENT        PENDING→PROCESSING→SENT, then settles at expected_settlement_at
//	SETTLED     PENDING→PROCESSING[→SENT]→SUCCEEDED
//	PAID        the same; shown as PAID
//	RETURNED    PENDING→PROCESSING[→SENT][→SUCCEEDED]→RETURNED
//	FAILED      PENDING→PROCESSING[→SENT]→FAILED
//	CANCELED    PENDING→CANCELED
//
// [→SENT] is taken when sent_at was given; without it no time of sending is
// known and none is invented. An imported RETURNED passes through SUCCEEDED
// when it was settled, or when nothing says it was sent.
//
// An imported SENT or PROCESSING payout has no rail reference: nothing can
// be asked about it, so the sandbox is never polled. It is taken as settled
// at its expected settlement (given, or the rail's schedule from sent_at,
// submitted_at or the import), by decideImportedSettlement. A merchant who
// learns otherwise records the outcome with a new import.
func decidePayoutCreate(pay payment.Payment, det payment.PayoutDetails, now time.Time) decision {
	var d decision
	imported := payment.Status("")
	if det.ImportedStatus != "" {
		imported = importedStatus(det.ImportedStatus)
	}
	if imported == "" {
		if det.ScheduledAt != nil && det.ScheduledAt.After(now) {
			// wait in INITIATED (cancelable) until the date, then decide
			d.outcome = "scheduled"
			d.changes = []store.Change{{PaymentID: pay.ID, From: payment.StatusPending, To: payment.StatusPending,
				NextStep: payment.StepCreate, NextStepAt: *det.ScheduledAt}}
			return d
		}
		if !pay.ProcessPayment {
			d.outcome = "recorded"
			d.changes = []store.Change{
				{PaymentID: pay.ID, From: payment.StatusPending, To: payment.StatusProcessing, Reason: "recording without a gateway"},
				{PaymentID: pay.ID, From: payment.StatusProcessing, To: payment.StatusSucceeded,
					Reason: "recorded as paid (" + string(pay.Method) + " payouts have no connector)"},
			}
			return d
		}
		d.outcome = "submit"
		d.changes = []store.Change{{PaymentID: pay.ID, From: payment.StatusPending, To: payment.StatusPending,
			NextStep: payment.StepSubmit, NextStepAt: now}}
		return d
	}
	// Recorded before imports were walked in the create's own transaction
	// (InsertPayout does that now): the same walk, here.
	d.outcome = "imported"
	why := fmt.Sprintf("imported as %s from %s", det.ImportedStatus, det.ExternalSource)
	changes, ok := store.PayoutWalk(pay, det, imported, why, now)
	if !ok {
		d.outcome = "imported_unreachable"
		d.changes = []store.Change{{PaymentID: pay.ID, From: pay.Status, To: pay.Status}}
		return d
	}
	d.changes = changes
	return d
}

// importedStatus maps a seed-002 status given on create to the canonical
// status the walk ends in; INITIATED (not an import) is "".
func importedStatus(s string) payment.Status {
	if st := payment.PayoutStatus(s); st != payment.PayoutInitiated {
		return st.Canonical()
	}
	return ""
}

// decideImportedSettlement settles an imported PROCESSING or SENT payout at
// its expected settlement: there is no rail reference to ask, so reaching
// the date is taken as settlement. Nothing is watched afterwards.
func decideImportedSettlement(pay payment.Payment, now time.Time) decision {
	d := decision{outcome: "imported_settled"}
	if pay.Status == payment.StatusSucceeded {
		d.changes = []store.Change{{PaymentID: pay.ID, From: pay.Status, To: pay.Status}}
		return d
	}
	d.changes = []store.Change{{PaymentID: pay.ID, From: pay.Status, To: payment.StatusSucceeded, SettledAt: &now,
		Reason: "imported payout reached its expected settlement; no rail reference to confirm with, recorded as settled"}}
	return d
}
