package payment

import (
	"errors"
	"strconv"
	"time"
)

// Method is how a payment moves money.
type Method string

const (
	MethodCard        Method = "CARD"
	MethodACH         Method = "ACH"
	MethodOffline     Method = "OFFLINE"
	MethodCredits     Method = "CREDITS"
	MethodWire        Method = "WIRE"
	MethodSEPA        Method = "SEPA"
	MethodSWIFT       Method = "SWIFT"
	MethodRTP         Method = "RTP"
	MethodCheck       Method = "CHECK"
	MethodVirtualCard Method = "VIRTUAL_CARD"
	MethodPayPal      Method = "PAYPAL"
	MethodOther       Method = "OTHER"
)

// WithoutGateway reports whether payments of this method are recorded
// paid without a gateway call when processed (OFFLINE, CREDITS).
func (m Method) WithoutGateway() bool { return m == MethodOffline || m == MethodCredits }

// BankRail reports whether payments of this method go SENT and settle later.
func (m Method) BankRail() bool {
	switch m {
	case MethodACH, MethodWire, MethodSEPA, MethodSWIFT, MethodRTP, MethodCheck:
		return true
	}
	return false
}

// Step names what must happen next to a payment; the sweeper re-enqueues the
// task of a step that is due. A payment with no step needs nothing more.
type Step string

const (
	StepNone    Step = ""
	StepCreate  Step = "create"
	StepSubmit  Step = "submit"
	StepInquire Step = "inquire"
	StepSettle  Step = "settle"
	// StepVoid cancels, at the gateway, the customer action a payment
	// awaits, before the payment is canceled (the merchant asked) or fails
	// (the action expired).
	StepVoid Step = "void"
)

// Payment is the canonical payment row, shared by every API surface.
type Payment struct {
	ID                   string
	TenantID             string
	Surface              string // which API created it: "payments", "payouts", …
	Amount               Money
	Method               Method
	PaymentMethodID      string
	DestinationType      string
	DestinationID        string
	InvoiceID            string
	InvoiceNumber        string
	IdempotencyKey       string
	ProcessPayment       bool
	TrackAttempts        bool
	Status               Status
	NextStep             Step
	NextStepAt           *time.Time
	StepSeq              int
	AttemptCount         int
	RefundedAmount       int64
	RefundPendingAmount  int64
	GatewayReference     string
	ErrorCode            string
	ErrorMessage         string
	ReturnCode           string
	ActionURL            string
	Metadata             map[string]string
	CreatedBy            string
	UpdatedBy            string
	CreatedAt            time.Time
	UpdatedAt            time.Time
	SucceededAt          *time.Time
	FailedAt             *time.Time
	RefundedAt           *time.Time
	CanceledAt           *time.Time
	SentAt               *time.Time
	ExpectedSettlementAt *time.Time
	SettledAt            *time.Time
	ReturnedAt           *time.Time
	ReturnWatchUntil     *time.Time
	// CancelRequestedAt is set when the merchant canceled the payment while
	// it awaited a customer action: its void step then cancels it.
	CancelRequestedAt *time.Time
	// SessionID is the payment session whose submit recorded the payment.
	SessionID string
	// FlowID is the payment flow that created the payment (a payin or
	// payout of its plan).
	FlowID string
	// Gateway is the connector the payment was bound for when it was
	// created ("sandbox", "stripe"); empty for one that goes to no gateway.
	Gateway string
	// Options are request fields recorded for the answer, never acted on.
	Options Options
	// DeletedAt is set when the merchant deleted a payment that moved no
	// money (it is CANCELED, and the API answers 404 for it).
	DeletedAt *time.Time
	Attempts  []Attempt
}

// Options are the vendor's request fields of a seed-001 payment that payd
// records and answers with but does not act on (docs/surfaces.md).
type Options struct {
	SuccessURL             string `json:"success_url,omitempty"`
	CancelURL              string `json:"cancel_url,omitempty"`
	SaveCardAndMakeDefault bool   `json:"save_card_and_make_default,omitempty"`
}

// Unprocessed reports a payment recorded with process_payment=false and not
// processed since: PENDING, with no step to run (nothing moves money until
// POST /v1/payments/{id}/process).
func (p Payment) Unprocessed() bool {
	return p.Status == StatusPending && !p.ProcessPayment && p.NextStep == StepNone && p.AttemptCount == 0
}

