package processor_test

// Money at the edges (issue 19): a cancel or an expiry while a customer
// action is pending voids it at the gateway first; a charge that lands for
// a payment payd holds as not charged is recorded and refunded once; a
// payment in review resolves itself when the gateway answers; and
// reconciliation finds what the engine missed. Real Postgres, Redis, worker
// and the in-process sandbox.

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/intake"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/processor"
	"github.com/payd/payd/store"
)

// edgePolicy is the harness policy with a customer action that waits as
// long as asked and is polled rarely, so a test decides what happens while
// it is pending.
func edgePolicy(actionTimeout, actionPoll time.Duration) payment.RetryPolicy {
	pol := payment.DefaultRetryPolicy(10 * time.Millisecond)
	pol.ActionTimeout, pol.ActionPoll = actionTimeout, actionPoll
	return pol
}

func processorConfig(pol payment.RetryPolicy) processor.Config { return processor.Config{Policy: pol} }

// waitRefunds polls until the payment's refunds are all finished, and
// returns them.
func waitRefunds(t *testing.T, h *testenv.Harness, id string, n int, within time.Duration) []payment.Refund {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		rs, err := h.Store.Refunds(context.Background(), h.TenantA, id)
		if err != nil {
			t.Fatal(err)
		}
		done := len(rs) == n
		for _, r := range rs {
			done = done && r.Status != payment.RefundPending
		}
		if done {
			return rs
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment %s: refunds %+v, want %d finished", id, rs, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// challengeRef is the sandbox reference of a 3-D Secure payment's charge.
func challengeRef(t *testing.T, p payment.Payment) string {
	t.Helper()
	if p.GatewayReference == "" {
		t.Fatalf("payment %s awaiting action has no gateway reference (action %q)", p.ID, p.ActionURL)
	}
	return p.GatewayReference
}

func cancelPayment(t *testing.T, h *testenv.Harness, id string, want int) {
	t.Helper()
	r := h.Do("POST", "/v1/payments/"+id+"/cancel", h.KeyA, nil, nil)
	if r.Status != want {
		t.Fatalf("cancel %s: %d %s, want %d", id, r.Status, r.Body, want)
	}
}

func timelineReasons(t *testing.T, h *testenv.Harness, id string) string {
	t.Helper()
	evs, err := h.Store.Events(context.Background(), h.TenantA, id)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(string(e.From) + "→" + string(e.To) + ": " + e.Reason + "\n")
	}
	return b.String()
}

func balances(t *testing.T, h *testenv.Harness) (reserved, paid int64) {
	t.Helper()
	inv, err := h.Store.GetInvoice(context.Background(), h.TenantA, testenv.TestInvoice)
	if err != nil {
		t.Fatal(err)
	}
	return inv.AmountReserved, inv.AmountPaid
}

// TestCancelDuringChallengeThenCustomerCompletes: the merchant cancels while
// the customer is on the 3-D Secure page; the cancel voids the challenge at
// the gateway, so when the customer completes it nothing is charged, and the
// invoice gets its balance back.
func TestCancelDuringChallengeThenCustomerCompletes(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{Processor: processorConfig(edgePolicy(time.Hour, time.Hour))})
	r0, p0 := balances(t, h)
	id := h.CreatePayment("CARD", sandbox.Card3DS, "20.00")
	p := waitStatus(t, h, id, payment.StatusRequiresAction, 10*time.Second)
	ref := challengeRef(t, p)

	cancelPayment(t, h, id, http.StatusAccepted)
	p = waitStatus(t, h, id, payment.StatusCanceled, 10*time.Second)
	if err := h.Sandbox.CompleteAction(ref, true); err == nil {
		t.Fatalf("the customer completed a challenge that the cancel voided")
	}
	if n := h.Sandbox.ChargesFor(id); n != 0 {
		t.Fatalf("the sandbox charged %s %d times after its cancel", id, n)
	}
	if p.NextStep != payment.StepNone || len(p.Attempts) != 1 || p.Attempts[0].Status != payment.AttemptFailed {
		t.Errorf("canceled payment: next %q attempts %+v", p.NextStep, p.Attempts)
	}
	if r, pd := balances(t, h); r != r0 || pd != p0 {
		t.Errorf("invoice reserved %d paid %d, want %d %d (the cancel released the line)", r, pd, r0, p0)
	}
	tl := timelineReasons(t, h, id)
	for _, want := range []string{"cancel requested by the merchant", "voided at the gateway"} {
		if !strings.Contains(tl, want) {
			t.Errorf("timeline lacks %q:\n%s", want, tl)
		}
	}
	// a second cancel is refused: it is canceled
	cancelPayment(t, h, id, http.StatusConflict)
}

