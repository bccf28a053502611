package bench

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/payment"
)

func TestBenchFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{},
		{"-addr", "http://x"},
		{"--spawn", "-addr", "http://x", "-key", "k"},
		{"--spawn", "-n", "0"},
		{"--spawn", "extra"},
		{"--spawn", "-invoices", "0"},
		{"--spawn", "-n", "5", "-invoices", "6"},
		{"--spawn", "-n", "5000", "-invoices", "1001"},
		{"--spawn", "-rate", "-1"},
		{"--spawn", "-rate", "10", "-duration", "0s"},
		{"--spawn", "-rate", "10", "-backlog", "5"},
		{"-addr", "http://x", "-key", "k", "-seed-payments", "10"},
		{"-addr", "http://x", "-key", "k", "-backlog", "10"},
		{"--spawn", "-baseline-tasks", "0"},
	} {
		if _, err := ParseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("ParseFlags(%q): no error", args)
		}
	}
	o, err := ParseFlags([]string{"-addr", "http://127.0.0.1:8080/", "-key", "sk_x"}, &bytes.Buffer{})
	if err != nil || o.addr != "http://127.0.0.1:8080" || o.n != 2000 || o.c != 16 || o.pm != "pm_card_visa" ||
		o.method != "CARD" || o.timeout != 120*time.Second || o.invoices != 1 || !o.baselines || o.rate != 0 {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	// open loop: -n follows from -rate × -duration; a backlog sets -n
	if o, err := ParseFlags([]string{"--spawn", "-rate", "25", "-duration", "2s"}, &bytes.Buffer{}); err != nil || o.n != 50 {
		t.Errorf("-rate 25 -duration 2s: n = %d, %v; want 50", o.n, err)
	}
	if o, err := ParseFlags([]string{"--spawn", "-backlog", "30"}, &bytes.Buffer{}); err != nil || o.n != 30 {
		t.Errorf("-backlog 30: n = %d, %v; want 30", o.n, err)
	}
}

func TestExpectedStatus(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		m    payment.Method
		pm   string
		want payment.Status
	}{
		{payment.MethodCard, "pm_card_visa", payment.StatusSucceeded},
		{payment.MethodCard, "pm_card_flaky", payment.StatusSucceeded},
		{payment.MethodCard, "pm_card_timeout_after_charge", payment.StatusSucceeded},
		{payment.MethodCard, "pm_card_declined", payment.StatusFailed},
		{payment.MethodCard, "pm_card_insufficient_funds", payment.StatusFailed},
		{payment.MethodACH, "ba_123456789", payment.StatusSucceeded},
		{payment.MethodACH, "10001", payment.StatusReturned},
		{payment.MethodACH, "ba_111111119", payment.StatusFailed},
		{payment.MethodOffline, "", payment.StatusSucceeded},
	} {
		if got, err := expectedStatus(c.m, c.pm); got != c.want || err != nil {
			t.Errorf("expectedStatus(%s, %s) = %s, %v; want %s", c.m, c.pm, got, err, c.want)
		}
	}
	if _, err := expectedStatus(payment.MethodCard, "pm_card_3ds"); err == nil {
		t.Error("pm_card_3ds: no error")
	}
}

func TestScenarioDone(t *testing.T) {
	t.Parallel()
	returned := scenario{Method: payment.MethodACH, Expect: payment.StatusReturned}
	succeeded := scenario{Method: payment.MethodCard, Expect: payment.StatusSucceeded}
	for _, c := range []struct {
		sc   scenario
		st   payment.Status
		want bool
	}{
		{succeeded, payment.StatusSucceeded, true},
		{succeeded, payment.StatusProcessing, false},
		{succeeded, payment.StatusFailed, true},
		{succeeded, payment.StatusRequiresReview, true},
		{returned, payment.StatusSent, false},
		{returned, payment.StatusSucceeded, false}, // settled; the return is still to come
		{returned, payment.StatusReturned, true},
		{returned, payment.StatusFailed, true},
	} {
		if got := c.sc.done(c.st); got != c.want {
			t.Errorf("expect %s, status %s: done = %v, want %v", c.sc.Expect, c.st, got, c.want)
		}
	}
}

