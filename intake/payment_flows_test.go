package intake_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/store"
)

// Payment flows end to end on real Postgres and Redis: users with what a
// flow needs, an invoice with payers and payees, the flow through its
// payins and payouts, and the money checked at the end.

func flowHarness(t *testing.T, o testenv.Options) *testenv.Harness {
	if o.Processor.ReturnWindow == 0 {
		o.Processor.ReturnWindow = 5 * time.Second
	}
	return testenv.Start(t, o)
}

// payer creates a user paying with method/pmID.
func flowPayer(t *testing.T, h *testenv.Harness, ext, method, pmID string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"external_id": ext,
		"payin_method": map[string]any{"payment_method_type": method, "payment_method_id": pmID}})
	jsonObj(t, h.Do("POST", "/v1/users", h.KeyA, b, nil), 201)
}

// flowPayee creates a user paid by ACH to a sandbox account that settles.
func flowPayee(t *testing.T, h *testenv.Harness, ext string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"external_id": ext,
		"payout_account": map[string]any{"method": "ACH", "beneficiary_name": "Payee " + ext,
			"beneficiary_account": "123456789", "beneficiary_routing": "021000021", "beneficiary_bank_country": "US"}})
	jsonObj(t, h.Do("POST", "/v1/users", h.KeyA, b, nil), 201)
}

type party struct {
	ext    string
	amount string
}

func flowInvoice(t *testing.T, h *testenv.Harness, ext, currency, due string, payers, payees []party) string {
	t.Helper()
	var ps, qs []any
	for _, p := range payers {
		ps = append(ps, map[string]any{"external_id": p.ext, "amount": json.Number(p.amount)})
	}
	for _, p := range payees {
		qs = append(qs, map[string]any{"external_id": p.ext, "amount": json.Number(p.amount)})
	}
	b, _ := json.Marshal(map[string]any{"external_id": ext, "currency": currency, "amount_due": json.Number(due),
		"payers": ps, "payees": qs})
	return jsonObj(t, h.Do("POST", "/v1/invoices", h.KeyA, b, nil), 201)["id"].(string)
}

func createFlow(t *testing.T, h *testenv.Harness, ext, invoiceID string, status int) map[string]any {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"external_id": ext, "invoice": map[string]any{"id": invoiceID},
		"type": "single_invoice_settlement"})
	return jsonObj(t, h.Do("POST", "/v1/payment-flows", h.KeyA, b, nil), status)
}

// sweeping runs the sweeper every 200 ms until the test ends, as the
// scheduler does.
func sweeping(t *testing.T, h *testenv.Harness) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_, _ = h.Processor.Sweep(ctx)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
}

