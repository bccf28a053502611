package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/payment"
)

// fakeFlows is a payd that knows only what the flows phase calls: users,
// invoices and payment flows. Every flow is processing at its first read
// and settled from its second, its payments those of its invoice.
type fakeFlows struct {
	mu       sync.Mutex
	users    map[string]map[string]any // external id → body
	invoices map[string]map[string]any // id → body
	flows    map[string]string         // flow id → invoice id
	reads    map[string]int
	keys     map[string]bool
}

func (f *fakeFlows) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("x-api-key") != "sk_test" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodPost {
		f.keys[r.URL.Path+" "+r.Header.Get("Idempotency-Key")] = true
	}
	var body map[string]any
	if r.Method == http.MethodPost && json.NewDecoder(r.Body).Decode(&body) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/users":
		f.users[body["external_id"].(string)] = body
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"usr_%d"}`, len(f.users))
	case r.Method == http.MethodPost && r.URL.Path == "/v1/invoices":
		id := fmt.Sprintf("inv_%d", len(f.invoices))
		f.invoices[id] = body
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":%q,"status":"OPEN"}`, id)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/payment-flows":
		inv := body["invoice"].(map[string]any)["id"].(string)
		if body["type"] != payment.FlowTypeSingleInvoice || f.invoices[inv] == nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		id := fmt.Sprintf("pf_%d", len(f.flows))
		f.flows[id] = inv
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"data":{"id":%q,"status":"pending"}}`, id)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/invoices/"):
		fmt.Fprint(w, `{"status":"PAID"}`)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/payment-flows/"):
		id := strings.TrimPrefix(r.URL.Path, "/v1/payment-flows/")
		f.reads[id]++
		if f.reads[id] == 1 {
			fmt.Fprint(w, `{"data":{"status":"processing"}}`)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": f.settled(id)})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// settled is flow id as payd shows it once settled: a payin per payer and a
// payout per payee, of their invoice shares, in minor units.
func (f *fakeFlows) settled(id string) map[string]any {
	inv := f.invoices[f.flows[id]]
	var ins, outs []map[string]any
	var paid int64
	for dir, parties := range map[string]string{"payin": "payers", "payout": "payees"} {
		for j, p := range inv[parties].([]any) {
			a, _ := payment.ParseMajor(p.(map[string]any)["amount"].(string), "USD")
			pm := map[string]any{"payment_id": fmt.Sprintf("pay_%s_%s%d", id, dir, j), "direction": dir, "status": "settled",
				"amount": strconv.FormatInt(a, 10), "currency": "USD"}
			if dir == "payin" {
				ins = append(ins, pm)
			} else {
				outs = append(outs, pm)
				paid += a
			}
		}
	}
	return map[string]any{"status": "settled", "modified": time.Now().UTC().Format(time.RFC3339Nano),
		"payment_plan": map[string]any{"version": 3,
			"amounts": map[string]string{"due": "10000", "collected": "10000", "paid_out": strconv.FormatInt(paid, 10),
				"platform_remainder": strconv.FormatInt(10000-paid, 10), "shortfall": "0"},
			"batches": []map[string]any{{"batch_id": "payins", "payments": ins}, {"batch_id": "payouts", "payments": outs}}}}
}

// TestFlowsMode runs the -flows phase against a fake payd: every user,
// invoice and flow is created once under its own Idempotency-Key, with the
// payin methods and payout accounts the brief asks for, the invoice's
// shares summing right, and the figures and the check follow from the flows
// read back and the ledger.
func TestFlowsMode(t *testing.T) {
	t.Parallel()
	f := &fakeFlows{users: map[string]map[string]any{}, invoices: map[string]map[string]any{}, flows: map[string]string{},
		reads: map[string]int{}, keys: map[string]bool{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	o, err := ParseFlags([]string{"-addr", srv.URL, "-key", "sk_test", "-n", "10", "-flows", "7", "-flow-payees", "3",
		"-c", "3", "-poll", "1ms"}, &bytes.Buffer{})
	if err != nil || o.flowC != 3 || o.flowPayers != 2 || o.flowPayees != 3 {
		t.Fatalf("flags: %+v, %v", o, err)
	}
	tg := &target{base: srv.URL, key: "sk_test"}
	runs, setup, err := runFlows(context.Background(), o, tg, srv.Client(), "r1")
	if err != nil || setup <= 0 {
		t.Fatal(setup, err)
	}
	if len(f.users) != 7*2+3 || len(f.invoices) != 7 || len(f.flows) != 7 || len(f.keys) != 7*2+3+7+7 {
		t.Fatalf("%d users, %d invoices, %d flows, %d keys", len(f.users), len(f.invoices), len(f.flows), len(f.keys))
	}
	for ext, u := range f.users {
		b, _ := json.Marshal(u)
		switch {
		case strings.Contains(ext, "payer"):
			if !strings.Contains(string(b), `"payin_method":{"payment_method_id":"pm_card_visa","payment_method_type":"CARD"}`) {
				t.Errorf("payer %s", b)
			}
		case !strings.Contains(string(b), `"payout_account":{"beneficiary_account":"123456789","beneficiary_bank_country":"US","beneficiary_name":"Payee`) ||
			!strings.Contains(string(b), `"beneficiary_routing":"021000021","method":"ACH"}`):
			t.Errorf("payee %s", b)
		}
	}
	var ledger []sandbox.Charge
	for id := range f.flows {
		for _, b := range f.settled(id)["payment_plan"].(map[string]any)["batches"].([]map[string]any) {
			for _, p := range b["payments"].([]map[string]any) {
				a, _ := strconv.ParseInt(p["amount"].(string), 10, 64)
				ledger = append(ledger, sandbox.Charge{PaymentID: p["payment_id"].(string), Amount: a, Currency: "USD"})
			}
		}
	}
	rc := &recomputeFigures{Outcomes: map[string]float64{"changed": 21, "unchanged": 14}}
	rep := &Report{Pass: true}
	fillFlows(rep, o, runs, setup, rc, ledger, nil)
	fr := rep.Flows
	if fr.Settled != 7 || fr.Created != 7 || fr.Charges != 7*5 || !rep.Pass || fr.PerSecond <= 0 ||
		fr.Statuses["settled"] != 7 || rc.PerFlow["changed"] != 3 || rc.PerFlow["unchanged"] != 2 {
		t.Errorf("flows report %+v, pass %v, checks %+v", fr, rep.Pass, rep.Checks)
	}
	var out bytes.Buffer
	printReport(&out, rep)
	if !strings.Contains(out.String(), "  PASS  flows            7/7 flows settled") ||
		!strings.Contains(out.String(), "flows: 7 flows (2 payers by card, 3 payees by ACH each) at concurrency 3: 7 settled") {
		t.Errorf("report:\n%s", out.String())
	}

	// a charge missing, one doubled, an invoice not paid: the check fails
	ledger = append(ledger[1:], ledger[1])
	runs[2].final.Invoice = "PARTIALLY_PAID"
	rep = &Report{Pass: true}
	fillFlows(rep, o, runs, setup, nil, ledger, nil)
	if rep.Pass || len(rep.Flows.Missing) != 1 || len(rep.Flows.DoubleCharged) != 1 || len(rep.Flows.Wrong) != 1 {
		t.Errorf("pass %v, missing %v, double %v, wrong %v; want a failed check with one of each", rep.Pass,
			rep.Flows.Missing, rep.Flows.DoubleCharged, rep.Flows.Wrong)
	}
}

func TestFlowFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--spawn", "-flows", "-1"},
		{"--spawn", "-flows", "5", "-flow-c", "-2"},
		{"--spawn", "-flows", "5", "-flow-payees", "0"},
		{"--spawn", "-flows", "5", "-flow-payees", "101"},
		{"--spawn", "-flows", "5", "-flow-payers", "0"},
		{"--spawn", "-flows", "5", "-backlog", "5"},
	} {
		if _, err := ParseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("ParseFlags(%q): no error", args)
		}
	}
	o, err := ParseFlags([]string{"--spawn", "-flows", "5", "-c", "4", "-flow-payees", "100"}, &bytes.Buffer{})
	if err != nil || o.flows != 5 || o.flowC != 4 || o.flowPayees != 100 || o.flowPayers != 2 {
		t.Errorf("flows %d, flow-c %d, payees %d, payers %d, %v", o.flows, o.flowC, o.flowPayees, o.flowPayers, err)
	}
}

// TestSplit: the shares sum exactly to the total, the larger ones first.
func TestSplit(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		total int64
		n     int
	}{{10000, 2}, {8000, 3}, {8000, 100}, {10000, 7}} {
		parts := split(c.total, c.n)
		var sum int64
		for i, p := range parts {
			sum += p
			if i > 0 && p > parts[i-1] {
				t.Errorf("split(%d, %d) = %v: not largest first", c.total, c.n, parts)
			}
		}
		if sum != c.total || len(parts) != c.n {
			t.Errorf("split(%d, %d) = %v", c.total, c.n, parts)
		}
	}
}