func TestDistOf(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	want := dist{Count: 100, P50: 50, P95: 95, P99: 99, Max: 100}
	if diff := cmp.Diff(want, distOf(ds)); diff != "" {
		t.Errorf("distOf (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(dist{Count: 1, P50: 7, P95: 7, P99: 7, Max: 7}, distOf([]time.Duration{7 * time.Millisecond})); diff != "" {
		t.Errorf("distOf one (-want +got):\n%s", diff)
	}
	if got := distOf(nil); got != (dist{}) {
		t.Errorf("distOf(nil) = %+v", got)
	}
}

func TestCheckLedger(t *testing.T) {
	t.Parallel()
	sc := scenario{Method: payment.MethodCard, Expect: payment.StatusSucceeded}
	p := plan{classes: []scenario{sc}, currencies: []string{"USD"}, amounts: amountsSmall, invoices: 1}
	now := time.Now()
	usd := func(id string) submission { return submission{id: id, currency: "USD", amount: smallAmount} }
	subs := []submission{usd("pay_ok"), usd("pay_double"), usd("pay_missing"), usd("pay_failed_charged"),
		usd("pay_failed"), usd("pay_pending"), {failure: "422", currency: "USD", amount: smallAmount}}
	obs := map[string]observation{
		"pay_ok":             {payment.StatusSucceeded, now},
		"pay_double":         {payment.StatusSucceeded, now},
		"pay_missing":        {payment.StatusSucceeded, now},
		"pay_failed_charged": {payment.StatusFailed, now},
		"pay_failed":         {payment.StatusFailed, now},
		"pay_pending":        {payment.StatusProcessing, now},
	}
	charge := func(id string) sandbox.Charge {
		return sandbox.Charge{PaymentID: id, Amount: smallAmount, Currency: "USD"}
	}
	ledger := []sandbox.Charge{charge("pay_ok"), charge("pay_double"), charge("pay_double"),
		charge("pay_failed_charged"), charge("pay_pending"), charge("pay_someone_else")}
	rep := &Report{N: len(subs), Mix: []scenario{sc}}
	fillReport(rep, subs, 1, obs, p, ledger, nil, "test")
	lg := rep.Ledger
	if diff := cmp.Diff([]string{"pay_double"}, lg.DoubleCharged); diff != "" {
		t.Errorf("double charged (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"pay_missing"}, lg.Missing); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"pay_failed_charged"}, lg.Unexpected); diff != "" {
		t.Errorf("unexpected (-want +got):\n%s", diff)
	}
	if len(lg.WrongAmount) != 0 {
		t.Errorf("wrong amount = %v, want none", lg.WrongAmount)
	}
	if lg.Charges != 5 {
		t.Errorf("charges = %d, want 5 (the bench's payments only)", lg.Charges)
	}
	got := map[string]string{}
	for _, c := range rep.Checks {
		got[c.Name] = c.Result
		// a run in USD of small amounts reports as it did before -currencies
		if c.Name == "ledger" && strings.Contains(c.Detail, "another amount") {
			t.Errorf("ledger detail %q mentions amounts", c.Detail)
		}
	}
	want := map[string]string{"accepted": "FAIL", "no lost payment": "FAIL", "final status": "FAIL", "ledger": "FAIL"}
	if diff := cmp.Diff(want, got); diff != "" || rep.Pass {
		t.Errorf("checks (-want +got):\n%s\npass = %v", diff, rep.Pass)
	}
}

// TestCheckLedgerAmounts: a charge of another amount or currency than the
// payment was posted with fails the ledger check, and every currency's
// figures add up on their own.
func TestCheckLedgerAmounts(t *testing.T) {
	t.Parallel()
	sc := scenario{Name: "card", Method: payment.MethodCard, Expect: payment.StatusSucceeded}
	p := plan{classes: []scenario{sc}, currencies: []string{"JPY", "BHD"}, amounts: amountsMixed, invoices: 1}
	now := time.Now()
	subs := []submission{
		{id: "pay_jpy", currency: "JPY", amount: maxAmount},
		{id: "pay_bhd", currency: "BHD", amount: smallAmount},
		{id: "pay_bhd_short", currency: "BHD", amount: 99_999_999_999_999},
		{id: "pay_jpy_as_usd", currency: "JPY", amount: smallAmount},
	}
	obs := map[string]observation{}
	for _, s := range subs {
		obs[s.id] = observation{payment.StatusSucceeded, now}
	}
	ledger := []sandbox.Charge{
		{PaymentID: "pay_jpy", Amount: maxAmount, Currency: "JPY"},
		{PaymentID: "pay_bhd", Amount: smallAmount, Currency: "BHD"},
		{PaymentID: "pay_bhd_short", Amount: 99_999_999_999_990, Currency: "BHD"},
		{PaymentID: "pay_jpy_as_usd", Amount: smallAmount, Currency: "USD"},
	}
	rep := &Report{N: len(subs), Mix: p.classes, money: p.describe()}
	fillReport(rep, subs, 1, obs, p, ledger, nil, "test")
	if diff := cmp.Diff([]string{"pay_bhd_short", "pay_jpy_as_usd"}, rep.Ledger.WrongAmount); diff != "" {
		t.Errorf("wrong amount (-want +got):\n%s", diff)
	}
	if rep.Pass {
		t.Error("pass with wrong amounts")
	}
	want := []currencyReport{
		{Currency: "JPY", Accepted: 2, Final: 2, MinAmount: smallAmount, MaxAmount: maxAmount, AmountAccepted: maxAmount + smallAmount,
			Charges: 2, AmountCharged: maxAmount + smallAmount, WrongAmount: 1},
		{Currency: "BHD", Accepted: 2, Final: 2, MinAmount: smallAmount, MaxAmount: 99_999_999_999_999, AmountAccepted: 99_999_999_999_999 + smallAmount,
			Charges: 2, AmountCharged: 99_999_999_999_990 + smallAmount, WrongAmount: 1},
	}
	if diff := cmp.Diff(want, rep.Currencies, cmp.AllowUnexported(currencyReport{}),
		cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Latency" || p.Last().String() == ".TimeToFinal" }, cmp.Ignore())); diff != "" {
		t.Errorf("currencies (-want +got):\n%s", diff)
	}
	var out bytes.Buffer
	printReport(&out, rep)
	for _, line := range []string{
		"amounts JPY: 2 accepted of 1250 to 100000000000000, 100000000001250 in all; 0 wrong status; 2 charges of 100000000001250 in all, 1 of another amount or currency",
		"amounts BHD: 2 accepted of 1.250 to 99999999999.999, 100000000001.249 in all; 0 wrong status; 2 charges of 100000000001.240 in all, 1 of another amount or currency",
		"  FAIL  ledger           4 charges (test): 0 double-charged, 0 succeeded without a charge, 0 charged but not succeeded, 2 charged another amount or currency [pay_bhd_short, pay_jpy_as_usd]",
	} {
		if !strings.Contains(out.String(), line+"\n") {
			t.Errorf("report lacks %q:\n%s", line, out.String())
		}
	}
}

// readReport decodes a -json report.
func TestBenchMix(t *testing.T) {
	t.Parallel()
	cs, err := scenarios(Options{mix: "card=3,declined=1"})
	if err != nil || len(cs) != 2 || cs[0].Expect != payment.StatusSucceeded || cs[1].Expect != payment.StatusFailed {
		t.Fatalf("scenarios = %+v, %v", cs, err)
	}
	var got []int
	for i := range 8 {
		got = append(got, classOf(cs, i))
	}
	if diff := cmp.Diff([]int{0, 0, 0, 1, 0, 0, 0, 1}, got); diff != "" {
		t.Errorf("classOf (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"card", "card=0", "nope=1", "card=1,card=2", "card=x"} {
		if _, err := scenarios(Options{mix: bad}); err == nil {
			t.Errorf("scenarios(-mix %q): no error", bad)
		}
	}
}

func TestReadProc(t *testing.T) {
	t.Parallel()
	s, err := readProc(os.Getpid())
	if err != nil || s.PeakRSSKB <= 0 || s.RSSKB <= 0 || s.CPUSeconds < 0 {
		t.Errorf("readProc(self) = %+v, %v", s, err)
	}
}

func TestBuildSeries(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	acc := []timed{{at(100), 10 * time.Millisecond}, {at(900), 30 * time.Millisecond}, {at(2100), 20 * time.Millisecond},
		{time.Time{}, time.Second}} // an unset time is left out
	comp := []timed{{at(1500), 1500 * time.Millisecond}, {at(-5), time.Millisecond}} // before t0 counts in second 0
	want := []seriesPoint{
		{Second: 0, Accepted: 2, Completed: 1, IntakeP50: 10, IntakeP95: 30, IntakeP99: 30, FinalP50: 1, FinalP99: 1},
		{Second: 1, Completed: 1, FinalP50: 1500, FinalP99: 1500},
		{Second: 2, Accepted: 1, IntakeP50: 20, IntakeP95: 20, IntakeP99: 20},
	}
	if diff := cmp.Diff(want, buildSeries(t0, acc, comp)); diff != "" {
		t.Errorf("buildSeries (-want +got):\n%s", diff)
	}
	if got := buildSeries(time.Time{}, acc, comp); len(got) != 0 {
		t.Errorf("no start: %d points, want none", len(got))
	}
}

func TestCurrencyAndAmountFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--spawn", "-currencies", "usd"},
		{"--spawn", "-currencies", "USD,XYZ"},
		{"--spawn", "-currencies", "USD,USD"},
		{"--spawn", "-currencies", ""},
		{"--spawn", "-amounts", "huge"},
		{"--spawn", "-n", "5", "-currencies", "USD,JPY,BHD", "-invoices", "2"}, // JPY and BHD get one payment each
	} {
		if _, err := ParseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("ParseFlags(%q): no error", args)
		}
	}
	o, err := ParseFlags([]string{"--spawn", "-n", "6", "-currencies", "USD, JPY,BHD", "-amounts", "mixed", "-invoices", "2"}, &bytes.Buffer{})
	if err != nil || !slices.Equal(o.currencies, []string{"USD", "JPY", "BHD"}) || o.amounts != amountsMixed {
		t.Errorf("currencies %q, amounts %q, %v", o.currencies, o.amounts, err)
	}
	o, err = ParseFlags([]string{"--spawn"}, &bytes.Buffer{})
	if err != nil || !slices.Equal(o.currencies, []string{"USD"}) || o.amounts != amountsSmall {
		t.Errorf("defaults: currencies %q, amounts %q, %v", o.currencies, o.amounts, err)
	}
}

