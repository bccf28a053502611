package intake_test

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/payd/payd/internal/testenv"
)

// TestIdempotencyKeyConcurrent fires 100 identical creates with one
// Idempotency-Key at once: one payment, one original 201, and every other
// answer either a byte-identical replay or a 409 while the first runs.
func TestIdempotencyKeyConcurrent(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	invoice(t, h, h.KeyA, "inv_1", "USD", maxUSD)
	body := paymentBody(`"12.50"`, "USD", "CARD", "pm_card_visa")
	hdr := map[string]string{"Idempotency-Key": "order-7f3a"}
	const n = 100
	resps := make([]testenv.Response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resps[i] = h.Do("POST", "/v1/payments", h.KeyA, body, hdr)
		}()
	}
	close(start)
	wg.Wait()

	var first []byte
	originals, replays, inFlight := 0, 0, 0
	for _, r := range resps {
		if r.Status == http.StatusCreated && r.Header.Get("Idempotent-Replayed") == "" {
			originals++
			first = r.Body
		}
	}
	if originals != 1 {
		t.Fatalf("%d original 201s, want exactly 1", originals)
	}
	for i, r := range resps {
		switch r.Status {
		case http.StatusCreated:
			if r.Header.Get("Idempotent-Replayed") == "true" {
				replays++
				if !bytes.Equal(r.Body, first) {
					t.Errorf("response %d: replayed body differs:\n got %s\nwant %s", i, r.Body, first)
				}
			}
		case http.StatusConflict:
			inFlight++
			checkEnvelope(t, r, http.StatusConflict, "idempotent_request_in_flight")
			if ra := r.Header.Get("Retry-After"); ra == "" {
				t.Errorf("response %d: 409 without Retry-After", i)
			}
		default:
			t.Errorf("response %d: status %d, body %s", i, r.Status, r.Body)
		}
	}
	t.Logf("1 original, %d replays, %d in flight", replays, inFlight)
	if got := countPayments(t, h, h.TenantA); got != 1 {
		t.Fatalf("%d payments for one Idempotency-Key, want 1", got)
	}

	// After the storm: the stored answer, byte for byte.
	r := h.Do("POST", "/v1/payments", h.KeyA, body, hdr)
	if r.Status != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(r.Body, first) {
		t.Errorf("replay = %d replayed=%q body %s; want 201 replayed=true body %s", r.Status, r.Header.Get("Idempotent-Replayed"), r.Body, first)
	}
	// The same key with another body is refused, and refusing it changes nothing.
	r = h.Do("POST", "/v1/payments", h.KeyA, paymentBody(`"12.51"`, "USD", "CARD", "pm_card_visa"), hdr)
	checkEnvelope(t, r, http.StatusUnprocessableEntity, "idempotency_key_reused")
	r = h.Do("POST", "/v1/payments", h.KeyA, paymentBody(`"12.50"`, "EUR", "CARD", "pm_card_visa"), hdr)
	checkEnvelope(t, r, http.StatusUnprocessableEntity, "idempotency_key_reused")
	r = h.Do("POST", "/v1/payments", h.KeyA, body, hdr)
	if r.Status != http.StatusCreated || !bytes.Equal(r.Body, first) {
		t.Errorf("replay after a mismatch = %d %s", r.Status, r.Body)
	}
	if got := countPayments(t, h, h.TenantA); got != 1 {
		t.Errorf("%d payments, want 1", got)
	}
}

