package intake_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
)

// TestTenantIsolation: with tenant B's key, nothing of tenant A's can be
// read, changed or even confirmed to exist (I6).
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	invoice(t, h, h.KeyA, "inv_1", "USD", maxUSD)
	invoice(t, h, h.KeyB, "inv_1", "USD", maxUSD)
	// A: a succeeded payment with a refund, a failed one, and a business key.
	paid := h.CreatePayment("CARD", "pm_card_visa", "40.00")
	declined := h.CreatePayment("CARD", "pm_card_declined", "3.00")
	keyed := jsonObj(t, h.Do("POST", "/v1/payments", h.KeyA,
		createBody(kv{"idempotency_key", `"a-secret-order"`}, kv{"metadata", `{"customer":"alice@example.com"}`}), nil),
		http.StatusCreated)["id"].(string)
	h.WaitFinal(paid, 15*time.Second)
	h.WaitFinal(declined, 15*time.Second)
	h.WaitFinal(keyed, 15*time.Second)
	refund := jsonObj(t, h.Do("POST", "/v1/payments/"+paid+"/refunds", h.KeyA, []byte(`{"amount":"5.00"}`), nil), http.StatusCreated)
	refundID := refund["id"].(string)
	waitFor(t, 15*time.Second, "A's refund", func() bool {
		p, err := h.Store.GetPayment(t.Context(), h.TenantA, paid)
		return err == nil && p.Status == payment.StatusPartiallyRefunded
	})
	before := snapshot(t, h, paid, declined, keyed)

	secrets := []string{paid, declined, keyed, refundID, h.TenantA, "alice@example.com", "a-secret-order"}
	for _, id := range []string{paid, declined, keyed} {
		cases := []struct {
			name, method, path string
			body               []byte
		}{
			{"get", "GET", "/v1/payments/" + id, nil},
			{"timeline", "GET", "/v1/payments/" + id + "/timeline", nil},
			{"cancel", "POST", "/v1/payments/" + id + "/cancel", nil},
			{"refund all", "POST", "/v1/payments/" + id + "/refunds", []byte(`{}`)},
			{"refund some", "POST", "/v1/payments/" + id + "/refunds", []byte(`{"amount":"1.00"}`)},
			{"refund with key", "POST", "/v1/payments/" + id + "/refunds", []byte(`{"amount":"1.00","reason":"x"}`)},
			{"process", "POST", "/v1/payments/" + id + "/process", nil},
			{"update", "PUT", "/v1/payments/" + id, []byte(`{"metadata":{"b":"was here"}}`)},
			{"delete", "DELETE", "/v1/payments/" + id, nil},
		}
		for _, c := range cases {
			t.Run(c.name+" "+id, func(t *testing.T) {
				hdr := map[string]string{"Idempotency-Key": "b-" + strings.ReplaceAll(c.name, " ", "-")}
				r := h.Do(c.method, c.path, h.KeyB, c.body, hdr)
				checkEnvelope(t, r, http.StatusNotFound, "resource_not_found")
				leaks(t, r, secrets)
				// The same answer as for an id that exists nowhere: no oracle.
				ghost := h.Do(c.method, strings.Replace(c.path, id, "pay_00000000000000000000000000000000", 1), h.KeyB, c.body, hdr)
				e1, e2 := checkEnvelope(t, r, 404, "resource_not_found"), checkEnvelope(t, ghost, 404, "resource_not_found")
				if e1.Message != e2.Message || strings.Join(e1.ErrorCodes, ",") != strings.Join(e2.ErrorCodes, ",") {
					t.Errorf("answers differ for A's id and a missing id: %s vs %s", r.Body, ghost.Body)
				}
			})
		}
	}
	t.Run("list cursor", func(t *testing.T) {
		r := h.Do("GET", "/v1/payments?starting_after="+paid, h.KeyB, nil, nil)
		checkEnvelope(t, r, http.StatusUnprocessableEntity, "starting_after_not_found")
		leaks(t, r, secrets)
	})
	t.Run("list is empty", func(t *testing.T) {
		for _, path := range []string{"/v1/payments", "/v1/payments?limit=100", "/v1/payments?status=SUCCEEDED",
			"/v1/payments?status=PARTIALLY_REFUNDED", "/v1/payments?status=FAILED"} {
			r := h.Do("GET", path, h.KeyB, nil, nil)
			m := jsonObj(t, r, http.StatusOK)
			pg, _ := m["pagination"].(map[string]any)
			if d, ok := m["items"].([]any); !ok || len(d) != 0 || fmt.Sprint(pg["total"]) != "0" || pg["has_more"] != false {
				t.Errorf("%s for B = %s", path, r.Body)
			}
			leaks(t, r, secrets)
		}
	})
	t.Run("business key of A is free for B", func(t *testing.T) {
		r := h.Do("POST", "/v1/payments", h.KeyB, createBody(kv{"idempotency_key", `"a-secret-order"`}, kv{"amount", `"1.00"`}), nil)
		m := jsonObj(t, r, http.StatusCreated)
		if m["id"] == keyed || m["tenant_id"] != h.TenantB {
			t.Errorf("B's payment under A's business key: %s", r.Body)
		}
		leaks(t, r, []string{keyed, h.TenantA, "alice@example.com"})
	})

	// Nothing of A's changed, and A still sees everything.
	diff(t, "A's payments after B's attempts", before, snapshot(t, h, paid, declined, keyed))
	for _, id := range []string{paid, declined, keyed} {
		jsonObj(t, h.Do("GET", "/v1/payments/"+id, h.KeyA, nil, nil), http.StatusOK)
	}
	var refunds int
	if err := h.Store.DB().QueryRow(`SELECT count(*) FROM refunds`).Scan(&refunds); err != nil || refunds != 1 {
		t.Errorf("refunds = %d, %v; want only A's one", refunds, err)
	}
	m := jsonObj(t, h.Do("GET", "/v1/payments", h.KeyA, nil, nil), http.StatusOK)
	if d := m["items"].([]any); len(d) != 3 {
		t.Errorf("A lists %d payments, want 3", len(d))
	}
}

type paymentState struct {
	Status             payment.Status
	Refunded, Pending  int64
	Events, UpdatedBy  string
	CanceledAt, Failed bool
}

func snapshot(t *testing.T, h *testenv.Harness, ids ...string) map[string]paymentState {
	t.Helper()
	out := map[string]paymentState{}
	for _, id := range ids {
		p, err := h.Store.GetPayment(t.Context(), h.TenantA, id)
		if err != nil {
			t.Fatalf("load %s: %v", id, err)
		}
		evs, err := h.Store.Events(t.Context(), h.TenantA, id)
		if err != nil {
			t.Fatal(err)
		}
		var trail []string
		for _, e := range evs {
			trail = append(trail, string(e.From)+">"+string(e.To))
		}
		out[id] = paymentState{Status: p.Status, Refunded: p.RefundedAmount, Pending: p.RefundPendingAmount,
			Events: strings.Join(trail, " "), UpdatedBy: p.UpdatedBy, CanceledAt: p.CanceledAt != nil, Failed: p.FailedAt != nil}
	}
	return out
}

// leaks fails when a response mentions any of another tenant's values.
func leaks(t *testing.T, r testenv.Response, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(string(r.Body), s) {
			t.Errorf("response leaks %q: %s", s, r.Body)
		}
	}
}
