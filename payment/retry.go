package payment

import (
	"hash/fnv"
	"strconv"
	"time"
)

// RetryRule says how often, and how far apart, a payment may be tried again
// after an attempt that was confirmed not to have charged.
type RetryRule struct {
	MaxAttempts int           // attempts in all, the first included
	Base        time.Duration // delay before the second attempt
	Max         time.Duration // cap on any delay
}

// RetryPolicy is data: a rule per method family and failure class, and the
// schedule of inquiries for attempts whose outcome is unknown.
type RetryPolicy struct {
	Card map[FailureClass]RetryRule
	Bank map[FailureClass]RetryRule
	// Inquiries are the delays between inquiries of an UNKNOWN attempt;
	// after the last one the payment goes to REQUIRES_REVIEW. Voids whose
	// outcome is unknown are tried again on the same schedule.
	Inquiries []time.Duration
	// ReviewInquiries are the delays between the slow inquiries of a
	// payment in REQUIRES_REVIEW (hours to days): the first gateway answer
	// resolves it. After the last one only an operator resolves it.
	ReviewInquiries []time.Duration
	// ActionTimeout bounds how long a payment waits for a customer action.
	ActionTimeout time.Duration
	// ActionPoll is how often a payment awaiting action is inquired.
	ActionPoll time.Duration
}

// DefaultRetryPolicy scales every delay by unit: production uses a second,
// tests and demos a few milliseconds. Hard declines are never retried.
func DefaultRetryPolicy(unit time.Duration) RetryPolicy {
	if unit <= 0 {
		unit = time.Second
	}
	return RetryPolicy{
		Card: map[FailureClass]RetryRule{
			FailureHardDecline: {MaxAttempts: 1},
			FailureSoftDecline: {MaxAttempts: 3, Base: 60 * unit, Max: 3600 * unit},
			FailureRateLimited: {MaxAttempts: 5, Base: 2 * unit, Max: 60 * unit},
			FailureTransient:   {MaxAttempts: 5, Base: 1 * unit, Max: 60 * unit},
			FailureUnknown:     {MaxAttempts: 5, Base: 1 * unit, Max: 60 * unit},
		},
		Bank: map[FailureClass]RetryRule{
			FailureHardDecline: {MaxAttempts: 1},
			FailureSoftDecline: {MaxAttempts: 1},
			FailureRateLimited: {MaxAttempts: 5, Base: 5 * unit, Max: 300 * unit},
			FailureTransient:   {MaxAttempts: 5, Base: 5 * unit, Max: 300 * unit},
			FailureUnknown:     {MaxAttempts: 5, Base: 5 * unit, Max: 300 * unit},
		},
		Inquiries: []time.Duration{unit, 2 * unit, 5 * unit, 15 * unit, 30 * unit, 60 * unit, 300 * unit, 900 * unit},
		// about a week in all: 1 h, 2 h, 4 h, 8 h, 12 h, then daily
		ReviewInquiries: []time.Duration{3600 * unit, 7200 * unit, 14400 * unit, 28800 * unit, 43200 * unit,
			86400 * unit, 86400 * unit, 86400 * unit, 86400 * unit, 86400 * unit},
		ActionTimeout: 900 * unit,
		ActionPoll:    2 * unit,
	}
}

// Rule returns the rule for a method and class. An unlisted class is not
// retried.
func (p RetryPolicy) Rule(m Method, c FailureClass) RetryRule {
	rules := p.Card
	if m.BankRail() {
		rules = p.Bank
	}
	if r, ok := rules[c]; ok {
		return r
	}
	return RetryRule{MaxAttempts: 1}
}

// NextAttempt decides whether a payment that has made `attempts` attempts,
// the last of which failed with class c and was confirmed not charged, may
// try again, and when. It is a pure function of its arguments: the jitter is
// derived from the payment id and attempt number, so the same inputs always
// give the same time.
func (p RetryPolicy) NextAttempt(paymentID string, m Method, c FailureClass, attempts int, now time.Time) (time.Time, bool) {
	r := p.Rule(m, c)
	if attempts >= r.MaxAttempts {
		return time.Time{}, false
	}
	return now.Add(Backoff(r, attempts, paymentID)), true
}

