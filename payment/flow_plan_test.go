package payment_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/payd/payd/payment"
)

// update rewrites the golden files of the flow planner:
//
//	go test ./payment -run Golden -update
var update = flag.Bool("update", false, "rewrite testdata/flow/*.golden")

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// at is t0 plus m minutes.
func at(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

func atp(m int) *time.Time { t := at(m); return &t }

// party is a payer or payee whose external id is its id with "ext_".
func party(id string, amount int64, method string) payment.FlowParty {
	return payment.FlowParty{UserID: id, UserExternalID: "ext_" + id, Amount: amount, MethodID: method}
}

// payin and payout are created payments of generation 1; chain .gen(n) for
// others.
func payin(id, user string, amount int64, method string, s payment.Status, settled bool) payment.FlowPayment {
	return payment.FlowPayment{PaymentID: id, Batch: payment.BatchPayins, UserID: user, Generation: 1,
		Amount: amount, MethodID: method, Status: s, Settled: settled, CreatedAt: at(1)}
}

func payout(id, user string, amount int64, s payment.Status, settled bool) payment.FlowPayment {
	return payment.FlowPayment{PaymentID: id, Batch: payment.BatchPayouts, UserID: user, Generation: 1,
		Amount: amount, MethodID: "acct_" + user, Status: s, Settled: settled, CreatedAt: at(10)}
}

func gen(p payment.FlowPayment, g int) payment.FlowPayment {
	p.Generation = g
	p.CreatedAt = p.CreatedAt.Add(time.Duration(g) * time.Minute)
	return p
}

func returned(p payment.FlowPayment, m int) payment.FlowPayment {
	p.Status, p.ReturnedAt = payment.StatusReturned, atp(m)
	return p
}

// key names a plan payment for the tests: batch/user/generation.
func key(p payment.PlanPayment) string {
	return fmt.Sprintf("%s/%s/%d", p.Direction, p.UserID, p.Generation)
}

func keys(ps []payment.PlanPayment) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, key(p))
	}
	return out
}

// flowCase is a golden case: the input, and what the test checks besides the
// golden file (the flow's status and reason, and what ToCreate returns).
type flowCase struct {
	name   string
	in     payment.FlowInput
	status payment.FlowStatus
	reason string
	create []string
}

func usd(due, outside int64, payers, payees []payment.FlowParty, pays ...payment.FlowPayment) payment.FlowInput {
	return payment.FlowInput{InvoiceID: "inv_1", Currency: "USD", AmountDue: due, PaidOutside: outside,
		Payers: payers, Payees: payees, Payments: pays, Now: at(60)}
}

