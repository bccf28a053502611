package intake_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/processor"
)

// invoiceFields are the members of the invoice object, exactly.
var invoiceFields = []string{"id", "external_id", "invoice_number", "currency", "amount_due", "amount_paid",
	"amount_remaining", "status", "payer", "payees", "payers", "due_date", "metadata", "created_at"}

// invoiceView is what a test compares of an invoice: its balances and status.
type invoiceView struct {
	Due, Paid, Remaining string
	Status               string
}

// getInvoice reads an invoice through the API (amounts as written).
func getInvoice(t *testing.T, h *testenv.Harness, key, ref string) map[string]any {
	t.Helper()
	return jsonObj(t, h.Do("GET", "/v1/invoices/"+url.PathEscape(ref), key, nil, nil), http.StatusOK)
}

func viewOf(m map[string]any) invoiceView {
	s := func(k string) string {
		if n, ok := m[k].(json.Number); ok {
			return n.String()
		}
		return fmt.Sprintf("%T %v", m[k], m[k])
	}
	st, _ := m["status"].(string)
	return invoiceView{Due: s("amount_due"), Paid: s("amount_paid"), Remaining: s("amount_remaining"), Status: st}
}

// waitInvoice polls an invoice of tenant A until it shows want.
func waitInvoice(t *testing.T, h *testenv.Harness, ref string, want invoiceView) {
	t.Helper()
	var got invoiceView
	deadline := time.Now().Add(20 * time.Second)
	for {
		if got = viewOf(getInvoice(t, h, h.KeyA, ref)); got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("invoice %s = %+v, want %+v", ref, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestInvoiceCreateGetList(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	body := []byte(`{"external_id":"INV-2026-0001","currency":"USD","amount_due":"100.00",
		"payer":{"external_id":"cust-42"},
		"payees":[{"external_id":"seller-b","amount":30},{"external_id":"seller-a","amount":"20.5"}],
		"due_date":"2026-12-31","metadata":{"order":"A-1","note":"ünïcode ✓"}}`)
	r := h.Do("POST", "/v1/invoices", h.KeyA, body, nil)
	if r.Status != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("create = %d replayed=%q %s", r.Status, r.Header.Get("Idempotent-Replayed"), r.Body)
	}
	raw := rawFields(t, r.Body)
	var members []string
	for k := range raw {
		members = append(members, k)
	}
	sort.Strings(members)
	want := append([]string(nil), invoiceFields...)
	sort.Strings(want)
	diff(t, "members", want, members)
	// Amounts are JSON numbers with the currency's decimals.
	for k, v := range map[string]string{"amount_due": "100.00", "amount_paid": "0.00", "amount_remaining": "100.00"} {
		if string(raw[k]) != v {
			t.Errorf("%s = %s, want the JSON number %s", k, raw[k], v)
		}
	}
	inv := jsonObj(t, r, http.StatusCreated)
	id, _ := inv["id"].(string)
	if !strings.HasPrefix(id, payment.PrefixInvoice) || !regexp.MustCompile(`^INV-[0-9A-F]{10}$`).MatchString(inv["invoice_number"].(string)) ||
		!timestampRE.MatchString(inv["created_at"].(string)) {
		t.Errorf("id %v invoice_number %v created_at %v", inv["id"], inv["invoice_number"], inv["created_at"])
	}
	payer := inv["payer"].(map[string]any)
	payerID, _ := payer["id"].(string)
	if !strings.HasPrefix(payerID, payment.PrefixUser) {
		t.Errorf("payer = %v", payer)
	}
	payees := inv["payees"].([]any)
	var payeeIDs []string
	var got []string
	for _, p := range payees {
		pm := p.(map[string]any)
		payeeIDs = append(payeeIDs, pm["id"].(string))
		got = append(got, fmt.Sprintf("%v %v", pm["external_id"], pm["amount"]))
	}
	diff(t, "payees (sorted by external id, amounts in major units)", []string{"seller-a 20.50", "seller-b 30.00"}, got)
	some := map[string]any{"external_id": inv["external_id"], "currency": inv["currency"], "status": inv["status"],
		"due_date": inv["due_date"], "metadata": inv["metadata"], "payer_external_id": payer["external_id"]}
	diff(t, "invoice", map[string]any{"external_id": "INV-2026-0001", "currency": "USD", "status": "OPEN",
		"due_date": "2026-12-31", "metadata": map[string]any{"order": "A-1", "note": "ünïcode ✓"}, "payer_external_id": "cust-42"}, some)

	// GET by id and by external id answers the same object.
	for _, ref := range []string{id, "INV-2026-0001"} {
		g := h.Do("GET", "/v1/invoices/"+ref, h.KeyA, nil, nil)
		if g.Status != http.StatusOK || !bytes.Equal(g.Body, r.Body) {
			t.Errorf("GET %s = %d %s\nwant %s", ref, g.Status, g.Body, r.Body)
		}
	}
	// The payer and payees were created as users on first use.
	for ref, wantID := range map[string]string{"cust-42": payerID, payerID: payerID, "seller-a": payeeIDs[0], "seller-b": payeeIDs[1]} {
		u := jsonObj(t, h.Do("GET", "/v1/users/"+ref, h.KeyA, nil, nil), http.StatusOK)
		if u["id"] != wantID || u["name"] != nil || u["email"] != nil {
			t.Errorf("user %s = %v, want id %s with no name or email", ref, u, wantID)
		}
	}

	// The same request again, in another form (payees reordered, amounts
	// written otherwise, members reordered): the invoice back, as a replay.
	same := []byte(`{"metadata":{"note":"ünïcode ✓","order":"A-1"},"due_date":"2026-12-31",
		"payees":[{"amount":"20.50","external_id":"seller-a"},{"external_id":"seller-b","amount":"30"}],
		"payer":{"external_id":"cust-42"},"amount_due":100,"currency":"USD","external_id":"INV-2026-0001"}`)
	again := h.Do("POST", "/v1/invoices", h.KeyA, same, nil)
	if again.Status != http.StatusOK || again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.Body, r.Body) {
		t.Errorf("repeat = %d replayed=%q %s", again.Status, again.Header.Get("Idempotent-Replayed"), again.Body)
	}
	// Anything else under the same external_id is refused and changes nothing.
	for _, other := range []string{
		`{"external_id":"INV-2026-0001","currency":"USD","amount_due":"100.01"}`,
		strings.Replace(string(same), `"amount":"30"`, `"amount":"31"`, 1),
		strings.Replace(string(same), `"2026-12-31"`, `"2027-01-01"`, 1),
		strings.Replace(string(same), `"cust-42"`, `"cust-43"`, 1),
		strings.Replace(string(same), `"order":"A-1"`, `"order":"A-2"`, 1),
	} {
		checkEnvelope(t, h.Do("POST", "/v1/invoices", h.KeyA, []byte(other), nil), http.StatusUnprocessableEntity, "idempotency_key_reused")
	}
	if g := h.Do("GET", "/v1/invoices/"+id, h.KeyA, nil, nil); !bytes.Equal(g.Body, r.Body) {
		t.Errorf("invoice changed: %s", g.Body)
	}
	if _, err := h.Store.GetUser(t.Context(), h.TenantA, "cust-43"); err == nil {
		t.Errorf("a refused create made user cust-43")
	}

	// A second invoice with the same payer: the same user.
	second := jsonObj(t, h.Do("POST", "/v1/invoices", h.KeyA, []byte(`{"external_id":"INV-2026-0002","currency":"EUR",
		"amount_due":5,"payer":{"external_id":"cust-42"}}`), nil), http.StatusCreated)
	if second["payer"].(map[string]any)["id"] != payerID || string(mustJSON(t, second["payees"])) != "[]" ||
		second["due_date"] != nil || string(mustJSON(t, second["metadata"])) != "{}" {
		t.Errorf("second invoice = %v", second)
	}
	// An invoice with no payer: null.
	third := rawFields(t, jsonObjBody(t, h.Do("POST", "/v1/invoices", h.KeyA,
		[]byte(`{"external_id":"INV-2026-0003","currency":"JPY","amount_due":"1500","payer":null}`), nil), http.StatusCreated))
	if string(third["payer"]) != "null" || string(third["amount_due"]) != "1500" || string(third["amount_remaining"]) != "1500" {
		t.Errorf("third invoice: payer %s amount_due %s", third["payer"], third["amount_due"])
	}

	// Idempotency-Key: a replay is the stored answer, another body is refused.
	hdr := map[string]string{"Idempotency-Key": "inv-key-1"}
	k1 := h.Do("POST", "/v1/invoices", h.KeyA, []byte(`{"external_id":"INV-K","currency":"USD","amount_due":"9.99"}`), hdr)
	jsonObj(t, k1, http.StatusCreated)
	k2 := h.Do("POST", "/v1/invoices", h.KeyA, []byte(`{"amount_due":9.99,"currency":"USD","external_id":"INV-K"}`), hdr)
	if k2.Status != http.StatusCreated || k2.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(k2.Body, k1.Body) {
		t.Errorf("Idempotency-Key replay = %d %s", k2.Status, k2.Body)
	}
	checkEnvelope(t, h.Do("POST", "/v1/invoices", h.KeyA, []byte(`{"external_id":"INV-K2","currency":"USD","amount_due":"9.99"}`), hdr),
		http.StatusUnprocessableEntity, "idempotency_key_reused")

	// An external_id taken by an invoice not created through this API.
	checkEnvelope(t, h.Do("POST", "/v1/invoices", h.KeyA, []byte(`{"external_id":"`+testenv.TestInvoice+`","currency":"USD","amount_due":1}`), nil),
		http.StatusConflict, "external_id_in_use")

	// The list: newest first, paged.
	var all []string
	after := ""
	for pages := 0; ; pages++ {
		q := "?limit=2"
		if after != "" {
			q += "&starting_after=" + after
		}
		m := jsonObj(t, h.Do("GET", "/v1/invoices"+q, h.KeyA, nil, nil), http.StatusOK)
		data := m["data"].([]any)
		for _, d := range data {
			all = append(all, d.(map[string]any)["external_id"].(string))
		}
		if m["has_more"] != true {
			break
		}
		if len(data) != 2 || pages > 5 {
			t.Fatalf("page %d: %v", pages, m)
		}
		after = data[len(data)-1].(map[string]any)["id"].(string)
	}
	diff(t, "invoices, newest first", []string{"INV-K", "INV-2026-0003", "INV-2026-0002", "INV-2026-0001", testenv.TestInvoice}, all)
	// Each element is the full invoice object.
	m := jsonObj(t, h.Do("GET", "/v1/invoices?limit=1&starting_after="+second["id"].(string), h.KeyA, nil, nil), http.StatusOK)
	diff(t, "list element", getInvoice(t, h, h.KeyA, id), m["data"].([]any)[0])
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestListInvoicesByStatus: the status filter and the list's own refusals.
func TestListInvoicesByStatus(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	open := invoice(t, h, h.KeyA, "open", "USD", "100.00")
	partial := invoice(t, h, h.KeyA, "partial", "USD", "50.00")
	paid := invoice(t, h, h.KeyA, "paid", "USD", "10.00")
	void := invoice(t, h, h.KeyA, "void", "USD", "10.00")
	if _, err := h.Store.DB().Exec(`UPDATE invoices SET voided_at = now() WHERE id = $1`, void); err != nil {
		t.Fatal(err)
	}
	// Recorded without a gateway (OFFLINE, processed: process_payment
	// true): these succeed at once.
	offline := func(dest, amount string) {
		t.Helper()
		id := jsonObj(t, h.Do("POST", "/v1/payments", h.KeyA, []byte(`{"amount":"`+amount+`","currency":"USD","destination_id":"`+dest+
			`","destination_type":"INVOICE","payment_method_type":"OFFLINE","process_payment":true}`), nil), http.StatusCreated)["id"].(string)
		if p := h.WaitFinal(id, 15*time.Second); p.Status != payment.StatusSucceeded {
			t.Fatalf("offline payment %s", p.Status)
		}
	}
	offline("partial", "20.00")
	offline("paid", "10.00")
	waitInvoice(t, h, "paid", invoiceView{"10.00", "10.00", "0.00", "PAID"})
	waitInvoice(t, h, "partial", invoiceView{"50.00", "20.00", "30.00", "PARTIALLY_PAID"})
	waitInvoice(t, h, "void", invoiceView{"10.00", "0.00", "10.00", "VOID"})

	list := func(q string) []string {
		t.Helper()
		m := jsonObj(t, h.Do("GET", "/v1/invoices"+q, h.KeyA, nil, nil), http.StatusOK)
		var ids []string
		for _, d := range m["data"].([]any) {
			ids = append(ids, d.(map[string]any)["id"].(string))
		}
		return ids
	}
	diff(t, "OPEN", []string{open, mustInvoiceID(t, h, testenv.TestInvoice)}, list("?status=OPEN"))
	diff(t, "PARTIALLY_PAID", []string{partial}, list("?status=PARTIALLY_PAID"))
	diff(t, "PAID", []string{paid}, list("?status=PAID"))
	diff(t, "VOID", []string{void}, list("?status=VOID"))
	diff(t, "OPEN after the first", []string{mustInvoiceID(t, h, testenv.TestInvoice)}, list("?status=OPEN&starting_after="+open))
	// A payment cannot pay a void invoice.
	checkEnvelope(t, h.Do("POST", "/v1/payments", h.KeyA, paymentBodyTo("void", `"1.00"`, "USD", "CARD", "pm_card_visa"), nil),
		http.StatusUnprocessableEntity, "invoice_void")

	for _, c := range []badCase{
		{method: "GET", path: "/v1/invoices?status=paid", status: 422, code: "status_invalid", field: "status"},
		{method: "GET", path: "/v1/invoices?status=SUCCEEDED", status: 422, code: "status_invalid", field: "status"},
		{method: "GET", path: "/v1/invoices?limit=0", status: 422, code: "limit_invalid", field: "limit"},
		{method: "GET", path: "/v1/invoices?limit=101", status: 422, code: "limit_invalid", field: "limit"},
		{method: "GET", path: "/v1/invoices?starting_after=inv_nope", status: 422, code: "starting_after_not_found", field: "starting_after"},
		{method: "GET", path: "/v1/invoices?starting_after=paid", status: 422, code: "starting_after_not_found", field: "starting_after"},
		{method: "GET", path: "/v1/invoices?starting_after=inv_%00", status: 422, code: "starting_after_not_found", field: "starting_after"},
		{method: "GET", path: "/v1/invoices?starting_after=" + long(101), status: 422, code: "starting_after_invalid", field: "starting_after"},
		{method: "GET", path: "/v1/invoices", key: "-", status: 401, code: "api_key_invalid"},
	} {
		c.run(t, h)
	}
}

func mustInvoiceID(t *testing.T, h *testenv.Harness, ref string) string {
	t.Helper()
	inv, err := h.Store.GetInvoice(t.Context(), h.TenantA, ref)
	if err != nil {
		t.Fatal(err)
	}
	return inv.ID
}

func TestCreateInvoiceBadInput(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	valid := map[string]string{"external_id": `"inv-bad-1"`, "currency": `"USD"`, "amount_due": `"100.00"`}
	body := func(over ...kv) []byte {
		m := map[string]string{}
		for k, v := range valid {
			m[k] = v
		}
		for _, o := range over {
			if o.raw == "" {
				delete(m, o.k)
			} else {
				m[o.k] = o.raw
			}
		}
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%q:%s", k, m[k]))
		}
		return []byte("{" + strings.Join(parts, ",") + "}")
	}
	payees := func(n int) string {
		var ps []string
		for i := range n {
			ps = append(ps, fmt.Sprintf(`{"external_id":"p%d","amount":"0.01"}`, i))
		}
		return "[" + strings.Join(ps, ",") + "]"
	}
	cases := []badCase{
		{name: "external_id missing", body: body(kv{"external_id", ""}), status: 422, code: "external_id_required", field: "external_id"},
		{name: "external_id empty", body: body(kv{"external_id", `""`}), status: 422, code: "external_id_required", field: "external_id"},
		{name: "external_id 256 chars", body: body(kv{"external_id", q(long(256))}), status: 422, code: "external_id_too_long", field: "external_id"},
		{name: "external_id control", body: body(kv{"external_id", `"inv\n1"`}), status: 422, code: "external_id_invalid_characters", field: "external_id"},
		{name: "external_id RTL override", body: body(kv{"external_id", q("inv\u202e1")}), status: 422, code: "external_id_invalid_characters", field: "external_id"},
		{name: "external_id number", body: body(kv{"external_id", `12`}), status: 422, code: "external_id_invalid_type", field: "external_id"},
		{name: "external_id NUL", body: body(kv{"external_id", `"a\u0000b"`}), status: 422, code: "string_contains_nul"},
		{name: "currency missing", body: body(kv{"currency", ""}), status: 422, code: "currency_required", field: "currency"},
		{name: "currency with a digit", body: body(kv{"currency", `"u5d"`}), status: 422, code: "currency_invalid", field: "currency"},
		{name: "currency unknown", body: body(kv{"currency", `"XYZ"`}), status: 422, code: "currency_unknown", field: "currency"},
		{name: "amount_due missing", body: body(kv{"amount_due", ""}), status: 422, code: "amount_due_required", field: "amount_due"},
		{name: "amount_due missing, currency bad", body: body(kv{"amount_due", ""}, kv{"currency", `"us"`}), status: 422, code: "amount_due_required", field: "amount_due"},
		{name: "amount_due null", body: body(kv{"amount_due", `null`}), status: 422, code: "amount_due_required", field: "amount_due"},
		{name: "amount_due zero", body: body(kv{"amount_due", `0`}), status: 422, code: "amount_due_must_be_positive", field: "amount_due"},
		{name: "amount_due negative", body: body(kv{"amount_due", `"-1.00"`}), status: 422, code: "amount_due_must_be_positive", field: "amount_due"},
		{name: "amount_due 12.505", body: body(kv{"amount_due", `12.505`}), status: 422, code: "amount_due_too_many_decimals", field: "amount_due"},
		{name: "amount_due 1.5 JPY", body: body(kv{"amount_due", `1.5`}, kv{"currency", `"JPY"`}), status: 422, code: "amount_due_too_many_decimals", field: "amount_due"},
		{name: "amount_due exponent", body: body(kv{"amount_due", `1e3`}), status: 422, code: "amount_due_exponent_not_allowed", field: "amount_due"},
		{name: "amount_due bool", body: body(kv{"amount_due", `true`}), status: 422, code: "amount_due_invalid_type", field: "amount_due"},
		{name: "amount_due words", body: body(kv{"amount_due", `"ten"`}), status: 422, code: "amount_due_invalid", field: "amount_due"},
		{name: "amount_due overflow", body: body(kv{"amount_due", `"92233720368547758.08"`}), status: 422, code: "amount_due_out_of_range", field: "amount_due"},
		{name: "amount_due above max", body: body(kv{"amount_due", `"1000000000000.01"`}), status: 422, code: "amount_due_too_large", field: "amount_due"},
		{name: "payer empty object", body: body(kv{"payer", `{}`}), status: 422, code: "payer_external_id_required", field: "payer"},
		{name: "payer string", body: body(kv{"payer", `"cust-1"`}), status: 422, code: "payer_invalid_type", field: "payer"},
		{name: "payer external_id too long", body: body(kv{"payer", `{"external_id":` + q(long(256)) + `}`}), status: 422, code: "payer_external_id_too_long", field: "payer"},
		{name: "payer unknown member", body: body(kv{"payer", `{"external_id":"c","name":"x"}`}), status: 422, code: "unknown_field", field: "name"},
		{name: "payer case-variant member", body: body(kv{"payer", `{"External_ID":"c"}`}), status: 422, code: "unknown_field", field: "External_ID"},
		{name: "payees object", body: body(kv{"payees", `{"external_id":"p"}`}), status: 422, code: "payees_invalid_type", field: "payees"},
		{name: "payees 101", body: body(kv{"payees", payees(101)}), status: 422, code: "payees_too_many", field: "payees"},
		{name: "payee without external_id", body: body(kv{"payees", `[{"amount":"1.00"}]`}), status: 422, code: "payees_external_id_required", field: "payees"},
		{name: "payee null", body: body(kv{"payees", `[null]`}), status: 422, code: "payees_external_id_required", field: "payees"},
		{name: "payee duplicate", body: body(kv{"payees", `[{"external_id":"p","amount":1},{"external_id":"p","amount":2}]`}), status: 422, code: "payees_duplicate_external_id", field: "payees"},
		{name: "payee without amount", body: body(kv{"payees", `[{"external_id":"p"}]`}), status: 422, code: "payees_amount_required", field: "payees"},
		{name: "payee amount zero", body: body(kv{"payees", `[{"external_id":"p","amount":0}]`}), status: 422, code: "payees_amount_must_be_positive", field: "payees"},
		{name: "payee amount 0.001", body: body(kv{"payees", `[{"external_id":"p","amount":"0.001"}]`}), status: 422, code: "payees_amount_too_many_decimals", field: "payees"},
		{name: "payees above amount_due", body: body(kv{"payees", `[{"external_id":"p","amount":"60"},{"external_id":"q","amount":"40.01"}]`}), status: 422, code: "payees_exceed_amount_due", field: "payees"},
		{name: "payee unknown member", body: body(kv{"payees", `[{"external_id":"p","amount":1,"share":0.5}]`}), status: 422, code: "unknown_field", field: "share"},
		{name: "due_date month 13", body: body(kv{"due_date", `"2026-13-01"`}), status: 422, code: "due_date_invalid", field: "due_date"},
		{name: "due_date Feb 30", body: body(kv{"due_date", `"2026-02-30"`}), status: 422, code: "due_date_invalid", field: "due_date"},
		{name: "due_date short year", body: body(kv{"due_date", `"26-01-01"`}), status: 422, code: "due_date_invalid", field: "due_date"},
		{name: "due_date unpadded", body: body(kv{"due_date", `"2026-1-5"`}), status: 422, code: "due_date_invalid", field: "due_date"},
		{name: "due_date timestamp", body: body(kv{"due_date", `"2026-01-01T00:00:00Z"`}), status: 422, code: "due_date_invalid", field: "due_date"},
		{name: "due_date year 0001", body: body(kv{"due_date", `"0001-01-01"`}), status: 422, code: "due_date_invalid", field: "due_date"},
		{name: "due_date empty", body: body(kv{"due_date", `""`}), status: 422, code: "due_date_invalid", field: "due_date"},
		{name: "due_date number", body: body(kv{"due_date", `20260101`}), status: 422, code: "due_date_invalid_type", field: "due_date"},
		{name: "metadata value number", body: body(kv{"metadata", `{"a":1}`}), status: 422, code: "metadata_invalid_type", field: "metadata"},
		{name: "metadata empty key", body: body(kv{"metadata", `{"":"v"}`}), status: 422, code: "metadata_key_invalid", field: "metadata"},
		{name: "metadata value 501", body: body(kv{"metadata", `{"a":` + q(long(501)) + `}`}), status: 422, code: "metadata_value_too_long", field: "metadata"},
		{name: "unknown field", body: body(kv{"amount_paid", `"100.00"`}), status: 422, code: "unknown_field", field: "amount_paid"},
		{name: "unknown field status", body: body(kv{"status", `"PAID"`}), status: 422, code: "unknown_field", field: "status"},
		{name: "case-variant amount_due", body: body(kv{"Amount_Due", `"1.00"`}), status: 422, code: "unknown_field", field: "Amount_Due"},
		{name: "duplicate key", body: []byte(`{"external_id":"a","currency":"USD","amount_due":"1","amount_due":"1000"}`), status: 400, code: "body_duplicate_key"},
		{name: "malformed", body: []byte(`{"external_id":`), status: 400, code: "body_malformed"},
		{name: "array body", body: []byte(`[]`), status: 400, code: "body_not_object"},
		{name: "empty body", body: []byte(``), status: 400, code: "body_empty"},
		{name: "text/plain", body: body(), hdr: map[string]string{"Content-Type": "text/plain"}, status: 415, code: "content_type_unsupported"},
		{name: "over 64 KiB", body: body(kv{"metadata", `{"a":` + q(long(70<<10)) + `}`}), status: 413, code: "body_too_large"},
		{name: "bad Idempotency-Key", body: body(), hdr: map[string]string{"Idempotency-Key": "ключ"}, status: 400, code: "idempotency_key_invalid"},
		{name: "no API key", key: "-", body: body(), status: 401, code: "api_key_invalid"},
		{name: "unknown invoice", method: "GET", path: "/v1/invoices/inv_nope", status: 404, code: "resource_not_found"},
		{name: "NUL in invoice ref", method: "GET", path: "/v1/invoices/inv_%00", status: 404, code: "resource_not_found"},
		{name: "invalid UTF-8 in invoice ref", method: "GET", path: "/v1/invoices/inv_%FF", status: 404, code: "resource_not_found"},
		{name: "long invoice ref", method: "GET", path: "/v1/invoices/" + long(256), status: 404, code: "resource_not_found"},
		{name: "injection as invoice ref", method: "GET", path: "/v1/invoices/" + url.PathEscape("' OR '1'='1"), status: 404, code: "resource_not_found"},
		{name: "wrong method", method: "DELETE", path: "/v1/invoices", status: 404, code: "route_not_found"},
	}
	for _, c := range cases {
		if c.path == "" {
			c.path = "/v1/invoices"
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, h)
		})
	}
	t.Run("one code per bad field", func(t *testing.T) {
		t.Parallel()
		r := h.Do("POST", "/v1/invoices", h.KeyA, []byte(`{"external_id":"","currency":"us","amount_due":"1",
			"payer":{},"payees":[{"external_id":"p","amount":"x"}],"due_date":"tomorrow","metadata":{"":"v"}}`), nil)
		e := checkEnvelope(t, r, http.StatusUnprocessableEntity, "external_id_required")
		// With the currency unknown the amounts cannot be read: only their absence can be told.
		diff(t, "fields", map[string]string{"external_id": "external_id_required", "currency": "currency_invalid",
			"payer": "payer_external_id_required", "due_date": "due_date_invalid", "metadata": "metadata_key_invalid"}, e.Fields)
		r = h.Do("POST", "/v1/invoices", h.KeyA, []byte(`{"external_id":"x","currency":"USD","amount_due":"-1",
			"payees":[{"external_id":"p","amount":"1.001"}]}`), nil)
		e = checkEnvelope(t, r, http.StatusUnprocessableEntity, "amount_due_must_be_positive")
		diff(t, "fields", map[string]string{"amount_due": "amount_due_must_be_positive", "payees": "payees_amount_too_many_decimals"}, e.Fields)
	})
	t.Cleanup(func() {
		var invoices, users int
		if err := h.Store.DB().QueryRow(`SELECT (SELECT count(*) FROM invoices), (SELECT count(*) FROM users)`).Scan(&invoices, &users); err != nil ||
			invoices != 1 || users != 0 {
			t.Errorf("bad input left %d invoices (want only %s) and %d users, %v", invoices, testenv.TestInvoice, users, err)
		}
	})
}

