package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/payd/payd/payment"
)

// The seed-001 vendor's routes on a recorded payment: process one recorded
// with process_payment=false, update what may change, delete one that moved
// no money. Each is one guarded statement with its audit row.

// unprocessed is the guard of a payment recorded with process_payment=false
// and not processed since: nothing has been asked of a gateway, and no step
// is scheduled.
const unprocessed = `status = 'PENDING' AND NOT process_payment AND next_step IS NULL
	AND attempt_count = 0 AND deleted_at IS NULL`

// ProcessPayment starts processing a payment of the tenant recorded with
// process_payment=false: it becomes a payment to process (its create step
// due now), with an audit row saying who asked. The update is guarded on the
// payment still being unprocessed, so of two concurrent calls one wins and
// the other gets payment.ErrStale. It returns the create step's sequence,
// for its task's ID. (The caller enqueues the step after commit; if that
// enqueue is lost, the sweeper finds the due step.)
func (s *Store) ProcessPayment(ctx context.Context, tenantID, id, actor string) (int, error) {
	now := s.now()
	var seq int
	err := s.q.QueryRowxContext(ctx, `
		WITH p AS (
			UPDATE payments SET process_payment = true, next_step = 'create', next_step_at = $3,
				step_seq = step_seq + 1, swept = false, updated_at = $3, updated_by = $4
			WHERE id = $1 AND tenant_id = $2 AND surface = 'payments' AND `+unprocessed+`
			RETURNING id, tenant_id, step_seq),
		e AS (
			INSERT INTO payment_events (payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at)
			SELECT id, tenant_id, 'PENDING', 'PENDING', 'processing requested (POST /v1/payments/{id}/process)', 0, $4, $3 FROM p)
		SELECT step_seq FROM p`, id, tenantID, now, actor).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("process payment %s: %w", id, payment.ErrStale)
	}
	if err != nil {
		return 0, translate(fmt.Errorf("process payment %s: %w", id, err))
	}
	return seq, nil
}

// PaymentUpdate is what PUT /v1/payments/{id} may change; nil leaves a
// field as it is.
type PaymentUpdate struct {
	Metadata map[string]string // replaces the whole map
	// PaymentMethodID changes only while the payment is unprocessed.
	PaymentMethodID *string
	Actor           string
	Reason          string // the audit row's reason
}

// UpdatePayment applies u to a seed-001 payment of the tenant that is not
// deleted, with an audit row (its status unchanged). A payment method
// changes only while the payment is unprocessed: payment.ErrStale when it
// is not (anymore), or when the payment is deleted or not the tenant's.
func (s *Store) UpdatePayment(ctx context.Context, tenantID, id string, u PaymentUpdate) error {
	now := s.now()
	var meta any
	if u.Metadata != nil {
		b, err := json.Marshal(u.Metadata)
		if err != nil {
			return fmt.Errorf("encode metadata: %w", err)
		}
		meta = string(b)
	}
	var pm any
	if u.PaymentMethodID != nil {
		pm = *u.PaymentMethodID
	}
	var n int
	err := s.q.QueryRowxContext(ctx, `
		WITH p AS (
			UPDATE payments SET metadata = COALESCE($3::jsonb, metadata),
				payment_method_id = COALESCE($4::text, payment_method_id), updated_at = $5, updated_by = $6
			WHERE id = $1 AND tenant_id = $2 AND surface = 'payments' AND deleted_at IS NULL
			  AND ($4::text IS NULL OR (`+unprocessed+`))
			RETURNING id, tenant_id, status, attempt_count),
		e AS (
			INSERT INTO payment_events (payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at)
			SELECT id, tenant_id, status, status, $7, attempt_count, $6, $5 FROM p)
		SELECT count(*) FROM p`, id, tenantID, meta, pm, now, u.Actor, u.Reason).Scan(&n)
	if err != nil {
		return translate(fmt.Errorf("update payment %s: %w", id, err))
	}
	if n == 0 {
		return fmt.Errorf("update payment %s: %w", id, payment.ErrStale)
	}
	return nil
}

// DeletePayment deletes a seed-001 payment of the tenant that moved no
// money: one recorded with process_payment=false and never processed. It
// is CANCELED (audited, its invoice reservation released, its event
// emitted, as a cancel) and marked deleted; the row and its audit trail
// stay. payment.ErrStale when the payment is not unprocessed (anymore). It
// must run in a transaction (InTx): the lock, the cancel and the mark are
// one.
func (s *Store) DeletePayment(ctx context.Context, tenantID, id, actor string) error {
	if s.tx == nil {
		return errors.New("delete payment: not in a transaction")
	}
	var got string
	err := s.q.QueryRowxContext(ctx, `SELECT id FROM payments
		WHERE id = $1 AND tenant_id = $2 AND surface = 'payments' AND `+unprocessed+` FOR UPDATE`, id, tenantID).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("delete payment %s: %w", id, payment.ErrStale)
	}
	if err != nil {
		return translate(fmt.Errorf("delete payment %s: %w", id, err))
	}
	if _, err := s.Apply(ctx, Change{PaymentID: id, From: payment.StatusPending, To: payment.StatusCanceled, AnySeq: true,
		Reason: "deleted by the merchant (DELETE /v1/payments/{id}); it had not been processed", Actor: actor,
		ErrorCode: "deleted", ErrorMessage: "payment deleted"}); err != nil {
		return err
	}
	_, err = s.q.ExecContext(ctx, `UPDATE payments SET deleted_at = $2 WHERE id = $1 AND status = 'CANCELED'`, id, s.now())
	if err != nil {
		return translate(fmt.Errorf("mark payment %s deleted: %w", id, err))
	}
	return nil
}
