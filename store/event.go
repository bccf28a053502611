package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/payd/payd/payment"
)

// The audit trail: one payment_events row per transition or note.

// Events returns a payment's audit trail, oldest first.
func (s *Store) Events(ctx context.Context, tenantID, paymentID string) ([]payment.Event, error) {
	var rows []struct {
		ID            int64          `db:"id"`
		PaymentID     string         `db:"payment_id"`
		TenantID      string         `db:"tenant_id"`
		From          sql.NullString `db:"from_status"`
		To            string         `db:"to_status"`
		Reason        string         `db:"reason"`
		AttemptNumber int            `db:"attempt_number"`
		Actor         string         `db:"actor"`
		CreatedAt     time.Time      `db:"created_at"`
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `
		SELECT id, payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at
		FROM payment_events WHERE payment_id = $1 AND tenant_id = $2 ORDER BY id`, paymentID, tenantID)
	if err != nil {
		return nil, translate(fmt.Errorf("load events of %s: %w", paymentID, err))
	}
	out := make([]payment.Event, len(rows))
	for i, r := range rows {
		out[i] = payment.Event{ID: r.ID, PaymentID: r.PaymentID, TenantID: r.TenantID, From: payment.Status(r.From.String),
			To: payment.Status(r.To), Reason: r.Reason, AttemptNumber: r.AttemptNumber, Actor: r.Actor, CreatedAt: r.CreatedAt.UTC()}
	}
	return out, nil
}

func (s *Store) insertEvent(ctx context.Context, e payment.Event) error {
	var from any
	if e.From != "" {
		from = string(e.From)
	}
	_, err := s.q.ExecContext(ctx, `
		INSERT INTO payment_events (payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
		e.PaymentID, e.TenantID, from, string(e.To), e.Reason, e.AttemptNumber, e.Actor, e.CreatedAt)
	return translate(err)
}
