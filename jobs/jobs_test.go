package jobs

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/payment"
)

// TestGoldenPayloads: payloads are a wire contract between deploys: a task
// enqueued by the old version must decode in the new one. Run with
// PAYD_UPDATE_GOLDEN=1 only for a deliberate, compatible change.
func TestGoldenPayloads(t *testing.T) {
	t.Parallel()
	step, err := NewStepTask(payment.StepSubmit, "pay_0123", 7, time.Time{}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	refund, err := NewRefundTask("re_0123", 2, time.Time{}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	reconcile, err := NewReconcileTask(ReconcilePayload{From: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		To: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	for file, task := range map[string]*asynq.Task{"step.json": step, "refund.json": refund, "reconcile.json": reconcile} {
		path := "testdata/" + file
		if os.Getenv("PAYD_UPDATE_GOLDEN") == "1" {
			if err := os.WriteFile(path, task.Payload(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(task.Payload()) != string(want) {
			t.Errorf("%s payload %s, golden %s", file, task.Payload(), want)
		}
	}
	// the golden payloads decode
	if p, err := ParseStep(asynq.NewTask(TypePaymentSubmit, mustRead(t, "testdata/step.json"))); err != nil || p != (StepPayload{PaymentID: "pay_0123", Seq: 7}) {
		t.Errorf("step golden decodes to %+v, %v", p, err)
	}
	if p, err := ParseRefund(asynq.NewTask(TypePaymentRefund, mustRead(t, "testdata/refund.json"))); err != nil || p != (RefundPayload{RefundID: "re_0123", Seq: 2}) {
		t.Errorf("refund golden decodes to %+v, %v", p, err)
	}
	if p, err := ParseReconcile(asynq.NewTask(TypeReconcile, mustRead(t, "testdata/reconcile.json"))); err != nil ||
		!p.From.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) || !p.To.Equal(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("reconcile golden decodes to %+v, %v", p, err)
	}
	// the scheduler's run names no window
	if p, err := ParseReconcile(asynq.NewTask(TypeReconcile, []byte(`{}`))); err != nil || !p.From.IsZero() || !p.To.IsZero() {
		t.Errorf("empty reconcile payload decodes to %+v, %v", p, err)
	}
	if _, err := ParseReconcile(asynq.NewTask(TypeReconcile, []byte(`{"from":"2026-12-02T00:00:00Z","to":"2026-12-01T00:00:00Z"}`))); !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("a window that ends before it starts decodes: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadPayloadSkipsRetry: a payload that cannot decode will never succeed.
func TestBadPayloadSkipsRetry(t *testing.T) {
	t.Parallel()
	for _, body := range []string{``, `{`, `{"payment_id":""}`, `{"payment_id":"p","seq":0}`, `[]`} {
		if _, err := ParseStep(asynq.NewTask(TypePaymentSubmit, []byte(body))); !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("ParseStep(%q) = %v, want SkipRetry", body, err)
		}
		if _, err := ParseRefund(asynq.NewTask(TypePaymentRefund, []byte(body))); !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("ParseRefund(%q) = %v, want SkipRetry", body, err)
		}
	}
}

// TestEveryTypeOverridesAsynqDefaults: no task type runs with asynq's 25
// retries and 30-minute timeout, and every step has a TaskID naming it.
func TestEveryTypeOverridesAsynqDefaults(t *testing.T) {
	t.Parallel()
	for typ, sp := range specs {
		if sp.maxRetry >= 25 || sp.timeout <= 0 || sp.timeout >= 30*time.Minute || Queues[sp.queue] == 0 {
			t.Errorf("%s: %+v", typ, sp)
		}
	}
	for _, step := range []payment.Step{payment.StepCreate, payment.StepSubmit, payment.StepInquire, payment.StepSettle} {
		typ, ok := StepType(step)
		if !ok {
			t.Fatalf("no task type for step %s", step)
		}
		if _, ok := specs[typ]; !ok {
			t.Errorf("%s has no options", typ)
		}
	}
	if got := TaskID(TypePaymentSubmit, "pay_1", 3); got != "payment:submit:pay_1:3" {
		t.Errorf("TaskID = %s", got)
	}
	if _, err := NewStepTask(payment.StepNone, "pay_1", 1, time.Time{}, 0); err == nil {
		t.Error("a task for no step")
	}
}
