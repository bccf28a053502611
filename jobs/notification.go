package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
)

// TypeGatewayNotification acts on a notification a gateway pushed: it asks
// the gateway now about the payment the notification names (an inquiry or a
// settlement check at the payment's current step), so the gateway's answer,
// never the notification, decides the status.
const TypeGatewayNotification = "gateway:notification"

// NotificationPayload names one stored notification (store.Notification):
// the gateway, the gateway's notification id and the step sequence the
// task was enqueued for. Nothing the notification claims travels in the
// task. Seq is left out at 1 (and read as 1 when absent): the payload of
// every notification's first task is the one deploys before the sequence
// existed wrote and read (testdata/notification.json).
type NotificationPayload struct {
	Gateway        string `json:"gateway"`
	NotificationID string `json:"notification_id"`
	Seq            int    `json:"seq,omitempty"`
}

// NotificationTaskID names a notification's task at step sequence seq.
// At 1 it is gateway:notification:<gateway>:<notification id>, as before
// the sequence existed: every delivery of one notification enqueues the
// same task, so duplicates de-duplicate while it exists. When the sweeper
// re-arms a notification whose task is stuck (archived, say), the new task
// is gateway:notification#<seq>:<gateway>:<notification id>. The sequence
// sits before the ids, behind a character the first form never has there,
// so no notification id (which may hold ':') makes two tasks' IDs equal.
func NotificationTaskID(gateway, id string, seq int) string {
	if seq <= 1 {
		return TypeGatewayNotification + ":" + gateway + ":" + id
	}
	return TypeGatewayNotification + "#" + strconv.Itoa(seq) + ":" + gateway + ":" + id
}

// NewNotificationTask builds the task for a received notification at step
// sequence seq (1 for its first task).
func NewNotificationTask(gateway, id string, seq int, retention time.Duration) (*asynq.Task, error) {
	if seq < 1 {
		return nil, fmt.Errorf("notification %s/%s: step sequence %d", gateway, id, seq)
	}
	pl := NotificationPayload{Gateway: gateway, NotificationID: id}
	if seq > 1 {
		pl.Seq = seq
	}
	return newTask(TypeGatewayNotification, pl, NotificationTaskID(gateway, id, seq), time.Time{}, retention)
}

// ParseNotification decodes a notification payload; a payload without a
// sequence is at sequence 1.
func ParseNotification(t *asynq.Task) (NotificationPayload, error) {
	var p NotificationPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.Gateway == "" || p.NotificationID == "" || p.Seq < 0 {
		return p, fmt.Errorf("%s: %w", t.Type(), ErrBadPayload)
	}
	if p.Seq == 0 {
		p.Seq = 1
	}
	return p, nil
}

// Notification enqueues the task for a received notification at step
// sequence seq, now. An existing task with its ID is success.
func (e *Enqueuer) Notification(ctx context.Context, gateway, id string, seq int) error {
	t, err := NewNotificationTask(gateway, id, seq, e.Retention)
	if err != nil {
		return err
	}
	return e.enqueue(ctx, t)
}

// NotificationState looks up a notification's task at step sequence seq,
// as State does for a step's. It needs Inspector.
func (e *Enqueuer) NotificationState(gateway, id string, seq int) (TaskState, error) {
	return e.taskState(specs[TypeGatewayNotification].queue, NotificationTaskID(gateway, id, seq))
}
