package jobs

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/payment"
)

// FuzzParsePayload: a task payload from Redis — written by any past or
// future payd, or damaged — never panics the worker; a bad one is
// ErrBadPayload (SkipRetry: never retried), and a good one round-trips
// through New…Task to the same payload.
func FuzzParsePayload(f *testing.F) {
	for _, s := range []string{`{"payment_id":"pay_1","seq":1}`, `{"refund_id":"ref_1","seq":2}`, `{}`, `[]`, ``, `null`,
		`{"payment_id":"pay_1","seq":0}`, `{"payment_id":"pay_1","seq":-1}`, `{"payment_id":"","seq":1}`,
		`{"payment_id":"pay_1","seq":1e30}`, `{"payment_id":1,"seq":1}`, `{"payment_id":"pay_1","seq":"1"}`,
		`{"payment_id":"pay_1","seq":9223372036854775808}`, "{\"payment_id\":\"\xff\",\"seq\":1}",
		`{"payment_id":"pay_1","seq":1,"extra":true}`, `{"PAYMENT_ID":"pay_1","seq":1}`, `{"session_id":"ps_1","seq":3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if xp, err := ParseSessionExpire(asynq.NewTask(TypeSessionExpire, b)); err != nil {
			if !errors.Is(err, ErrBadPayload) || !errors.Is(err, asynq.SkipRetry) {
				t.Fatalf("ParseSessionExpire error %v is not ErrBadPayload", err)
			}
		} else {
			task, err := NewSessionExpireTask(xp.SessionID, xp.Seq, time.Time{}, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if back, err := ParseSessionExpire(task); err != nil || back != xp {
				t.Fatalf("session payload %+v round-trips to %+v, %v", xp, back, err)
			}
		}
		sp, err := ParseStep(asynq.NewTask(TypePaymentSubmit, b))
		if err != nil {
			if !errors.Is(err, ErrBadPayload) || !errors.Is(err, asynq.SkipRetry) {
				t.Fatalf("ParseStep error %v is not ErrBadPayload", err)
			}
		} else {
			if sp.PaymentID == "" || sp.Seq <= 0 {
				t.Fatalf("accepted step payload %+v", sp)
			}
			task, err := NewStepTask(payment.StepSubmit, sp.PaymentID, sp.Seq, time.Time{}, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseStep(task)
			if err != nil || back != sp {
				t.Fatalf("step payload %+v round-trips to %+v, %v", sp, back, err)
			}
		}
		rp, err := ParseRefund(asynq.NewTask(TypePaymentRefund, b))
		if err != nil {
			if !errors.Is(err, ErrBadPayload) {
				t.Fatalf("ParseRefund error %v is not ErrBadPayload", err)
			}
			return
		}
		if rp.RefundID == "" || rp.Seq <= 0 {
			t.Fatalf("accepted refund payload %+v", rp)
		}
		task, err := NewRefundTask(rp.RefundID, rp.Seq, time.Time{}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := ParseRefund(task); err != nil || back != rp {
			t.Fatalf("refund payload %+v round-trips to %+v, %v", rp, back, err)
		}
		if !json.Valid(task.Payload()) {
			t.Fatalf("payload %q", task.Payload())
		}
	})
}
