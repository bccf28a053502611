package intake_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
)

// Sync of a payout from its source system (docs/payouts.md, "Sync"): the
// accounts-payable system pushes a payment and pushes it again as it
// changes, keyed by external_payment_id.

// push posts a payout body and returns the response.
func push(h *testenv.Harness, body map[string]any) testenv.Response {
	b, _ := json.Marshal(body)
	return h.Do("POST", "/v1/payouts", h.KeyA, b, nil)
}

// syncBody is an AP system's payment: ACH, USD 100.00, to one beneficiary,
// with fields over it.
func syncBody(ext string, fields map[string]any) map[string]any {
	b := map[string]any{"external_payment_id": ext, "external_source": "NETSUITE", "method": "ACH",
		"total_amount": "100.00", "currency": "USD", "beneficiary_name": "Ada Lovelace",
		"beneficiary_account": "123456789", "beneficiary_routing": "021000021"}
	for k, v := range fields {
		b[k] = v
	}
	return b
}

// TestPayoutSync: an AP system's sequence. INITIATED (scheduled, so payd
// does not send it before the source reports it sent) → SENT → SETTLED,
// then a line appended (replace_lines false) and the lines replaced (true),
// then contradicting pushes, then RETURNED: each answer shows the state,
// each status change has one audit row and one event, and after every step
// the invoices hold exactly what the payout's live lines apply, never more
// than they are due.
func TestPayoutSync(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	inv1 := payoutInvoice(t, h, h.TenantA, "USD", 10000)
	inv2 := payoutInvoice(t, h, h.TenantA, "USD", 3500)
	ext := fmt.Sprintf("ap-%d", time.Now().UnixNano())
	// sent two hours ago, expected to settle in an hour (so payd does not
	// take it as settled before the source says so), settled an hour ago
	now := time.Now().UTC().Truncate(time.Second)
	sentAt, settledAt := now.Add(-2*time.Hour).Format(time.RFC3339), now.Add(-time.Hour).Format(time.RFC3339)
	expected := now.Add(time.Hour).Format(time.RFC3339)
	ms := func(s string) string { return strings.TrimSuffix(s, "Z") + ".000Z" }
	scheduled := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	inv := func(step string, r1, p1, r2, p2 int64) {
		t.Helper()
		gr1, gp1 := balances(t, h, h.TenantA, inv1)
		gr2, gp2 := balances(t, h, h.TenantA, inv2)
		if gr1 != r1 || gp1 != p1 || gr2 != r2 || gp2 != p2 {
			t.Errorf("%s: invoice 1 reserved %d paid %d (want %d %d), invoice 2 reserved %d paid %d (want %d %d)",
				step, gr1, gp1, r1, p1, gr2, gp2, r2, p2)
		}
		if gr1 > 10000 || gr2 > 3500 {
			t.Errorf("%s: an invoice is over-applied", step)
		}
	}
	expect := func(step string, r testenv.Response, code int, status string) map[string]any {
		t.Helper()
		po := jsonObj(t, r, code)
		if po["status"] != status {
			t.Fatalf("%s: status %v, want %s", step, po["status"], status)
		}
		return po
	}

	// 1. INITIATED, scheduled for later, one line on invoice 1
	first := syncBody(ext, map[string]any{"status": "INITIATED", "scheduled_at": scheduled,
		"lines": []any{line(inv1, "60.00")}})
	po := expect("initiated", push(h, first), http.StatusCreated, "INITIATED")
	id := po["id"].(string)
	inv("initiated", 6000, 0, 0, 0)

	// 2. SENT with its time: 200, the payout as it now is
	sent := syncBody(ext, map[string]any{"status": "SENT", "scheduled_at": scheduled, "sent_at": sentAt, "expected_settlement_at": expected,
		"ach_trace_number": "021000021000001", "lines": []any{line(inv1, "60.00")}})
	po = expect("sent", push(h, sent), http.StatusOK, "SENT")
	if po["sent_at"] != ms(sentAt) || po["ach_trace_number"] != "021000021000001" {
		t.Errorf("sent: sent_at %v trace %v", po["sent_at"], po["ach_trace_number"])
	}
	inv("sent", 6000, 0, 0, 0)

	// the same push again is a replay and changes nothing
	r := push(h, sent)
	expect("sent again", r, http.StatusOK, "SENT")
	if r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("an identical push is not marked replayed")
	}
	inv("sent again", 6000, 0, 0, 0)

	// 3. SETTLED: the line counts as paid
	settled := syncBody(ext, map[string]any{"status": "SETTLED", "scheduled_at": scheduled, "sent_at": sentAt,
		"settled_at": settledAt, "lines": []any{line(inv1, "60.00")}})
	po = expect("settled", push(h, settled), http.StatusOK, "SETTLED")
	if po["settled_at"] != ms(settledAt) {
		t.Errorf("settled_at %v", po["settled_at"])
	}
	inv("settled", 6000, 6000, 0, 0)

	// 4. a line appended (replace_lines false)
	appended := syncBody(ext, map[string]any{"status": "SETTLED", "sent_at": sentAt, "settled_at": settledAt,
		"lines": []any{line(inv2, "30.00")}, "replace_lines": false})
	po = expect("append", push(h, appended), http.StatusOK, "SETTLED")
	if ls := linesOf(t, po); len(ls) != 2 {
		t.Errorf("append: %d lines, want 2", len(ls))
	}
	inv("append", 6000, 6000, 3000, 3000)

	// appending past the invoice's due or the payout's amount is refused, changing nothing
	over := syncBody(ext, map[string]any{"status": "SETTLED", "lines": []any{line(inv2, "10.00")}, "replace_lines": false})
	checkEnvelope(t, push(h, over), http.StatusUnprocessableEntity, "invoice_over_applied")
	inv("over-application refused", 6000, 6000, 3000, 3000)
	past := syncBody(ext, map[string]any{"status": "SETTLED", "lines": []any{line(inv1, "15.00")}, "replace_lines": false})
	checkEnvelope(t, push(h, past), http.StatusUnprocessableEntity, "lines_exceed_total_amount")
	inv("lines past the amount refused", 6000, 6000, 3000, 3000)

	// 5. the lines replaced (replace_lines true)
	replaced := syncBody(ext, map[string]any{"status": "SETTLED", "lines": []any{line(inv1, "40.00"), line(inv2, "35.00")},
		"replace_lines": true})
	po = expect("replace", push(h, replaced), http.StatusOK, "SETTLED")
	if ls := linesOf(t, po); len(ls) != 2 {
		t.Errorf("replace: %d lines, want 2", len(ls))
	}
	inv("replace", 4000, 4000, 3500, 3500)

	// 6. contradictions: 422, one code per contradicting field, nothing changes
	for _, c := range []struct {
		name   string
		fields map[string]any
		field  string
		code   string
	}{
		{"another amount", map[string]any{"total_amount": "100.01"}, "total_amount", "payout_conflict_amount"},
		{"another method", map[string]any{"method": "WIRE"}, "method", "payout_conflict_method"},
		{"another beneficiary", map[string]any{"beneficiary_account": "987654321"}, "beneficiary_account", "payout_conflict_beneficiary"},
		{"status backwards", map[string]any{"status": "SENT"}, "status", "payout_conflict_status"},
		{"status sideways", map[string]any{"status": "FAILED"}, "status", "payout_conflict_status"},
		{"another sent_at", map[string]any{"status": "SETTLED", "sent_at": now.Add(-3 * time.Hour).Format(time.RFC3339)}, "sent_at", "payout_conflict_sent_at"},
	} {
		e := checkEnvelope(t, push(h, syncBody(ext, c.fields)), http.StatusUnprocessableEntity, c.code)
		if e.Fields[c.field] != c.code {
			t.Errorf("%s: fields %v, want %s: %s", c.name, e.Fields, c.field, c.code)
		}
		inv(c.name, 4000, 4000, 3500, 3500)
	}
	if got := getPayout(t, h, id); got["status"] != "SETTLED" || got["total_amount"] != json.Number("100.00") {
		t.Errorf("a refused push changed the payout: %v %v", got["status"], got["total_amount"])
	}

	// 7. RETURNED: the invoices get everything back
	returnedAt := now.Add(-time.Minute).Format(time.RFC3339)
	ret := syncBody(ext, map[string]any{"status": "RETURNED", "returned_at": returnedAt})
	po = expect("returned", push(h, ret), http.StatusOK, "RETURNED")
	if po["returned_at"] != ms(returnedAt) {
		t.Errorf("returned_at %v", po["returned_at"])
	}
	inv("returned", 0, 0, 0, 0)

	// each status change once, audited, with its event, in order
	tr := transitions(t, h, h.TenantA, id)
	for _, st := range []payment.Status{payment.StatusProcessing, payment.StatusSent, payment.StatusSucceeded, payment.StatusReturned} {
		if tr[st] != 1 {
			t.Errorf("%d audit rows into %s, want 1: %v", tr[st], st, tr)
		}
	}
	var types []string
	for _, ty := range typesOf(t, eventsOf(t, h, id)) {
		if ty != "payout.created" {
			types = append(types, ty)
		}
	}
	diff(t, "events", []string{"payout.processing", "payout.sent", "payout.settled", "payout.returned"}, types)
	if n := h.Sandbox.ChargesFor(id); n != 0 {
		t.Errorf("a payout its source made reached the sandbox %d times", n)
	}
}