// TestRecomputeMetrics reads the two flow:recompute series of a /metrics
// answer and takes their difference: outcomes, the mean and the quantiles
// interpolated within buckets.
func TestRecomputeMetrics(t *testing.T) {
	t.Parallel()
	page := func(changed, unchanged float64, buckets [4]float64, sum float64) string {
		return fmt.Sprintf(`# HELP payd_payment_flow_recomputes_total x
# TYPE payd_payment_flow_recomputes_total counter
payd_payment_flow_recomputes_total{outcome="changed"} %g
payd_payment_flow_recomputes_total{outcome="unchanged"} %g
payd_payment_flow_recompute_duration_seconds_bucket{le="0.001"} %g
payd_payment_flow_recompute_duration_seconds_bucket{le="0.01"} %g
payd_payment_flow_recompute_duration_seconds_bucket{le="0.1"} %g
payd_payment_flow_recompute_duration_seconds_bucket{le="+Inf"} %g
payd_payment_flow_recompute_duration_seconds_sum %g
payd_payment_flow_recompute_duration_seconds_count %g
payd_payment_flows_created_total 7
`, changed, unchanged, buckets[0], buckets[1], buckets[2], buckets[3], sum, buckets[3])
	}
	before, err := parseRecomputeMetrics(strings.NewReader(page(5, 1, [4]float64{1, 6, 6, 6}, 0.03)))
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseRecomputeMetrics(strings.NewReader(page(105, 101, [4]float64{1, 106, 206, 206}, 3.03)))
	if err != nil {
		t.Fatal(err)
	}
	rc := recomputeDelta(before, after, "test")
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	// 200 timed: 100 in (1 ms, 10 ms], 100 in (10 ms, 100 ms]
	if rc.Outcomes["changed"] != 100 || rc.Outcomes["unchanged"] != 100 || rc.Timed != 200 || !near(rc.MeanMs, 15) ||
		!near(rc.P50, 10) || !near(rc.P99, 10+90*0.98) {
		t.Errorf("%+v", rc)
	}
	if _, err := parseRecomputeMetrics(strings.NewReader("payd_payment_flows_created_total 7\n")); err == nil {
		t.Error("no histogram: no error")
	}
	// a rank in +Inf answers the largest finite bound
	if q := bucketQuantile(0.99, []float64{0.1, math.Inf(1)}, []float64{1, 10}); q != 0.1 {
		t.Errorf("+Inf quantile %g", q)
	}
	if rc.P99Capped {
		t.Error("p99 within the buckets marked capped")
	}
	slow, _ := parseRecomputeMetrics(strings.NewReader(page(5, 1, [4]float64{1, 6, 6, 106}, 100)))
	if rc := recomputeDelta(before, slow, "test"); !rc.P99Capped || rc.P99 != 100 {
		t.Errorf("p99 beyond the last bound: %+v", rc)
	}
}
