package processor_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/processor"
	"github.com/payd/payd/store"
)

// Gateway notifications are recovered like every step: the sweeper claims
// due ones with a lease, oldest due first, and re-arms one whose task is
// archived (its retries exhausted) under a fresh sequence and task ID.

// recordLost stores notifications as intake does, naming no payment payd
// has (each is acted on as unknown_payment), and makes them overdue by an
// hour (in the order recorded), so that no sweep grace or queue backlog
// keeps the sweeper from them.
func recordLost(t *testing.T, h *testenv.Harness, prefix string, n int) []string {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s_%04d", prefix, i)
		if _, _, err := h.Store.RecordNotification(ctx, store.Notification{Gateway: "sandbox", ID: ids[i],
			Type: connector.NotifyChargeSucceeded, IdempotencyKey: "pay_unknown:1", OccurredAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Store.DB().Exec(`UPDATE gateway_notifications SET next_at = next_at - interval '1 hour'
		WHERE notification_id LIKE $1 || '\_%'`, prefix); err != nil {
		t.Fatal(err)
	}
	return ids
}

// archive enqueues each notification's first task and archives it, as
// asynq does when its retries are exhausted.
func archive(t *testing.T, h *testenv.Harness, ids []string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		if err := h.Enqueuer.Notification(ctx, "sandbox", id, 1); err != nil {
			t.Fatal(err)
		}
		if err := h.Enqueuer.Inspector.ArchiveTask(jobs.QueueCritical, jobs.NotificationTaskID("sandbox", id, 1)); err != nil {
			t.Fatalf("archive %s: %v", id, err)
		}
	}
}

// unprocessed counts the notifications among ids not acted on yet.
func unprocessed(t *testing.T, h *testenv.Harness, ids []string) int {
	t.Helper()
	var n int
	if err := h.Store.DB().QueryRow(`SELECT count(*) FROM gateway_notifications
		WHERE notification_id = ANY (string_to_array($1, ',')) AND processed_at IS NULL`, joinIDs(ids)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func joinIDs(ids []string) string {
	s := ""
	for i, id := range ids {
		if i > 0 {
			s += ","
		}
		s += id
	}
	return s
}

// TestNotificationSweepArchivedDoNotStarve: 600 notifications are waiting,
// the oldest 500 with their tasks archived (the sweeper's whole batch),
// the newest 100 with their tasks lost. The first sweep enqueues the newer
// ones too (the archived ones are claimed for a lease, not listed again),
// and they are acted on while the archived ones still wait; a lease later
// the archived ones are re-armed under sequence 2 and acted on, each once.
func TestNotificationSweepArchivedDoNotStarve(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true, Processor: processor.Config{SweepBatch: 500, SweepLease: 2 * time.Second}})
	ctx := context.Background()
	old := recordLost(t, h, "old", 500)
	archive(t, h, old)
	newer := recordLost(t, h, "new", 100)
	h.StartWorker()

	if n, err := h.Processor.Sweep(ctx); err != nil || n != 600 {
		t.Fatalf("first sweep enqueued %d (%v), want 600 (500 of them already archived)", n, err)
	}
	for deadline := time.Now().Add(20 * time.Second); unprocessed(t, h, newer) > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of the newer notifications not acted on behind 500 archived ones", unprocessed(t, h, newer))
		}
	}
	if n := unprocessed(t, h, old); n != 500 {
		t.Fatalf("%d of the archived notifications waiting, want 500 (their tasks are archived)", n)
	}
	// within the lease they are left alone; after it, re-armed
	for deadline := time.Now().Add(30 * time.Second); unprocessed(t, h, old) > 0; time.Sleep(200 * time.Millisecond) {
		if _, err := h.Processor.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d archived notifications never acted on", unprocessed(t, h, old))
		}
	}
	for _, c := range []struct {
		ids []string
		seq int
	}{{old, 2}, {newer, 1}} {
		for _, id := range c.ids {
			n, err := h.Store.GetNotification(ctx, "sandbox", id)
			if err != nil || n.Outcome != "unknown_payment" || n.Seq != c.seq {
				t.Fatalf("%s: %+v %v; want unknown_payment at sequence %d", id, n, err, c.seq)
			}
		}
	}
}

