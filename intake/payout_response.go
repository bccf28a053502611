package intake

import (
	"encoding/json"

	"github.com/payd/payd/payment"
)

// payoutSharedFields are the members of seed 002's payout that its create
// request and its answer share, exactly as they are on the wire: lifecycle
// times (RFC 3339 text), rail references, the beneficiary and payer, the
// remittance. Both embed it at the same place, so its members keep their
// order in the JSON.
type payoutSharedFields struct {
	ScheduledAt            *string `json:"scheduled_at"`
	SubmittedAt            *string `json:"submitted_at"`
	SentAt                 *string `json:"sent_at"`
	ExpectedSettlementAt   *string `json:"expected_settlement_at"`
	SettledAt              *string `json:"settled_at"`
	ReturnedAt             *string `json:"returned_at"`
	PaymentReference       *string `json:"payment_reference"`
	BankReference          *string `json:"bank_reference"`
	ACHTraceNumber         *string `json:"ach_trace_number"`
	SEPAEndToEndID         *string `json:"sepa_end_to_end_id"`
	RTPTraceID             *string `json:"rtp_trace_id"`
	CheckNumber            *string `json:"check_number"`
	CheckMailedAt          *string `json:"check_mailed_at"`
	CheckClearedAt         *string `json:"check_cleared_at"`
	CheckStopPayment       *bool   `json:"check_stop_payment"`
	BeneficiaryName        *string `json:"beneficiary_name"`
	BeneficiaryBankName    *string `json:"beneficiary_bank_name"`
	BeneficiaryBankCountry *string `json:"beneficiary_bank_country"`
	BeneficiarySwiftBIC    *string `json:"beneficiary_swift_bic"`
	BeneficiaryIBAN        *string `json:"beneficiary_iban"`
	BeneficiaryAccount     *string `json:"beneficiary_account"`
	BeneficiaryRouting     *string `json:"beneficiary_routing"`
	PayerBankName          *string `json:"payer_bank_name"`
	PayerBankCountry       *string `json:"payer_bank_country"`
	PayerAccount           *string `json:"payer_account"`
	PayerRouting           *string `json:"payer_routing"`
	RemittanceMemo         *string `json:"remittance_memo"`
	RemittanceAdviceURL    *string `json:"remittance_advice_url"`
}

// shared writes the stored fields as the wire shows them.
func (f payoutFields) shared() payoutSharedFields {
	return payoutSharedFields{ScheduledAt: tsp(f.ScheduledAt), SubmittedAt: tsp(f.SubmittedAt), SentAt: tsp(f.SentAt),
		ExpectedSettlementAt: tsp(f.ExpectedSettlementAt), SettledAt: tsp(f.SettledAt), ReturnedAt: tsp(f.ReturnedAt),
		PaymentReference: strp(f.PaymentReference), BankReference: strp(f.BankReference),
		ACHTraceNumber: strp(f.ACHTraceNumber), SEPAEndToEndID: strp(f.SEPAEndToEndID), RTPTraceID: strp(f.RTPTraceID),
		CheckNumber: strp(f.CheckNumber), CheckMailedAt: tsp(f.CheckMailedAt), CheckClearedAt: tsp(f.CheckClearedAt),
		CheckStopPayment: f.CheckStopPayment, BeneficiaryName: strp(f.BeneficiaryName),
		BeneficiaryBankName: strp(f.BeneficiaryBankName), BeneficiaryBankCountry: strp(f.BeneficiaryBankCountry),
		BeneficiarySwiftBIC: strp(f.BeneficiarySwiftBIC), BeneficiaryIBAN: strp(f.BeneficiaryIBAN),
		BeneficiaryAccount: strp(f.BeneficiaryAccount), BeneficiaryRouting: strp(f.BeneficiaryRouting),
		PayerBankName: strp(f.PayerBankName), PayerBankCountry: strp(f.PayerBankCountry),
		PayerAccount: strp(f.PayerAccount), PayerRouting: strp(f.PayerRouting),
		RemittanceMemo: strp(f.RemittanceMemo), RemittanceAdviceURL: strp(f.RemittanceAdviceURL)}
}

// payoutResponse is seed 002's payout: every field of the create request,
// plus the payout's id, status, return, failure and bookkeeping fields.
type payoutResponse struct {
	ID                string      `json:"id"`
	Object            string      `json:"object"`
	TenantID          string      `json:"tenant_id"`
	ExternalPaymentID string      `json:"external_payment_id"`
	ExternalSource    string      `json:"external_source"`
	Status            string      `json:"status"`
	Method            string      `json:"method"`
	TotalAmount       json.Number `json:"total_amount"`
	Currency          string      `json:"currency"`
	payoutSharedFields
	Lines               []lineResponse    `json:"lines"`
	ReturnCode          *string           `json:"return_code"`
	ReturnReason        *string           `json:"return_reason"`
	ReturnRetryEligible bool              `json:"return_retry_eligible"`
	ErrorCode           *string           `json:"error_code"`
	ErrorMessage        *string           `json:"error_message"`
	CanceledAt          *string           `json:"canceled_at"`
	FailedAt            *string           `json:"failed_at"`
	Attempts            []attemptResponse `json:"attempts"`
	CreatedAt           string            `json:"created_at"`
	CreatedBy           string            `json:"created_by"`
	UpdatedAt           string            `json:"updated_at"`
	UpdatedBy           string            `json:"updated_by"`
}

