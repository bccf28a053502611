package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// Seed 002 surface: payouts over bank rails. A payout is a payments row of
// surface "payouts" (ids pay_…), run by the same jobs as every payment; the
// seed's extra fields live in payout_details. Validation is in
// payout_validation.go.

// payoutStatuses is the one canonical → seed 002 status table. A succeeded
// payout shows SETTLED when it settled on a bank rail, and PAID when it was
// recorded as paid: imported as PAID, or on a method that is not a bank rail
// (CARD, VIRTUAL_CARD, PAYPAL, OTHER: no rail settles them). A payout awaiting
// a customer action or an operator's review is still PROCESSING; refunds are
// not a payout operation, but a payout refunded through another surface
// shows what happened to its money: partly refunded is still settled (paid),
// fully refunded came back like a return.
var payoutStatuses = []struct {
	canonical  payment.Status
	rail, paid payment.PayoutStatus
}{
	{payment.StatusPending, payment.PayoutInitiated, payment.PayoutInitiated},
	{payment.StatusProcessing, payment.PayoutProcessing, payment.PayoutProcessing},
	{payment.StatusRequiresAction, payment.PayoutProcessing, payment.PayoutProcessing},
	{payment.StatusRequiresReview, payment.PayoutProcessing, payment.PayoutProcessing},
	{payment.StatusSent, payment.PayoutSent, payment.PayoutSent},
	{payment.StatusSucceeded, payment.PayoutSettled, payment.PayoutPaid},
	{payment.StatusPartiallyRefunded, payment.PayoutSettled, payment.PayoutPaid},
	{payment.StatusRefunded, payment.PayoutReturned, payment.PayoutReturned},
	{payment.StatusReturned, payment.PayoutReturned, payment.PayoutReturned},
	{payment.StatusFailed, payment.PayoutFailed, payment.PayoutFailed},
	{payment.StatusCanceled, payment.PayoutCanceled, payment.PayoutCanceled},
}

// recordedAsPaid reports whether a payout shows PAID rather than SETTLED.
func recordedAsPaid(m payment.Method, importedStatus string) bool {
	return payment.PayoutStatus(importedStatus) == payment.PayoutPaid || !m.BankRail()
}

// payoutStatus maps a payout's canonical status to seed 002's vocabulary.
func payoutStatus(st payment.Status, m payment.Method, importedStatus string) string {
	for _, row := range payoutStatuses {
		if row.canonical == st {
			if recordedAsPaid(m, importedStatus) {
				return string(row.paid)
			}
			return string(row.rail)
		}
	}
	return string(st)
}

// statuses002 inverts the table for list filters: the canonical statuses
// shown as v, and whether only paid (true) or only rail-settled (false)
// payouts show it (nil: either).
func statuses002(name string) ([]payment.Status, *bool) {
	var out []payment.Status
	inRail, inPaid := false, false
	v := payment.PayoutStatus(name)
	for _, row := range payoutStatuses {
		if row.rail == v || row.paid == v {
			out = append(out, row.canonical)
		}
		inRail = inRail || row.rail == v
		inPaid = inPaid || row.paid == v
	}
	switch {
	case inRail && !inPaid:
		f := false
		return out, &f
	case inPaid && !inRail:
		t := true
		return out, &t
	}
	return out, nil
}