// TestInvoiceIsolation: with tenant B's key, no invoice or user of tenant A
// can be read, paid or confirmed to exist (I6).
func TestInvoiceIsolation(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	a := jsonObj(t, h.Do("POST", "/v1/invoices", h.KeyA, []byte(`{"external_id":"a-secret-invoice","currency":"USD","amount_due":"100.00",
		"payer":{"external_id":"a-secret-payer"},"payees":[{"external_id":"a-secret-payee","amount":"1.00"}],"metadata":{"who":"alice@example.com"}}`), nil),
		http.StatusCreated)
	invID := a["id"].(string)
	payerID := a["payer"].(map[string]any)["id"].(string)
	userID := jsonObj(t, h.Do("POST", "/v1/users", h.KeyA, []byte(`{"external_id":"a-secret-user","email":"alice@example.com"}`), nil),
		http.StatusCreated)["id"].(string)
	secrets := []string{invID, payerID, userID, h.TenantA, "a-secret-invoice", "a-secret-payer", "a-secret-payee", "a-secret-user", "alice@example.com"}

	for _, c := range []struct{ name, path, ghost string }{
		{"invoice by id", "/v1/invoices/" + invID, "/v1/invoices/inv_00000000000000000000000000000000"},
		{"invoice by external id", "/v1/invoices/a-secret-invoice", "/v1/invoices/no-such-invoice"},
		{"payer by id", "/v1/users/" + payerID, "/v1/users/usr_00000000000000000000000000000000"},
		{"payer by external id", "/v1/users/a-secret-payer", "/v1/users/no-such-user"},
		{"payee by external id", "/v1/users/a-secret-payee", "/v1/users/no-such-user"},
		{"user by id", "/v1/users/" + userID, "/v1/users/usr_00000000000000000000000000000000"},
		{"user by external id", "/v1/users/a-secret-user", "/v1/users/no-such-user"},
	} {
		r := h.Do("GET", c.path, h.KeyB, nil, nil)
		e1 := checkEnvelope(t, r, http.StatusNotFound, "resource_not_found")
		leaks(t, r, secrets)
		e2 := checkEnvelope(t, h.Do("GET", c.ghost, h.KeyB, nil, nil), http.StatusNotFound, "resource_not_found")
		if e1.Message != e2.Message {
			t.Errorf("%s: answers differ for A's object and a missing one: %q vs %q", c.name, e1.Message, e2.Message)
		}
	}
	// B's list is empty, A's invoice is no cursor for B, and B cannot pay it.
	r := h.Do("GET", "/v1/invoices", h.KeyB, nil, nil)
	if m := jsonObj(t, r, http.StatusOK); len(m["data"].([]any)) != 0 {
		t.Errorf("B lists %s", r.Body)
	}
	leaks(t, r, secrets)
	r = h.Do("GET", "/v1/invoices?starting_after="+invID, h.KeyB, nil, nil)
	checkEnvelope(t, r, http.StatusUnprocessableEntity, "starting_after_not_found")
	leaks(t, r, secrets)
	for _, dest := range []string{invID, "a-secret-invoice"} {
		r = h.Do("POST", "/v1/payments", h.KeyB, paymentBodyTo(dest, `"1.00"`, "USD", "CARD", "pm_card_visa"), nil)
		checkEnvelope(t, r, http.StatusUnprocessableEntity, "destination_id_not_found")
		leaks(t, r, secrets)
	}
	// A's external ids are free for B, and name B's own objects.
	b := jsonObj(t, h.Do("POST", "/v1/invoices", h.KeyB, []byte(`{"external_id":"a-secret-invoice","currency":"EUR","amount_due":"1.00",
		"payer":{"external_id":"a-secret-payer"}}`), nil), http.StatusCreated)
	if b["id"] == invID || b["payer"].(map[string]any)["id"] == payerID {
		t.Errorf("B's invoice shares A's objects: %v", b)
	}
	bu := jsonObj(t, h.Do("POST", "/v1/users", h.KeyB, []byte(`{"external_id":"a-secret-user"}`), nil), http.StatusCreated)
	if bu["id"] == userID || bu["email"] != nil {
		t.Errorf("B's user = %v", bu)
	}
	// And A still sees its own, unchanged.
	if got := getInvoice(t, h, h.KeyA, "a-secret-invoice"); got["id"] != invID || got["currency"] != "USD" {
		t.Errorf("A's invoice = %v", got)
	}
	if u := jsonObj(t, h.Do("GET", "/v1/users/a-secret-user", h.KeyA, nil, nil), http.StatusOK); u["id"] != userID || u["email"] != "alice@example.com" {
		t.Errorf("A's user = %v", u)
	}
}

