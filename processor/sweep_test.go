package processor_test

import (
	"testing"

	"github.com/payd/payd/jobs"
	"github.com/payd/payd/store"
)

// TestEveryDueStepHasATask: every step the sweeper claims (store.DueSteps)
// can be enqueued: a payment step has a task type, and each runs on a
// queue whose backlog the sweeper reads.
func TestEveryDueStepHasATask(t *testing.T) {
	t.Parallel()
	for _, step := range store.DueSteps() {
		if _, ok := jobs.Queues[jobs.StepQueue(step)]; !ok {
			t.Errorf("%s runs on queue %q, which the worker does not serve", step, jobs.StepQueue(step))
		}
		if step == store.StepRefund || step == store.StepNotification || step == store.StepSession || step == store.StepFlow || step == store.StepDelivery {
			continue
		}
		if _, ok := jobs.StepType(step); !ok {
			t.Errorf("payment step %s has no task type", step)
		}
	}
	if got := jobs.StepQueue(store.StepNotification); got != jobs.QueueCritical {
		t.Errorf("notifications swept against the %s queue's backlog", got)
	}
	// session expiries run as session:expire, on the low queue
	if got := jobs.StepQueue(store.StepSession); got != jobs.QueueLow {
		t.Errorf("session expiries swept against the %s queue's backlog", got)
	}
	// flow recomputes run as flow:recompute, on the default queue
	if got := jobs.StepQueue(store.StepFlow); got != jobs.QueueDefault {
		t.Errorf("flow recomputes swept against the %s queue's backlog", got)
	}
}