// TestPayoutImportAnswersItsStatus: a payout made elsewhere answers 201
// with the status it was recorded with, not INITIATED (no worker runs: the
// walk is in the create's transaction).
func TestPayoutImportAnswersItsStatus(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	for _, st := range []string{"PROCESSING", "SENT", "SETTLED", "PAID", "RETURNED", "FAILED", "CANCELED"} {
		po := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"status": st}))
		if po["status"] != st {
			t.Errorf("imported %s answers %v", st, po["status"])
		}
		if (st == "SETTLED" || st == "PAID") && po["settled_at"] == nil {
			t.Errorf("%s without settled_at: settled_at not set to now", st)
		}
	}
}

// TestPayoutSyncConcurrent: the same push sent many times at once is
// applied once: one answer that made the change, the others replays; the
// appended line is on its invoice once; one audit row per status.
func TestPayoutSyncConcurrent(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	inv := payoutInvoice(t, h, h.TenantA, "USD", 100000)
	ext := fmt.Sprintf("ap-c-%d", time.Now().UnixNano())
	po := jsonObj(t, push(h, syncBody(ext, map[string]any{"status": "SENT", "lines": []any{line(inv, "10.00")}})), http.StatusCreated)
	id := po["id"].(string)
	next := syncBody(ext, map[string]any{"status": "SETTLED", "lines": []any{line(inv, "20.00")}, "replace_lines": false})
	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := push(h, next)
			mu.Lock()
			defer mu.Unlock()
			codes[fmt.Sprintf("%d replayed=%s", r.Status, r.Header.Get("Idempotent-Replayed"))]++
		}()
	}
	wg.Wait()
	if codes["200 replayed="] != 1 || codes["200 replayed=true"] != 11 {
		t.Errorf("answers %v, want one change and eleven replays", codes)
	}
	if r, p := balances(t, h, h.TenantA, inv); r != 3000 || p != 3000 {
		t.Errorf("invoice reserved %d paid %d, want 3000 3000 (the appended line once)", r, p)
	}
	if tr := transitions(t, h, h.TenantA, id); tr[payment.StatusSucceeded] != 1 {
		t.Errorf("audit rows %v, want one into SUCCEEDED", tr)
	}
	if got := getPayout(t, h, id); len(linesOf(t, got)) != 2 {
		t.Errorf("%d lines, want 2", len(linesOf(t, got)))
	}
}

