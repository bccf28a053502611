package intake_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
)

// paymentResponseFields are the members of seed 001's payment object.
var paymentResponseFields = []string{
	"id", "amount", "currency", "destination_id", "destination_type", "idempotency_key", "invoice_number",
	"metadata", "payment_method_id", "payment_method_type", "payment_status", "track_attempts", "attempts",
	"created_at", "created_by", "updated_at", "updated_by", "error_message", "failed_at", "succeeded_at",
	"refunded_at", "tenant_id",
}

var timestampRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// rawFields decodes a body into its members' raw JSON.
func rawFields(t *testing.T, body []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return m
}

func TestCreatePaymentResponse(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	inv := jsonObj(t, h.Do("GET", "/v1/invoices/"+invoice(t, h, h.KeyA, "inv_2024_001", "USD", "100.00"), h.KeyA, nil, nil), http.StatusOK)
	invoice(t, h, h.KeyA, "inv_1", "USD", "100.00")
	body := []byte(`{"amount":12.5,"currency":"USD","destination_id":"inv_2024_001","destination_type":"INVOICE",
		"idempotency_key":"order-1001","metadata":{"order":"1001","note":"ünïcode ✓"},
		"payment_method_id":"pm_card_visa","payment_method_type":"CARD","process_payment":true}`)
	r := h.Do("POST", "/v1/payments", h.KeyA, body, nil)
	if r.Status != http.StatusCreated {
		t.Fatalf("create = %d %s", r.Status, r.Body)
	}
	raw := rawFields(t, r.Body)
	for _, f := range paymentResponseFields {
		if _, ok := raw[f]; !ok {
			t.Errorf("response lacks seed-001 field %q", f)
		}
	}
	// The amount is a JSON number with the currency's decimals, as the seed shows.
	if string(raw["amount"]) != "12.50" || !bytes.Contains(r.Body, []byte(`"amount":12.50,`)) {
		t.Errorf("amount = %s, want the JSON number 12.50", raw["amount"])
	}
	var got struct {
		ID                string            `json:"id"`
		Currency          string            `json:"currency"`
		DestinationID     string            `json:"destination_id"`
		DestinationType   string            `json:"destination_type"`
		IdempotencyKey    *string           `json:"idempotency_key"`
		InvoiceNumber     string            `json:"invoice_number"`
		Metadata          map[string]string `json:"metadata"`
		PaymentMethodID   string            `json:"payment_method_id"`
		PaymentMethodType string            `json:"payment_method_type"`
		PaymentStatus     string            `json:"payment_status"`
		TrackAttempts     bool              `json:"track_attempts"`
		Attempts          []any             `json:"attempts"`
		CreatedAt         string            `json:"created_at"`
		CreatedBy         string            `json:"created_by"`
		UpdatedAt         string            `json:"updated_at"`
		UpdatedBy         string            `json:"updated_by"`
		ErrorMessage      *string           `json:"error_message"`
		FailedAt          *string           `json:"failed_at"`
		SucceededAt       *string           `json:"succeeded_at"`
		RefundedAt        *string           `json:"refunded_at"`
		TenantID          string            `json:"tenant_id"`
	}
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.ID, "pay_") || !regexp.MustCompile(`^INV-[0-9A-F]{10}$`).MatchString(got.InvoiceNumber) {
		t.Errorf("id %q invoice_number %q", got.ID, got.InvoiceNumber)
	}
	if got.InvoiceNumber != inv["invoice_number"] {
		t.Errorf("invoice_number %q, want the invoice's %v", got.InvoiceNumber, inv["invoice_number"])
	}
	for name, ts := range map[string]string{"created_at": got.CreatedAt, "updated_at": got.UpdatedAt} {
		if !timestampRE.MatchString(ts) {
			t.Errorf("%s = %q, want RFC 3339 UTC with milliseconds", name, ts)
		}
	}
	if got.CreatedBy == "" || got.CreatedBy != got.UpdatedBy || got.Attempts == nil || string(raw["attempts"]) != "[]" {
		t.Errorf("created_by %q updated_by %q attempts %s", got.CreatedBy, got.UpdatedBy, raw["attempts"])
	}
	for _, f := range []string{"error_message", "failed_at", "succeeded_at", "refunded_at"} {
		if string(raw[f]) != "null" {
			t.Errorf("%s = %s, want null on a new payment", f, raw[f])
		}
	}
	want := map[string]any{
		"currency": "USD", "destination_id": "inv_2024_001", "destination_type": "INVOICE", "idempotency_key": "order-1001",
		"payment_method_id": "pm_card_visa", "payment_method_type": "CARD", "payment_status": "PENDING", "tenant_id": h.TenantA,
		"track_attempts": true, "metadata": map[string]any{"order": "1001", "note": "ünïcode ✓"},
	}
	all := jsonObj(t, r, http.StatusCreated)
	some := map[string]any{}
	for k := range want {
		some[k] = all[k]
	}
	diff(t, "payment", want, some)

	// GET answers the same object.
	g := h.Do("GET", "/v1/payments/"+got.ID, h.KeyA, nil, nil)
	if g.Status != http.StatusOK || !bytes.Equal(g.Body, r.Body) {
		t.Errorf("GET = %d %s\nwant %s", g.Status, g.Body, r.Body)
	}
	// A payment with no business key, no metadata: null and {}.
	r2 := rawFields(t, jsonObjBody(t, h.Do("POST", "/v1/payments", h.KeyA, paymentBody(`1`, "USD", "OFFLINE", ""), nil), http.StatusCreated))
	if string(r2["idempotency_key"]) != "null" || string(r2["metadata"]) != "{}" || string(r2["amount"]) != "1.00" ||
		string(r2["payment_method_type"]) != `"OFFLINE"` {
		t.Errorf("minimal payment: idempotency_key %s metadata %s amount %s", r2["idempotency_key"], r2["metadata"], r2["amount"])
	}
}

