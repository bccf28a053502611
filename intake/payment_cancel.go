package intake

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// handleCancelPayment cancels a payment that has not been charged: one still
// PENDING, or one waiting for a customer action.
func (s *Server) handleCancelPayment(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/payments/{id}/cancel"
	p := principal(r.Context())
	id := r.PathValue("id")
	if _, err := s.loadPayment(r.Context(), p.TenantID, id); err != nil {
		return err
	}
	return s.idempotent(w, r, route, fingerprint(route, id), func(ctx context.Context, tx *store.Store) (int, any, error) {
		pay, err := tx.GetPayment(ctx, p.TenantID, id)
		if err != nil {
			return 0, nil, err
		}
		if pay.Status != payment.StatusPending && pay.Status != payment.StatusRequiresAction {
			return 0, nil, errf(http.StatusConflict, typeConflict, "payment_not_cancelable",
				fmt.Sprintf("a payment that is %s can no longer be canceled", paymentStatusNames[pay.Status]))
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
		return http.StatusOK, toPaymentResponse(pay), nil
	}, nil)
}
