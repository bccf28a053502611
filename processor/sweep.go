package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// Sweep re-enqueues every overdue step recorded in Postgres: payment steps,
// refund tries and gateway notifications not yet acted on. It runs
// periodically from the scheduler and once when a worker starts, so that
// after a Redis wipe every payment still reaches a final status. A step is
// overdue SweepGrace after it fell due plus its queue's backlog (how long
// the queue's oldest pending task has waited): under a backlog a due step
// is waiting its turn, not lost, and sweeping it would only add work; after
// a wipe the queues are empty and every overdue step is swept. Each claimed
// step is left alone for SweepLease (store.ClaimDue), so one whose task
// keeps failing waits behind newer ones. For a step it already swept once
// that is still due, it looks at the step's task: one waiting in the queue
// is left alone; one archived or completed, or held by a worker for longer
// than a lease (a dead worker's), gets a fresh task ID, so recovery never
// waits on asynq's own lease recovery or archive. It returns how many tasks
// it enqueued.
func (p *Processor) Sweep(ctx context.Context) (int, error) {
	if sweepDisabled {
		// test-only broken build (-tags paydbroken_nosweep), see sweep_disabled.go
		return 0, nil
	}
	total := 0
	backlog := p.backlog(ctx)
	for {
		now := p.Store.Now()
		before := store.DueBefore{}
		for _, st := range store.DueSteps() {
			before[st] = now.Add(-p.cfg.SweepGrace - backlog[jobs.StepQueue(st)])
		}
		due, err := p.Store.ClaimDue(ctx, before, p.cfg.SweepLease, p.cfg.SweepBatch)
		if err != nil {
			return total, fmt.Errorf("sweep: %w", err)
		}
		for _, d := range due {
			n, err := p.sweepOne(ctx, d, now)
			if err != nil {
				// the row is due again after the lease: the next sweep retries
				return total, fmt.Errorf("sweep %s: %w", d, err)
			}
			total += n
		}
		if len(due) < p.cfg.SweepBatch {
			break
		}
	}
	if total > 0 {
		p.Log.InfoContext(ctx, "sweep re-enqueued overdue steps", "count", total)
	}
	return total, nil
}

// backlog reads each queue's backlog; when Redis cannot say (down,
// frozen), none is assumed, so the sweep errs on the side of re-enqueueing.
func (p *Processor) backlog(ctx context.Context) map[string]time.Duration {
	if p.Enqueue.Inspector == nil {
		return nil
	}
	b, err := p.Enqueue.Backlog()
	if err != nil {
		p.Log.WarnContext(ctx, "sweep: queue backlog unknown; sweeping every overdue step", "err", err)
		return nil
	}
	return b
}

// sweepOne enqueues a claimed step's task, under a fresh step sequence
// when the one it has is stuck.
func (p *Processor) sweepOne(ctx context.Context, d store.Due, now time.Time) (int, error) {
	if d.Swept && p.Enqueue.Inspector != nil {
		state, err := p.taskState(d)
		if err != nil {
			return 0, err
		}
		switch state {
		case jobs.TaskWaiting:
			return 0, nil
		case jobs.TaskActive, jobs.TaskStuck:
			seq, err := p.Store.Rearm(ctx, d)
			if errors.Is(err, payment.ErrStale) {
				return 0, nil // it moved on meanwhile
			}
			if err != nil {
				return 0, err
			}
			p.Log.WarnContext(ctx, "sweep re-armed a step whose task was stuck", "payment_id", d.PaymentID,
				"refund_id", d.RefundID, "session_id", d.SessionID, "flow_id", d.FlowID, "delivery_id", d.DeliveryID, "notification_id", d.Notification.ID, "step", string(d.Step), "state", int(state))
			d.Seq = seq
		}
	}
	var err error
	switch {
	case d.Notification.ID != "":
		err = p.Enqueue.Notification(ctx, d.Notification.Gateway, d.Notification.ID, d.Seq)
	case d.SessionID != "":
		err = p.Enqueue.SessionExpire(ctx, d.SessionID, d.Seq, now)
	case d.FlowID != "":
		err = p.Enqueue.FlowRecompute(ctx, d.FlowID, d.Seq)
	case d.DeliveryID != "":
		err = p.Enqueue.Deliver(ctx, d.DeliveryID, d.Seq, time.Time{})
	case d.RefundID != "":
		err = p.Enqueue.Refund(ctx, d.RefundID, d.Seq, now)
	default:
		err = p.Enqueue.Step(ctx, d.Step, d.PaymentID, d.Seq, now)
	}
	if err != nil {
		return 0, err
	}
	p.Metrics.SweeperEnqueued.WithLabelValues(string(d.Step)).Inc()
	return 1, nil
}

// taskState is what the queue holds for a claimed step's task.
func (p *Processor) taskState(d store.Due) (jobs.TaskState, error) {
	if d.Notification.ID != "" {
		return p.Enqueue.NotificationState(d.Notification.Gateway, d.Notification.ID, d.Seq)
	}
	if d.SessionID != "" {
		return p.Enqueue.SessionState(d.SessionID, d.Seq)
	}
	if d.FlowID != "" {
		return p.Enqueue.FlowState(d.FlowID, d.Seq)
	}
	if d.DeliveryID != "" {
		return p.Enqueue.DeliverState(d.DeliveryID, d.Seq)
	}
	return p.Enqueue.State(d.Step, d.PaymentID+d.RefundID, d.Seq)
}
