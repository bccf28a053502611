package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/cli"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
)

// archivedTask enqueues a payment step on the harness's Redis (nothing
// serves it) and archives it, as asynq does with a task out of retries.
func archivedTask(t *testing.T, h *testenv.Harness, paymentID string) string {
	t.Helper()
	ctx := context.Background()
	if err := h.Enqueuer.Step(ctx, payment.StepCreate, paymentID, 1, h.Store.Now()); err != nil {
		t.Fatal(err)
	}
	id := jobs.TaskID(jobs.TypePaymentCreate, paymentID, 1)
	if err := h.Enqueuer.Inspector.ArchiveTask(jobs.QueueDefault, id); err != nil {
		t.Fatalf("archive %s: %v", id, err)
	}
	return id
}

func taskState(t *testing.T, h *testenv.Harness, id string) asynq.TaskState {
	t.Helper()
	info, err := h.Enqueuer.Inspector.GetTaskInfo(jobs.QueueDefault, id)
	if err != nil {
		t.Fatalf("task %s: %v", id, err)
	}
	return info.State
}

// TestTasksArchivedAndRequeue: archived tasks in Redis are listed with the
// ids of their payload, and requeued back to pending: one by id (in
// whichever queue holds it), then the rest of a queue.
func TestTasksArchivedAndRequeue(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	one := archivedTask(t, h, "pay_archived_one")
	two := archivedTask(t, h, "pay_archived_two")

	out, code := payd(t, h, "tasks", "archived", "--json")
	if code != cli.ExitOK {
		t.Fatalf("tasks archived: exit %d\n%s", code, out)
	}
	var items []struct {
		ID      string            `json:"id"`
		Queue   string            `json:"queue"`
		Type    string            `json:"type"`
		State   string            `json:"state"`
		Payload map[string]string `json:"payload"`
	}
	if err := json.Unmarshal([]byte(out), &items); err != nil {
		t.Fatalf("tasks archived --json: %v\n%s", err, out)
	}
	found := map[string]bool{}
	for _, it := range items {
		found[it.ID] = true
		if it.Queue != jobs.QueueDefault || it.Type != jobs.TypePaymentCreate || it.State != "archived" ||
			!strings.HasPrefix(it.Payload["payment_id"], "pay_archived_") || it.Payload["seq"] != "1" {
			t.Errorf("archived task %+v", it)
		}
	}
	if len(items) != 2 || !found[one] || !found[two] {
		t.Fatalf("archived lists %+v, want %s and %s", items, one, two)
	}
	if out, code := payd(t, h, "tasks", "archived", "--queue", "critical"); code != 0 || !strings.Contains(out, "no archived tasks") {
		t.Errorf("archived --queue critical: exit %d\n%s", code, out)
	}
	if out, code := payd(t, h, "tasks", "archived"); code != 0 || !strings.Contains(out, "payment_id=pay_archived_one") {
		t.Errorf("archived table: exit %d\n%s", code, out)
	}

	out, code = payd(t, h, "tasks", "requeue-archived", "--id", one, "--json")
	if code != cli.ExitOK {
		t.Fatalf("requeue --id: exit %d\n%s", code, out)
	}
	var rq struct {
		Total int `json:"total"`
		Task  struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"task"`
	}
	if err := json.Unmarshal([]byte(out), &rq); err != nil || rq.Total != 1 || rq.Task.ID != one || rq.Task.State != "pending" {
		t.Errorf("requeue --id --json: %v %+v\n%s", err, rq, out)
	}
	if st := taskState(t, h, one); st != asynq.TaskStatePending {
		t.Errorf("requeued task is %s, want pending", st)
	}
	if st := taskState(t, h, two); st != asynq.TaskStateArchived {
		t.Errorf("the other task is %s, want still archived", st)
	}
	// requeued already: not archived any more
	if out, code := payd(t, h, "tasks", "requeue-archived", "--id", one); code != cli.ExitNotFound {
		t.Errorf("requeue of a pending task: exit %d\n%s", code, out)
	}
	out, code = payd(t, h, "tasks", "requeue-archived", "--queue", jobs.QueueDefault, "--json")
	if err := json.Unmarshal([]byte(out), &rq); code != 0 || err != nil || rq.Total != 1 {
		t.Errorf("requeue --queue default: exit %d %v\n%s", code, err, out)
	}
	if st := taskState(t, h, two); st != asynq.TaskStatePending {
		t.Errorf("requeued task is %s, want pending", st)
	}
	if out, code := payd(t, h, "tasks", "archived", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("archived after requeue: exit %d\n%s", code, out)
	}
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"tasks", "archived", "--queue", "nope"}, cli.ExitNotFound},
		{[]string{"tasks", "requeue-archived", "--id", "payment:create:pay_none:1"}, cli.ExitNotFound},
		{[]string{"tasks", "archived", "--limit", "0"}, cli.ExitUsage},
		{[]string{"tasks"}, cli.ExitUsage},
	} {
		if out, code := payd(t, h, c.args...); code != c.want {
			t.Errorf("payd %s: exit %d, want %d\n%s", strings.Join(c.args, " "), code, c.want, out)
		}
	}
}