func flowCases() []flowCase {
	alice, bob, carol := party("alice", 6000, "pm_a"), party("bob", 3000, "pm_b"), party("carol", 1000, "pm_c")
	three := []payment.FlowParty{alice, bob, carol}
	shop, courier := party("shop", 8000, "acct_shop"), party("courier", 1500, "acct_courier")
	withCurrency := func(in payment.FlowInput, c string) payment.FlowInput { in.Currency = c; return in }
	canceled := func(in payment.FlowInput) payment.FlowInput { in.Canceled = true; return in }
	void := func(in payment.FlowInput) payment.FlowInput { in.InvoiceVoid = true; return in }
	return []flowCase{
		// One payer, one payee, through the flow's life.
		{"one_to_one_new", usd(10000, 0, []payment.FlowParty{party("alice", 10000, "pm_a")}, []payment.FlowParty{shop}),
			payment.FlowPending, "", []string{"payin/alice/1"}},
		{"one_to_one_payin_processing", usd(10000, 0, []payment.FlowParty{party("alice", 10000, "pm_a")}, []payment.FlowParty{shop},
			payin("pay_1", "alice", 10000, "pm_a", payment.StatusSent, false)),
			payment.FlowProcessing, "", []string{}},
		{"one_to_one_payins_settled", usd(10000, 0, []payment.FlowParty{party("alice", 10000, "pm_a")}, []payment.FlowParty{shop},
			payin("pay_1", "alice", 10000, "pm_a", payment.StatusSucceeded, true)),
			payment.FlowProcessing, "", []string{"payout/shop/1"}},
		{"one_to_one_settled", usd(10000, 0, []payment.FlowParty{party("alice", 10000, "pm_a")}, []payment.FlowParty{shop},
			payin("pay_1", "alice", 10000, "pm_a", payment.StatusSucceeded, true),
			payout("pay_2", "shop", 8000, payment.StatusSucceeded, true)),
			payment.FlowSettled, "", []string{}},

		// Several of each: two payins settled, one still on its way (a
		// bank payment SUCCEEDED whose money has not arrived).
		{"several_payins_in_flight", usd(10000, 0, three, []payment.FlowParty{shop, courier},
			payin("pay_1", "alice", 6000, "pm_a", payment.StatusSucceeded, true),
			payin("pay_2", "bob", 3000, "pm_b", payment.StatusSucceeded, false),
			payin("pay_3", "carol", 1000, "pm_c", payment.StatusSucceeded, true)),
			payment.FlowProcessing, "", []string{}},
		{"several_payouts_in_flight", usd(10000, 0, three, []payment.FlowParty{shop, courier},
			payin("pay_1", "alice", 6000, "pm_a", payment.StatusSucceeded, true),
			payin("pay_2", "bob", 3000, "pm_b", payment.StatusPartiallyRefunded, true),
			payin("pay_3", "carol", 1000, "pm_c", payment.StatusSucceeded, true),
			payout("pay_4", "shop", 8000, payment.StatusSucceeded, true),
			payout("pay_5", "courier", 1500, payment.StatusSent, false)),
			payment.FlowProcessing, "", []string{}},

		// The invoice had 2,500 paid before the flow: the payers' shares
		// (6:3:1) of the 7,500 left.
		{"partly_paid_outside", usd(10000, 2500, three, []payment.FlowParty{shop, courier}),
			payment.FlowPending, "", []string{"payin/alice/1", "payin/bob/1", "payin/carol/1"}},
		// Everything was paid outside: no payin, the payouts may start.
		{"paid_outside_in_full", usd(10000, 10000, three, []payment.FlowParty{shop}),
			payment.FlowPending, "", []string{"payout/shop/1"}},

		// Alice's card failed; she has a new card: generation 2.
		{"payin_failed_replaced", usd(10000, 0, three, []payment.FlowParty{shop},
			payin("pay_1", "alice", 6000, "pm_old", payment.StatusFailed, false),
			payin("pay_2", "bob", 3000, "pm_b", payment.StatusSucceeded, true),
			payin("pay_3", "carol", 1000, "pm_c", payment.StatusProcessing, false)),
			payment.FlowProcessing, "", []string{"payin/alice/2"}},
		// The replacement settled in turn: generation 1 stays in the history.
		{"payin_replacement_settled", usd(10000, 0, three, []payment.FlowParty{shop},
			payin("pay_1", "alice", 6000, "pm_old", payment.StatusFailed, false),
			gen(payin("pay_4", "alice", 6000, "pm_a", payment.StatusSucceeded, true), 2),
			payin("pay_2", "bob", 3000, "pm_b", payment.StatusSucceeded, true),
			payin("pay_3", "carol", 1000, "pm_c", payment.StatusSucceeded, true)),
			payment.FlowProcessing, "", []string{"payout/shop/1"}},
		// Alice's payin failed and her method is the same: blocked.
		{"payin_failed_blocked", usd(10000, 0, three, []payment.FlowParty{shop},
			payin("pay_1", "alice", 6000, "pm_a", payment.StatusFailed, false),
			payin("pay_2", "bob", 3000, "pm_b", payment.StatusSucceeded, true),
			payin("pay_3", "carol", 1000, "pm_c", payment.StatusCanceled, false)),
			payment.FlowFailed, payment.BlockedPayinFailed, []string{}},

		// Bob's bank payin came back before any payout.
		{"payin_returned_before_payout", usd(10000, 0, three, []payment.FlowParty{shop},
			payin("pay_1", "alice", 6000, "pm_a", payment.StatusSucceeded, true),
			returned(payin("pay_2", "bob", 3000, "pm_b", payment.StatusSucceeded, true), 30),
			payin("pay_3", "carol", 1000, "pm_c", payment.StatusSucceeded, true)),
			payment.FlowFailed, payment.BlockedPayinReturned, []string{}},
		// …and after the payouts went out: the platform is 3,000 short.
		{"payin_returned_after_payout", usd(10000, 0, three, []payment.FlowParty{shop, courier},
			payin("pay_1", "alice", 6000, "pm_a", payment.StatusSucceeded, true),
			returned(payin("pay_2", "bob", 3000, "pm_b", payment.StatusSucceeded, true), 30),
			payin("pay_3", "carol", 1000, "pm_c", payment.StatusSucceeded, true),
			payout("pay_4", "shop", 8000, payment.StatusSucceeded, true),
			payout("pay_5", "courier", 1500, payment.StatusSent, false)),
			payment.FlowFailed, payment.BlockedPayinReturnedAfterPayout, []string{}},

		// A payout failed: no automatic replacement.
		{"payout_failed", usd(10000, 0, []payment.FlowParty{alice, bob, carol}, []payment.FlowParty{shop, courier},
			payin("pay_1", "alice", 6000, "pm_a", payment.StatusSucceeded, true),
			payin("pay_2", "bob", 3000, "pm_b", payment.StatusSucceeded, true),
			payin("pay_3", "carol", 1000, "pm_c", payment.StatusSucceeded, true),
			payout("pay_4", "shop", 8000, payment.StatusSucceeded, true),
			payout("pay_5", "courier", 1500, payment.StatusFailed, false)),
			payment.FlowFailed, payment.BlockedPayoutFailed, []string{}},

		// Equal thirds in currencies of 0 and 3 decimals: 100 minor units
		// split 34/33/33, none lost or made up.
		{"jpy_thirds", withCurrency(usd(150, 50, []payment.FlowParty{party("a", 50, "m"), party("b", 50, "m"), party("c", 50, "m")},
			[]payment.FlowParty{party("shop", 120, "acct")}), "JPY"),
			payment.FlowPending, "", []string{"payin/a/1", "payin/b/1", "payin/c/1"}},
		{"bhd_thirds", withCurrency(usd(1500, 1400, []payment.FlowParty{party("a", 500, "m"), party("b", 500, "m"), party("c", 500, "m")},
			[]payment.FlowParty{party("shop", 1450, "acct")}), "BHD"),
			payment.FlowPending, "", []string{"payin/a/1", "payin/b/1", "payin/c/1"}},
		// 4:3:3 of 0.999 BHD: 399.6, 299.7, 299.7 → 399, 300, 300.
		{"bhd_largest_remainder", withCurrency(usd(1000, 1, []payment.FlowParty{party("a", 400, "m"), party("b", 300, "m"), party("c", 300, "m")},
			[]payment.FlowParty{party("shop", 900, "acct")}), "BHD"),
			payment.FlowPending, "", []string{"payin/a/1", "payin/b/1", "payin/c/1"}},

		// The API's largest amounts: 1e14 each, shares of 2e14+2.
		{"large_amounts", usd(3e14, 1e14-2,
			[]payment.FlowParty{party("a", 1e14, "m"), party("b", 1e14, "m"), party("c", 1e14, "m")},
			[]payment.FlowParty{party("p", 1e14, "acct"), party("q", 1e14, "acct"), party("r", 1e14-7, "acct")}),
			payment.FlowPending, "", []string{"payin/a/1", "payin/b/1", "payin/c/1"}},

		// Canceled mid-way: alice paid, bob's payin is in flight, carol's
		// was never made; the payouts will not start.
		{"canceled_midway", canceled(usd(10000, 0, three, []payment.FlowParty{shop},
			payin("pay_1", "alice", 6000, "pm_a", payment.StatusSucceeded, true),
			payin("pay_2", "bob", 3000, "pm_b", payment.StatusProcessing, false))),
			payment.FlowCanceled, "", []string{}},
		// Canceled after the payins settled: nothing in flight.
		{"canceled_after_payins", canceled(usd(10000, 0, three, []payment.FlowParty{shop},
			payin("pay_1", "alice", 6000, "pm_a", payment.StatusSucceeded, true),
			payin("pay_2", "bob", 3000, "pm_b", payment.StatusSucceeded, true),
			payin("pay_3", "carol", 1000, "pm_c", payment.StatusSucceeded, true))),
			payment.FlowCanceled, "", []string{}},
		// The invoice was voided while a payin was in flight.
		{"invoice_void", void(usd(10000, 0, three, []payment.FlowParty{shop},
			payin("pay_1", "alice", 6000, "pm_a", payment.StatusProcessing, false))),
			payment.FlowFailed, payment.BlockedInvoiceVoid, []string{}},

		// No payees: the platform keeps everything once the payins settle.
		{"zero_payees", usd(10000, 0, []payment.FlowParty{party("alice", 10000, "pm_a")}, nil,
			payin("pay_1", "alice", 10000, "pm_a", payment.StatusSucceeded, true)),
			payment.FlowSettled, "", []string{}},
		// A payer whose share is zero gets no payin.
		{"zero_share_skipped", usd(10000, 0, []payment.FlowParty{party("alice", 10000, "pm_a"), party("bob", 0, "pm_b")}, []payment.FlowParty{shop}),
			payment.FlowPending, "", []string{"payin/alice/1"}},
	}
}

