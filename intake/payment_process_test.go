package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
)

// vendorResponseFields are the members of the seed-001 vendor's payment
// response schema (its official client's DtoPaymentResponse) beyond the
// seed page's.
var vendorResponseFields = []string{"gateway_metadata", "gateway_payment_id", "gateway_tracking_id", "payment_gateway",
	"payment_url", "save_card_and_make_default"}

// recordBody is a create request of the vendor's client: every field it
// sends, with process_payment as given.
func recordBody(dest, amount, currency, method, pm string, process bool) []byte {
	m := map[string]any{
		"amount": amount, "currency": currency, "destination_id": dest, "destination_type": "INVOICE",
		"payment_method_type": method, "process_payment": process, "save_card_and_make_default": false,
	}
	if pm != "" {
		m["payment_method_id"] = pm
	}
	b, _ := json.Marshal(m)
	return b
}

// createTasks counts the create tasks of a payment waiting in Redis.
func createTasks(t *testing.T, h *testenv.Harness, id string) int {
	t.Helper()
	ins := asynq.NewInspectorFromRedisClient(h.Redis)
	tasks, err := ins.ListPendingTasks(jobs.StepQueue(payment.StepCreate), asynq.PageSize(1000))
	if err != nil && !strings.Contains(err.Error(), "not found") {
		t.Fatal(err)
	}
	n := 0
	for _, tk := range tasks {
		if tk.Type == jobs.TypePaymentCreate && bytes.Contains(tk.Payload, []byte(id)) {
			n++
		}
	}
	return n
}

