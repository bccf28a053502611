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
func (s *Server) handleCreateRefund(w http.ResponseWriter, r *http.Request) {
	const route = "POST /v1/payments/{id}/refunds"
	p := principal(r.Context())
	id := r.PathValue("id")
	pay, err := s.payment001(r.Context(), p.TenantID, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req createRefundRequest
	if err := decode(body, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	bad := map[string]string{}
	amount := pay.Amount.Minor - pay.RefundedAmount - pay.RefundPendingAmount
	if req.Amount.Set {
		var code string
		if amount, code = parseAmount(req.Amount, pay.Amount.Currency, s.cfg.MaxAmountMinor, false); code != "" {
			bad["amount"] = code
		}
	}
	if code := checkText(req.Reason, false, 255); code != "" {
		bad["reason"] = "reason_" + code
	}
	if len(bad) > 0 {
		s.writeError(w, r, validation(bad))
		return
	}
	if pay.Method.BankRail() {
		s.writeError(w, r, validation(map[string]string{"payment": "refund_not_supported_for_method"}))
		return
	}
	if req.Amount.Set && amount <= 0 {
		s.writeError(w, r, validation(map[string]string{"amount": "refund_exceeds_refundable"}))
		return
	}
	// The fingerprint is the request as sent: a full refund (no amount) is
	// "the rest", whose amount is known only under the payment's lock, so
	// that a replay of it is recognised after it took everything.
	var asked any = "rest"
	if req.Amount.Set {
		asked = amount
	}
	fp := fingerprint(route, []any{id, asked, str(req.Reason)})
	s.idempotent(w, r, route, fp, func(ctx context.Context, tx *store.Store) (int, any, error) {
		amount := amount
		if !req.Amount.Set {
			locked, err := tx.LockPayment(ctx, id)
			if err != nil {
				return 0, nil, err
			}
			amount = locked.Amount.Minor - locked.RefundedAmount - locked.RefundPendingAmount
			if amount <= 0 {
				return 0, nil, validation(map[string]string{"amount": "refund_exceeds_refundable"})
			}
		}
		ref, err := tx.CreateRefund(ctx, p.TenantID, id, amount, str(req.Reason), p.KeyID)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusCreated, refundResponse{ID: ref.ID, PaymentID: ref.PaymentID,
			Amount:   json.Number(payment.FormatMajor(ref.Amount, ref.Currency)),
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
