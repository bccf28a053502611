package intake

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// Seed 001 surface: payments that collect an invoice.

const surfacePayments = "payments"

// paymentStatus001 maps the canonical status to seed 001's vocabulary
// (PENDING, PROCESSING, SUCCEEDED, FAILED, REFUNDED, PARTIALLY_REFUNDED).
// Statuses the seed has no word for map to the nearest one a merchant should
// act on: a bank payment on the rail or awaiting review is still PROCESSING;
// canceled and returned payments did not pay (FAILED, with error_message
// saying why).
var paymentStatus001 = map[payment.Status]string{
	payment.StatusPending:           "PENDING",
	payment.StatusProcessing:        "PROCESSING",
	payment.StatusRequiresAction:    "PROCESSING",
	payment.StatusSent:              "PROCESSING",
	payment.StatusRequiresReview:    "PROCESSING",
	payment.StatusSucceeded:         "SUCCEEDED",
	payment.StatusPartiallyRefunded: "PARTIALLY_REFUNDED",
	payment.StatusRefunded:          "REFUNDED",
	payment.StatusReturned:          "FAILED",
	payment.StatusFailed:            "FAILED",
	payment.StatusCanceled:          "FAILED",
}

// statuses001 inverts paymentStatus001 for list filters.
func statuses001(v string) []payment.Status {
	var out []payment.Status
	for _, s := range payment.Statuses {
		if paymentStatus001[s] == v {
			out = append(out, s)
		}
	}
	return out
}

var methods001 = map[string]payment.Method{
	"CARD": payment.MethodCard, "ACH": payment.MethodACH, "OFFLINE": payment.MethodOffline, "CREDITS": payment.MethodCredits,
}

type createPaymentRequest struct {
	Amount            decimal           `json:"amount"`
	Currency          *string           `json:"currency"`
	DestinationID     *string           `json:"destination_id"`
	DestinationType   *string           `json:"destination_type"`
	PaymentMethodType *string           `json:"payment_method_type"`
	PaymentMethodID   *string           `json:"payment_method_id"`
	IdempotencyKey    *string           `json:"idempotency_key"`
	Metadata          map[string]string `json:"metadata"`
	ProcessPayment    *bool             `json:"process_payment"`
}

// validPayment is a request that passed validation, normalized.
type validPayment struct {
	Amount          payment.Money     `json:"amount"`
	DestinationID   string            `json:"destination_id"`
	Method          payment.Method    `json:"method"`
	PaymentMethodID string            `json:"payment_method_id"`
	IdempotencyKey  string            `json:"idempotency_key"`
	Metadata        map[string]string `json:"metadata"`
	ProcessPayment  bool              `json:"process_payment"`
}

// valid checks every field and returns one error code per bad field.
func (req createPaymentRequest) valid(maxAmount int64) (validPayment, map[string]string) {
	bad := map[string]string{}
	v := validPayment{ProcessPayment: true}
	cur := str(req.Currency)
	switch {
	case req.Currency == nil || cur == "":
		bad["currency"] = "currency_required"
	case !isUpperAlpha3(cur):
		bad["currency"] = "currency_invalid"
	case !payment.KnownCurrency(cur):
		bad["currency"] = "currency_unknown"
	}
	if _, ok := bad["currency"]; !ok {
		if minor, code := parseAmount(req.Amount, cur, maxAmount, false); code != "" {
			bad["amount"] = code
		} else {
			v.Amount = payment.Money{Minor: minor, Currency: cur}
		}
	} else if !req.Amount.Set || req.Amount.IsNul {
		bad["amount"] = "amount_required"
	}
	v.DestinationID = str(req.DestinationID)
	if code := checkText(req.DestinationID, true, 255); code != "" {
		bad["destination_id"] = "destination_id_" + code
	}
	switch dt := str(req.DestinationType); {
	case req.DestinationType == nil || dt == "":
		bad["destination_type"] = "destination_type_required"
	case dt != "INVOICE":
		bad["destination_type"] = "destination_type_invalid"
	}
	m, ok := methods001[str(req.PaymentMethodType)]
	switch {
	case req.PaymentMethodType == nil || str(req.PaymentMethodType) == "":
		bad["payment_method_type"] = "payment_method_type_required"
	case !ok:
		bad["payment_method_type"] = "payment_method_type_invalid"
	}
	v.Method = m
	if req.ProcessPayment != nil {
		v.ProcessPayment = *req.ProcessPayment
	}
	v.PaymentMethodID = str(req.PaymentMethodID)
	needsPM := v.ProcessPayment && (m == payment.MethodCard || m == payment.MethodACH)
	if code := checkText(req.PaymentMethodID, needsPM, 255); code != "" {
		bad["payment_method_id"] = "payment_method_id_" + code
	}
	v.IdempotencyKey = str(req.IdempotencyKey)
	if code := checkText(req.IdempotencyKey, false, 255); code != "" {
		bad["idempotency_key"] = "idempotency_key_" + code
	}
	if code := checkMetadata(req.Metadata); code != "" {
		bad["metadata"] = code
	}
	v.Metadata = req.Metadata
	return v, bad
}