// TestNotificationArchivedTaskRearmed: a notification that would resolve
// an UNKNOWN payment now (its inquiry is an hour away) has its task
// archived. The sweeper enqueues it again (a no-op: the archived task
// holds its ID), and a lease later finds the task archived and re-arms the
// notification under a fresh sequence and task ID. The old task, run late
// or by hand, is stale and does nothing; the new one makes payd inquire:
// the payment succeeds by inquiry, once, with one charge, and the
// notification is processed once.
func TestNotificationArchivedTaskRearmed(t *testing.T) {
	t.Parallel()
	pol := payment.DefaultRetryPolicy(10 * time.Millisecond)
	pol.Inquiries = []time.Duration{time.Hour, time.Hour}
	h, g := staleHarness(t, sandbox.Config{}, processor.Config{Policy: pol, SweepLease: time.Second, SweepGrace: 10 * time.Millisecond})
	ctx := context.Background()
	id := h.CreatePayment("CARD", "pm_card_timeout_after_charge", "9.99")
	p, _ := driveTo(t, h, id, func(p payment.Payment) bool {
		a, ok := lastAttemptOf(p)
		return ok && a.Status == payment.AttemptUnknown && p.NextStep == payment.StepInquire
	})
	if p.NextStepAt.Before(time.Now().Add(50 * time.Minute)) {
		t.Fatalf("inquiry due at %v, want an hour away", p.NextStepAt)
	}
	const ntf = "evt_archived_1"
	if _, _, err := h.Store.RecordNotification(ctx, store.Notification{Gateway: "sandbox", ID: ntf,
		Type: connector.NotifyChargeSucceeded, IdempotencyKey: payment.AttemptKey(id, 1), OccurredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	archive(t, h, []string{ntf})
	oldTask := jobs.NotificationTaskID("sandbox", ntf, 1)
	time.Sleep(20 * time.Millisecond) // past the sweep grace

	// first sweep: enqueued again, which the archived task's ID makes a no-op
	if n, err := h.Processor.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("first sweep: %d %v", n, err)
	}
	if st, err := h.Enqueuer.NotificationState("sandbox", ntf, 1); err != nil || st != jobs.TaskStuck {
		t.Fatalf("task after the first sweep: %v %v, want archived (stuck)", st, err)
	}
	// a lease later: re-armed under sequence 2
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := h.Processor.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		n, err := h.Store.GetNotification(ctx, "sandbox", ntf)
		if err != nil {
			t.Fatal(err)
		}
		if n.Seq == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never re-armed: %+v", n)
		}
	}
	if st, err := h.Enqueuer.NotificationState("sandbox", ntf, 2); err != nil || st != jobs.TaskWaiting {
		t.Fatalf("re-armed task: %v %v, want waiting", st, err)
	}
	// the old task, delivered now, is stale: nothing is asked or changed
	before, calls := readPayment(t, h, id), g.calls()
	deliver(t, h, jobs.TypeGatewayNotification, jobs.NotificationPayload{Gateway: "sandbox", NotificationID: ntf})
	if n, _ := h.Store.GetNotification(ctx, "sandbox", ntf); n.ProcessedAt != nil || g.calls() != calls {
		t.Fatalf("the old task acted: %+v, gateway calls %v → %v", n, calls, g.calls())
	}
	if d := cmp.Diff(before, readPayment(t, h, id)); d != "" {
		t.Fatalf("the old task changed the payment (-before +after):\n%s", d)
	}
	if got := staleCount(h, jobs.TypeGatewayNotification); got != 1 {
		t.Fatalf("%v notification tasks counted stale, want 1", got)
	}
	// and the archived one is run too, as an operator might
	if err := h.Enqueuer.Inspector.RunTask(jobs.QueueCritical, oldTask); err != nil {
		t.Fatal(err)
	}
	h.StartWorker()
	got := waitStatus(t, h, id, payment.StatusSucceeded, 15*time.Second)
	for deadline := time.Now().Add(15 * time.Second); staleCount(h, jobs.TypeGatewayNotification) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the old task never ran")
		}
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n, err := h.Store.GetNotification(ctx, "sandbox", ntf)
		if err == nil && n.ProcessedAt != nil {
			if n.Outcome != "checked" || n.Seq != 2 || n.PaymentID != id {
				t.Fatalf("notification %+v", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notification not processed: %+v %v", n, err)
		}
	}
	evs := checkAudit(t, h, got)
	if last := evs[len(evs)-1]; last.Reason != "attempt 1 charged (found by inquiry)" {
		t.Fatalf("succeeded by %q", last.Reason)
	}
	if len(got.Attempts) != 1 || g.Sandbox.ChargesFor(id) != 1 || g.inquiries.Load() != 1 {
		t.Fatalf("%d attempts, %d charges, %d inquiries; want 1, 1, 1", len(got.Attempts), g.Sandbox.ChargesFor(id), g.inquiries.Load())
	}
}

// TestNotificationSweepersSplitWork: four sweepers run at once over 300
// notifications whose tasks were lost, in batches of 40: each
// notification is claimed and enqueued by exactly one of them, once, and
// a sweep within the lease enqueues none again. Each is then acted on once.
func TestNotificationSweepersSplitWork(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true, Processor: processor.Config{SweepBatch: 40, SweepLease: time.Minute}})
	ctx := context.Background()
	ids := recordLost(t, h, "lost", 300)
	var wg sync.WaitGroup
	totals := make([]int, 4)
	for i := range totals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := h.Processor.Sweep(ctx)
			if err != nil {
				t.Error(err)
			}
			totals[i] = n
		}()
	}
	wg.Wait()
	sum := 0
	for _, n := range totals {
		sum += n
	}
	enqueued := counterValue(h.Processor.Metrics.SweeperEnqueued.WithLabelValues(string(store.StepNotification)))
	if sum != 300 || enqueued != 300 {
		t.Fatalf("sweepers enqueued %v (sum %d, metric %v), want 300 in all, each once", totals, sum, enqueued)
	}
	info, err := h.Enqueuer.Inspector.GetQueueInfo(jobs.QueueCritical)
	if err != nil || info.Pending != 300 {
		t.Fatalf("critical queue: %+v %v, want 300 pending", info, err)
	}
	if n, err := h.Processor.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("a sweep within the lease enqueued %d (%v)", n, err)
	}
	h.StartWorker()
	// a handler counts its check just after recording it
	checks := func() float64 {
		return counterValue(h.Processor.Metrics.GatewayNotificationChecks.WithLabelValues(connector.NotifyChargeSucceeded, "unknown_payment"))
	}
	for deadline := time.Now().Add(20 * time.Second); unprocessed(t, h, ids) > 0 || checks() < 300; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d notifications not acted on, %v checks", unprocessed(t, h, ids), checks())
		}
	}
	if got := checks(); got != 300 {
		t.Fatalf("%v checks of 300 notifications", got)
	}
}
