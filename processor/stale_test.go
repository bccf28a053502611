package processor_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/processor"
	"github.com/payd/payd/store"
)

// A task that carries an old step sequence — a duplicate, a late delivery,
// the task of a step the sweeper re-armed — does nothing when it runs,
// whatever its handler: no gateway call, no attempt, no audit row, and the
// step that is really due keeps its time and sequence and still runs then.
// These tests deliver such tasks through the worker's own mux while the
// payment waits on a newer step, then start the worker and watch the due
// step run at its time. Each fails if its handler's or its claim's
// sequence guard is taken out.

// countingGateway is the in-process sandbox, counting the calls payd makes.
type countingGateway struct {
	*sandbox.Sandbox
	charges, inquiries, settlements, refunds atomic.Int64
}

func (g *countingGateway) Charge(ctx context.Context, r connector.ChargeRequest) (connector.Result, error) {
	g.charges.Add(1)
	return g.Sandbox.Charge(ctx, r)
}

func (g *countingGateway) Inquire(ctx context.Context, key string) (connector.Result, error) {
	g.inquiries.Add(1)
	return g.Sandbox.Inquire(ctx, key)
}

func (g *countingGateway) Settlement(ctx context.Context, ref string) (connector.Result, error) {
	g.settlements.Add(1)
	return g.Sandbox.Settlement(ctx, ref)
}

func (g *countingGateway) Refund(ctx context.Context, r connector.RefundRequest) (connector.Result, error) {
	g.refunds.Add(1)
	return g.Sandbox.Refund(ctx, r)
}

func (g *countingGateway) calls() [4]int64 {
	return [4]int64{g.charges.Load(), g.inquiries.Load(), g.settlements.Load(), g.refunds.Load()}
}

// staleHarness is payd with no worker running yet (the test delivers
// tasks itself, then starts it) and a gateway that counts calls.
func staleHarness(t *testing.T, sc sandbox.Config, pc processor.Config) (*testenv.Harness, *countingGateway) {
	t.Helper()
	sb := sandbox.New(sc)
	t.Cleanup(sb.Close)
	g := &countingGateway{Sandbox: sb}
	return testenv.Start(t, testenv.Options{NoWorker: true, Gateway: g, Processor: pc}), g
}

// deliver runs a task through the worker's mux, as asynq would run it.
func deliver(t *testing.T, h *testenv.Harness, typ string, payload any) {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Processor.Mux().ProcessTask(context.Background(), asynq.NewTask(typ, b)); err != nil {
		t.Fatalf("%s %s: %v", typ, b, err)
	}
}