// TestPayoutSyncLivePayout: a payout payd sends itself takes its status from
// the rail once an attempt has started; a push naming another status is
// refused, one naming the same (with new lines) is applied.
func TestPayoutSyncLivePayout(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	ext := fmt.Sprintf("ap-l-%d", time.Now().UnixNano())
	body := syncBody(ext, map[string]any{"beneficiary_account": "123456789"})
	po := jsonObj(t, push(h, body), http.StatusCreated)
	id := po["id"].(string)
	waitPayout(t, h, id, "SETTLED", 20*time.Second)
	e := checkEnvelope(t, push(h, syncBody(ext, map[string]any{"status": "RETURNED"})), http.StatusUnprocessableEntity, "payout_conflict_status")
	if !strings.Contains(e.Message, "rail") {
		t.Errorf("message %q does not say why", e.Message)
	}
	inv := payoutInvoice(t, h, h.TenantA, "USD", 10000)
	got := jsonObj(t, push(h, syncBody(ext, map[string]any{"status": "SETTLED", "lines": []any{line(inv, "10")}})), http.StatusOK)
	if got["status"] != "SETTLED" {
		t.Errorf("status %v", got["status"])
	}
	if r, p := balances(t, h, h.TenantA, inv); r != 1000 || p != 1000 {
		t.Errorf("invoice reserved %d paid %d, want 1000 1000", r, p)
	}
}

