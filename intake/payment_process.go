package intake

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// The seed-001 vendor's routes on a recorded payment: process one recorded
// with process_payment=false (POST /v1/payments/{id}/process), change what
// may change (PUT /v1/payments/{id}), delete one that moved no money
// (DELETE /v1/payments/{id}). Each runs in one transaction with its
// Idempotency-Key answer, as every write of intake does.

// errAlreadyProcessed: the payment is not one recorded with
// process_payment=false and waiting (processed before, by this route or at
// create, or canceled since).
func errAlreadyProcessed(pay payment.Payment) error {
	return errf(http.StatusConflict, typeConflict, "payment_already_processed",
		fmt.Sprintf("the payment is %s and was processed already (or never waited to be): only a payment recorded with process_payment=false is processed by this route, once",
			payment.PaymentsStatusName(pay.Status)))
}

// paymentIn is loadPayment through st: the server's store, or the
// transaction of a write. A deleted payment (DELETE /v1/payments/{id}) is
// gone from the API.
func paymentIn(ctx context.Context, st *store.Store, tenantID, id string) (payment.Payment, error) {
	pay, err := st.GetPayment(ctx, tenantID, id)
	if err == nil && (pay.Surface != surfacePayments || pay.DeletedAt != nil) {
		return payment.Payment{}, payment.ErrNotFound
	}
	return pay, err
}

// handleProcessPayment processes a payment recorded with
// process_payment=false: its create step is scheduled (a CARD or ACH
// payment goes to the gateway, an OFFLINE or CREDITS one is recorded
// SUCCEEDED without one), 200 with the payment as it stands (PENDING). The
// schedule is one guarded update: of two concurrent calls exactly one
// processes the payment; the other, and any later call, is 409
// payment_already_processed (a retry with the first call's Idempotency-Key
// gets the first answer back).
func (s *Server) handleProcessPayment(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/payments/{id}/process"
	p := principal(r.Context())
	id := r.PathValue("id")
	if _, err := s.loadPayment(r.Context(), p.TenantID, id); err != nil {
		return err
	}
	seq := 0
	return s.idempotent(w, r, route, fingerprint(route, id), func(ctx context.Context, tx *store.Store) (int, any, error) {
		pay, err := paymentIn(ctx, tx, p.TenantID, id)
		if err != nil {
			return 0, nil, err
		}
		if !pay.Unprocessed() {
			return 0, nil, errAlreadyProcessed(pay)
		}
		if !pay.Method.WithoutGateway() && pay.PaymentMethodID == "" {
			return 0, nil, validation(map[string]string{"payment_method_id": "payment_method_id_required"})
		}
		seq, err = tx.ProcessPayment(ctx, p.TenantID, id, p.KeyID)
		if errors.Is(err, payment.ErrStale) {
			return 0, nil, errAlreadyProcessed(pay)
		}
		if err != nil {
			return 0, nil, err
		}
		if pay, err = paymentIn(ctx, tx, p.TenantID, id); err != nil {
			return 0, nil, err
		}
		return http.StatusOK, toPaymentResponse(pay), nil
	}, func(ctx context.Context, _ any) {
		if seq > 0 {
			s.enqueueStep(ctx, payment.StepCreate, id, seq)
		}
	})
}

// updatePaymentRequest is the vendor's update-payment body. payd lets a
// merchant change what is theirs: metadata (replaced whole), and the
// payment method while the payment is unprocessed. The rest is the state
// machine's to set, from the gateway's answers: naming one is 422
// <field>_not_updatable.
type updatePaymentRequest struct {
	Metadata         map[string]string `json:"metadata"`
	PaymentMethodID  *string           `json:"payment_method_id"`
	PaymentStatus    *string           `json:"payment_status"`
	SucceededAt      *string           `json:"succeeded_at"`
	FailedAt         *string           `json:"failed_at"`
	ErrorMessage     *string           `json:"error_message"`
	GatewayPaymentID *string           `json:"gateway_payment_id"`
	PaymentGateway   *string           `json:"payment_gateway"`
}

type validUpdate struct {
	Metadata        map[string]string `json:"metadata,omitempty"`
	PaymentMethodID *string           `json:"payment_method_id,omitempty"`
}

