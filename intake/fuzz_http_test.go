package intake_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/payd/payd/internal/testenv"
)

// FuzzCreatePaymentHTTP drives the real create handler over HTTP on a real
// database. It is slow: run it with a bounded count, e.g.
//
//	go test ./intake -run XXX -fuzz FuzzCreatePaymentHTTP -fuzztime 2000x
//
// Plain `go test` runs only the seeds.
func FuzzCreatePaymentHTTP(f *testing.F) {
	seeds := []string{
		string(createBody()),
		string(createBody(kv{"amount", `1e3`})),
		string(createBody(kv{"amount", `"92233720368547758.08"`})),
		string(createBody(kv{"Amount", `"999"`})),
		string(createBody(kv{"destination_id", `"'; DROP TABLE payments; --"`})),
		string(createBody(kv{"destination_id", `"a\u0000b"`})),
		string(createBody(kv{"metadata", `{"a":"\ud800"}`})),
		string(createBody(kv{"idempotency_key", `"fuzz-key"`})),
		`{"amount":`, `[]`, ``, "{\"currency\":\"\xff\"}",
	}
	for _, s := range seeds {
		f.Add([]byte(s), "")
		f.Add([]byte(s), "k-1")
	}
	h := testenv.Start(f, testenv.Options{NoWorker: true})
	// the invoice the valid seeds pay (createBody's destination_id)
	h.CreateInvoice("inv_1", "USD", "1000000000000.00")
	f.Fuzz(func(t *testing.T, body []byte, idemKey string) {
		req, err := http.NewRequest("POST", h.URL+"/v1/payments", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-api-key", h.KeyA)
		if idemKey != "" {
			req.Header.Set("Idempotency-Key", idemKey)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			// The client refuses some header values itself; nothing reached the server.
			if strings.Contains(err.Error(), "invalid header field value") {
				return
			}
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		r := testenv.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
		switch r.Status {
		case http.StatusCreated, http.StatusOK:
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil || m["id"] == nil || m["tenant_id"] != h.TenantA {
				t.Fatalf("%d body %s", r.Status, b)
			}
		case 400, 409, 413, 415, 422:
			var e envelope
			if err := json.Unmarshal(b, &e); err != nil || e.RequestID == "" || e.ErrorType == "" || len(e.ErrorCodes) == 0 || e.Message == "" {
				t.Fatalf("%d envelope %s", r.Status, b)
			}
			low, in := strings.ToLower(string(b)), strings.ToLower(string(body)+idemKey)
			for _, bad := range []string{"pq:", "sql", "goroutine ", ".go:"} {
				if strings.Contains(low, bad) && !strings.Contains(in, bad) { // a message may name a member of the body
					t.Fatalf("body leaks %q: %s", bad, b)
				}
			}
		default:
			t.Fatalf("status %d for body %q: %s", r.Status, body, b)
		}
	})
}