func eventCount(t *testing.T, h *testenv.Harness, id, like string) int {
	t.Helper()
	var n int
	if err := h.Store.DB().QueryRowContext(context.Background(),
		`SELECT count(*) FROM payment_events WHERE payment_id = $1 AND reason LIKE $2`, id, like).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func invoiceReserved(t *testing.T, h *testenv.Harness, id string) (reserved, paid int64) {
	t.Helper()
	if err := h.Store.DB().QueryRowContext(context.Background(),
		`SELECT amount_reserved, amount_paid FROM invoices WHERE id = $1`, id).Scan(&reserved, &paid); err != nil {
		t.Fatal(err)
	}
	return reserved, paid
}

// TestProcessPaymentLater: process_payment=false records the payment
// PENDING and moves no money (no task, no attempt, no charge), holding its
// invoice reservation; concurrent POST /process calls process it exactly
// once (one 200, the others 409 payment_already_processed, one create task,
// one audit row); then it is charged once, and gateway_payment_id is the
// succeeding attempt's reference. For currencies of 0, 2 and 3 decimals.
func TestProcessPaymentLater(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	// 0, 2 and 3 decimals, from one minor unit to the API's largest amount
	// (1e14 minor units)
	cases := []struct{ ext, currency, amount, minorWant string }{
		{"later-JPY", "JPY", "1250", "1250"}, {"later-USD", "USD", "12.50", "12.50"}, {"later-BHD", "BHD", "1.255", "1.255"},
		{"later-JPY-1", "JPY", "1", "1"}, {"later-USD-1", "USD", "0.01", "0.01"}, {"later-BHD-1", "BHD", "0.001", "0.001"},
		{"later-JPY-max", "JPY", "100000000000000", "100000000000000"},
		{"later-USD-max", "USD", "1000000000000.00", "1000000000000.00"},
		{"later-BHD-max", "BHD", "100000000000.000", "100000000000.000"},
	}
	ids := map[string]string{}
	for _, c := range cases {
		inv := invoice(t, h, h.KeyA, c.ext, c.currency, c.amount)
		r := h.Do("POST", "/v1/payments", h.KeyA, recordBody(c.ext, c.amount, c.currency, "CARD", "pm_card_visa", false), nil)
		p := jsonObj(t, r, http.StatusCreated)
		id := p["id"].(string)
		ids[c.ext] = id
		raw := rawFields(t, r.Body)
		for _, f := range append(append([]string{}, paymentResponseFields...), vendorResponseFields...) {
			if _, ok := raw[f]; !ok {
				t.Errorf("response lacks %q", f)
			}
		}
		if p["payment_status"] != "PENDING" || len(p["attempts"].([]any)) != 0 || p["payment_gateway"] != "sandbox" ||
			p["gateway_payment_id"] != nil || p["payment_url"] != nil || p["gateway_metadata"] != nil || p["save_card_and_make_default"] != false {
			t.Fatalf("recorded payment %s", r.Body)
		}
		if string(raw["amount"]) != c.minorWant {
			t.Errorf("amount %s, want %s", raw["amount"], c.minorWant)
		}
		if n := createTasks(t, h, id); n != 0 {
			t.Fatalf("%d create tasks for an unprocessed payment", n)
		}
		// it holds its reservation: the invoice cannot take another payment
		if res, _ := invoiceReserved(t, h, inv); res == 0 {
			t.Fatalf("%s: nothing reserved for the recorded payment", c.ext)
		}
		checkEnvelope(t, h.Do("POST", "/v1/payments", h.KeyA, recordBody(c.ext, c.amount, c.currency, "OFFLINE", "", true), nil),
			http.StatusUnprocessableEntity, "invoice_over_applied")
	}

	for _, c := range cases {
		id := ids[c.ext]
		const callers = 6
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := h.Do("POST", "/v1/payments/"+id+"/process", h.KeyA, nil, nil)
				mu.Lock()
				codes[r.Status]++
				mu.Unlock()
				if r.Status == http.StatusConflict {
					checkEnvelope(t, r, http.StatusConflict, "payment_already_processed")
				} else if r.Status != http.StatusOK {
					t.Errorf("process = %d %s", r.Status, r.Body)
				}
			}()
		}
		wg.Wait()
		if codes[http.StatusOK] != 1 || codes[http.StatusConflict] != callers-1 {
			t.Fatalf("%s: concurrent process answers %v, want one 200 and %d 409", c.ext, codes, callers-1)
		}
		if n := createTasks(t, h, id); n != 1 {
			t.Fatalf("%s: %d create tasks, want 1", c.ext, n)
		}
		if n := eventCount(t, h, id, "processing requested%"); n != 1 {
			t.Fatalf("%s: %d process audit rows, want 1", c.ext, n)
		}
	}

	h.StartWorker()
	for _, c := range cases {
		id := ids[c.ext]
		if p := h.WaitFinal(id, 20*time.Second); p.Status != payment.StatusSucceeded || len(p.Attempts) != 1 {
			t.Fatalf("%s processed payment %s with %d attempts", c.ext, p.Status, len(p.Attempts))
		}
		if n := h.Sandbox.ChargesFor(id); n != 1 {
			t.Fatalf("%s: %d charges, want 1", c.ext, n)
		}
		got := jsonObj(t, h.Do("GET", "/v1/payments/"+id, h.KeyA, nil, nil), http.StatusOK)
		atts := got["attempts"].([]any)
		if ref, _ := got["gateway_payment_id"].(string); ref == "" || got["payment_status"] != "SUCCEEDED" || len(atts) != 1 {
			t.Fatalf("processed payment %v", got)
		}
		// processing again, deleting or changing its method: refused with their codes
		checkEnvelope(t, h.Do("POST", "/v1/payments/"+id+"/process", h.KeyA, nil, nil), http.StatusConflict, "payment_already_processed")
		checkEnvelope(t, h.Do("DELETE", "/v1/payments/"+id, h.KeyA, nil, nil), http.StatusConflict, "payment_not_deletable")
		checkEnvelope(t, h.Do("PUT", "/v1/payments/"+id, h.KeyA, []byte(`{"payment_method_id":"pm_card_declined"}`), nil),
			http.StatusConflict, "payment_not_updatable")
		// another tenant sees none of it
		checkEnvelope(t, h.Do("POST", "/v1/payments/"+id+"/process", h.KeyB, nil, nil), http.StatusNotFound, "resource_not_found")
	}
}

