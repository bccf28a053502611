package intake_test

import (
	"context"
	"testing"
	"time"

	"github.com/payd/payd/intake"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// wakeHarness runs intake with no worker (the test decides the payment's
// outcome), a long submit wait and the given fallback poll, and returns
// once the store's wake-up listener is live, so that a submit waits with
// wake-ups (and polls only as the fallback).
func wakeHarness(t *testing.T, poll time.Duration) *testenv.Harness {
	t.Helper()
	h := sessionHarness(t, testenv.Options{NoWorker: true,
		Intake: intake.Config{SessionSubmitWait: 20 * time.Second, SessionSubmitPoll: poll}})
	waitFor(t, 10*time.Second, "wake-up listener", func() bool {
		_, stop, live := h.Store.WaitPayment("pay_none")
		stop()
		return live
	})
	return h
}

type submitted struct {
	r   testenv.Response
	dur time.Duration
}

// submitAndFind submits session id in the background and returns the
// payment the submit recorded, and where its answer will arrive.
func submitAndFind(t *testing.T, h *testenv.Harness, id string) (payment.Payment, <-chan submitted, time.Time) {
	t.Helper()
	start := time.Now()
	done := make(chan submitted, 1)
	go func() {
		r := h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", 1250), nil)
		done <- submitted{r, time.Since(start)}
	}()
	var pay payment.Payment
	waitFor(t, 10*time.Second, "the submit's payment", func() bool {
		sess, err := h.Store.GetSession(context.Background(), h.TenantA, id)
		if err != nil || sess.PaymentID == "" {
			return false
		}
		pay, err = h.Store.PaymentHead(context.Background(), sess.PaymentID)
		return err == nil
	})
	return pay, done, start
}

// TestSessionSubmitWokenByOutcome: the submit answers as soon as the
// statement recording its payment's outcome commits (the worker's
// statement sends the wake-up), long before its fallback poll would read.
func TestSessionSubmitWokenByOutcome(t *testing.T) {
	t.Parallel()
	h := wakeHarness(t, 8*time.Second)
	s := createSession(t, h, nil)
	pay, done, _ := submitAndFind(t, h, s["id"].(string))
	ctx := context.Background()
	seq, err := h.Store.Record(ctx, nil, store.Change{PaymentID: pay.ID, From: payment.StatusPending, To: payment.StatusProcessing,
		Seq: pay.StepSeq, NextStep: payment.StepInquire, NextStepAt: time.Now().Add(time.Minute), Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	decided := time.Now()
	if _, err := h.Store.Record(ctx, nil, store.Change{PaymentID: pay.ID, From: payment.StatusProcessing, To: payment.StatusSucceeded,
		Seq: seq, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-done:
		out := jsonObj(t, a.r, 201)
		if out["status"] != "Captured" || out["id"] != pay.ID {
			t.Fatalf("answer %v", out)
		}
		if d := time.Since(decided); d > 5*time.Second {
			t.Errorf("answered %v after the outcome: not woken (the fallback poll is 8 s)", d)
		}
	case <-time.After(7 * time.Second):
		t.Fatal("no answer 7 s after the outcome: the wake-up did not come (the fallback poll is 8 s)")
	}
}

// TestSessionSubmitLostWakeup: an outcome that sends no wake-up (written by
// a statement other than the worker's, as a lost notification would leave
// it) is still answered, by the fallback poll, long before the wait's
// deadline.
func TestSessionSubmitLostWakeup(t *testing.T) {
	t.Parallel()
	h := wakeHarness(t, 300*time.Millisecond)
	s := createSession(t, h, nil)
	pay, done, start := submitAndFind(t, h, s["id"].(string))
	if _, err := h.Store.DB().ExecContext(context.Background(),
		`UPDATE payments SET status = 'SUCCEEDED', next_step = NULL, next_step_at = NULL WHERE id = $1`, pay.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-done:
		out := jsonObj(t, a.r, 201)
		if out["status"] != "Captured" || out["id"] != pay.ID {
			t.Fatalf("answer %v", out)
		}
		if a.dur > 15*time.Second {
			t.Errorf("answered after %v: by the deadline's read, not the fallback poll", a.dur)
		}
	case <-time.After(time.Until(start.Add(15 * time.Second))):
		t.Fatal("no answer 15 s after the submit: the fallback poll did not find the outcome (the wait is 20 s)")
	}
}