// TestCurrencyAnyCase: every surface that takes a currency accepts it in
// any case of ASCII letters and records it upper-cased (payments,
// invoices, payouts and their lines, sessions; flows take their invoice's).
func TestCurrencyAnyCase(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	invoice(t, h, h.KeyA, "inv_cur_case", "USD", "12.50")
	pay := jsonObj(t, h.Do("POST", "/v1/payments", h.KeyA, paymentBodyTo("inv_cur_case", `"12.50"`, "usd", "CARD", "pm_card_visa"), nil), http.StatusCreated)
	invo := jsonObj(t, h.Do("POST", "/v1/invoices", h.KeyA, []byte(`{"external_id":"cur-1","currency":"eUr","amount_due":"10"}`), nil), http.StatusCreated)
	po := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"currency": "Usd",
		"lines": []any{map[string]any{"invoice_token": payoutInvoice(t, h, h.TenantA, "USD", 1000), "applied_amount": "1", "applied_currency": "usd"}}}))
	ses := jsonObj(t, h.Do("POST", "/v1/payment-sessions", h.KeyA, sessionBody(map[string]any{"currency": "usd"}), nil), http.StatusCreated)
	for what, got := range map[string]any{"payment": pay["currency"], "invoice": invo["currency"], "payout": po["currency"],
		"payout line": linesOf(t, po)[0]["applied_currency"], "session": ses["currency"]} {
		if got != "USD" && !(what == "invoice" && got == "EUR") {
			t.Errorf("%s currency %v, want it upper-cased", what, got)
		}
	}
	for _, bad := range []string{"ｕｓｄ", "ınr", "us", "u5d"} {
		checkEnvelope(t, h.Do("POST", "/v1/payments", h.KeyA, paymentBodyTo("inv_cur_case", `"1"`, bad, "CARD", "pm_card_visa"), nil),
			http.StatusUnprocessableEntity, "currency_invalid")
	}
}

// seedExample is seed 002's PaymentCreateRequest example, verbatim.
const seedExample = `{"external_payment_id":"string","external_source":"UNKNOWN","status":"INITIATED","method":"ACH",
"total_amount":0,"currency":"string","scheduled_at":"2024-07-29T15:51:28.071Z","submitted_at":"2024-07-29T15:51:28.071Z",
"sent_at":"2024-07-29T15:51:28.071Z","expected_settlement_at":"2024-07-29T15:51:28.071Z","settled_at":"2024-07-29T15:51:28.071Z",
"returned_at":"2024-07-29T15:51:28.071Z","payment_reference":"string","bank_reference":"string","ach_trace_number":"string",
"sepa_end_to_end_id":"string","rtp_trace_id":"string","check_number":"string","check_mailed_at":"2024-07-29T15:51:28.071Z",
"check_cleared_at":"2024-07-29T15:51:28.071Z","check_stop_payment":true,"beneficiary_name":"string",
"beneficiary_bank_name":"string","beneficiary_bank_country":"string","beneficiary_swift_bic":"string",
"beneficiary_iban":"string","beneficiary_account":"string","beneficiary_routing":"string","payer_bank_name":"string",
"payer_bank_country":"string","payer_account":"string","payer_routing":"string","remittance_memo":"string",
"remittance_advice_url":"string","lines":[{"invoice_token":"3fa85f64-5717-4562-b3fc-2c963f66afa6","applied_amount":0,
"applied_currency":"string","fx_rate_line":0,"fx_at_line":"2024-07-29T15:51:28.071Z","discount_amount":0,
"discount_currency":"string","fee_amount_line":0,"fee_currency_line":"string","remittance_label":"Invoice",
"remittance_value":"string","notes":"string"}],"replace_lines":true}`

