package processor

import (
	"context"
	"fmt"
)

// Sweep re-enqueues every overdue step recorded in Postgres. It runs
// periodically from the scheduler and once when a worker starts, so that
// after a Redis wipe every payment still reaches a final status. It returns
// how many tasks it enqueued.
func (p *Processor) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		now := p.Store.Now()
		due, err := p.Store.ClaimDue(ctx, now.Add(-p.cfg.SweepGrace), now.Add(-p.cfg.SweepRearm), p.cfg.SweepLease, p.cfg.SweepBatch)
		if err != nil {
			return total, fmt.Errorf("sweep: %w", err)
		}
		for _, d := range due {
			var err error
			if d.RefundID != "" {
				err = p.Enqueue.Refund(ctx, d.RefundID, d.Seq, now)
			} else {
				err = p.Enqueue.Step(ctx, d.Step, d.PaymentID, d.Seq, now)
			}
			if err != nil {
				// the row is due again after the lease: the next sweep retries
				return total, fmt.Errorf("sweep enqueue: %w", err)
			}
			p.Metrics.SweeperEnqueued.WithLabelValues(string(d.Step)).Inc()
			total++
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