// TestFlowPlanGolden compares each case's plan, as indented JSON, with
// testdata/flow/<case>.golden, and checks its status, reason, ToCreate and
// the money invariants.
func TestFlowPlanGolden(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, c := range flowCases() {
		if seen[c.name] {
			t.Fatalf("two cases named %s", c.name)
		}
		seen[c.name] = true
		plan := payment.PlanFlow(c.in)
		got, err := json.MarshalIndent(plan, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, '\n')
		path := filepath.Join("testdata", "flow", c.name+".golden")
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		} else if want, err := os.ReadFile(path); err != nil {
			t.Errorf("%s: %v (run go test ./payment -run Golden -update)", c.name, err)
		} else if !bytes.Equal(got, want) {
			t.Errorf("%s: the plan differs from %s (run with -update and review the diff):\n%s", c.name, path, got)
		}
		if plan.Status != c.status || plan.BlockedReason != c.reason {
			t.Errorf("%s: status %s %q, want %s %q", c.name, plan.Status, plan.BlockedReason, c.status, c.reason)
		}
		if k := keys(plan.ToCreate()); !slices.Equal(k, c.create) {
			t.Errorf("%s: ToCreate %v, want %v", c.name, k, c.create)
		}
		checkPlan(t, c.name, c.in, plan)
	}
}

