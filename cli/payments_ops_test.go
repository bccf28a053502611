package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/payd/payd/cli"
	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
)

type listed struct {
	ID        string `json:"id"`
	Surface   string `json:"surface"`
	Status    string `json:"status"`
	APIStatus string `json:"api_status"`
	Amount    string `json:"amount"`
	Attempts  int    `json:"attempt_count"`
	RetryOf   string `json:"retry_of"`
	RetriedAs string `json:"retried_as"`
}

// list runs payments list --json and returns the ids listed.
func list(t *testing.T, h *testenv.Harness, args ...string) map[string]listed {
	t.Helper()
	out, code := payd(t, h, append([]string{"payments", "list", "--json"}, args...)...)
	if code != cli.ExitOK {
		t.Fatalf("payments list %v: exit %d\n%s", args, code, out)
	}
	var items []listed
	if err := json.Unmarshal([]byte(out), &items); err != nil {
		t.Fatalf("payments list --json is not JSON: %v\n%s", err, out)
	}
	got := map[string]listed{}
	for _, it := range items {
		got[it.ID] = it
	}
	return got
}

// TestPaymentsListAndGet: payments are listed by canonical status
// (REQUIRES_REVIEW, any case) and by the word an API shows (PROCESSING on
// /v1/payments covers review), by tenant and age; get shows the payment,
// its attempts and its timeline; every output parses as JSON.
func TestPaymentsListAndGet(t *testing.T) {
	t.Parallel()
	h := reviewHarness(t)
	review := inReview(t, h, "7.00")
	ok := h.CreatePayment("CARD", sandbox.CardVisa, "1.00")
	declined := h.CreatePayment("CARD", sandbox.CardDeclined, "2.00")
	h.WaitFinal(ok, 10*time.Second)
	h.WaitFinal(declined, 10*time.Second)

	for _, st := range []string{"REQUIRES_REVIEW", "requires_review"} {
		got := list(t, h, "--status", st)
		if len(got) != 1 || got[review].Status != "REQUIRES_REVIEW" || got[review].APIStatus != "PROCESSING" {
			t.Errorf("--status %s lists %+v, want only %s (API status PROCESSING)", st, got, review)
		}
	}
	// PROCESSING as /v1/payments shows it covers review; canonical PROCESSING does not
	if got := list(t, h, "--surface", "payments", "--status", "PROCESSING"); len(got) != 1 || got[review].ID == "" {
		t.Errorf("--surface payments --status PROCESSING lists %+v, want %s", got, review)
	}
	if got := list(t, h, "--status", "PROCESSING"); len(got) != 0 {
		t.Errorf("canonical --status PROCESSING lists %+v, want none", got)
	}
	if got := list(t, h, "--status", "FAILED", "--tenant", "tenant-a"); len(got) != 1 || got[declined].Status != "FAILED" {
		t.Errorf("--status FAILED --tenant tenant-a lists %+v, want %s", got, declined)
	}
	if got := list(t, h, "--tenant", h.TenantB); len(got) != 0 {
		t.Errorf("tenant B lists %+v", got)
	}
	if got := list(t, h, "--since", "1h"); len(got) != 3 || got[ok].Status != "SUCCEEDED" || got[ok].Amount != "1.00" {
		t.Errorf("--since 1h lists %+v, want all three", got)
	}
	if got := list(t, h, "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); len(got) != 0 {
		t.Errorf("--since an hour ahead lists %+v", got)
	}
	if got := list(t, h, "--status", "SETTLED"); len(got) != 0 { // a payout word: payouts only
		t.Errorf("--status SETTLED lists %+v", got)
	}
	if out, code := payd(t, h, "payments", "list", "--status", "FAILED"); code != 0 || !strings.Contains(out, declined) ||
		!strings.Contains(out, "API STATUS") {
		t.Errorf("list table: exit %d\n%s", code, out)
	}

	out, code := payd(t, h, "payments", "get", declined, "--json")
	if code != cli.ExitOK {
		t.Fatalf("get: exit %d\n%s", code, out)
	}
	var d struct {
		Payment  listed `json:"payment"`
		Attempts []struct {
			Number       int    `json:"number"`
			Status       string `json:"status"`
			Key          string `json:"idempotency_key"`
			FailureClass string `json:"failure_class"`
		} `json:"attempts"`
		Timeline []struct {
			From  *string `json:"from"`
			To    string  `json:"to"`
			Actor string  `json:"actor"`
		} `json:"timeline"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("get --json: %v\n%s", err, out)
	}
	if d.Payment.ID != declined || d.Payment.Status != "FAILED" || len(d.Attempts) != 1 ||
		d.Attempts[0].Key != payment.AttemptKey(declined, 1) || d.Attempts[0].FailureClass != "hard_decline" {
		t.Errorf("get: %+v", d)
	}
	if n := len(d.Timeline); n < 3 || d.Timeline[0].From != nil || d.Timeline[0].To != "PENDING" || d.Timeline[n-1].To != "FAILED" {
		t.Errorf("timeline %+v, want PENDING … FAILED", d.Timeline)
	}
	if out, code := payd(t, h, "payments", "get", declined); code != 0 || !strings.Contains(out, "timeline (") ||
		!strings.Contains(out, payment.AttemptKey(declined, 1)) {
		t.Errorf("get table: exit %d\n%s", code, out)
	}
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"payments", "get", "pay_nope"}, cli.ExitNotFound},
		{[]string{"payments", "get"}, cli.ExitUsage},
		{[]string{"payments", "list", "--status", "WEIRD"}, cli.ExitUsage},
		{[]string{"payments", "list", "--since", "yesterday"}, cli.ExitUsage},
		{[]string{"payments", "list", "--limit", "0"}, cli.ExitUsage},
		{[]string{"payments", "list", "--tenant", "nobody"}, cli.ExitNotFound},
	} {
		if out, code := payd(t, h, c.args...); code != c.want {
			t.Errorf("payd %s: exit %d, want %d\n%s", strings.Join(c.args, " "), code, c.want, out)
		}
	}
}

type retryOut struct {
	PaymentID   string `json:"payment_id"`
	RetriedAs   string `json:"retried_as"`
	Status      string `json:"status"`
	GatewaySays string `json:"gateway_says"`
	Enqueued    bool   `json:"enqueued"`
}

// TestPaymentsRetry: a payment that failed on a soft decline after the
// processor's retries is retried as a new payment, through the normal job
// path with gateway keys of its own; the failed one stays FAILED with its
// attempts untouched and a note naming the retry; it is retried at most
// once; the sandbox never charged anything.
func TestPaymentsRetry(t *testing.T) {
	t.Parallel()
	h := reviewHarness(t)
	ctx := context.Background()
	inv0, err := h.Store.GetInvoice(ctx, h.TenantA, testenv.TestInvoice)
	if err != nil {
		t.Fatal(err)
	}
	id := h.CreatePayment("CARD", sandbox.CardInsufficientFunds, "5.00")
	old := h.WaitFinal(id, 15*time.Second)
	if old.Status != payment.StatusFailed || len(old.Attempts) != 3 {
		t.Fatalf("soft decline: %s with %d attempts, want FAILED after 3", old.Status, len(old.Attempts))
	}

	if out, code := payd(t, h, "payments", "retry", id, "--reason", "customer topped up"); code != cli.ExitUsage {
		t.Errorf("retry without --operator: exit %d\n%s", code, out)
	}
	out, code := payd(t, h, "payments", "retry", id, "--reason", "customer topped up", "--operator", "alice", "--json")
	if code != cli.ExitOK {
		t.Fatalf("retry: exit %d\n%s", code, out)
	}
	var r retryOut
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("retry --json: %v\n%s", err, out)
	}
	if r.PaymentID != id || r.RetriedAs == "" || r.RetriedAs == id || r.Status != "PENDING" || r.GatewaySays != "not_charged" || !r.Enqueued {
		t.Fatalf("retry answered %+v", r)
	}
	// the new payment runs the normal path (its own keys): declined again, 3 attempts
	np := h.WaitFinal(r.RetriedAs, 15*time.Second)
	if np.Status != payment.StatusFailed || len(np.Attempts) != 3 || np.Amount != old.Amount || np.InvoiceID != old.InvoiceID ||
		np.PaymentMethodID != old.PaymentMethodID || np.CreatedBy != "operator:alice" {
		t.Fatalf("retry payment %s: %s, %d attempts, %+v", np.ID, np.Status, len(np.Attempts), np)
	}
	for _, a := range np.Attempts {
		if a.IdempotencyKey != payment.AttemptKey(np.ID, a.Number) {
			t.Errorf("retry attempt %d key %s", a.Number, a.IdempotencyKey)
		}
	}
	// the gateway saw the new keys, and kept the old outcomes
	for _, key := range []string{payment.AttemptKey(id, 3), payment.AttemptKey(np.ID, 1)} {
		if res, err := h.Sandbox.Inquire(ctx, key); err != nil || res.Code != "insufficient_funds" {
			t.Errorf("gateway on %s: %+v %v", key, res, err)
		}
	}
	after, err := h.Store.GetPayment(ctx, "", id)
	if err != nil {
		t.Fatal(err)
	}
	if after.Status != payment.StatusFailed || len(after.Attempts) != 3 || after.StepSeq != old.StepSeq {
		t.Errorf("the failed payment changed: %s, %d attempts, seq %d → %d", after.Status, len(after.Attempts), old.StepSeq, after.StepSeq)
	}
	evs, err := h.Store.Events(ctx, h.TenantA, id)
	if err != nil {
		t.Fatal(err)
	}
	note := evs[len(evs)-1]
	if note.From != payment.StatusFailed || note.To != payment.StatusFailed || note.Actor != "operator:alice" ||
		!strings.Contains(note.Reason, r.RetriedAs) || !strings.Contains(note.Reason, "customer topped up") {
		t.Errorf("note on the failed payment %+v", note)
	}
	nevs, err := h.Store.Events(ctx, h.TenantA, np.ID)
	if err != nil {
		t.Fatal(err)
	}
	if nevs[0].To != payment.StatusPending || nevs[0].Actor != "operator:alice" || !strings.Contains(nevs[0].Reason, "retry of "+id) {
		t.Errorf("creation of the retry %+v", nevs[0])
	}
	// its line was reserved and released again: the invoice is where it was
	if inv, err := h.Store.GetInvoice(ctx, h.TenantA, testenv.TestInvoice); err != nil || inv.AmountReserved != inv0.AmountReserved ||
		inv.AmountPaid != inv0.AmountPaid {
		t.Errorf("invoice reserved %d paid %d, want %d %d (%v)", inv.AmountReserved, inv.AmountPaid, inv0.AmountReserved, inv0.AmountPaid, err)
	}
	if len(h.Sandbox.Ledger()) != 0 {
		t.Errorf("the sandbox charged: %+v", h.Sandbox.Ledger())
	}
	// get and list show the link both ways
	got := list(t, h, "--status", "FAILED")
	if got[id].RetriedAs != "" || got[np.ID].ID == "" {
		t.Errorf("list FAILED: %+v", got)
	}
	out, _ = payd(t, h, "payments", "get", id, "--json")
	var d struct {
		Payment listed `json:"payment"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.Payment.RetriedAs != np.ID {
		t.Errorf("get of the failed payment: %v %+v", err, d.Payment)
	}
	out, _ = payd(t, h, "payments", "get", np.ID, "--json")
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.Payment.RetryOf != id {
		t.Errorf("get of the retry: %v %+v", err, d.Payment)
	}
	// at most once; the retry itself may be retried
	if out, code := payd(t, h, "payments", "retry", id, "--reason", "again", "--operator", "bob"); code != cli.ExitRefused ||
		!strings.Contains(out, np.ID) {
		t.Errorf("second retry: exit %d\n%s", code, out)
	}
	if out, code := payd(t, h, "payments", "retry", np.ID, "--reason", "again", "--operator", "bob"); code != cli.ExitOK ||
		!strings.Contains(out, "retried as pay_") {
		t.Errorf("retry of the retry: exit %d\n%s", code, out)
	}
}

// TestPaymentsRetryRefused: a hard decline is refused by the policy, a
// payment that is not FAILED or does not exist is not found, and a FAILED
// payment the gateway says it charged (forced to FAILED from review) is
// refused; none of them creates a payment.
func TestPaymentsRetryRefused(t *testing.T) {
	t.Parallel()
	h := reviewHarness(t)
	ctx := context.Background()
	declined := h.CreatePayment("CARD", sandbox.CardDeclined, "1.00")
	ok := h.CreatePayment("CARD", sandbox.CardVisa, "1.00")
	h.WaitFinal(declined, 10*time.Second)
	h.WaitFinal(ok, 10*time.Second)
	review := inReview(t, h, "9.00")
	if out, code := payd(t, h, "payments", "resolve", review, "--failed", "--force", "--reason", "customer disputes",
		"--operator", "carol"); code != cli.ExitOK {
		t.Fatalf("forced resolve: exit %d\n%s", code, out)
	}
	count := func() int {
		t.Helper()
		return len(list(t, h, "--since", "1h"))
	}
	n0 := count()
	for _, c := range []struct {
		id   string
		want int
		says string
	}{
		{declined, cli.ExitRefused, "hard_decline"},
		{ok, cli.ExitNotFound, "SUCCEEDED, not FAILED"},
		{"pay_nope", cli.ExitNotFound, "no payment"},
		// the gateway does not answer about the forced attempt: not retried
		{review, cli.ExitFailure, "no usable answer"},
	} {
		out, code := payd(t, h, "payments", "retry", c.id, "--reason", "try", "--operator", "dave", "--json")
		if code != c.want || !strings.Contains(out, c.says) {
			t.Errorf("retry %s: exit %d, want %d saying %q\n%s", c.id, code, c.want, c.says, out)
		}
	}
	// the gateway answers now: it did charge the attempt forced to FAILED
	h.Sandbox.SetFaults(sandbox.Faults{AnswerUnknown: true})
	if out, code := payd(t, h, "payments", "retry", review, "--reason", "try", "--operator", "dave"); code != cli.ExitRefused ||
		!strings.Contains(out, "charged") {
		t.Errorf("retry of a charged attempt: exit %d\n%s", code, out)
	}
	if n := count(); n != n0 {
		t.Errorf("refused retries created %d payments", n-n0)
	}
	if p, err := h.Store.GetPayment(ctx, "", declined); err != nil || p.Status != payment.StatusFailed {
		t.Errorf("declined payment %s %v", p.Status, err)
	}
}
