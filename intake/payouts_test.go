package intake_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// Seed 002: payouts over bank rails, end to end on real Postgres and Redis
// through the same jobs as every payment, with the sandbox as the bank.

var payoutSeq atomic.Int64

// omit removes a member from payoutBody's base.
type omit struct{}

// payoutBody is a valid live ACH payout of USD 100.00 to the sandbox
// account that settles, with fields replaced (nil: JSON null; omit{}:
// absent).
func payoutBody(fields map[string]any) []byte {
	b := map[string]any{
		"external_payment_id": fmt.Sprintf("ext-%d-%d", time.Now().UnixNano(), payoutSeq.Add(1)),
		"method":              "ACH", "total_amount": "100.00", "currency": "USD",
		"beneficiary_name": "Ada Lovelace", "beneficiary_account": sandbox.BankAccountSettles,
		"beneficiary_routing": "021000021",
	}
	for k, v := range fields {
		if _, ok := v.(omit); ok {
			delete(b, k)
			continue
		}
		b[k] = v
	}
	out, _ := json.Marshal(b)
	return out
}

// payoutInvoice creates an invoice of a tenant through the store and
// returns its id.
func payoutInvoice(t *testing.T, h *testenv.Harness, tenant, currency string, amountDue int64) string {
	t.Helper()
	inv, err := h.Store.CreateInvoice(context.Background(), store.NewInvoice{TenantID: tenant,
		ExternalID: fmt.Sprintf("po-inv-%d", payoutSeq.Add(1)), Currency: currency, AmountDue: amountDue})
	if err != nil {
		t.Fatalf("create invoice: %v", err)
	}
	return inv.ID
}

// balances reads an invoice's reserved and paid amounts.
func balances(t *testing.T, h *testenv.Harness, tenant, id string) (reserved, paid int64) {
	t.Helper()
	inv, err := h.Store.GetInvoice(context.Background(), tenant, id)
	if err != nil {
		t.Fatalf("load invoice %s: %v", id, err)
	}
	return inv.AmountReserved, inv.AmountPaid
}

func line(invoice, amount string) map[string]any {
	return map[string]any{"invoice_token": invoice, "applied_amount": amount}
}

// createPayout posts a payout and returns its object, failing unless 201.
func createPayout(t *testing.T, h *testenv.Harness, key string, body []byte) map[string]any {
	t.Helper()
	return jsonObj(t, h.Do("POST", "/v1/payouts", key, body, nil), http.StatusCreated)
}

func getPayout(t *testing.T, h *testenv.Harness, id string) map[string]any {
	t.Helper()
	return jsonObj(t, h.Do("GET", "/v1/payouts/"+id, h.KeyA, nil, nil), http.StatusOK)
}

// waitPayout polls a payout of tenant A until it shows status (seed 002)
// and, when settled, until nothing more is scheduled for it.
func waitPayout(t *testing.T, h *testenv.Harness, id, status string, within time.Duration) map[string]any {
	t.Helper()
	var last map[string]any
	waitFor(t, within, "payout "+id+" "+status, func() bool {
		last = getPayout(t, h, id)
		if last["status"] != status {
			return false
		}
		p, err := h.Store.GetPayment(context.Background(), "", id)
		return err == nil && (p.NextStep == payment.StepNone || status == "SENT" || status == "INITIATED")
	})
	return last
}

// at parses a response time; nil for null.
func at(t *testing.T, v any) *time.Time {
	t.Helper()
	if v == nil {
		return nil
	}
	s, ok := v.(string)
	if !ok {
		t.Fatalf("time %v is not a string", v)
	}
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return &tm
}

// transitions counts a payout's audit rows per status entered.
func transitions(t *testing.T, h *testenv.Harness, tenant, id string) map[payment.Status]int {
	t.Helper()
	evs, err := h.Store.Events(context.Background(), tenant, id)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	out := map[payment.Status]int{}
	for _, e := range evs {
		out[e.To]++
	}
	return out
}

func linesOf(t *testing.T, po map[string]any) []map[string]any {
	t.Helper()
	raw, ok := po["lines"].([]any)
	if !ok {
		t.Fatalf("lines = %v", po["lines"])
	}
	out := make([]map[string]any, len(raw))
	for i, l := range raw {
		out[i] = l.(map[string]any)
	}
	return out
}

// TestPayoutEachRailSettles: a payout on every bank rail goes INITIATED →
// PROCESSING → SENT → SETTLED through the gateway, with sent_at,
// expected_settlement_at and settled_at set once and in order, one audit row
// per transition, and its line paid on the invoice.
func TestPayoutEachRailSettles(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	rails := []struct {
		method string
		fields map[string]any
	}{
		{"ACH", map[string]any{"ach_trace_number": "021000021234567", "remittance_memo": "INV 1"}},
		{"WIRE", map[string]any{"bank_reference": "20261118MMQFMP0100001"}},
		{"SEPA", map[string]any{"currency": "EUR", "beneficiary_iban": "DE89 3704 0044 0532 0130 00",
			"beneficiary_swift_bic": "COBADEFFXXX", "beneficiary_bank_country": "DE", "beneficiary_account": omit{},
			"beneficiary_routing": omit{}, "sepa_end_to_end_id": "E2E-2026/11-0001"}},
		{"SWIFT", map[string]any{"beneficiary_swift_bic": "CHASUS33", "beneficiary_bank_country": "US",
			"beneficiary_routing": omit{}, "payer_bank_country": "GB", "payer_routing": "200000", "payer_account": "55779911"}},
		{"RTP", map[string]any{"rtp_trace_id": "RTP20261118000001"}},
		{"CHECK", map[string]any{"check_number": "100245", "beneficiary_routing": omit{}}},
	}
	for _, rail := range rails {
		t.Run(rail.method, func(t *testing.T) {
			t.Parallel()
			cur := "USD"
			if c, ok := rail.fields["currency"].(string); ok {
				cur = c
			}
			inv := payoutInvoice(t, h, h.TenantA, cur, 50000)
			fields := map[string]any{"method": rail.method, "lines": []any{line(inv, "100.00")}}
			for k, v := range rail.fields {
				fields[k] = v
			}
			po := createPayout(t, h, h.KeyA, payoutBody(fields))
			id := po["id"].(string)
			if !strings.HasPrefix(id, "pay_") || po["status"] != "INITIATED" || po["object"] != "payout" {
				t.Fatalf("created %s status %v object %v", id, po["status"], po["object"])
			}
			if po["total_amount"] != json.Number("100.00") || po["currency"] != cur || po["method"] != rail.method {
				t.Errorf("echo: %v %v %v", po["total_amount"], po["currency"], po["method"])
			}
			if r, p := balances(t, h, h.TenantA, inv); r != 10000 || p != 0 {
				t.Errorf("on create: reserved %d paid %d, want 10000 0", r, p)
			}
			settled := waitPayout(t, h, id, "SETTLED", 20*time.Second)
			sent, exp, set := at(t, settled["sent_at"]), at(t, settled["expected_settlement_at"]), at(t, settled["settled_at"])
			if sent == nil || exp == nil || set == nil {
				t.Fatalf("sent_at %v expected_settlement_at %v settled_at %v: all must be set", sent, exp, set)
			}
			if exp.Before(*sent) || set.Before(*sent) {
				t.Errorf("out of order: sent %v expected %v settled %v", sent, exp, set)
			}
			if at(t, settled["submitted_at"]) == nil || settled["bank_reference"] == nil {
				t.Errorf("submitted_at %v bank_reference %v: payd's own values must fill them", settled["submitted_at"], settled["bank_reference"])
			}
			if rail.method == "CHECK" && (settled["check_mailed_at"] != settled["sent_at"] || settled["check_cleared_at"] != settled["settled_at"]) {
				t.Errorf("check mailed %v cleared %v, want sent_at and settled_at", settled["check_mailed_at"], settled["check_cleared_at"])
			}
			for k, v := range rail.fields {
				if _, skip := v.(omit); skip || k == "beneficiary_iban" || k == "currency" {
					continue
				}
				if settled[k] != v {
					t.Errorf("%s = %v, want %v as given", k, settled[k], v)
				}
			}
			if rail.method == "SEPA" && settled["beneficiary_iban"] != "DE89370400440532013000" {
				t.Errorf("iban %v, want the compact form", settled["beneficiary_iban"])
			}
			// each transition once, each with its audit row
			tr := transitions(t, h, h.TenantA, id)
			for _, st := range []payment.Status{payment.StatusPending, payment.StatusProcessing, payment.StatusSent, payment.StatusSucceeded} {
				if tr[st] != 1 {
					t.Errorf("%d audit rows into %s, want 1: %v", tr[st], st, tr)
				}
			}
			if r, p := balances(t, h, h.TenantA, inv); r != 10000 || p != 10000 {
				t.Errorf("settled: reserved %d paid %d, want 10000 10000", r, p)
			}
			if ls := linesOf(t, settled); len(ls) != 1 || ls[0]["status"] != "applied" {
				t.Errorf("lines %v, want one applied", ls)
			}
			// the times do not move afterwards (set once)
			again := getPayout(t, h, id)
			for _, k := range []string{"sent_at", "expected_settlement_at", "settled_at", "submitted_at"} {
				if again[k] != settled[k] {
					t.Errorf("%s moved from %v to %v", k, settled[k], again[k])
				}
			}
			if h.Sandbox.ChargesFor(id) != 1 {
				t.Errorf("sandbox holds %d charges for %s, want 1", h.Sandbox.ChargesFor(id), id)
			}
		})
	}
}