// staleCount is how many tasks of the types ran and were found stale.
func staleCount(h *testenv.Harness, types ...string) float64 {
	n := 0.0
	for _, typ := range types {
		n += counterValue(h.Processor.Metrics.TaskOutcomes.WithLabelValues(typ, "stale"))
	}
	return n
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// ranStep is a step task that ran, by type and sequence.
type ranStep struct {
	typ string
	seq int
}

// driveTo runs the payment's due step (its task, at its sequence, now)
// until done says so, and returns the payment then and the steps it ran.
func driveTo(t *testing.T, h *testenv.Harness, id string, done func(payment.Payment) bool) (payment.Payment, []ranStep) {
	t.Helper()
	var ran []ranStep
	for range 12 {
		p, err := h.Store.GetPayment(context.Background(), "", id)
		if err != nil {
			t.Fatal(err)
		}
		if done(p) {
			return p, ran
		}
		typ, ok := jobs.StepType(p.NextStep)
		if !ok {
			t.Fatalf("payment %s is %s with no step due", id, p.Status)
		}
		deliver(t, h, typ, jobs.StepPayload{PaymentID: id, Seq: p.StepSeq})
		ran = append(ran, ranStep{typ, p.StepSeq})
	}
	t.Fatalf("payment %s never got there", id)
	return payment.Payment{}, nil
}

// paymentState is what a stale task must leave as it was.
type paymentState struct {
	Status, NextStep  string
	NextStepAt        time.Time
	Seq, AttemptCount int
	UpdatedAt         time.Time
	Attempts          string // number:status:inquiries:updated_at of each
	Events            int
	Refunded          int64
	Refunds           string // status:seq of each
}

func readPayment(t *testing.T, h *testenv.Harness, id string) paymentState {
	t.Helper()
	var s paymentState
	var step sql.NullString
	var at sql.NullTime
	err := h.Store.DB().QueryRow(`SELECT status, next_step, next_step_at, step_seq, attempt_count, updated_at,
			COALESCE((SELECT string_agg(attempt_number || ':' || status || ':' || inquiry_count || ':' || updated_at, ' '
				ORDER BY attempt_number) FROM payment_attempts WHERE payment_id = p.id), ''),
			(SELECT count(*) FROM payment_events WHERE payment_id = p.id), refunded_amount + refund_pending_amount,
			COALESCE((SELECT string_agg(status || ':' || step_seq, ' ' ORDER BY id) FROM refunds WHERE payment_id = p.id), '')
		FROM payments p WHERE id = $1`, id).Scan(&s.Status, &step, &at, &s.Seq, &s.AttemptCount, &s.UpdatedAt, &s.Attempts,
		&s.Events, &s.Refunded, &s.Refunds)
	if err != nil {
		t.Fatal(err)
	}
	s.NextStep, s.NextStepAt = step.String, at.Time
	return s
}

// refuseStale delivers every stale task and checks that none changed the
// payment or called the gateway, and that each was counted stale.
func refuseStale(t *testing.T, h *testenv.Harness, g *countingGateway, id string, stale []ranStep) paymentState {
	t.Helper()
	before, calls := readPayment(t, h, id), g.calls()
	types := []string{jobs.TypePaymentCreate, jobs.TypePaymentSubmit, jobs.TypePaymentInquire, jobs.TypePaymentSettle}
	counted := staleCount(h, types...)
	for _, s := range stale {
		deliver(t, h, s.typ, jobs.StepPayload{PaymentID: id, Seq: s.seq})
	}
	if d := cmp.Diff(before, readPayment(t, h, id)); d != "" {
		t.Errorf("stale tasks %v changed the payment (-before +after):\n%s", stale, d)
	}
	if got := g.calls(); got != calls {
		t.Errorf("stale tasks %v called the gateway: %v → %v (charges, inquiries, settlements, refunds)", stale, calls, got)
	}
	if got := staleCount(h, types...) - counted; got != float64(len(stale)) {
		t.Errorf("%v of %d stale tasks counted stale", got, len(stale))
	}
	if !before.NextStepAt.After(time.Now()) {
		t.Fatalf("the due step (%s at %v) was no longer in the future when the stale tasks ran: the test proves nothing",
			before.NextStep, before.NextStepAt)
	}
	return before
}

// tolerance is how early, on the store's clock, a scheduled task may run
// before its step's due time: asynq keeps a task's ProcessAt in whole Unix
// seconds (its scheduled set's score) and forwards it once that second
// has begun, so up to a second early; and it schedules on the host clock,
// which the store clock corrects to PostgreSQL's (the same machine here).
// A stale task that claimed the step would have run it seconds earlier.
const tolerance = time.Second + 250*time.Millisecond

// TestStaleSubmitWhileRetryWaits: a payment's second attempt was not
// charged (a soft decline, or pm_card_flaky's 503 then an inquiry that
// found nothing) and its retry waits out its backoff, seconds away. Late
// or duplicated tasks of every earlier step — the submit of attempt 2
// above all — change nothing; the retry then runs at its own time.
func TestStaleSubmitWhileRetryWaits(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pm       string
		want     payment.Status
		charges  int
		inquired bool
	}{
		{"pm_card_insufficient_funds", payment.StatusFailed, 0, false},
		{"pm_card_flaky", payment.StatusSucceeded, 1, true},
	}
	for _, c := range cases {
		t.Run(c.pm, func(t *testing.T) {
			t.Parallel()
			pol := payment.DefaultRetryPolicy(10 * time.Millisecond)
			pol.Card[payment.FailureSoftDecline] = payment.RetryRule{MaxAttempts: 3, Base: 2 * time.Second, Max: time.Hour}
			pol.Card[payment.FailureUnknown] = payment.RetryRule{MaxAttempts: 5, Base: 2 * time.Second, Max: time.Hour}
			h, g := staleHarness(t, sandbox.Config{}, processor.Config{Policy: pol})
			id := h.CreatePayment("CARD", c.pm, "5.00")
			p, ran := driveTo(t, h, id, func(p payment.Payment) bool {
				return p.Status == payment.StatusPending && p.NextStep == payment.StepSubmit && p.AttemptCount == 2
			})
			// every task that ran, and the safety-net inquiries the claims
			// left (the sweeper may have enqueued them): all stale now
			stale := ran
			for seq := 1; seq < p.StepSeq; seq++ {
				stale = append(stale, ranStep{jobs.TypePaymentInquire, seq}, ranStep{jobs.TypePaymentSubmit, seq})
			}
			if !strings.Contains(strings.Join(typesOf(ran), " "), jobs.TypePaymentSubmit) {
				t.Fatalf("no submit ran before the retry: %v", ran)
			}
			before := refuseStale(t, h, g, id, stale)

			// the worker runs what Redis holds: the old tasks (stale) and the
			// retry, at its time
			h.StartWorker()
			got := h.WaitFinal(id, 20*time.Second)
			if got.Status != c.want || len(got.Attempts) != 3 || g.Sandbox.ChargesFor(id) != c.charges {
				t.Fatalf("%s with %d attempts and %d charges; want %s, 3, %d", got.Status, len(got.Attempts),
					g.Sandbox.ChargesFor(id), c.want, c.charges)
			}
			if a := got.Attempts[2]; a.StartedAt.Before(before.NextStepAt.Add(-tolerance)) {
				t.Fatalf("attempt 3 started at %v, before its retry was due (%v)", a.StartedAt, before.NextStepAt)
			}
		})
	}
}

