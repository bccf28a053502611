package processor

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// TestDecidePayoutCreate: every status a payout can be created with walks
// the lifecycle through allowed transitions only, ends where the import
// says, and schedules what must follow.
func TestDecidePayoutCreate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 18, 12, 0, 0, 0, time.UTC) // a Wednesday
	sent := now.Add(-48 * time.Hour)
	settled := now.Add(-24 * time.Hour)
	later := now.Add(6 * time.Hour)
	at := func(t time.Time) *time.Time { return &t }
	live := payment.Payment{ID: "pay_1", Method: payment.MethodACH, Status: payment.StatusPending, ProcessPayment: true}
	imported := live
	imported.ProcessPayment = false
	withSent := imported
	withSent.SentAt = at(sent)
	withSettled := withSent
	withSettled.SettledAt = at(settled)
	card := imported
	card.Method = payment.MethodCard

	P, S, OK := payment.StatusProcessing, payment.StatusSent, payment.StatusSucceeded
	cases := []struct {
		name     string
		pay      payment.Payment
		det      payment.PayoutDetails
		path     []payment.Status
		step     payment.Step
		stepAt   time.Time
		settled  *time.Time // SettledAt of the SUCCEEDED change, if any
		expected *time.Time // ExpectedSettlementAt set by the walk, if any
	}{
		{name: "live: submit now", pay: live, path: []payment.Status{payment.StatusPending}, step: payment.StepSubmit, stepAt: now},
		{name: "live, scheduled later: decide again then", pay: live, det: payment.PayoutDetails{ScheduledAt: at(later)},
			path: []payment.Status{payment.StatusPending}, step: payment.StepCreate, stepAt: later},
		{name: "card payout scheduled later: recorded then", pay: card, det: payment.PayoutDetails{ScheduledAt: at(later)},
			path: []payment.Status{payment.StatusPending}, step: payment.StepCreate, stepAt: later},
		{name: "live, scheduled in the past: submit now", pay: live, det: payment.PayoutDetails{ScheduledAt: at(sent)},
			path: []payment.Status{payment.StatusPending}, step: payment.StepSubmit, stepAt: now},
		{name: "card payout: recorded as paid", pay: card, path: []payment.Status{P, OK}},
		{name: "imported PROCESSING settles on the rail's schedule", pay: imported,
			det:  payment.PayoutDetails{ImportedStatus: "PROCESSING", SubmittedAt: at(sent)},
			path: []payment.Status{P}, step: payment.StepSettle, stepAt: time.Date(2026, 11, 17, 21, 0, 0, 0, time.UTC),
			expected: at(time.Date(2026, 11, 17, 21, 0, 0, 0, time.UTC))},
		{name: "imported SENT without sent_at: expected from now", pay: imported,
			det:  payment.PayoutDetails{ImportedStatus: "SENT"},
			path: []payment.Status{P, S}, step: payment.StepSettle, stepAt: time.Date(2026, 11, 19, 21, 0, 0, 0, time.UTC),
			expected: at(time.Date(2026, 11, 19, 21, 0, 0, 0, time.UTC))},
		{name: "imported SENT keeps its expected settlement", pay: func() payment.Payment {
			p := withSent
			p.ExpectedSettlementAt = at(later)
			return p
		}(), det: payment.PayoutDetails{ImportedStatus: "SENT"}, path: []payment.Status{P, S}, step: payment.StepSettle,
			stepAt: later, expected: at(later)},
		{name: "imported SETTLED with sent_at", pay: withSettled, det: payment.PayoutDetails{ImportedStatus: "SETTLED"},
			path: []payment.Status{P, S, OK}, settled: at(settled)},
		{name: "imported PAID without sent_at: no time of sending is invented", pay: imported,
			det: payment.PayoutDetails{ImportedStatus: "PAID"}, path: []payment.Status{P, OK}, settled: at(now)},
		{name: "imported RETURNED after settling", pay: withSettled, det: payment.PayoutDetails{ImportedStatus: "RETURNED"},
			path: []payment.Status{P, S, OK, payment.StatusReturned}},
		{name: "imported RETURNED before settling", pay: withSent, det: payment.PayoutDetails{ImportedStatus: "RETURNED"},
			path: []payment.Status{P, S, payment.StatusReturned}},
		{name: "imported RETURNED with no times", pay: imported, det: payment.PayoutDetails{ImportedStatus: "RETURNED"},
			path: []payment.Status{P, OK, payment.StatusReturned}},
		{name: "imported FAILED", pay: imported, det: payment.PayoutDetails{ImportedStatus: "FAILED"},
			path: []payment.Status{P, payment.StatusFailed}},
		{name: "imported FAILED after sending", pay: withSent, det: payment.PayoutDetails{ImportedStatus: "FAILED"},
			path: []payment.Status{P, S, payment.StatusFailed}},
		{name: "imported CANCELED", pay: imported, det: payment.PayoutDetails{ImportedStatus: "CANCELED"},
			path: []payment.Status{payment.StatusCanceled}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := decidePayoutCreate(c.pay, c.det, now)
			from := payment.StatusPending
			var got []payment.Status
			for i, ch := range d.changes {
				if ch.From != from {
					t.Fatalf("change %d from %s, want %s (chained)", i, ch.From, from)
				}
				if ch.From != ch.To && !payment.CanTransition(ch.From, ch.To) {
					t.Fatalf("change %d: %s → %s is not in the lifecycle", i, ch.From, ch.To)
				}
				if ch.From != ch.To && ch.Reason == "" {
					t.Errorf("change %d %s → %s has no reason for its audit row", i, ch.From, ch.To)
				}
				if i < len(d.changes)-1 && ch.NextStep != payment.StepNone {
					t.Errorf("change %d schedules %s before the walk ends", i, ch.NextStep)
				}
				if ch.To == payment.StatusSucceeded && c.settled != nil {
					if ch.SettledAt == nil || !ch.SettledAt.Equal(*c.settled) {
						t.Errorf("settled at %v, want %v", ch.SettledAt, *c.settled)
					}
				}
				got = append(got, ch.To)
				from = ch.To
			}
			if diff := cmp.Diff(c.path, got); diff != "" {
				t.Errorf("path (-want +got):\n%s", diff)
			}
			last := d.changes[len(d.changes)-1]
			if last.NextStep != c.step || (c.step != payment.StepNone && !last.NextStepAt.Equal(c.stepAt)) {
				t.Errorf("next %q at %v, want %q at %v", last.NextStep, last.NextStepAt, c.step, c.stepAt)
			}
			if c.expected != nil && (last.ExpectedSettlementAt == nil || !last.ExpectedSettlementAt.Equal(*c.expected)) {
				t.Errorf("expected settlement %v, want %v", last.ExpectedSettlementAt, *c.expected)
			}
		})
	}
}