// payoutResponse is seed 002's payout: every field of the create request,
// plus the payout's id, status, return, failure and bookkeeping fields.
type payoutResponse struct {
	ID                     string            `json:"id"`
	Object                 string            `json:"object"`
	TenantID               string            `json:"tenant_id"`
	ExternalPaymentID      string            `json:"external_payment_id"`
	ExternalSource         string            `json:"external_source"`
	Status                 string            `json:"status"`
	Method                 string            `json:"method"`
	TotalAmount            json.Number       `json:"total_amount"`
	Currency               string            `json:"currency"`
	ScheduledAt            *string           `json:"scheduled_at"`
	SubmittedAt            *string           `json:"submitted_at"`
	SentAt                 *string           `json:"sent_at"`
	ExpectedSettlementAt   *string           `json:"expected_settlement_at"`
	SettledAt              *string           `json:"settled_at"`
	ReturnedAt             *string           `json:"returned_at"`
	PaymentReference       *string           `json:"payment_reference"`
	BankReference          *string           `json:"bank_reference"`
	ACHTraceNumber         *string           `json:"ach_trace_number"`
	SEPAEndToEndID         *string           `json:"sepa_end_to_end_id"`
	RTPTraceID             *string           `json:"rtp_trace_id"`
	CheckNumber            *string           `json:"check_number"`
	CheckMailedAt          *string           `json:"check_mailed_at"`
	CheckClearedAt         *string           `json:"check_cleared_at"`
	CheckStopPayment       *bool             `json:"check_stop_payment"`
	BeneficiaryName        *string           `json:"beneficiary_name"`
	BeneficiaryBankName    *string           `json:"beneficiary_bank_name"`
	BeneficiaryBankCountry *string           `json:"beneficiary_bank_country"`
	BeneficiarySwiftBIC    *string           `json:"beneficiary_swift_bic"`
	BeneficiaryIBAN        *string           `json:"beneficiary_iban"`
	BeneficiaryAccount     *string           `json:"beneficiary_account"`
	BeneficiaryRouting     *string           `json:"beneficiary_routing"`
	PayerBankName          *string           `json:"payer_bank_name"`
	PayerBankCountry       *string           `json:"payer_bank_country"`
	PayerAccount           *string           `json:"payer_account"`
	PayerRouting           *string           `json:"payer_routing"`
	RemittanceMemo         *string           `json:"remittance_memo"`
	RemittanceAdviceURL    *string           `json:"remittance_advice_url"`
	Lines                  []lineResponse    `json:"lines"`
	ReturnCode             *string           `json:"return_code"`
	ReturnReason           *string           `json:"return_reason"`
	ReturnRetryEligible    bool              `json:"return_retry_eligible"`
	ErrorCode              *string           `json:"error_code"`
	ErrorMessage           *string           `json:"error_message"`
	CanceledAt             *string           `json:"canceled_at"`
	FailedAt               *string           `json:"failed_at"`
	Attempts               []attemptResponse `json:"attempts"`
	CreatedAt              string            `json:"created_at"`
	CreatedBy              string            `json:"created_by"`
	UpdatedAt              string            `json:"updated_at"`
	UpdatedBy              string            `json:"updated_by"`
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

func toPayout002(po payment.Payout) payoutResponse {
	p, d := po.Payment, po.Details
	var f payoutFields
	_ = json.Unmarshal(d.Details, &f)
	out := payoutResponse{
		ID: p.ID, Object: "payout", TenantID: p.TenantID, ExternalPaymentID: d.ExternalPaymentID,
		ExternalSource: d.ExternalSource, Status: payoutStatus(p.Status, p.Method, d.ImportedStatus),
		Method: string(p.Method), TotalAmount: json.Number(payment.FormatMajor(p.Amount.Minor, p.Amount.Currency)),
		Currency: p.Amount.Currency, ScheduledAt: tsp(f.ScheduledAt),
		SubmittedAt: tsp(f.SubmittedAt), SentAt: tsp(p.SentAt), ExpectedSettlementAt: tsp(p.ExpectedSettlementAt),
		SettledAt: tsp(p.SettledAt), ReturnedAt: tsp(p.ReturnedAt),
		PaymentReference: strp(f.PaymentReference), BankReference: strp(f.BankReference),
		ACHTraceNumber: strp(f.ACHTraceNumber), SEPAEndToEndID: strp(f.SEPAEndToEndID), RTPTraceID: strp(f.RTPTraceID),
		CheckNumber: strp(f.CheckNumber), CheckMailedAt: tsp(f.CheckMailedAt), CheckClearedAt: tsp(f.CheckClearedAt),
		CheckStopPayment: f.CheckStopPayment, BeneficiaryName: strp(f.BeneficiaryName),
		BeneficiaryBankName: strp(f.BeneficiaryBankName), BeneficiaryBankCountry: strp(f.BeneficiaryBankCountry),
		BeneficiarySwiftBIC: strp(f.BeneficiarySwiftBIC), BeneficiaryIBAN: strp(f.BeneficiaryIBAN),
		BeneficiaryAccount: strp(f.BeneficiaryAccount), BeneficiaryRouting: strp(f.BeneficiaryRouting),
		PayerBankName: strp(f.PayerBankName), PayerBankCountry: strp(f.PayerBankCountry),
		PayerAccount: strp(f.PayerAccount), PayerRouting: strp(f.PayerRouting),
		RemittanceMemo: strp(f.RemittanceMemo), RemittanceAdviceURL: strp(f.RemittanceAdviceURL),
		Lines: make([]lineResponse, 0, len(po.Lines)), ReturnCode: strp(p.ReturnCode),
		ReturnRetryEligible: payment.ReturnRetryEligible(p.ReturnCode),
		ErrorCode:           strp(p.ErrorCode), ErrorMessage: strp(p.ErrorMessage),
		CanceledAt: tsp(p.CanceledAt), FailedAt: tsp(p.FailedAt),
		Attempts:  make([]attemptResponse, 0, len(p.Attempts)),
		CreatedAt: ts(p.CreatedAt), CreatedBy: p.CreatedBy, UpdatedAt: ts(p.UpdatedAt), UpdatedBy: p.UpdatedBy,
	}
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
		out.Attempts = append(out.Attempts, toAttempt(a))
	}
	for _, l := range po.Lines {
		out.Lines = append(out.Lines, toLine002(l))
	}
	return out
}

