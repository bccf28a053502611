package payment

import (
	"encoding/json"
	"time"
)

// Payouts (seed 002) are payments of surface "payouts": the same row, state
// machine and jobs, plus the details and lines the seed adds.

// Payout is a payout with everything its API object shows.
type Payout struct {
	Payment Payment
	Details PayoutDetails
	Lines   []Line
}

// PayoutDetails is what a payout adds to its payment.
type PayoutDetails struct {
	PaymentID         string
	TenantID          string
	ExternalPaymentID string
	ExternalSource    string
	// ImportedStatus is the seed-002 status given on create when the payout
	// was made elsewhere and only recorded here; empty for a payout payd
	// sends itself.
	ImportedStatus     string
	AccountFingerprint string
	// Details holds every other seed field as intake normalized it, under
	// the seed's names (JSON object).
	Details json.RawMessage
	// ScheduledAt and SubmittedAt are read from Details for the workers.
	ScheduledAt *time.Time
	SubmittedAt *time.Time
}

// PayoutExistsError: the tenant already has a payout with this
// external_payment_id; it is an ErrConflict. Fingerprint is the request that
// created it.
type PayoutExistsError struct {
	PaymentID   string
	Fingerprint []byte
}

func (e *PayoutExistsError) Error() string {
	return "payout " + e.PaymentID + " has this external_payment_id"
}
func (e *PayoutExistsError) Unwrap() error { return ErrConflict }

// PayoutStatus is a payout's status in seed 002's words: what a payout
// shows, and the status a payout made elsewhere is recorded with on create.
type PayoutStatus string

const (
	PayoutInitiated  PayoutStatus = "INITIATED"
	PayoutProcessing PayoutStatus = "PROCESSING"
	PayoutSent       PayoutStatus = "SENT"
	PayoutSettled    PayoutStatus = "SETTLED"
	PayoutReturned   PayoutStatus = "RETURNED"
	PayoutFailed     PayoutStatus = "FAILED"
	PayoutCanceled   PayoutStatus = "CANCELED"
	PayoutPaid       PayoutStatus = "PAID"
)

// PayoutTime is a lifecycle time a payout may be created with, named by its
// field.
type PayoutTime string

const (
	PayoutScheduledAt          PayoutTime = "scheduled_at"
	PayoutSubmittedAt          PayoutTime = "submitted_at"
	PayoutSentAt               PayoutTime = "sent_at"
	PayoutExpectedSettlementAt PayoutTime = "expected_settlement_at"
	PayoutSettledAt            PayoutTime = "settled_at"
	PayoutReturnedAt           PayoutTime = "returned_at"
	PayoutCheckMailedAt        PayoutTime = "check_mailed_at"
	PayoutCheckClearedAt       PayoutTime = "check_cleared_at"
)

// payoutTimesKnown lists, per status given on create, the lifecycle times
// that can be known at that point: a payout that is only SENT has no
// settled_at.
var payoutTimesKnown = func() map[PayoutStatus]map[PayoutTime]bool {
	set := func(times ...PayoutTime) map[PayoutTime]bool {
		m := map[PayoutTime]bool{}
		for _, t := range times {
			m[t] = true
		}
		return m
	}
	sent := []PayoutTime{PayoutScheduledAt, PayoutSubmittedAt, PayoutExpectedSettlementAt, PayoutSentAt, PayoutCheckMailedAt}
	settled := append(append([]PayoutTime(nil), sent...), PayoutSettledAt, PayoutCheckClearedAt)
	return map[PayoutStatus]map[PayoutTime]bool{
		PayoutInitiated:  set(PayoutScheduledAt),
		PayoutProcessing: set(PayoutScheduledAt, PayoutSubmittedAt, PayoutExpectedSettlementAt),
		PayoutSent:       set(sent...),
		PayoutSettled:    set(settled...),
		PayoutPaid:       set(settled...),
		PayoutReturned:   set(append(settled, PayoutReturnedAt)...),
		PayoutFailed:     set(sent...),
		PayoutCanceled:   set(PayoutScheduledAt, PayoutSubmittedAt),
	}
}()

// PayoutClockSkew is how far a time that records the past may be ahead of
// our clock.
const PayoutClockSkew = 5 * time.Minute

// Known reports whether a payout can be created with status s.
func (s PayoutStatus) Known() bool { return payoutTimesKnown[s] != nil }

// Imported reports whether a payout created with status s was made
// elsewhere and is only recorded: any status but INITIATED.
func (s PayoutStatus) Imported() bool { return s != PayoutInitiated }

// CheckTime says why a payout created with status s at now cannot carry t
// as its time k: "not_allowed_for_status" (s cannot know it yet),
// "in_future" (k records what already happened), "too_far" (scheduled more
// than a year ahead); "" when it can. An unknown status allows every time.
func (s PayoutStatus) CheckTime(k PayoutTime, t, now time.Time) string {
	switch known := payoutTimesKnown[s]; {
	case known != nil && !known[k]:
		return "not_allowed_for_status"
	case k.past() && t.After(now.Add(PayoutClockSkew)):
		return "in_future"
	case k == PayoutScheduledAt && t.After(now.AddDate(1, 0, 0)):
		return "too_far"
	}
	return ""
}

// past reports whether k records what already happened, so it may not lie
// in the future.
func (k PayoutTime) past() bool {
	switch k {
	case PayoutSubmittedAt, PayoutSentAt, PayoutSettledAt, PayoutReturnedAt, PayoutCheckMailedAt, PayoutCheckClearedAt:
		return true
	}
	return false
}

// payoutTimeOrder lists the times that may not precede others, in the
// order they are checked.
var payoutTimeOrder = []struct{ later, earlier PayoutTime }{
	{PayoutSentAt, PayoutSubmittedAt},
	{PayoutExpectedSettlementAt, PayoutSentAt},
	{PayoutSettledAt, PayoutSentAt},
	{PayoutReturnedAt, PayoutSettledAt},
	{PayoutReturnedAt, PayoutSentAt},
	{PayoutCheckClearedAt, PayoutCheckMailedAt},
}

// PayoutTimesOutOfOrder returns, for each of a payout's times that precedes
// a time it must follow, the first such earlier time.
func PayoutTimesOutOfOrder(at map[PayoutTime]time.Time) map[PayoutTime]PayoutTime {
	out := map[PayoutTime]PayoutTime{}
	for _, o := range payoutTimeOrder {
		later, ok1 := at[o.later]
		earlier, ok2 := at[o.earlier]
		if _, done := out[o.later]; !done && ok1 && ok2 && later.Before(earlier) {
			out[o.later] = o.earlier
		}
	}
	return out
}

// AllowsStopPayment reports whether a check payout created with status s
// may carry a stop payment: a stopped check is never paid, so only an
// outcome that paid nothing can (or an unknown status, refused anyway).
func (s PayoutStatus) AllowsStopPayment() bool {
	return s == PayoutCanceled || s == PayoutFailed || s == PayoutReturned || !s.Known()
}