func (req updatePaymentRequest) valid(limits) (validUpdate, map[string]string) {
	bad := map[string]string{}
	v := validUpdate{Metadata: req.Metadata, PaymentMethodID: req.PaymentMethodID}
	if code := checkMetadata(req.Metadata); code != "" {
		bad["metadata"] = code
	}
	if req.PaymentMethodID != nil {
		if code := checkText(req.PaymentMethodID, true, 255); code != "" {
			bad["payment_method_id"] = "payment_method_id_" + code
		}
	}
	for field, p := range map[string]*string{"payment_status": req.PaymentStatus, "succeeded_at": req.SucceededAt,
		"failed_at": req.FailedAt, "error_message": req.ErrorMessage, "gateway_payment_id": req.GatewayPaymentID,
		"payment_gateway": req.PaymentGateway} {
		if p != nil {
			bad[field] = field + "_not_updatable"
		}
	}
	return v, bad
}

// handleUpdatePayment changes a payment's metadata or (before it is
// processed) its payment method, audited (a payment_events row that keeps
// the status); 200 with the payment.
func (s *Server) handleUpdatePayment(w http.ResponseWriter, r *http.Request) error {
	const route = "PUT /v1/payments/{id}"
	p := principal(r.Context())
	id := r.PathValue("id")
	if _, err := s.loadPayment(r.Context(), p.TenantID, id); err != nil {
		return err
	}
	v, err := decodeValid(s, w, r, &updatePaymentRequest{})
	if err != nil {
		return err
	}
	return s.idempotent(w, r, route, fingerprint(route, []any{id, v}), func(ctx context.Context, tx *store.Store) (int, any, error) {
		pay, err := paymentIn(ctx, tx, p.TenantID, id)
		if err != nil {
			return 0, nil, err
		}
		notUpdatable := errf(http.StatusConflict, typeConflict, "payment_not_updatable",
			fmt.Sprintf("the payment method of a payment that is %s can no longer change: only before the payment is processed",
				payment.PaymentsStatusName(pay.Status)))
		if v.PaymentMethodID != nil && !pay.Unprocessed() {
			return 0, nil, notUpdatable
		}
		if v.Metadata == nil && v.PaymentMethodID == nil {
			return http.StatusOK, toPaymentResponse(pay), nil // nothing to change
		}
		reason := "updated:"
		if v.Metadata != nil {
			reason += " metadata"
		}
		if v.PaymentMethodID != nil {
			reason += " payment_method_id"
		}
		err = tx.UpdatePayment(ctx, p.TenantID, id, store.PaymentUpdate{Metadata: v.Metadata,
			PaymentMethodID: v.PaymentMethodID, Actor: p.KeyID, Reason: reason + " (PUT /v1/payments/{id})"})
		if errors.Is(err, payment.ErrStale) {
			return 0, nil, notUpdatable
		}
		if err != nil {
			return 0, nil, err
		}
		if pay, err = paymentIn(ctx, tx, p.TenantID, id); err != nil {
			return 0, nil, err
		}
		return http.StatusOK, toPaymentResponse(pay), nil
	}, nil)
}

// deleteResponse is the vendor's answer to a delete.
type deleteResponse struct {
	Message string `json:"message"`
}

// handleDeletePayment deletes a payment that moved no money: one recorded
// with process_payment=false and never processed. It is CANCELED (its
// invoice reservation released, audited, its payment.canceled event
// emitted) and marked deleted: from then on the API answers 404 for it and
// lists leave it out; the row and its audit trail stay. Any other payment
// is 409 payment_not_deletable (a payment that went to a gateway is never
// deleted; cancel or refund it).
func (s *Server) handleDeletePayment(w http.ResponseWriter, r *http.Request) error {
	const route = "DELETE /v1/payments/{id}"
	p := principal(r.Context())
	id := r.PathValue("id")
	if _, err := s.loadPayment(r.Context(), p.TenantID, id); err != nil {
		return err
	}
	return s.idempotent(w, r, route, fingerprint(route, id), func(ctx context.Context, tx *store.Store) (int, any, error) {
		pay, err := paymentIn(ctx, tx, p.TenantID, id)
		if err != nil {
			return 0, nil, err
		}
		notDeletable := errf(http.StatusConflict, typeConflict, "payment_not_deletable",
			fmt.Sprintf("a payment that is %s can no longer be deleted: only a PENDING payment recorded with process_payment=false and never processed can (cancel or refund this one)",
				payment.PaymentsStatusName(pay.Status)))
		if !pay.Unprocessed() {
			return 0, nil, notDeletable
		}
		err = tx.DeletePayment(ctx, p.TenantID, id, p.KeyID)
		if errors.Is(err, payment.ErrStale) {
			return 0, nil, notDeletable
		}
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, deleteResponse{Message: "payment deleted"}, nil
	}, nil)
}
