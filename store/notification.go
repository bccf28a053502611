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

// Notification is a gateway's push notification as payd received it. It is
// a hint that something changed at the gateway, never a status by itself.
type Notification struct {
	Gateway        string
	ID             string // the gateway's notification id, unique per gateway
	Type           string // charge.succeeded, payment.settled, …
	IdempotencyKey string // the attempt's key, when the gateway names it
	Reference      string // the gateway's charge reference, when it names it
	OccurredAt     time.Time
	ReceivedAt     time.Time
	Deliveries     int // how many times the gateway delivered it
	PaymentID      string
	TenantID       string
	ProcessedAt    *time.Time
	Outcome        string // set with ProcessedAt: what payd did about it
	// Seq is the step sequence its task is named by (jobs.NotificationTaskID):
	// 1 when recorded, one more each time the sweeper re-arms it.
	Seq int
}

type notificationRow struct {
	Gateway        string         `db:"gateway"`
	ID             string         `db:"notification_id"`
	Type           string         `db:"type"`
	IdempotencyKey string         `db:"idempotency_key"`
	Reference      string         `db:"gateway_reference"`
	OccurredAt     time.Time      `db:"occurred_at"`
	ReceivedAt     time.Time      `db:"received_at"`
	Deliveries     int            `db:"deliveries"`
	PaymentID      sql.NullString `db:"payment_id"`
	TenantID       sql.NullString `db:"tenant_id"`
	ProcessedAt    sql.NullTime   `db:"processed_at"`
	Outcome        string         `db:"outcome"`
	Seq            int            `db:"step_seq"`
}

const notificationColumns = `gateway, notification_id, type, idempotency_key, gateway_reference, occurred_at,
	received_at, deliveries, payment_id, tenant_id, processed_at, outcome, step_seq`

func (r notificationRow) toNotification() Notification {
	return Notification{Gateway: r.Gateway, ID: r.ID, Type: r.Type, IdempotencyKey: r.IdempotencyKey,
		Reference: r.Reference, OccurredAt: r.OccurredAt.UTC(), ReceivedAt: r.ReceivedAt.UTC(), Deliveries: r.Deliveries,
		PaymentID: r.PaymentID.String, TenantID: r.TenantID.String, ProcessedAt: tp(r.ProcessedAt), Outcome: r.Outcome,
		Seq: r.Seq}
}

// RecordNotification stores a received notification once per (gateway, id),
// due at once for the sweeper (at step sequence 1): if its task is lost,
// the sweeper enqueues it again. A repeated delivery only counts one more
// delivery; the stored row, as it now is, is returned with fresh=false.
func (s *Store) RecordNotification(ctx context.Context, n Notification) (stored Notification, fresh bool, err error) {
	var r struct {
		notificationRow
		Inserted bool `db:"inserted"`
	}
	err = sqlx.GetContext(ctx, s.q, &r, `
		INSERT INTO gateway_notifications (gateway, notification_id, type, idempotency_key, gateway_reference,
			occurred_at, received_at, next_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
		ON CONFLICT (gateway, notification_id) DO UPDATE SET deliveries = gateway_notifications.deliveries + 1
		RETURNING `+notificationColumns+`, (xmax = 0) AS inserted`,
		n.Gateway, n.ID, n.Type, n.IdempotencyKey, n.Reference, n.OccurredAt.UTC(), s.now())
	if err != nil {
		return Notification{}, false, translate(fmt.Errorf("record notification %s/%s: %w", n.Gateway, n.ID, err))
	}
	return r.toNotification(), r.Inserted, nil
}

// GetNotification loads one notification; payment.ErrNotFound if absent.
func (s *Store) GetNotification(ctx context.Context, gateway, id string) (Notification, error) {
	var r notificationRow
	err := sqlx.GetContext(ctx, s.q, &r, `SELECT `+notificationColumns+` FROM gateway_notifications
		WHERE gateway = $1 AND notification_id = $2`, gateway, id)
	if err != nil {
		return Notification{}, translate(fmt.Errorf("load notification %s/%s: %w", gateway, id, err))
	}
	return r.toNotification(), nil
}

