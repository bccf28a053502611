package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

// Due is a step whose time has come and whose task may be missing: a
// payment's next step, a refund's try or a gateway notification's check.
type Due struct {
	PaymentID    string          // set for payment steps
	RefundID     string          // set for refund tries (Step StepRefund)
	Notification NotificationRef // set for gateway notifications (Step StepNotification)
	SessionID    string          // set for session expiries (Step StepSession)
	FlowID       string          // set for flow recomputes (Step StepFlow)
	DeliveryID   string          // set for webhook deliveries (Step StepDelivery)
	Step         payment.Step
	Seq          int
	// Swept says the sweeper already re-enqueued this step once and it is
	// still due a lease later: its task may be orphaned or archived.
	Swept bool
}

// DueBefore is the sweeper's cutoff per step (every step of DueSteps): a
// step due before its cutoff is overdue.
type DueBefore map[payment.Step]time.Time

// StepRefund names a refund's try in DueBefore; StepNotification a gateway
// notification's check.
// StepSession a payment session's expiry (session:expire); StepFlow a
// payment flow's recompute (flow:recompute).
const (
	StepRefund       payment.Step = "refund"
	StepNotification payment.Step = "notification"
	StepSession      payment.Step = "session"
	StepFlow         payment.Step = "flow"
	StepDelivery     payment.Step = "delivery" // a webhook delivery's try (webhook:deliver)
)

// paymentSteps are the steps a payment may wait on (payments.next_step),
// each swept with its own cutoff: a new step is swept once it is listed
// here (and has a task type, jobs.StepType).
var paymentSteps = [...]payment.Step{payment.StepCreate, payment.StepSubmit, payment.StepInquire, payment.StepSettle,
	payment.StepVoid}

// DueSteps lists every kind of step ClaimDue claims: the payment steps,
// refund tries and gateway notifications.
func DueSteps() []payment.Step {
	return append(append([]payment.Step{}, paymentSteps[:]...), StepRefund, StepNotification, StepSession, StepFlow, StepDelivery)
}

// AllDueBefore is the same cutoff for every step.
func AllDueBefore(t time.Time) DueBefore {
	b := DueBefore{}
	for _, st := range DueSteps() {
		b[st] = t
	}
	return b
}

// ClaimDue takes up to limit overdue payment steps, up to limit refund
// tries and up to limit gateway notifications (each due before its step's
// cutoff), oldest due first, for the sweeper. It pushes each claimed row's
// due time out by lease and marks it swept in the same short statement
// (FOR UPDATE SKIP LOCKED, so concurrent sweepers split the work), and
// commits before any enqueue: no row lock is held while Redis is called. A
// row that keeps coming due (its task keeps failing) is thus claimed at
// most once per lease and then waits behind every row due before it: it
// cannot starve newer ones. A step without a cutoff is not claimed.
func (s *Store) ClaimDue(ctx context.Context, before DueBefore, lease time.Duration, limit int) ([]Due, error) {
	until := s.now().Add(lease)
	var steps, cuts []string
	latest := time.Time{}
	for st, t := range before {
		if !paymentStep(st) {
			continue
		}
		steps, cuts = append(steps, string(st)), append(cuts, pgTime(t))
		if t.After(latest) {
			latest = t
		}
	}
	var out []Due
	if len(steps) > 0 {
		var rows []struct {
			ID    string `db:"id"`
			Step  string `db:"next_step"`
			Seq   int    `db:"step_seq"`
			Swept bool   `db:"swept"`
		}
		// each step's cutoff comes from the (step, cutoff) pairs: a step
		// with none matches no pair and is not claimed
		err := sqlx.SelectContext(ctx, s.q, &rows, `
			UPDATE payments p SET next_step_at = $3, swept = true
			FROM (SELECT id, swept FROM payments
			      WHERE next_step IS NOT NULL AND next_step_at <= $1
			        AND next_step_at <= (SELECT c.cut FROM unnest($4::text[], $5::text[]::timestamptz[]) AS c(step, cut)
			                             WHERE c.step = payments.next_step)
			      ORDER BY next_step_at LIMIT $2 FOR UPDATE SKIP LOCKED) d
			WHERE p.id = d.id
			RETURNING p.id, p.next_step, p.step_seq, d.swept`, latest.UTC(), limit, until, pq.Array(steps), pq.Array(cuts))
		if err != nil {
			return nil, translate(fmt.Errorf("claim due payments: %w", err))
		}
		for _, r := range rows {
			out = append(out, Due{PaymentID: r.ID, Step: payment.Step(r.Step), Seq: r.Seq, Swept: r.Swept})
		}
	}
	for _, k := range keyedSteps {
		cut, ok := before[k.step]
		if !ok {
			continue
		}
		var rows []struct {
			ID    string `db:"id"`
			Seq   int    `db:"step_seq"`
			Swept bool   `db:"swept"`
		}
		// the table name is one of keyedSteps' constants
		err := sqlx.SelectContext(ctx, s.q, &rows, `
			UPDATE `+k.table+` t SET next_at = $3, swept = true
			FROM (SELECT id, swept FROM `+k.table+` WHERE next_at IS NOT NULL AND next_at <= $1
			      ORDER BY next_at LIMIT $2 FOR UPDATE SKIP LOCKED) d
			WHERE t.id = d.id
			RETURNING t.id, t.step_seq, d.swept`, cut.UTC(), limit, until)
		if err != nil {
			return nil, translate(fmt.Errorf("claim due %s: %w", k.table, err))
		}
		for _, r := range rows {
			d := Due{Step: k.step, Seq: r.Seq, Swept: r.Swept}
			*k.id(&d) = r.ID
			out = append(out, d)
		}
	}
	if cut, ok := before[StepNotification]; ok {
		var rows []struct {
			NotificationRef
			Seq   int  `db:"step_seq"`
			Swept bool `db:"swept"`
		}
		err := sqlx.SelectContext(ctx, s.q, &rows, `
			UPDATE gateway_notifications n SET next_at = $3, swept = true
			FROM (SELECT gateway, notification_id, swept FROM gateway_notifications
			      WHERE processed_at IS NULL AND next_at <= $1
			      ORDER BY next_at LIMIT $2 FOR UPDATE SKIP LOCKED) d
			WHERE n.gateway = d.gateway AND n.notification_id = d.notification_id
			RETURNING n.gateway, n.notification_id, n.step_seq, d.swept`, cut.UTC(), limit, until)
		if err != nil {
			return nil, translate(fmt.Errorf("claim due notifications: %w", err))
		}
		for _, r := range rows {
			out = append(out, Due{Notification: r.NotificationRef, Step: StepNotification, Seq: r.Seq, Swept: r.Swept})
		}
	}
	return out, nil
}

