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

// Due is a step whose time has come and whose task may be missing.
type Due struct {
	PaymentID string // set for payment steps
	RefundID  string // set for refund steps
	Step      payment.Step
	Seq       int
	// Swept says the sweeper already re-enqueued this step once and it is
	// still due a lease later: its task may be orphaned or archived.
	Swept bool
}

// DueBefore is the sweeper's cutoff per step (payment.StepCreate …, and
// StepRefund for refund tries): a step due before its cutoff is overdue.
type DueBefore map[payment.Step]time.Time

// StepRefund names a refund's try in DueBefore.
const StepRefund payment.Step = "refund"

// AllDueBefore is the same cutoff for every step.
func AllDueBefore(t time.Time) DueBefore {
	return DueBefore{payment.StepCreate: t, payment.StepSubmit: t, payment.StepInquire: t, payment.StepSettle: t,
		payment.StepVoid: t, StepRefund: t}
}

// ClaimDue takes up to limit overdue steps (due before their step's cutoff)
// for the sweeper. It pushes each claimed row's due time out by lease and
// marks it swept in the same short statement (FOR UPDATE SKIP LOCKED, so
// concurrent sweepers split the work) and commits before any enqueue: no
// row lock is held while Redis is called. A step without a cutoff is not
// claimed.
func (s *Store) ClaimDue(ctx context.Context, before DueBefore, lease time.Duration, limit int) ([]Due, error) {
	now := s.now()
	cut := func(st payment.Step) time.Time {
		if t, ok := before[st]; ok {
			return t.UTC()
		}
		return time.Time{}.UTC() // nothing is due before the year 1
	}
	latest := time.Time{}
	for _, t := range before {
		if t.After(latest) {
			latest = t
		}
	}
	var rows []struct {
		ID    string `db:"id"`
		Step  string `db:"next_step"`
		Seq   int    `db:"step_seq"`
		Swept bool   `db:"swept"`
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `
		UPDATE payments p SET next_step_at = $3, swept = true
		FROM (SELECT id, swept FROM payments
		      WHERE next_step IS NOT NULL AND next_step_at <= $1
		        AND next_step_at <= CASE next_step WHEN 'create' THEN $4::timestamptz WHEN 'submit' THEN $5::timestamptz
		            WHEN 'inquire' THEN $6::timestamptz WHEN 'settle' THEN $7::timestamptz WHEN 'void' THEN $8::timestamptz END
		      ORDER BY next_step_at LIMIT $2 FOR UPDATE SKIP LOCKED) d
		WHERE p.id = d.id
		RETURNING p.id, p.next_step, p.step_seq, d.swept`, latest.UTC(), limit, now.Add(lease),
		cut(payment.StepCreate), cut(payment.StepSubmit), cut(payment.StepInquire), cut(payment.StepSettle), cut(payment.StepVoid))
	if err != nil {
		return nil, translate(fmt.Errorf("claim due payments: %w", err))
	}
	out := make([]Due, 0, len(rows))
	for _, r := range rows {
		out = append(out, Due{PaymentID: r.ID, Step: payment.Step(r.Step), Seq: r.Seq, Swept: r.Swept})
	}
	var refunds []struct {
		ID    string `db:"id"`
		Seq   int    `db:"step_seq"`
		Swept bool   `db:"swept"`
	}
	err = sqlx.SelectContext(ctx, s.q, &refunds, `
		UPDATE refunds r SET next_at = $3, swept = true
		FROM (SELECT id, swept FROM refunds WHERE next_at IS NOT NULL AND next_at <= $1
		      ORDER BY next_at LIMIT $2 FOR UPDATE SKIP LOCKED) d
		WHERE r.id = d.id
		RETURNING r.id, r.step_seq, d.swept`, cut(StepRefund), limit, now.Add(lease))
	if err != nil {
		return nil, translate(fmt.Errorf("claim due refunds: %w", err))
	}
	for _, r := range refunds {
		out = append(out, Due{RefundID: r.ID, Step: "refund", Seq: r.Seq, Swept: r.Swept})
	}
	return out, nil
}

// Rearm gives a due step a fresh step sequence, and so a fresh task ID, when
// its task is stuck in Redis (archived, completed without effect, or held by
// a dead worker). The old task becomes stale: its guards make it a no-op.
func (s *Store) Rearm(ctx context.Context, d Due) (int, error) {
	table, id := "payments", d.PaymentID
	if d.RefundID != "" {
		table, id = "refunds", d.RefundID
	}
	var seq int
	err := s.q.QueryRowxContext(ctx, `UPDATE `+table+` SET step_seq = step_seq + 1, swept = false
		WHERE id = $1 AND step_seq = $2 RETURNING step_seq`, id, d.Seq).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("rearm %s: %w", id, payment.ErrStale)
	}
	return seq, translate(err)
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