// parseAmount turns a wire amount in major units into minor units, exactly.
// It returns the error code for a bad amount.
func parseAmount(d decimal, currency string, maxAmount int64, allowZero bool) (int64, string) {
	switch {
	case !d.Set || d.IsNul:
		return 0, "amount_required"
	case d.Kind != 'n' && d.Kind != 's':
		return 0, "amount_invalid_type"
	}
	minor, err := payment.ParseMajor(d.Raw, currency)
	if err != nil {
		var ae *payment.AmountError
		if errors.As(err, &ae) {
			return 0, ae.Code
		}
		return 0, "amount_invalid"
	}
	switch {
	case minor < 0 || (minor == 0 && !allowZero):
		return 0, "amount_must_be_positive"
	case minor > maxAmount:
		return 0, "amount_too_large"
	}
	return minor, ""
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func isUpperAlpha3(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// checkText validates a free-text identifier: present if required, at most
// max characters, no control characters. It returns "required", "too_long",
// "invalid_characters" or "".
func checkText(p *string, required bool, max int) string {
	if p == nil || *p == "" {
		if required {
			return "required"
		}
		return ""
	}
	if utf8.RuneCountInString(*p) > max {
		return "too_long"
	}
	if badChars(*p) {
		return "invalid_characters"
	}
	return ""
}

// badChars reports control characters, bidirectional overrides and
// isolates (which make text display other than it reads) and invalid UTF-8.
func badChars(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == utf8.RuneError {
			return true
		}
	}
	return false
}

func checkMetadata(m map[string]string) string {
	if len(m) > 50 {
		return "metadata_too_many_keys"
	}
	for k, v := range m {
		if k == "" || utf8.RuneCountInString(k) > 40 {
			return "metadata_key_invalid"
		}
		if utf8.RuneCountInString(v) > 500 {
			return "metadata_value_too_long"
		}
		// values are free text: tabs and line breaks are fine in them
		if badChars(k) || badChars(strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(v)) {
			return "metadata_invalid_characters"
		}
	}
	return ""
}

func fingerprint(route string, v any) []byte {
	b, _ := json.Marshal(v)
	h := sha256.New()
	h.Write([]byte(route))
	h.Write([]byte{0})
	h.Write(b)
	return h.Sum(nil)
}

// handleCreatePayment records a payment, then enqueues its create step. The
// hot path is two steps: the invoice it pays, from a cache of invoice heads
// (their id, tenant, currency and number never change), and one statement
// that writes the payment, its line, its audit row and its Idempotency-Key
// answer, shared with concurrent creates (store.CreatePayment).
func (s *Server) handleCreatePayment(w http.ResponseWriter, r *http.Request) {
	const route = "POST /v1/payments"
	ctx := r.Context()
	p := principal(ctx)
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req createPaymentRequest
	if err := decode(body, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	v, bad := req.valid(s.cfg.MaxAmountMinor)
	if len(bad) > 0 {
		s.writeError(w, r, validation(bad))
		return
	}
	fp := fingerprint(route, v)
	k, ok := s.idemKey(w, r, route)
	if !ok {
		return
	}
	// destination_id names an invoice the tenant created first, by id or external id
	inv, err := s.invoices.head(ctx, s.store, p.TenantID, v.DestinationID)
	if err == nil {
		err = invoiceTakes(inv, v.Amount.Currency)
	}
	if err != nil {
		// a key already used answers as such, whatever else is wrong
		if k == nil || !s.replayed(w, r, *k, fp) {
			s.writeError(w, r, err)
		}
		return
	}
	pc := store.PaymentCreate{
		NewPayment: store.NewPayment{TenantID: p.TenantID, Surface: surfacePayments, Amount: v.Amount, Method: v.Method,
			PaymentMethodID: v.PaymentMethodID, DestinationType: "INVOICE", DestinationID: v.DestinationID,
			InvoiceID: inv.ID, IdempotencyKey: v.IdempotencyKey, Fingerprint: fp,
			ProcessPayment: v.ProcessPayment, TrackAttempts: true, Metadata: v.Metadata, Actor: p.KeyID},
		InvoiceNumber: inv.InvoiceNumber,
		Respond: func(pay payment.Payment) (int, []byte, error) {
			b, err := json.Marshal(toPayment001(pay))
			return http.StatusCreated, b, err
		},
	}
	if k != nil {
		pc.Idem = &store.IdemWrite{Key: *k, Fingerprint: fp, TTL: s.cfg.IdempotencyTTL}
	}
	for try := 0; ; try++ {
		res, err := s.store.CreatePayment(ctx, pc)
		switch {
		case errors.Is(err, payment.ErrBusinessKeyTaken) && v.IdempotencyKey != "":
			s.replayBusinessKey(w, r, route, &businessKeyConflict{key: v.IdempotencyKey, fingerprint: fp})
			return
		case errors.Is(err, payment.ErrInvoiceOverApplied):
			s.writeError(w, r, validation(map[string]string{"amount": "invoice_over_applied"}))
			return
		case err != nil:
			s.writeError(w, r, err)
			return
		}
		switch res.Outcome {
		case store.KeyInFlight:
			s.writeError(w, r, errInFlight)
		case store.KeyUsed:
			if s.replayed(w, r, *k, fp) {
				return
			}
			// an expired record: forget it and run the request once more
			if err := s.store.ForgetIdempotent(ctx, *k); err != nil || try > 0 {
				s.writeError(w, r, errInFlight)
				return
			}
			continue
		case store.InvoiceRefused:
			// the cached head is out of date (voided since): ask Postgres
			s.invoices.forget(p.TenantID, v.DestinationID)
			inv, err := s.invoices.head(ctx, s.store, p.TenantID, v.DestinationID)
			if err == nil {
				err = invoiceTakes(inv, v.Amount.Currency)
			}
			if err == nil {
				err = errInFlight // changed again meanwhile; the client's retry will see it
			}
			s.writeError(w, r, err)
		case store.Created:
			s.metrics.PaymentsCreated.WithLabelValues(string(v.Method), surfacePayments).Inc()
			s.answer(w, r, res.Code, res.Body, nil, func(ctx context.Context, _ any) {
				s.enqueueStep(ctx, payment.StepCreate, res.Payment.ID, 1)
			})
		}
		return
	}
}

// invoiceTakes refuses a seed-001 payment that its invoice cannot take.
func invoiceTakes(inv payment.Invoice, currency string) error {
	switch {
	case inv.Status == invoiceVoid:
		return validation(map[string]string{"destination_id": "invoice_void"})
	case inv.Currency != currency:
		return validation(map[string]string{"currency": "currency_mismatch"})
	}
	return nil
}

// businessKeyConflict: the body's idempotency_key names an existing payment.
type businessKeyConflict struct {
	key         string
	fingerprint []byte
}

func (e *businessKeyConflict) Error() string { return "idempotency_key already used" }

// replayBusinessKey answers a create whose body idempotency_key already
// exists: the same request gets the existing payment back, another request
// is refused.
func (s *Server) replayBusinessKey(w http.ResponseWriter, r *http.Request, route string, bk *businessKeyConflict) {
	p := principal(r.Context())
	pay, fp, err := s.store.PaymentByKey(r.Context(), p.TenantID, bk.key)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if string(fp) != string(bk.fingerprint) {
		s.writeError(w, r, errKeyReused)
		return
	}
	s.metrics.IdempotentReplays.WithLabelValues(route).Inc()
	w.Header().Set("Idempotent-Replayed", "true")
	writeJSON(w, http.StatusOK, toPayment001(pay))
}

func (s *Server) enqueueStep(ctx context.Context, step payment.Step, id string, seq int) {
	// The request may be over by now; the enqueue must still be tried.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	res := "ok"
	if err := s.enqueue.Step(ctx, step, id, seq, time.Time{}); err != nil {
		res = "error"
		s.log.WarnContext(ctx, "enqueue failed; the sweeper will enqueue it", "payment_id", id, "step", string(step), "err", err)
	}
	s.metrics.Enqueues.WithLabelValues(string(step), res).Inc()
}

func (s *Server) handleGetPayment(w http.ResponseWriter, r *http.Request) {
	pay, err := s.payment001(r.Context(), principal(r.Context()).TenantID, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toPayment001(pay))
}

type listResponse struct {
	Object  string `json:"object"`
	Data    any    `json:"data"`
	HasMore bool   `json:"has_more"`
}

// cursorExists checks a list's starting_after cursor: empty, or an object
// of the tenant that exists. It answers the 422 itself and returns false
// otherwise. An id no object can have (NUL, invalid UTF-8) never reaches
// Postgres, which would refuse it as text.
func (s *Server) cursorExists(w http.ResponseWriter, r *http.Request, after string,
	exists func(context.Context, string) (bool, error)) bool {
	if after == "" {
		return true
	}
	ok := validID(after)
	if ok {
		var err error
		if ok, err = exists(r.Context(), after); err != nil {
			s.writeError(w, r, err)
			return false
		}
	}
	if !ok {
		s.writeError(w, r, validation(map[string]string{"starting_after": "starting_after_not_found"}))
	}
	return ok
}

// parseListParams reads limit and starting_after.
func parseListParams(r *http.Request) (limit int, after string, bad map[string]string) {
	bad = map[string]string{}
	q := r.URL.Query()
	limit = 20
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			bad["limit"] = "limit_invalid"
		}
		limit = n
	}
	after = q.Get("starting_after")
	if len(after) > 100 {
		bad["starting_after"] = "starting_after_invalid"
	}
	return limit, after, bad
}

