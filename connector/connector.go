// Package connector owns the Gateway interface through which payd moves money,
// and the errors every gateway adapter translates into. Adapters live in
// sub-packages (sandbox, later stripe). It imports only payment and the
// standard library; it must not import store, intake or processor.
package connector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/payd/payd/payment"
)

// Gateway is a payment service provider or bank. Every call that moves money
// carries an idempotency key: the same key never moves money twice.
type Gateway interface {
	// Charge collects (card) or initiates (bank rail) a payment.
	// It returns a Result for every answer the gateway gave, declines
	// included; an error only when there was no usable answer (*Error).
	Charge(ctx context.Context, req ChargeRequest) (Result, error)
	// Inquire asks what happened to the charge with this idempotency key.
	// A key the gateway never saw yields a Result with StatusNotFound. A
	// gateway whose Capabilities say FencesKeys then refuses any later charge
	// with that key (the key is fenced), so "not found" is a confirmation
	// that it was not charged; from one that does not fence (Stripe) it is
	// one only after the key's window (NotFoundFinal). The engine asks
	// through InquireAttempt, which gives an AttemptGateway the whole attempt.
	Inquire(ctx context.Context, idempotencyKey string) (Result, error)
	// Settlement reports the rail status of a SENT bank payment by reference:
	// StatusSent (not yet), StatusSettled or StatusReturned.
	Settlement(ctx context.Context, reference string) (Result, error)
	// Refund returns money from a captured charge; idempotent by key.
	Refund(ctx context.Context, req RefundRequest) (Result, error)
	// Void cancels what an attempt left pending at the gateway: a customer action (3-D Secure)
	// not yet completed, or an authorization not yet captured. Idempotent by the attempt's key.
	// Once it answers StatusVoided the gateway never captures or completes that attempt.
	// A key the gateway never saw is fenced (as by Inquire) and answers StatusNotFound.
	// An attempt already captured answers StatusSucceeded with its Reference: money moved
	// and only a refund gives it back. A bank-rail payment cannot be voided: its current
	// status is answered. An error only when there was no usable answer (*Error).
	Void(ctx context.Context, idempotencyKey string) (Result, error)
	// List returns the gateway's own records of money movement created in [From, To):
	// charges that moved money (captured card charges, bank payments sent, whatever became
	// of them since) and refunds, oldest first, a page at a time. Reconciliation compares
	// them with payd's attempts and refunds.
	List(ctx context.Context, q ListQuery) (ListPage, error)
}

// ChargeRequest asks a gateway to move money.
type ChargeRequest struct {
	IdempotencyKey  string // <payment_id>:<attempt_number>
	PaymentID       string
	Amount          payment.Money
	Method          payment.Method
	PaymentMethodID string // card token (pm_…) or bank account (ba_… or digits)
}

// RefundRequest asks a gateway to give back part of a charge.
type RefundRequest struct {
	IdempotencyKey   string // the refund id
	PaymentID        string
	GatewayReference string // of the captured charge
	Amount           payment.Money
}

// ResultStatus is what the gateway says happened.
type ResultStatus string

const (
	StatusSucceeded      ResultStatus = "succeeded"       // card charged, refund done
	StatusDeclined       ResultStatus = "declined"        // not charged; see FailureClass
	StatusRequiresAction ResultStatus = "requires_action" // customer must act (3DS)
	StatusSent           ResultStatus = "sent"            // bank payment submitted to the rail
	StatusSettled        ResultStatus = "settled"         // bank payment settled
	StatusReturned       ResultStatus = "returned"        // bank payment returned after settling
	StatusNotFound       ResultStatus = "not_found"       // inquiry: never charged, key now fenced
	StatusVoided         ResultStatus = "voided"          // the pending action or authorization was canceled: nothing charged, ever
)