func typesOf(ran []ranStep) []string {
	var out []string
	for _, r := range ran {
		out = append(out, r.typ)
	}
	return out
}

// TestStaleInquireWhileInquiryWaits: a charge's answer was lost (UNKNOWN)
// and its inquiry is seconds away. The safety-net inquiry the claim left
// (an older sequence, enqueued by a sweep while the submit ran) and the
// create task change nothing and never ask the gateway; the inquiry then
// runs at its time and finds the charge.
func TestStaleInquireWhileInquiryWaits(t *testing.T) {
	t.Parallel()
	pol := payment.DefaultRetryPolicy(10 * time.Millisecond)
	pol.Inquiries = []time.Duration{3 * time.Second, time.Hour}
	h, g := staleHarness(t, sandbox.Config{}, processor.Config{Policy: pol})
	id := h.CreatePayment("CARD", "pm_card_timeout_after_charge", "5.00")
	p, ran := driveTo(t, h, id, func(p payment.Payment) bool {
		a, ok := lastAttemptOf(p)
		return ok && a.Status == payment.AttemptUnknown && p.NextStep == payment.StepInquire
	})
	stale := ran
	for seq := 1; seq < p.StepSeq; seq++ {
		stale = append(stale, ranStep{jobs.TypePaymentInquire, seq})
	}
	before := refuseStale(t, h, g, id, stale)
	h.StartWorker()
	got := waitStatus(t, h, id, payment.StatusSucceeded, 20*time.Second)
	evs := checkAudit(t, h, got)
	last := evs[len(evs)-1]
	if !strings.Contains(last.Reason, "found by inquiry") || last.CreatedAt.Before(before.NextStepAt.Add(-tolerance)) {
		t.Fatalf("succeeded at %v by %q; the inquiry was due at %v", last.CreatedAt, last.Reason, before.NextStepAt)
	}
	if len(got.Attempts) != 1 || g.Sandbox.ChargesFor(id) != 1 || g.inquiries.Load() != 1 {
		t.Fatalf("%d attempts, %d charges, %d inquiries; want 1, 1, 1", len(got.Attempts), g.Sandbox.ChargesFor(id), g.inquiries.Load())
	}
}

// TestStaleSettleWhileSettlementWaits: a bank payment was SENT and checked
// once with the rail (not yet settled); its next check is due when the
// rail settles, seconds away. The earlier settle task (and older ones)
// change nothing and never ask the rail; the check then runs at its time
// and settles the payment.
func TestStaleSettleWhileSettlementWaits(t *testing.T) {
	t.Parallel()
	h, g := staleHarness(t, sandbox.Config{SettleDelay: 4 * time.Second, ReturnDelay: time.Hour},
		processor.Config{SettlePoll: time.Hour, ReturnWindow: time.Hour})
	id := h.CreatePayment("ACH", "ba_123456789", "5.00")
	checked := false
	p, ran := driveTo(t, h, id, func(p payment.Payment) bool {
		if p.Status != payment.StatusSent || p.NextStep != payment.StepSettle {
			return false
		}
		if checked {
			return true
		}
		checked = true // run the settle check once, early: the rail says not yet
		return false
	})
	if len(ran) < 2 || ran[len(ran)-1].typ != jobs.TypePaymentSettle {
		t.Fatalf("no settle check ran: %v", ran)
	}
	stale := ran
	for seq := 1; seq < p.StepSeq; seq++ {
		stale = append(stale, ranStep{jobs.TypePaymentSettle, seq})
	}
	before := refuseStale(t, h, g, id, stale)
	h.StartWorker()
	got := waitStatus(t, h, id, payment.StatusSucceeded, 20*time.Second)
	evs := checkAudit(t, h, got)
	last := evs[len(evs)-1]
	if got.SettledAt == nil || last.CreatedAt.Before(before.NextStepAt.Add(-tolerance)) {
		t.Fatalf("settled at %v (audit %v); the check was due at %v", got.SettledAt, last.CreatedAt, before.NextStepAt)
	}
}

