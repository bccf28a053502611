package processor

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	pol := payment.DefaultRetryPolicy(time.Second)
	card := payment.Payment{ID: "pay_1", Method: payment.MethodCard, Status: payment.StatusProcessing, AttemptCount: 1, StepSeq: 3}
	ach := card
	ach.Method = payment.MethodACH
	att := payment.Attempt{ID: "att_1", Number: 1, Status: payment.AttemptStarted, StartedAt: now}
	maybe := &connector.Error{Class: payment.FailureUnknown, Code: "timeout", MaybeProcessed: true, Err: errors.New("x")}
	notSent := &connector.Error{Class: payment.FailureTransient, Code: "dial", MaybeProcessed: false, Err: errors.New("x")}
	type want struct {
		attempt payment.AttemptStatus // "" for no attempt update
		to      []payment.Status
		step    payment.Step
	}
	cases := []struct {
		name    string
		p       payment.Payment
		a       payment.Attempt
		res     connector.Result
		err     error
		inquiry bool
		want    want
	}{
		{"charged", card, att, connector.Result{Status: connector.StatusSucceeded, Reference: "ch_1"}, nil, false,
			want{payment.AttemptSucceeded, []payment.Status{payment.StatusSucceeded}, ""}},
		{"hard decline fails at once", card, att, connector.Result{Status: connector.StatusDeclined, FailureClass: payment.FailureHardDecline, Code: "card_declined"}, nil, false,
			want{payment.AttemptFailed, []payment.Status{payment.StatusFailed}, ""}},
		{"soft decline retries", card, att, connector.Result{Status: connector.StatusDeclined, FailureClass: payment.FailureSoftDecline}, nil, false,
			want{payment.AttemptFailed, []payment.Status{payment.StatusPending}, payment.StepSubmit}},
		{"unknown outcome inquires, never charges", card, att, connector.Result{}, maybe, false,
			want{payment.AttemptUnknown, []payment.Status{payment.StatusProcessing}, payment.StepInquire}},
		{"not sent retries", card, att, connector.Result{}, notSent, false,
			want{payment.AttemptFailed, []payment.Status{payment.StatusPending}, payment.StepSubmit}},
		{"inquiry finds the charge", card, att, connector.Result{Status: connector.StatusSucceeded}, nil, true,
			want{payment.AttemptSucceeded, []payment.Status{payment.StatusSucceeded}, ""}},
		{"inquiry not sent (gateway down): inquire again, never retry", card, att, connector.Result{}, notSent, true,
			want{payment.AttemptUnknown, []payment.Status{payment.StatusProcessing}, payment.StepInquire}},
		{"inquiry confirms not charged: retry", card, att, connector.Result{Status: connector.StatusNotFound}, nil, true,
			want{payment.AttemptFailed, []payment.Status{payment.StatusPending}, payment.StepSubmit}},
		{"bank sent", ach, att, connector.Result{Status: connector.StatusSent, SettleAt: now.Add(time.Hour)}, nil, false,
			want{payment.AttemptSucceeded, []payment.Status{payment.StatusSent}, payment.StepSettle}},
		{"3ds", card, att, connector.Result{Status: connector.StatusRequiresAction, ActionURL: "http://x"}, nil, false,
			want{"", []payment.Status{payment.StatusRequiresAction}, payment.StepInquire}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := decide(c.p, c.a, c.res, c.err, c.inquiry, pol, now)
			var gotAtt payment.AttemptStatus
			if d.attempt != nil {
				gotAtt = d.attempt.Status
			}
			if gotAtt != c.want.attempt {
				t.Errorf("attempt %q, want %q", gotAtt, c.want.attempt)
			}
			if len(d.changes) != len(c.want.to) {
				t.Fatalf("%d changes, want %d: %+v", len(d.changes), len(c.want.to), d.changes)
			}
			for i, ch := range d.changes {
				if ch.To != c.want.to[i] {
					t.Errorf("change %d to %s, want %s", i, ch.To, c.want.to[i])
				}
				if ch.From != ch.To && !payment.CanTransition(ch.From, ch.To) {
					t.Errorf("change %d: %s → %s is not in the lifecycle", i, ch.From, ch.To)
				}
			}
			if last := d.changes[len(d.changes)-1]; last.NextStep != c.want.step {
				t.Errorf("next step %q, want %q", last.NextStep, c.want.step)
			}
		})
	}
}