// TestProcessPaymentWithoutGateway: OFFLINE and CREDITS are recorded
// SUCCEEDED without a gateway call when processed, at create (the default)
// or by POST /process; a payment created to be processed is 409 on /process.
func TestProcessPaymentWithoutGateway(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	for _, c := range []struct{ currency, amount string }{{"JPY", "500"}, {"USD", "5.05"}, {"KWD", "5.005"}} {
		for _, method := range []string{"OFFLINE", "CREDITS"} {
			for _, process := range []bool{true, false} {
				ext := "nogw-" + c.currency + "-" + method + map[bool]string{true: "-now", false: "-later"}[process]
				inv := invoice(t, h, h.KeyA, ext, c.currency, c.amount)
				p := jsonObj(t, h.Do("POST", "/v1/payments", h.KeyA, recordBody(ext, c.amount, c.currency, method, "", process), nil), http.StatusCreated)
				id := p["id"].(string)
				if p["payment_gateway"] != nil {
					t.Errorf("%s payment_gateway %v, want null", method, p["payment_gateway"])
				}
				if !process {
					time.Sleep(300 * time.Millisecond) // a worker runs: nothing may happen
					if q, _ := h.Store.GetPayment(context.Background(), "", id); q.Status != payment.StatusPending {
						t.Fatalf("%s unprocessed is %s", ext, q.Status)
					}
					jsonObj(t, h.Do("POST", "/v1/payments/"+id+"/process", h.KeyA, nil, map[string]string{"Idempotency-Key": ext}), http.StatusOK)
					// a retry with the same key gets the same answer back
					if r := h.Do("POST", "/v1/payments/"+id+"/process", h.KeyA, nil, map[string]string{"Idempotency-Key": ext}); r.Status != http.StatusOK || r.Header.Get("Idempotent-Replayed") != "true" {
						t.Fatalf("replayed process = %d %s", r.Status, r.Body)
					}
				} else {
					checkEnvelope(t, h.Do("POST", "/v1/payments/"+id+"/process", h.KeyA, nil, nil), http.StatusConflict, "payment_already_processed")
				}
				if q := h.WaitFinal(id, 15*time.Second); q.Status != payment.StatusSucceeded || len(q.Attempts) != 0 {
					t.Fatalf("%s: %s with %d attempts", ext, q.Status, len(q.Attempts))
				}
				if n := h.Sandbox.ChargesFor(id); n != 0 {
					t.Fatalf("%s: %d gateway charges", ext, n)
				}
				// reserved counts every application not given back: paid is part of it
				if res, paid := invoiceReserved(t, h, inv); res != paid || paid == 0 {
					t.Fatalf("%s: invoice reserved %d paid %d", ext, res, paid)
				}
			}
		}
	}
}

// TestUpdatePayment: PUT changes metadata (any status) and, before it is
// processed, the payment method; audited; another tenant's payment is 404;
// the state machine's fields and unknown fields are refused; an
// Idempotency-Key replays.
func TestUpdatePayment(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	invoice(t, h, h.KeyA, "upd", "USD", "100.00")
	// a CARD payment recorded without a method: processing it needs one
	id := jsonObj(t, h.Do("POST", "/v1/payments", h.KeyA, recordBody("upd", "10.00", "USD", "CARD", "", false), nil), http.StatusCreated)["id"].(string)
	checkEnvelope(t, h.Do("POST", "/v1/payments/"+id+"/process", h.KeyA, nil, nil), http.StatusUnprocessableEntity, "payment_method_id_required")

	put := func(key, body string, hdr map[string]string) testenv.Response {
		return h.Do("PUT", "/v1/payments/"+id, key, []byte(body), hdr)
	}
	checkEnvelope(t, put(h.KeyB, `{"metadata":{"a":"b"}}`, nil), http.StatusNotFound, "resource_not_found")
	for _, c := range []struct{ body, code string }{
		{`{"payment_status":"SUCCEEDED"}`, "payment_status_not_updatable"},
		{`{"succeeded_at":"2026-01-01T00:00:00Z"}`, "succeeded_at_not_updatable"},
		{`{"gateway_payment_id":"ch_1"}`, "gateway_payment_id_not_updatable"},
		{`{"payment_gateway":"stripe"}`, "payment_gateway_not_updatable"},
		{`{"metadata":{"a":1}}`, "metadata_invalid_type"},
		{`{"metadata":"x"}`, "metadata_invalid_type"},
		{`{"payment_method_id":""}`, "payment_method_id_required"},
		{`{"payment_method_id":7}`, "payment_method_id_invalid_type"},
		{`{"metdata":{}}`, "unknown_field"},
	} {
		checkEnvelope(t, put(h.KeyA, c.body, nil), http.StatusUnprocessableEntity, c.code)
	}
	checkEnvelope(t, put(h.KeyA, `{"metadata":`, nil), http.StatusBadRequest, "body_malformed")

	key := map[string]string{"Idempotency-Key": "upd-1"}
	p := jsonObj(t, put(h.KeyA, `{"metadata":{"order":"42"},"payment_method_id":"pm_card_visa"}`, key), http.StatusOK)
	if p["payment_method_id"] != "pm_card_visa" || p["metadata"].(map[string]any)["order"] != "42" || p["payment_status"] != "PENDING" {
		t.Fatalf("updated payment %v", p)
	}
	if r := put(h.KeyA, `{"metadata":{"order":"42"},"payment_method_id":"pm_card_visa"}`, key); r.Status != http.StatusOK || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay = %d %s", r.Status, r.Body)
	}
	checkEnvelope(t, put(h.KeyA, `{"metadata":{"order":"43"}}`, key), http.StatusUnprocessableEntity, "idempotency_key_reused")
	// metadata is replaced whole
	p = jsonObj(t, put(h.KeyA, `{"metadata":{"note":"n"}}`, nil), http.StatusOK)
	if m := p["metadata"].(map[string]any); len(m) != 1 || m["note"] != "n" {
		t.Fatalf("metadata %v, want it replaced", m)
	}
	if n := eventCount(t, h, id, "updated:%"); n != 2 {
		t.Fatalf("%d update audit rows, want 2", n)
	}
	// now it processes
	jsonObj(t, h.Do("POST", "/v1/payments/"+id+"/process", h.KeyA, nil, nil), http.StatusOK)
	checkEnvelope(t, put(h.KeyA, `{"payment_method_id":"pm_card_declined"}`, nil), http.StatusConflict, "payment_not_updatable")
	// metadata still changes once processed
	jsonObj(t, put(h.KeyA, `{"metadata":{"note":"after"}}`, nil), http.StatusOK)
}