// lineResponse is one application of the payout to an invoice. status is
// reserved (payout under way), applied (it paid the invoice) or released
// (it failed, was canceled or returned: the invoice got the amount back).
type lineResponse struct {
	ID               string       `json:"id"`
	InvoiceToken     string       `json:"invoice_token"`
	InvoiceID        string       `json:"invoice_id"`
	AppliedAmount    json.Number  `json:"applied_amount"`
	AppliedCurrency  string       `json:"applied_currency"`
	FXRateLine       *json.Number `json:"fx_rate_line"`
	FXAtLine         *string      `json:"fx_at_line"`
	DiscountAmount   *json.Number `json:"discount_amount"`
	DiscountCurrency *string      `json:"discount_currency"`
	FeeAmountLine    *json.Number `json:"fee_amount_line"`
	FeeCurrencyLine  *string      `json:"fee_currency_line"`
	RemittanceLabel  string       `json:"remittance_label"`
	RemittanceValue  *string      `json:"remittance_value"`
	Notes            *string      `json:"notes"`
	Status           string       `json:"status"`
	CreatedAt        string       `json:"created_at"`
}

// toPayoutResponse writes a payout as seed 002 shows it.
func toPayoutResponse(po payment.Payout) payoutResponse {
	p, d := po.Payment, po.Details
	var f payoutFields
	_ = json.Unmarshal(d.Details, &f)
	out := payoutResponse{
		ID: p.ID, Object: "payout", TenantID: p.TenantID, ExternalPaymentID: d.ExternalPaymentID,
		ExternalSource: d.ExternalSource, Status: payment.PayoutStatusName(p.Status, p.Method, d.ImportedStatus),
		Method: string(p.Method), TotalAmount: major(p.Amount.Minor, p.Amount.Currency), Currency: p.Amount.Currency,
		payoutSharedFields: f.shared(),
		Lines:              make([]lineResponse, 0, len(po.Lines)), ReturnCode: strp(p.ReturnCode),
		ReturnRetryEligible: payment.ReturnRetryEligible(p.ReturnCode),
		ErrorCode:           strp(p.ErrorCode), ErrorMessage: strp(p.ErrorMessage),
		CanceledAt: tsp(p.CanceledAt), FailedAt: tsp(p.FailedAt),
		Attempts:  make([]attemptResponse, 0, len(p.Attempts)),
		CreatedAt: ts(p.CreatedAt), CreatedBy: p.CreatedBy, UpdatedAt: ts(p.UpdatedAt), UpdatedBy: p.UpdatedBy,
	}
	// the payment's row holds the lifecycle times as they happened
	out.SentAt, out.ExpectedSettlementAt = tsp(p.SentAt), tsp(p.ExpectedSettlementAt)
	out.SettledAt, out.ReturnedAt = tsp(p.SettledAt), tsp(p.ReturnedAt)
	if p.Status == payment.StatusReturned {
		out.ReturnReason = strp(payment.ReturnReason(p.ReturnCode))
	}
	// What payd saw itself fills the times and references not given.
	if out.SubmittedAt == nil && len(p.Attempts) > 0 {
		out.SubmittedAt = tsp(&p.Attempts[0].StartedAt)
	}
	if out.BankReference == nil {
		out.BankReference = strp(p.GatewayReference)
	}
	if p.Method == payment.MethodCheck {
		if out.CheckMailedAt == nil {
			out.CheckMailedAt = tsp(p.SentAt)
		}
		if out.CheckClearedAt == nil {
			out.CheckClearedAt = tsp(p.SettledAt)
		}
	}
	for _, a := range p.Attempts {
		out.Attempts = append(out.Attempts, toAttemptResponse(a))
	}
	for _, l := range po.Lines {
		out.Lines = append(out.Lines, toLineResponse(l))
	}
	return out
}

// toLineResponse writes a payout's line as seed 002 shows it.
func toLineResponse(l payment.Line) lineResponse {
	status := l.State
	if l.State != "released" && l.ReleasedAmount > 0 && l.ReleasedAmount == l.AppliedAmount {
		status = "released"
	}
	out := lineResponse{ID: l.ID, InvoiceToken: payment.InvoiceToken(l.InvoiceID), InvoiceID: l.InvoiceID,
		AppliedAmount: major(l.AppliedAmount, l.AppliedCurrency), AppliedCurrency: l.AppliedCurrency,
		FXAtLine: tsp(l.FXAt), DiscountCurrency: strp(l.DiscountCurrency), FeeCurrencyLine: strp(l.FeeCurrency),
		RemittanceLabel: l.RemittanceLabel, RemittanceValue: strp(l.RemittanceValue), Notes: strp(l.Notes),
		Status: status, CreatedAt: ts(l.CreatedAt)}
	if l.FXRate != "" {
		n := json.Number(payment.TrimRate(l.FXRate))
		out.FXRateLine = &n
	}
	if l.DiscountAmount != nil {
		n := major(*l.DiscountAmount, nonEmptyStr(l.DiscountCurrency, l.AppliedCurrency))
		out.DiscountAmount = &n
	}
	if l.FeeAmount != nil {
		n := major(*l.FeeAmount, nonEmptyStr(l.FeeCurrency, l.AppliedCurrency))
		out.FeeAmountLine = &n
	}
	return out
}