// AttemptStatus is the state of one try at the gateway.
type AttemptStatus string

const (
	AttemptStarted   AttemptStatus = "STARTED"
	AttemptSucceeded AttemptStatus = "SUCCEEDED"
	AttemptFailed    AttemptStatus = "FAILED"
	AttemptUnknown   AttemptStatus = "UNKNOWN"
)

// FailureClass says why an attempt did not succeed, and so whether a new
// attempt may follow (see RetryPolicy).
type FailureClass string

const (
	FailureHardDecline FailureClass = "hard_decline"
	FailureSoftDecline FailureClass = "soft_decline"
	FailureRateLimited FailureClass = "rate_limited"
	FailureTransient   FailureClass = "transient"
	FailureUnknown     FailureClass = "unknown"
)

// Attempt is one try at the gateway. Its idempotency key is recorded before
// the gateway is called.
type Attempt struct {
	ID               string
	PaymentID        string
	TenantID         string
	Number           int
	Status           AttemptStatus
	IdempotencyKey   string
	FailureClass     FailureClass
	ErrorCode        string
	ErrorMessage     string
	GatewayReference string
	InquiryCount     int
	NextRetryAt      *time.Time
	StartedAt        time.Time
	FinishedAt       *time.Time
	CreatedBy        string
	UpdatedAt        time.Time
}

// AttemptKey is the gateway idempotency key of attempt n of a payment.
func AttemptKey(paymentID string, n int) string {
	return paymentID + ":" + strconv.Itoa(n)
}

// Event is one audit row: a transition with its reason.
type Event struct {
	ID            int64
	PaymentID     string
	TenantID      string
	From          Status // empty for the creation event
	To            Status
	Reason        string
	AttemptNumber int
	Actor         string
	CreatedAt     time.Time
}

// RefundStatus is the state of a refund.
type RefundStatus string

const (
	RefundPending   RefundStatus = "PENDING"
	RefundSucceeded RefundStatus = "SUCCEEDED"
	RefundFailed    RefundStatus = "FAILED"
)

// Refund gives back part or all of a captured payment.
type Refund struct {
	ID               string
	PaymentID        string
	TenantID         string
	Amount           int64
	Currency         string
	Reason           string
	Status           RefundStatus
	GatewayReference string
	ErrorMessage     string
	// ChargeReference is the charge the refund gives back; empty for the
	// payment's own (its GatewayReference). A charge that landed after
	// the payment was canceled or failed is refunded by reference.
	ChargeReference string
	StepSeq         int
	CreatedAt       time.Time
	FinishedAt      *time.Time
}

// RefundReasonChargeAfterCancel is the reason of the refund payd starts by
// itself for a charge that landed for a payment it holds as not charged
// (canceled or failed): a 3-D Secure challenge completed after the cancel,
// a charge found by an inquiry, a notification or reconciliation.
const RefundReasonChargeAfterCancel = "charge_after_cancel"

// Tenant owns API keys and every object.
type Tenant struct {
	ID   string
	Name string
}

// ID prefixes, one per object type.
const (
	PrefixPayment = "pay_"
	PrefixAttempt = "att_"
	PrefixRefund  = "re_"
	PrefixTenant  = "ten_"
	PrefixKey     = "key_"
	PrefixInvoice = "inv_"
	PrefixSession = "ps_"
	PrefixUser    = "usr_"
	PrefixLine    = "app_"
	PrefixFlow    = "pf_"
)

// Sentinel errors; store and gateway adapters translate into these.
var (
	ErrNotFound       = errors.New("not found")
	ErrConflict       = errors.New("conflict")
	ErrStale          = errors.New("stale: the row is no longer in the observed state")
	ErrInvalidState   = errors.New("invalid state for this operation")
	ErrRefundTooLarge = errors.New("refund exceeds the refundable amount")
	// ErrInvoiceOverApplied: applying the amount would take an invoice past
	// its amount due.
	ErrInvoiceOverApplied = errors.New("invoice would be over-applied")
	// ErrLinesExceedAmount: the lines apply more than the payment's amount.
	ErrLinesExceedAmount = errors.New("applied amounts exceed the payment amount")
	// ErrBusinessKeyTaken: the request's business key (a payment's
	// idempotency_key) already names a payment of the tenant.
	ErrBusinessKeyTaken = errors.New("business key already names a payment")
)