// checkPlan checks what holds for any plan of consistent input: the
// latest payin of each payer (planned or created with its share) adds up to
// Due, unless no payer can pay; a settled flow has collected Due and paid
// out what is not the platform's; the planner is deterministic.
func checkPlan(t *testing.T, name string, in payment.FlowInput, plan payment.Plan) {
	t.Helper()
	if plan.BlockedReason != payment.BlockedNoPayers {
		latest := map[string]int64{}
		for _, p := range plan.Batches[0].Payments {
			latest[p.UserID] = p.Amount
		}
		var sum int64
		for _, a := range latest {
			sum += a
		}
		if sum != plan.Due {
			t.Errorf("%s: the payins add up to %d, Due is %d", name, sum, plan.Due)
		}
	}
	if plan.Status == payment.FlowSettled {
		if plan.Collected != plan.Due || plan.PaidOut+plan.PlatformRemainder != in.AmountDue ||
			plan.Due+in.PaidOutside != in.AmountDue {
			t.Errorf("%s: settled with Due %d, Collected %d, PaidOut %d, PlatformRemainder %d, AmountDue %d",
				name, plan.Due, plan.Collected, plan.PaidOut, plan.PlatformRemainder, in.AmountDue)
		}
	}
	if again := payment.PlanFlow(in); !reflect.DeepEqual(plan, again) || !plan.Equal(again) {
		t.Errorf("%s: two plans of the same input differ", name)
	}
}

// TestFlowPlanShares: the payins of the currency cases split exactly as
// largest remainder says.
func TestFlowPlanShares(t *testing.T) {
	t.Parallel()
	want := map[string][]int64{
		"partly_paid_outside":   {4500, 2250, 750},
		"jpy_thirds":            {34, 33, 33},
		"bhd_thirds":            {34, 33, 33},
		"bhd_largest_remainder": {399, 300, 300},
		"large_amounts":         {66666666666668, 66666666666667, 66666666666667},
		"paid_outside_in_full":  {},
	}
	for _, c := range flowCases() {
		w, ok := want[c.name]
		if !ok {
			continue
		}
		got := []int64{}
		for _, p := range payment.PlanFlow(c.in).Batches[0].Payments {
			got = append(got, p.Amount)
		}
		if !slices.Equal(got, w) {
			t.Errorf("%s: payins %v, want %v", c.name, got, w)
		}
	}
}