func toLine002(l payment.Line) lineResponse {
	status := l.State
	if l.State != "released" && l.ReleasedAmount > 0 && l.ReleasedAmount == l.AppliedAmount {
		status = "released"
	}
	out := lineResponse{ID: l.ID, InvoiceToken: payment.InvoiceToken(l.InvoiceID), InvoiceID: l.InvoiceID,
		AppliedAmount: json.Number(payment.FormatMajor(l.AppliedAmount, l.AppliedCurrency)), AppliedCurrency: l.AppliedCurrency,
		FXAtLine: tsp(l.FXAt), DiscountCurrency: strp(l.DiscountCurrency), FeeCurrencyLine: strp(l.FeeCurrency),
		RemittanceLabel: l.RemittanceLabel, RemittanceValue: strp(l.RemittanceValue), Notes: strp(l.Notes),
		Status: status, CreatedAt: ts(l.CreatedAt)}
	if l.FXRate != "" {
		n := json.Number(payment.TrimRate(l.FXRate))
		out.FXRateLine = &n
	}
	if l.DiscountAmount != nil {
		n := json.Number(payment.FormatMajor(*l.DiscountAmount, nonEmptyStr(l.DiscountCurrency, l.AppliedCurrency)))
		out.DiscountAmount = &n
	}
	if l.FeeAmount != nil {
		n := json.Number(payment.FormatMajor(*l.FeeAmount, nonEmptyStr(l.FeeCurrency, l.AppliedCurrency)))
		out.FeeAmountLine = &n
	}
	return out
}

func nonEmptyStr(s, fallback string) string {
	if s != "" {
		return s
	}
	return fallback
}

// storeLines converts validated lines for the store.
func storeLines(ls []validLine) []payment.Line {
	out := make([]payment.Line, len(ls))
	for i, l := range ls {
		out[i] = payment.Line{InvoiceID: l.InvoiceID, AppliedAmount: l.AppliedAmount, PaymentAmount: l.PaymentAmount,
			AppliedCurrency: l.AppliedCurrency, FXRate: l.FXRate, FXAt: l.FXAt, DiscountAmount: l.DiscountAmount,
			DiscountCurrency: l.DiscountCurrency, FeeAmount: l.FeeAmount, FeeCurrency: l.FeeCurrency,
			RemittanceLabel: l.RemittanceLabel, RemittanceValue: l.RemittanceValue, Notes: l.Notes}
	}
	return out
}

// checkInvoices verifies, inside the request's transaction, that every line
// names an invoice of the tenant in the line's currency.
func checkInvoices(ctx context.Context, tx *store.Store, tenantID string, ls []validLine) error {
	if len(ls) == 0 {
		return nil
	}
	ids := make([]string, len(ls))
	for i, l := range ls {
		ids[i] = l.InvoiceID
	}
	curs, err := tx.InvoiceCurrencies(ctx, tenantID, ids)
	if err != nil {
		return err
	}
	bad := map[string]string{}
	for i, l := range ls {
		cur, ok := curs[l.InvoiceID]
		switch {
		case !ok:
			bad[fmt.Sprintf("lines[%d].invoice_token", i)] = "invoice_token_not_found"
		case cur != l.AppliedCurrency:
			bad[fmt.Sprintf("lines[%d].applied_currency", i)] = "applied_currency_mismatch"
		}
	}
	if len(bad) > 0 {
		return validation(bad)
	}
	return nil
}

// linesError turns the store's refusal of lines into a 422 naming the line.
func linesError(err error, ls []validLine) error {
	var oe *payment.InvoiceOverAppliedError
	switch {
	case errors.As(err, &oe):
		for i, l := range ls {
			if l.InvoiceID == oe.InvoiceID {
				return validation(map[string]string{fmt.Sprintf("lines[%d].applied_amount", i): "invoice_over_applied"})
			}
		}
		return validation(map[string]string{"lines": "invoice_over_applied"})
	case errors.Is(err, payment.ErrLinesExceedAmount):
		return validation(map[string]string{"lines": "lines_exceed_total_amount"})
	}
	return err
}

