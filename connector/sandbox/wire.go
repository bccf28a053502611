package sandbox

import (
	"time"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// The JSON bodies Handler and Client exchange. Amounts are integer minor
// units. The idempotency key travels in the body, not in an Idempotency-Key
// header: net/http's Transport silently replays a request that carries that
// header when the connection drops, which would hide a lost response.

type chargeBody struct {
	IdempotencyKey  string         `json:"idempotency_key"`
	PaymentID       string         `json:"payment_id"`
	Amount          int64          `json:"amount"`
	Currency        string         `json:"currency"`
	Method          payment.Method `json:"method"`
	PaymentMethodID string         `json:"payment_method_id"`
}

func (b chargeBody) request() connector.ChargeRequest {
	return connector.ChargeRequest{
		IdempotencyKey:  b.IdempotencyKey,
		PaymentID:       b.PaymentID,
		Amount:          payment.Money{Minor: b.Amount, Currency: b.Currency},
		Method:          b.Method,
		PaymentMethodID: b.PaymentMethodID,
	}
}

func chargeBodyOf(r connector.ChargeRequest) chargeBody {
	return chargeBody{
		IdempotencyKey:  r.IdempotencyKey,
		PaymentID:       r.PaymentID,
		Amount:          r.Amount.Minor,
		Currency:        r.Amount.Currency,
		Method:          r.Method,
		PaymentMethodID: r.PaymentMethodID,
	}
}

type refundBody struct {
	IdempotencyKey   string `json:"idempotency_key"`
	PaymentID        string `json:"payment_id"`
	GatewayReference string `json:"gateway_reference"`
	Amount           int64  `json:"amount"`
	Currency         string `json:"currency"`
}

func (b refundBody) request() connector.RefundRequest {
	return connector.RefundRequest{
		IdempotencyKey:   b.IdempotencyKey,
		PaymentID:        b.PaymentID,
		GatewayReference: b.GatewayReference,
		Amount:           payment.Money{Minor: b.Amount, Currency: b.Currency},
	}
}

func refundBodyOf(r connector.RefundRequest) refundBody {
	return refundBody{
		IdempotencyKey:   r.IdempotencyKey,
		PaymentID:        r.PaymentID,
		GatewayReference: r.GatewayReference,
		Amount:           r.Amount.Minor,
		Currency:         r.Amount.Currency,
	}
}

type resultBody struct {
	Status       connector.ResultStatus `json:"status"`
	Reference    string                 `json:"reference,omitempty"`
	FailureClass payment.FailureClass   `json:"failure_class,omitempty"`
	Code         string                 `json:"code,omitempty"`
	Message      string                 `json:"message,omitempty"`
	ActionURL    string                 `json:"action_url,omitempty"`
	SettleAt     time.Time              `json:"settle_at,omitzero"`
	SettledAt    time.Time              `json:"settled_at,omitzero"`
	ReturnedAt   time.Time              `json:"returned_at,omitzero"`
}

func resultBodyOf(r connector.Result) resultBody { return resultBody(r) }

func (b resultBody) result() connector.Result { return connector.Result(b) }

type ledgerBody struct {
	Charges       []Charge `json:"charges"`
	DoubleCharged []string `json:"double_charged"`
}

// errorBody has the shape of every payd error (docs/surfaces.md, "Errors").
type errorBody struct {
	RequestID  string   `json:"request_id,omitempty"`
	ErrorType  string   `json:"error_type"`
	ErrorCodes []string `json:"error_codes"`
	Message    string   `json:"message"`
	Retryable  bool     `json:"retryable"`
}

// entryBody is one connector.LedgerEntry of GET /entries.
type entryBody struct {
	Kind            connector.EntryKind    `json:"kind"`
	Reference       string                 `json:"reference"`
	IdempotencyKey  string                 `json:"idempotency_key"`
	PaymentID       string                 `json:"payment_id"`
	ChargeReference string                 `json:"charge_reference,omitempty"`
	Amount          int64                  `json:"amount"`
	Currency        string                 `json:"currency"`
	Status          connector.ResultStatus `json:"status"`
	CreatedAt       time.Time              `json:"created_at"`
}

func entryBodyOf(e connector.LedgerEntry) entryBody {
	return entryBody{Kind: e.Kind, Reference: e.Reference, IdempotencyKey: e.IdempotencyKey, PaymentID: e.PaymentID,
		ChargeReference: e.ChargeReference, Amount: e.Amount.Minor, Currency: e.Amount.Currency, Status: e.Status,
		CreatedAt: e.CreatedAt}
}

func (b entryBody) entry() connector.LedgerEntry {
	return connector.LedgerEntry{Kind: b.Kind, Reference: b.Reference, IdempotencyKey: b.IdempotencyKey,
		PaymentID: b.PaymentID, ChargeReference: b.ChargeReference,
		Amount: payment.Money{Minor: b.Amount, Currency: b.Currency}, Status: b.Status, CreatedAt: b.CreatedAt.UTC()}
}

// listBody is a connector.ListPage: {"entries": [entry…], "next": cursor}.
type listBody struct {
	Entries []entryBody `json:"entries"`
	Next    string      `json:"next"`
}

// errorTypeUnavailable is the error_type of a 503 the sandbox answers before
// processing anything (Faults.VoidDown): the client knows nothing happened.
// Any other 503 may have been processed.
const errorTypeUnavailable = "unavailable"

// tokenizeBody carries session_data to the sandbox: the gateway is the one
// place it may go.
type tokenizeBody struct {
	SessionData string `json:"session_data"`
	SessionID   string `json:"session_id"`
	Amount      int64  `json:"amount"`
	Currency    string `json:"currency"`
}

type tokenBody struct {
	Token  string         `json:"token"`
	Method payment.Method `json:"method"`
	Type   string         `json:"type"`
}