// Backoff is Base·2^(n-1), capped at Max, with ±20% jitter derived from key.
func Backoff(r RetryRule, n int, key string) time.Duration {
	d := r.Base
	for i := 1; i < n && d < r.Max; i++ {
		d *= 2
	}
	if r.Max > 0 && d > r.Max {
		d = r.Max
	}
	if d <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte(strconv.Itoa(n)))
	// jitter in [-20%, +20%): d * (80 + h%40) / 100, in integer arithmetic
	return d * time.Duration(80+h.Sum64()%40) / 100
}

// NextInquiry returns when to inquire again after `done` inquiries, or false
// when the schedule is exhausted and the payment needs review.
func (p RetryPolicy) NextInquiry(done int, now time.Time) (time.Time, bool) {
	if done < 0 || done >= len(p.Inquiries) {
		return time.Time{}, false
	}
	return now.Add(p.Inquiries[done]), true
}

// NextReviewInquiry returns when to inquire again about a payment in
// review after `done` inquiries in all (the regular schedule's included),
// or false when only an operator can resolve it now.
func (p RetryPolicy) NextReviewInquiry(done int, now time.Time) (time.Time, bool) {
	i := max(done-len(p.Inquiries), 0)
	if i >= len(p.ReviewInquiries) {
		return time.Time{}, false
	}
	return now.Add(p.ReviewInquiries[i]), true
}

// RetryRefusedError says why an operator may not retry a payment.
type RetryRefusedError struct{ Reason string }

func (e *RetryRefusedError) Error() string { return "retry refused: " + e.Reason }

// LastAttempt is the payment's latest attempt (false when it has none).
func (p Payment) LastAttempt() (Attempt, bool) {
	for _, a := range p.Attempts {
		if a.Number == p.AttemptCount {
			return a, true
		}
	}
	return Attempt{}, false
}

// OperatorRetry decides whether an operator may retry a FAILED payment, as
// a new payment with attempts of its own (the failed one stays FAILED:
// terminal states absorb, and its attempts' outcomes are final). nil when
// it may; ErrInvalidState when the payment is not FAILED; else a
// *RetryRefusedError. It is a pure function of the payment (with its
// attempts) and the policy. A retry is allowed only when
//   - a gateway was asked (process_payment, not OFFLINE or CREDITS),
//   - its last attempt is FAILED: confirmed not charged (an UNKNOWN or
//     SUCCEEDED attempt may have moved money; a payment that failed with
//     no attempt never reached a gateway),
//   - the policy retries that failure class for the method at all (a
//     hard decline never: the same card would be declined again),
//   - nothing else owns its replacement: a payment flow makes its own
//     replacements for failed payins, a payment session's token was for
//     one charge (the customer submits again), and a payout's
//     external_payment_id names it alone (a new payout is created through
//     the API): only seed-001 payments ("payments" surface) are retried.
//
// Retries the processor made already do not count against it: an operator
// retrying after the schedule ran out (the card was topped up, the
// gateway's outage is over) is the point.
func (p RetryPolicy) OperatorRetry(pay Payment) error {
	if pay.Status != StatusFailed {
		return ErrInvalidState
	}
	switch {
	case !pay.ProcessPayment || pay.Method.WithoutGateway():
		return &RetryRefusedError{Reason: "it was recorded without a gateway (" + string(pay.Method) + "); nothing to try again"}
	case pay.FlowID != "":
		return &RetryRefusedError{Reason: "it belongs to payment flow " + pay.FlowID + ", which replaces its failed payments itself"}
	case pay.SessionID != "":
		return &RetryRefusedError{Reason: "it was submitted through payment session " + pay.SessionID +
			", whose payment token was for one charge; the customer submits again"}
	case pay.Surface == "payouts":
		return &RetryRefusedError{Reason: "it is a payout, which its external_payment_id names alone: create a new payout through the API"}
	case pay.Surface != "payments":
		return &RetryRefusedError{Reason: "it was created through the " + pay.Surface + " surface; only payments of /v1/payments are retried"}
	}
	a, ok := pay.LastAttempt()
	switch {
	case !ok:
		return &RetryRefusedError{Reason: "it failed without an attempt at the gateway"}
	case a.Status != AttemptFailed:
		return &RetryRefusedError{Reason: "its attempt " + strconv.Itoa(a.Number) + " is " + string(a.Status) +
			", not confirmed as not charged"}
	case p.Rule(pay.Method, a.FailureClass).MaxAttempts <= 1:
		return &RetryRefusedError{Reason: "the retry policy does not retry " + string(a.FailureClass) + " failures of " +
			string(pay.Method) + " payments (attempt " + strconv.Itoa(a.Number) + ": " + a.ErrorCode + ")"}
	}
	return nil
}