// TestPayoutSeedExample: the seed's own example is a schema placeholder
// that contradicts itself (INITIATED yet sent, settled and returned; one
// payment on four rails; a 2-letter country given as "string"), so it is
// refused field by field (README, "Importing a payout, field by field");
// the same example made consistent (every lifecycle time of a RETURNED ACH
// payout, ACH's own reference) is accepted.
func TestPayoutSeedExample(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	e := checkEnvelope(t, h.Do("POST", "/v1/payouts", h.KeyA, []byte(seedExample), nil), http.StatusUnprocessableEntity, "sent_at_not_allowed_for_status")
	for field, code := range map[string]string{
		"currency": "currency_invalid", "ach_trace_number": "ach_trace_number_invalid",
		"submitted_at": "submitted_at_not_allowed_for_status", "settled_at": "settled_at_not_allowed_for_status",
		"returned_at": "returned_at_not_allowed_for_status", "sepa_end_to_end_id": "sepa_end_to_end_id_not_allowed_for_method",
		"rtp_trace_id": "rtp_trace_id_not_allowed_for_method", "check_number": "check_number_not_allowed_for_method",
		"beneficiary_bank_country": "beneficiary_bank_country_invalid",
	} {
		if e.Fields[field] != code {
			t.Errorf("%s: %q, want %q (all fields: %v)", field, e.Fields[field], code, e.Fields)
		}
	}
	inv := payoutInvoice(t, h, h.TenantA, "USD", 10000)
	consistent := map[string]any{"external_payment_id": fmt.Sprintf("seed-%d", time.Now().UnixNano()),
		"external_source": "UNKNOWN", "status": "RETURNED", "method": "ACH", "total_amount": 12.5, "currency": "usd",
		"scheduled_at": "2024-07-29T15:51:28.071Z", "submitted_at": "2024-07-29T15:51:28.071Z",
		"sent_at": "2024-07-29T15:51:28.071Z", "expected_settlement_at": "2024-07-30T21:00:00Z",
		"settled_at": "2024-07-30T21:00:00Z", "returned_at": "2024-08-01T10:00:00Z", "payment_reference": "string",
		"bank_reference": "string", "ach_trace_number": "021000021000001", "beneficiary_name": "string",
		"beneficiary_bank_name": "string", "beneficiary_bank_country": "US", "beneficiary_account": "123456789",
		"beneficiary_routing": "021000021", "payer_bank_name": "string", "payer_bank_country": "US",
		"payer_account": "12345678", "payer_routing": "021000021", "remittance_memo": "string",
		"remittance_advice_url": "https://example.com/advice", "replace_lines": true,
		"lines": []any{map[string]any{"invoice_token": strings.TrimPrefix(inv, "inv_"), "applied_amount": 12.5,
			"applied_currency": "USD", "fx_rate_line": 1, "fx_at_line": "2024-07-29T15:51:28.071Z", "discount_amount": 0,
			"discount_currency": "USD", "fee_amount_line": 0, "fee_currency_line": "USD", "remittance_label": "Invoice",
			"remittance_value": "string", "notes": "string"}}}
	po := jsonObj(t, push(h, consistent), http.StatusCreated)
	if po["status"] != "RETURNED" || po["currency"] != "USD" {
		t.Errorf("status %v currency %v", po["status"], po["currency"])
	}
	if r, p := balances(t, h, h.TenantA, inv); r != 0 || p != 0 {
		t.Errorf("a returned payout leaves its invoice reserved %d paid %d", r, p)
	}
}
