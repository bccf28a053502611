package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/payd/payd/payment"
)

// Due is a step whose time has come and whose task may be missing.
type Due struct {
	PaymentID string // set for payment steps
	RefundID  string // set for refund steps
	Step      payment.Step
	Seq       int
}

// ClaimDue takes up to limit overdue steps (due before dueBefore) for the
// sweeper to re-enqueue. It pushes each claimed row's due time out by lease
// in the same short statement (FOR UPDATE SKIP LOCKED, so concurrent sweepers
// split the work) and commits before any enqueue: no row lock is held while
// Redis is called. Rows overdue since before rearmBefore also get a new step
// sequence, so their task ID is fresh even if an old task with the previous
// ID is stuck in Redis (archived, or retained after completing).
func (s *Store) ClaimDue(ctx context.Context, dueBefore, rearmBefore time.Time, lease time.Duration, limit int) ([]Due, error) {
	now := s.now()
	var rows []struct {
		ID   string `db:"id"`
		Step string `db:"next_step"`
		Seq  int    `db:"step_seq"`
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `
		UPDATE payments p SET next_step_at = $3,
			step_seq = CASE WHEN d.next_step_at < $4 THEN p.step_seq + 1 ELSE p.step_seq END
		FROM (SELECT id, next_step_at FROM payments
		      WHERE next_step IS NOT NULL AND next_step_at <= $1
		      ORDER BY next_step_at LIMIT $2 FOR UPDATE SKIP LOCKED) d
		WHERE p.id = d.id
		RETURNING p.id, p.next_step, p.step_seq`, dueBefore.UTC(), limit, now.Add(lease), rearmBefore.UTC())
	if err != nil {
		return nil, translate(fmt.Errorf("claim due payments: %w", err))
	}
	out := make([]Due, 0, len(rows))
	for _, r := range rows {
		out = append(out, Due{PaymentID: r.ID, Step: payment.Step(r.Step), Seq: r.Seq})
	}
	var refunds []struct {
		ID  string `db:"id"`
		Seq int    `db:"step_seq"`
	}
	err = sqlx.SelectContext(ctx, s.q, &refunds, `
		UPDATE refunds r SET next_at = $3,
			step_seq = CASE WHEN d.next_at < $4 THEN r.step_seq + 1 ELSE r.step_seq END
		FROM (SELECT id, next_at FROM refunds WHERE next_at IS NOT NULL AND next_at <= $1
		      ORDER BY next_at LIMIT $2 FOR UPDATE SKIP LOCKED) d
		WHERE r.id = d.id
		RETURNING r.id, r.step_seq`, dueBefore.UTC(), limit, now.Add(lease), rearmBefore.UTC())
	if err != nil {
		return nil, translate(fmt.Errorf("claim due refunds: %w", err))
	}
	for _, r := range refunds {
		out = append(out, Due{RefundID: r.ID, Step: "refund", Seq: r.Seq})
	}
	return out, nil
}

// OverdueCount counts payments and refunds whose next step was due before
// `before`: the "stuck payments" figure operators alert on.
func (s *Store) OverdueCount(ctx context.Context, before time.Time) (int, error) {
	var n int
	err := s.q.QueryRowxContext(ctx, `SELECT
		(SELECT count(*) FROM payments WHERE next_step IS NOT NULL AND next_step_at < $1) +
		(SELECT count(*) FROM refunds WHERE next_at IS NOT NULL AND next_at < $1)`, before.UTC()).Scan(&n)
	return n, translate(err)
}
