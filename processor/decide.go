package processor

import (
	"fmt"
	"time"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// decision is what to record after a gateway answered (or did not) about an
// attempt: the attempt's outcome, the payment changes to apply in order, and
// the follow-up step. It is computed by decide, a pure function.
type decision struct {
	attempt *store.AttemptResult
	changes []store.Change
	outcome string // metrics label: succeeded, declined, sent, requires_action, unknown, not_found, …
	// lateCharge, when set, is a charge that landed for a payment the
	// changes leave as not charged: recorded and refunded in the same
	// transaction (store.RecordLateCharge).
	lateCharge *store.LateCharge
}

// decide maps a gateway answer about attempt a of payment p (PROCESSING or
// REQUIRES_ACTION) to a decision. inquiry says the answer came from an
// inquiry rather than the charge itself. The rules, in order:
//   - a charge the gateway confirms succeeded: SUCCEEDED;
//   - a bank payment accepted by the rail: SENT, settle when it is due;
//   - an answer saying not charged (decline, not found, refused before
//     processing): a new attempt if the retry policy allows, else FAILED;
//   - no usable answer: the attempt is UNKNOWN and the next step is an
//     inquiry, never a new charge; past the inquiry schedule, REQUIRES_REVIEW.
func decide(p payment.Payment, a payment.Attempt, res connector.Result, gerr error, inquiry bool,
	pol payment.RetryPolicy, now time.Time) decision {
	var d decision
	from := p.Status
	// leave REQUIRES_ACTION through PROCESSING when the outcome is known
	toProcessing := func(reason string) {
		if from == payment.StatusRequiresAction {
			d.changes = append(d.changes, store.Change{PaymentID: p.ID, From: from, To: payment.StatusProcessing,
				Reason: reason, Attempt: a.Number})
			from = payment.StatusProcessing
		}
	}
	finish := func(st payment.AttemptStatus, class payment.FailureClass, code, msg, ref string) {
		d.attempt = &store.AttemptResult{AttemptID: a.ID, Status: st, FailureClass: class, ErrorCode: code,
			ErrorMessage: msg, GatewayReference: ref, CountInquiry: inquiry}
	}
	notCharged := func(class payment.FailureClass, code, msg, ref string) {
		at, retry := pol.NextAttempt(p.ID, p.Method, class, p.AttemptCount, now)
		finish(payment.AttemptFailed, class, code, msg, ref)
		if retry {
			d.attempt.NextRetryAt = &at
			toProcessing("action completed: not charged")
			d.changes = append(d.changes, store.Change{PaymentID: p.ID, From: from, To: payment.StatusPending,
				NextStep: payment.StepSubmit, NextStepAt: at, Attempt: a.Number,
				Reason: fmt.Sprintf("attempt %d not charged (%s, %s): retry scheduled", a.Number, class, code)})
			return
		}
		d.changes = append(d.changes, store.Change{PaymentID: p.ID, From: from, To: payment.StatusFailed,
			Attempt: a.Number, ErrorCode: code, ErrorMessage: nonEmpty(msg, code),
			Reason: fmt.Sprintf("attempt %d not charged (%s, %s): no retry left", a.Number, class, code)})
	}

	if gerr != nil {
		ge := connector.AsError(gerr)
		// An inquiry that never reached the gateway says nothing about the
		// charge it asks after: only a charge request not sent is "not charged".
		// (retryUnknownAsNotCharged is false but in the I1 negative test's
		// deliberately broken build, retry_unknown_broken.go.)
		if (!ge.MaybeProcessed || retryUnknownAsNotCharged) && !inquiry {
			d.outcome = "not_sent"
			notCharged(ge.Class, ge.Code, "the gateway could not be reached ("+ge.Code+"); not charged", "")
			return d
		}
		d.outcome = "unknown"
		done := 0
		if inquiry {
			done = a.InquiryCount + 1
		}
		d.attempt = &store.AttemptResult{AttemptID: a.ID, Status: payment.AttemptUnknown, FailureClass: payment.FailureUnknown,
			ErrorCode: ge.Code, ErrorMessage: "no answer from the gateway (" + ge.Code + "); outcome unknown, inquiring", CountInquiry: inquiry}
		if from == payment.StatusRequiresAction {
			d.attempt = nil // still waiting for the customer; the gateway did not answer this poll
			if now.Before(a.StartedAt.Add(pol.ActionTimeout)) {
				d.changes = append(d.changes, store.Change{PaymentID: p.ID, From: from, To: from,
					NextStep: payment.StepInquire, NextStepAt: now.Add(pol.ActionPoll)})
				return d
			}
			d.outcome = "action_expired"
			d.changes = append(d.changes, expireAction(p, a, now))
			return d
		}
		if from == payment.StatusRequiresReview {
			// the slow schedule: the next answer resolves it, else an operator
			c := store.Change{PaymentID: p.ID, From: from, To: from}
			if at, ok := pol.NextReviewInquiry(done, now); ok {
				c.NextStep, c.NextStepAt = payment.StepInquire, at
			}
			d.changes = append(d.changes, c)
			return d
		}
		if at, ok := pol.NextInquiry(done, now); ok {
			d.changes = append(d.changes, store.Change{PaymentID: p.ID, From: from, To: from,
				NextStep: payment.StepInquire, NextStepAt: at})
			return d
		}
		toProcessing("action outcome unknown")
		review := store.Change{PaymentID: p.ID, From: from, To: payment.StatusRequiresReview,
			Attempt: a.Number, ErrorCode: "outcome_unknown", ErrorMessage: "gateway outcome unknown after inquiries",
			Reason: fmt.Sprintf("attempt %d outcome unknown after %d inquiries: in review, inquired on a slow schedule", a.Number, done)}
		if at, ok := pol.NextReviewInquiry(done, now); ok {
			review.NextStep, review.NextStepAt = payment.StepInquire, at
		}
		d.changes = append(d.changes, review)
		return d
	}
	if from == payment.StatusRequiresReview {
		return decideReview(p, a, res, pol, now)
	}

	switch res.Status {
	case connector.StatusSucceeded:
		d.outcome = "succeeded"
		finish(payment.AttemptSucceeded, "", "", "", res.Reference)
		toProcessing("customer action completed")
		reason := fmt.Sprintf("attempt %d charged", a.Number)
		if inquiry {
			reason = fmt.Sprintf("attempt %d charged (found by inquiry)", a.Number)
		}
		d.changes = append(d.changes, store.Change{PaymentID: p.ID, From: from, To: payment.StatusSucceeded,
			GatewayReference: res.Reference, Attempt: a.Number, Reason: reason})
	case connector.StatusSent:
		d.outcome = "sent"
		finish(payment.AttemptSucceeded, "", "", "", res.Reference)
		toProcessing("customer action completed")
		// the rail's own date when the gateway gives one, else the rail's
		// schedule (payment.ExpectedSettlement)
		settle := res.SettleAt
		if settle.IsZero() {
			settle = payment.ExpectedSettlement(p.Method, now)
		}
		if settle.Before(now) {
			settle = now
		}
		d.changes = append(d.changes, store.Change{PaymentID: p.ID, From: from, To: payment.StatusSent,
			GatewayReference: res.Reference, ExpectedSettlementAt: &settle, Attempt: a.Number,
			NextStep: payment.StepSettle, NextStepAt: settle,
			Reason: fmt.Sprintf("attempt %d sent to the %s rail", a.Number, p.Method)})
	case connector.StatusRequiresAction:
		d.outcome = "requires_action"
		if from == payment.StatusProcessing {
			d.changes = append(d.changes, store.Change{PaymentID: p.ID, From: from, To: payment.StatusRequiresAction,
				GatewayReference: res.Reference, ActionURL: res.ActionURL, Attempt: a.Number,
				NextStep: payment.StepInquire, NextStepAt: now.Add(pol.ActionPoll),
				Reason: fmt.Sprintf("attempt %d requires customer action", a.Number)})
			return d
		}
		if now.Before(a.StartedAt.Add(pol.ActionTimeout)) {
			d.changes = append(d.changes, store.Change{PaymentID: p.ID, From: from, To: from,
				NextStep: payment.StepInquire, NextStepAt: now.Add(pol.ActionPoll)})
			return d
		}
		// the customer did not act in time: void the action at the gateway
		// before the payment fails, so it can never complete later
		d.outcome = "action_expired"
		d.changes = append(d.changes, expireAction(p, a, now))
	case connector.StatusDeclined:
		d.outcome = "declined"
		class := res.FailureClass
		if class == "" {
			class = payment.FailureHardDecline
		}
		notCharged(class, res.Code, res.Message, res.Reference)
	case connector.StatusNotFound:
		d.outcome = "not_found"
		notCharged(payment.FailureUnknown, "not_charged", "inquiry confirmed the attempt was not charged", "")
	case connector.StatusVoided:
		d.outcome = "voided"
		notCharged(payment.FailureUnknown, "voided", "the gateway voided the attempt: not charged", res.Reference)
	default:
		// settled/returned are not answers to a charge; treat as unknown
		d.outcome = "unexpected"
		d.attempt = &store.AttemptResult{AttemptID: a.ID, Status: payment.AttemptUnknown, FailureClass: payment.FailureUnknown,
			ErrorCode: "unexpected_status", ErrorMessage: string(res.Status), CountInquiry: inquiry}
		at, _ := pol.NextInquiry(0, now)
		d.changes = append(d.changes, store.Change{PaymentID: p.ID, From: from, To: from, NextStep: payment.StepInquire, NextStepAt: at})
	}
	return d
}

// expireAction schedules the void of a customer action that was not
// completed in time; the void step then fails the payment (payment_void.go).
func expireAction(p payment.Payment, a payment.Attempt, now time.Time) store.Change {
	return store.Change{PaymentID: p.ID, From: payment.StatusRequiresAction, To: payment.StatusRequiresAction,
		NextStep: payment.StepVoid, NextStepAt: now, Attempt: a.Number, Audit: true,
		Reason: fmt.Sprintf("attempt %d: customer action not completed in time; voiding it at the gateway", a.Number)}
}

// decideReview maps a gateway answer about the attempt of a payment in
// REQUIRES_REVIEW (its slow inquiries) to a decision. A charge resolves it
// as SUCCEEDED, a confirmation that nothing was charged as FAILED (no new
// attempt follows a review); an answer that says neither (still sent, an
// action pending) waits for the next slow inquiry.
func decideReview(p payment.Payment, a payment.Attempt, res connector.Result, pol payment.RetryPolicy, now time.Time) decision {
	d := decision{outcome: "review_" + string(res.Status)}
	from := payment.StatusRequiresReview
	finish := func(st payment.AttemptStatus, class payment.FailureClass, code, msg string) {
		d.attempt = &store.AttemptResult{AttemptID: a.ID, Status: st, FailureClass: class, ErrorCode: code,
			ErrorMessage: msg, GatewayReference: res.Reference, CountInquiry: true}
	}
	switch res.Status {
	case connector.StatusSucceeded, connector.StatusSettled:
		finish(payment.AttemptSucceeded, "", "", "")
		d.changes = append(d.changes, store.Change{PaymentID: p.ID, From: from, To: payment.StatusSucceeded,
			GatewayReference: res.Reference, Attempt: a.Number,
			Reason: fmt.Sprintf("attempt %d charged (found by inquiry while in review)", a.Number)})
	case connector.StatusDeclined, connector.StatusNotFound, connector.StatusVoided, connector.StatusReturned:
		code := nonEmpty(res.Code, string(res.Status))
		finish(payment.AttemptFailed, nonEmptyClass(res.FailureClass), code, nonEmpty(res.Message, "the gateway says it was not charged"))
		d.changes = append(d.changes, store.Change{PaymentID: p.ID, From: from, To: payment.StatusFailed,
			Attempt: a.Number, ErrorCode: code, ErrorMessage: nonEmpty(res.Message, "not charged (found by inquiry while in review)"),
			Reason: fmt.Sprintf("attempt %d not charged (%s, found by inquiry while in review)", a.Number, code)})
	default:
		finish(payment.AttemptUnknown, payment.FailureUnknown, "review_"+string(res.Status),
			"the gateway's answer ("+string(res.Status)+") settles nothing yet")
		c := store.Change{PaymentID: p.ID, From: from, To: from}
		if at, ok := pol.NextReviewInquiry(a.InquiryCount+1, now); ok {
			c.NextStep, c.NextStepAt = payment.StepInquire, at
		}
		d.changes = append(d.changes, c)
	}
	return d
}

func nonEmptyClass(c payment.FailureClass) payment.FailureClass {
	if c == "" {
		return payment.FailureHardDecline
	}
	return c
}

func nonEmpty(s, fallback string) string {
	if s != "" {
		return s
	}
	return fallback
}