// TestPlan: a run without -currencies and -amounts deals as before them
// (class by index, invoice i mod -invoices, 12.50 USD each); with them,
// every currency gets its share of every class and of both amounts, and no
// invoice is due more than the API takes.
func TestPlan(t *testing.T) {
	t.Parallel()
	opts := func(args ...string) Options {
		t.Helper()
		o, err := ParseFlags(append([]string{"--spawn"}, args...), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	classes := func(o Options) []scenario {
		t.Helper()
		cs, err := scenarios(o)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}

	o := opts("-n", "10", "-invoices", "3", "-mix", "card=3,declined=1")
	p := newPlan(o, classes(o))
	if p.mixed() {
		t.Error("default plan is mixed")
	}
	for i := range o.n {
		want := deal{class: classOf(p.classes, i), currency: 0, amount: smallAmount, invoice: i % 3}
		if got := p.deal(i); got != want {
			t.Errorf("deal(%d) = %+v, want %+v", i, got, want)
		}
	}
	if diff := cmp.Diff([]int64{4 * smallAmount, 3 * smallAmount, 3 * smallAmount}, p.dues(o.n)); diff != "" {
		t.Errorf("dues (-want +got):\n%s", diff)
	}
	if got := p.invoiceExternalID("r", "USD", 2); got != "bench-r-2" {
		t.Errorf("invoice name %q", got)
	}

	o = opts("-n", "48", "-invoices", "2", "-mix", "card=3,declined=1", "-currencies", "USD,JPY,BHD", "-amounts", "mixed")
	p = newPlan(o, classes(o))
	// 16 payments per currency, 8 per invoice: a large one leaves room for 8 small ones
	if want := int64(maxAmount/8 - smallAmount); p.large != want {
		t.Errorf("large = %d, want %d", p.large, want)
	}
	type key struct {
		currency, class int
		large           bool
	}
	seen := map[key]int{}
	for i := range o.n {
		d := p.deal(i)
		seen[key{d.currency, d.class, d.amount == p.large}]++
		if d.invoice/p.invoices != d.currency {
			t.Errorf("deal(%d) = %+v: invoice of another currency", i, d)
		}
	}
	for c := range 3 {
		for k := range 2 {
			for _, large := range []bool{false, true} {
				if seen[key{c, k, large}] == 0 {
					t.Errorf("no payment of currency %d, class %d, large %v", c, k, large)
				}
			}
		}
	}
	for j, due := range p.dues(o.n) {
		if due <= 0 || due > maxAmount {
			t.Errorf("invoice %d due %d", j, due)
		}
	}
	if got := p.invoiceExternalID("r", "JPY", 1); got != "bench-r-JPY-1" {
		t.Errorf("invoice name %q", got)
	}

	// one payment per invoice: each pays the API's maximum
	o = opts("-n", "4", "-invoices", "2", "-currencies", "JPY,BHD", "-amounts", "large")
	p = newPlan(o, classes(o))
	if diff := cmp.Diff([]int64{maxAmount, maxAmount, maxAmount, maxAmount}, p.dues(o.n)); diff != "" {
		t.Errorf("dues (-want +got):\n%s", diff)
	}
}

func TestChildEnv(t *testing.T) {
	t.Parallel()
	env := childEnv([]string{"PATH=/bin", "PAYD_ADDR=:1", "PAYD_RATE_LIMIT=5", "PAYD_ADDR=:2"},
		map[string]string{"PAYD_ADDR": "127.0.0.1:9", "PAYD_RATE_LIMIT": "", "PAYD_X": "y"})
	if diff := cmp.Diff([]string{"PATH=/bin", "PAYD_ADDR=127.0.0.1:9", "PAYD_X=y"}, env); diff != "" {
		t.Errorf("childEnv (-want +got):\n%s", diff)
	}
	if got := lookupEnv([]string{"A=1", "B=2", "A=3"}, "A"); got != "3" {
		t.Errorf("lookupEnv = %q, want the last, 3", got)
	}
	if got := lookupEnv([]string{"A=1"}, "C"); got != "" {
		t.Errorf("lookupEnv unset = %q", got)
	}
}