// TestPayoutReturnedR01: the sandbox's 10001 settles and is then returned
// R01; the payout shows the code, its reason and that it may be presented
// again, and the invoice gets its balance back.
func TestPayoutReturnedR01(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	inv := payoutInvoice(t, h, h.TenantA, "USD", 10000)
	po := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"beneficiary_account": sandbox.BankAccountReturnedR01,
		"total_amount": 40, "lines": []any{line(inv, "40")}}))
	id := po["id"].(string)
	ret := waitPayout(t, h, id, "RETURNED", 20*time.Second)
	if ret["return_code"] != "R01" || ret["return_reason"] != "insufficient funds" || ret["return_retry_eligible"] != true {
		t.Errorf("return %v %v %v, want R01, insufficient funds, eligible", ret["return_code"], ret["return_reason"], ret["return_retry_eligible"])
	}
	sent, set, back := at(t, ret["sent_at"]), at(t, ret["settled_at"]), at(t, ret["returned_at"])
	if sent == nil || set == nil || back == nil || set.Before(*sent) || back.Before(*set) {
		t.Errorf("times sent %v settled %v returned %v: all set, in order", sent, set, back)
	}
	if r, p := balances(t, h, h.TenantA, inv); r != 0 || p != 0 {
		t.Errorf("after the return: reserved %d paid %d, want 0 0", r, p)
	}
	if ls := linesOf(t, ret); len(ls) != 1 || ls[0]["status"] != "released" {
		t.Errorf("lines %v, want one released", ls)
	}
	if tr := transitions(t, h, h.TenantA, id); tr[payment.StatusReturned] != 1 || tr[payment.StatusSucceeded] != 1 {
		t.Errorf("audit rows %v, want one into SUCCEEDED and one into RETURNED", tr)
	}
	// R01 does not block the account: the next payout to it is accepted
	createPayout(t, h, h.KeyA, payoutBody(map[string]any{"beneficiary_account": sandbox.BankAccountReturnedR01}))
}

// TestPayoutReturnBlocksAccount: R02 and R03 returns are not retry-eligible
// and mark the account unusable: the next payout to it is refused, while
// the same account number at another bank, or for another tenant, is not.
func TestPayoutReturnBlocksAccount(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	for _, code := range []string{"R02", "R03"} {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			acct := "100" + code[1:]
			po := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"beneficiary_account": acct}))
			ret := waitPayout(t, h, po["id"].(string), "RETURNED", 20*time.Second)
			if ret["return_code"] != code || ret["return_retry_eligible"] != false || ret["return_reason"] != payment.ReturnReason(code) {
				t.Fatalf("return %v %v %v", ret["return_code"], ret["return_retry_eligible"], ret["return_reason"])
			}
			r := h.Do("POST", "/v1/payouts", h.KeyA, payoutBody(map[string]any{"beneficiary_account": acct}), nil)
			e := checkEnvelope(t, r, http.StatusUnprocessableEntity, "beneficiary_account_blocked")
			if e.Fields["beneficiary_account"] != "beneficiary_account_blocked" {
				t.Errorf("fields %v", e.Fields)
			}
			// another bank's account with the same number, and another tenant
			createPayout(t, h, h.KeyA, payoutBody(map[string]any{"beneficiary_account": acct, "beneficiary_routing": "011000015"}))
			createPayout(t, h, h.KeyB, payoutBody(map[string]any{"beneficiary_account": acct}))
		})
	}
}

