package payment

import (
	"errors"
	"strings"
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

// TestOperatorRetry: an operator may retry a FAILED seed-001 payment whose
// last attempt was confirmed not charged with a class the policy retries
// for its method, and nothing else.
func TestOperatorRetry(t *testing.T) {
	t.Parallel()
	pol := DefaultRetryPolicy(time.Second)
	failed := func(m Method, st AttemptStatus, c FailureClass) Payment {
		return Payment{ID: "pay_x", Surface: "payments", Status: StatusFailed, Method: m, ProcessPayment: true, AttemptCount: 2,
			Attempts: []Attempt{{Number: 1, Status: AttemptFailed, FailureClass: FailureTransient},
				{Number: 2, Status: st, FailureClass: c, ErrorCode: "code"}}}
	}
	with := func(p Payment, f func(*Payment)) Payment { f(&p); return p }
	cases := []struct {
		name string
		p    Payment
		want string // "" allowed, "state" ErrInvalidState, else a word of the refusal
	}{
		{"card soft decline", failed(MethodCard, AttemptFailed, FailureSoftDecline), ""},
		{"card rate limited", failed(MethodCard, AttemptFailed, FailureRateLimited), ""},
		{"card transient", failed(MethodCard, AttemptFailed, FailureTransient), ""},
		{"card unknown, confirmed not charged", failed(MethodCard, AttemptFailed, FailureUnknown), ""},
		{"ach transient", failed(MethodACH, AttemptFailed, FailureTransient), ""},
		{"card hard decline", failed(MethodCard, AttemptFailed, FailureHardDecline), "hard_decline"},
		{"ach soft decline", failed(MethodACH, AttemptFailed, FailureSoftDecline), "soft_decline"},
		{"attempt unknown", failed(MethodCard, AttemptUnknown, FailureUnknown), "not confirmed"},
		{"attempt succeeded", failed(MethodCard, AttemptSucceeded, ""), "not confirmed"},
		{"no attempt", with(failed(MethodCard, AttemptFailed, FailureSoftDecline), func(p *Payment) { p.AttemptCount, p.Attempts = 0, nil }), "without an attempt"},
		{"offline", with(failed(MethodOffline, AttemptFailed, FailureSoftDecline), func(p *Payment) {}), "without a gateway"},
		{"not processed", with(failed(MethodCard, AttemptFailed, FailureSoftDecline), func(p *Payment) { p.ProcessPayment = false }), "without a gateway"},
		{"flow payin", with(failed(MethodCard, AttemptFailed, FailureSoftDecline), func(p *Payment) { p.FlowID = "pf_1" }), "flow"},
		{"session payment", with(failed(MethodCard, AttemptFailed, FailureSoftDecline), func(p *Payment) { p.SessionID = "ps_1"; p.Surface = "sessions" }), "session"},
		{"payout", with(failed(MethodACH, AttemptFailed, FailureTransient), func(p *Payment) { p.Surface = "payouts" }), "payout"},
		{"succeeded", with(failed(MethodCard, AttemptSucceeded, ""), func(p *Payment) { p.Status = StatusSucceeded }), "state"},
		{"canceled", with(failed(MethodCard, AttemptFailed, FailureSoftDecline), func(p *Payment) { p.Status = StatusCanceled }), "state"},
	}
	for _, c := range cases {
		err := pol.OperatorRetry(c.p)
		var refused *RetryRefusedError
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.want == "state" && !errors.Is(err, ErrInvalidState):
			t.Errorf("%s: %v, want ErrInvalidState", c.name, err)
		case c.want != "" && c.want != "state" && (!errors.As(err, &refused) || !strings.Contains(refused.Reason, c.want)):
			t.Errorf("%s: %v, want a refusal naming %q", c.name, err, c.want)
		}
	}
}