func jsonObjBody(t *testing.T, r testenv.Response, status int) []byte {
	t.Helper()
	jsonObj(t, r, status)
	return r.Body
}

func TestCreatePaymentAmounts(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	cases := []struct {
		amount, currency string
		wire             string // the amount in the response
		minor            int64  // as stored
	}{
		{`12.5`, "USD", `12.50`, 1250},
		{`"12.50"`, "USD", `12.50`, 1250},
		{`"12.500"`, "USD", `12.50`, 1250},
		{`0.01`, "USD", `0.01`, 1},
		{`1500`, "JPY", `1500`, 1500},
		{`"1500"`, "JPY", `1500`, 1500},
		{`1.0`, "JPY", `1`, 1},
		{`"1.234"`, "BHD", `1.234`, 1234},
		{`0.001`, "KWD", `0.001`, 1},
		{`"1000000000000.00"`, "USD", `1000000000000.00`, 100_000_000_000_000}, // the maximum
		{`"123456789.99"`, "EUR", `123456789.99`, 12345678999},
	}
	for i, c := range cases {
		t.Run(c.amount+" "+c.currency, func(t *testing.T) {
			t.Parallel()
			// an invoice per case, in its currency, due exactly the amount paid
			dest := fmt.Sprintf("inv_amounts_%d", i)
			invoice(t, h, h.KeyA, dest, c.currency, c.wire)
			r := h.Do("POST", "/v1/payments", h.KeyA, paymentBodyTo(dest, c.amount, c.currency, "CARD", "pm_card_visa"), nil)
			raw := rawFields(t, jsonObjBody(t, r, http.StatusCreated))
			if string(raw["amount"]) != c.wire || string(raw["currency"]) != `"`+c.currency+`"` {
				t.Errorf("amount %s currency %s, want %s %s", raw["amount"], raw["currency"], c.wire, c.currency)
			}
			var id string
			_ = json.Unmarshal(raw["id"], &id)
			p, err := h.Store.GetPayment(t.Context(), h.TenantA, id)
			if err != nil {
				t.Fatal(err)
			}
			diff(t, "stored money", payment.Money{Minor: c.minor, Currency: c.currency}, p.Amount)
		})
	}
}