// TestIdempotencyKeyInFlight holds the first request inside its statement
// (the test holds its invoice's row lock) so a duplicate deterministically
// finds its key in flight.
func TestIdempotencyKeyInFlight(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	invoice(t, h, h.KeyA, "inv_1", "USD", maxUSD)
	body := paymentBody(`12.5`, "USD", "CARD", "pm_card_visa")
	hdr := map[string]string{"Idempotency-Key": "held-1"}
	lock := holdInvoice(t, h, "inv_1")
	done := make(chan testenv.Response, 1)
	go func() { done <- h.Do("POST", "/v1/payments", h.KeyA, body, hdr) }()
	waitFor(t, 10*time.Second, "the first request to take its key's lock", func() bool { return advisoryLocks(t, h) > 0 })

	r := h.Do("POST", "/v1/payments", h.KeyA, body, hdr)
	checkEnvelope(t, r, http.StatusConflict, "idempotent_request_in_flight")
	if r.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q, want 1", r.Header.Get("Retry-After"))
	}
	// A different body under the in-flight key: the key is busy (what it
	// will hold is not known until the first commits), not a wait.
	other := paymentBody(`13`, "USD", "CARD", "pm_card_visa")
	r = h.Do("POST", "/v1/payments", h.KeyA, other, hdr)
	checkEnvelope(t, r, http.StatusConflict, "idempotent_request_in_flight")

	lock()
	var first testenv.Response
	select {
	case first = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the held request never finished")
	}
	if first.Status != http.StatusCreated || first.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first = %d replayed=%q %s", first.Status, first.Header.Get("Idempotent-Replayed"), first.Body)
	}
	// once it is known, the other body is a mismatch
	r = h.Do("POST", "/v1/payments", h.KeyA, other, hdr)
	checkEnvelope(t, r, http.StatusUnprocessableEntity, "idempotency_key_reused")
	// "12.50" as a string is the same request as the number 12.5.
	r = h.Do("POST", "/v1/payments", h.KeyA, paymentBody(`"12.50"`, "USD", "CARD", "pm_card_visa"), hdr)
	if r.Status != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(r.Body, first.Body) {
		t.Errorf("replay of the normalized amount = %d replayed=%q %s", r.Status, r.Header.Get("Idempotent-Replayed"), r.Body)
	}
	if got := countPayments(t, h, h.TenantA); got != 1 {
		t.Errorf("%d payments, want 1", got)
	}
}