func TestFlowPaymentStatus(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		s       payment.Status
		settled bool
		want    string
	}{
		{payment.StatusPending, false, "pending"},
		{payment.StatusProcessing, false, "processing"},
		{payment.StatusRequiresAction, false, "processing"},
		{payment.StatusSent, false, "processing"},
		{payment.StatusRequiresReview, false, "processing"},
		{payment.StatusSucceeded, true, "settled"},
		{payment.StatusSucceeded, false, "processing"},
		{payment.StatusPartiallyRefunded, true, "settled"},
		{payment.StatusPartiallyRefunded, false, "processing"},
		{payment.StatusReturned, true, "returned"},
		{payment.StatusRefunded, true, "returned"},
		{payment.StatusFailed, false, "failed"},
		{payment.StatusCanceled, false, "canceled"},
		{"BOGUS", true, "processing"},
	} {
		if got := payment.FlowPaymentStatus(c.s, c.settled); got != c.want {
			t.Errorf("FlowPaymentStatus(%s, %v) = %s, want %s", c.s, c.settled, got, c.want)
		}
	}
	// Every canonical status is mapped on purpose (none falls through to
	// the default by accident): the table above names them all.
	for _, s := range payment.Statuses {
		_ = payment.FlowPaymentStatus(s, true)
	}
}

func TestFlowPlanEqual(t *testing.T) {
	t.Parallel()
	in := flowCases()[5].in // several_payouts_in_flight
	a := payment.PlanFlow(in)
	b := payment.PlanFlow(in)
	b.Version, b.GeneratedAt = 7, t0.Add(time.Hour)
	if !a.Equal(b) || !b.Equal(a) {
		t.Error("plans that differ only in Version and GeneratedAt are not Equal")
	}
	// A plan read back from JSON is Equal to the one written.
	js, _ := json.Marshal(a)
	var back payment.Plan
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if !a.Equal(back) {
		t.Error("a plan read back from JSON is not Equal")
	}
	// nil and empty slices are the same.
	c := payment.PlanFlow(in)
	c.Batches[0].DependsOn = nil
	if !a.Equal(c) {
		t.Error("nil DependsOn differs from empty")
	}
	// Any change of substance is seen.
	in.Payments[4].Status, in.Payments[4].Settled = payment.StatusSucceeded, true
	if a.Equal(payment.PlanFlow(in)) {
		t.Error("a payout that settled did not change the plan")
	}
	d := payment.PlanFlow(flowCases()[5].in)
	d.Shortfall = 1
	if a.Equal(d) {
		t.Error("a different Shortfall is Equal")
	}
}

// TestFlowToCreateOnce runs flows to their end, feeding the payments ToCreate
// asks for back in as created: no payment (batch, user, generation) is asked
// for twice, and a replacement is asked for only once the failed generation
// is in.
func TestFlowToCreateOnce(t *testing.T) {
	t.Parallel()
	in := usd(10000, 1000,
		[]payment.FlowParty{party("alice", 6000, "pm_a"), party("bob", 3000, "pm_b"), party("carol", 1000, "pm_c")},
		[]payment.FlowParty{party("shop", 9000, "acct_shop")})
	asked := map[string]int{}
	ids := 0
	createAll := func() []string {
		plan := payment.PlanFlow(in)
		var made []string
		for _, p := range plan.ToCreate() {
			asked[key(p)]++
			ids++
			batch := payment.BatchPayins
			if p.Direction == payment.DirectionPayout {
				batch = payment.BatchPayouts
			}
			method := ""
			for _, q := range append(slices.Clone(in.Payers), in.Payees...) {
				if q.UserID == p.UserID {
					method = q.MethodID
				}
			}
			in.Payments = append(in.Payments, payment.FlowPayment{PaymentID: fmt.Sprintf("pay_%d", ids), Batch: batch,
				UserID: p.UserID, Generation: p.Generation, Amount: p.Amount, MethodID: method,
				Status: payment.StatusPending, CreatedAt: at(ids)})
			made = append(made, key(p))
		}
		return made
	}
	if got := createAll(); !slices.Equal(got, []string{"payin/alice/1", "payin/bob/1", "payin/carol/1"}) {
		t.Fatalf("first round created %v", got)
	}
	if got := createAll(); len(got) != 0 {
		t.Fatalf("second round, nothing changed, created %v", got)
	}
	// alice's payin fails, and she has a new card.
	in.Payments[0].Status = payment.StatusFailed
	if got := createAll(); len(got) != 0 {
		t.Fatalf("created %v with alice's method unchanged", got)
	}
	in.Payers[0].MethodID = "pm_a2"
	if got := createAll(); !slices.Equal(got, []string{"payin/alice/2"}) {
		t.Fatalf("after alice's new card, created %v", got)
	}
	if got := createAll(); len(got) != 0 {
		t.Fatalf("created %v again", got)
	}
	// Every payin settles: the payout is made, once.
	for i := range in.Payments {
		if in.Payments[i].Status == payment.StatusPending {
			in.Payments[i].Status, in.Payments[i].Settled = payment.StatusSucceeded, true
		}
	}
	if got := createAll(); !slices.Equal(got, []string{"payout/shop/1"}) {
		t.Fatalf("after the payins settled, created %v", got)
	}
	if got := createAll(); len(got) != 0 {
		t.Fatalf("created %v again", got)
	}
	in.Payments[len(in.Payments)-1].Status, in.Payments[len(in.Payments)-1].Settled = payment.StatusSucceeded, true
	plan := payment.PlanFlow(in)
	if plan.Status != payment.FlowSettled || len(plan.ToCreate()) != 0 {
		t.Fatalf("flow %s with %d to create, want settled", plan.Status, len(plan.ToCreate()))
	}
	checkPlan(t, "to_create_once", in, plan)
	for k, n := range asked {
		if n != 1 {
			t.Errorf("%s asked for %d times", k, n)
		}
	}
}

