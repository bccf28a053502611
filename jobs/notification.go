package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypeGatewayNotification acts on a notification a gateway pushed: it asks
// the gateway now about the payment the notification names (an inquiry or a
// settlement check at the payment's current step), so the gateway's answer,
// never the notification, decides the status.
const TypeGatewayNotification = "gateway:notification"

// NotificationPayload names one stored notification (store.Notification):
// the gateway and the gateway's notification id. Nothing the notification
// claims travels in the task.
type NotificationPayload struct {
	Gateway        string `json:"gateway"`
	NotificationID string `json:"notification_id"`
}

// NotificationTaskID is gateway:notification:<gateway>:<notification id>:
// every delivery of one notification enqueues the same task, so duplicates
// de-duplicate while it exists.
func NotificationTaskID(gateway, id string) string {
	return TypeGatewayNotification + ":" + gateway + ":" + id
}

// NewNotificationTask builds the task for a received notification.
func NewNotificationTask(gateway, id string, retention time.Duration) (*asynq.Task, error) {
	return newTask(TypeGatewayNotification, NotificationPayload{Gateway: gateway, NotificationID: id},
		NotificationTaskID(gateway, id), time.Time{}, retention)
}

// ParseNotification decodes a notification payload.
func ParseNotification(t *asynq.Task) (NotificationPayload, error) {
	var p NotificationPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.Gateway == "" || p.NotificationID == "" {
		return p, fmt.Errorf("%s: %w", t.Type(), ErrBadPayload)
	}
	return p, nil
}

// Notification enqueues the task for a received notification now. An
// existing task with its ID is success.
func (e *Enqueuer) Notification(ctx context.Context, gateway, id string) error {
	t, err := NewNotificationTask(gateway, id, e.Retention)
	if err != nil {
		return err
	}
	return e.enqueue(ctx, t)
}
