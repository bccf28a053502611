package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypeWebhookDeliver makes one try of one webhook delivery (an event to an
// endpoint): POST, log the try, schedule the next or finish.
const TypeWebhookDeliver = "webhook:deliver"

// DeliverPayload names one try of one delivery: its step sequence
// (webhook_deliveries.step_seq) when it was enqueued.
type DeliverPayload struct {
	DeliveryID string `json:"delivery_id"`
	Seq        int    `json:"seq"`
}

// NewDeliverTask builds a delivery's try at sequence seq, due at at (zero:
// now). Its TaskID is webhook:deliver:<delivery_id>:<seq>.
func NewDeliverTask(id string, seq int, at time.Time, retention time.Duration) (*asynq.Task, error) {
	if seq < 1 {
		return nil, fmt.Errorf("delivery %s: step sequence %d", id, seq)
	}
	return newTask(TypeWebhookDeliver, DeliverPayload{DeliveryID: id, Seq: seq}, TaskID(TypeWebhookDeliver, id, seq), at, retention)
}

// ParseDeliver decodes a webhook:deliver payload.
func ParseDeliver(t *asynq.Task) (DeliverPayload, error) {
	var p DeliverPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.DeliveryID == "" || p.Seq <= 0 {
		return p, fmt.Errorf("%s: %w", t.Type(), ErrBadPayload)
	}
	return p, nil
}

// Deliver enqueues a delivery's try at sequence seq, due at at (the
// store's clock; zero: now). An existing task with its ID is success.
func (e *Enqueuer) Deliver(ctx context.Context, id string, seq int, at time.Time) error {
	t, err := NewDeliverTask(id, seq, e.when(at), e.Retention)
	if err != nil {
		return err
	}
	return e.enqueue(ctx, t)
}

// DeliverState looks up a delivery's task by its ID (the sweeper).
func (e *Enqueuer) DeliverState(id string, seq int) (TaskState, error) {
	return e.taskState(specs[TypeWebhookDeliver].queue, TaskID(TypeWebhookDeliver, id, seq))
}