// TestPayoutLines: replace_lines on create and through PUT lines: true
// replaces every application (its amounts go back to their invoices), false
// appends; the payout's lines never exceed its amount, no invoice is ever
// over-applied, and line details are recorded.
func TestPayoutLines(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	inv1 := payoutInvoice(t, h, h.TenantA, "USD", 100000)
	inv2 := payoutInvoice(t, h, h.TenantA, "USD", 100000)
	small := payoutInvoice(t, h, h.TenantA, "USD", 1000)
	eur := payoutInvoice(t, h, h.TenantA, "EUR", 100000)
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	first := line(invoiceTokenOf(inv1), "30.00")
	first["remittance_value"], first["notes"], first["fee_amount_line"], first["discount_amount"] = "INV-1", "first", "0.25", 1
	po := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"scheduled_at": later, "replace_lines": false,
		"lines": []any{first}}))
	id := po["id"].(string)
	ls := linesOf(t, po)
	if len(ls) != 1 || ls[0]["invoice_id"] != inv1 || ls[0]["invoice_token"] != invoiceTokenOf(inv1) ||
		ls[0]["applied_amount"] != json.Number("30.00") || ls[0]["applied_currency"] != "USD" || ls[0]["status"] != "reserved" ||
		ls[0]["remittance_label"] != "Invoice" || ls[0]["remittance_value"] != "INV-1" || ls[0]["notes"] != "first" ||
		ls[0]["fee_amount_line"] != json.Number("0.25") || ls[0]["discount_amount"] != json.Number("1.00") {
		t.Fatalf("lines on create %v", ls)
	}
	put := func(body map[string]any) testenv.Response {
		b, _ := json.Marshal(body)
		return h.Do("PUT", "/v1/payouts/"+id+"/lines", h.KeyA, b, nil)
	}
	// append
	po = jsonObj(t, put(map[string]any{"replace_lines": false, "lines": []any{line(inv2, "20")}}), http.StatusOK)
	if n := len(linesOf(t, po)); n != 2 {
		t.Fatalf("%d lines after append, want 2", n)
	}
	if r, _ := balances(t, h, h.TenantA, inv1); r != 3000 {
		t.Errorf("inv1 reserved %d, want 3000", r)
	}
	if r, _ := balances(t, h, h.TenantA, inv2); r != 2000 {
		t.Errorf("inv2 reserved %d, want 2000", r)
	}
	// appending past the payout's amount is refused, nothing changes
	checkEnvelope(t, put(map[string]any{"replace_lines": false, "lines": []any{line(inv1, "60")}}),
		http.StatusUnprocessableEntity, "lines_exceed_total_amount")
	// replace (the default)
	po = jsonObj(t, put(map[string]any{"lines": []any{line(inv2, "50")}}), http.StatusOK)
	if ls := linesOf(t, po); len(ls) != 1 || ls[0]["invoice_id"] != inv2 || ls[0]["applied_amount"] != json.Number("50.00") {
		t.Fatalf("lines after replace %v", ls)
	}
	if r, _ := balances(t, h, h.TenantA, inv1); r != 0 {
		t.Errorf("inv1 reserved %d after replace, want 0", r)
	}
	if r, _ := balances(t, h, h.TenantA, inv2); r != 5000 {
		t.Errorf("inv2 reserved %d after replace, want 5000", r)
	}
	// an invoice is never over-applied; the line is named
	e := checkEnvelope(t, put(map[string]any{"lines": []any{line(inv2, "5"), line(small, "20")}}),
		http.StatusUnprocessableEntity, "invoice_over_applied")
	if e.Fields["lines[1].applied_amount"] != "invoice_over_applied" {
		t.Errorf("fields %v", e.Fields)
	}
	// another currency needs its rate; the payout's share is converted
	checkEnvelope(t, put(map[string]any{"lines": []any{map[string]any{"invoice_token": eur, "applied_amount": "10",
		"applied_currency": "EUR"}}}), http.StatusUnprocessableEntity, "fx_rate_line_required")
	checkEnvelope(t, put(map[string]any{"lines": []any{line(eur, "10")}}), http.StatusUnprocessableEntity, "applied_currency_mismatch")
	po = jsonObj(t, put(map[string]any{"lines": []any{map[string]any{"invoice_token": eur, "applied_amount": "92",
		"applied_currency": "eur", "fx_rate_line": "0.92", "fx_at_line": "2026-11-18T10:00:00Z"}}}), http.StatusOK)
	if ls := linesOf(t, po); len(ls) != 1 || ls[0]["fx_rate_line"] != json.Number("0.92") || ls[0]["applied_currency"] != "EUR" ||
		ls[0]["fx_at_line"] != "2026-11-18T10:00:00.000Z" {
		t.Fatalf("fx line %v", ls)
	}
	var payAmount int64
	if err := h.Store.DB().QueryRow(`SELECT payment_amount FROM payment_applications WHERE payment_id = $1`, id).Scan(&payAmount); err != nil || payAmount != 10000 {
		t.Errorf("EUR 92 at 0.92 EUR per USD is %d cents of the payout (%v), want 10000", payAmount, err)
	}
	// replace with nothing clears every application
	po = jsonObj(t, put(map[string]any{"lines": []any{}}), http.StatusOK)
	if n := len(linesOf(t, po)); n != 0 {
		t.Errorf("%d lines after clearing", n)
	}
	for _, inv := range []string{inv1, inv2, small, eur} {
		if r, p := balances(t, h, h.TenantA, inv); r != 0 || p != 0 {
			t.Errorf("%s reserved %d paid %d after clearing", inv, r, p)
		}
	}
	checkEnvelope(t, put(map[string]any{"replace_lines": true}), http.StatusUnprocessableEntity, "lines_required")
	// on create, lines over the amount are refused before anything is stored
	checkEnvelope(t, h.Do("POST", "/v1/payouts", h.KeyA, payoutBody(map[string]any{"total_amount": "10",
		"lines": []any{line(inv1, "6"), line(inv2, "5")}}), nil), http.StatusUnprocessableEntity, "lines_exceed_total_amount")
}