// ListNotifications returns the latest notifications of a payment, newest
// first (operators, tests).
func (s *Store) ListNotifications(ctx context.Context, paymentID string, limit int) ([]Notification, error) {
	var rows []notificationRow
	err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT `+notificationColumns+` FROM gateway_notifications
		WHERE payment_id = $1 ORDER BY received_at DESC, notification_id LIMIT $2`, paymentID, limit)
	if err != nil {
		return nil, translate(fmt.Errorf("list notifications of %s: %w", paymentID, err))
	}
	out := make([]Notification, len(rows))
	for i, r := range rows {
		out[i] = r.toNotification()
	}
	return out, nil
}

// FinishNotification records what came of a notification, once: a
// notification already processed is payment.ErrStale. paymentID may be
// empty (no payment matched). It is for a notification finished without a
// task (intake, for a type payd does not act on); a task finishes with
// FinishNotificationTask.
func (s *Store) FinishNotification(ctx context.Context, gateway, id, paymentID, outcome string) error {
	return s.finishNotification(ctx, gateway, id, 0, paymentID, outcome)
}

// FinishNotificationTask is FinishNotification for the notification's
// task at step sequence seq: a task the sweeper re-armed away from (the row
// is at a newer sequence) is payment.ErrStale too, so only the current task
// records an outcome.
func (s *Store) FinishNotificationTask(ctx context.Context, gateway, id string, seq int, paymentID, outcome string) error {
	if seq <= 0 {
		return fmt.Errorf("finish notification %s/%s: no step sequence", gateway, id)
	}
	return s.finishNotification(ctx, gateway, id, seq, paymentID, outcome)
}

// finishNotification guards on processed_at and, unless seq is 0, on the
// step sequence.
func (s *Store) finishNotification(ctx context.Context, gateway, id string, seq int, paymentID, outcome string) error {
	var pid any
	if paymentID != "" {
		pid = paymentID
	}
	res, err := s.q.ExecContext(ctx, `
		UPDATE gateway_notifications SET processed_at = $3, outcome = $4, payment_id = $5,
			tenant_id = (SELECT tenant_id FROM payments WHERE id = $5), swept = false
		WHERE gateway = $1 AND notification_id = $2 AND processed_at IS NULL AND ($6 = 0 OR step_seq = $6)`,
		gateway, id, s.now(), outcome, pid, seq)
	if err != nil {
		return translate(fmt.Errorf("finish notification %s/%s: %w", gateway, id, err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("finish notification %s/%s@%d: %w", gateway, id, seq, payment.ErrStale)
	}
	return nil
}

// AttemptRef names the attempt a notification is about.
type AttemptRef struct {
	PaymentID string
	Number    int
}

// FindAttempt finds the attempt a gateway names, by its idempotency key or,
// failing that, by the gateway's reference. payment.ErrNotFound when neither
// matches (of any tenant: the caller must not reveal which).
func (s *Store) FindAttempt(ctx context.Context, idempotencyKey, reference string) (AttemptRef, error) {
	var r struct {
		PaymentID string `db:"payment_id"`
		Number    int    `db:"attempt_number"`
	}
	var err error = sql.ErrNoRows
	if idempotencyKey != "" {
		err = sqlx.GetContext(ctx, s.q, &r, `SELECT payment_id, attempt_number FROM payment_attempts
			WHERE idempotency_key = $1`, idempotencyKey)
	}
	if errors.Is(err, sql.ErrNoRows) && reference != "" {
		err = sqlx.GetContext(ctx, s.q, &r, `SELECT payment_id, attempt_number FROM payment_attempts
			WHERE gateway_reference = $1 ORDER BY attempt_number DESC LIMIT 1`, reference)
	}
	if err != nil {
		return AttemptRef{}, translate(fmt.Errorf("find attempt: %w", err))
	}
	return AttemptRef{PaymentID: r.PaymentID, Number: r.Number}, nil
}

// NotificationRef names a stored notification.
type NotificationRef struct {
	Gateway string `db:"gateway"`
	ID      string `db:"notification_id"`
}
