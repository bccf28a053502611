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