// Rearm gives a due step a fresh step sequence, and so a fresh task ID, when
// its task is stuck in Redis (archived, completed without effect, or held by
// a dead worker). The old task becomes stale: its guards make it a no-op.
// payment.ErrStale means the row moved on meanwhile (a notification: or was
// processed).
func (s *Store) Rearm(ctx context.Context, d Due) (int, error) {
	var q string
	var args []any
	switch {
	case d.Notification.ID != "":
		q = `UPDATE gateway_notifications SET step_seq = step_seq + 1, swept = false
			WHERE gateway = $1 AND notification_id = $2 AND step_seq = $3 AND processed_at IS NULL RETURNING step_seq`
		args = []any{d.Notification.Gateway, d.Notification.ID, d.Seq}
	case d.Step != "" && !paymentStep(d.Step):
		k := keyedStep(d.Step)
		// a row whose step is done (next_at cleared) has nothing to re-arm
		q = `UPDATE ` + k.table + ` SET step_seq = step_seq + 1, swept = false WHERE id = $1 AND step_seq = $2
			AND next_at IS NOT NULL RETURNING step_seq`
		args = []any{*k.id(&d), d.Seq}
	default:
		q = `UPDATE payments SET step_seq = step_seq + 1, swept = false WHERE id = $1 AND step_seq = $2 RETURNING step_seq`
		args = []any{d.PaymentID, d.Seq}
	}
	var seq int
	err := s.q.QueryRowxContext(ctx, q, args...).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("rearm %s: %w", d, payment.ErrStale)
	}
	return seq, translate(err)
}

// keyedSteps are the steps whose rows are due by their own next_at, under
// their own step_seq and swept, one table each: claimed and re-armed alike.
var keyedSteps = []struct {
	step  payment.Step
	table string
	id    func(*Due) *string // the Due field that names the row
}{
	{StepRefund, "refunds", func(d *Due) *string { return &d.RefundID }},
	{StepSession, "payment_sessions", func(d *Due) *string { return &d.SessionID }},
	{StepFlow, "payment_flows", func(d *Due) *string { return &d.FlowID }},
	{StepDelivery, "webhook_deliveries", func(d *Due) *string { return &d.DeliveryID }},
}

func keyedStep(st payment.Step) (k struct {
	step  payment.Step
	table string
	id    func(*Due) *string
}) {
	for _, k := range keyedSteps {
		if k.step == st {
			return k
		}
	}
	return k
}

// paymentStep: a step payments.next_step names (not a refund's,
// notification's, session's, flow's or delivery's).
func paymentStep(st payment.Step) bool {
	return st != StepNotification && keyedStep(st).table == ""
}

// String names the due row for errors and logs.
func (d Due) String() string {
	switch {
	case d.Notification.ID != "":
		return fmt.Sprintf("notification %s/%s@%d", d.Notification.Gateway, d.Notification.ID, d.Seq)
	case d.RefundID != "":
		return fmt.Sprintf("refund %s@%d", d.RefundID, d.Seq)
	case d.SessionID != "":
		return fmt.Sprintf("session %s@%d", d.SessionID, d.Seq)
	case d.FlowID != "":
		return fmt.Sprintf("flow %s@%d", d.FlowID, d.Seq)
	case d.DeliveryID != "":
		return fmt.Sprintf("delivery %s@%d", d.DeliveryID, d.Seq)
	}
	return fmt.Sprintf("%s %s@%d", d.Step, d.PaymentID, d.Seq)
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
