package intake_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/payd/payd/internal/testenv"
)

// FuzzQueryHTTP drives every route that reads a query string or a path id
// — list filters and cursors, GET by id or external id, cancel, timeline —
// over HTTP on a real database. For any input: never a 5xx, every refusal
// in the error envelope with nothing of SQL or Go in it, and a list never
// longer than the limit it was given. Plain `go test` runs only the seeds;
// scripts/test.sh fuzzes it for PAYD_FUZZTIME.
func FuzzQueryHTTP(f *testing.F) {
	routes := []struct{ method, pattern string }{
		{"GET", "/v1/payments?%s"}, {"GET", "/v1/invoices?%s"}, {"GET", "/v1/payouts?%s"},
		{"GET", "/v1/payments/%p"}, {"GET", "/v1/payments/%p/timeline"}, {"POST", "/v1/payments/%p/cancel"},
		{"GET", "/v1/invoices/%p"}, {"GET", "/v1/users/%p"}, {"GET", "/v1/payouts/%p"}, {"POST", "/v1/payouts/%p/cancel"},
	}
	for i := range routes {
		for _, s := range []string{"", "limit=1", "limit=0", "limit=101", "limit=1e2", "status=SUCCEEDED", "status=OPEN",
			"status=PAID&limit=2", "starting_after=pay_00000000000000000000000000000000", "starting_after=%00",
			"starting_after=%ff", "starting_after=" + strings.Repeat("x", 200), "limit=5&limit=x", "a=%zz",
			"inv_test", "pay_x", "'; DROP TABLE payments; --", "\x00", "\xff\xfe", "..", "%2e%2e", "\u202e", strings.Repeat("9", 300)} {
			f.Add(uint8(i), s)
		}
	}
	// the vendor's list convention on GET /v1/payments (payments_list.go)
	for _, s := range []string{"offset=0&limit=1000", "offset=10000", "offset=10001", "offset=-1", "offset=1e3",
		"offset=99999999999999999999", "limit=1001", "starting_after=&offset=5", "starting_after=&limit=100",
		"payment_status=FAILED", "payment_status=VOIDED", "payment_status=failed", "status=published", "status=deleted",
		"payment_method_type=ACH", "payment_method_type=PAYMENT_LINK", "payment_method_type=WIRE",
		"destination_type=INVOICE", "destination_type=AUTH", "destination_type=invoice", "destination_id=inv_test",
		"currency=usd", "currency=XXX1", "currency=ZZZ", "payment_ids=pay_a,pay_b", "payment_ids=pay_a&payment_ids=pay_b",
		"payment_ids=,", "payment_ids=%00", "start_time=2026-01-01T00:00:00Z&end_time=2025-01-01T00:00:00Z",
		"start_time=yesterday", "end_time=2026-13-01T00:00:00Z", "sort=created_at&order=asc", "sort=amount", "order=up",
		"expand=attempts", "gateway_payment_id=ch_1", "gateway_tracking_id=cs_1", "payment_gateway=SANDBOX",
		"payment_gateway=stripe&payment_method_type=OFFLINE"} {
		f.Add(uint8(0), s)
	}
	h := testenv.Start(f, testenv.Options{NoWorker: true})
	pay := h.CreatePayment("CARD", "pm_card_visa", `"1.00"`)
	f.Add(uint8(3), pay)
	f.Add(uint8(0), "starting_after="+pay)
	client := &http.Client{}
	f.Fuzz(func(t *testing.T, ri uint8, s string) {
		rt := routes[int(ri)%len(routes)]
		path := strings.Replace(rt.pattern, "%p", url.PathEscape(s), 1)
		path = strings.Replace(path, "%s", wireQuery(s), 1)
		req, err := http.NewRequest(rt.method, h.URL+path, nil)
		if err != nil {
			return // not a URL the client sends; nothing reached the server
		}
		req.Header.Set("x-api-key", h.KeyA)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", rt.method, path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			if strings.Contains(rt.pattern, "?") {
				// payd's list, or on /v1/payments without starting_after
				// the vendor's {items, pagination}
				var list struct {
					Object     string            `json:"object"`
					Data       []json.RawMessage `json:"data"`
					Items      []json.RawMessage `json:"items"`
					Pagination *struct {
						Total, Limit int
					} `json:"pagination"`
				}
				if err := json.Unmarshal(b, &list); err != nil || (list.Object != "list") == (list.Pagination == nil) {
					t.Fatalf("%s %s: 200 %s", rt.method, path, b)
				}
				limit := 20
				if list.Pagination != nil {
					limit = 50
					list.Data = list.Items
					if list.Pagination.Total < len(list.Items) {
						t.Fatalf("%s %s: total %d under %d items", rt.method, path, list.Pagination.Total, len(list.Items))
					}
				}
				if l := req.URL.Query().Get("limit"); l != "" {
					limit, _ = strconv.Atoi(l)
				}
				if len(list.Data) > limit {
					t.Fatalf("%s %s: %d items over limit %d", rt.method, path, len(list.Data), limit)
				}
			}
		case resp.StatusCode >= 400 && resp.StatusCode < 500:
			var e struct {
				RequestID  string   `json:"request_id"`
				ErrorType  string   `json:"error_type"`
				ErrorCodes []string `json:"error_codes"`
				Message    string   `json:"message"`
			}
			if err := json.Unmarshal(b, &e); err != nil || e.RequestID == "" || e.ErrorType == "" || len(e.ErrorCodes) == 0 || e.Message == "" {
				t.Fatalf("%s %s: %d is not the envelope: %s", rt.method, path, resp.StatusCode, b)
			}
			low := strings.ToLower(string(b))
			for _, bad := range []string{"pq:", "sqlstate", "goroutine ", ".go:"} {
				if strings.Contains(low, bad) && !strings.Contains(strings.ToLower(s), bad) {
					t.Fatalf("%s %s: body leaks %q: %s", rt.method, path, bad, b)
				}
			}
		default:
			t.Fatalf("%s %s: status %d: %s", rt.method, path, resp.StatusCode, b)
		}
	})
}

// wireQuery percent-encodes the bytes a request line cannot carry (space,
// controls, '#', non-ASCII), so the fuzzed query reaches the handlers (which
// see the same bytes once decoded) instead of net/http's own 400 for a
// malformed request line.
func wireQuery(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == '#' {
			b.WriteString("%" + strings.ToUpper(strconv.FormatUint(uint64(c)|0x100, 16)[1:]))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
