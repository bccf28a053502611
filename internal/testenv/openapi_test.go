package testenv

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestSpecCheckMismatches: SpecCheck's check passes what the document says
// and names each kind of drift — an undocumented status, a body or a header
// that does not match, an answer for a route the document lacks, a 2xx for
// a request the document refuses — without needing a server.
func TestSpecCheckMismatches(t *testing.T) {
	t.Parallel()
	sp, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	const reqID = "req_0123456789abcdef01234567"
	hdr := func(kv ...string) http.Header {
		h := http.Header{"Content-Type": {"application/json"}}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	envelope := `{"request_id":"` + reqID + `","error_type":"not_found","error_codes":["route_not_found"],` +
		`"message":"no such route","retryable":false,"success":false,` +
		`"error":{"message":"no such route","internal_error":"not_found: route_not_found"}}`
	redeliver := `{"event_id":"evt_01","deliveries":[]}`
	for _, tc := range []struct {
		name       string
		method     string
		path       string
		reqHeader  map[string]string
		reqBody    string
		status     int
		header     http.Header
		body       string
		wantErrors []string // substrings, one mismatch each; none: it passes
	}{
		{name: "documented", method: "GET", path: "/healthz", status: 200, header: hdr("X-Request-Id", reqID),
			body: `{"status":"ok"}`},
		{name: "undocumented status", method: "GET", path: "/healthz", status: 418, header: hdr("X-Request-Id", reqID),
			body: `{"status":"ok"}`, wantErrors: []string{"status is not supported"}},
		{name: "body off the schema", method: "GET", path: "/healthz", status: 200, header: hdr("X-Request-Id", reqID),
			body: `{"status":"fine"}`, wantErrors: []string{"/status"}},
		{name: "extra member", method: "GET", path: "/healthz", status: 200, header: hdr("X-Request-Id", reqID),
			body: `{"status":"ok","uptime":3}`, wantErrors: []string{"uptime"}},
		{name: "required header missing", method: "GET", path: "/healthz", status: 200, header: hdr(),
			body: `{"status":"ok"}`, wantErrors: []string{"X-Request-Id"}},
		{name: "catch-all 404", method: "DELETE", path: "/v1/payments", status: 404, header: hdr("X-Request-Id", reqID),
			body: envelope},
		{name: "catch-all 404 off the envelope", method: "GET", path: "/nowhere", status: 404, header: hdr("X-Request-Id", reqID),
			body: `{"error":"not found"}`, wantErrors: []string{"not the error envelope"}},
		{name: "no operation answered 200", method: "GET", path: "/nowhere", status: 200, header: hdr("X-Request-Id", reqID),
			body: `{}`, wantErrors: []string{"no operation"}},
		{name: "2xx for a request the document refuses", method: "POST", path: "/v1/events/evt_01/redeliver",
			reqHeader: map[string]string{"x-api-key": "k"}, reqBody: `{"endpoint_id":7}`, status: 202,
			header: hdr("X-Request-Id", reqID), body: redeliver, wantErrors: []string{"request does not match"}},
		{name: "2xx without credentials", method: "POST", path: "/v1/events/evt_01/redeliver", reqBody: `{}`, status: 202,
			header: hdr("X-Request-Id", reqID), body: redeliver, wantErrors: []string{"request does not match"}},
		{name: "2xx for a good request", method: "POST", path: "/v1/events/evt_01/redeliver",
			reqHeader: map[string]string{"Authorization": "Bearer k"}, reqBody: `{"endpoint_id":"we_1"}`, status: 202,
			header: hdr("X-Request-Id", reqID), body: redeliver},
		{name: "4xx for a bad request is not held to the request schema", method: "POST", path: "/v1/events/evt_01/redeliver",
			reqBody: `{"endpoint_id":7}`, status: 404, header: hdr("X-Request-Id", reqID),
			body: strings.Replace(envelope, "route_not_found", "resource_not_found", 1)},
		{name: "4xx not documented for the route", method: "GET", path: "/healthz", status: 404,
			header: hdr("X-Request-Id", reqID), body: envelope, wantErrors: []string{"status is not supported"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			for k, v := range tc.reqHeader {
				r.Header.Set(k, v)
			}
			got := sp.mismatches(r, []byte(tc.reqBody), tc.status, tc.header, []byte(tc.body))
			if len(got) != len(tc.wantErrors) {
				t.Fatalf("mismatches = %q, want %d matching %q", got, len(tc.wantErrors), tc.wantErrors)
			}
			for i, want := range tc.wantErrors {
				if !strings.Contains(got[i], want) {
					t.Errorf("mismatch %q does not mention %q", got[i], want)
				}
			}
		})
	}
}
