package payment

import (
	"testing"
	"time"
)

func TestBackoffDeterministicAndBounded(t *testing.T) {
	t.Parallel()
	r := RetryRule{MaxAttempts: 10, Base: time.Second, Max: 30 * time.Second}
	for n := 1; n <= 10; n++ {
		d1, d2 := Backoff(r, n, "pay_x"), Backoff(r, n, "pay_x")
		if d1 != d2 {
			t.Fatalf("attempt %d: %s then %s; want the same", n, d1, d2)
		}
		nominal := r.Base << (n - 1)
		if nominal > r.Max {
			nominal = r.Max
		}
		if d1 < nominal*80/100 || d1 >= nominal*120/100 {
			t.Errorf("attempt %d: %s outside ±20%% of %s", n, d1, nominal)
		}
	}
}

func TestNextAttempt(t *testing.T) {
	t.Parallel()
	p := DefaultRetryPolicy(time.Second)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, ok := p.NextAttempt("p", MethodCard, FailureHardDecline, 1, now); ok {
		t.Error("hard decline retried")
	}
	at, ok := p.NextAttempt("p", MethodCard, FailureTransient, 1, now)
	if !ok || !at.After(now) {
		t.Errorf("transient: %v %v", at, ok)
	}
	if _, ok := p.NextAttempt("p", MethodCard, FailureTransient, 5, now); ok {
		t.Error("retried past MaxAttempts")
	}
	if _, ok := p.NextAttempt("p", MethodACH, FailureSoftDecline, 1, now); ok {
		t.Error("bank soft decline retried")
	}
	if _, ok := p.NextInquiry(len(p.Inquiries), now); ok {
		t.Error("inquiry schedule not exhausted")
	}
}