func TestAuthHeaders(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	invoice(t, h, h.KeyA, "inv_1", "USD", "100.00")
	invoice(t, h, h.KeyB, "inv_1", "USD", "100.00")
	for _, c := range []struct {
		name string
		hdr  map[string]string
	}{
		{"x-api-key", map[string]string{"x-api-key": h.KeyA}},
		{"X-API-KEY", map[string]string{"X-API-KEY": h.KeyA}},
		{"Bearer", map[string]string{"Authorization": "Bearer " + h.KeyA}},
		{"bearer lower-case", map[string]string{"Authorization": "bearer " + h.KeyA}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m := jsonObj(t, h.Do("POST", "/v1/payments", "", paymentBody(`"1.00"`, "USD", "CARD", "pm_card_visa"), c.hdr), http.StatusCreated)
			if m["tenant_id"] != h.TenantA {
				t.Errorf("tenant_id = %v, want %s", m["tenant_id"], h.TenantA)
			}
			jsonObj(t, h.Do("GET", "/v1/payments", "", nil, c.hdr), http.StatusOK)
		})
	}
	t.Run("key B is tenant B", func(t *testing.T) {
		t.Parallel()
		m := jsonObj(t, h.Do("POST", "/v1/payments", "", paymentBody(`"1.00"`, "USD", "CARD", "pm_card_visa"),
			map[string]string{"Authorization": "Bearer " + h.KeyB}), http.StatusCreated)
		if m["tenant_id"] != h.TenantB {
			t.Errorf("tenant_id = %v, want %s", m["tenant_id"], h.TenantB)
		}
	})
}

func TestListPayments(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	var ids []string // oldest first
	for i := 1; i <= 7; i++ {
		ids = append(ids, h.CreatePayment("CARD", "pm_card_visa", fmt.Sprintf("%d.00", i)))
	}
	// Cancel two: seed 001 shows them as FAILED.
	for _, id := range []string{ids[1], ids[4]} {
		jsonObj(t, h.Do("POST", "/v1/payments/"+id+"/cancel", h.KeyA, nil, nil), http.StatusOK)
	}
	newest := make([]string, len(ids))
	for i, id := range ids {
		newest[len(ids)-1-i] = id
	}
	// payd's cursor list: a query with starting_after (empty for the first
	// page); TestListPaymentsOffset has the vendor's convention.
	page := func(query string) ([]string, bool) {
		t.Helper()
		if !strings.Contains(query, "starting_after") {
			query += map[bool]string{true: "?", false: "&"}[query == ""] + "starting_after="
		}
		m := jsonObj(t, h.Do("GET", "/v1/payments"+query, h.KeyA, nil, nil), http.StatusOK)
		if m["object"] != "list" {
			t.Errorf("object = %v", m["object"])
		}
		var out []string
		for _, d := range m["data"].([]any) {
			out = append(out, d.(map[string]any)["id"].(string))
		}
		return out, m["has_more"].(bool)
	}
	// Walk the whole list three at a time.
	var walked []string
	after := ""
	for pages := 0; ; pages++ {
		q := "?limit=3"
		if after != "" {
			q += "&starting_after=" + after
		}
		got, more := page(q)
		walked = append(walked, got...)
		if !more {
			if len(got) != 1 {
				t.Errorf("last page has %d, want 1", len(got))
			}
			break
		}
		if len(got) != 3 || pages > 5 {
			t.Fatalf("page %d: %v more=%v", pages, got, more)
		}
		after = got[len(got)-1]
	}
	diff(t, "walked list (newest first)", newest, walked)

	got, more := page("")
	diff(t, "default page", newest, got)
	if more {
		t.Errorf("default page has_more with 7 payments")
	}
	got, more = page("?limit=7")
	if len(got) != 7 || more {
		t.Errorf("limit=7: %d more=%v", len(got), more)
	}
	got, more = page("?limit=1&starting_after=" + ids[0])
	if len(got) != 0 || more {
		t.Errorf("after the oldest: %v more=%v", got, more)
	}
	got, _ = page("?status=FAILED")
	diff(t, "FAILED", []string{ids[4], ids[1]}, got)
	got, _ = page("?status=PENDING&limit=2")
	diff(t, "PENDING page 1", []string{ids[6], ids[5]}, got)
	got, more = page("?status=PENDING&limit=2&starting_after=" + ids[5])
	diff(t, "PENDING page 2 skips the canceled", []string{ids[3], ids[2]}, got)
	if !more {
		t.Errorf("PENDING page 2 has_more = false, want true (ids[0] follows)")
	}
	got, _ = page("?status=SUCCEEDED")
	if len(got) != 0 {
		t.Errorf("SUCCEEDED = %v", got)
	}
	// Each element is the full seed object.
	m := jsonObj(t, h.Do("GET", "/v1/payments?limit=1", h.KeyA, nil, nil), http.StatusOK)
	first, _ := json.Marshal(m["items"].([]any)[0])
	raw := rawFields(t, first)
	for _, f := range paymentResponseFields {
		if _, ok := raw[f]; !ok {
			t.Errorf("list element lacks %q", f)
		}
	}
}