// handleCreatePayout records a payout, then enqueues its create step. The
// external_payment_id is the business key: the same request again answers
// 200 with the existing payout, another request with it is refused.
func (s *Server) handleCreatePayout(w http.ResponseWriter, r *http.Request) {
	const route = "POST /v1/payouts"
	p := principal(r.Context())
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req createPayoutRequest
	if err := decode(body, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.store.Now()
	v, bad := req.valid(now, s.cfg.MaxAmountMinor)
	if len(bad) > 0 {
		s.writeError(w, r, validation(bad))
		return
	}
	fp := fingerprint(route, v)
	details, err := json.Marshal(v.Fields)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	beneficiary := v.Fields.beneficiary()
	np := store.NewPayout{
		Payment: store.NewPayment{TenantID: p.TenantID, Amount: v.Amount, Method: v.Method,
			PaymentMethodID: beneficiary.AccountKey(v.Method), DestinationType: "BANK_ACCOUNT", Fingerprint: fp,
			ProcessPayment: v.live(), TrackAttempts: true, Actor: p.KeyID},
		ExternalPaymentID: v.ExternalPaymentID, ExternalSource: v.ExternalSource,
		AccountFingerprint: beneficiary.AccountFingerprint(v.Method), Details: details, Lines: storeLines(v.Lines),
		SentAt: v.Fields.SentAt, ExpectedSettlementAt: v.Fields.ExpectedSettlementAt,
		SettledAt: v.Fields.SettledAt, ReturnedAt: v.Fields.ReturnedAt,
	}
	if !v.Method.BankRail() {
		np.Payment.PaymentMethodID, np.Payment.DestinationType = "", ""
	}
	if v.Status.Imported() {
		np.ImportedStatus = string(v.Status)
		if (v.Status == payment.PayoutPaid || v.Status == payment.PayoutSettled) && np.SettledAt == nil {
			np.SettledAt = &now // the seed: PAID or SETTLED without settled_at is settled now
		}
	}
	created := false
	rw := &replayWriter{ResponseWriter: w}
	s.idempotent(rw, r, route, fp, func(ctx context.Context, tx *store.Store) (int, any, error) {
		if err := checkInvoices(ctx, tx, p.TenantID, v.Lines); err != nil {
			return 0, nil, err
		}
		pay, err := tx.InsertPayout(ctx, np)
		var exists *payment.PayoutExistsError
		switch {
		case errors.As(err, &exists):
			if string(exists.Fingerprint) != string(fp) {
				return 0, nil, errKeyReused
			}
			po, err := tx.GetPayout(ctx, p.TenantID, exists.PaymentID)
			if err != nil {
				return 0, nil, err
			}
			rw.replayed = true
			s.metrics.IdempotentReplays.WithLabelValues(route).Inc()
			return http.StatusOK, toPayout002(po), nil
		case errors.Is(err, payment.ErrAccountBlocked):
			field := v.Fields.accountField(v.Method)
			return 0, nil, validation(map[string]string{field: "beneficiary_account_blocked"})
		case err != nil:
			return 0, nil, linesError(err, v.Lines)
		}
		po, err := tx.GetPayout(ctx, p.TenantID, pay.ID)
		if err != nil {
			return 0, nil, err
		}
		created = true
		return http.StatusCreated, toPayout002(po), nil
	}, func(ctx context.Context, resp any) {
		if !created {
			return
		}
		pr := resp.(payoutResponse)
		s.metrics.PaymentsCreated.WithLabelValues(pr.Method, store.SurfacePayouts).Inc()
		s.enqueueStep(ctx, payment.StepCreate, pr.ID, 1)
	})
}

func (s *Server) handleGetPayout(w http.ResponseWriter, r *http.Request) {
	po, err := s.store.GetPayout(r.Context(), principal(r.Context()).TenantID, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toPayout002(po))
}

// handleListPayouts lists payouts newest first, optionally by status (seed
// 002 vocabulary) or external_payment_id.
func (s *Server) handleListPayouts(w http.ResponseWriter, r *http.Request) {
	p := principal(r.Context())
	limit, after, bad := parseListParams(r)
	f := store.PayoutFilter{TenantID: p.TenantID, Limit: limit, StartingAfter: after}
	q := r.URL.Query()
	if st := q.Get("status"); st != "" {
		if f.Statuses, f.Paid = statuses002(st); len(f.Statuses) == 0 {
			bad["status"] = "status_invalid"
		}
	}
	if ext := q.Get("external_payment_id"); ext != "" {
		if code := checkText(&ext, false, 255); code != "" {
			bad["external_payment_id"] = "external_payment_id_" + code
		}
		f.ExternalPaymentID = ext
	}
	if len(bad) > 0 {
		s.writeError(w, r, validation(bad))
		return
	}
	if !s.cursorExists(w, r, after, func(ctx context.Context, id string) (bool, error) {
		_, err := s.store.GetPayout(ctx, p.TenantID, id)
		if errors.Is(err, payment.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}) {
		return
	}
	pos, more, err := s.store.ListPayouts(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]payoutResponse, len(pos))
	for i, po := range pos {
		out[i] = toPayout002(po)
	}
	writeJSON(w, http.StatusOK, listResponse{Object: "list", Data: out, HasMore: more})
}

// handleReplacePayoutLines applies lines to a payout: replace_lines true
// (the default) takes back every earlier application first, false adds to
// them. Reservations happen under each invoice's row lock, so no invoice is
// ever over-applied, and the payout's lines never exceed its amount.
func (s *Server) handleReplacePayoutLines(w http.ResponseWriter, r *http.Request) {
	const route = "PUT /v1/payouts/{id}/lines"
	p := principal(r.Context())
	id := r.PathValue("id")
	po, err := s.store.GetPayout(r.Context(), p.TenantID, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	lines, replace, err := decodeLines(body, po.Payment.Amount, s.cfg.MaxAmountMinor)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	fp := fingerprint(route, []any{id, lines, replace})
	s.idempotent(w, r, route, fp, func(ctx context.Context, tx *store.Store) (int, any, error) {
		if err := checkInvoices(ctx, tx, p.TenantID, lines); err != nil {
			return 0, nil, err
		}
		if err := tx.ApplyLines(ctx, id, storeLines(lines), replace); err != nil {
			return 0, nil, linesError(err, lines)
		}
		po, err := tx.GetPayout(ctx, p.TenantID, id)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, toPayout002(po), nil
	}, nil)
}

// decodeLines parses and validates a PUT /v1/payouts/{id}/lines body for a
// payout of total: any refusal is a 4xx *apiError (fuzzed).
func decodeLines(body []byte, total payment.Money, maxAmount int64) (lines []validLine, replace bool, err error) {
	var req replaceLinesRequest
	if err := decode(body, &req); err != nil {
		return nil, false, err
	}
	bad := map[string]string{}
	replace = req.ReplaceLines == nil || *req.ReplaceLines
	switch {
	case req.Lines == nil:
		bad["lines"] = "lines_required"
	default:
		var sum int64
		lines, sum = checkLines(req.Lines, total.Currency, maxAmount, bad)
		if _, done := bad["lines"]; !done && sum > total.Minor {
			bad["lines"] = "lines_exceed_total_amount"
		}
	}
	if len(bad) > 0 {
		return nil, false, validation(bad)
	}
	return lines, replace, nil
}

// handleCancelPayout cancels a payout that has not gone to the bank yet:
// INITIATED (canonical PENDING, including one scheduled for later). Once
// PROCESSING an attempt may be at the gateway; once SENT the rail has it.
func (s *Server) handleCancelPayout(w http.ResponseWriter, r *http.Request) {
	const route = "POST /v1/payouts/{id}/cancel"
	p := principal(r.Context())
	id := r.PathValue("id")
	if _, err := s.store.GetPayout(r.Context(), p.TenantID, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.idempotent(w, r, route, fingerprint(route, id), func(ctx context.Context, tx *store.Store) (int, any, error) {
		po, err := tx.GetPayout(ctx, p.TenantID, id)
		if err != nil {
			return 0, nil, err
		}
		pay := po.Payment
		notCancelable := errf(http.StatusConflict, typeConflict, "payout_not_cancelable",
			fmt.Sprintf("a payout that is %s can no longer be canceled; only an INITIATED payout can",
				payoutStatus(pay.Status, pay.Method, po.Details.ImportedStatus)))
		if pay.Status != payment.StatusPending && pay.Status != payment.StatusRequiresAction {
			return 0, nil, notCancelable
		}
		if _, err := tx.Apply(ctx, store.Change{PaymentID: id, From: pay.Status, To: payment.StatusCanceled, AnySeq: true,
			Reason: "canceled by the merchant", Actor: p.KeyID, ErrorCode: "canceled", ErrorMessage: "payout canceled"}); err != nil {
			if errors.Is(err, payment.ErrStale) {
				return 0, nil, notCancelable
			}
			return 0, nil, err
		}
		po, err = tx.GetPayout(ctx, p.TenantID, id)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, toPayout002(po), nil
	}, nil)
}