// TestDeletePayment: only an unprocessed payment is deleted: canceled, its
// invoice reservation released, audited, then 404 and out of lists; any
// other is 409 payment_not_deletable; another tenant's is 404.
func TestDeletePayment(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	inv := invoice(t, h, h.KeyA, "del", "USD", "30.00")
	id := jsonObj(t, h.Do("POST", "/v1/payments", h.KeyA, recordBody("del", "30.00", "USD", "ACH", "ba_123456789", false), nil), http.StatusCreated)["id"].(string)
	checkEnvelope(t, h.Do("DELETE", "/v1/payments/"+id, h.KeyB, nil, nil), http.StatusNotFound, "resource_not_found")
	if res, _ := invoiceReserved(t, h, inv); res != 3000 {
		t.Fatalf("reserved %d before the delete", res)
	}
	r := h.Do("DELETE", "/v1/payments/"+id, h.KeyA, nil, nil)
	if m := jsonObj(t, r, http.StatusOK); m["message"] == "" || len(m) != 1 {
		t.Fatalf("delete answer %s", r.Body)
	}
	if res, _ := invoiceReserved(t, h, inv); res != 0 {
		t.Fatalf("reserved %d after the delete", res)
	}
	checkEnvelope(t, h.Do("GET", "/v1/payments/"+id, h.KeyA, nil, nil), http.StatusNotFound, "resource_not_found")
	checkEnvelope(t, h.Do("DELETE", "/v1/payments/"+id, h.KeyA, nil, nil), http.StatusNotFound, "resource_not_found")
	checkEnvelope(t, h.Do("POST", "/v1/payments/"+id+"/process", h.KeyA, nil, nil), http.StatusNotFound, "resource_not_found")
	if bytes.Contains(h.Do("GET", "/v1/payments?limit=100", h.KeyA, nil, nil).Body, []byte(id)) {
		t.Fatal("a deleted payment is listed")
	}
	if n := eventCount(t, h, id, "deleted by the merchant%"); n != 1 {
		t.Fatalf("%d delete audit rows", n)
	}
	q, err := h.Store.GetPayment(context.Background(), "", id)
	if err != nil || q.Status != payment.StatusCanceled || q.DeletedAt == nil {
		t.Fatalf("deleted row %+v %v", q, err)
	}
	// the invoice takes a new payment of the whole amount again
	jsonObj(t, h.Do("POST", "/v1/payments", h.KeyA, recordBody("del", "30.00", "USD", "OFFLINE", "", false), nil), http.StatusCreated)

	// a payment to be processed (its create step scheduled) is not deleted
	invoice(t, h, h.KeyA, "del2", "USD", "5.00")
	id2 := jsonObj(t, h.Do("POST", "/v1/payments", h.KeyA, recordBody("del2", "5.00", "USD", "CARD", "pm_card_visa", true), nil), http.StatusCreated)["id"].(string)
	checkEnvelope(t, h.Do("DELETE", "/v1/payments/"+id2, h.KeyA, nil, nil), http.StatusConflict, "payment_not_deletable")
}