// TestCancelAfterCustomerCompleted: the customer completed the challenge a
// moment before the merchant's cancel reached the gateway. The payment is
// still canceled, as asked, and the charge is refunded: one charge and its
// refund, both in the timeline.
func TestCancelAfterCustomerCompleted(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{Processor: processorConfig(edgePolicy(time.Hour, time.Hour))})
	r0, p0 := balances(t, h)
	id := h.CreatePayment("CARD", sandbox.Card3DS, "20.00")
	ref := challengeRef(t, waitStatus(t, h, id, payment.StatusRequiresAction, 10*time.Second))
	if err := h.Sandbox.CompleteAction(ref, true); err != nil { // payd polls only hourly
		t.Fatal(err)
	}
	cancelPayment(t, h, id, http.StatusAccepted)
	p := waitStatus(t, h, id, payment.StatusCanceled, 10*time.Second)
	rs := waitRefunds(t, h, id, 1, 10*time.Second)
	if rs[0].Status != payment.RefundSucceeded || rs[0].Reason != payment.RefundReasonChargeAfterCancel ||
		rs[0].ChargeReference != ref || rs[0].Amount != 2000 {
		t.Errorf("refund %+v, want a succeeded charge_after_cancel refund of 2000 for %s", rs[0], ref)
	}
	p = waitStatus(t, h, id, payment.StatusCanceled, time.Second)
	if p.RefundedAmount != 2000 || p.RefundPendingAmount != 0 {
		t.Errorf("refunded %d pending %d, want 2000 0", p.RefundedAmount, p.RefundPendingAmount)
	}
	if p.Attempts[0].Status != payment.AttemptSucceeded || p.Attempts[0].GatewayReference != ref {
		t.Errorf("attempt %+v, want it recorded as charged by %s", p.Attempts[0], ref)
	}
	if n := h.Sandbox.ChargesFor(id); n != 1 {
		t.Errorf("sandbox charges %d, want 1 (and its refund)", n)
	}
	if r, pd := balances(t, h); r != r0 || pd != p0 {
		t.Errorf("invoice reserved %d paid %d, want %d %d", r, pd, r0, p0)
	}
	tl := timelineReasons(t, h, id)
	for _, want := range []string{"already charged attempt 1: refunding it", "refund " + rs[0].ID + " started", "refund " + rs[0].ID + " of the late charge"} {
		if !strings.Contains(tl, want) {
			t.Errorf("timeline lacks %q:\n%s", want, tl)
		}
	}
}