// waitFlow polls the flow until its status is one of want.
func waitFlow(t *testing.T, h *testenv.Harness, id string, within time.Duration, want ...string) map[string]any {
	t.Helper()
	var last map[string]any
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		last = jsonObj(t, h.Do("GET", "/v1/payment-flows/"+id, h.KeyA, nil, nil), 200)["data"].(map[string]any)
		for _, w := range want {
			if last["status"] == w {
				return last
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(last, "", "  ")
	t.Fatalf("flow %s not %v within %s:\n%s", id, want, within, b)
	return nil
}

func flowPlans(t *testing.T, h *testenv.Harness, id string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, p := range jsonObj(t, h.Do("GET", "/v1/payment-flows/"+id+"/plans", h.KeyA, nil, nil), 200)["data"].([]any) {
		out = append(out, p.(map[string]any))
	}
	return out
}

func batch(plan map[string]any, id string) map[string]any {
	for _, b := range plan["batches"].([]any) {
		if bm := b.(map[string]any); bm["batch_id"] == id {
			return bm
		}
	}
	return nil
}

func minorOf(t *testing.T, v any) int64 {
	t.Helper()
	n, err := strconv.ParseInt(v.(string), 10, 64)
	if err != nil {
		t.Fatalf("amount %v: %v", v, err)
	}
	return n
}

// batchSum adds the amounts of a batch's settled payments.
func batchSum(t *testing.T, b map[string]any, status string) int64 {
	var sum int64
	for _, p := range b["payments"].([]any) {
		if pm := p.(map[string]any); pm["status"] == status {
			sum += minorOf(t, pm["amount"])
		}
	}
	return sum
}

func TestFlowTwoPayersTwoPayeesSettles(t *testing.T) {
	t.Parallel()
	h := flowHarness(t, testenv.Options{})
	sweeping(t, h)
	flowPayer(t, h, "alice", "CARD", "pm_card_visa")
	flowPayer(t, h, "bob", "ACH", "ba_123456789")
	flowPayee(t, h, "carol")
	flowPayee(t, h, "dave")
	inv := flowInvoice(t, h, "inv-flow-1", "USD", "100.00",
		[]party{{"alice", "60.00"}, {"bob", "40.00"}}, []party{{"carol", "45.50"}, {"dave", "30.00"}})
	created := createFlow(t, h, "pf-1", inv, 201)["data"].(map[string]any)
	id := created["id"].(string)
	// version 1 already holds the payins, created with the flow
	payins := batch(created["payment_plan"].(map[string]any), "payins")
	for _, p := range payins["payments"].([]any) {
		if p.(map[string]any)["payment_id"] == "" {
			t.Fatalf("the create's plan has a payin not created: %v", p)
		}
	}
	if payouts := batch(created["payment_plan"].(map[string]any), "payouts"); payouts["status"] != "pending" ||
		!reflect.DeepEqual(payouts["depends_on"], []any{"payins"}) {
		t.Fatalf("payouts batch at create = %v", payouts)
	}
	final := waitFlow(t, h, id, 30*time.Second, "settled", "failed")
	if final["status"] != "settled" {
		t.Fatalf("flow ended %v", final)
	}
	plan := final["payment_plan"].(map[string]any)
	in, out := batch(plan, "payins"), batch(plan, "payouts")
	collected, paidOut := batchSum(t, in, "settled"), batchSum(t, out, "settled")
	amounts := plan["amounts"].(map[string]any)
	remainder := minorOf(t, amounts["platform_remainder"])
	if collected != 10000 || paidOut != 7550 || remainder != 2450 || paidOut+remainder != collected {
		t.Fatalf("money: collected %d, paid out %d, remainder %d; want 10000 = 7550 + 2450", collected, paidOut, remainder)
	}
	if minorOf(t, amounts["collected"]) != collected || minorOf(t, amounts["paid_out"]) != paidOut {
		t.Fatalf("plan amounts %v disagree with its payments", amounts)
	}
	invoice := jsonObj(t, h.Do("GET", "/v1/invoices/"+inv, h.KeyA, nil, nil), 200)
	if invoice["status"] != "PAID" {
		t.Fatalf("invoice %v, want PAID", invoice["status"])
	}
	// the versions: no payout exists in a version before every payin settled
	plans := flowPlans(t, h, id)
	if len(plans) < 3 {
		t.Fatalf("%d plan versions, want the payins' progress and the payouts'", len(plans))
	}
	payoutsSeen := false
	for i, p := range plans {
		if p["version"] != json.Number(strconv.Itoa(i+1)) {
			t.Fatalf("plan %d has version %v", i, p["version"])
		}
		for _, pm := range batch(p, "payouts")["payments"].([]any) {
			if pm.(map[string]any)["payment_id"] != "" {
				payoutsSeen = true
				if batch(p, "payins")["status"] != "settled" {
					t.Fatalf("version %d has a payout while payins are %v", i+1, batch(p, "payins")["status"])
				}
			}
		}
	}
	if !payoutsSeen {
		t.Fatal("no version shows the payouts")
	}
	// flow payments are ordinary payments and payouts
	for _, pm := range in["payments"].([]any) {
		pid := pm.(map[string]any)["payment_id"].(string)
		jsonObj(t, h.Do("GET", "/v1/payments/"+pid, h.KeyA, nil, nil), 200)
	}
	for _, pm := range out["payments"].([]any) {
		pid := pm.(map[string]any)["payment_id"].(string)
		jsonObj(t, h.Do("GET", "/v1/payouts/"+pid, h.KeyA, nil, nil), 200)
	}
	// I3 at the gateway: one charge per payin, one payout per payee, no more
	checkFlowLedger(t, h, id, 2, 2)
}

// checkFlowLedger counts the flow's payments in the database and their
// charges in the sandbox's ledger: exactly one each.
func checkFlowLedger(t *testing.T, h *testenv.Harness, flowID string, payins, payouts int) {
	t.Helper()
	var rows []struct {
		Batch string `db:"batch"`
		N     int    `db:"n"`
	}
	db := ownerDB(t, h)
	if err := db.Select(&rows, `SELECT batch, count(*) AS n FROM payment_flow_payments WHERE flow_id = $1 GROUP BY batch`, flowID); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range rows {
		got[r.Batch] = r.N
	}
	if got["payins"] != payins || got["payouts"] != payouts {
		t.Fatalf("flow payments %v, want %d payins and %d payouts", got, payins, payouts)
	}
	var ids []string
	if err := db.Select(&ids, `SELECT payment_id FROM payment_flow_payments WHERE flow_id = $1`, flowID); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if n := h.Sandbox.ChargesFor(id); n > 1 {
			t.Fatalf("payment %s charged %d times", id, n)
		}
	}
}

func TestFlowFlakyPayerSettles(t *testing.T) {
	t.Parallel()
	h := flowHarness(t, testenv.Options{})
	sweeping(t, h)
	flowPayer(t, h, "flaky", "CARD", "pm_card_flaky")
	flowPayee(t, h, "payee")
	inv := flowInvoice(t, h, "inv-flaky", "USD", "12.50", []party{{"flaky", "12.50"}}, []party{{"payee", "10.00"}})
	id := createFlow(t, h, "pf-flaky", inv, 201)["data"].(map[string]any)["id"].(string)
	final := waitFlow(t, h, id, 30*time.Second, "settled", "failed")
	if final["status"] != "settled" {
		t.Fatalf("flaky payer's flow ended %v", final["status"])
	}
	checkFlowLedger(t, h, id, 1, 1)
}

func TestFlowDeclinedPayerFailsExplained(t *testing.T) {
	t.Parallel()
	h := flowHarness(t, testenv.Options{})
	sweeping(t, h)
	flowPayer(t, h, "declined", "CARD", "pm_card_declined")
	flowPayer(t, h, "good", "CARD", "pm_card_visa")
	flowPayee(t, h, "payee")
	inv := flowInvoice(t, h, "inv-declined", "USD", "20.00", []party{{"declined", "10.00"}, {"good", "10.00"}},
		[]party{{"payee", "15.00"}})
	id := createFlow(t, h, "pf-declined", inv, 201)["data"].(map[string]any)["id"].(string)
	final := waitFlow(t, h, id, 30*time.Second, "failed", "settled")
	if final["status"] != "failed" || final["blocked_reason"] != payment.BlockedPayinFailed {
		t.Fatalf("flow = %v / %v, want failed / payin_failed", final["status"], final["blocked_reason"])
	}
	plan := final["payment_plan"].(map[string]any)
	in, out := batch(plan, "payins"), batch(plan, "payouts")
	if in["status"] != "blocked" || in["blocked_reason"] != payment.BlockedPayinFailed {
		t.Fatalf("payins batch = %v", in)
	}
	for _, pm := range out["payments"].([]any) {
		if pm.(map[string]any)["payment_id"] != "" {
			t.Fatalf("a payout went out although a payin failed: %v", pm)
		}
	}
	// the collected money stays accounted: the good payer's payin settled
	waitFor(t, 10*time.Second, "the good payin accounted", func() bool {
		f := jsonObj(t, h.Do("GET", "/v1/payment-flows/"+id, h.KeyA, nil, nil), 200)["data"].(map[string]any)
		return f["payment_plan"].(map[string]any)["amounts"].(map[string]any)["collected"] == "1000"
	})
	// a new payin method for the declined payer tries again: the flow settles
	b, _ := json.Marshal(map[string]any{"payin_method": map[string]any{"payment_method_type": "CARD", "payment_method_id": "pm_card_visa"}})
	jsonObj(t, h.Do("PATCH", "/v1/users/declined", h.KeyA, b, nil), 200)
	final = waitFlow(t, h, id, 30*time.Second, "settled")
	if n := len(batch(final["payment_plan"].(map[string]any), "payins")["payments"].([]any)); n != 3 {
		t.Fatalf("payins listed %d, want the failed one, its replacement and the good one", n)
	}
	checkFlowLedger(t, h, id, 3, 1)
}

func TestFlowPayinReturnedAfterPayouts(t *testing.T) {
	t.Parallel()
	// the return comes 1.5 s after settlement: the payouts have gone out by then
	h := flowHarness(t, testenv.Options{Sandbox: sandboxReturnAfter(1500 * time.Millisecond)})
	sweeping(t, h)
	flowPayer(t, h, "returns", "ACH", "ba_10001")
	flowPayee(t, h, "payee")
	inv := flowInvoice(t, h, "inv-return", "USD", "50.00", []party{{"returns", "50.00"}}, []party{{"payee", "45.00"}})
	id := createFlow(t, h, "pf-return", inv, 201)["data"].(map[string]any)["id"].(string)
	final := waitFlow(t, h, id, 40*time.Second, "failed")
	if final["blocked_reason"] != payment.BlockedPayinReturnedAfterPayout {
		t.Fatalf("blocked_reason %v, want payin_returned_after_payout", final["blocked_reason"])
	}
	amounts := final["payment_plan"].(map[string]any)["amounts"].(map[string]any)
	if amounts["shortfall"] != "5000" {
		t.Fatalf("shortfall %v, want 5000 (the returned payin)", amounts["shortfall"])
	}
	if p := batch(final["payment_plan"].(map[string]any), "payins")["payments"].([]any)[0].(map[string]any); p["status"] != "returned" {
		t.Fatalf("payin %v, want returned", p)
	}
}

// TestFlowConcurrentRecomputes: 20 recomputes of one flow at once, at each
// stage, create each plan payment exactly once.
func TestFlowConcurrentRecomputes(t *testing.T) {
	t.Parallel()
	h := flowHarness(t, testenv.Options{NoWorker: true})
	ctx := context.Background()
	for _, p := range []string{"p1", "p2", "p3"} {
		flowPayer(t, h, p, "CARD", "pm_card_visa")
	}
	for _, p := range []string{"q1", "q2"} {
		flowPayee(t, h, p)
	}
	inv := flowInvoice(t, h, "inv-conc", "JPY", "1000", []party{{"p1", "334"}, {"p2", "333"}, {"p3", "333"}},
		[]party{{"q1", "500"}, {"q2", "400"}})
	f, err := h.Store.CreateFlow(ctx, store.NewFlow{TenantID: h.TenantA, ExternalID: "pf-conc", InvoiceRef: inv,
		Type: payment.FlowTypeSingleInvoice, Fingerprint: []byte("x"), Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	recompute20 := func(seq int) {
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := h.Store.RecomputeFlow(ctx, f.ID, seq, "test"); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("recompute: %v", err)
		}
	}
	recompute20(1)
	checkFlowLedger(t, h, f.ID, 3, 0)
	// every payin succeeds (a card payment is settled when it succeeds)
	var ids []string
	db := ownerDB(t, h)
	if err := db.Select(&ids, `SELECT payment_id FROM payment_flow_payments WHERE flow_id = $1 AND batch = 'payins'`, f.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		seq, err := h.Store.Apply(ctx, store.Change{PaymentID: id, From: payment.StatusPending, To: payment.StatusProcessing,
			Seq: 1, Reason: "test", Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Store.Apply(ctx, store.Change{PaymentID: id, From: payment.StatusProcessing, To: payment.StatusSucceeded,
			Seq: seq, Reason: "test", Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	seq, err := h.Store.FlowStep(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if seq != 1+2*len(ids) {
		t.Fatalf("flow step %d after %d transitions, want %d (each made the recompute due)", seq, 2*len(ids), 1+2*len(ids))
	}
	// a stale delivery does nothing
	if res, err := h.Store.RecomputeFlow(ctx, f.ID, 1, "test"); err != nil || res.Outcome != store.RecomputeStale {
		t.Fatalf("stale recompute = %v, %v", res.Outcome, err)
	}
	recompute20(seq)
	checkFlowLedger(t, h, f.ID, 3, 2)
	// the JPY shares lost and created no yen
	var sum int64
	if err := db.Get(&sum, `SELECT sum(p.amount) FROM payments p JOIN payment_flow_payments fp ON fp.payment_id = p.id
		WHERE fp.flow_id = $1 AND fp.batch = 'payins'`, f.ID); err != nil || sum != 1000 {
		t.Fatalf("payins sum %d (%v), want 1000 JPY", sum, err)
	}
}

// TestFlowRedisFlushAllStillSettles: the queue is wiped in the middle of a
// flow; the sweeper rebuilds every step from Postgres and the flow settles.
// The wipe is FLUSHDB of the test's own Redis database: a FLUSHALL would
// wipe the other tests sharing the Redis instance (the fault harness's
// mixed run does real FLUSHALLs on a Redis of its own, flows included).
func TestFlowRedisFlushAllStillSettles(t *testing.T) {
	t.Parallel()
	h := flowHarness(t, testenv.Options{})
	flowPayer(t, h, "a", "ACH", "ba_123456789")
	flowPayer(t, h, "b", "CARD", "pm_card_visa")
	flowPayee(t, h, "c")
	inv := flowInvoice(t, h, "inv-flush", "USD", "30.00", []party{{"a", "15.00"}, {"b", "15.00"}}, []party{{"c", "25.00"}})
	id := createFlow(t, h, "pf-flush", inv, 201)["data"].(map[string]any)["id"].(string)
	time.Sleep(150 * time.Millisecond)
	if err := h.Redis.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	sweeping(t, h)
	final := waitFlow(t, h, id, 40*time.Second, "settled", "failed")
	if final["status"] != "settled" {
		t.Fatalf("flow after FLUSHALL ended %v", final["status"])
	}
	checkFlowLedger(t, h, id, 2, 1)
}

func TestFlowCreateRefusals(t *testing.T) {
	t.Parallel()
	h := flowHarness(t, testenv.Options{NoWorker: true})
	flowPayer(t, h, "ok-payer", "CARD", "pm_card_visa")
	jsonObj(t, h.Do("POST", "/v1/users", h.KeyA, []byte(`{"external_id":"bare"}`), nil), 201)
	flowPayee(t, h, "ok-payee")
	// missing details: one field per user, named by its external id
	inv := flowInvoice(t, h, "inv-missing", "USD", "10.00", []party{{"bare", "10.00"}}, []party{{"bare", "5.00"}})
	env := checkEnvelope(t, createFlowResp(h, "pf-missing", inv), 422, "payin_method_required")
	if env.Fields["users.bare.payin_method"] != "payin_method_required" || env.Fields["users.bare.payout_account"] != "payout_account_required" {
		t.Fatalf("fields %v", env.Fields)
	}
	// an unsupported type
	b := []byte(`{"external_id":"pf-type","invoice":{"id":"` + inv + `"},"type":"marketplace"}`)
	checkEnvelope(t, h.Do("POST", "/v1/payment-flows", h.KeyA, b, nil), 422, "type_unsupported")
	// an unknown invoice; another tenant's invoice is unknown too
	checkEnvelope(t, createFlowResp(h, "pf-none", "inv_00000000000000000000000000000000"), 422, "invoice_not_found")
	good := flowInvoice(t, h, "inv-good", "USD", "10.00", []party{{"ok-payer", "10.00"}}, []party{{"ok-payee", "9.00"}})
	bb, _ := json.Marshal(map[string]any{"external_id": "pf-other", "invoice": map[string]any{"id": good}, "type": "single_invoice_settlement"})
	checkEnvelope(t, h.Do("POST", "/v1/payment-flows", h.KeyB, bb, nil), 422, "invoice_not_found")
	// the same body again: the same flow, replayed; another body under the external id: 422
	first := createFlow(t, h, "pf-good", good, 201)["data"].(map[string]any)
	again := createFlowResp(h, "pf-good", good)
	if again.Status != 200 || again.Header.Get("Idempotent-Replayed") != "true" ||
		again.JSON(t)["data"].(map[string]any)["id"] != first["id"] {
		t.Fatalf("replay = %d %s %v", again.Status, again.Header.Get("Idempotent-Replayed"), string(again.Body))
	}
	byExt, _ := json.Marshal(map[string]any{"external_id": "pf-good", "invoice": map[string]any{"external_id": "inv-good"},
		"type": "single_invoice_settlement"})
	checkEnvelope(t, h.Do("POST", "/v1/payment-flows", h.KeyA, byExt, nil), 422, "idempotency_key_reused")
	// one flow per invoice at a time
	checkEnvelope(t, createFlowResp(h, "pf-second", good), 409, "invoice_has_active_flow")
	// another tenant cannot see it
	checkEnvelope(t, h.Do("GET", "/v1/payment-flows/"+first["id"].(string), h.KeyB, nil, nil), 404, "resource_not_found")
	// cancel: then a new flow may start; a second cancel is a 409
	canceled := jsonObj(t, h.Do("POST", "/v1/payment-flows/"+first["id"].(string)+"/cancel", h.KeyA, nil, nil), 200)
	if canceled["data"].(map[string]any)["status"] != "canceled" {
		t.Fatalf("cancel = %v", canceled)
	}
	checkEnvelope(t, h.Do("POST", "/v1/payment-flows/"+first["id"].(string)+"/cancel", h.KeyA, nil, nil), 409, "flow_not_cancelable")
	// lists: filters and cursor
	l := jsonObj(t, h.Do("GET", "/v1/payment-flows?status=canceled&invoice="+good, h.KeyA, nil, nil), 200)
	if d := l["data"].([]any); len(d) != 1 {
		t.Fatalf("list = %v", l)
	}
	checkEnvelope(t, h.Do("GET", "/v1/payment-flows?status=done", h.KeyA, nil, nil), 422, "status_invalid")
	// invoices: payers must sum to amount_due
	bad, _ := json.Marshal(map[string]any{"external_id": "inv-bad", "currency": "USD", "amount_due": json.Number("10.00"),
		"payers": []any{map[string]any{"external_id": "x", "amount": json.Number("4.00")}}})
	checkEnvelope(t, h.Do("POST", "/v1/invoices", h.KeyA, bad, nil), 422, "payers_sum_not_amount_due")
	// users: a payout account is checked by the payout's rules
	badAcct, _ := json.Marshal(map[string]any{"external_id": "badacct", "payout_account": map[string]any{"method": "ACH",
		"beneficiary_name": "X", "beneficiary_account": "123456789", "beneficiary_routing": "123456789"}})
	env = checkEnvelope(t, h.Do("POST", "/v1/users", h.KeyA, badAcct, nil), 422, "payout_account_beneficiary_routing_checksum_failed")
	if env.Fields["payout_account.beneficiary_routing"] != "payout_account_beneficiary_routing_checksum_failed" {
		t.Fatalf("bad routing not named: %v", env.Fields)
	}
}

func createFlowResp(h *testenv.Harness, ext, invoiceID string) testenv.Response {
	b, _ := json.Marshal(map[string]any{"external_id": ext, "invoice": map[string]any{"id": invoiceID},
		"type": "single_invoice_settlement"})
	return h.Do("POST", "/v1/payment-flows", h.KeyA, b, nil)
}

// seedFlowExample is seed 000's example response.
const seedFlowExample = `{
  "data": {
    "id": "pf_abc123",
    "created": "2024-01-01T00:00:00.000Z",
    "external_id": "pf_123",
    "invoice": {"id": "inv_abc123", "external_id": "inv_ext_123"},
    "modified": "2024-01-01T00:00:00.000Z",
    "payment_plan": {
      "batches": [
        {
          "batch_id": "payins",
          "depends_on": ["string"],
          "label": "Payins",
          "payments": [
            {
              "amount": "10000", "currency": "USD", "direction": "payin", "payment_id": "pmt_abc123", "status": "settled",
              "user": {"id": "user_abc123", "external_id": "user_ext_001"}
            }
          ],
          "status": "settled"
        }
      ],
      "generated_at": "2024-01-01T00:00:00.000Z",
      "invoice_id": "inv_abc123",
      "version": 1
    },
    "status": "settled",
    "type": "single_invoice_settlement"
  }
}`

// payd's additions to the seed's shape, each documented in docs/flows.md.
var flowAdditions = map[string]bool{
	"data.blocked_reason":                        true,
	"data.payment_plan.amounts":                  true,
	"data.payment_plan.batches[].blocked_reason": true,
}

// shape lists every key path of a JSON value with its type.
func shape(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		out[prefix] = "object"
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			if flowAdditions[p] {
				continue
			}
			shape(p, e, out)
		}
	case []any:
		out[prefix] = "array"
		for _, e := range x {
			shape(prefix+"[]", e, out)
		}
	case string:
		out[prefix] = "string"
	case float64, json.Number:
		out[prefix] = "number"
	case bool:
		out[prefix] = "bool"
	case nil:
		out[prefix] = "null"
	}
}

func TestFlowResponseMatchesSeed(t *testing.T) {
	t.Parallel()
	h := flowHarness(t, testenv.Options{NoWorker: true})
	flowPayer(t, h, "u1", "CARD", "pm_card_visa")
	flowPayee(t, h, "u2")
	inv := flowInvoice(t, h, "inv_ext_123", "USD", "100.00", []party{{"u1", "100.00"}}, []party{{"u2", "90.00"}})
	var seed map[string]any
	if err := json.Unmarshal([]byte(seedFlowExample), &seed); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	shape("", seed, want)
	created := createFlow(t, h, "pf_123", inv, 201)
	id := created["data"].(map[string]any)["id"].(string)
	got := jsonObj(t, h.Do("GET", "/v1/payment-flows/"+id, h.KeyA, nil, nil), 200)
	for name, resp := range map[string]map[string]any{"POST": created, "GET": got} {
		have := map[string]string{}
		shape("", resp, have)
		if !reflect.DeepEqual(have, want) {
			t.Errorf("%s shape differs from the seed's:\n%s", name, shapeDiff(want, have))
		}
	}
	if d := created["data"].(map[string]any); d["status"] != "processing" && d["status"] != "pending" {
		t.Errorf("status %v is not a lower-case flow status", d["status"])
	}
}

func shapeDiff(want, have map[string]string) string {
	var lines []string
	for k, v := range want {
		if have[k] != v {
			lines = append(lines, fmt.Sprintf("  %s: seed %s, payd %q", k, v, have[k]))
		}
	}
	for k, v := range have {
		if _, ok := want[k]; !ok {
			lines = append(lines, fmt.Sprintf("  %s: payd %s, not in the seed", k, v))
		}
	}
	sort.Strings(lines)
	b, _ := json.Marshal(lines)
	return string(b)
}

// ownerDB opens the test's database as its owner, for inspection.
func ownerDB(t *testing.T, h *testenv.Harness) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("postgres", h.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// sandboxReturnAfter is a sandbox whose bank returns come d after settlement.
func sandboxReturnAfter(d time.Duration) sandbox.Config {
	return sandbox.Config{SettleDelay: 200 * time.Millisecond, ReturnDelay: d}
}

// TestFlowTenantIsolation: tenant B's key on tenant A's flow, its plans,
// its cancel, its list and A's users: 404 or an empty page, and nothing of
// A's changes.
func TestFlowTenantIsolation(t *testing.T) {
	t.Parallel()
	h := flowHarness(t, testenv.Options{NoWorker: true})
	flowPayer(t, h, "iso-payer", "CARD", "pm_card_visa")
	flowPayee(t, h, "iso-payee")
	inv := flowInvoice(t, h, "inv-iso", "USD", "10.00", []party{{"iso-payer", "10.00"}}, []party{{"iso-payee", "9.00"}})
	id := createFlow(t, h, "pf-iso", inv, 201)["data"].(map[string]any)["id"].(string)
	for _, path := range []string{"/v1/payment-flows/" + id, "/v1/payment-flows/" + id + "/plans"} {
		checkEnvelope(t, h.Do("GET", path, h.KeyB, nil, nil), 404, "resource_not_found")
	}
	checkEnvelope(t, h.Do("POST", "/v1/payment-flows/"+id+"/cancel", h.KeyB, nil, nil), 404, "resource_not_found")
	if l := jsonObj(t, h.Do("GET", "/v1/payment-flows", h.KeyB, nil, nil), 200); len(l["data"].([]any)) != 0 {
		t.Fatalf("tenant B lists %v", l["data"])
	}
	checkEnvelope(t, h.Do("GET", "/v1/payment-flows?starting_after="+id, h.KeyB, nil, nil), 422, "starting_after_not_found")
	b := []byte(`{"payin_method":{"payment_method_type":"CARD","payment_method_id":"pm_card_declined"}}`)
	checkEnvelope(t, h.Do("PATCH", "/v1/users/iso-payer", h.KeyB, b, nil), 404, "resource_not_found")
	bb, _ := json.Marshal(map[string]any{"external_id": "pf-iso-b", "invoice": map[string]any{"external_id": "inv-iso"},
		"type": "single_invoice_settlement"})
	checkEnvelope(t, h.Do("POST", "/v1/payment-flows", h.KeyB, bb, nil), 422, "invoice_not_found")
	f := jsonObj(t, h.Do("GET", "/v1/payment-flows/"+id, h.KeyA, nil, nil), 200)["data"].(map[string]any)
	u := jsonObj(t, h.Do("GET", "/v1/users/iso-payer", h.KeyA, nil, nil), 200)
	if f["status"] == "canceled" || u["payin_method"].(map[string]any)["payment_method_id"] != "pm_card_visa" {
		t.Fatalf("tenant B changed A's flow or user: %v %v", f["status"], u["payin_method"])
	}
}