// TestCreatePaymentVendorFields: the vendor's request fields beyond the
// seed page are accepted, validated precisely and answered with; a field
// no version of the API has is still refused.
func TestCreatePaymentVendorFields(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	invoice(t, h, h.KeyA, "inv_1", "USD", maxUSD)
	body := func(extra string) []byte {
		return []byte(`{"amount":"1.00","currency":"USD","destination_id":"inv_1","destination_type":"INVOICE",` +
			`"payment_method_type":"CARD","payment_method_id":"pm_card_visa"` + extra + `}`)
	}
	long := "https://example.com/" + strings.Repeat("a", 1010)
	for _, c := range []struct{ extra, field, code string }{
		{`,"success_url":"ftp://example.com/x"`, "success_url", "success_url_invalid"},
		{`,"success_url":"/relative"`, "success_url", "success_url_invalid"},
		{`,"cancel_url":"https://exa mple.com"`, "cancel_url", "cancel_url_invalid"},
		{`,"cancel_url":"` + long + `"`, "cancel_url", "cancel_url_too_long"},
		{`,"cancel_url":5`, "cancel_url", "cancel_url_invalid_type"},
		{`,"save_card_and_make_default":"yes"`, "save_card_and_make_default", "save_card_and_make_default_invalid_type"},
		{`,"payment_gateway":"paypal"`, "payment_gateway", "payment_gateway_invalid"},
		{`,"payment_gateway":""`, "payment_gateway", "payment_gateway_invalid"},
		{`,"payment_gateway":"stripe"`, "payment_gateway", "payment_gateway_not_configured"},
		{`,"payment_gateway":1`, "payment_gateway", "payment_gateway_invalid_type"},
		{`,"save_card":true`, "save_card", "unknown_field"},
	} {
		e := checkEnvelope(t, h.Do("POST", "/v1/payments", h.KeyA, body(c.extra), nil), http.StatusUnprocessableEntity, c.code)
		if e.Fields[c.field] == "" {
			t.Errorf("%s: fields %v lack %q", c.extra, e.Fields, c.field)
		}
	}
	offline := []byte(`{"amount":"1.00","currency":"USD","destination_id":"inv_1","destination_type":"INVOICE",` +
		`"payment_method_type":"OFFLINE","payment_gateway":"sandbox"}`)
	checkEnvelope(t, h.Do("POST", "/v1/payments", h.KeyA, offline, nil), http.StatusUnprocessableEntity, "payment_gateway_not_applicable")

	r := h.Do("POST", "/v1/payments", h.KeyA, body(`,"payment_gateway":"sandbox","save_card_and_make_default":true,`+
		`"success_url":"https://shop.example/ok?o=1","cancel_url":"http://shop.example/cancel","process_payment":true`), nil)
	p := jsonObj(t, r, http.StatusCreated)
	if p["payment_gateway"] != "sandbox" || p["save_card_and_make_default"] != true || p["payment_url"] != nil ||
		p["gateway_tracking_id"] != nil || p["gateway_payment_id"] != nil {
		t.Fatalf("created %s", r.Body)
	}
	// a replay of the same body is the same payment; the options are part of the body
	k := map[string]string{"Idempotency-Key": "vendor-fields"}
	b1 := body(`,"success_url":"https://shop.example/a"`)
	first := jsonObj(t, h.Do("POST", "/v1/payments", h.KeyA, b1, k), http.StatusCreated)
	if again := jsonObj(t, h.Do("POST", "/v1/payments", h.KeyA, b1, k), http.StatusCreated); again["id"] != first["id"] {
		t.Fatalf("replay made another payment")
	}
	checkEnvelope(t, h.Do("POST", "/v1/payments", h.KeyA, body(`,"success_url":"https://shop.example/b"`), k),
		http.StatusUnprocessableEntity, "idempotency_key_reused")
}