// invoiceTokenOf is the UUID form of an invoice id (seed 002's token).
func invoiceTokenOf(id string) string {
	h := strings.TrimPrefix(id, "inv_")
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// TestPayoutConcurrentLinesNeverOverApply: 50 payouts at once against one
// invoice: the database lets exactly as many through as the invoice can
// take, refuses the rest with invoice_over_applied, and never reserves more
// than is due (I3).
func TestPayoutConcurrentLinesNeverOverApply(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	inv := payoutInvoice(t, h, h.TenantA, "USD", 100000) // 1000.00
	var accepted, refused atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := h.Do("POST", "/v1/payouts", h.KeyA, payoutBody(map[string]any{"total_amount": "30.00",
				"lines": []any{line(inv, "30.00")}}), nil)
			switch r.Status {
			case http.StatusCreated:
				accepted.Add(1)
			case http.StatusUnprocessableEntity:
				if !strings.Contains(string(r.Body), "invoice_over_applied") {
					t.Errorf("422 without invoice_over_applied: %s", r.Body)
				}
				refused.Add(1)
			default:
				t.Errorf("status %d: %s", r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	reserved, _ := balances(t, h, h.TenantA, inv)
	if accepted.Load() != 33 || refused.Load() != 17 || reserved != 33*3000 || reserved > 100000 {
		t.Fatalf("accepted %d refused %d reserved %d of 100000, want 33, 17, 99000", accepted.Load(), refused.Load(), reserved)
	}
	if n := countPayments(t, h, h.TenantA); n != 33 {
		t.Errorf("%d payout rows, want 33: a refused payout leaves nothing behind", n)
	}
}

// TestPayoutValidation: every rule refuses its bad case with its own error
// code on its field, in the 422 envelope, and stores nothing.
func TestPayoutValidation(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	inv := payoutInvoice(t, h, h.TenantA, "USD", 100000)
	other := payoutInvoice(t, h, h.TenantB, "USD", 100000)
	future := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	past := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339)
	earlier := time.Now().Add(-3 * time.Hour).UTC().Format(time.RFC3339)
	sepa := map[string]any{"method": "SEPA", "currency": "EUR", "beneficiary_iban": "DE89370400440532013000",
		"beneficiary_account": omit{}, "beneficiary_routing": omit{}}
	with := func(base map[string]any, more map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range more {
			out[k] = v
		}
		return out
	}
	cases := []struct {
		name   string
		fields map[string]any
		field  string
		code   string
	}{
		{"no external id", map[string]any{"external_payment_id": omit{}}, "external_payment_id", "external_payment_id_required"},
		{"long external id", map[string]any{"external_payment_id": strings.Repeat("x", 256)}, "external_payment_id", "external_payment_id_too_long"},
		{"control chars in source", map[string]any{"external_source": "ERP\u0007"}, "external_source", "external_source_invalid_characters"},
		{"status", map[string]any{"status": "DONE"}, "status", "status_invalid"},
		{"status lower-case", map[string]any{"status": "paid"}, "status", "status_invalid"},
		{"no method", map[string]any{"method": omit{}}, "method", "method_required"},
		{"method", map[string]any{"method": "CASH"}, "method", "method_invalid"},
		{"no amount", map[string]any{"total_amount": omit{}}, "total_amount", "total_amount_required"},
		{"zero amount", map[string]any{"total_amount": 0}, "total_amount", "total_amount_must_be_positive"},
		{"negative amount", map[string]any{"total_amount": "-1"}, "total_amount", "total_amount_must_be_positive"},
		{"too many decimals", map[string]any{"total_amount": "1.005"}, "total_amount", "total_amount_too_many_decimals"},
		{"exponent", map[string]any{"total_amount": json.RawMessage(`1e2`)}, "total_amount", "total_amount_exponent_not_allowed"},
		{"amount bool", map[string]any{"total_amount": true}, "total_amount", "total_amount_invalid_type"},
		{"no currency", map[string]any{"currency": omit{}}, "currency", "currency_required"},
		{"currency not 3 letters", map[string]any{"currency": "US"}, "currency", "currency_invalid"},
		{"currency not ISO 4217", map[string]any{"currency": "XYZ"}, "currency", "currency_unknown"},
		{"ACH in euros", map[string]any{"currency": "EUR"}, "currency", "currency_not_supported_for_method"},
		{"SEPA in dollars", with(sepa, map[string]any{"currency": "USD"}), "currency", "currency_not_supported_for_method"},
		{"bank country 3 letters", map[string]any{"beneficiary_bank_country": "USA"}, "beneficiary_bank_country", "beneficiary_bank_country_invalid"},
		{"bank country 1 letter", map[string]any{"payer_bank_country": "U"}, "payer_bank_country", "payer_bank_country_invalid"},
		{"bank country digits", map[string]any{"beneficiary_bank_country": "1A"}, "beneficiary_bank_country", "beneficiary_bank_country_invalid"},
		{"bank country not ISO 3166", map[string]any{"beneficiary_bank_country": "XX"}, "beneficiary_bank_country", "beneficiary_bank_country_unknown"},
		{"withdrawn country", map[string]any{"payer_bank_country": "AN"}, "payer_bank_country", "payer_bank_country_unknown"},
		{"ACH abroad", map[string]any{"beneficiary_bank_country": "CA"}, "beneficiary_bank_country", "beneficiary_bank_country_not_supported_for_method"},
		{"BIC too long", map[string]any{"method": "SWIFT", "beneficiary_swift_bic": "CHASUS33XXXX"}, "beneficiary_swift_bic", "beneficiary_swift_bic_too_long"},
		{"BIC 9 chars", map[string]any{"method": "SWIFT", "beneficiary_swift_bic": "CHASUS33X"}, "beneficiary_swift_bic", "beneficiary_swift_bic_invalid"},
		{"BIC digit in bank code", map[string]any{"method": "SWIFT", "beneficiary_swift_bic": "CH4SUS33"}, "beneficiary_swift_bic", "beneficiary_swift_bic_invalid"},
		{"BIC country", map[string]any{"method": "SWIFT", "beneficiary_swift_bic": "CHASXX33"}, "beneficiary_swift_bic", "beneficiary_swift_bic_country_unknown"},
		{"BIC of another country", map[string]any{"method": "SWIFT", "beneficiary_swift_bic": "DEUTDEFF", "beneficiary_bank_country": "US"},
			"beneficiary_swift_bic", "beneficiary_swift_bic_country_mismatch"},
		{"IBAN checksum", with(sepa, map[string]any{"beneficiary_iban": "DE88370400440532013000"}), "beneficiary_iban", "beneficiary_iban_checksum_failed"},
		{"IBAN length", with(sepa, map[string]any{"beneficiary_iban": "DE8937040044053201300"}), "beneficiary_iban", "beneficiary_iban_length_invalid"},
		{"IBAN country", with(sepa, map[string]any{"beneficiary_iban": "US89370400440532013000"}), "beneficiary_iban", "beneficiary_iban_country_unsupported"},
		{"IBAN shape", with(sepa, map[string]any{"beneficiary_iban": "DE8937040044053201300!"}), "beneficiary_iban", "beneficiary_iban_invalid"},
		{"IBAN of another country", with(sepa, map[string]any{"beneficiary_bank_country": "FR"}), "beneficiary_iban", "beneficiary_iban_country_mismatch"},
		{"ABA checksum", map[string]any{"beneficiary_routing": "021000022"}, "beneficiary_routing", "beneficiary_routing_checksum_failed"},
		{"ABA length", map[string]any{"beneficiary_routing": "02100002"}, "beneficiary_routing", "beneficiary_routing_invalid"},
		{"payer ABA checksum", map[string]any{"payer_routing": "123456789"}, "payer_routing", "payer_routing_checksum_failed"},
		{"US account letters", map[string]any{"beneficiary_account": "12AB5678"}, "beneficiary_account", "beneficiary_account_invalid"},
		{"account too long", map[string]any{"method": "SWIFT", "beneficiary_swift_bic": "NWBKGB2L", "beneficiary_bank_country": "GB",
			"beneficiary_routing": omit{}, "beneficiary_account": strings.Repeat("1", 35)}, "beneficiary_account", "beneficiary_account_invalid"},
		{"check_number on ACH", map[string]any{"check_number": "1001"}, "check_number", "check_number_not_allowed_for_method"},
		{"check_stop_payment on WIRE", map[string]any{"method": "WIRE", "check_stop_payment": true}, "check_stop_payment", "check_stop_payment_not_allowed_for_method"},
		{"check_mailed_at on ACH", map[string]any{"status": "SENT", "sent_at": past, "check_mailed_at": past}, "check_mailed_at", "check_mailed_at_not_allowed_for_method"},
		{"stop payment on a check still to pay", map[string]any{"method": "CHECK", "check_stop_payment": true}, "check_stop_payment", "check_stop_payment_not_allowed_for_status"},
		{"check_number letters", map[string]any{"method": "CHECK", "check_number": "12A"}, "check_number", "check_number_invalid"},
		{"ach_trace_number on WIRE", map[string]any{"method": "WIRE", "ach_trace_number": "021000021234567"}, "ach_trace_number", "ach_trace_number_not_allowed_for_method"},
		{"ach_trace_number short", map[string]any{"ach_trace_number": "12345"}, "ach_trace_number", "ach_trace_number_invalid"},
		{"sepa_end_to_end_id on ACH", map[string]any{"sepa_end_to_end_id": "E2E1"}, "sepa_end_to_end_id", "sepa_end_to_end_id_not_allowed_for_method"},
		{"sepa_end_to_end_id charset", with(sepa, map[string]any{"sepa_end_to_end_id": "E2E_1"}), "sepa_end_to_end_id", "sepa_end_to_end_id_invalid"},
		{"sepa_end_to_end_id too long", with(sepa, map[string]any{"sepa_end_to_end_id": strings.Repeat("A", 36)}), "sepa_end_to_end_id", "sepa_end_to_end_id_too_long"},
		{"rtp_trace_id on SEPA", with(sepa, map[string]any{"rtp_trace_id": "RTP1"}), "rtp_trace_id", "rtp_trace_id_not_allowed_for_method"},
		{"rtp_trace_id with a space", map[string]any{"method": "RTP", "rtp_trace_id": "RTP 1"}, "rtp_trace_id", "rtp_trace_id_invalid"},
		{"ACH needs a routing number", map[string]any{"beneficiary_routing": omit{}}, "beneficiary_routing", "beneficiary_routing_required"},
		{"ACH needs an account", map[string]any{"beneficiary_account": nil}, "beneficiary_account", "beneficiary_account_required"},
		{"bank payouts need a name", map[string]any{"beneficiary_name": omit{}}, "beneficiary_name", "beneficiary_name_required"},
		{"SEPA needs an IBAN", with(sepa, map[string]any{"beneficiary_iban": omit{}}), "beneficiary_iban", "beneficiary_iban_required"},
		{"SWIFT needs a BIC", map[string]any{"method": "SWIFT"}, "beneficiary_swift_bic", "beneficiary_swift_bic_required"},
		{"name too long", map[string]any{"beneficiary_name": strings.Repeat("n", 141)}, "beneficiary_name", "beneficiary_name_too_long"},
		{"advice url", map[string]any{"remittance_advice_url": "javascript:alert(1)"}, "remittance_advice_url", "remittance_advice_url_invalid"},
		{"time format", map[string]any{"status": "SENT", "sent_at": "yesterday"}, "sent_at", "sent_at_invalid"},
		{"time without offset", map[string]any{"status": "SENT", "sent_at": "2026-11-18T10:00:00"}, "sent_at", "sent_at_invalid"},
		{"time type", map[string]any{"status": "SENT", "sent_at": 1700000000}, "sent_at", "sent_at_invalid_type"},
		{"settled_at on INITIATED", map[string]any{"settled_at": past}, "settled_at", "settled_at_not_allowed_for_status"},
		{"returned_at on SETTLED", map[string]any{"status": "SETTLED", "returned_at": past}, "returned_at", "returned_at_not_allowed_for_status"},
		{"sent in the future", map[string]any{"status": "SENT", "sent_at": future}, "sent_at", "sent_at_in_future"},
		{"settled before sent", map[string]any{"status": "SETTLED", "sent_at": past, "settled_at": earlier}, "settled_at", "settled_at_before_sent_at"},
		{"expected before sent", map[string]any{"status": "SENT", "sent_at": past, "expected_settlement_at": earlier}, "expected_settlement_at", "expected_settlement_at_before_sent_at"},
		{"scheduled too far", map[string]any{"scheduled_at": "2099-01-01T00:00:00Z"}, "scheduled_at", "scheduled_at_too_far"},
		{"line without invoice", map[string]any{"lines": []any{map[string]any{"applied_amount": "1"}}}, "lines[0].invoice_token", "invoice_token_required"},
		{"line token shape", map[string]any{"lines": []any{line("not-a-uuid", "1")}}, "lines[0].invoice_token", "invoice_token_invalid"},
		{"line unknown invoice", map[string]any{"lines": []any{line("00000000-0000-7000-8000-000000000000", "1")}}, "lines[0].invoice_token", "invoice_token_not_found"},
		{"line other tenant's invoice", map[string]any{"lines": []any{line(inv, "1"), line(other, "1")}}, "lines[1].invoice_token", "invoice_token_not_found"},
		{"line zero", map[string]any{"lines": []any{line(inv, "0")}}, "lines[0].applied_amount", "applied_amount_must_be_positive"},
		{"line negative", map[string]any{"lines": []any{line(inv, "-5")}}, "lines[0].applied_amount", "applied_amount_must_be_positive"},
		{"line decimals", map[string]any{"lines": []any{line(inv, "1.001")}}, "lines[0].applied_amount", "applied_amount_too_many_decimals"},
		{"line missing amount", map[string]any{"lines": []any{map[string]any{"invoice_token": inv}}}, "lines[0].applied_amount", "applied_amount_required"},
		{"lines over the amount", map[string]any{"lines": []any{line(inv, "60"), line(inv, "40.01")}}, "lines", "lines_exceed_total_amount"},
		{"line currency", map[string]any{"lines": []any{map[string]any{"invoice_token": inv, "applied_amount": "1", "applied_currency": "ZZZ"}}},
			"lines[0].applied_currency", "applied_currency_invalid"},
		{"line fx rate", map[string]any{"lines": []any{map[string]any{"invoice_token": inv, "applied_amount": "1", "fx_rate_line": "-1"}}},
			"lines[0].fx_rate_line", "fx_rate_line_invalid"},
		{"line fx rate zero", map[string]any{"lines": []any{map[string]any{"invoice_token": inv, "applied_amount": "1", "fx_rate_line": 0}}},
			"lines[0].fx_rate_line", "fx_rate_line_must_be_positive"},
		{"line fx rate in one currency", map[string]any{"lines": []any{map[string]any{"invoice_token": inv, "applied_amount": "1", "fx_rate_line": "1.1"}}},
			"lines[0].fx_rate_line", "fx_rate_line_mismatch"},
		{"line fee negative", map[string]any{"lines": []any{map[string]any{"invoice_token": inv, "applied_amount": "1", "fee_amount_line": "-0.01"}}},
			"lines[0].fee_amount_line", "fee_amount_must_be_positive"},
		{"line discount decimals", map[string]any{"lines": []any{map[string]any{"invoice_token": inv, "applied_amount": "1", "discount_amount": "0.001"}}},
			"lines[0].discount_amount", "discount_amount_too_many_decimals"},
		{"line fx time", map[string]any{"lines": []any{map[string]any{"invoice_token": inv, "applied_amount": "1", "fx_at_line": "now"}}},
			"lines[0].fx_at_line", "fx_at_line_invalid"},
		{"too many lines", map[string]any{"lines": func() []any {
			ls := make([]any, 101)
			for i := range ls {
				ls[i] = line(inv, "0.01")
			}
			return ls
		}()}, "lines", "lines_too_many"},
		{"replace_lines type", map[string]any{"replace_lines": "yes"}, "replace_lines", "replace_lines_invalid_type"},
		{"unknown field", map[string]any{"amount": "1"}, "amount", "unknown_field"},
	}
	before := countPayments(t, h, h.TenantA)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := h.Do("POST", "/v1/payouts", h.KeyA, payoutBody(c.fields), nil)
			e := checkEnvelope(t, r, http.StatusUnprocessableEntity, c.code)
			if e.Fields[c.field] != c.code {
				t.Errorf("fields %v, want %s: %s", e.Fields, c.field, c.code)
			}
			if len(e.ErrorCodes) != 1 {
				t.Errorf("error codes %v: one bad field must give one code", e.ErrorCodes)
			}
		})
	}
	t.Cleanup(func() {
		if n := countPayments(t, h, h.TenantA); n != before {
			t.Errorf("refused payouts left %d rows", n-before)
		}
	})
}