// watchInvoice checks, until stop, that an invoice is never over-applied
// (I3) as stored: paid ≤ reserved ≤ due. The schema's CHECK says so; this
// proves no path gets around it.
func watchInvoice(t *testing.T, h *testenv.Harness, id string) (stop func()) {
	t.Helper()
	done, result := make(chan struct{}), make(chan error, 1)
	go func() {
		var bad error
		for {
			select {
			case <-done:
				result <- bad
				return
			default:
			}
			var due, reserved, paid int64
			err := h.Store.DB().QueryRow(`SELECT amount_due, amount_reserved, amount_paid FROM invoices WHERE id = $1`, id).Scan(&due, &reserved, &paid)
			if err == nil && bad == nil && (paid < 0 || paid > reserved || reserved > due) {
				bad = fmt.Errorf("invoice %s: paid %d, reserved %d, due %d", id, paid, reserved, due)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return func() {
		t.Helper()
		close(done)
		if err := <-result; err != nil {
			t.Error(err)
		}
	}
}

// TestInvoiceBalances follows one invoice through every kind of payment: a
// balance moves only when a payment succeeds (settles), and moves back when
// it is refunded or returned, in the transaction of the transition.
func TestInvoiceBalances(t *testing.T) {
	t.Parallel()
	// A returned ACH payment stays settled long enough to be seen paying.
	h := testenv.Start(t, testenv.Options{Sandbox: sandbox.Config{ReturnDelay: 1500 * time.Millisecond},
		Processor: processor.Config{ReturnWindow: 10 * time.Second}})
	id := invoice(t, h, h.KeyA, "inv-balances", "USD", "100.00")
	defer watchInvoice(t, h, id)()
	pay := func(amount, method, pm string) string {
		t.Helper()
		return jsonObj(t, h.Do("POST", "/v1/payments", h.KeyA, paymentBodyTo("inv-balances", amount, "USD", method, pm), nil),
			http.StatusCreated)["id"].(string)
	}
	final := func(id string, want payment.Status) {
		t.Helper()
		if p := h.WaitFinal(id, 20*time.Second); p.Status != want {
			t.Fatalf("payment %s = %s, want %s", id, p.Status, want)
		}
	}
	waitInvoice(t, h, id, invoiceView{"100.00", "0.00", "100.00", "OPEN"})

	// A card payment of 40.00 pays 40.00 once it succeeds.
	card := pay(`"40.00"`, "CARD", "pm_card_visa")
	final(card, payment.StatusSucceeded)
	waitInvoice(t, h, id, invoiceView{"100.00", "40.00", "60.00", "PARTIALLY_PAID"})

	// A declined payment pays nothing, and what it held is free again.
	final(pay(`"5.00"`, "CARD", "pm_card_declined"), payment.StatusFailed)
	waitInvoice(t, h, id, invoiceView{"100.00", "40.00", "60.00", "PARTIALLY_PAID"})
	var reserved int64
	if err := h.Store.DB().QueryRow(`SELECT amount_reserved FROM invoices WHERE id = $1`, id).Scan(&reserved); err != nil || reserved != 40_00 {
		t.Errorf("reserved after a decline = %d, %v; want 4000", reserved, err)
	}

	// More than what remains is refused, and nothing is recorded.
	before := countPayments(t, h, h.TenantA)
	checkEnvelope(t, h.Do("POST", "/v1/payments", h.KeyA, paymentBodyTo("inv-balances", `"60.01"`, "USD", "CARD", "pm_card_visa"), nil),
		http.StatusUnprocessableEntity, "invoice_over_applied")
	if n := countPayments(t, h, h.TenantA); n != before {
		t.Errorf("an over-applying payment was recorded: %d payments, want %d", n, before)
	}

	// A partial refund of 10.00 gives 10.00 back.
	jsonObj(t, h.Do("POST", "/v1/payments/"+card+"/refunds", h.KeyA, []byte(`{"amount":"10.00"}`), nil), http.StatusCreated)
	waitInvoice(t, h, id, invoiceView{"100.00", "30.00", "70.00", "PARTIALLY_PAID"})

	// An ACH payment that settles and is then returned (R01) pays the
	// invoice while settled and gives it all back when returned.
	ach := pay(`"20.00"`, "ACH", "ba_10001")
	waitInvoice(t, h, id, invoiceView{"100.00", "50.00", "50.00", "PARTIALLY_PAID"})
	if p, err := h.Store.GetPayment(t.Context(), h.TenantA, ach); err != nil || p.Status != payment.StatusSucceeded {
		t.Errorf("ACH payment while the invoice shows it paid: %v %v", p.Status, err)
	}
	final(ach, payment.StatusReturned)
	waitInvoice(t, h, id, invoiceView{"100.00", "30.00", "70.00", "PARTIALLY_PAID"})

	// Paying exactly what remains pays the invoice.
	final(pay(`"70.00"`, "CARD", "pm_card_visa"), payment.StatusSucceeded)
	waitInvoice(t, h, id, invoiceView{"100.00", "100.00", "0.00", "PAID"})
	checkEnvelope(t, h.Do("POST", "/v1/payments", h.KeyA, paymentBodyTo("inv-balances", `0.01`, "USD", "OFFLINE", ""), nil),
		http.StatusUnprocessableEntity, "invoice_over_applied")

	// The invoice's amount_paid is the sum of what its payments' lines still apply.
	var applied int64
	if err := h.Store.DB().QueryRow(`SELECT COALESCE(sum(applied_amount - released_amount), 0) FROM payment_applications
		WHERE invoice_id = $1 AND state = 'applied'`, id).Scan(&applied); err != nil || applied != 100_00 {
		t.Errorf("applied lines sum to %d, %v; want 10000", applied, err)
	}
}

// TestInvoiceConcurrentPayments: 30 payments of 10.00 at once against an
// invoice of 100.00 — exactly ten are accepted, the rest are refused as
// over-applying it, and it is never over-applied (I3).
func TestInvoiceConcurrentPayments(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	id := invoice(t, h, h.KeyA, "inv-race", "USD", "100.00")
	stop := watchInvoice(t, h, id)
	const n = 30
	resps := make([]testenv.Response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resps[i] = h.Do("POST", "/v1/payments", h.KeyA, paymentBodyTo("inv-race", `"10.00"`, "USD", "CARD", "pm_card_visa"), nil)
		}()
	}
	close(start)
	wg.Wait()
	var ids []string
	for _, r := range resps {
		switch r.Status {
		case http.StatusCreated:
			ids = append(ids, jsonObj(t, r, http.StatusCreated)["id"].(string))
		case http.StatusUnprocessableEntity:
			if e := checkEnvelope(t, r, http.StatusUnprocessableEntity, "invoice_over_applied"); e.Fields["amount"] != "invoice_over_applied" {
				t.Errorf("fields = %v", e.Fields)
			}
		default:
			t.Errorf("payment = %d %s", r.Status, r.Body)
		}
	}
	if len(ids) != 10 {
		t.Errorf("%d payments accepted, want 10", len(ids))
	}
	if got := countPayments(t, h, h.TenantA); got != len(ids) {
		t.Errorf("%d payments recorded, %d accepted", got, len(ids))
	}
	for _, p := range ids {
		h.WaitFinal(p, 20*time.Second)
	}
	waitInvoice(t, h, "inv-race", invoiceView{"100.00", "100.00", "0.00", "PAID"})
	stop()
}

// TestCreateInvoiceConcurrent: the same create at once, without an
// Idempotency-Key, makes one invoice; invoices naming the same new users in
// any order never deadlock and share the users.
func TestCreateInvoiceConcurrent(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	const n = 20
	resps := make([]testenv.Response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	same := []byte(`{"external_id":"inv-once","currency":"USD","amount_due":"10.00","payer":{"external_id":"u-payer"},
		"payees":[{"external_id":"u1","amount":"1.00"},{"external_id":"u2","amount":"2.00"}]}`)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resps[i] = h.Do("POST", "/v1/invoices", h.KeyA, same, nil)
		}()
	}
	close(start)
	wg.Wait()
	created, replayed := 0, 0
	for _, r := range resps {
		switch {
		case r.Status == http.StatusCreated:
			created++
		case r.Status == http.StatusOK && r.Header.Get("Idempotent-Replayed") == "true":
			replayed++
		default:
			t.Errorf("create = %d %s", r.Status, r.Body)
		}
		if r.Status < 300 && jsonObj(t, r, r.Status)["external_id"] != "inv-once" {
			t.Errorf("body %s", r.Body)
		}
	}
	if created != 1 || replayed != n-1 {
		t.Errorf("created %d, replayed %d; want 1 and %d", created, replayed, n-1)
	}

	// Different invoices, the same new users in different orders.
	users := []string{"v1", "v2", "v3", "v4"}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ps []string
			for j := range users {
				u := users[(i+j)%len(users)]
				ps = append(ps, `{"external_id":"`+u+`","amount":"1.00"}`)
			}
			resps[i] = h.Do("POST", "/v1/invoices", h.KeyA, []byte(fmt.Sprintf(`{"external_id":"inv-shared-%d","currency":"USD",
				"amount_due":"10.00","payer":{"external_id":"%s"},"payees":[%s]}`, i, users[i%len(users)], strings.Join(ps, ","))), nil)
		}()
	}
	wg.Wait()
	for _, r := range resps {
		if r.Status != http.StatusCreated {
			t.Errorf("create = %d %s", r.Status, r.Body)
		}
	}
	var rows, distinct int
	if err := h.Store.DB().QueryRow(`SELECT count(*), count(DISTINCT external_id) FROM users`).Scan(&rows, &distinct); err != nil ||
		rows != 7 || distinct != 7 {
		t.Errorf("users: %d rows, %d external ids, %v; want 7 and 7", rows, distinct, err)
	}
	var invoices int
	if err := h.Store.DB().QueryRow(`SELECT count(*) FROM invoices`).Scan(&invoices); err != nil || invoices != 2+n {
		t.Errorf("invoices = %d, %v; want %d", invoices, err, 2+n)
	}
}

// TestInvoiceExternalIDInPath: an external id is up to 255 characters of
// any script; escaped, it names its invoice in a path.
func TestInvoiceExternalIDInPath(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	for _, ext := range []string{"acme/2026/7", "facture été №7", "a?b#c%d", "' OR '1'='1", strings.Repeat("é", 255)} {
		id := invoice(t, h, h.KeyA, ext, "EUR", "1.00")
		if got := getInvoice(t, h, h.KeyA, ext); got["id"] != id || got["external_id"] != ext {
			t.Errorf("GET %q = %v %v, want %s", ext, got["id"], got["external_id"], id)
		}
		// and a payment names it the same way, unescaped, in its body
		r := h.Do("POST", "/v1/payments", h.KeyA, paymentBodyTo(ext, `"1.00"`, "EUR", "OFFLINE", ""), nil)
		if m := jsonObj(t, r, http.StatusCreated); m["destination_id"] != ext {
			t.Errorf("payment destination_id = %v", m["destination_id"])
		}
	}
}