// TestActionExpiryVoids: a challenge nobody completes expires; the payment
// fails only after the void, so completing it afterwards charges nothing.
func TestActionExpiryVoids(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{Processor: processorConfig(edgePolicy(500*time.Millisecond, 50*time.Millisecond))})
	id := h.CreatePayment("CARD", sandbox.Card3DS, "7.00")
	ref := challengeRef(t, waitStatus(t, h, id, payment.StatusRequiresAction, 10*time.Second))
	p := waitStatus(t, h, id, payment.StatusFailed, 10*time.Second)
	if p.ErrorCode != "action_expired" {
		t.Errorf("error code %q, want action_expired", p.ErrorCode)
	}
	if err := h.Sandbox.CompleteAction(ref, true); err == nil {
		t.Fatalf("an expired challenge could still be completed")
	}
	if n := h.Sandbox.ChargesFor(id); n != 0 {
		t.Errorf("sandbox charges %d, want 0", n)
	}
	if tl := timelineReasons(t, h, id); !strings.Contains(tl, "voiding it at the gateway") || !strings.Contains(tl, "voided at the gateway") {
		t.Errorf("timeline:\n%s", tl)
	}
}

// TestCancelWithGatewayDownThenLateCharge: the gateway refuses every void
// while the merchant cancels, so payd cancels after its void schedule with
// the attempt's outcome unknown; the customer then completes the challenge.
// Reconciliation finds the charge and refunds it, once, however many times
// it runs.
func TestCancelWithGatewayDownThenLateCharge(t *testing.T) {
	t.Parallel()
	pol := edgePolicy(time.Hour, time.Hour)
	pol.Inquiries = []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}
	h := testenv.Start(t, testenv.Options{Processor: processorConfig(pol)})
	start := h.Store.Now()
	id := h.CreatePayment("CARD", sandbox.Card3DS, "31.50")
	ref := challengeRef(t, waitStatus(t, h, id, payment.StatusRequiresAction, 10*time.Second))
	h.Sandbox.SetFaults(sandbox.Faults{VoidDown: true})
	cancelPayment(t, h, id, http.StatusAccepted)
	p := waitStatus(t, h, id, payment.StatusCanceled, 10*time.Second)
	if p.Attempts[0].Status != payment.AttemptUnknown {
		t.Errorf("attempt %+v, want UNKNOWN (the void got no answer)", p.Attempts[0])
	}
	h.Sandbox.SetFaults(sandbox.Faults{})
	if err := h.Sandbox.CompleteAction(ref, true); err != nil {
		t.Fatalf("the challenge was never voided, so the customer can complete it: %v", err)
	}
	var refundID string
	for run := range 3 {
		rep, err := h.Processor.Reconcile(context.Background(), start.Add(-time.Minute), h.Store.Now().Add(time.Minute), "test")
		if err != nil {
			t.Fatalf("reconcile %d: %v", run, err)
		}
		var got *store.Finding
		for i, f := range rep.Findings {
			if f.PaymentID == id {
				got = &rep.Findings[i]
			}
		}
		if got == nil || got.Kind != store.FindingChargeAfterClose || got.Action != "refund" || got.SeenCount != run+1 {
			t.Fatalf("run %d: finding %+v, want charge_after_close with a refund, seen %d times", run, got, run+1)
		}
		if refundID == "" {
			refundID = got.ActionRef
		} else if got.ActionRef != refundID {
			t.Fatalf("run %d started refund %s after %s", run, got.ActionRef, refundID)
		}
		waitRefunds(t, h, id, 1, 10*time.Second)
	}
	rs := waitRefunds(t, h, id, 1, 10*time.Second)
	if rs[0].ID != refundID || rs[0].Status != payment.RefundSucceeded || rs[0].Amount != 3150 {
		t.Errorf("refunds %+v, want one succeeded refund %s of 3150", rs, refundID)
	}
	p = waitStatus(t, h, id, payment.StatusCanceled, time.Second)
	if p.RefundedAmount != 3150 || p.Attempts[0].Status != payment.AttemptSucceeded {
		t.Errorf("payment refunded %d attempt %+v", p.RefundedAmount, p.Attempts[0])
	}
}