// TestPayoutValidInputs: what banks send in practice is accepted and
// normalized (currency and countries upper-cased, IBAN compacted, BIC
// upper-cased), and external_source defaults to UNKNOWN.
func TestPayoutValidInputs(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	po := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"method": "SEPA", "currency": "eur",
		"beneficiary_iban": "fr14 2004 1010 0505 0001 3m02 606", "beneficiary_swift_bic": "psstfrppxxx",
		"beneficiary_bank_country": "fr", "beneficiary_account": omit{}, "beneficiary_routing": omit{},
		"payer_bank_country": "us", "payer_routing": "011000015", "payer_account": "000123456789",
		"remittance_advice_url": "https://erp.example.com/advice/1", "total_amount": 12.5}))
	for k, want := range map[string]any{"currency": "EUR", "beneficiary_iban": "FR1420041010050500013M02606",
		"beneficiary_swift_bic": "PSSTFRPPXXX", "beneficiary_bank_country": "FR", "payer_bank_country": "US",
		"external_source": "UNKNOWN", "total_amount": json.Number("12.50"), "status": "INITIATED", "check_number": nil,
		"return_code": nil, "return_reason": nil, "return_retry_eligible": false} {
		if po[k] != want {
			t.Errorf("%s = %#v, want %#v", k, po[k], want)
		}
	}
	// a CARD payout has no rail: nothing bank-specific is required
	createPayout(t, h, h.KeyA, payoutBody(map[string]any{"method": "PAYPAL", "currency": "JPY", "total_amount": 1500,
		"beneficiary_account": omit{}, "beneficiary_routing": omit{}, "beneficiary_name": omit{}}))
	// a WIRE abroad by BIC needs no ABA routing number
	createPayout(t, h, h.KeyA, payoutBody(map[string]any{"method": "WIRE", "beneficiary_routing": omit{},
		"beneficiary_swift_bic": "NWBKGB2L", "beneficiary_bank_country": "GB", "beneficiary_account": "31926819"}))
}

