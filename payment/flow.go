package payment

import "time"

// Payment flows (seed 000): one invoice settled through a plan of batches
// that depend on each other. The planner (PlanFlow) is a pure function from
// the truth in Postgres to the plan; the flow:recompute task stores a new
// plan version when the plan changed and creates the payments of every batch
// whose dependencies have settled.

// FlowStatus is a flow's status, lower case as seed 000 shows it.
type FlowStatus string

const (
	FlowPending    FlowStatus = "pending"
	FlowProcessing FlowStatus = "processing"
	FlowSettled    FlowStatus = "settled"
	FlowFailed     FlowStatus = "failed"
	FlowCanceled   FlowStatus = "canceled"
)

// FlowTypeSingleInvoice is the only flow type: settle one invoice.
const FlowTypeSingleInvoice = "single_invoice_settlement"

// Batch ids and labels of a single-invoice settlement plan.
const (
	BatchPayins  = "payins"
	BatchPayouts = "payouts"
)

// Directions of plan payments.
const (
	DirectionPayin  = "payin"
	DirectionPayout = "payout"
)

// Plan payment statuses (lower case, seed 000).
const (
	PlanPaymentPending    = "pending"
	PlanPaymentProcessing = "processing"
	PlanPaymentSettled    = "settled"
	PlanPaymentFailed     = "failed"
	PlanPaymentReturned   = "returned"
	PlanPaymentCanceled   = "canceled"
)

// Batch statuses (lower case): pending, processing, settled, failed, blocked,
// and canceled for a batch a canceled flow will not start.
const (
	BatchPending    = "pending"
	BatchProcessing = "processing"
	BatchSettled    = "settled"
	BatchFailed     = "failed"
	BatchBlocked    = "blocked"
	BatchCanceled   = "canceled"
)

// Blocked reasons: machine-readable, on the batch and on the flow.
const (
	BlockedPayinFailed              = "payin_failed"                // a payin ended FAILED or CANCELED and its payer's payin method has not changed since
	BlockedPayinReturned            = "payin_returned"              // a payin settled, then was returned, before any payout went out
	BlockedPayinReturnedAfterPayout = "payin_returned_after_payout" // a payin was returned after payouts went out: the platform is short
	BlockedPayoutFailed             = "payout_failed"               // a payout ended FAILED or RETURNED
	BlockedInvoiceVoid              = "invoice_void"                // the invoice was voided
)

// FlowParty is a payer or payee of a flow: the user, its share in minor
// units of the invoice's currency, and the method the flow would use now.
type FlowParty struct {
	UserID         string
	UserExternalID string
	Amount         int64 // the payer's share of amount_due, or the payee's amount
	// MethodID is the payer's current payin method (payment_method_id) or
	// the payee's payout account fingerprint; a failed payin is replaced by
	// a new generation only when the payer's MethodID differs from the one
	// the failed payment used.
	MethodID string
}

// FlowPayment is a payment the flow has created so far, with what the
// planner needs of it.
type FlowPayment struct {
	PaymentID  string
	Batch      string // BatchPayins or BatchPayouts
	UserID     string
	Generation int // 1 for the first payment of a user in a batch, 2 for its replacement, …
	Amount     int64
	MethodID   string // the method the payment was made with (see FlowParty.MethodID)
	Status     Status
	// Settled: the money has arrived (a card payment that SUCCEEDED; a
	// bank payment that SUCCEEDED, that is, past SENT and settled).
	Settled bool
	// ReturnedAt is when a settled payment was returned (RETURNED), or
	// refunded in full (REFUNDED).
	ReturnedAt *time.Time
	CreatedAt  time.Time
}

// FlowInput is everything the planner reads.
type FlowInput struct {
	InvoiceID string
	Currency  string
	AmountDue int64
	// PaidOutside is what the invoice had paid (or reserved) by payments
	// that are not the flow's, when the flow was created: the payins
	// collect only the rest.
	PaidOutside int64
	InvoiceVoid bool
	Payers      []FlowParty // in a deterministic order (the invoice's)
	Payees      []FlowParty
	Payments    []FlowPayment
	Canceled    bool // the flow was canceled: nothing not yet started starts
	Now         time.Time
}

// Plan is the flow's payment plan (seed 000 payment_plan) plus payd's
// accounting of it.
type Plan struct {
	Version     int // set by the store when the plan is saved
	GeneratedAt time.Time
	InvoiceID   string
	Batches     []PlanBatch
	Status      FlowStatus
	// BlockedReason says why the flow cannot proceed ("" when it can).
	BlockedReason string
	// Money, in minor units of the invoice's currency.
	Due               int64 // what the payins must collect: AmountDue − PaidOutside
	Collected         int64 // payins settled and not returned
	PaidOut           int64 // payouts settled and not returned
	PlatformRemainder int64 // AmountDue − the payees' amounts: the platform's fee
	Shortfall         int64 // money paid out that was not collected (a payin returned after payouts went out)
}

// PlanBatch is one batch of the plan.
type PlanBatch struct {
	ID            string // BatchPayins, BatchPayouts
	Label         string // "Payins", "Payouts"
	DependsOn     []string
	Payments      []PlanPayment
	Status        string // Batch*
	BlockedReason string
}

// PlanPayment is one payment of a batch. PaymentID is empty until the
// payment is created: those are what the recompute creates, once every
// batch the payment's batch depends on has settled.
type PlanPayment struct {
	Amount         int64
	Currency       string
	Direction      string // DirectionPayin, DirectionPayout
	PaymentID      string
	Status         string // PlanPayment*
	UserID         string
	UserExternalID string
	Generation     int
}

// PayinMethod is a user's default payin method for flows: a card
// (payment_method_id such as pm_card_visa, or a sandbox token) or a bank
// account to debit by ACH (ba_<account>).
type PayinMethod struct {
	Type Method `json:"payment_method_type"`
	ID   string `json:"payment_method_id"`
}

// PayoutAccount is where a flow pays a user: a bank rail and the
// beneficiary fields of seed 002, under its names, normalized.
type PayoutAccount struct {
	Method                 Method `json:"method"`
	BeneficiaryName        string `json:"beneficiary_name,omitempty"`
	BeneficiaryBankName    string `json:"beneficiary_bank_name,omitempty"`
	BeneficiaryBankCountry string `json:"beneficiary_bank_country,omitempty"`
	BeneficiarySwiftBIC    string `json:"beneficiary_swift_bic,omitempty"`
	BeneficiaryIBAN        string `json:"beneficiary_iban,omitempty"`
	BeneficiaryAccount     string `json:"beneficiary_account,omitempty"`
	BeneficiaryRouting     string `json:"beneficiary_routing,omitempty"`
}

// Beneficiary is the account's beneficiary.
func (a PayoutAccount) Beneficiary() Beneficiary {
	return Beneficiary{Name: a.BeneficiaryName, BankCountry: a.BeneficiaryBankCountry, SwiftBIC: a.BeneficiarySwiftBIC,
		IBAN: a.BeneficiaryIBAN, Account: a.BeneficiaryAccount, Routing: a.BeneficiaryRouting}
}

// Flow is a payment flow as stored.
type Flow struct {
	ID            string
	TenantID      string
	ExternalID    string
	Type          string
	InvoiceID     string
	InvoiceExtID  string
	Status        FlowStatus
	BlockedReason string
	PaidOutside   int64
	PlanVersion   int
	Plan          *Plan // the latest version; nil before the first recompute
	Fingerprint   []byte
	StepSeq       int
	CreatedAt     time.Time
	UpdatedAt     time.Time
	CanceledAt    *time.Time
	SettledAt     *time.Time
}