// TestReviewResolvesItself: pm_card_unknown charges and then the gateway
// answers nothing about it, so the payment goes to review; its slow
// inquiries keep asking, and the first answer resolves it.
func TestReviewResolvesItself(t *testing.T) {
	t.Parallel()
	pol := payment.DefaultRetryPolicy(10 * time.Millisecond)
	pol.Inquiries = []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}
	pol.ReviewInquiries = []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond,
		100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond, time.Hour}
	h := testenv.Start(t, testenv.Options{Processor: processorConfig(pol)})
	_, p0 := balances(t, h)
	id := h.CreatePayment("CARD", sandbox.CardUnknown, "12.00")
	p := waitStatus(t, h, id, payment.StatusRequiresReview, 10*time.Second)
	if p.NextStep != payment.StepInquire {
		t.Fatalf("in review with next step %q, want a slow inquiry", p.NextStep)
	}
	time.Sleep(300 * time.Millisecond) // a few slow inquiries time out
	if p = waitStatus(t, h, id, payment.StatusRequiresReview, time.Second); p.Attempts[0].InquiryCount <= 2 {
		t.Errorf("inquiries %d: the review schedule did not ask again", p.Attempts[0].InquiryCount)
	}
	h.Sandbox.SetFaults(sandbox.Faults{AnswerUnknown: true})
	p = waitStatus(t, h, id, payment.StatusSucceeded, 10*time.Second)
	if p.Attempts[0].Status != payment.AttemptSucceeded || p.NextStep != payment.StepNone {
		t.Errorf("resolved payment: attempt %+v next %q", p.Attempts[0], p.NextStep)
	}
	if _, pd := balances(t, h); pd != p0+1200 {
		t.Errorf("invoice paid %d, want %d", pd, p0+1200)
	}
	if tl := timelineReasons(t, h, id); !strings.Contains(tl, "found by inquiry while in review") {
		t.Errorf("timeline:\n%s", tl)
	}
}