// TestIdempotencyKeyRules covers the smaller rules one by one.
func TestIdempotencyKeyRules(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	invoice(t, h, h.KeyA, "inv_1", "USD", maxUSD)
	invoice(t, h, h.KeyB, "inv_1", "USD", maxUSD)
	post := func(key string, body []byte, hdr map[string]string) testenv.Response {
		return h.Do("POST", "/v1/payments", key, body, hdr)
	}

	t.Run("amount forms share a fingerprint", func(t *testing.T) {
		hdr := map[string]string{"Idempotency-Key": "amount-forms"}
		first := post(h.KeyA, paymentBody(`"12.5"`, "USD", "CARD", "pm_card_visa"), hdr)
		jsonObj(t, first, http.StatusCreated)
		for _, amount := range []string{`12.50`, `12.5`, `"12.50"`, `"12.500"`, `12.500`} {
			r := post(h.KeyA, paymentBody(amount, "USD", "CARD", "pm_card_visa"), hdr)
			if r.Status != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(r.Body, first.Body) {
				t.Errorf("amount %s: %d replayed=%q %s", amount, r.Status, r.Header.Get("Idempotent-Replayed"), r.Body)
			}
		}
		// Member order, whitespace and an explicit default do not matter either.
		alt := []byte(`{ "payment_method_id":"pm_card_visa", "payment_method_type":"CARD", "process_payment": true,
			"destination_type":"INVOICE", "destination_id":"inv_1", "currency":"USD", "amount":12.5 }`)
		r := post(h.KeyA, alt, hdr)
		if r.Status != http.StatusCreated || !bytes.Equal(r.Body, first.Body) {
			t.Errorf("reordered body: %d %s", r.Status, r.Body)
		}
	})

	t.Run("a refused request does not use the key", func(t *testing.T) {
		hdr := map[string]string{"Idempotency-Key": "first-was-bad"}
		checkEnvelope(t, post(h.KeyA, paymentBody(`"-1"`, "USD", "CARD", "pm_card_visa"), hdr),
			http.StatusUnprocessableEntity, "amount_must_be_positive")
		r := post(h.KeyA, paymentBody(`"3.00"`, "USD", "CARD", "pm_card_visa"), hdr)
		if r.Status != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "" {
			t.Errorf("valid request after a refused one: %d replayed=%q %s", r.Status, r.Header.Get("Idempotent-Replayed"), r.Body)
		}
	})

	t.Run("header keys are scoped per tenant", func(t *testing.T) {
		hdr := map[string]string{"Idempotency-Key": "shared-key-string"}
		body := paymentBody(`"7.00"`, "USD", "CARD", "pm_card_visa")
		a := jsonObj(t, post(h.KeyA, body, hdr), http.StatusCreated)
		rb := post(h.KeyB, body, hdr)
		if rb.Header.Get("Idempotent-Replayed") != "" {
			t.Errorf("tenant B got tenant A's replay")
		}
		b := jsonObj(t, rb, http.StatusCreated)
		if a["id"] == b["id"] {
			t.Errorf("both tenants got payment %v", a["id"])
		}
		if b["tenant_id"] != h.TenantB || a["tenant_id"] != h.TenantA {
			t.Errorf("tenant_id A=%v B=%v", a["tenant_id"], b["tenant_id"])
		}
		// And B's own replay is B's payment.
		rb2 := post(h.KeyB, body, hdr)
		if rb2.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(rb2.Body, rb.Body) {
			t.Errorf("tenant B replay: %d %s", rb2.Status, rb2.Body)
		}
		// Another body from B under the same string is B's mismatch only.
		checkEnvelope(t, post(h.KeyB, paymentBody(`"8.00"`, "USD", "CARD", "pm_card_visa"), hdr),
			http.StatusUnprocessableEntity, "idempotency_key_reused")
	})

	t.Run("header keys are scoped per route", func(t *testing.T) {
		hdr := map[string]string{"Idempotency-Key": "route-scoped"}
		p := jsonObj(t, post(h.KeyA, paymentBody(`"9.00"`, "USD", "CARD", "pm_card_visa"), hdr), http.StatusCreated)
		r := h.Do("POST", "/v1/payments/"+p["id"].(string)+"/cancel", h.KeyA, nil, hdr)
		if r.Status != http.StatusOK || r.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("cancel under a key used on create: %d replayed=%q %s", r.Status, r.Header.Get("Idempotent-Replayed"), r.Body)
		}
		again := h.Do("POST", "/v1/payments/"+p["id"].(string)+"/cancel", h.KeyA, nil, hdr)
		if again.Status != http.StatusOK || again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.Body, r.Body) {
			t.Errorf("cancel replay: %d replayed=%q %s", again.Status, again.Header.Get("Idempotent-Replayed"), again.Body)
		}
	})

	t.Run("business key", func(t *testing.T) {
		withKey := func(amount string) []byte {
			return createBody(kv{"amount", amount}, kv{"idempotency_key", `"invoice-42-payment"`})
		}
		r1 := post(h.KeyA, withKey(`"20.00"`), nil)
		p1 := jsonObj(t, r1, http.StatusCreated)
		if p1["idempotency_key"] != "invoice-42-payment" {
			t.Errorf("idempotency_key = %v", p1["idempotency_key"])
		}
		for _, amount := range []string{`"20.00"`, `20`, `20.0`, `"20"`} {
			r := post(h.KeyA, withKey(amount), nil)
			p := jsonObj(t, r, http.StatusCreated)
			if r.Header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("amount %s: Idempotent-Replayed = %q", amount, r.Header.Get("Idempotent-Replayed"))
			}
			diff(t, "replayed payment", p1, p)
		}
		checkEnvelope(t, post(h.KeyA, withKey(`"20.01"`), nil), http.StatusUnprocessableEntity, "idempotency_key_reused")
		other := createBody(kv{"idempotency_key", `"invoice-42-payment"`}, kv{"payment_method_id", `"pm_card_other"`})
		checkEnvelope(t, post(h.KeyA, other, nil), http.StatusUnprocessableEntity, "idempotency_key_reused")
		// With a fresh header key as well, the business key still decides.
		r := post(h.KeyA, withKey(`"20.00"`), map[string]string{"Idempotency-Key": "fresh-header"})
		if p := jsonObj(t, r, http.StatusCreated); p["id"] != p1["id"] {
			t.Errorf("business key under a new header key gave %v, want %v", p["id"], p1["id"])
		}
		checkEnvelope(t, post(h.KeyA, withKey(`"99.00"`), map[string]string{"Idempotency-Key": "fresh-header-2"}),
			http.StatusUnprocessableEntity, "idempotency_key_reused")
		// Business keys are per tenant too.
		pb := jsonObj(t, post(h.KeyB, withKey(`"99.00"`), nil), http.StatusCreated)
		if pb["id"] == p1["id"] || pb["tenant_id"] != h.TenantB {
			t.Errorf("tenant B's business key: %v", pb)
		}
	})

	t.Run("business key concurrent", func(t *testing.T) {
		body := createBody(kv{"idempotency_key", `"race-1"`})
		const n = 20
		resps := make([]testenv.Response, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); resps[i] = post(h.KeyA, body, nil) }()
		}
		wg.Wait()
		created, replayed := 0, 0
		ids := map[any]bool{}
		for _, r := range resps {
			switch {
			case r.Status == http.StatusCreated && r.Header.Get("Idempotent-Replayed") == "true":
				replayed++
				ids[jsonObj(t, r, http.StatusCreated)["id"]] = true
			case r.Status == http.StatusCreated:
				created++
				ids[jsonObj(t, r, http.StatusCreated)["id"]] = true
			default:
				t.Errorf("status %d %s", r.Status, r.Body)
			}
		}
		if created != 1 || replayed != n-1 || len(ids) != 1 {
			t.Errorf("created %d, replayed %d, ids %v; want 1, %d, one id", created, replayed, ids, n-1)
		}
		var rows int
		if err := h.Store.DB().QueryRow(`SELECT count(*) FROM payments WHERE idempotency_key = 'race-1'`).Scan(&rows); err != nil || rows != 1 {
			t.Errorf("rows with business key race-1: %d, %v", rows, err)
		}
	})
}

