package intake_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/payd/payd/internal/testenv"
)

// isolationCoverage names, for every route of routes.go, the tests that call
// it with tenant B's key on tenant A's objects (I6). A route added to
// routes.go without an entry here fails TestIsolationCoversEveryRoute.
var isolationCoverage = map[string][]string{
	"POST /v1/payments":                             {"TestInvoiceIsolation", "TestTenantIsolation", "TestCrossTenantPayoutsTimelines"},
	"GET /v1/payments":                              {"TestTenantIsolation", "TestCrossTenantPayoutsTimelines"},
	"GET /v1/payments/{id}":                         {"TestTenantIsolation", "TestCrossTenantPayoutsTimelines"},
	"PUT /v1/payments/{id}":                         {"TestTenantIsolation", "TestUpdatePayment"},
	"DELETE /v1/payments/{id}":                      {"TestTenantIsolation", "TestDeletePayment"},
	"POST /v1/payments/{id}/process":                {"TestTenantIsolation", "TestProcessPaymentLater"},
	"POST /v1/payments/{id}/cancel":                 {"TestTenantIsolation", "TestCrossTenantPayoutsTimelines"},
	"POST /v1/payments/{id}/refunds":                {"TestTenantIsolation", "TestCrossTenantPayoutsTimelines"},
	"GET /v1/payments/{id}/timeline":                {"TestTenantIsolation", "TestCrossTenantPayoutsTimelines"},
	"POST /v1/payouts":                              {"TestPayoutTenantIsolation", "TestCrossTenantPayoutsTimelines"},
	"GET /v1/payouts":                               {"TestPayoutTenantIsolation", "TestCrossTenantPayoutsTimelines"},
	"GET /v1/payouts/{id}":                          {"TestPayoutTenantIsolation", "TestCrossTenantPayoutsTimelines"},
	"PUT /v1/payouts/{id}/lines":                    {"TestPayoutTenantIsolation", "TestCrossTenantPayoutsTimelines"},
	"POST /v1/payouts/{id}/cancel":                  {"TestPayoutTenantIsolation", "TestCrossTenantPayoutsTimelines"},
	"POST /v1/invoices":                             {"TestInvoiceIsolation"},
	"GET /v1/invoices":                              {"TestInvoiceIsolation", "TestCrossTenantPayoutsTimelines"},
	"GET /v1/invoices/{ref}":                        {"TestInvoiceIsolation"},
	"POST /v1/users":                                {"TestInvoiceIsolation"},
	"GET /v1/users/{ref}":                           {"TestInvoiceIsolation"},
	"PATCH /v1/users/{ref}":                         {"TestFlowTenantIsolation"},
	"POST /v1/payment-flows":                        {"TestFlowTenantIsolation", "TestFlowCreateRefusals"},
	"GET /v1/payment-flows":                         {"TestFlowTenantIsolation"},
	"GET /v1/payment-flows/{id}":                    {"TestFlowTenantIsolation", "TestFlowCreateRefusals"},
	"GET /v1/payment-flows/{id}/plans":              {"TestFlowTenantIsolation"},
	"POST /v1/payment-flows/{id}/cancel":            {"TestFlowTenantIsolation"},
	"POST /v1/payment-sessions":                     {"TestSessionTenantIsolation"},
	"GET /v1/payment-sessions/{id}":                 {"TestSessionTenantIsolation"},
	"POST /v1/payment-sessions/{id}/submit":         {"TestSessionTenantIsolation"},
	"POST /v1/payment-sessions/{id}/cancel":         {"TestSessionTenantIsolation", "TestSessionCancel"},
	"GET /pay/{token}/session":                      {"TestSessionTenantIsolation"}, // no key: token and secret only
	"POST /pay/{token}/submit":                      {"TestSessionTenantIsolation"},
	"GET /pay/{token}":                              {"-"}, // the same static page for every token; its calls are the session routes
	"GET /pay-assets/{file}":                        {"-"}, // static files
	"GET /v1/events":                                {"TestEventTenantIsolation"},
	"GET /v1/events/{id}":                           {"TestEventTenantIsolation"},
	"POST /v1/events/{id}/redeliver":                {"TestWebhookRedeliver"},
	"POST /v1/webhook-endpoints":                    {"TestWebhookEndpointTenantIsolation"},
	"GET /v1/webhook-endpoints":                     {"TestWebhookEndpointTenantIsolation"},
	"GET /v1/webhook-endpoints/{id}":                {"TestWebhookEndpointTenantIsolation"},
	"POST /v1/webhook-endpoints/{id}":               {"TestWebhookEndpointTenantIsolation"},
	"DELETE /v1/webhook-endpoints/{id}":             {"TestWebhookEndpointTenantIsolation"},
	"POST /v1/webhook-endpoints/{id}/rotate-secret": {"TestWebhookEndpointTenantIsolation"},
	"GET /v1/webhook-endpoints/{id}/deliveries":     {"TestWebhookEndpointTenantIsolation"},
	"POST /v1/gateway/notifications":                {"-"}, // signed by the gateway, no tenant: 202 whoever's payment it names (processor/notification_test.go)
	"GET /healthz":                                  {"-"}, // no tenant
	"GET /readyz":                                   {"-"},
	"GET /openapi.json":                             {"-"}, // the same public document for everyone
	"/":                                             {"-"}, // no route: 404 route_not_found before any lookup
}

