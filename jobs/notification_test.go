package jobs

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

// TestNotificationGoldenPayload: the gateway:notification payload is a wire
// contract like the others (PAYD_UPDATE_GOLDEN=1 rewrites it). The first
// task of a notification (sequence 1) keeps the payload and TaskID of the
// deploys before the sequence existed; a re-armed one (sequence > 1)
// carries its sequence.
func TestNotificationGoldenPayload(t *testing.T) {
	t.Parallel()
	first, err := NewNotificationTask("sandbox", "evt_42", 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rearmed, err := NewNotificationTask("sandbox", "evt_42", 3, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for path, task := range map[string]*asynq.Task{"testdata/notification.json": first, "testdata/notification_rearmed.json": rearmed} {
		if os.Getenv("PAYD_UPDATE_GOLDEN") == "1" {
			if err := os.WriteFile(path, task.Payload(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if want := mustRead(t, path); string(task.Payload()) != string(want) {
			t.Errorf("%s: payload %s, golden %s", path, task.Payload(), want)
		}
	}
	p, err := ParseNotification(asynq.NewTask(TypeGatewayNotification, mustRead(t, "testdata/notification.json")))
	if err != nil || p != (NotificationPayload{Gateway: "sandbox", NotificationID: "evt_42", Seq: 1}) {
		t.Errorf("golden decodes to %+v, %v", p, err)
	}
	p, err = ParseNotification(asynq.NewTask(TypeGatewayNotification, mustRead(t, "testdata/notification_rearmed.json")))
	if err != nil || p != (NotificationPayload{Gateway: "sandbox", NotificationID: "evt_42", Seq: 3}) {
		t.Errorf("re-armed golden decodes to %+v, %v", p, err)
	}
	for _, body := range []string{``, `{`, `{"gateway":"sandbox"}`, `{"notification_id":"x"}`, `[]`,
		`{"gateway":"sandbox","notification_id":"x","seq":-1}`, `{"gateway":"sandbox","notification_id":"x","seq":"2"}`} {
		if _, err := ParseNotification(asynq.NewTask(TypeGatewayNotification, []byte(body))); !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("ParseNotification(%q) = %v, want SkipRetry", body, err)
		}
	}
	if _, err := NewNotificationTask("sandbox", "evt_42", 0, time.Minute); err == nil {
		t.Error("a notification task at sequence 0")
	}
	if sp := specs[TypeGatewayNotification]; sp.maxRetry >= 25 || sp.timeout <= 0 || sp.queue == "" {
		t.Errorf("spec %+v", sp)
	}
}

// TestNotificationTaskIDs: the first task keeps the ID of the deploys
// before the sequence; a re-armed one gets a fresh ID, and no two
// (notification, sequence) pairs share one, whatever the notification id
// holds.
func TestNotificationTaskIDs(t *testing.T) {
	t.Parallel()
	if got := NotificationTaskID("sandbox", "evt_42", 1); got != "gateway:notification:sandbox:evt_42" {
		t.Errorf("TaskID at 1 = %s", got)
	}
	if got := NotificationTaskID("sandbox", "evt_42", 2); got != "gateway:notification#2:sandbox:evt_42" {
		t.Errorf("TaskID at 2 = %s", got)
	}
	seen := map[string]string{}
	for _, id := range []string{"evt_42", "evt_42:2", "evt_42:1", "2:evt_42", "#2:sandbox:evt_42", "evt"} {
		for seq := 1; seq <= 3; seq++ {
			tid := NotificationTaskID("sandbox", id, seq)
			pair := id + "@" + string(rune('0'+seq))
			if other, dup := seen[tid]; dup {
				t.Errorf("%s and %s share the TaskID %s", pair, other, tid)
			}
			seen[tid] = pair
		}
	}
	task, err := NewNotificationTask("sandbox", "evt_42", 2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != TypeGatewayNotification {
		t.Errorf("type %s", task.Type())
	}
}
