package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypeFlowRecompute rebuilds a payment flow's plan from Postgres and
// creates the payments of every batch whose dependencies have settled. It
// is due after every transition of one of the flow's payments (recorded in
// the transition's transaction), after the flow's create and cancel.
const TypeFlowRecompute = "flow:recompute"

// FlowPayload names one recompute step of one flow: the flow and the step
// sequence (payment_flows.step_seq) the task was enqueued for.
type FlowPayload struct {
	FlowID string `json:"flow_id"`
	Seq    int    `json:"seq"`
}

// NewFlowRecomputeTask builds the recompute task of a flow at step
// sequence seq. Its TaskID is flow:recompute:<flow_id>:<seq>.
func NewFlowRecomputeTask(flowID string, seq int, retention time.Duration) (*asynq.Task, error) {
	if seq < 1 {
		return nil, fmt.Errorf("flow %s: step sequence %d", flowID, seq)
	}
	return newTask(TypeFlowRecompute, FlowPayload{FlowID: flowID, Seq: seq}, TaskID(TypeFlowRecompute, flowID, seq),
		time.Time{}, retention)
}

// ParseFlowRecompute decodes a flow:recompute payload.
func ParseFlowRecompute(t *asynq.Task) (FlowPayload, error) {
	var p FlowPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.FlowID == "" || p.Seq <= 0 {
		return p, fmt.Errorf("%s: %w", t.Type(), ErrBadPayload)
	}
	return p, nil
}

// FlowRecompute enqueues a flow's recompute step at sequence seq, now. An
// existing task with its ID is success.
func (e *Enqueuer) FlowRecompute(ctx context.Context, flowID string, seq int) error {
	t, err := NewFlowRecomputeTask(flowID, seq, e.Retention)
	if err != nil {
		return err
	}
	return e.enqueue(ctx, t)
}

// FlowState looks up a flow recompute task by its ID (the sweeper).
func (e *Enqueuer) FlowState(flowID string, seq int) (TaskState, error) {
	return e.taskState(specs[TypeFlowRecompute].queue, TaskID(TypeFlowRecompute, flowID, seq))
}