// Result is a gateway's answer.
type Result struct {
	Status       ResultStatus
	Reference    string // the gateway's id of the charge or refund
	FailureClass payment.FailureClass
	Code         string // decline or return code: card_declined, R01 …
	Message      string
	ActionURL    string    // for StatusRequiresAction
	SettleAt     time.Time // for StatusSent: when the rail is expected to settle
	SettledAt    time.Time // for StatusSettled and StatusReturned
	ReturnedAt   time.Time // for StatusReturned
}

// List page sizes: a ListQuery.Limit of 0 asks for DefaultListLimit; a
// gateway answers at most MaxListLimit entries a page.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// ListQuery asks a gateway for its records created in [From, To). A zero
// From means from the beginning, a zero To means no upper bound. Cursor is the
// Next of the previous page ("" for the first page), with the same From and
// To; Limit 0 means DefaultListLimit, and more than MaxListLimit is capped.
type ListQuery struct {
	From, To time.Time
	Cursor   string
	Limit    int
}

// ListPage is one page of a gateway's records, oldest first (by CreatedAt,
// then Reference). Next is the cursor of the following page, "" when there
// are no more.
type ListPage struct {
	Entries []LedgerEntry
	Next    string
}

// EntryKind says what a LedgerEntry records.
type EntryKind string

const (
	EntryCharge EntryKind = "charge"
	EntryRefund EntryKind = "refund"
)

// LedgerEntry is one record of money movement at the gateway.
type LedgerEntry struct {
	Kind            EntryKind
	Reference       string // the gateway's id of the charge or refund
	IdempotencyKey  string // payd's key: the attempt key of a charge, the refund id of a refund
	PaymentID       string // as payd sent it
	ChargeReference string // for a refund: the charge it refunds
	Amount          payment.Money
	Status          ResultStatus // a charge's current status (succeeded, sent, settled, returned); a refund's (succeeded)
	CreatedAt       time.Time
}

// Error is a gateway call that produced no usable answer.
type Error struct {
	Class payment.FailureClass // transient, rate_limited or unknown
	Code  string
	// MaybeProcessed is true when the request may have reached the gateway
	// (timeout, reset, 5xx): the outcome is unknown and must be inquired.
	// False only when the gateway certainly did not act (dial refused,
	// 429 before processing).
	MaybeProcessed bool
	RetryAfter     time.Duration
	Err            error
}

func (e *Error) Error() string {
	return fmt.Sprintf("gateway %s (%s, maybe processed: %t): %v", e.Code, e.Class, e.MaybeProcessed, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// AsError returns err as *Error. Any other error is treated as an unknown
// outcome: when in doubt, inquire rather than charge again.
func AsError(err error) *Error {
	var ge *Error
	if errors.As(err, &ge) {
		return ge
	}
	return &Error{Class: payment.FailureUnknown, Code: "gateway_error", MaybeProcessed: true, Err: err}
}

// Tokenizer is a gateway that exchanges what a payment page captured
// (seed 003's session_data) for a one-time payment token. The token is
// what payd stores and charges (ChargeRequest.PaymentMethodID); the
// session_data itself goes nowhere else: an adapter never logs it, never
// puts it in an error and never echoes it back.
type Tokenizer interface {
	// Tokenize answers the token and the method it pays with, or an error:
	// ErrSessionDataInvalid for a value the gateway does not accept, a
	// *Error when there was no usable answer.
	Tokenize(ctx context.Context, req TokenizeRequest) (Token, error)
}

// TokenizeRequest asks for a one-time payment token.
type TokenizeRequest struct {
	SessionData string // secret: never logged, stored or echoed
	SessionID   string
	Amount      payment.Money
}

// Token is a one-time payment token: it charges for one payment only (the
// attempts of that payment may repeat it).
type Token struct {
	Token  string
	Method payment.Method // CARD or ACH
	Type   string         // the payment method name shown to merchants: "card", "ach"
}

// ErrSessionDataInvalid: the gateway does not accept the session_data.
var ErrSessionDataInvalid = errors.New("session_data is not a value the gateway accepts")
