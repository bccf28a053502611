package jobs

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

// TestSessionExpireWireContract: the session:expire payload is its golden
// file, decodes back, names one step of one session in its TaskID, runs on
// the low queue at its ProcessAt, and a payload that cannot decode is
// SkipRetry.
func TestSessionExpireWireContract(t *testing.T) {
	t.Parallel()
	at := time.Now().Add(time.Hour)
	task, err := NewSessionExpireTask("ps_0123", 3, at, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("PAYD_UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile("testdata/session.json", task.Payload(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want := mustRead(t, "testdata/session.json"); string(task.Payload()) != string(want) {
		t.Errorf("payload %s, golden %s", task.Payload(), want)
	}
	if p, err := ParseSessionExpire(asynq.NewTask(TypeSessionExpire, mustRead(t, "testdata/session.json"))); err != nil ||
		p != (SessionPayload{SessionID: "ps_0123", Seq: 3}) {
		t.Errorf("golden decodes to %+v, %v", p, err)
	}
	if got := TaskID(TypeSessionExpire, "ps_0123", 3); got != "session:expire:ps_0123:3" {
		t.Errorf("TaskID %s", got)
	}
	if sp := specs[TypeSessionExpire]; sp.queue != QueueLow || StepQueue("session") != QueueLow {
		t.Errorf("spec %+v", sp)
	}
	if _, err := NewSessionExpireTask("ps_0123", 0, at, 0); err == nil {
		t.Error("a task at sequence 0")
	}
	for _, body := range []string{``, `{`, `{"session_id":""}`, `{"session_id":"ps","seq":0}`, `[]`} {
		if _, err := ParseSessionExpire(asynq.NewTask(TypeSessionExpire, []byte(body))); !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("ParseSessionExpire(%q) = %v, want SkipRetry", body, err)
		}
	}
}