// TestIsolationCoversEveryRoute reads routes.go and requires every route to
// be listed in isolationCoverage with tests that exist in this package.
func TestIsolationCoversEveryRoute(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("routes.go")
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, m := range regexp.MustCompile(`handle\("([^"]+)",`).FindAllSubmatch(src, -1) {
		routes = append(routes, string(m[1]))
	}
	if len(routes) < 10 {
		t.Fatalf("found only %d routes in routes.go: %v", len(routes), routes)
	}
	files, _ := filepath.Glob("*_test.go")
	var tests bytes.Buffer
	for _, f := range files {
		b, _ := os.ReadFile(f)
		tests.Write(b)
	}
	seen := map[string]bool{}
	for _, r := range routes {
		seen[r] = true
		names, ok := isolationCoverage[r]
		if !ok {
			t.Errorf("route %q has no cross-tenant probe: add one and list it in isolationCoverage", r)
			continue
		}
		for _, n := range names {
			if n != "-" && !bytes.Contains(tests.Bytes(), []byte("func "+n+"(t *testing.T)")) {
				t.Errorf("route %q: test %s does not exist", r, n)
			}
		}
	}
	var stale []string
	for r := range isolationCoverage {
		if !seen[r] {
			stale = append(stale, r)
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		t.Errorf("isolationCoverage lists routes routes.go no longer has: %v", stale)
	}
}

// TestCrossTenantPayoutsTimelines fills what the other isolation tests
// leave out (I6): a payout of A's through every payment route and a
// payment of A's through every payout route, the payout list's cursor and
// external_payment_id filter, a payout's timeline, lines of B's own payout
// naming A's invoice, A's external_payment_id reused by B, and the invoice
// list's cursor by external id. Every refusal is the same answer as for an
// id that exists nowhere, leaks nothing of A's, and changes nothing of A's.
func TestCrossTenantPayoutsTimelines(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	invA := payoutInvoice(t, h, h.TenantA, "USD", 100000)
	poA := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"external_payment_id": "a-secret-payout",
		"beneficiary_name": "Alice Secretname", "lines": []any{line(invA, "10")}}))
	payoutID := poA["id"].(string)
	payA := h.CreatePayment("CARD", "pm_card_visa", "7.00")
	poB := createPayout(t, h, h.KeyB, payoutBody(nil))
	payoutB := poB["id"].(string)
	secrets := []string{payoutID, payA, invA, h.TenantA, "a-secret-payout", "Alice Secretname", testenv.TestInvoice}
	beforePayout := snapshot(t, h, payoutID, payA)
	reservedBefore, _ := balances(t, h, h.TenantA, invA)
	const ghost = "pay_00000000000000000000000000000000"

	type probe struct {
		name, method, path, body string
		status                   int
		code                     string
	}
	var probes []probe
	for _, id := range []string{payoutID, payA} {
		probes = append(probes,
			probe{"get payment", "GET", "/v1/payments/" + id, "", 404, "resource_not_found"},
			probe{"timeline", "GET", "/v1/payments/" + id + "/timeline", "", 404, "resource_not_found"},
			probe{"cancel payment", "POST", "/v1/payments/" + id + "/cancel", "", 404, "resource_not_found"},
			probe{"refund", "POST", "/v1/payments/" + id + "/refunds", `{"amount":"1.00"}`, 404, "resource_not_found"},
			probe{"get payout", "GET", "/v1/payouts/" + id, "", 404, "resource_not_found"},
			probe{"payout lines", "PUT", "/v1/payouts/" + id + "/lines", `{"lines":[]}`, 404, "resource_not_found"},
			probe{"cancel payout", "POST", "/v1/payouts/" + id + "/cancel", "", 404, "resource_not_found"},
			probe{"payments cursor", "GET", "/v1/payments?starting_after=" + id, "", 422, "starting_after_not_found"},
			probe{"payouts cursor", "GET", "/v1/payouts?starting_after=" + id, "", 422, "starting_after_not_found"},
		)
	}
	for _, p := range probes {
		t.Run(p.name+" "+p.path, func(t *testing.T) {
			var body []byte
			if p.body != "" {
				body = []byte(p.body)
			}
			r := h.Do(p.method, p.path, h.KeyB, body, nil)
			e1 := checkEnvelope(t, r, p.status, p.code)
			leaks(t, r, secrets)
			path := strings.Replace(strings.Replace(p.path, payoutID, ghost, 1), payA, ghost, 1)
			e2 := checkEnvelope(t, h.Do(p.method, path, h.KeyB, body, nil), p.status, p.code)
			if e1.Message != e2.Message || strings.Join(e1.ErrorCodes, ",") != strings.Join(e2.ErrorCodes, ",") {
				t.Errorf("answers differ for A's id and a missing id: %s vs %+v", r.Body, e2)
			}
		})
	}
	t.Run("payouts filtered by A's external_payment_id", func(t *testing.T) {
		r := h.Do("GET", "/v1/payouts?external_payment_id=a-secret-payout", h.KeyB, nil, nil)
		if d := jsonObj(t, r, http.StatusOK)["data"].([]any); len(d) != 0 {
			t.Errorf("B lists %s", r.Body)
		}
		leaks(t, r, secrets)
	})
	t.Run("invoices cursor by A's external id", func(t *testing.T) {
		r := h.Do("GET", "/v1/invoices?starting_after="+testenv.TestInvoice, h.KeyB, nil, nil)
		checkEnvelope(t, r, http.StatusUnprocessableEntity, "starting_after_not_found")
		leaks(t, r, secrets)
	})
	t.Run("lines of B's payout naming A's invoice", func(t *testing.T) {
		// by id and by seed 002's UUID token
		for _, tok := range []string{invA, invoiceTokenOf(invA)} {
			r := h.Do("PUT", "/v1/payouts/"+payoutB+"/lines", h.KeyB, mustJSON(t, map[string]any{"lines": []any{line(tok, "1")}}), nil)
			e := checkEnvelope(t, r, http.StatusUnprocessableEntity, "invoice_token_not_found")
			if e.Fields["lines[0].invoice_token"] != "invoice_token_not_found" {
				t.Errorf("fields %v", e.Fields)
			}
			leaks(t, r, secrets)
		}
	})
	t.Run("A's external_payment_id is B's own", func(t *testing.T) {
		// the same body A sent, lines aside: B gets a payout of its own, never A's
		r := h.Do("POST", "/v1/payouts", h.KeyB, payoutBody(map[string]any{"external_payment_id": "a-secret-payout",
			"beneficiary_name": "Alice Secretname"}), nil)
		m := jsonObj(t, r, http.StatusCreated)
		if m["id"] == payoutID {
			t.Errorf("B was given A's payout: %s", r.Body)
		}
		leaks(t, r, []string{payoutID, invA, h.TenantA})
	})

	diff(t, "A's payout and payment after B's calls", beforePayout, snapshot(t, h, payoutID, payA))
	if reserved, _ := balances(t, h, h.TenantA, invA); reserved != reservedBefore {
		t.Errorf("A's invoice reserved %d, was %d", reserved, reservedBefore)
	}
	if got := getPayout(t, h, payoutID); len(linesOf(t, got)) != 1 {
		t.Errorf("A's payout lines = %v", got["lines"])
	}
	if r := h.Do("GET", "/v1/payments/"+payoutID+"/timeline", h.KeyA, nil, nil); r.Status != http.StatusOK {
		t.Errorf("A's own payout timeline: %d %s", r.Status, r.Body)
	}
}