// TestIdempotencyKeyStalled: a request stalled for long (its statement
// waits on a lock) keeps its key for as long as it runs; a retry meanwhile
// is 409, never a second payment, and replays the answer once it is done.
// (Under the earlier lease-based keys, a retry after the lease took the key
// over, and both could commit.)
func TestIdempotencyKeyStalled(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	invoice(t, h, h.KeyA, "inv_1", "USD", maxUSD)
	body := paymentBody(`"5.00"`, "USD", "CARD", "pm_card_visa")
	hdr := map[string]string{"Idempotency-Key": "stalled"}
	release := holdInvoice(t, h, "inv_1")
	done := make(chan testenv.Response, 1)
	go func() { done <- h.Do("POST", "/v1/payments", h.KeyA, body, hdr) }()
	waitFor(t, 10*time.Second, "the first request to take its key's lock", func() bool { return advisoryLocks(t, h) > 0 })
	time.Sleep(1500 * time.Millisecond)
	for range 3 {
		r := h.Do("POST", "/v1/payments", h.KeyA, body, hdr)
		checkEnvelope(t, r, http.StatusConflict, "idempotent_request_in_flight")
	}
	release()
	var first testenv.Response
	select {
	case first = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the stalled request never finished")
	}
	if first.Status != http.StatusCreated {
		t.Fatalf("stalled request = %d %s", first.Status, first.Body)
	}
	r := h.Do("POST", "/v1/payments", h.KeyA, body, hdr)
	if r.Status != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(r.Body, first.Body) {
		t.Errorf("replay = %d %s", r.Status, r.Body)
	}
	if n := countPayments(t, h, h.TenantA); n != 1 {
		t.Fatalf("%d payments for one Idempotency-Key, want 1", n)
	}
}

// holdInvoice locks an invoice's row (by external id) in a transaction of
// the test's until the returned func is called.
func holdInvoice(t *testing.T, h *testenv.Harness, externalID string) func() {
	t.Helper()
	ctx := context.Background()
	tx, err := h.Store.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `SELECT id FROM invoices WHERE external_id = $1 FOR UPDATE`, externalID); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { _ = tx.Rollback() }) }
	t.Cleanup(release)
	return release
}

// advisoryLocks counts the advisory locks held in the test's database.
func advisoryLocks(t *testing.T, h *testenv.Harness) int {
	t.Helper()
	var n int
	if err := h.Store.DB().QueryRow(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