// TestPayoutImport: a payout made elsewhere is recorded with the status it
// is given, without the gateway, walking the lifecycle with audit rows;
// PAID or SETTLED without settled_at gets settled_at = now; given times are
// kept; an imported SENT is never sent to the sandbox and settles at its
// expected settlement.
func TestPayoutImport(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	t.Run("PAID without settled_at", func(t *testing.T) {
		t.Parallel()
		inv := payoutInvoice(t, h, h.TenantA, "USD", 10000)
		before := time.Now().Add(-time.Second)
		po := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"status": "PAID", "external_source": "NETSUITE",
			"lines": []any{line(inv, "100")}}))
		id := po["id"].(string)
		paid := waitPayout(t, h, id, "PAID", 15*time.Second)
		set := at(t, paid["settled_at"])
		if set == nil || set.Before(before) || set.After(time.Now()) {
			t.Errorf("settled_at %v, want about now", paid["settled_at"])
		}
		if paid["sent_at"] != nil || paid["external_source"] != "NETSUITE" {
			t.Errorf("sent_at %v (none was given) external_source %v", paid["sent_at"], paid["external_source"])
		}
		if r, p := balances(t, h, h.TenantA, inv); r != 10000 || p != 10000 {
			t.Errorf("invoice reserved %d paid %d, want 10000 10000", r, p)
		}
		if tr := transitions(t, h, h.TenantA, id); tr[payment.StatusProcessing] != 1 || tr[payment.StatusSucceeded] != 1 {
			t.Errorf("audit rows %v", tr)
		}
		if n := h.Sandbox.ChargesFor(id); n != 0 {
			t.Errorf("an import reached the sandbox %d times", n)
		}
	})
	t.Run("SETTLED keeps its times", func(t *testing.T) {
		t.Parallel()
		sent, set := "2026-01-05T10:00:00Z", "2026-01-06T21:00:00Z"
		po := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"status": "SETTLED", "sent_at": sent, "settled_at": set,
			"submitted_at": "2026-01-05T09:59:00Z", "ach_trace_number": "021000021000001"}))
		got := waitPayout(t, h, po["id"].(string), "SETTLED", 15*time.Second)
		if got["sent_at"] != "2026-01-05T10:00:00.000Z" || got["settled_at"] != "2026-01-06T21:00:00.000Z" ||
			got["submitted_at"] != "2026-01-05T09:59:00.000Z" {
			t.Errorf("times %v %v %v, want as given", got["submitted_at"], got["sent_at"], got["settled_at"])
		}
	})
	t.Run("SENT waits for its expected settlement, never polling the sandbox", func(t *testing.T) {
		t.Parallel()
		sentAt := time.Now().Add(-time.Hour).UTC()
		po := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"status": "SENT", "sent_at": sentAt.Format(time.RFC3339),
			"expected_settlement_at": time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339Nano)}))
		id := po["id"].(string)
		sent := waitPayout(t, h, id, "SENT", 15*time.Second)
		if sent["settled_at"] != nil || sent["expected_settlement_at"] == nil {
			t.Errorf("SENT with settled_at %v expected %v", sent["settled_at"], sent["expected_settlement_at"])
		}
		settled := waitPayout(t, h, id, "SETTLED", 20*time.Second)
		if settled["sent_at"] != sent["sent_at"] || at(t, settled["settled_at"]) == nil {
			t.Errorf("sent_at %v → %v; settled_at %v", sent["sent_at"], settled["sent_at"], settled["settled_at"])
		}
		if n := h.Sandbox.ChargesFor(id); n != 0 {
			t.Errorf("an import reached the sandbox %d times", n)
		}
	})
	t.Run("SENT without times settles on the rail's schedule", func(t *testing.T) {
		t.Parallel()
		po := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"status": "SENT", "method": "RTP"}))
		sent := waitPayout(t, h, po["id"].(string), "SENT", 15*time.Second)
		s, e := at(t, sent["sent_at"]), at(t, sent["expected_settlement_at"])
		if s == nil || e == nil || e.Sub(*s) < 9*time.Second || e.Sub(*s) > 11*time.Second {
			t.Errorf("RTP sent %v expected %v, want ten seconds apart", s, e)
		}
	})
	for _, c := range []struct{ status, canonical string }{{"RETURNED", "RETURNED"}, {"FAILED", "FAILED"}, {"CANCELED", "CANCELED"}} {
		t.Run(c.status, func(t *testing.T) {
			t.Parallel()
			inv := payoutInvoice(t, h, h.TenantA, "USD", 10000)
			fields := map[string]any{"status": c.status, "lines": []any{line(inv, "25")}}
			if c.status == "RETURNED" {
				fields["sent_at"], fields["returned_at"] = "2026-02-02T10:00:00Z", "2026-02-04T10:00:00Z"
			}
			po := createPayout(t, h, h.KeyA, payoutBody(fields))
			got := waitPayout(t, h, po["id"].(string), c.status, 15*time.Second)
			if r, p := balances(t, h, h.TenantA, inv); r != 0 || p != 0 {
				t.Errorf("invoice reserved %d paid %d after an imported %s", r, p, c.status)
			}
			if c.status == "RETURNED" && (got["returned_at"] != "2026-02-04T10:00:00.000Z" || got["return_retry_eligible"] != false) {
				t.Errorf("returned_at %v retry %v", got["returned_at"], got["return_retry_eligible"])
			}
			if c.status == "CANCELED" && got["canceled_at"] == nil {
				t.Errorf("canceled_at not set")
			}
		})
	}
	t.Run("a CARD payout is recorded as PAID", func(t *testing.T) {
		t.Parallel()
		po := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"method": "CARD"}))
		waitPayout(t, h, po["id"].(string), "PAID", 15*time.Second)
	})
}

