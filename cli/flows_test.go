package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/payd/payd/cli"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// flowInStore records, through the store alone, a flow settling a 100.00
// USD invoice paid by alice (60.00, card) and bob (40.00, card) to carol
// (55.00) and dave (35.00, both ACH), and runs its first recompute: plan
// version 1, the payins created (PENDING: nothing enqueues them here).
func flowInStore(t *testing.T, h *testenv.Harness) payment.Flow {
	t.Helper()
	ctx := context.Background()
	for _, ext := range []string{"alice", "bob"} {
		if _, _, err := h.Store.CreateUser(ctx, payment.User{TenantID: h.TenantA, ExternalID: ext,
			PayinMethod: &payment.PayinMethod{Type: payment.MethodCard, ID: "pm_card_visa"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, ext := range []string{"carol", "dave"} {
		if _, _, err := h.Store.CreateUser(ctx, payment.User{TenantID: h.TenantA, ExternalID: ext,
			PayoutAccount: &payment.PayoutAccount{Method: payment.MethodACH, BeneficiaryName: "Payee " + ext,
				BeneficiaryAccount: "123456789", BeneficiaryRouting: "021000021", BeneficiaryBankCountry: "US"}}); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := h.Store.CreateInvoice(ctx, store.NewInvoice{TenantID: h.TenantA, ExternalID: "inv-flow-cli", Currency: "USD",
		AmountDue: 10000, Payers: []store.NewPayee{{ExternalID: "alice", Amount: 6000}, {ExternalID: "bob", Amount: 4000}},
		Payees: []store.NewPayee{{ExternalID: "carol", Amount: 5500}, {ExternalID: "dave", Amount: 3500}}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := h.Store.CreateFlow(ctx, store.NewFlow{TenantID: h.TenantA, ExternalID: "flow-cli", InvoiceRef: inv.ID,
		Type: payment.FlowTypeSingleInvoice, Fingerprint: []byte("test"), Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.Store.RecomputeFlow(ctx, f.ID, f.StepSeq, "test")
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != store.RecomputeChanged || len(res.Created) != 2 {
		t.Fatalf("first recompute: %s, %d payments created", res.Outcome, len(res.Created))
	}
	return res.Flow
}

// TestFlowShow: `payd flows show` prints the stored flow's plan as a tree
// (payins created, payouts waiting for them), --versions its history after
// a cancel, --json the API's shape; an unknown flow is exit code 4.
func TestFlowShow(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	ctx := context.Background()
	f := flowInStore(t, h)

	out, code := payd(t, h, "flows", "show", f.ID)
	if code != cli.ExitOK {
		t.Fatalf("flows show: exit %d\n%s", code, out)
	}
	for _, want := range []string{
		"flow " + f.ID + "  processing  plan v1",
		"invoice " + f.InvoiceID + " (inv-flow-cli), flow external id flow-cli",
		"money (USD)",
		"  due                 100.00  (10000)",
		"  platform remainder   10.00   (1000)",
		"batch payins  processing\n├─ payin  alice  60.00 USD  (6000)  pending  pay_",
		"└─ payin  bob    40.00 USD  (4000)  pending  pay_",
		"batch payouts  pending  waits for payins\n│  waiting: payins not settled (payins is processing)\n" +
			"├─ payout  carol  55.00 USD  (5500)  pending  not created\n" +
			"└─ payout  dave   35.00 USD  (3500)  pending  not created\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("flows show lacks %q:\n%s", want, out)
		}
	}

	// a cancel and its recompute: version 2
	_, seq, err := h.Store.CancelFlow(ctx, h.TenantA, f.ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Store.RecomputeFlow(ctx, f.ID, seq, "test"); err != nil {
		t.Fatal(err)
	}
	out, code = payd(t, h, "flows", "show", f.ID, "--versions")
	if code != cli.ExitOK {
		t.Fatalf("flows show --versions: exit %d\n%s", code, out)
	}
	for _, want := range []string{
		"flow " + f.ID + "  canceled  plan v2",
		"history (2 plan versions)\nv1  ",
		"first plan: flow processing, 4 payments planned",
		"\nv2  ",
		"flow processing → canceled",
		"batch payouts pending → canceled",
		"payout carol 55.00 USD not created: pending → canceled",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("flows show --versions lacks %q:\n%s", want, out)
		}
	}

	out, code = payd(t, h, "flows", "show", f.ID, "--versions", "--json")
	if code != cli.ExitOK {
		t.Fatalf("flows show --json: exit %d\n%s", code, out)
	}
	var shown struct {
		Flow struct {
			ID          string `json:"id"`
			Status      string `json:"status"`
			PlanVersion int    `json:"plan_version"`
		} `json:"flow"`
		Plan struct {
			Version int `json:"version"`
			Amounts struct {
				Due string `json:"due"`
			} `json:"amounts"`
			Batches []struct {
				BatchID  string `json:"batch_id"`
				Payments []struct {
					PaymentID *string `json:"payment_id"`
					Amount    string  `json:"amount"`
				} `json:"payments"`
			} `json:"batches"`
		} `json:"plan"`
		Versions []struct {
			Version int `json:"version"`
		} `json:"versions"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("flows show --json is not JSON: %v\n%s", err, out)
	}
	if shown.Flow.ID != f.ID || shown.Flow.Status != "canceled" || shown.Flow.PlanVersion != 2 || shown.Plan.Version != 2 ||
		shown.Plan.Amounts.Due != "10000" || len(shown.Versions) != 2 || len(shown.Plan.Batches) != 2 ||
		shown.Plan.Batches[0].Payments[0].PaymentID == nil || shown.Plan.Batches[1].Payments[0].PaymentID != nil ||
		shown.Plan.Batches[1].Payments[0].Amount != "5500" {
		t.Errorf("flows show --json: %+v", shown)
	}

	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"flows", "show", "flw_nope"}, cli.ExitNotFound},
		{[]string{"flows", "show", "flw_nope", "--json"}, cli.ExitNotFound},
		{[]string{"flows", "show"}, cli.ExitUsage},
		{[]string{"flows", "show", f.ID, "--bogus"}, cli.ExitUsage},
		{[]string{"flows"}, cli.ExitUsage},
	} {
		if out, code := payd(t, h, c.args...); code != c.want {
			t.Errorf("payd %s: exit %d, want %d\n%s", strings.Join(c.args, " "), code, c.want, out)
		}
	}
}
