package processor

import (
	"context"
	"time"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// recomputeFlow runs a flow's recompute step (flow:recompute): one
// transaction in store.RecomputeFlow rebuilds the plan from Postgres,
// stores a new version when it changed and creates the payments of every
// batch whose dependencies have settled; their create steps are enqueued
// here, after commit (each is also due in its row, so the sweeper recovers
// a lost enqueue). A stale task (a later step sequence is due) does
// nothing; running one twice creates nothing twice.
func (p *Processor) recomputeFlow(ctx context.Context, t *asynq.Task) error {
	pl, err := jobs.ParseFlowRecompute(t)
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := p.Store.RecomputeFlow(ctx, pl.FlowID, pl.Seq, actor)
	if err != nil {
		p.Metrics.FlowRecomputes.WithLabelValues("error").Inc()
		return err
	}
	p.Metrics.FlowRecomputes.WithLabelValues(string(res.Outcome)).Inc()
	if res.Outcome == store.RecomputeStale {
		return nil
	}
	p.Metrics.FlowRecomputeTime.Observe(time.Since(start).Seconds())
	for _, pay := range res.Created {
		batch := pay.Metadata["payment_flow_batch"]
		p.Metrics.FlowPaymentsCreated.WithLabelValues(batch).Inc()
		p.Metrics.PaymentsCreated.WithLabelValues(string(pay.Method), pay.Surface).Inc()
		p.follow(ctx, payment.StepCreate, pay.ID, pay.StepSeq, 0)
	}
	if res.Flow.Status != res.From {
		p.Metrics.FlowTransitions.WithLabelValues(string(res.Flow.Status)).Inc()
		p.Log.InfoContext(ctx, "payment flow moved", "flow_id", pl.FlowID, "from", string(res.From), "to", string(res.Flow.Status),
			"blocked_reason", res.Flow.BlockedReason, "plan_version", res.Flow.PlanVersion)
	}
	return nil
}

// followFlow enqueues the recompute of a flow one of whose payments just
// moved: the transition's transaction made the step due (a trigger on
// payments), this reads its sequence and enqueues it. A lost enqueue is the
// sweeper's to recover.
func (p *Processor) followFlow(ctx context.Context, flowID string) {
	seq, err := p.Store.FlowStep(ctx, flowID)
	if err == nil {
		err = p.Enqueue.FlowRecompute(ctx, flowID, seq)
	}
	res := "ok"
	if err != nil {
		res = "error"
		p.Log.WarnContext(ctx, "enqueue flow recompute failed; the sweeper will recover it", "flow_id", flowID, "err", err)
	}
	p.Metrics.Enqueues.WithLabelValues("flow", res).Inc()
}
