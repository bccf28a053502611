package jobs

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

// TestNotificationGoldenPayload: the gateway:notification payload is a wire
// contract like the others (PAYD_UPDATE_GOLDEN=1 rewrites it).
func TestNotificationGoldenPayload(t *testing.T) {
	t.Parallel()
	task, err := NewNotificationTask("sandbox", "evt_42", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	const path = "testdata/notification.json"
	if os.Getenv("PAYD_UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(path, task.Payload(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want := mustRead(t, path); string(task.Payload()) != string(want) {
		t.Errorf("payload %s, golden %s", task.Payload(), want)
	}
	p, err := ParseNotification(asynq.NewTask(TypeGatewayNotification, mustRead(t, path)))
	if err != nil || p != (NotificationPayload{Gateway: "sandbox", NotificationID: "evt_42"}) {
		t.Errorf("golden decodes to %+v, %v", p, err)
	}
	if got := NotificationTaskID("sandbox", "evt_42"); got != "gateway:notification:sandbox:evt_42" {
		t.Errorf("TaskID = %s", got)
	}
	for _, body := range []string{``, `{`, `{"gateway":"sandbox"}`, `{"notification_id":"x"}`, `[]`} {
		if _, err := ParseNotification(asynq.NewTask(TypeGatewayNotification, []byte(body))); !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("ParseNotification(%q) = %v, want SkipRetry", body, err)
		}
	}
	if sp := specs[TypeGatewayNotification]; sp.maxRetry >= 25 || sp.timeout <= 0 || sp.queue == "" {
		t.Errorf("spec %+v", sp)
	}
}
