package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/payd/payd/cli"
	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/processor"
	"github.com/payd/payd/store"
)

// reviewHarness is payd whose pm_card_unknown payments reach review fast
// and then wait there (the next slow inquiry is an hour away).
func reviewHarness(t *testing.T) *testenv.Harness {
	pol := payment.DefaultRetryPolicy(10 * time.Millisecond)
	pol.Inquiries = []time.Duration{10 * time.Millisecond}
	pol.ReviewInquiries = []time.Duration{time.Hour}
	return testenv.Start(t, testenv.Options{Processor: processor.Config{Policy: pol}})
}

func opener(h *testenv.Harness) cli.Opener {
	return func(context.Context) (*cli.Env, func(), error) {
		return &cli.Env{Store: h.Store, Gateway: h.Sandbox, Reconcile: h.Processor.Reconcile,
			ReconcileWindow: h.Processor.ReconcileWindow, Policy: payment.DefaultRetryPolicy(10 * time.Millisecond),
			Enqueue: h.Enqueuer, Inspector: h.Enqueuer.Inspector}, func() {}, nil
	}
}

// payd runs an operator command line and returns its output and exit code.
func payd(t *testing.T, h *testenv.Harness, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	err := cli.Run(context.Background(), args, opener(h), &out, &out)
	if err != nil {
		out.WriteString("\nerror: " + err.Error())
	}
	return out.String(), cli.ExitCode(err)
}