// TestDecideUnknownExhausted: past the inquiry schedule an unknown attempt
// goes to REQUIRES_REVIEW, never to a new charge.
func TestDecideUnknownExhausted(t *testing.T) {
	t.Parallel()
	now := time.Now()
	pol := payment.DefaultRetryPolicy(time.Second)
	p := payment.Payment{ID: "pay_1", Method: payment.MethodCard, Status: payment.StatusProcessing, AttemptCount: 1}
	a := payment.Attempt{ID: "att_1", Number: 1, Status: payment.AttemptUnknown, InquiryCount: len(pol.Inquiries) - 1}
	d := decide(p, a, connector.Result{}, &connector.Error{MaybeProcessed: true, Class: payment.FailureUnknown}, true, pol, now)
	if len(d.changes) != 1 || d.changes[0].To != payment.StatusRequiresReview {
		t.Fatalf("changes %+v, want one to REQUIRES_REVIEW", d.changes)
	}
	// one inquiry earlier, it schedules another inquiry instead
	a.InquiryCount--
	d = decide(p, a, connector.Result{}, &connector.Error{MaybeProcessed: true, Class: payment.FailureUnknown}, true, pol, now)
	if d.changes[0].NextStep != payment.StepInquire || d.changes[0].To != payment.StatusProcessing {
		t.Fatalf("changes %+v, want another inquiry", d.changes)
	}
}

// TestDecideRetriesBounded: a payment never gets more attempts than its rule.
func TestDecideRetriesBounded(t *testing.T) {
	t.Parallel()
	pol := payment.DefaultRetryPolicy(time.Second)
	max := pol.Rule(payment.MethodCard, payment.FailureSoftDecline).MaxAttempts
	p := payment.Payment{ID: "pay_1", Method: payment.MethodCard, Status: payment.StatusProcessing, AttemptCount: max}
	d := decide(p, payment.Attempt{ID: "a", Number: max}, connector.Result{Status: connector.StatusDeclined, FailureClass: payment.FailureSoftDecline}, nil, false, pol, time.Now())
	if d.changes[0].To != payment.StatusFailed {
		t.Fatalf("attempt %d of %d: %s, want FAILED", max, max, d.changes[0].To)
	}
}

