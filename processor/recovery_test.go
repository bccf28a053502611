package processor_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/processor"
	"github.com/payd/payd/store"
)

// TestRedisWipeLosesNothing: payments accepted while no worker runs, then
// every queued task wiped (FLUSHDB on our Redis DB); the sweeper rebuilds the
// queue from Postgres and every payment still reaches its outcome (I2), each
// card charged once (I1).
func TestRedisWipeLosesNothing(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	var ids []string
	for i := 0; i < 40; i++ {
		pm := "pm_card_visa"
		if i%4 == 0 {
			pm = "pm_card_flaky"
		}
		ids = append(ids, h.CreatePayment("CARD", pm, "3"))
	}
	if err := h.Redis.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // past the sweep grace
	h.StartWorker()
	for _, id := range ids {
		p := waitSweeping(t, h, id)
		if p.Status != payment.StatusSucceeded || h.Sandbox.ChargesFor(id) != 1 {
			t.Fatalf("%s: %s with %d charges", id, p.Status, h.Sandbox.ChargesFor(id))
		}
	}
}

// TestWorkerDiesAfterGatewayCharged: a worker claims the step, the gateway
// charges, and the worker dies before recording anything. The claim left an
// inquiry due; the sweeper enqueues it and the inquiry finds the charge: the
// payment succeeds with one charge, and no second attempt is made.
func TestWorkerDiesAfterGatewayCharged(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true, Processor: processor.Config{GatewayTimeout: 100 * time.Millisecond,
		InquiryGrace: 100 * time.Millisecond, SweepGrace: 10 * time.Millisecond}})
	ctx := context.Background()
	id := h.CreatePayment("CARD", "pm_card_visa", "7.77")
	p, _ := h.Store.GetPayment(ctx, "", id)
	seq, err := h.Store.Apply(ctx, store.Change{PaymentID: id, From: payment.StatusPending, To: payment.StatusPending, Seq: p.StepSeq,
		NextStep: payment.StepSubmit, NextStepAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	claim, err := h.Store.ClaimSubmit(ctx, id, seq, time.Now().Add(200*time.Millisecond), "doomed-worker")
	if err != nil {
		t.Fatal(err)
	}
	// the doomed worker's gateway call lands, then the worker is gone
	if _, err := h.Sandbox.Charge(ctx, connector.ChargeRequest{IdempotencyKey: claim.Attempt.IdempotencyKey, PaymentID: id,
		Amount: claim.Payment.Amount, Method: payment.MethodCard, PaymentMethodID: "pm_card_visa"}); err != nil {
		t.Fatal(err)
	}
	h.Redis.FlushDB(ctx) // and its queued work with it
	h.StartWorker()
	time.Sleep(300 * time.Millisecond)
	got := waitSweeping(t, h, id)
	if got.Status != payment.StatusSucceeded || len(got.Attempts) != 1 || h.Sandbox.ChargesFor(id) != 1 {
		t.Fatalf("got %s, %d attempts, %d charges; want SUCCEEDED, 1, 1", got.Status, len(got.Attempts), h.Sandbox.ChargesFor(id))
	}
}

// TestWorkerDiesBeforeGatewayCall: the claim committed but the call never
// happened. The inquiry finds nothing, fences the key, and a second attempt
// charges exactly once.
func TestWorkerDiesBeforeGatewayCall(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true, Processor: processor.Config{GatewayTimeout: 100 * time.Millisecond,
		InquiryGrace: 100 * time.Millisecond, SweepGrace: 10 * time.Millisecond}})
	ctx := context.Background()
	id := h.CreatePayment("CARD", "pm_card_visa", "7.77")
	p, _ := h.Store.GetPayment(ctx, "", id)
	seq, _ := h.Store.Apply(ctx, store.Change{PaymentID: id, From: payment.StatusPending, To: payment.StatusPending, Seq: p.StepSeq,
		NextStep: payment.StepSubmit, NextStepAt: time.Now()})
	claim, err := h.Store.ClaimSubmit(ctx, id, seq, time.Now().Add(200*time.Millisecond), "doomed-worker")
	if err != nil {
		t.Fatal(err)
	}
	h.Redis.FlushDB(ctx)
	h.StartWorker()
	time.Sleep(300 * time.Millisecond)
	got := waitSweeping(t, h, id)
	if got.Status != payment.StatusSucceeded || len(got.Attempts) != 2 || h.Sandbox.ChargesFor(id) != 1 {
		t.Fatalf("got %s, %d attempts, %d charges; want SUCCEEDED, 2, 1", got.Status, len(got.Attempts), h.Sandbox.ChargesFor(id))
	}
	// the first attempt's key is fenced: if its request arrived now, it would not charge
	res, _ := h.Sandbox.Charge(ctx, connector.ChargeRequest{IdempotencyKey: claim.Attempt.IdempotencyKey, PaymentID: id,
		Amount: claim.Payment.Amount, Method: payment.MethodCard, PaymentMethodID: "pm_card_visa"})
	if res.Status == connector.StatusSucceeded || h.Sandbox.ChargesFor(id) != 1 {
		t.Fatalf("late request on a fenced key: %+v, %d charges", res, h.Sandbox.ChargesFor(id))
	}
}

func waitSweeping(t *testing.T, h *testenv.Harness, id string) payment.Payment {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := h.Processor.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
		got, _ := h.Store.GetPayment(context.Background(), "", id)
		if got.Status.Final() {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("stuck in %s", got.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSweepWaitsOutQueueBacklog: a step still waiting its turn behind a
// queue's backlog is not swept (re-enqueueing it would only add work under
// load); once the queue is gone (a Redis wipe), it is.
func TestSweepWaitsOutQueueBacklog(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true, Processor: processor.Config{SweepGrace: 10 * time.Millisecond,
		SweepLease: 500 * time.Millisecond}})
	ctx := context.Background()
	// the default queue's backlog: a task pending for 1.5 s
	if _, err := h.Enqueuer.Client.Enqueue(asynq.NewTask("test:backlog", nil), asynq.Queue("default")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	id := h.CreatePayment("CARD", "pm_card_visa", "1.00")
	time.Sleep(100 * time.Millisecond) // overdue by the grace, but younger than the backlog
	swept := func() bool {
		var s bool
		if err := h.Store.DB().QueryRowContext(ctx, `SELECT swept FROM payments WHERE id = $1`, id).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := h.Processor.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if swept() {
		t.Fatal("a step younger than its queue's backlog was swept")
	}
	if err := h.Redis.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Processor.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if !swept() {
		t.Fatal("after the wipe the overdue step was not swept")
	}
	h.StartWorker()
	if p := waitSweeping(t, h, id); p.Status != payment.StatusSucceeded || h.Sandbox.ChargesFor(id) != 1 {
		t.Fatalf("%s: %s with %d charges", id, p.Status, h.Sandbox.ChargesFor(id))
	}
}