// TestStaleCreateAfterRearm: the sweeper re-armed a payment's create step
// (its task was stuck); the old create task, delivered late, neither
// charges a card payment nor records an offline one. The re-armed task
// does.
func TestStaleCreateAfterRearm(t *testing.T) {
	t.Parallel()
	h, g := staleHarness(t, sandbox.Config{}, processor.Config{})
	ctx := context.Background()
	for _, c := range []struct{ method, pm string }{{"CARD", "pm_card_visa"}, {"OFFLINE", ""}} {
		id := h.CreatePayment(c.method, c.pm, "5.00")
		seq, err := h.Store.Rearm(ctx, store.Due{PaymentID: id, Step: payment.StepCreate, Seq: 1})
		if err != nil {
			t.Fatal(err)
		}
		before, calls := readPayment(t, h, id), g.calls()
		deliver(t, h, jobs.TypePaymentCreate, jobs.StepPayload{PaymentID: id, Seq: 1})
		if d := cmp.Diff(before, readPayment(t, h, id)); d != "" || g.calls() != calls {
			t.Fatalf("%s: the stale create changed the payment (-before +after):\n%s\ngateway calls %v → %v", c.method, d, calls, g.calls())
		}
		deliver(t, h, jobs.TypePaymentCreate, jobs.StepPayload{PaymentID: id, Seq: seq})
		if p, _ := h.Store.GetPayment(ctx, "", id); p.Status != payment.StatusSucceeded {
			t.Fatalf("%s: the re-armed create left it %s", c.method, p.Status)
		}
	}
}

// TestStaleRefundAfterRearm: the sweeper re-armed a refund try; the old
// refund task neither refunds at the gateway nor finishes the refund. The
// re-armed one does.
func TestStaleRefundAfterRearm(t *testing.T) {
	t.Parallel()
	h, g := staleHarness(t, sandbox.Config{}, processor.Config{})
	ctx := context.Background()
	id := h.CreatePayment("CARD", "pm_card_visa", "5.00")
	driveTo(t, h, id, func(p payment.Payment) bool { return p.Status == payment.StatusSucceeded })
	r, err := h.Store.CreateRefund(ctx, h.TenantA, id, 200, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	seq, err := h.Store.Rearm(ctx, store.Due{RefundID: r.ID, Step: store.StepRefund, Seq: r.StepSeq})
	if err != nil {
		t.Fatal(err)
	}
	before, calls := readPayment(t, h, id), g.calls()
	deliver(t, h, jobs.TypePaymentRefund, jobs.RefundPayload{RefundID: r.ID, Seq: r.StepSeq})
	if d := cmp.Diff(before, readPayment(t, h, id)); d != "" || g.calls() != calls {
		t.Fatalf("the stale refund changed something (-before +after):\n%s\ngateway calls %v → %v", d, calls, g.calls())
	}
	if got := staleCount(h, jobs.TypePaymentRefund); got != 1 {
		t.Fatalf("%v refund tasks counted stale, want 1", got)
	}
	deliver(t, h, jobs.TypePaymentRefund, jobs.RefundPayload{RefundID: r.ID, Seq: seq})
	if got, _ := h.Store.GetRefund(ctx, "", r.ID); got.Status != payment.RefundSucceeded {
		t.Fatalf("the re-armed refund is %s", got.Status)
	}
	if p, _ := h.Store.GetPayment(ctx, "", id); p.Status != payment.StatusPartiallyRefunded || p.RefundedAmount != 200 {
		t.Fatalf("payment %s refunded %d", p.Status, p.RefundedAmount)
	}
}
