package intake

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

type createRefundRequest struct {
	Amount decimal `json:"amount"` // optional: the whole refundable amount when absent
	Reason *string `json:"reason"`
	// of is the payment refunded, loaded before the body is read.
	of payment.Payment
}

// validRefund is a refund request that passed validation. Amount is what
// was refundable when it was checked, when the request names none.
type validRefund struct {
	Amount int64
	Asked  bool // the request names the amount
	Reason string
}

// valid checks the request against the payment it refunds.
func (req createRefundRequest) valid(lim limits) (validRefund, map[string]string) {
	bad := map[string]string{}
	pay := req.of
	v := validRefund{Amount: refundable(pay), Asked: req.Amount.Set, Reason: str(req.Reason)}
	if v.Asked {
		var code string
		if v.Amount, code = parseAmount(req.Amount, pay.Amount.Currency, lim.maxAmount, false); code != "" {
			bad["amount"] = code
		}
	}
	if code := checkText(req.Reason, false, 255); code != "" {
		bad["reason"] = "reason_" + code
	}
	switch {
	case len(bad) > 0:
	case pay.Method.BankRail():
		bad["payment"] = "refund_not_supported_for_method"
	case v.Asked && v.Amount <= 0:
		bad["amount"] = "refund_exceeds_refundable"
	}
	return v, bad
}

// refundable is what of a payment is left to refund.
func refundable(p payment.Payment) int64 {
	return p.Amount.Minor - p.RefundedAmount - p.RefundPendingAmount
}

type refundResponse struct {
	ID        string      `json:"id"`
	PaymentID string      `json:"payment_id"`
	Amount    json.Number `json:"amount"`
	Currency  string      `json:"currency"`
	Reason    *string     `json:"reason"`
	Status    string      `json:"status"`
	CreatedAt string      `json:"created_at"`
}

// handleCreateRefund refunds part or all of a captured payment. The amount
// is reserved against the payment in the same transaction that records the
// refund, so refunds can never add up to more than was captured.
func (s *Server) handleCreateRefund(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/payments/{id}/refunds"
	p := principal(r.Context())
	id := r.PathValue("id")
	pay, err := s.loadPayment(r.Context(), p.TenantID, id)
	if err != nil {
		return err
	}
	v, err := decodeValid(s, w, r, &createRefundRequest{of: pay})
	if err != nil {
		return err
	}
	// The fingerprint is the request as sent: a full refund (no amount) is
	// "the rest", whose amount is known only under the payment's lock, so
	// that a replay of it is recognised after it took everything.
	var asked any = "rest"
	if v.Asked {
		asked = v.Amount
	}
	fp := fingerprint(route, []any{id, asked, v.Reason})
	return s.idempotent(w, r, route, fp, func(ctx context.Context, tx *store.Store) (int, any, error) {
		amount := v.Amount
		if !v.Asked {
			locked, err := tx.LockPayment(ctx, id)
			if err != nil {
				return 0, nil, err
			}
			if amount = refundable(locked); amount <= 0 {
				return 0, nil, validation(map[string]string{"amount": "refund_exceeds_refundable"})
			}
		}
		ref, err := tx.CreateRefund(ctx, p.TenantID, id, amount, v.Reason, p.KeyID)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusCreated, refundResponse{ID: ref.ID, PaymentID: ref.PaymentID, Amount: major(ref.Amount, ref.Currency),
			Currency: ref.Currency, Reason: strp(ref.Reason), Status: string(ref.Status), CreatedAt: ts(ref.CreatedAt)}, nil
	}, func(ctx context.Context, resp any) {
		rr := resp.(refundResponse)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := s.enqueue.Refund(ctx, rr.ID, 1, time.Time{}); err != nil {
			s.log.WarnContext(ctx, "enqueue refund failed; the sweeper will enqueue it", "refund_id", rr.ID, "err", err)
		}
	})
}