// TestReconcileResolvesReview: a payment in review whose charge the
// gateway's ledger lists is resolved as succeeded by reconciliation, even
// though the gateway still answers nothing about its key.
func TestReconcileResolvesReview(t *testing.T) {
	t.Parallel()
	pol := payment.DefaultRetryPolicy(10 * time.Millisecond)
	pol.Inquiries = []time.Duration{10 * time.Millisecond}
	pol.ReviewInquiries = []time.Duration{time.Hour}
	h := testenv.Start(t, testenv.Options{Processor: processorConfig(pol)})
	start := h.Store.Now()
	id := h.CreatePayment("CARD", sandbox.CardUnknown, "5.00")
	waitStatus(t, h, id, payment.StatusRequiresReview, 10*time.Second)
	rep, err := h.Processor.Reconcile(context.Background(), start.Add(-time.Minute), h.Store.Now().Add(time.Minute), "test")
	if err != nil {
		t.Fatal(err)
	}
	p := waitStatus(t, h, id, payment.StatusSucceeded, time.Second)
	if p.Attempts[0].Status != payment.AttemptSucceeded {
		t.Errorf("attempt %+v", p.Attempts[0])
	}
	var kinds []string
	for _, f := range rep.Findings {
		kinds = append(kinds, f.Kind)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Kind != store.FindingChargeForReview || rep.Findings[0].Action != "review_resolved" {
		t.Errorf("findings %v, want one charge_for_review acted on", kinds)
	}
}

// TestReconcileFindsWhatPaydDidNotAsk: a charge under a key no attempt has,
// and a refund payd never asked for, are open findings; a payment whose
// charge and refund agree is none.
func TestReconcileFindsWhatPaydDidNotAsk(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	ctx := context.Background()
	start := h.Store.Now()
	id := h.CreatePayment("CARD", sandbox.CardVisa, "9.99")
	p := h.WaitFinal(id, 10*time.Second)
	r := h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{"amount":"1.00"}`), nil)
	if r.Status != http.StatusCreated && r.Status != http.StatusOK && r.Status != http.StatusAccepted {
		t.Fatalf("refund: %d %s", r.Status, r.Body)
	}
	waitRefunds(t, h, id, 1, 10*time.Second)
	// behind payd's back: a refund of its charge and a charge of nobody's
	if _, err := h.Sandbox.Refund(ctx, connector.RefundRequest{IdempotencyKey: "rogue-refund", PaymentID: id,
		GatewayReference: p.GatewayReference, Amount: payment.Money{Minor: 100, Currency: "USD"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Sandbox.Charge(ctx, connector.ChargeRequest{IdempotencyKey: "rogue-charge", PaymentID: "pay_nobody",
		Amount: payment.Money{Minor: 4200, Currency: "USD"}, Method: payment.MethodCard, PaymentMethodID: sandbox.CardVisa}); err != nil {
		t.Fatal(err)
	}
	rep, err := h.Processor.Reconcile(ctx, start.Add(-time.Minute), h.Store.Now().Add(time.Minute), "test")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.Finding{}
	for _, f := range rep.Findings {
		got[f.Kind] = f
	}
	if f := got[store.FindingUnknownRefund]; f.Status != store.FindingOpen || f.Amount != 100 {
		t.Errorf("unknown refund finding %+v", f)
	}
	if f := got[store.FindingUnknownCharge]; f.Status != store.FindingOpen || f.Amount != 4200 {
		t.Errorf("unknown charge finding %+v", f)
	}
	if len(rep.Findings) != 2 || rep.Charges < 2 || rep.Refunds != 2 {
		t.Errorf("report: %d charges %d refunds, findings %+v; want exactly the two rogue ones", rep.Charges, rep.Refunds, rep.Findings)
	}
	open, err := h.Store.CountFindings(ctx, store.FindingOpen)
	if err != nil {
		t.Fatal(err)
	}
	if open[store.FindingUnknownCharge] != 1 || open[store.FindingUnknownRefund] != 1 {
		t.Errorf("open findings %v", open)
	}
}

// TestLateChargeFoundByNotification: payd canceled with the gateway down,
// the customer then completes the challenge, and the gateway notifies the
// charge: the notification about a closed payment makes payd ask the
// gateway and refund the charge, without waiting for reconciliation.
func TestLateChargeFoundByNotification(t *testing.T) {
	t.Parallel()
	pol := edgePolicy(time.Hour, time.Hour)
	pol.Inquiries = []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}
	h := testenv.Start(t, testenv.Options{
		Sandbox:   sandbox.Config{Notify: sandbox.NotifyConfig{Secret: notifySecret}},
		Intake:    intake.Config{NotifySecrets: []string{notifySecret}},
		Processor: processorConfig(pol),
	})
	id := h.CreatePayment("CARD", sandbox.Card3DS, "64.00")
	ref := challengeRef(t, waitStatus(t, h, id, payment.StatusRequiresAction, 10*time.Second))
	h.Sandbox.SetFaults(sandbox.Faults{VoidDown: true})
	cancelPayment(t, h, id, http.StatusAccepted)
	waitStatus(t, h, id, payment.StatusCanceled, 10*time.Second)
	h.Sandbox.SetFaults(sandbox.Faults{})
	if err := h.Sandbox.CompleteAction(ref, true); err != nil {
		t.Fatal(err)
	}
	rs := waitRefunds(t, h, id, 1, 10*time.Second)
	if rs[0].Status != payment.RefundSucceeded || rs[0].ChargeReference != ref || rs[0].Amount != 6400 {
		t.Errorf("refund %+v", rs[0])
	}
	ns, err := h.Store.ListNotifications(context.Background(), id, 10)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, n := range ns {
		outcomes = append(outcomes, n.Outcome)
	}
	if !strings.Contains(strings.Join(outcomes, ","), "late_charge") {
		t.Errorf("notification outcomes %v, want one late_charge", outcomes)
	}
	if tl := timelineReasons(t, h, id); !strings.Contains(tl, "found by notification") {
		t.Errorf("timeline:\n%s", tl)
	}
}
