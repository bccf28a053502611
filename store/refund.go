package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/payd/payd/payment"
)

type refundRow struct {
	ID               string       `db:"id"`
	PaymentID        string       `db:"payment_id"`
	TenantID         string       `db:"tenant_id"`
	Amount           int64        `db:"amount"`
	Currency         string       `db:"currency"`
	Reason           string       `db:"reason"`
	Status           string       `db:"status"`
	GatewayReference string       `db:"gateway_reference"`
	ErrorMessage     string       `db:"error_message"`
	ChargeReference  string       `db:"charge_reference"`
	StepSeq          int          `db:"step_seq"`
	CreatedAt        time.Time    `db:"created_at"`
	FinishedAt       sql.NullTime `db:"finished_at"`
}

const refundColumns = `id, payment_id, tenant_id, amount, currency, reason, status, gateway_reference,
	error_message, charge_reference, step_seq, created_at, finished_at`

func (r refundRow) toRefund() payment.Refund {
	return payment.Refund{ID: r.ID, PaymentID: r.PaymentID, TenantID: r.TenantID, Amount: r.Amount, Currency: r.Currency,
		Reason: r.Reason, Status: payment.RefundStatus(r.Status), GatewayReference: r.GatewayReference,
		ErrorMessage: r.ErrorMessage, ChargeReference: r.ChargeReference, StepSeq: r.StepSeq, CreatedAt: r.CreatedAt.UTC(), FinishedAt: tp(r.FinishedAt)}
}

// CreateRefund reserves amount of a captured payment for a refund and records
// the refund as PENDING, in one statement guarded by the schema's rule that
// refunded plus pending never exceeds the amount. It returns
// payment.ErrNotFound, payment.ErrInvalidState (not captured) or
// payment.ErrRefundTooLarge.
func (s *Store) CreateRefund(ctx context.Context, tenantID, paymentID string, amount int64, reason, actor string) (payment.Refund, error) {
	var out payment.Refund
	err := s.InTx(ctx, func(tx *Store) error {
		var cur struct {
			Status   string `db:"status"`
			Amount   int64  `db:"amount"`
			Refunded int64  `db:"refunded_amount"`
			Pending  int64  `db:"refund_pending_amount"`
			Currency string `db:"currency"`
		}
		err := tx.q.QueryRowxContext(ctx, `SELECT status, amount, refunded_amount, refund_pending_amount, currency
			FROM payments WHERE id = $1 AND tenant_id = $2 FOR UPDATE`, paymentID, tenantID).StructScan(&cur)
		if err != nil {
			return translate(fmt.Errorf("load payment %s for refund: %w", paymentID, err))
		}
		st := payment.Status(cur.Status)
		if st == payment.StatusRefunded {
			return fmt.Errorf("refund of %s: %w", paymentID, payment.ErrRefundTooLarge) // nothing left
		}
		if st != payment.StatusSucceeded && st != payment.StatusPartiallyRefunded {
			return fmt.Errorf("refund %s in %s: %w", paymentID, st, payment.ErrInvalidState)
		}
		if amount > cur.Amount-cur.Refunded-cur.Pending {
			return fmt.Errorf("refund %d of %s: %w", amount, paymentID, payment.ErrRefundTooLarge)
		}
		if _, err := tx.q.ExecContext(ctx, `UPDATE payments SET refund_pending_amount = refund_pending_amount + $2 WHERE id = $1`,
			paymentID, amount); err != nil {
			return translate(fmt.Errorf("reserve refund: %w", err))
		}
		now := tx.now()
		var r refundRow
		err = tx.q.QueryRowxContext(ctx, `
			INSERT INTO refunds (id, payment_id, tenant_id, amount, currency, reason, status, next_at, created_by, created_at)
			VALUES ($1,$2,$3,$4,$5,$6,'PENDING',$7,$8,$7) RETURNING `+refundColumns,
			NewID(payment.PrefixRefund), paymentID, tenantID, amount, cur.Currency, reason, now, actor).StructScan(&r)
		if err != nil {
			return translate(fmt.Errorf("insert refund: %w", err))
		}
		out = r.toRefund()
		return nil
	})
	return out, err
}

// GetRefund loads a refund; an empty tenantID loads any tenant's (workers).
func (s *Store) GetRefund(ctx context.Context, tenantID, id string) (payment.Refund, error) {
	var r refundRow
	err := s.q.QueryRowxContext(ctx, `SELECT `+refundColumns+` FROM refunds WHERE id = $1`, id).StructScan(&r)
	if err == nil && !ownedBy(tenantID, r.TenantID) {
		err = sql.ErrNoRows
	}
	if err != nil {
		return payment.Refund{}, translate(fmt.Errorf("load refund %s: %w", id, err))
	}
	return r.toRefund(), nil
}

// Refunds lists a payment's refunds, oldest first.
func (s *Store) Refunds(ctx context.Context, tenantID, paymentID string) ([]payment.Refund, error) {
	var rows []refundRow
	if err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT `+refundColumns+` FROM refunds
		WHERE payment_id = $1 AND tenant_id = $2 ORDER BY created_at, id`, paymentID, tenantID); err != nil {
		return nil, translate(fmt.Errorf("list refunds: %w", err))
	}
	out := make([]payment.Refund, len(rows))
	for i, r := range rows {
		out[i] = r.toRefund()
	}
	return out, nil
}

// FinishRefund records a refund's outcome, guarded on it still being
// PENDING at step sequence seq.
func (s *Store) FinishRefund(ctx context.Context, id string, seq int, status payment.RefundStatus, reference, message string) error {
	res, err := s.q.ExecContext(ctx, `UPDATE refunds SET status = $3, gateway_reference = $4, error_message = $5,
			finished_at = $6, next_at = NULL, step_seq = step_seq + 1, swept = false
		WHERE id = $1 AND status = 'PENDING' AND step_seq = $2`, id, seq, string(status), reference, truncate(message, 500), s.now())
	if err != nil {
		return translate(fmt.Errorf("finish refund %s: %w", id, err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("finish refund %s: %w", id, payment.ErrStale)
	}
	return nil
}

// RescheduleRefund pushes a pending refund's next try out, returning the new
// step sequence.
func (s *Store) RescheduleRefund(ctx context.Context, id string, seq int, at time.Time) (int, error) {
	var next int
	err := s.q.QueryRowxContext(ctx, `UPDATE refunds SET next_at = $3, step_seq = step_seq + 1, swept = false
		WHERE id = $1 AND status = 'PENDING' AND step_seq = $2 RETURNING step_seq`, id, seq, at.UTC()).Scan(&next)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, payment.ErrStale
	}
	return next, translate(err)
}
