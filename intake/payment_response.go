package intake

import (
	"encoding/json"

	"github.com/payd/payd/payment"
)

// paymentResponse is seed 001's payment object, field by field, plus
// refunded_amount and next_action (present only when a customer must act).
type paymentResponse struct {
	ID                string            `json:"id"`
	Amount            json.Number       `json:"amount"`
	Currency          string            `json:"currency"`
	DestinationID     string            `json:"destination_id"`
	DestinationType   string            `json:"destination_type"`
	IdempotencyKey    *string           `json:"idempotency_key"`
	InvoiceNumber     string            `json:"invoice_number"`
	Metadata          map[string]string `json:"metadata"`
	PaymentMethodID   string            `json:"payment_method_id"`
	PaymentMethodType string            `json:"payment_method_type"`
	PaymentStatus     string            `json:"payment_status"`
	TrackAttempts     bool              `json:"track_attempts"`
	Attempts          []attemptResponse `json:"attempts"`
	ErrorMessage      *string           `json:"error_message"`
	RefundedAmount    json.Number       `json:"refunded_amount"`
	TenantID          string            `json:"tenant_id"`
	CreatedAt         string            `json:"created_at"`
	CreatedBy         string            `json:"created_by"`
	UpdatedAt         string            `json:"updated_at"`
	UpdatedBy         string            `json:"updated_by"`
	SucceededAt       *string           `json:"succeeded_at"`
	FailedAt          *string           `json:"failed_at"`
	RefundedAt        *string           `json:"refunded_at"`
	// The vendor's fields the seed page does not show (docs/surfaces.md):
	// gateway_payment_id is the gateway's reference of the attempt that
	// succeeded; payment_gateway the connector a payment goes to (null for
	// OFFLINE and CREDITS); payment_url the page the customer must visit
	// (a 3-D Secure challenge) while the payment awaits them; payd has no
	// gateway metadata or tracking id of its own to show (null).
	GatewayMetadata        map[string]string `json:"gateway_metadata"`
	GatewayPaymentID       *string           `json:"gateway_payment_id"`
	GatewayTrackingID      *string           `json:"gateway_tracking_id"`
	PaymentGateway         *string           `json:"payment_gateway"`
	PaymentURL             *string           `json:"payment_url"`
	SaveCardAndMakeDefault bool              `json:"save_card_and_make_default"`
	NextAction             *nextAction       `json:"next_action,omitempty"`
}

type nextAction struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

type attemptResponse struct {
	ID            string            `json:"id"`
	AttemptNumber int               `json:"attempt_number"`
	PaymentID     string            `json:"payment_id"`
	TenantID      string            `json:"tenant_id"`
	Status        string            `json:"status"`
	FailureClass  *string           `json:"failure_class"`
	ErrorCode     *string           `json:"error_code"`
	ErrorMessage  *string           `json:"error_message"`
	Inquiries     int               `json:"inquiries"`
	Metadata      map[string]string `json:"metadata"`
	CreatedAt     string            `json:"created_at"`
	CreatedBy     string            `json:"created_by"`
	UpdatedAt     string            `json:"updated_at"`
	UpdatedBy     string            `json:"updated_by"`
}

// toPaymentResponse writes a payment as seed 001 shows it.
func toPaymentResponse(p payment.Payment) paymentResponse {
	meta := p.Metadata
	if meta == nil {
		meta = map[string]string{}
	}
	out := paymentResponse{
		ID: p.ID, Amount: major(p.Amount.Minor, p.Amount.Currency), Currency: p.Amount.Currency,
		DestinationID: p.DestinationID, DestinationType: p.DestinationType, IdempotencyKey: strp(p.IdempotencyKey),
		InvoiceNumber: p.InvoiceNumber, Metadata: meta, PaymentMethodID: p.PaymentMethodID,
		PaymentMethodType: string(p.Method), PaymentStatus: payment.PaymentsStatusName(p.Status), TrackAttempts: p.TrackAttempts,
		Attempts: make([]attemptResponse, 0, len(p.Attempts)), ErrorMessage: strp(p.ErrorMessage),
		RefundedAmount: major(p.RefundedAmount, p.Amount.Currency),
		TenantID:       p.TenantID, CreatedAt: ts(p.CreatedAt), CreatedBy: p.CreatedBy, UpdatedAt: ts(p.UpdatedAt),
		UpdatedBy: p.UpdatedBy, SucceededAt: tsp(p.SucceededAt), FailedAt: tsp(p.FailedAt), RefundedAt: tsp(p.RefundedAt),
	}
	if p.FailedAt == nil && (p.Status == payment.StatusCanceled || p.Status == payment.StatusReturned) {
		out.FailedAt = tsp(firstNonNil(p.CanceledAt, p.ReturnedAt))
	}
	if p.Status == payment.StatusRequiresAction && p.ActionURL != "" {
		out.NextAction = &nextAction{Type: "redirect_to_url", URL: p.ActionURL}
		out.PaymentURL = strp(p.ActionURL)
	}
	out.PaymentGateway = strp(p.Gateway)
	out.SaveCardAndMakeDefault = p.Options.SaveCardAndMakeDefault
	for _, a := range p.Attempts {
		out.Attempts = append(out.Attempts, toAttemptResponse(a))
		if a.Status == payment.AttemptSucceeded && a.GatewayReference != "" {
			out.GatewayPaymentID = strp(a.GatewayReference)
		}
	}
	return out
}

func toAttemptResponse(a payment.Attempt) attemptResponse {
	return attemptResponse{ID: a.ID, AttemptNumber: a.Number, PaymentID: a.PaymentID, TenantID: a.TenantID,
		Status: string(a.Status), FailureClass: strp(string(a.FailureClass)), ErrorCode: strp(a.ErrorCode),
		ErrorMessage: strp(a.ErrorMessage), Inquiries: a.InquiryCount, Metadata: map[string]string{}, CreatedAt: ts(a.StartedAt),
		CreatedBy: a.CreatedBy, UpdatedAt: ts(a.UpdatedAt), UpdatedBy: a.CreatedBy}
}