func inReview(t *testing.T, h *testenv.Harness, amount string) string {
	t.Helper()
	id := h.CreatePayment("CARD", sandbox.CardUnknown, amount)
	deadline := time.Now().Add(15 * time.Second)
	for {
		p, err := h.Store.GetPayment(context.Background(), "", id)
		if err != nil {
			t.Fatal(err)
		}
		if p.Status == payment.StatusRequiresReview {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s, want REQUIRES_REVIEW", id, p.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReviewAndResolve: an operator lists the payments in review, is
// refused a resolution that contradicts the gateway, resolves as the
// gateway says, and the timeline shows who and why; the invoice moves.
func TestReviewAndResolve(t *testing.T) {
	t.Parallel()
	h := reviewHarness(t)
	ctx := context.Background()
	inv0, err := h.Store.GetInvoice(ctx, h.TenantA, testenv.TestInvoice)
	if err != nil {
		t.Fatal(err)
	}
	id := inReview(t, h, "42.00")

	out, code := payd(t, h, "payments", "review", "--json")
	if code != cli.ExitOK {
		t.Fatalf("review: exit %d: %s", code, out)
	}
	var items []struct {
		ID         string `json:"id"`
		Amount     string `json:"amount"`
		LastAnswer string `json:"last_answer"`
		Attempts   []struct {
			Status    string `json:"status"`
			Inquiries int    `json:"inquiries"`
		} `json:"attempts"`
		NextInquiry *time.Time `json:"next_inquiry_at"`
	}
	if err := json.Unmarshal([]byte(out), &items); err != nil {
		t.Fatalf("review --json is not JSON: %v\n%s", err, out)
	}
	if len(items) != 1 || items[0].ID != id || items[0].Amount != "42.00" || len(items[0].Attempts) != 1 ||
		items[0].Attempts[0].Status != "UNKNOWN" || items[0].NextInquiry == nil || !strings.Contains(items[0].LastAnswer, "timeout") {
		t.Errorf("review lists %+v", items)
	}
	if out, code := payd(t, h, "payments", "review"); code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "LAST ANSWER") {
		t.Errorf("review table: exit %d\n%s", code, out)
	}

	// while the gateway answers nothing, either resolution is the operator's
	// call; once it answers "charged", a failed resolution is refused
	h.Sandbox.SetFaults(sandbox.Faults{AnswerUnknown: true})
	out, code = payd(t, h, "payments", "resolve", id, "--failed", "--reason", "customer says no", "--operator", "alice", "--json")
	if code != cli.ExitRefused || !strings.Contains(out, "charged") {
		t.Fatalf("a resolution against the gateway: exit %d, want %d\n%s", code, cli.ExitRefused, out)
	}
	if p, _ := h.Store.GetPayment(ctx, "", id); p.Status != payment.StatusRequiresReview {
		t.Fatalf("a refused resolution moved the payment to %s", p.Status)
	}
	out, code = payd(t, h, "payments", "resolve", id, "--succeeded", "--reason", "bank statement shows it", "--operator", "alice", "--json")
	if code != cli.ExitOK {
		t.Fatalf("resolve: exit %d\n%s", code, out)
	}
	var res struct {
		To string `json:"to"`
	}
	_ = json.Unmarshal([]byte(out), &res)
	p, err := h.Store.GetPayment(ctx, "", id)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != payment.StatusSucceeded || p.NextStep != payment.StepNone || p.Attempts[0].Status != payment.AttemptSucceeded {
		t.Errorf("resolved payment %s next %q attempt %+v", p.Status, p.NextStep, p.Attempts[0])
	}
	evs, err := h.Store.Events(ctx, h.TenantA, id)
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if last.From != payment.StatusRequiresReview || last.To != payment.StatusSucceeded || last.Actor != "operator:alice" ||
		!strings.Contains(last.Reason, "bank statement shows it") || !strings.Contains(last.Reason, "the gateway says charged") {
		t.Errorf("audit row %+v", last)
	}
	inv, err := h.Store.GetInvoice(ctx, h.TenantA, testenv.TestInvoice)
	if err != nil {
		t.Fatal(err)
	}
	if inv.AmountPaid != inv0.AmountPaid+4200 || inv.AmountReserved != inv0.AmountReserved+4200 {
		t.Errorf("invoice paid %d reserved %d, want +4200 each over %d %d", inv.AmountPaid, inv.AmountReserved,
			inv0.AmountPaid, inv0.AmountReserved)
	}
	// it left review: a second resolution finds nothing to resolve
	if out, code := payd(t, h, "payments", "resolve", id, "--failed", "--reason", "x", "--operator", "bob"); code != cli.ExitNotFound {
		t.Errorf("resolve of a resolved payment: exit %d\n%s", code, out)
	}
}

// TestResolveForcedAndUsage: --force resolves against the gateway (and says
// so in the timeline); usage errors and unknown payments have their codes.
func TestResolveForcedAndUsage(t *testing.T) {
	t.Parallel()
	h := reviewHarness(t)
	ctx := context.Background()
	id := inReview(t, h, "3.00")
	h.Sandbox.SetFaults(sandbox.Faults{AnswerUnknown: true})
	out, code := payd(t, h, "payments", "resolve", id, "--failed", "--force", "--reason", "chargeback filed", "--operator", "carol")
	if code != cli.ExitOK || !strings.Contains(out, "forced") {
		t.Fatalf("forced resolve: exit %d\n%s", code, out)
	}
	p, _ := h.Store.GetPayment(ctx, "", id)
	if p.Status != payment.StatusFailed {
		t.Errorf("forced resolution left %s", p.Status)
	}
	evs, _ := h.Store.Events(ctx, h.TenantA, id)
	if r := evs[len(evs)-1].Reason; !strings.Contains(r, "forced against it") {
		t.Errorf("reason %q does not say it was forced", r)
	}
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"payments", "resolve", id, "--reason", "x", "--operator", "y"}, cli.ExitUsage},
		{[]string{"payments", "resolve", id, "--succeeded", "--failed", "--reason", "x", "--operator", "y"}, cli.ExitUsage},
		{[]string{"payments", "resolve", id, "--succeeded", "--operator", "y"}, cli.ExitUsage},
		{[]string{"payments", "resolve", "--succeeded", "--reason", "x", "--operator", "y"}, cli.ExitUsage},
		{[]string{"payments", "resolve", "pay_nope", "--succeeded", "--reason", "x", "--operator", "y"}, cli.ExitNotFound},
		{[]string{"payments", "frobnicate"}, cli.ExitUsage},
		{[]string{"payments", "review", "--bogus"}, cli.ExitUsage},
		{[]string{"reconcile", "--since", "yesterday"}, cli.ExitUsage},
		{[]string{"reconcile", "findings", "--status", "weird"}, cli.ExitUsage},
		{[]string{"reconcile", "resolve-finding", "12345", "--operator", "y"}, cli.ExitNotFound},
	} {
		if out, code := payd(t, h, c.args...); code != c.want {
			t.Errorf("payd %s: exit %d, want %d\n%s", strings.Join(c.args, " "), code, c.want, out)
		}
	}
}

// TestReconcileCommand: the operator runs reconciliation over a window and
// lists the findings, in JSON for scripts; a charge nobody asked for is one.
func TestReconcileCommand(t *testing.T) {
	t.Parallel()
	h := reviewHarness(t)
	id := h.CreatePayment("CARD", sandbox.CardVisa, "1.00")
	h.WaitFinal(id, 10*time.Second)
	out, code := payd(t, h, "reconcile", "--since", "1h", "--json")
	if code != cli.ExitOK {
		t.Fatalf("reconcile: exit %d\n%s", code, out)
	}
	var rep store.ReconcileReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("reconcile --json: %v\n%s", err, out)
	}
	if rep.Charges != 1 || len(rep.Findings) != 0 {
		t.Errorf("report %+v, want 1 charge and no findings", rep)
	}
	out, code = payd(t, h, "reconcile", "findings", "--status", "all", "--json")
	var fs []store.Finding
	if err := json.Unmarshal([]byte(out), &fs); code != 0 || err != nil || len(fs) != 0 {
		t.Errorf("findings: exit %d %v %s", code, err, out)
	}
	if out, code := payd(t, h, "reconcile", "findings"); code != 0 || !strings.Contains(out, "no findings") {
		t.Errorf("findings table: exit %d\n%s", code, out)
	}
}