// TestDecideImportedSettlement: an imported payout that reached its expected
// settlement is settled without asking any rail, and then left alone.
func TestDecideImportedSettlement(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 18, 12, 0, 0, 0, time.UTC)
	for _, st := range []payment.Status{payment.StatusProcessing, payment.StatusSent} {
		d := decideImportedSettlement(payment.Payment{ID: "pay_1", Status: st}, now)
		if len(d.changes) != 1 || d.changes[0].To != payment.StatusSucceeded || !payment.CanTransition(st, payment.StatusSucceeded) ||
			d.changes[0].SettledAt == nil || !d.changes[0].SettledAt.Equal(now) || d.changes[0].NextStep != payment.StepNone {
			t.Errorf("%s: %+v, want one change to SUCCEEDED settled now with nothing after", st, d.changes)
		}
	}
	d := decideImportedSettlement(payment.Payment{ID: "pay_1", Status: payment.StatusSucceeded}, now)
	if len(d.changes) != 1 || d.changes[0].To != payment.StatusSucceeded || d.changes[0].NextStep != payment.StepNone {
		t.Errorf("succeeded: %+v, want the schedule cleared", d.changes)
	}
}

// TestDecideSentWithoutDate: a gateway that accepts a bank payment without
// a settlement date gets the rail's schedule.
func TestDecideSentWithoutDate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC) // a Friday
	p := payment.Payment{ID: "pay_1", Method: payment.MethodSWIFT, Status: payment.StatusProcessing, AttemptCount: 1}
	d := decide(p, payment.Attempt{ID: "att_1", Number: 1}, connector.Result{Status: connector.StatusSent, Reference: "ch_1"}, nil, false, payment.DefaultRetryPolicy(time.Second), now)
	want := payment.ExpectedSettlement(payment.MethodSWIFT, now)
	if got := d.changes[0]; got.To != payment.StatusSent || got.ExpectedSettlementAt == nil || !got.ExpectedSettlementAt.Equal(want) ||
		!got.NextStepAt.Equal(want) {
		t.Fatalf("change %+v, want SENT expected at %v", got, want)
	}
}