// TestPayoutCancel: an INITIATED payout (here scheduled for later) can be
// canceled and gives its lines back; once SENT it is 409.
func TestPayoutCancel(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{Sandbox: sandbox.Config{SettleDelay: time.Hour}})
	inv := payoutInvoice(t, h, h.TenantA, "USD", 10000)
	po := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"lines": []any{line(inv, "100")},
		"scheduled_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}))
	id := po["id"].(string)
	if po["scheduled_at"] == nil {
		t.Errorf("scheduled_at not echoed")
	}
	time.Sleep(300 * time.Millisecond) // the create step runs and schedules the submit an hour out
	if got := getPayout(t, h, id); got["status"] != "INITIATED" {
		t.Fatalf("a scheduled payout is %v before its date", got["status"])
	}
	c := jsonObj(t, h.Do("POST", "/v1/payouts/"+id+"/cancel", h.KeyA, nil, nil), http.StatusOK)
	if c["status"] != "CANCELED" || c["canceled_at"] == nil {
		t.Fatalf("cancel: %v %v", c["status"], c["canceled_at"])
	}
	if r, _ := balances(t, h, h.TenantA, inv); r != 0 {
		t.Errorf("reserved %d after cancel, want 0", r)
	}
	checkEnvelope(t, h.Do("POST", "/v1/payouts/"+id+"/cancel", h.KeyA, nil, nil), http.StatusConflict, "payout_not_cancelable")

	sent := createPayout(t, h, h.KeyA, payoutBody(nil))
	waitPayout(t, h, sent["id"].(string), "SENT", 15*time.Second)
	e := checkEnvelope(t, h.Do("POST", "/v1/payouts/"+sent["id"].(string)+"/cancel", h.KeyA, nil, nil), http.StatusConflict, "payout_not_cancelable")
	if !strings.Contains(e.Message, "SENT") {
		t.Errorf("message %q does not say why", e.Message)
	}
	if got := getPayout(t, h, sent["id"].(string)); got["status"] != "SENT" {
		t.Errorf("a refused cancel changed the payout to %v", got["status"])
	}
}

// TestPayoutIdempotency: external_payment_id is the business key. The same
// request again answers 200 with the existing payout, marked replayed; the
// key with a request that contradicts it is refused; concurrent duplicates
// make one payout.
func TestPayoutIdempotency(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	body := payoutBody(map[string]any{"external_payment_id": "erp-42"})
	first := createPayout(t, h, h.KeyA, body)
	r := h.Do("POST", "/v1/payouts", h.KeyA, body, nil)
	again := jsonObj(t, r, http.StatusOK)
	if again["id"] != first["id"] || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: id %v (want %v), header %q", again["id"], first["id"], r.Header.Get("Idempotent-Replayed"))
	}
	// the same request written differently (case, spacing) is the same request
	same := payoutBody(map[string]any{"external_payment_id": "erp-42", "currency": "usd", "total_amount": 100})
	jsonObj(t, h.Do("POST", "/v1/payouts", h.KeyA, same, nil), http.StatusOK)
	other := payoutBody(map[string]any{"external_payment_id": "erp-42", "total_amount": "100.01"})
	// another amount under the key is a contradiction of the record (sync: payout_sync_test.go)
	checkEnvelope(t, h.Do("POST", "/v1/payouts", h.KeyA, other, nil), http.StatusUnprocessableEntity, "payout_conflict_amount")
	// another tenant has its own keys
	createPayout(t, h, h.KeyB, body)

	concurrent := payoutBody(map[string]any{"external_payment_id": "erp-43"})
	var mu sync.Mutex
	codes := map[int]int{}
	ids := map[string]bool{}
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := h.Do("POST", "/v1/payouts", h.KeyA, concurrent, nil)
			mu.Lock()
			defer mu.Unlock()
			codes[r.Status]++
			if r.Status < 300 {
				var m map[string]any
				_ = json.Unmarshal(r.Body, &m)
				ids[m["id"].(string)] = true
			}
		}()
	}
	wg.Wait()
	if codes[201] != 1 || codes[200] != 9 || len(ids) != 1 {
		t.Errorf("codes %v ids %v, want one 201, nine 200, one payout", codes, ids)
	}
	// the Idempotency-Key header works on top
	hdr := map[string]string{"Idempotency-Key": "hdr-1"}
	b := payoutBody(nil)
	r1 := h.Do("POST", "/v1/payouts", h.KeyA, b, hdr)
	r2 := h.Do("POST", "/v1/payouts", h.KeyA, b, hdr)
	if r1.Status != 201 || r2.Status != 201 || string(r1.Body) != string(r2.Body) || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("header replay: %d %d replayed %q", r1.Status, r2.Status, r2.Header.Get("Idempotent-Replayed"))
	}
}