// flowInputGen draws any input, consistent or not: 0–5 payers and 0–4 payees
// (amounts up to 1e14, zeros common, a user sometimes twice), payments in
// any status for payers, payees and strangers, canceled and void flows.
func flowInputGen() *rapid.Generator[payment.FlowInput] {
	return rapid.Custom(func(t *rapid.T) payment.FlowInput {
		amount := rapid.OneOf(rapid.Int64Range(0, 1e14), rapid.Int64Range(0, 100), rapid.SampledFrom([]int64{0, 1, 1e14}))
		users := []string{"u1", "u2", "u3", "u4", "u5", "u6"}
		methods := []string{"", "m1", "m2"}
		in := payment.FlowInput{
			InvoiceID: "inv", Currency: rapid.SampledFrom([]string{"USD", "JPY", "BHD"}).Draw(t, "currency"),
			Canceled: rapid.Bool().Draw(t, "canceled"), InvoiceVoid: rapid.Bool().Draw(t, "void"), Now: t0,
		}
		for i := range rapid.IntRange(0, 5).Draw(t, "payers") {
			in.Payers = append(in.Payers, payment.FlowParty{UserID: rapid.SampledFrom(users).Draw(t, fmt.Sprint("payer", i)),
				Amount: amount.Draw(t, "payerAmount"), MethodID: rapid.SampledFrom(methods).Draw(t, "method")})
		}
		for i := range rapid.IntRange(0, 4).Draw(t, "payees") {
			in.Payees = append(in.Payees, payment.FlowParty{UserID: rapid.SampledFrom(users).Draw(t, fmt.Sprint("payee", i)),
				Amount: rapid.Int64Range(1, 1e14).Draw(t, "payeeAmount"), MethodID: "acct"})
		}
		in.AmountDue = amount.Draw(t, "due")
		in.PaidOutside = rapid.Int64Range(0, max(in.AmountDue, 0)+1).Draw(t, "outside")
		for i := range rapid.IntRange(0, 8).Draw(t, "payments") {
			p := payment.FlowPayment{
				PaymentID:  fmt.Sprintf("pay_%d", i),
				Batch:      rapid.SampledFrom([]string{payment.BatchPayins, payment.BatchPayouts, "other"}).Draw(t, "batch"),
				UserID:     rapid.SampledFrom(append(users, "stranger")).Draw(t, "user"),
				Generation: rapid.IntRange(0, 3).Draw(t, "generation"),
				Amount:     amount.Draw(t, "amount"),
				MethodID:   rapid.SampledFrom(methods).Draw(t, "paymentMethod"),
				Status:     rapid.SampledFrom(append(slices.Clone(payment.Statuses), "BOGUS")).Draw(t, "status"),
				Settled:    rapid.Bool().Draw(t, "settled"),
				CreatedAt:  at(rapid.IntRange(0, 3).Draw(t, "created")),
			}
			if rapid.IntRange(0, 4).Draw(t, "returned") == 0 {
				p.ReturnedAt = atp(5)
			}
			in.Payments = append(in.Payments, p)
		}
		return in
	})
}

