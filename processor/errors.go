package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
)

// errNotYet asks for a retry that is not a failure: the task came early
// (for example a refund whose payment is mid-transition).
var errNotYet = errors.New("not yet")

// taskResult is the one place that maps a handler's result to a queue
// outcome:
//   - nil: done;
//   - payment.ErrStale: the row moved on, the task is out of date: done;
//   - a bad payload, an unknown payment, an illegal transition: never
//     succeeds, so SkipRetry (the task is archived for an operator);
//   - anything else (database or Redis trouble): retry with RetryDelay.
//
// Declines are data, recorded by the handler: they never reach here as errors.
func taskResult(err error) (error, string) {
	var te *payment.TransitionError
	switch {
	case err == nil:
		return nil, "ok"
	case errors.Is(err, payment.ErrStale):
		return nil, "stale"
	case errors.Is(err, asynq.SkipRetry), errors.Is(err, jobs.ErrBadPayload):
		return err, "skip"
	case errors.Is(err, payment.ErrNotFound), errors.As(err, &te), errors.Is(err, errNoAttempt):
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry), "skip"
	case errors.Is(err, errNotYet):
		return err, "not_yet"
	}
	return err, "retry"
}

func (p *Processor) wrap(taskType string, h func(context.Context, *asynq.Task) error) asynq.HandlerFunc {
	return func(ctx context.Context, t *asynq.Task) error {
		err, outcome := taskResult(h(ctx, t))
		p.Metrics.TaskOutcomes.WithLabelValues(taskType, outcome).Inc()
		if outcome == "retry" || outcome == "skip" {
			id, _ := asynq.GetTaskID(ctx)
			p.Log.ErrorContext(ctx, "task failed", "task_type", taskType, "task_id", id, "outcome", outcome, "err", err)
		}
		return err
	}
}

// RetryDelay is asynq's RetryDelayFunc: exponential from 200 ms, capped at
// 30 s, with jitter derived from the task ID.
func RetryDelay(n int, _ error, t *asynq.Task) time.Duration {
	return payment.Backoff(payment.RetryRule{Base: 200 * time.Millisecond, Max: 30 * time.Second}, n+1, t.Type()+string(t.Payload()))
}

// IsFailure tells asynq which errors count against MaxRetry.
func IsFailure(err error) bool { return !errors.Is(err, errNotYet) }
