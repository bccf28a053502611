package intake

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// handleCancelPayment cancels a payment that has not been charged. One
// still PENDING (no attempt in flight) is CANCELED at once: 200. One that
// awaits a customer action (3-D Secure) is voided at the gateway first, so
// the customer can no longer complete it: the cancel is recorded and the
// void step enqueued, 202 with the payment as it stands; the void step then
// cancels it (and refunds the charge if the customer had completed the
// action before the void reached the gateway).
func (s *Server) handleCancelPayment(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/payments/{id}/cancel"
	p := principal(r.Context())
	id := r.PathValue("id")
	if _, err := s.loadPayment(r.Context(), p.TenantID, id); err != nil {
		return err
	}
	voidSeq := 0
	return s.idempotent(w, r, route, fingerprint(route, id), func(ctx context.Context, tx *store.Store) (int, any, error) {
		pay, err := tx.GetPayment(ctx, p.TenantID, id)
		if err != nil {
			return 0, nil, err
		}
		moved := errf(http.StatusConflict, typeConflict, "payment_not_cancelable", "the payment moved on; fetch it and retry")
		code := http.StatusOK
		switch {
		case pay.Status == payment.StatusPending:
			_, err = tx.Apply(ctx, store.Change{PaymentID: id, From: pay.Status, To: payment.StatusCanceled, AnySeq: true,
				Reason: "canceled by the merchant", Actor: p.KeyID, ErrorCode: "canceled", ErrorMessage: "payment canceled"})
		case pay.Status == payment.StatusRequiresAction && pay.CancelRequestedAt == nil:
			code = http.StatusAccepted
			voidSeq, err = tx.RequestCancel(ctx, id, p.KeyID, "cancel requested by the merchant: voiding the customer action at the gateway")
		case pay.Status == payment.StatusRequiresAction:
			return 0, nil, errf(http.StatusConflict, typeConflict, "payment_cancel_pending",
				"a cancel of this payment is already being processed")
		default:
			return 0, nil, errf(http.StatusConflict, typeConflict, "payment_not_cancelable",
				fmt.Sprintf("a payment that is %s can no longer be canceled", payment.PaymentsStatusName(pay.Status)))
		}
		if errors.Is(err, payment.ErrStale) {
			return 0, nil, moved
		}
		if err != nil {
			return 0, nil, err
		}
		pay, err = tx.GetPayment(ctx, p.TenantID, id)
		if err != nil {
			return 0, nil, err
		}
		return code, toPaymentResponse(pay), nil
	}, func(ctx context.Context, _ any) {
		if voidSeq > 0 {
			s.enqueueStep(ctx, payment.StepVoid, id, voidSeq)
		}
	})
}