// TestPayoutTenantIsolation: tenant B sees none of A's payouts and cannot
// apply a payout to A's invoice (I6); a payment of another surface is not
// a payout.
func TestPayoutTenantIsolation(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	invA := payoutInvoice(t, h, h.TenantA, "USD", 10000)
	po := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"external_payment_id": "a-secret",
		"lines": []any{line(invA, "10")}}))
	id := po["id"].(string)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/payouts/" + id, ""},
		{"POST", "/v1/payouts/" + id + "/cancel", ""},
		{"PUT", "/v1/payouts/" + id + "/lines", `{"lines":[]}`},
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		r := h.Do(c.method, c.path, h.KeyB, body, nil)
		checkEnvelope(t, r, http.StatusNotFound, "resource_not_found")
		if strings.Contains(string(r.Body), id) || strings.Contains(string(r.Body), "a-secret") {
			t.Errorf("%s %s leaks: %s", c.method, c.path, r.Body)
		}
	}
	list := jsonObj(t, h.Do("GET", "/v1/payouts", h.KeyB, nil, nil), http.StatusOK)
	if data := list["data"].([]any); len(data) != 0 {
		t.Errorf("B lists %d payouts", len(data))
	}
	r := h.Do("POST", "/v1/payouts", h.KeyB, payoutBody(map[string]any{"lines": []any{line(invA, "10")}}), nil)
	if e := checkEnvelope(t, r, http.StatusUnprocessableEntity, "invoice_token_not_found"); e.Fields["lines[0].invoice_token"] == "" {
		t.Errorf("fields %v", e.Fields)
	}
	if r, _ := balances(t, h, h.TenantA, invA); r != 1000 {
		t.Errorf("A's invoice reserved %d, want 1000", r)
	}
	r = h.Do("PUT", "/v1/payouts/"+id+"/lines", h.KeyA, []byte(`{"lines":[]}`), nil)
	jsonObj(t, r, http.StatusOK)
	// a seed-001 payment is not a payout
	pay := h.CreatePayment("CARD", "pm_card_visa", "1.00")
	checkEnvelope(t, h.Do("GET", "/v1/payouts/"+pay, h.KeyA, nil, nil), http.StatusNotFound, "resource_not_found")
}

// TestPayoutList: newest first, cursor pagination, filters by seed-002
// status (SETTLED and PAID told apart) and by external_payment_id.
func TestPayoutList(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	paid := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"status": "PAID", "external_payment_id": "list-paid"}))
	settled := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"status": "SETTLED"}))
	initiated := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"scheduled_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}))
	waitPayout(t, h, paid["id"].(string), "PAID", 15*time.Second)
	waitPayout(t, h, settled["id"].(string), "SETTLED", 15*time.Second)
	ids := func(path string) []string {
		t.Helper()
		m := jsonObj(t, h.Do("GET", path, h.KeyA, nil, nil), http.StatusOK)
		var out []string
		for _, d := range m["data"].([]any) {
			out = append(out, d.(map[string]any)["id"].(string))
		}
		return out
	}
	diff(t, "all", []string{initiated["id"].(string), settled["id"].(string), paid["id"].(string)}, ids("/v1/payouts"))
	diff(t, "page 1", []string{initiated["id"].(string), settled["id"].(string)}, ids("/v1/payouts?limit=2"))
	diff(t, "page 2", []string{paid["id"].(string)}, ids("/v1/payouts?limit=2&starting_after="+settled["id"].(string)))
	diff(t, "PAID", []string{paid["id"].(string)}, ids("/v1/payouts?status=PAID"))
	diff(t, "SETTLED", []string{settled["id"].(string)}, ids("/v1/payouts?status=SETTLED"))
	diff(t, "INITIATED", []string{initiated["id"].(string)}, ids("/v1/payouts?status=INITIATED"))
	diff(t, "by external id", []string{paid["id"].(string)}, ids("/v1/payouts?external_payment_id=list-paid"))
	checkEnvelope(t, h.Do("GET", "/v1/payouts?status=DONE", h.KeyA, nil, nil), http.StatusUnprocessableEntity, "status_invalid")
	checkEnvelope(t, h.Do("GET", "/v1/payouts?starting_after=pay_nope", h.KeyA, nil, nil), http.StatusUnprocessableEntity, "starting_after_not_found")
}

// TestPayoutFailsAtSubmission: the sandbox refuses 11111111… accounts: the
// payout fails with the gateway's code, its lines go back to the invoice,
// and nothing was charged.
func TestPayoutFailsAtSubmission(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	inv := payoutInvoice(t, h, h.TenantA, "USD", 10000)
	po := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"beneficiary_account": sandbox.BankAccountInvalid,
		"lines": []any{line(inv, "100")}}))
	failed := waitPayout(t, h, po["id"].(string), "FAILED", 15*time.Second)
	if failed["error_code"] != "account_invalid" || failed["failed_at"] == nil || failed["sent_at"] != nil {
		t.Errorf("error_code %v failed_at %v sent_at %v", failed["error_code"], failed["failed_at"], failed["sent_at"])
	}
	if r, p := balances(t, h, h.TenantA, inv); r != 0 || p != 0 {
		t.Errorf("invoice reserved %d paid %d after a failed payout", r, p)
	}
	if ls := linesOf(t, failed); len(ls) != 1 || ls[0]["status"] != "released" {
		t.Errorf("lines %v, want one released", ls)
	}
}

// TestPayoutScheduled: a payout with a later scheduled_at stays INITIATED
// until then, and is sent at its date.
func TestPayoutScheduled(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	when := time.Now().Add(1500 * time.Millisecond).UTC()
	po := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"scheduled_at": when.Format(time.RFC3339Nano)}))
	id := po["id"].(string)
	time.Sleep(500 * time.Millisecond)
	if got := getPayout(t, h, id); got["status"] != "INITIATED" || got["submitted_at"] != nil {
		t.Fatalf("before its date: %v submitted %v", got["status"], got["submitted_at"])
	}
	settled := waitPayout(t, h, id, "SETTLED", 20*time.Second)
	if sub := at(t, settled["submitted_at"]); sub == nil || sub.Before(when.Truncate(time.Millisecond)) {
		t.Errorf("submitted at %v, before its date %v", sub, when)
	}
}

// TestPayoutNotOnPaymentsSurface: a payout is not a seed-001 payment: the
// payments routes answer 404 for it (so they cannot cancel or refund it by
// their rules), while the shared timeline shows it.
func TestPayoutNotOnPaymentsSurface(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	inv := payoutInvoice(t, h, h.TenantA, "USD", 10000)
	po := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"method": "OTHER", "lines": []any{line(inv, "100")}}))
	id := po["id"].(string)
	for _, rq := range []struct{ method, path, body string }{
		{"GET", "/v1/payments/" + id, ""},
		{"POST", "/v1/payments/" + id + "/cancel", ""},
		{"POST", "/v1/payments/" + id + "/refunds", `{}`},
	} {
		var body []byte
		if rq.body != "" {
			body = []byte(rq.body)
		}
		checkEnvelope(t, h.Do(rq.method, rq.path, h.KeyA, body, nil), http.StatusNotFound, "resource_not_found")
	}
	if r := h.Do("GET", "/v1/payments/"+id+"/timeline", h.KeyA, nil, nil); r.Status != http.StatusOK {
		t.Errorf("timeline of a payout: %d %s", r.Status, r.Body)
	}
}