// TestFlowPlanProperties: for any input PlanFlow does not panic, gives the
// same plan twice and whatever the order of the payments; the payins it
// would make from scratch add up to Due exactly; ToCreate asks only for
// pending payments not yet created, and never for a payout before the
// payins batch settled, nor anything in a canceled, failed or settled flow.
func TestFlowPlanProperties(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		in := flowInputGen().Draw(t, "input")
		plan := payment.PlanFlow(in)
		if again := payment.PlanFlow(in); !reflect.DeepEqual(plan, again) {
			t.Fatal("two plans of the same input differ")
		}
		shuffled := in
		shuffled.Payments = slices.Clone(in.Payments)
		slices.Reverse(shuffled.Payments)
		if !plan.Equal(payment.PlanFlow(shuffled)) {
			t.Fatal("the order of the payments changed the plan")
		}
		if len(plan.Batches) != 2 || plan.Batches[0].ID != payment.BatchPayins || plan.Batches[1].ID != payment.BatchPayouts {
			t.Fatalf("batches %+v", plan.Batches)
		}
		if plan.Due < 0 {
			t.Fatalf("Due %d", plan.Due)
		}
		payinsSettled := plan.Batches[0].Status == payment.BatchSettled
		for _, p := range plan.ToCreate() {
			if p.PaymentID != "" || p.Status != payment.PlanPaymentPending || p.Amount <= 0 {
				t.Fatalf("ToCreate returned %+v", p)
			}
			if p.Direction == payment.DirectionPayout && !payinsSettled {
				t.Fatalf("ToCreate returned payout %+v while the payins are %s", p, plan.Batches[0].Status)
			}
		}
		if len(plan.ToCreate()) > 0 && (in.Canceled || plan.Status == payment.FlowFailed || plan.Status == payment.FlowSettled) {
			t.Fatalf("flow %s (canceled %v) has payments to create", plan.Status, in.Canceled)
		}
		// From scratch, the payins are the shares of Due.
		fresh := in
		fresh.Payments = nil
		fp := payment.PlanFlow(fresh)
		var sum int64
		for _, p := range fp.Batches[0].Payments {
			if p.Amount <= 0 {
				t.Fatalf("a payin of %d", p.Amount)
			}
			sum += p.Amount
		}
		noPayer := !slices.ContainsFunc(in.Payers, func(p payment.FlowParty) bool { return p.Amount > 0 })
		switch {
		case fp.BlockedReason == payment.BlockedNoPayers:
			if fp.Due <= 0 || !noPayer {
				t.Fatalf("no_payers with Due %d and payers %+v", fp.Due, in.Payers)
			}
		case sum != fp.Due:
			t.Fatalf("the payins add up to %d, Due is %d", sum, fp.Due)
		}
	})
}

