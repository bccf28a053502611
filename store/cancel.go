package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/payd/payd/payment"
)

// RequestCancel records the merchant's cancel of a payment that awaits a
// customer action: its next step becomes a void at the gateway, due now,
// and a note in its timeline says who asked. The void step then cancels
// the payment (or, when the customer's action had already charged, cancels
// it and refunds the charge). It is guarded on the payment still awaiting
// the action with no cancel requested: payment.ErrStale otherwise. It
// returns the new step sequence, for the void task's ID.
func (s *Store) RequestCancel(ctx context.Context, paymentID, actor, reason string) (int, error) {
	var seq int
	err := s.InTx(ctx, func(tx *Store) error {
		now := tx.now()
		var tenant string
		var attempt int
		err := tx.q.QueryRowxContext(ctx, `UPDATE payments SET next_step = 'void', next_step_at = $2,
				step_seq = step_seq + 1, swept = false, cancel_requested_at = $2, updated_at = $2, updated_by = $3
			WHERE id = $1 AND status = 'REQUIRES_ACTION' AND cancel_requested_at IS NULL
			RETURNING step_seq, tenant_id, attempt_count`, paymentID, now, actor).Scan(&seq, &tenant, &attempt)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("request cancel of %s: %w", paymentID, payment.ErrStale)
		}
		if err != nil {
			return translate(fmt.Errorf("request cancel of %s: %w", paymentID, err))
		}
		return tx.insertEvent(ctx, payment.Event{PaymentID: paymentID, TenantID: tenant, From: payment.StatusRequiresAction,
			To: payment.StatusRequiresAction, Reason: reason, AttemptNumber: attempt, Actor: actor, CreatedAt: now})
	})
	return seq, err
}
