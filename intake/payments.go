package intake

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// Payments that collect an invoice (seed 001's surface).

const surfacePayments = "payments"

// paymentMethods are the payment_method_type values of a payment.
var paymentMethods = map[string]payment.Method{
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
func (req createPaymentRequest) valid(lim limits) (validPayment, map[string]string) {
	bad := map[string]string{}
	v := validPayment{ProcessPayment: true}
	cur := currencyCode(req.Currency)
	if code := checkCurrency(cur); code != "" {
		bad["currency"] = code
	} else if minor, code := parseAmount(req.Amount, cur, lim.maxAmount, false); code != "" {
		bad["amount"] = code
	} else {
		v.Amount = payment.Money{Minor: minor, Currency: cur}
	}
	if _, badCurrency := bad["currency"]; badCurrency && req.Amount.absent() {
		bad["amount"] = "amount_required"
	}
	v.DestinationID = str(req.DestinationID)
	if code := checkText(req.DestinationID, true, 255); code != "" {
		bad["destination_id"] = "destination_id_" + code
	}
	switch dt := str(req.DestinationType); {
	case dt == "":
		bad["destination_type"] = "destination_type_required"
	case dt != "INVOICE":
		bad["destination_type"] = "destination_type_invalid"
	}
	m, code := oneOf("payment_method_type", req.PaymentMethodType, paymentMethods)
	if code != "" {
		bad["payment_method_type"] = code
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

// handleCreatePayment records a payment, then enqueues its create step. The
// hot path is two steps: the invoice it pays, from a cache of invoice heads
// (their id, tenant, currency and number never change), and one statement
// that writes the payment, its line, its audit row and its Idempotency-Key
// answer, shared with concurrent creates (store.CreatePayment).
func (s *Server) handleCreatePayment(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/payments"
	ctx := r.Context()
	p := principal(ctx)
	v, err := decodeValid(s, w, r, &createPaymentRequest{})
	if err != nil {
		return err
	}
	fp := fingerprint(route, v)
	k, err := s.idemKey(r, route)
	if err != nil {
		return err
	}
	// destination_id names an invoice the tenant created first, by id or external id
	inv, err := s.invoices.head(ctx, s.store, p.TenantID, v.DestinationID)
	if err == nil {
		err = invoiceTakes(inv, v.Amount.Currency)
	}
	if err != nil {
		// a key already used answers as such, whatever else is wrong
		if k != nil {
			if done, rerr := s.replayed(w, r, *k, fp); done || rerr != nil {
				return rerr
			}
		}
		return err
	}
	pc := store.PaymentCreate{
		NewPayment: store.NewPayment{TenantID: p.TenantID, Surface: surfacePayments, Amount: v.Amount, Method: v.Method,
			PaymentMethodID: v.PaymentMethodID, DestinationType: "INVOICE", DestinationID: v.DestinationID,
			InvoiceID: inv.ID, IdempotencyKey: v.IdempotencyKey, Fingerprint: fp,
			ProcessPayment: v.ProcessPayment, TrackAttempts: true, Metadata: v.Metadata, Actor: p.KeyID},
		InvoiceNumber: inv.InvoiceNumber,
		Respond: func(pay payment.Payment) (int, []byte, error) {
			b, err := json.Marshal(toPaymentResponse(pay))
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
			return s.replayBusinessKey(w, r, route, &businessKeyConflict{key: v.IdempotencyKey, fingerprint: fp})
		case errors.Is(err, payment.ErrInvoiceOverApplied):
			return validation(map[string]string{"amount": "invoice_over_applied"})
		case err != nil:
			return err
		}
		switch res.Outcome {
		case store.KeyInFlight:
			return errInFlight
		case store.KeyUsed:
			if done, err := s.replayed(w, r, *k, fp); done || err != nil {
				return err
			}
			// an expired record: forget it and run the request once more
			if err := s.store.ForgetIdempotent(ctx, *k); err != nil || try > 0 {
				return errInFlight
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
			return err
		case store.Created:
			s.metrics.PaymentsCreated.WithLabelValues(string(v.Method), surfacePayments).Inc()
			s.answer(w, r, res.Code, res.Body, nil, func(ctx context.Context, _ any) {
				s.enqueueStep(ctx, payment.StepCreate, res.Payment.ID, 1)
			})
		}
		return nil
	}
}

// invoiceTakes refuses a payment that its invoice cannot take.
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
func (s *Server) replayBusinessKey(w http.ResponseWriter, r *http.Request, route string, bk *businessKeyConflict) error {
	p := principal(r.Context())
	pay, fp, err := s.store.PaymentByKey(r.Context(), p.TenantID, bk.key)
	if err != nil {
		return err
	}
	if string(fp) != string(bk.fingerprint) {
		return errKeyReused
	}
	s.metrics.IdempotentReplays.WithLabelValues(route).Inc()
	w.Header().Set("Idempotent-Replayed", "true")
	writeJSON(w, http.StatusOK, toPaymentResponse(pay))
	return nil
}

func (s *Server) enqueueStep(ctx context.Context, step payment.Step, id string, seq int) {
	s.enqueueStepAt(ctx, step, id, seq, time.Time{})
}

// enqueueStepAt enqueues a step due at at (zero: now).
func (s *Server) enqueueStepAt(ctx context.Context, step payment.Step, id string, seq int, at time.Time) {
	// The request may be over by now; the enqueue must still be tried.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	res := "ok"
	if err := s.enqueue.Step(ctx, step, id, seq, at); err != nil {
		res = "error"
		s.log.WarnContext(ctx, "enqueue failed; the sweeper will enqueue it", "payment_id", id, "step", string(step), "err", err)
	}
	s.metrics.Enqueues.WithLabelValues(string(step), res).Inc()
}

func (s *Server) handleGetPayment(w http.ResponseWriter, r *http.Request) error {
	pay, err := s.loadPayment(r.Context(), principal(r.Context()).TenantID, r.PathValue("id"))
	return writeOne(w, pay, err, toPaymentResponse)
}

// loadPayment loads a payment of this surface: a payout or any other
// surface's payment is not one of its objects (404), so its routes can
// never cancel or refund it under the wrong rules.
func (s *Server) loadPayment(ctx context.Context, tenantID, id string) (payment.Payment, error) {
	pay, err := s.store.GetPayment(ctx, tenantID, id)
	if err == nil && pay.Surface != surfacePayments {
		return payment.Payment{}, payment.ErrNotFound
	}
	return pay, err
}