// TestFlowPlanRuns drives random consistent flows to their end: each round
// the payments ToCreate asks for are created, then some payments move on
// (settle, fail, get returned) and some payers change methods. No (batch,
// user, generation) is ever asked for twice, and a flow that settles has
// collected Due and paid out all but the platform's remainder.
func TestFlowPlanRuns(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 4).Draw(t, "payers")
		in := payment.FlowInput{InvoiceID: "inv", Currency: "JPY", Now: t0}
		var total int64
		for i := range n {
			a := rapid.Int64Range(0, 1e14).Draw(t, "share")
			total += a
			in.Payers = append(in.Payers, payment.FlowParty{UserID: fmt.Sprint("payer", i), Amount: a, MethodID: "m0"})
		}
		in.AmountDue = total
		in.PaidOutside = rapid.Int64Range(0, total).Draw(t, "outside")
		var payees int64
		for i := range rapid.IntRange(0, 3).Draw(t, "payees") {
			if total-payees < 1 {
				break
			}
			a := rapid.Int64Range(1, total-payees).Draw(t, "payee")
			payees += a
			in.Payees = append(in.Payees, payment.FlowParty{UserID: fmt.Sprint("payee", i), Amount: a, MethodID: "acct"})
		}
		asked := map[string]bool{}
		for round := range 12 {
			plan := payment.PlanFlow(in)
			for _, p := range plan.ToCreate() {
				if asked[key(p)] {
					t.Fatalf("round %d: %s asked for again", round, key(p))
				}
				asked[key(p)] = true
				batch, method := payment.BatchPayins, ""
				for _, q := range in.Payers {
					if q.UserID == p.UserID {
						method = q.MethodID
					}
				}
				if p.Direction == payment.DirectionPayout {
					batch, method = payment.BatchPayouts, "acct"
				}
				in.Payments = append(in.Payments, payment.FlowPayment{PaymentID: fmt.Sprintf("pay_%d", len(in.Payments)),
					Batch: batch, UserID: p.UserID, Generation: p.Generation, Amount: p.Amount, MethodID: method,
					Status: payment.StatusPending, CreatedAt: at(round)})
			}
			if plan.Status == payment.FlowSettled {
				checkSettled(t, in, plan)
				return
			}
			for i := range in.Payments {
				p := &in.Payments[i]
				if p.Status != payment.StatusPending && p.Status != payment.StatusSucceeded {
					continue
				}
				switch rapid.IntRange(0, 9).Draw(t, "move") {
				case 0:
					if p.Status == payment.StatusPending {
						p.Status = payment.StatusFailed
					}
				case 1:
					if p.Settled && p.Batch == payment.BatchPayins {
						p.Status, p.ReturnedAt = payment.StatusReturned, atp(round)
					}
				case 2, 3, 4, 5, 6:
					p.Status, p.Settled = payment.StatusSucceeded, true
				}
			}
			for i := range in.Payers {
				if rapid.IntRange(0, 3).Draw(t, "newMethod") == 0 {
					in.Payers[i].MethodID = fmt.Sprint("m", round+1)
				}
			}
		}
	})
}

func checkSettled(t *rapid.T, in payment.FlowInput, plan payment.Plan) {
	if plan.Collected != plan.Due || plan.PaidOut+plan.PlatformRemainder != in.AmountDue || plan.Due+in.PaidOutside != in.AmountDue {
		t.Fatalf("settled with Due %d, Collected %d, PaidOut %d, PlatformRemainder %d, AmountDue %d, PaidOutside %d",
			plan.Due, plan.Collected, plan.PaidOut, plan.PlatformRemainder, in.AmountDue, in.PaidOutside)
	}
}

// TestFlowPlanExtremes: inputs far outside the API's range (amounts at the
// ends of int64, weights whose sum does not fit in 64 bits, more paid outside
// than due) neither panic nor wrap around: Due is never negative and the
// payins still add up to it.
func TestFlowPlanExtremes(t *testing.T) {
	t.Parallel()
	huge := []payment.FlowParty{party("a", math.MaxInt64, "m"), party("b", math.MaxInt64, "m"), party("c", math.MaxInt64, "m")}
	for _, c := range []struct {
		name              string
		due, outside      int64
		payers, payees    []payment.FlowParty
		wantDue, wantRest int64
		wantPayins        []int64
	}{
		{"weights past 2^64: split equally", 100, 0, huge, nil, 100, 100, []int64{34, 33, 33}},
		{"more paid outside than due", 100, 250, huge[:1], nil, 0, 100, []int64{}},
		{"MinInt64 due", math.MinInt64, math.MaxInt64, huge[:1], huge, 0, math.MinInt64, []int64{}},
		{"payees past MaxInt64", math.MaxInt64, math.MinInt64, huge[:2], huge, math.MaxInt64, math.MinInt64, []int64{math.MaxInt64/2 + 1, math.MaxInt64 / 2}},
		{"a payer twice", 90, 0, []payment.FlowParty{party("a", 1, "m"), party("b", 1, "m"), party("a", 1, "m")}, nil, 90, 90, []int64{60, 30}},
	} {
		in := usd(c.due, c.outside, c.payers, c.payees)
		plan := payment.PlanFlow(in)
		got := []int64{}
		for _, p := range plan.Batches[0].Payments {
			got = append(got, p.Amount)
		}
		if plan.Due != c.wantDue || plan.PlatformRemainder != c.wantRest || !slices.Equal(got, c.wantPayins) {
			t.Errorf("%s: Due %d, PlatformRemainder %d, payins %v; want %d, %d, %v",
				c.name, plan.Due, plan.PlatformRemainder, got, c.wantDue, c.wantRest, c.wantPayins)
		}
	}
}