func TestCancelPayment(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	id := h.CreatePayment("CARD", "pm_card_visa", "10.00")
	r := h.Do("POST", "/v1/payments/"+id+"/cancel", h.KeyA, nil, nil)
	m := jsonObj(t, r, http.StatusOK)
	if m["payment_status"] != "FAILED" || m["error_message"] != "payment canceled" {
		t.Errorf("canceled payment: status %v error_message %v", m["payment_status"], m["error_message"])
	}
	if s, _ := m["failed_at"].(string); !timestampRE.MatchString(s) {
		t.Errorf("failed_at = %v", m["failed_at"])
	}
	if m["succeeded_at"] != nil {
		t.Errorf("succeeded_at = %v", m["succeeded_at"])
	}
	p, err := h.Store.GetPayment(t.Context(), h.TenantA, id)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != payment.StatusCanceled || p.NextStep != payment.StepNone {
		t.Errorf("stored: %s next %q", p.Status, p.NextStep)
	}
	again := h.Do("POST", "/v1/payments/"+id+"/cancel", h.KeyA, nil, nil)
	e := checkEnvelope(t, again, http.StatusConflict, "payment_not_cancelable")
	if !strings.Contains(e.Message, "FAILED") {
		t.Errorf("message %q does not say the payment is FAILED", e.Message)
	}
	// A canceled payment cannot be refunded either.
	checkEnvelope(t, h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{}`), nil), http.StatusConflict, "invalid_state")
	tl := timeline(t, h, id)
	diff(t, "timeline", []step{{"", "PENDING", 0}, {"PENDING", "CANCELED", 0}}, tl.steps())
	if tl.Events[1].Reason != "canceled by the merchant" || !strings.HasPrefix(tl.Events[1].Actor, "key_") {
		t.Errorf("cancel event = %+v", tl.Events[1])
	}
}

func TestCancelAfterProcessing(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	id := h.CreatePayment("CARD", "pm_card_visa", "10.00")
	h.WaitFinal(id, 15*time.Second)
	r := h.Do("POST", "/v1/payments/"+id+"/cancel", h.KeyA, nil, nil)
	e := checkEnvelope(t, r, http.StatusConflict, "payment_not_cancelable")
	if !strings.Contains(e.Message, "SUCCEEDED") {
		t.Errorf("message %q", e.Message)
	}
}

type timelineBody struct {
	PaymentID string `json:"payment_id"`
	Status    string `json:"status"`
	Events    []struct {
		From          *string `json:"from"`
		To            string  `json:"to"`
		Reason        string  `json:"reason"`
		AttemptNumber int     `json:"attempt_number"`
		Actor         string  `json:"actor"`
		CreatedAt     string  `json:"created_at"`
	} `json:"events"`
	Attempts []struct {
		AttemptNumber int     `json:"attempt_number"`
		Status        string  `json:"status"`
		FailureClass  *string `json:"failure_class"`
	} `json:"attempts"`
}

type step struct {
	From, To string
	Attempt  int
}

func (tl timelineBody) steps() []step {
	out := make([]step, len(tl.Events))
	for i, e := range tl.Events {
		from := ""
		if e.From != nil {
			from = *e.From
		}
		out[i] = step{from, e.To, e.AttemptNumber}
	}
	return out
}

func timeline(t *testing.T, h *testenv.Harness, id string) timelineBody {
	t.Helper()
	r := h.Do("GET", "/v1/payments/"+id+"/timeline", h.KeyA, nil, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("timeline = %d %s", r.Status, r.Body)
	}
	var tl timelineBody
	if err := json.Unmarshal(r.Body, &tl); err != nil {
		t.Fatal(err)
	}
	for i, e := range tl.Events {
		if e.Reason == "" || e.Actor == "" || !timestampRE.MatchString(e.CreatedAt) {
			t.Errorf("event %d incomplete: %+v", i, e)
		}
	}
	return tl
}

func TestTimeline(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	cases := []struct {
		pm       string
		status   string
		steps    []step
		attempts []string
	}{
		{"pm_card_visa", "SUCCEEDED",
			[]step{{"", "PENDING", 0}, {"PENDING", "PROCESSING", 1}, {"PROCESSING", "SUCCEEDED", 1}},
			[]string{"SUCCEEDED"}},
		{"pm_card_declined", "FAILED",
			[]step{{"", "PENDING", 0}, {"PENDING", "PROCESSING", 1}, {"PROCESSING", "FAILED", 1}},
			[]string{"FAILED"}},
		{"pm_card_flaky", "SUCCEEDED",
			[]step{{"", "PENDING", 0},
				{"PENDING", "PROCESSING", 1}, {"PROCESSING", "PENDING", 1},
				{"PENDING", "PROCESSING", 2}, {"PROCESSING", "PENDING", 2},
				{"PENDING", "PROCESSING", 3}, {"PROCESSING", "SUCCEEDED", 3}},
			[]string{"FAILED", "FAILED", "SUCCEEDED"}},
	}
	for _, c := range cases {
		t.Run(c.pm, func(t *testing.T) {
			t.Parallel()
			id := h.CreatePayment("CARD", c.pm, "10.00")
			h.WaitFinal(id, 20*time.Second)
			tl := timeline(t, h, id)
			if tl.PaymentID != id || tl.Status != c.status {
				t.Errorf("timeline of %s: payment_id %s status %s, want %s", id, tl.PaymentID, tl.Status, c.status)
			}
			diff(t, "transitions", c.steps, tl.steps())
			var atts []string
			for i, a := range tl.Attempts {
				if a.AttemptNumber != i+1 {
					t.Errorf("attempt %d numbered %d", i+1, a.AttemptNumber)
				}
				atts = append(atts, a.Status)
			}
			diff(t, "attempts", c.attempts, atts)
			if tl.Events[0].Reason != "created" || !strings.HasPrefix(tl.Events[0].Actor, "key_") {
				t.Errorf("creation event = %+v", tl.Events[0])
			}
			// Every step the timeline shows is one the lifecycle allows (I4).
			for _, s := range tl.steps()[1:] {
				if !payment.CanTransition(payment.Status(s.From), payment.Status(s.To)) {
					t.Errorf("timeline shows a forbidden move %s → %s", s.From, s.To)
				}
			}
			// The payment's own attempts agree with the timeline's.
			m := jsonObj(t, h.Do("GET", "/v1/payments/"+id, h.KeyA, nil, nil), http.StatusOK)
			if n := len(m["attempts"].([]any)); n != len(c.attempts) {
				t.Errorf("payment shows %d attempts, want %d", n, len(c.attempts))
			}
		})
	}
}

// money reads a JSON number amount as minor units of USD.
func money(t *testing.T, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("amount %v (%T) is not a JSON number", v, v)
	}
	minor, err := payment.ParseMajor(n.String(), "USD")
	if err != nil {
		t.Fatalf("amount %s: %v", n, err)
	}
	return minor
}

func TestRefunds(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	id := h.CreatePayment("CARD", "pm_card_visa", "10.00")
	h.WaitFinal(id, 15*time.Second)
	waitStatus := func(want string, refunded int64) map[string]any {
		t.Helper()
		var m map[string]any
		waitFor(t, 15*time.Second, "payment "+want, func() bool {
			m = jsonObj(t, h.Do("GET", "/v1/payments/"+id, h.KeyA, nil, nil), http.StatusOK)
			return m["payment_status"] == want && money(t, m["refunded_amount"]) == refunded
		})
		return m
	}

	ref := jsonObj(t, h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{"amount":"4.00","reason":"damaged"}`), nil), http.StatusCreated)
	if money(t, ref["amount"]) != 400 || ref["currency"] != "USD" || ref["reason"] != "damaged" || ref["status"] != "PENDING" ||
		ref["payment_id"] != id || !strings.HasPrefix(ref["id"].(string), payment.PrefixRefund) {
		t.Errorf("refund = %v", ref)
	}
	m := waitStatus("PARTIALLY_REFUNDED", 400)
	if s, _ := m["refunded_at"].(string); !timestampRE.MatchString(s) {
		t.Errorf("refunded_at = %v", m["refunded_at"])
	}

	// More than what is left: refused, and nothing is reserved.
	checkEnvelope(t, h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{"amount":"6.01"}`), nil),
		http.StatusUnprocessableEntity, "refund_exceeds_refundable")
	// The rest, by leaving the amount out.
	ref = jsonObj(t, h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{}`), nil), http.StatusCreated)
	if money(t, ref["amount"]) != 600 {
		t.Errorf("refund of the rest = %v, want 6.00", ref["amount"])
	}
	waitStatus("REFUNDED", 1000)
	// fully refunded: nothing is left to refund, however the request says it
	checkEnvelope(t, h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{"amount":"0.01"}`), nil),
		http.StatusUnprocessableEntity, "refund_exceeds_refundable")
	checkEnvelope(t, h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{}`), nil),
		http.StatusUnprocessableEntity, "refund_exceeds_refundable")

	tl := timeline(t, h, id)
	diff(t, "timeline", []step{{"", "PENDING", 0}, {"PENDING", "PROCESSING", 1}, {"PROCESSING", "SUCCEEDED", 1},
		{"SUCCEEDED", "PARTIALLY_REFUNDED", 0}, {"PARTIALLY_REFUNDED", "REFUNDED", 0}}, tl.steps())

	// I3 at the gateway: refunded exactly what was captured.
	for _, c := range h.Sandbox.Ledger() {
		if c.PaymentID == id && (c.Amount != 1000 || c.Refunded != 1000) {
			t.Errorf("ledger: charged %d refunded %d, want 1000 and 1000", c.Amount, c.Refunded)
		}
	}

	t.Run("failed payment", func(t *testing.T) {
		t.Parallel()
		id := h.CreatePayment("CARD", "pm_card_declined", "10.00")
		h.WaitFinal(id, 15*time.Second)
		checkEnvelope(t, h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{"amount":"1.00"}`), nil),
			http.StatusConflict, "invalid_state")
		checkEnvelope(t, h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{}`), nil),
			http.StatusConflict, "invalid_state")
	})
	t.Run("refund idempotency", func(t *testing.T) {
		t.Parallel()
		id := h.CreatePayment("CARD", "pm_card_visa", "10.00")
		h.WaitFinal(id, 15*time.Second)
		hdr := map[string]string{"Idempotency-Key": "refund-once"}
		first := h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{"amount":"3.00"}`), hdr)
		jsonObj(t, first, http.StatusCreated)
		again := h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{"amount":3}`), hdr)
		if again.Status != http.StatusCreated || again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.Body, first.Body) {
			t.Errorf("refund replay = %d %s", again.Status, again.Body)
		}
		checkEnvelope(t, h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{"amount":"4.00"}`), hdr),
			http.StatusUnprocessableEntity, "idempotency_key_reused")
		var n int
		if err := h.Store.DB().QueryRow(`SELECT count(*) FROM refunds WHERE payment_id = $1`, id).Scan(&n); err != nil || n != 1 {
			t.Errorf("refunds = %d, %v; want 1", n, err)
		}
	})
	t.Run("full refund replays", func(t *testing.T) {
		// found by the fault harness: a retried full refund (no amount) was
		// answered 422 once the first had taken everything
		t.Parallel()
		id := h.CreatePayment("CARD", "pm_card_visa", "10.00")
		h.WaitFinal(id, 15*time.Second)
		hdr := map[string]string{"Idempotency-Key": "refund-all"}
		first := h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{}`), hdr)
		if m := jsonObj(t, first, http.StatusCreated); money(t, m["amount"]) != 1000 {
			t.Errorf("full refund = %v", m)
		}
		again := h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{}`), hdr)
		if again.Status != http.StatusCreated || again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.Body, first.Body) {
			t.Errorf("full refund replay = %d %s", again.Status, again.Body)
		}
		checkEnvelope(t, h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{"amount":"10.00"}`), hdr),
			http.StatusUnprocessableEntity, "idempotency_key_reused")
	})
}