// TestDecideSettlement: a rail that reports a return with a settlement date
// settled first: payd records both (SENT → SUCCEEDED → RETURNED), however
// late its first check comes; a return with no settlement (before the money
// arrived) goes from SENT straight to RETURNED.
func TestDecideSettlement(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	sent := payment.Payment{ID: "pay_1", Method: payment.MethodACH, Status: payment.StatusSent, AttemptCount: 1,
		StepSeq: 4, GatewayReference: "ch_x", NextStep: payment.StepSettle}
	settled := sent
	settled.Status = payment.StatusSucceeded
	cases := []struct {
		name string
		p    payment.Payment
		res  connector.Result
		want []payment.Status
	}{
		{"settled", sent, connector.Result{Status: connector.StatusSettled, SettledAt: now}, []payment.Status{payment.StatusSucceeded}},
		{"returned after settling, seen at once", sent, connector.Result{Status: connector.StatusReturned, Code: "R01",
			SettledAt: now.Add(-time.Second), ReturnedAt: now}, []payment.Status{payment.StatusSucceeded, payment.StatusReturned}},
		{"returned before settling", sent, connector.Result{Status: connector.StatusReturned, Code: "R03", ReturnedAt: now},
			[]payment.Status{payment.StatusReturned}},
		{"returned inside the watch window", settled, connector.Result{Status: connector.StatusReturned, Code: "R01",
			SettledAt: now.Add(-time.Hour), ReturnedAt: now}, []payment.Status{payment.StatusReturned}},
		{"still sent", sent, connector.Result{Status: connector.StatusSent}, []payment.Status{payment.StatusSent}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := decideSettlement(c.p, c.res, now, time.Minute, time.Hour)
			var got []payment.Status
			from := c.p.Status
			for _, ch := range d.changes {
				if ch.From != from {
					t.Errorf("change from %s, want from %s (chained)", ch.From, from)
				}
				if ch.From != ch.To && !payment.CanTransition(ch.From, ch.To) {
					t.Errorf("%s → %s is not allowed", ch.From, ch.To)
				}
				got = append(got, ch.To)
				from = ch.To
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("statuses (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecideVoid: what a void's answer does to a payment awaiting action,
// for a cancel and for an expiry.
func TestDecideVoid(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	pol := payment.DefaultRetryPolicy(time.Second)
	expired := payment.Payment{ID: "pay_1", Method: payment.MethodCard, Status: payment.StatusRequiresAction, AttemptCount: 1,
		StepSeq: 5, NextStep: payment.StepVoid, Amount: payment.Money{Minor: 2000, Currency: "USD"}}
	canceled := expired
	canceled.CancelRequestedAt = &now
	att := payment.Attempt{ID: "att_1", Number: 1, Status: payment.AttemptStarted, IdempotencyKey: "pay_1:1", StartedAt: now}
	spent := att
	spent.InquiryCount = len(pol.Inquiries) - 1
	down := &connector.Error{Class: payment.FailureTransient, Code: "gateway_unavailable", Err: errors.New("x")}
	type want struct {
		attempt payment.AttemptStatus
		to      []payment.Status
		step    payment.Step
		late    bool
	}
	cases := []struct {
		name string
		p    payment.Payment
		a    payment.Attempt
		res  connector.Result
		err  error
		want want
	}{
		{"cancel voided", canceled, att, connector.Result{Status: connector.StatusVoided}, nil,
			want{payment.AttemptFailed, []payment.Status{payment.StatusCanceled}, "", false}},
		{"expiry voided", expired, att, connector.Result{Status: connector.StatusVoided}, nil,
			want{payment.AttemptFailed, []payment.Status{payment.StatusFailed}, "", false}},
		{"never seen: fenced", canceled, att, connector.Result{Status: connector.StatusNotFound}, nil,
			want{payment.AttemptFailed, []payment.Status{payment.StatusCanceled}, "", false}},
		{"customer refused the challenge", expired, att, connector.Result{Status: connector.StatusDeclined}, nil,
			want{payment.AttemptFailed, []payment.Status{payment.StatusFailed}, "", false}},
		{"cancel found it charged: canceled and refunded", canceled, att, connector.Result{Status: connector.StatusSucceeded, Reference: "ch_x"}, nil,
			want{"", []payment.Status{payment.StatusCanceled}, "", true}},
		{"expiry found it charged: succeeded in time", expired, att, connector.Result{Status: connector.StatusSucceeded, Reference: "ch_x"}, nil,
			want{payment.AttemptSucceeded, []payment.Status{payment.StatusProcessing, payment.StatusSucceeded}, "", false}},
		{"no answer: void again", canceled, att, connector.Result{}, down,
			want{payment.AttemptUnknown, []payment.Status{payment.StatusRequiresAction}, payment.StepVoid, false}},
		{"an answer no void should get: void again", canceled, att, connector.Result{Status: connector.StatusRequiresAction}, nil,
			want{payment.AttemptUnknown, []payment.Status{payment.StatusRequiresAction}, payment.StepVoid, false}},
		{"no answer after the schedule: canceled, outcome unknown", canceled, spent, connector.Result{}, down,
			want{payment.AttemptUnknown, []payment.Status{payment.StatusCanceled}, "", false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := decideVoid(c.p, c.a, c.res, c.err, pol, now)
			var gotAtt payment.AttemptStatus
			if d.attempt != nil {
				gotAtt = d.attempt.Status
			}
			var to []payment.Status
			var step payment.Step
			from := c.p.Status
			for _, ch := range d.changes {
				if ch.From != from || (ch.From != ch.To && !payment.CanTransition(ch.From, ch.To)) {
					t.Errorf("change %s → %s after %s", ch.From, ch.To, from)
				}
				from = ch.To
				to, step = append(to, ch.To), ch.NextStep
			}
			got := want{gotAtt, to, step, d.lateCharge != nil}
			if diff := cmp.Diff(c.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if d.lateCharge != nil && (d.lateCharge.Reference != "ch_x" || d.lateCharge.AttemptKey != "pay_1:1" || d.lateCharge.Amount != c.p.Amount) {
				t.Errorf("late charge %+v", d.lateCharge)
			}
		})
	}
}

// TestDecideReview: a payment in review leaves it only on an answer that
// settles the question; otherwise its slow schedule goes on, and ends.
func TestDecideReview(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	pol := payment.DefaultRetryPolicy(time.Second)
	p := payment.Payment{ID: "pay_1", Method: payment.MethodCard, Status: payment.StatusRequiresReview, AttemptCount: 1,
		StepSeq: 9, NextStep: payment.StepInquire}
	att := payment.Attempt{ID: "att_1", Number: 1, Status: payment.AttemptUnknown, StartedAt: now.Add(-time.Hour),
		InquiryCount: len(pol.Inquiries)}
	last := att
	last.InquiryCount = len(pol.Inquiries) + len(pol.ReviewInquiries) - 1
	maybe := &connector.Error{Class: payment.FailureUnknown, Code: "timeout", MaybeProcessed: true, Err: errors.New("x")}
	cases := []struct {
		name string
		a    payment.Attempt
		res  connector.Result
		err  error
		to   payment.Status
		step payment.Step
		at   time.Duration
	}{
		{"charged", att, connector.Result{Status: connector.StatusSucceeded, Reference: "ch_1"}, nil, payment.StatusSucceeded, "", 0},
		{"not found: fenced, failed", att, connector.Result{Status: connector.StatusNotFound}, nil, payment.StatusFailed, "", 0},
		{"declined", att, connector.Result{Status: connector.StatusDeclined, Code: "card_declined"}, nil, payment.StatusFailed, "", 0},
		{"still no answer: the next slow inquiry", att, connector.Result{}, maybe, payment.StatusRequiresReview, payment.StepInquire, 2 * time.Hour},
		{"still no answer, schedule spent: an operator's", last, connector.Result{}, maybe, payment.StatusRequiresReview, "", 0},
		{"an answer that settles nothing", att, connector.Result{Status: connector.StatusRequiresAction}, nil, payment.StatusRequiresReview, payment.StepInquire, 2 * time.Hour},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := decide(p, c.a, c.res, c.err, true, pol, now)
			if len(d.changes) != 1 {
				t.Fatalf("changes %+v", d.changes)
			}
			ch := d.changes[0]
			if ch.To != c.to || ch.NextStep != c.step || (c.at > 0 && !ch.NextStepAt.Equal(now.Add(c.at))) {
				t.Errorf("→ %s next %q at %v, want → %s next %q at +%s", ch.To, ch.NextStep, ch.NextStepAt, c.to, c.step, c.at)
			}
			if ch.From != ch.To && !payment.CanTransition(ch.From, ch.To) {
				t.Errorf("%s → %s is not allowed", ch.From, ch.To)
			}
			if d.attempt == nil || !d.attempt.CountInquiry {
				t.Errorf("the inquiry is not counted: %+v", d.attempt)
			}
		})
	}
	// exhausting the regular schedule puts the payment in review with its
	// first slow inquiry
	proc := p
	proc.Status = payment.StatusProcessing
	spent := att
	spent.InquiryCount = len(pol.Inquiries) - 1
	d := decide(proc, spent, connector.Result{}, maybe, true, pol, now)
	if ch := d.changes[len(d.changes)-1]; ch.To != payment.StatusRequiresReview || ch.NextStep != payment.StepInquire ||
		!ch.NextStepAt.Equal(now.Add(pol.ReviewInquiries[0])) {
		t.Errorf("into review: %+v", ch)
	}
}

// TestDecideSettlementNextCheck: a bank payment still SENT is checked
// again at the rail's settlement time when that comes before a poll, a
// moment later when that time has already passed on payd's clock (the
// clocks differ; waiting a whole poll was a flake of
// TestStaleSettleWhileSettlementWaits), else a poll later.
func TestDecideSettlementNextCheck(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	sent := payment.Payment{ID: "pay_1", Method: payment.MethodACH, Status: payment.StatusSent, AttemptCount: 1, NextStep: payment.StepSettle}
	for _, c := range []struct {
		name     string
		settleAt time.Time
		want     time.Time
	}{
		{"no time given", time.Time{}, now.Add(time.Hour)},
		{"before a poll", now.Add(4 * time.Second), now.Add(4 * time.Second)},
		{"after a poll", now.Add(2 * time.Hour), now.Add(time.Hour)},
		{"already passed", now.Add(-5 * time.Millisecond), now.Add(settleRecheck)},
		{"exactly now", now, now.Add(settleRecheck)},
	} {
		d := decideSettlement(sent, connector.Result{Status: connector.StatusSent, SettleAt: c.settleAt}, now, time.Hour, time.Hour)
		if len(d.changes) != 1 || !d.changes[0].NextStepAt.Equal(c.want) || d.changes[0].NextStep != payment.StepSettle {
			t.Errorf("%s: %+v, want the next check at %v", c.name, d.changes, c.want)
		}
	}
}
