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
	// The vendor's fields the seed page does not show (its client sends
	// save_card_and_make_default always): recorded and answered with
	// (docs/surfaces.md says what each one does in payd).
	PaymentGateway         *string `json:"payment_gateway"`
	SaveCardAndMakeDefault *bool   `json:"save_card_and_make_default"`
	SuccessURL             *string `json:"success_url"`
	CancelURL              *string `json:"cancel_url"`
}

// paymentGateways are the payment_gateway values of the vendor's API
// (its client's enum) and payd's own connectors: a request may name the
// connector this payd runs (Config.NotifyGateway); another known name is
// payment_gateway_not_configured, any other payment_gateway_invalid.
var paymentGateways = map[string]bool{
	"sandbox": true, "stripe": true, "razorpay": true, "nomod": true, "moyasar": true,
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
	// omitempty: a request without them fingerprints as it always did
	PaymentGateway string          `json:"payment_gateway,omitempty"`
	Options        payment.Options `json:"options,omitzero"`
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
	needsPM := v.ProcessPayment && bad["payment_method_type"] == "" && !m.WithoutGateway()
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
	v.PaymentGateway = str(req.PaymentGateway)
	switch g := v.PaymentGateway; {
	case req.PaymentGateway == nil:
	case g == "" || !paymentGateways[g]:
		bad["payment_gateway"] = "payment_gateway_invalid"
	case bad["payment_method_type"] == "" && m.WithoutGateway():
		bad["payment_gateway"] = "payment_gateway_not_applicable"
	}
	if req.SaveCardAndMakeDefault != nil {
		v.Options.SaveCardAndMakeDefault = *req.SaveCardAndMakeDefault
	}
	for _, u := range []struct {
		field string
		p     *string
		to    *string
	}{{"success_url", req.SuccessURL, &v.Options.SuccessURL}, {"cancel_url", req.CancelURL, &v.Options.CancelURL}} {
		if u.p == nil || *u.p == "" {
			continue
		}
		if code := checkURL(u.p); code != "" {
			bad[u.field] = u.field + "_" + code
		}
		*u.to = *u.p
	}
	return v, bad
}

// gatewayFor is the connector a valid payment goes to: this payd's own for
// CARD and ACH, none for OFFLINE and CREDITS. A request naming another
// connector is refused: payd runs one.
func (s *Server) gatewayFor(v validPayment) (string, error) {
	if v.Method.WithoutGateway() {
		return "", nil
	}
	if v.PaymentGateway != "" && v.PaymentGateway != s.cfg.NotifyGateway {
		return "", validation(map[string]string{"payment_gateway": "payment_gateway_not_configured"})
	}
	return s.cfg.NotifyGateway, nil
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
	var gateway string
	if err == nil {
		gateway, err = s.gatewayFor(v)
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
			ProcessPayment: v.ProcessPayment, TrackAttempts: true, Metadata: v.Metadata, Actor: p.KeyID,
			Gateway: gateway, Options: v.Options},
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
				// process_payment=false: recorded only, nothing to run
				// until POST /v1/payments/{id}/process
				if v.ProcessPayment {
					s.enqueueStep(ctx, payment.StepCreate, res.Payment.ID, 1)
				}
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
// exists: the same request gets the existing payment back (201, replayed),
// another request is refused.
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
	// 201 as the first answer was, like a replay by the Idempotency-Key
	// header: the seed-001 vendor answers 201 to a repeated create, and
	// its client refuses any other status from createPayment.
	writeJSON(w, http.StatusCreated, toPaymentResponse(pay))
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
	return paymentIn(ctx, s.store, tenantID, id)
}