func (s *Server) handleListPayments(w http.ResponseWriter, r *http.Request) {
	p := principal(r.Context())
	limit, after, bad := parseListParams(r)
	f := store.ListFilter{TenantID: p.TenantID, Surface: surfacePayments, Limit: limit, StartingAfter: after}
	if st := r.URL.Query().Get("status"); st != "" {
		if f.Statuses = statuses001(st); len(f.Statuses) == 0 {
			bad["status"] = "status_invalid"
		}
	}
	if len(bad) > 0 {
		s.writeError(w, r, validation(bad))
		return
	}
	if !s.cursorExists(w, r, after, func(ctx context.Context, id string) (bool, error) {
		return s.store.PaymentExists(ctx, p.TenantID, id)
	}) {
		return
	}
	pays, more, err := s.store.ListPayments(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]paymentResponse, len(pays))
	for i, pay := range pays {
		out[i] = toPayment001(pay)
	}
	writeJSON(w, http.StatusOK, listResponse{Object: "list", Data: out, HasMore: more})
}

// handleCancelPayment cancels a payment that has not been charged: one still
// PENDING, or one waiting for a customer action.
func (s *Server) handleCancelPayment(w http.ResponseWriter, r *http.Request) {
	const route = "POST /v1/payments/{id}/cancel"
	p := principal(r.Context())
	id := r.PathValue("id")
	if _, err := s.payment001(r.Context(), p.TenantID, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.idempotent(w, r, route, fingerprint(route, id), func(ctx context.Context, tx *store.Store) (int, any, error) {
		pay, err := tx.GetPayment(ctx, p.TenantID, id)
		if err != nil {
			return 0, nil, err
		}
		if pay.Status != payment.StatusPending && pay.Status != payment.StatusRequiresAction {
			return 0, nil, errf(http.StatusConflict, typeConflict, "payment_not_cancelable",
				fmt.Sprintf("a payment that is %s can no longer be canceled", paymentStatus001[pay.Status]))
		}
		if _, err := tx.Apply(ctx, store.Change{PaymentID: id, From: pay.Status, To: payment.StatusCanceled, AnySeq: true,
			Reason: "canceled by the merchant", Actor: p.KeyID, ErrorCode: "canceled", ErrorMessage: "payment canceled"}); err != nil {
			if errors.Is(err, payment.ErrStale) {
				return 0, nil, errf(http.StatusConflict, typeConflict, "payment_not_cancelable", "the payment moved on; fetch it and retry")
			}
			return 0, nil, err
		}
		pay, err = tx.GetPayment(ctx, p.TenantID, id)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, toPayment001(pay), nil
	}, nil)
}

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
	NextAction        *nextAction       `json:"next_action,omitempty"`
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

const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func ts(t time.Time) string { return t.UTC().Format(timeFormat) }

func tsp(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := ts(*t)
	return &s
}

func strp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toPayment001(p payment.Payment) paymentResponse {
	meta := p.Metadata
	if meta == nil {
		meta = map[string]string{}
	}
	out := paymentResponse{
		ID: p.ID, Amount: json.Number(payment.FormatMajor(p.Amount.Minor, p.Amount.Currency)), Currency: p.Amount.Currency,
		DestinationID: p.DestinationID, DestinationType: p.DestinationType, IdempotencyKey: strp(p.IdempotencyKey),
		InvoiceNumber: p.InvoiceNumber, Metadata: meta, PaymentMethodID: p.PaymentMethodID,
		PaymentMethodType: string(p.Method), PaymentStatus: paymentStatus001[p.Status], TrackAttempts: p.TrackAttempts,
		Attempts: make([]attemptResponse, 0, len(p.Attempts)), ErrorMessage: strp(p.ErrorMessage),
		RefundedAmount: json.Number(payment.FormatMajor(p.RefundedAmount, p.Amount.Currency)),
		TenantID:       p.TenantID, CreatedAt: ts(p.CreatedAt), CreatedBy: p.CreatedBy, UpdatedAt: ts(p.UpdatedAt),
		UpdatedBy: p.UpdatedBy, SucceededAt: tsp(p.SucceededAt), FailedAt: tsp(p.FailedAt), RefundedAt: tsp(p.RefundedAt),
	}
	if p.FailedAt == nil && (p.Status == payment.StatusCanceled || p.Status == payment.StatusReturned) {
		out.FailedAt = tsp(firstNonNil(p.CanceledAt, p.ReturnedAt))
	}
	if p.Status == payment.StatusRequiresAction && p.ActionURL != "" {
		out.NextAction = &nextAction{Type: "redirect_to_url", URL: p.ActionURL}
	}
	for _, a := range p.Attempts {
		out.Attempts = append(out.Attempts, toAttempt(a))
	}
	return out
}

func toAttempt(a payment.Attempt) attemptResponse {
	return attemptResponse{ID: a.ID, AttemptNumber: a.Number, PaymentID: a.PaymentID, TenantID: a.TenantID,
		Status: string(a.Status), FailureClass: strp(string(a.FailureClass)), ErrorCode: strp(a.ErrorCode),
		ErrorMessage: strp(a.ErrorMessage), Inquiries: a.InquiryCount, Metadata: map[string]string{}, CreatedAt: ts(a.StartedAt),
		CreatedBy: a.CreatedBy, UpdatedAt: ts(a.UpdatedAt), UpdatedBy: a.CreatedBy}
}

func firstNonNil(ts ...*time.Time) *time.Time {
	for _, t := range ts {
		if t != nil {
			return t
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// payment001 loads a payment of the seed-001 surface: a payout or any other
// surface's payment is not one of this surface's objects (404), so its
// routes can never cancel or refund it under the wrong rules.
func (s *Server) payment001(ctx context.Context, tenantID, id string) (payment.Payment, error) {
	pay, err := s.store.GetPayment(ctx, tenantID, id)
	if err == nil && pay.Surface != surfacePayments {
		return payment.Payment{}, payment.ErrNotFound
	}
	return pay, err
}
