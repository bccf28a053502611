package intake_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/payd/payd/internal/testenv"
)

// envelope is the error body of docs/surfaces.md ("Errors"), decoded
// strictly: a missing member is caught by the raw-key check in checkEnvelope.
type envelope struct {
	RequestID  string            `json:"request_id"`
	ErrorType  string            `json:"error_type"`
	ErrorCodes []string          `json:"error_codes"`
	Message    string            `json:"message"`
	Retryable  bool              `json:"retryable"`
	Fields     map[string]string `json:"fields"`
}

// errorTypes is the one error type per status the API uses.
var errorTypes = map[int]string{
	400: "invalid_request",
	401: "authentication_error",
	404: "not_found",
	409: "conflict",
	413: "request_too_large",
	415: "unsupported_media_type",
	422: "validation_error",
	429: "rate_limited",
}

// checkEnvelope asserts the exact status, the envelope shape (every member
// present with its JSON type), the error type for the status, and that code
// is one of the error codes. It returns the decoded envelope.
func checkEnvelope(t *testing.T, r testenv.Response, status int, code string) envelope {
	t.Helper()
	checkNoLeak(t, r)
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &raw); err != nil {
		t.Fatalf("error body is not a JSON object: %v; body %s", err, r.Body)
	}
	for member, kind := range map[string]byte{"request_id": '"', "error_type": '"', "error_codes": '[', "message": '"', "retryable": 'b'} {
		v, ok := raw[member]
		if !ok {
			t.Errorf("envelope lacks %q: %s", member, r.Body)
			continue
		}
		switch {
		case kind == 'b' && string(v) != "true" && string(v) != "false":
			t.Errorf("envelope %q = %s, want a boolean", member, v)
		case kind != 'b' && (len(v) == 0 || v[0] != kind):
			t.Errorf("envelope %q = %s, want JSON starting with %c", member, v, kind)
		}
	}
	var e envelope
	if err := json.Unmarshal(r.Body, &e); err != nil {
		t.Fatalf("decode envelope: %v; body %s", err, r.Body)
	}
	if e.RequestID == "" {
		t.Errorf("request_id is empty")
	}
	if got := r.Header.Get("X-Request-Id"); got != e.RequestID {
		t.Errorf("X-Request-Id header %q != body request_id %q", got, e.RequestID)
	}
	if want := errorTypes[status]; want != "" && e.ErrorType != want {
		t.Errorf("error_type = %q, want %q", e.ErrorType, want)
	}
	if len(e.ErrorCodes) == 0 {
		t.Errorf("error_codes is empty")
	}
	if e.Message == "" {
		t.Errorf("message is empty")
	}
	found := false
	for _, c := range e.ErrorCodes {
		if c == code {
			found = true
		}
	}
	if !found {
		t.Errorf("error_codes = %v, want it to contain %q; body %s", e.ErrorCodes, code, r.Body)
	}
	// Retrying helps only when the request was refused for now, not for what
	// it is.
	wantRetry := code == "idempotent_request_in_flight" || status == 429 || status >= 500
	if e.Retryable != wantRetry {
		t.Errorf("retryable = %v, want %v for %d", e.Retryable, wantRetry, status)
	}
	return e
}

// checkNoLeak asserts that an answer is not a 500 and leaks neither SQL nor
// a Go stack trace.
func checkNoLeak(t *testing.T, r testenv.Response) {
	t.Helper()
	if r.Status >= 500 {
		t.Errorf("status %d for hostile input; body %s", r.Status, r.Body)
	}
	low := strings.ToLower(string(r.Body))
	for _, bad := range []string{"pq:", "sql", "goroutine ", "panic", "runtime/", ".go:"} {
		if strings.Contains(low, bad) {
			t.Errorf("body contains %q: %s", bad, r.Body)
		}
	}
}

// paymentBody builds a seed-001 create body against the invoice inv_1;
// amount is raw JSON. Tests that post it create inv_1 first (invoice).
func paymentBody(amount, currency, method, pm string) []byte {
	return paymentBodyTo("inv_1", amount, currency, method, pm)
}

// paymentBodyTo is paymentBody against another invoice.
func paymentBodyTo(dest, amount, currency, method, pm string) []byte {
	b, _ := json.Marshal(map[string]any{
		"amount": json.RawMessage(amount), "currency": currency, "destination_id": dest,
		"destination_type": "INVOICE", "payment_method_type": method, "payment_method_id": pm,
	})
	return b
}

// maxUSD is the largest amount the API accepts, in USD: an invoice of it is
// never the limit of a test that is about something else.
const maxUSD = "1000000000000.00"

// invoice creates an invoice for the tenant of key (200 if it exists with
// the same fields) and returns its id.
func invoice(t *testing.T, h *testenv.Harness, key, externalID, currency, amountDue string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"external_id": externalID, "currency": currency, "amount_due": amountDue})
	r := h.Do("POST", "/v1/invoices", key, body, nil)
	if r.Status != 201 && r.Status != 200 {
		t.Fatalf("create invoice %q: %d %s", externalID, r.Status, r.Body)
	}
	id, _ := jsonObj(t, r, r.Status)["id"].(string)
	if id == "" {
		t.Fatalf("create invoice %q: no id in %s", externalID, r.Body)
	}
	return id
}

// jsonObj decodes a 2xx body, failing on anything else.
func jsonObj(t *testing.T, r testenv.Response, status int) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(r.Body)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode body %s: %v", r.Body, err)
	}
	return m
}

// countPayments counts a tenant's payment rows straight from the database.
func countPayments(t *testing.T, h *testenv.Harness, tenant string) int {
	t.Helper()
	var n int
	if err := h.Store.DB().QueryRowContext(context.Background(),
		`SELECT count(*) FROM payments WHERE tenant_id = $1`, tenant).Scan(&n); err != nil {
		t.Fatalf("count payments: %v", err)
	}
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func diff(t *testing.T, what string, want, got any) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}