// TestConcurrentRefunds: 20 refunds of 1.00 at once on 10.00 — exactly ten
// are accepted, and refunds never exceed the captured amount (I3).
func TestConcurrentRefunds(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	id := h.CreatePayment("CARD", "pm_card_visa", "10.00")
	h.WaitFinal(id, 15*time.Second)

	stop := make(chan struct{})
	watched := make(chan error, 1)
	go func() { // watch the row while refunds run
		var bad error
		for {
			select {
			case <-stop:
				watched <- bad
				return
			default:
			}
			var amount, refunded, pending int64
			if err := h.Store.DB().QueryRow(`SELECT amount, refunded_amount, refund_pending_amount FROM payments WHERE id = $1`, id).
				Scan(&amount, &refunded, &pending); err == nil && refunded+pending > amount && bad == nil {
				bad = fmt.Errorf("refunded %d + pending %d > amount %d", refunded, pending, amount)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	const n = 20
	resps := make([]testenv.Response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps[i] = h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{"amount":"1.00"}`), nil)
		}()
	}
	wg.Wait()
	accepted := 0
	for _, r := range resps {
		switch r.Status {
		case http.StatusCreated:
			accepted++
		case http.StatusUnprocessableEntity:
			checkEnvelope(t, r, http.StatusUnprocessableEntity, "refund_exceeds_refundable")
		default:
			t.Errorf("refund = %d %s", r.Status, r.Body)
		}
	}
	if accepted != 10 {
		t.Errorf("%d refunds accepted, want 10", accepted)
	}
	waitFor(t, 20*time.Second, "every refund to finish", func() bool {
		p, err := h.Store.GetPayment(t.Context(), h.TenantA, id)
		return err == nil && p.RefundedAmount == 1000 && p.RefundPendingAmount == 0
	})
	close(stop)
	if err := <-watched; err != nil {
		t.Error(err)
	}
	m := jsonObj(t, h.Do("GET", "/v1/payments/"+id, h.KeyA, nil, nil), http.StatusOK)
	if money(t, m["refunded_amount"]) != 1000 || m["payment_status"] != "REFUNDED" {
		t.Errorf("after refunds: refunded_amount %v, payment_status %v; want 10.00 and REFUNDED", m["refunded_amount"], m["payment_status"])
	}
	var count, sum int64
	if err := h.Store.DB().QueryRow(`SELECT count(*), COALESCE(sum(amount), 0) FROM refunds WHERE payment_id = $1 AND status = 'SUCCEEDED'`, id).
		Scan(&count, &sum); err != nil || count != 10 || sum != 1000 {
		t.Errorf("succeeded refunds: %d summing %d, %v; want 10 summing 1000", count, sum, err)
	}
	for _, c := range h.Sandbox.Ledger() {
		if c.PaymentID == id && c.Refunded != 1000 {
			t.Errorf("gateway refunded %d, want 1000", c.Refunded)
		}
	}
	// Each partial refund is an audit row; the last one ends in REFUNDED.
	tl := timeline(t, h, id)
	steps := tl.steps()
	if len(steps) != 3+10 || steps[3] != (step{"SUCCEEDED", "PARTIALLY_REFUNDED", 0}) ||
		steps[len(steps)-1] != (step{"PARTIALLY_REFUNDED", "REFUNDED", 0}) {
		t.Errorf("timeline: %v", steps)
	}
	for _, s := range steps[1:] {
		if !payment.CanTransition(payment.Status(s.From), payment.Status(s.To)) {
			t.Errorf("timeline shows a forbidden move %s → %s", s.From, s.To)
		}
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true, RateLimit: 5, RateBurst: 5})
	const n = 20
	resps := make([]testenv.Response, n)
	start := time.Now()
	for i := range n {
		resps[i] = h.Do("GET", "/v1/payments/pay_none", h.KeyA, nil, nil)
	}
	elapsed := time.Since(start)
	allowed := 0
	for i, r := range resps {
		switch r.Status {
		case http.StatusNotFound:
			allowed++
			if r.Header.Get("RateLimit-Limit") != "5" || r.Header.Get("RateLimit-Remaining") == "" {
				t.Errorf("request %d: RateLimit headers %v", i, r.Header)
			}
		case http.StatusTooManyRequests:
			checkEnvelope(t, r, http.StatusTooManyRequests, "rate_limited")
			ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
			if err != nil || ra < 1 || ra > 2 {
				t.Errorf("request %d: Retry-After %q", i, r.Header.Get("Retry-After"))
			}
			if r.Header.Get("RateLimit-Limit") != "5" || r.Header.Get("RateLimit-Remaining") != "0" || r.Header.Get("RateLimit-Reset") == "" {
				t.Errorf("request %d: RateLimit headers %v", i, r.Header)
			}
		default:
			t.Errorf("request %d: %d %s", i, r.Status, r.Body)
		}
	}
	// The burst of 5 always passes; after it, at most one token per 200 ms.
	for i := range 5 {
		if resps[i].Status != http.StatusNotFound {
			t.Errorf("request %d of the burst = %d", i+1, resps[i].Status)
		}
	}
	if most := 5 + int(elapsed/(200*time.Millisecond)) + 1; allowed > most {
		t.Errorf("%d of %d allowed in %s, want at most %d", allowed, n, elapsed, most)
	}
	if elapsed < 150*time.Millisecond && resps[5].Status != http.StatusTooManyRequests {
		t.Errorf("the 6th rapid request = %d, want 429", resps[5].Status)
	}
	if allowed == n {
		t.Fatalf("no request was limited")
	}
	// The bucket is per tenant: B is not limited by A's traffic.
	checkEnvelope(t, h.Do("GET", "/v1/payments/pay_none", h.KeyB, nil, nil), http.StatusNotFound, "resource_not_found")
	// Health checks are not limited.
	jsonObj(t, h.Do("GET", "/healthz", "", nil, nil), http.StatusOK)
	// The bucket refills.
	time.Sleep(1200 * time.Millisecond)
	checkEnvelope(t, h.Do("GET", "/v1/payments/pay_none", h.KeyA, nil, nil), http.StatusNotFound, "resource_not_found")
}

// TestRateLimitLeased: at a rate high enough that tokens are taken from
// Redis in chunks (leaseChunk), concurrent requests are still held to the
// bucket: no more pass than the burst plus what the rate refills, plus at
// most one chunk held by this process.
func TestRateLimitLeased(t *testing.T) {
	t.Parallel()
	const rate, burst = 500, 100 // chunks of 10
	h := testenv.Start(t, testenv.Options{NoWorker: true, RateLimit: rate, RateBurst: burst})
	const n = 400
	var allowed, limited atomic.Int32
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / 8 {
				switch r := h.Do("GET", "/v1/payments/pay_none", h.KeyA, nil, nil); r.Status {
				case http.StatusNotFound:
					allowed.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
					checkEnvelope(t, r, http.StatusTooManyRequests, "rate_limited")
				default:
					t.Errorf("%d %s", r.Status, r.Body)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if most := burst + int(elapsed.Seconds()*rate) + 10; int(allowed.Load()) > most {
		t.Errorf("%d of %d allowed in %s, want at most %d", allowed.Load(), n, elapsed, most)
	}
	if allowed.Load() < burst {
		t.Errorf("%d allowed, fewer than the burst of %d", allowed.Load(), burst)
	}
	t.Logf("%d allowed, %d limited in %s", allowed.Load(), limited.Load(), elapsed)
}

func TestHealth(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	m := jsonObj(t, h.Do("GET", "/healthz", "", nil, nil), http.StatusOK)
	if m["status"] != "ok" {
		t.Errorf("healthz = %v", m)
	}
	m = jsonObj(t, h.Do("GET", "/readyz", "", nil, nil), http.StatusOK)
	diff(t, "readyz", map[string]any{"status": "ready", "checks": map[string]any{"postgres": "ok", "redis": "ok"}}, m)
}
