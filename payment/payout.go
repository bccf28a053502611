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
