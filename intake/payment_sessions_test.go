package intake_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/intake"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
)

// sessionBody is a valid create body with overrides (nil deletes a member).
func sessionBody(over map[string]any) []byte {
	m := map[string]any{
		"amount": 1250, "currency": "USD",
		"billing":     map[string]any{"address": map[string]any{"country": "GB", "city": "London"}},
		"success_url": "https://merchant.example/ok", "failure_url": "https://merchant.example/no",
		"reference": "ORD-1", "description": "Two mugs", "display_name": "Mug Shop",
		"items": []any{map[string]any{"name": "Mug", "quantity": 2, "unit_price": 625, "total_amount": 1250}},
	}
	for k, v := range over {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return b
}

// createSession creates a session of tenant A and returns the 201 body.
func createSession(t *testing.T, h *testenv.Harness, over map[string]any) map[string]any {
	t.Helper()
	return jsonObj(t, h.Do("POST", "/v1/payment-sessions", h.KeyA, sessionBody(over), nil), 201)
}

func submitBody(sessionData string, amount int64) []byte {
	b, _ := json.Marshal(map[string]any{"session_data": sessionData, "amount": amount})
	return b
}

func sessionHarness(t *testing.T, o testenv.Options) *testenv.Harness {
	if o.Intake.SessionSubmitWait == 0 {
		o.Intake.SessionSubmitWait = 3 * time.Second
	}
	if o.Intake.PublicURL == "" {
		o.Intake.PublicURL = "https://pay.example"
	}
	return testenv.Start(t, o)
}

func TestSessionCreateSubmitCard(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{})
	s := createSession(t, h, nil)
	id := s["id"].(string)
	if !strings.HasPrefix(id, "ps_") || s["status"] != "ACTIVE" || s["amount"] != json.Number("1250") {
		t.Fatalf("session %v", s)
	}
	secret, _ := s["payment_session_secret"].(string)
	token, _ := s["payment_session_token"].(string)
	if secret == "" || token == "" || secret == token {
		t.Fatalf("token %q secret %q", token, secret)
	}
	links := s["_links"].(map[string]any)
	if links["redirect"].(map[string]any)["href"] != "https://pay.example/pay/"+token+"#"+secret ||
		links["self"].(map[string]any)["href"] != "https://pay.example/v1/payment-sessions/"+id {
		t.Errorf("_links %v", links)
	}
	if p := s["products"].([]any); len(p) != 1 {
		t.Errorf("products %v", p)
	}
	r := h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", 1250), nil)
	out := jsonObj(t, r, 201)
	if out["status"] != "Captured" || len(out["type"].([]any)) != 1 || out["type"].([]any)[0] != "card" {
		t.Fatalf("submit %v", out)
	}
	pay := h.WaitFinal(out["id"].(string), 5*time.Second)
	if pay.Status != payment.StatusSucceeded || pay.SessionID != id {
		t.Fatalf("payment %+v", pay)
	}
	g := jsonObj(t, h.Do("GET", "/v1/payment-sessions/"+id, h.KeyA, nil, nil), 200)
	if g["status"] != "COMPLETED" || g["payment_id"] != pay.ID {
		t.Errorf("GET %v", g)
	}
	if _, ok := g["payment_session_secret"]; ok {
		t.Errorf("GET shows the secret: %v", g)
	}
	// a completed session takes no more submits
	checkEnvelope(t, h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", 1250), nil),
		422, "payment_session_completed")
	// the session's transitions are in the payment's timeline
	tl := jsonObj(t, h.Do("GET", "/v1/payments/"+pay.ID+"/timeline", h.KeyA, nil, nil), 200)
	var tos []string
	for _, e := range tl["session_events"].([]any) {
		tos = append(tos, e.(map[string]any)["to"].(string))
	}
	diff(t, "session events", []string{"ACTIVE", "PROCESSING", "COMPLETED"}, tos)
}

func TestSession3DSAnd202(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{})
	s := createSession(t, h, nil)
	id := s["id"].(string)
	r := h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_3ds", 1250), nil)
	out := jsonObj(t, r, 202)
	act := out["action"].(map[string]any)
	if out["type"] != "card" || out["status"] != "Pending" || act["type"] != "redirect" || !strings.Contains(act["url"].(string), "/challenge/") {
		t.Fatalf("3DS submit %v", out)
	}
	// the page sees the same action
	pg := jsonObj(t, h.Do("GET", "/pay/"+s["payment_session_token"].(string)+"/session", "", nil,
		map[string]string{intake.SessionSecretHeader: s["payment_session_secret"].(string)}), 200)
	if pg["action"].(map[string]any)["url"] != act["url"] || pg["status"] != "PROCESSING" {
		t.Errorf("page %v", pg)
	}
	// while it waits on the customer, another submit is 429
	checkEnvelope(t, h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", 1250), nil),
		429, "payment_session_submit_in_flight")
	ref := act["url"].(string)[strings.LastIndex(act["url"].(string), "/")+1:]
	if err := h.Sandbox.CompleteAction(ref, true); err != nil {
		t.Fatal(err)
	}
	pay := h.WaitFinal(out["id"].(string), 10*time.Second)
	if pay.Status != payment.StatusSucceeded {
		t.Fatalf("payment %s", pay.Status)
	}
	waitFor(t, 5*time.Second, "session completed", func() bool {
		sess, err := h.Store.GetSession(context.Background(), h.TenantA, id)
		return err == nil && sess.Status == payment.SessionCompleted
	})
}

func TestSessionPendingAnswers202Poll(t *testing.T) {
	t.Parallel()
	// a submit that waits less than the payment takes answers 202 poll
	h := sessionHarness(t, testenv.Options{Intake: intake.Config{SessionSubmitWait: time.Millisecond}, NoWorker: true})
	s := createSession(t, h, nil)
	out := jsonObj(t, h.Do("POST", "/v1/payment-sessions/"+s["id"].(string)+"/submit", h.KeyA,
		submitBody("sandbox:pm_card_visa", 1250), nil), 202)
	if a := out["action"].(map[string]any); a["type"] != "poll" || out["type"] != "card" {
		t.Fatalf("pending %v", out)
	}
}

func TestSessionDeclineThenRetry(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{})
	s := createSession(t, h, map[string]any{"customer_retry": map[string]any{"max_attempts": 2}})
	id := s["id"].(string)
	out := jsonObj(t, h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_declined", 1250), nil), 201)
	if out["status"] != "Declined" {
		t.Fatalf("declined %v", out)
	}
	first := out["id"].(string)
	waitFor(t, 5*time.Second, "session failed", func() bool {
		sess, _ := h.Store.GetSession(context.Background(), h.TenantA, id)
		return sess.Status == payment.SessionFailed
	})
	pg := jsonObj(t, h.Do("GET", "/pay/"+s["payment_session_token"].(string)+"/session", "", nil,
		map[string]string{intake.SessionSecretHeader: s["payment_session_secret"].(string)}), 200)
	if pg["retry_allowed"] != true || pg["last_error"].(map[string]any)["code"] != "card_declined" {
		t.Errorf("page after decline %v", pg)
	}
	// the retry is a new payment of the same session, through the page
	r := h.Do("POST", "/pay/"+s["payment_session_token"].(string)+"/submit", "", []byte(`{"session_data":"sandbox:pm_card_visa"}`),
		map[string]string{intake.SessionSecretHeader: s["payment_session_secret"].(string)})
	out = jsonObj(t, r, 201)
	if out["status"] != "Captured" || out["id"] == first {
		t.Fatalf("retry %v", out)
	}
	waitFor(t, 5*time.Second, "session completed", func() bool {
		sess, _ := h.Store.GetSession(context.Background(), h.TenantA, id)
		return sess.Status == payment.SessionCompleted && sess.PaymentID == out["id"] && sess.AttemptsUsed == 2
	})
}

func TestSessionRetriesExhausted(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{})
	s := createSession(t, h, map[string]any{"customer_retry": map[string]any{"max_attempts": 1}})
	id := s["id"].(string)
	jsonObj(t, h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_declined", 1250), nil), 201)
	waitFor(t, 5*time.Second, "session failed", func() bool {
		sess, _ := h.Store.GetSession(context.Background(), h.TenantA, id)
		return sess.Status == payment.SessionFailed
	})
	checkEnvelope(t, h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", 1250), nil),
		422, "payment_session_retries_exhausted")
}

func TestSessionConcurrentSubmit429(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{Sandbox: sandboxLatency(300 * time.Millisecond)})
	s := createSession(t, h, nil)
	id := s["id"].(string)
	var wg sync.WaitGroup
	codes := make([]int, 4)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", 1250), nil).Status
		}()
	}
	wg.Wait()
	n201, n429 := 0, 0
	for _, c := range codes {
		switch c {
		case 201:
			n201++
		case 429:
			n429++
		}
	}
	if n201 != 1 || n429 != len(codes)-1 {
		t.Fatalf("codes %v: want one 201 and the rest 429", codes)
	}
	if n := countPayments(t, h, h.TenantA); n != 1 {
		t.Errorf("%d payments, want 1", n)
	}
}

func TestSessionCardVerificationChargesNothing(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{})
	for _, card := range []string{"sandbox:pm_card_visa", "sandbox:pm_card_3ds"} {
		s := createSession(t, h, map[string]any{"amount": 0, "items": nil})
		r := h.Do("POST", "/v1/payment-sessions/"+s["id"].(string)+"/submit", h.KeyA, submitBody(card, 0), nil)
		var payID string
		if card == "sandbox:pm_card_3ds" {
			out := jsonObj(t, r, 202)
			u := out["action"].(map[string]any)["url"].(string)
			if err := h.Sandbox.CompleteAction(u[strings.LastIndex(u, "/")+1:], true); err != nil {
				t.Fatal(err)
			}
			payID = out["id"].(string)
		} else {
			out := jsonObj(t, r, 201)
			if out["status"] != "Card Verified" {
				t.Fatalf("verification %v", out)
			}
			payID = out["id"].(string)
		}
		if p := h.WaitFinal(payID, 10*time.Second); p.Status != payment.StatusSucceeded || p.Amount.Minor != 0 {
			t.Fatalf("verification payment %+v", p)
		}
	}
	if l := h.Sandbox.Ledger(); len(l) != 0 {
		t.Errorf("sandbox ledger has %d charges after card verifications: %+v", len(l), l)
	}
	// and reconciliation finds nothing to say about them (I8 both ways)
	rep, err := h.Processor.Reconcile(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Minute), "test")
	if err != nil || len(rep.Findings) != 0 {
		t.Errorf("reconciliation after verifications: %+v, %v", rep.Findings, err)
	}
	// a bank account cannot be verified with a zero amount
	s := createSession(t, h, map[string]any{"amount": 0, "items": nil})
	checkEnvelope(t, h.Do("POST", "/v1/payment-sessions/"+s["id"].(string)+"/submit", h.KeyA,
		submitBody("sandbox:ach:021000021:123456789", 0), nil), 422, "card_verification_requires_card")
}

func TestSessionACH(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{})
	s := createSession(t, h, nil)
	out := jsonObj(t, h.Do("POST", "/v1/payment-sessions/"+s["id"].(string)+"/submit", h.KeyA,
		submitBody("sandbox:ach:021000021:123456789", 1250), nil), 202)
	if out["type"] != "ach" || out["action"].(map[string]any)["type"] != "poll" {
		t.Fatalf("ach %v", out)
	}
	waitFor(t, 5*time.Second, "session completed", func() bool {
		sess, _ := h.Store.GetSession(context.Background(), h.TenantA, s["id"].(string))
		return sess.Status == payment.SessionCompleted
	})
}

func sandboxLatency(d time.Duration) sandbox.Config { return sandbox.Config{Latency: d} }

// TestSessionTenantIsolation (I6): tenant B's key on tenant A's session is
// the answer for a session that exists nowhere, and changes nothing; A's
// invoice cannot be named by B's session; the page's routes answer only
// the session's own token with its own secret (never an API key), and a
// wrong secret is a 404 like an unknown token.
func TestSessionTenantIsolation(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{})
	a := createSession(t, h, nil)
	b := jsonObj(t, h.Do("POST", "/v1/payment-sessions", h.KeyB, sessionBody(nil), nil), 201)
	id, token, secret := a["id"].(string), a["payment_session_token"].(string), a["payment_session_secret"].(string)
	secrets := []string{id, token, secret, h.TenantA, testenv.TestInvoice}
	const ghost = "ps_00000000000000000000000000000000"
	for _, p := range []struct{ method, path, body string }{
		{"GET", "/v1/payment-sessions/" + id, ""},
		{"POST", "/v1/payment-sessions/" + id + "/submit", string(submitBody("sandbox:pm_card_visa", 1250))},
		{"POST", "/v1/payment-sessions/" + id + "/cancel", ""},
	} {
		var body []byte
		if p.body != "" {
			body = []byte(p.body)
		}
		r := h.Do(p.method, p.path, h.KeyB, body, nil)
		e1 := checkEnvelope(t, r, 404, "resource_not_found")
		leaks(t, r, secrets)
		e2 := checkEnvelope(t, h.Do(p.method, strings.Replace(p.path, id, ghost, 1), h.KeyB, body, nil), 404, "resource_not_found")
		if e1.Message != e2.Message {
			t.Errorf("answers differ for A's id and a missing id")
		}
	}
	// B's session naming A's invoice
	checkEnvelope(t, h.Do("POST", "/v1/payment-sessions", h.KeyB, sessionBody(map[string]any{"invoice_id": testenv.TestInvoice}), nil),
		422, "invoice_not_found")
	// the page: A's token with B's secret, with no secret, with an API key only, and a made-up token
	for name, hdr := range map[string]map[string]string{
		"B's secret":   {intake.SessionSecretHeader: b["payment_session_secret"].(string)},
		"no secret":    {},
		"A's API key":  {"x-api-key": h.KeyA},
		"bearer key":   {"Authorization": "Bearer " + h.KeyA},
		"secret typo":  {intake.SessionSecretHeader: secret + "x"},
		"token secret": {intake.SessionSecretHeader: token},
	} {
		for _, p := range []struct{ method, path, body string }{
			{"GET", "/pay/" + token + "/session", ""},
			{"POST", "/pay/" + token + "/submit", `{"session_data":"sandbox:pm_card_visa"}`},
		} {
			var body []byte
			if p.body != "" {
				body = []byte(p.body)
			}
			r := h.Do(p.method, p.path, "", body, hdr)
			checkEnvelope(t, r, 404, "resource_not_found")
			leaks(t, r, secrets)
			_ = name
		}
	}
	checkEnvelope(t, h.Do("GET", "/pay/pst_nope/session", "", nil, map[string]string{intake.SessionSecretHeader: secret}), 404, "resource_not_found")
	// nothing of A's moved
	sess, err := h.Store.GetSession(context.Background(), h.TenantA, id)
	if err != nil || sess.Status != payment.SessionActive || sess.AttemptsUsed != 0 {
		t.Errorf("A's session after B's calls: %+v %v", sess, err)
	}
	if n := countPayments(t, h, h.TenantA); n != 0 {
		t.Errorf("A has %d payments", n)
	}
	// the merchant routes take a bare Authorization key too
	jsonObj(t, h.Do("GET", "/v1/payment-sessions/"+id, "", nil, map[string]string{"Authorization": h.KeyA}), 200)
}

func expiresIn(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339Nano) }

func waitSession(t *testing.T, h *testenv.Harness, id string, st payment.SessionStatus, within time.Duration) payment.Session {
	t.Helper()
	var sess payment.Session
	waitFor(t, within, "session "+string(st), func() bool {
		var err error
		sess, err = h.Store.GetSession(context.Background(), "", id)
		return err == nil && sess.Status == st
	})
	return sess
}

// TestSessionExpiresByTask: the session:expire task enqueued at create
// (ProcessAt expires_on) expires an unused session; a submit then is 422.
func TestSessionExpiresByTask(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{})
	s := createSession(t, h, map[string]any{"expires_on": expiresIn(1500 * time.Millisecond)})
	id := s["id"].(string)
	sess := waitSession(t, h, id, payment.SessionExpired, 10*time.Second)
	if sess.NextAt != nil || sess.ExpiredAt == nil {
		t.Errorf("expired session %+v", sess)
	}
	checkEnvelope(t, h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", 1250), nil),
		422, "payment_session_expired")
	if g := jsonObj(t, h.Do("GET", "/v1/payment-sessions/"+id, h.KeyA, nil, nil), 200); g["status"] != "EXPIRED" {
		t.Errorf("GET %v", g)
	}
}

// TestSessionExpiresBySweeperAfterRedisWipe: a Redis wipe loses the
// scheduled expiry; the sweeper finds the session due in Postgres and
// enqueues it again, so no session stays ACTIVE past its expiry.
func TestSessionExpiresBySweeperAfterRedisWipe(t *testing.T) {
	t.Parallel()
	// no worker until the wipe: on a loaded machine the create alone may
	// take longer than the expiry, whose task must not run before it is wiped
	h := sessionHarness(t, testenv.Options{NoWorker: true})
	s := createSession(t, h, map[string]any{"expires_on": expiresIn(time.Second)})
	id := s["id"].(string)
	if err := h.Redis.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	h.StartWorker()
	time.Sleep(2 * time.Second) // past expires_on and the sweeper's grace
	if sess, _ := h.Store.GetSession(context.Background(), "", id); sess.Status != payment.SessionActive {
		t.Fatalf("expired with its task wiped: %s (the test proves nothing)", sess.Status)
	}
	// answered as expired already, and refused as such
	if g := jsonObj(t, h.Do("GET", "/v1/payment-sessions/"+id, h.KeyA, nil, nil), 200); g["status"] != "EXPIRED" {
		t.Errorf("GET past expires_on: %v", g["status"])
	}
	checkEnvelope(t, h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", 1250), nil),
		422, "payment_session_expired")
	n, err := h.Processor.Sweep(context.Background())
	if err != nil || n < 1 {
		t.Fatalf("sweep enqueued %d, %v", n, err)
	}
	waitSession(t, h, id, payment.SessionExpired, 10*time.Second)
}

// TestSessionExpiryVoids3DS: a session that expires while its payment
// waits on 3-D Secure is expired and its payment voided at the gateway:
// the challenge can no longer charge, and nothing was charged.
func TestSessionExpiryVoids3DS(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{})
	// 5 s: the submit must reach its 3-D Secure answer before the expiry,
	// which took over 2 s when every package's -race tests share 2 cores
	s := createSession(t, h, map[string]any{"expires_on": expiresIn(5 * time.Second)})
	id := s["id"].(string)
	out := jsonObj(t, h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_3ds", 1250), nil), 202)
	waitSession(t, h, id, payment.SessionExpired, 15*time.Second)
	pay := h.WaitFinal(out["id"].(string), 10*time.Second)
	if pay.Status != payment.StatusCanceled {
		t.Fatalf("payment after session expiry: %s", pay.Status)
	}
	u := out["action"].(map[string]any)["url"].(string)
	if err := h.Sandbox.CompleteAction(u[strings.LastIndex(u, "/")+1:], true); err == nil {
		t.Errorf("the challenge still completes after the void")
	}
	if l := h.Sandbox.Ledger(); len(l) != 0 {
		t.Errorf("ledger %+v", l)
	}
}

// TestSessionIdempotency: an Idempotency-Key on the create replays the
// session without its secret (kept only as a hash); on the submit it
// replays the stored answer and makes no second payment; another body
// under the key is 422.
func TestSessionIdempotency(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{})
	hdr := map[string]string{"Idempotency-Key": "sess-create-1"}
	r1 := h.Do("POST", "/v1/payment-sessions", h.KeyA, sessionBody(nil), hdr)
	first := jsonObj(t, r1, 201)
	r2 := h.Do("POST", "/v1/payment-sessions", h.KeyA, sessionBody(nil), hdr)
	again := jsonObj(t, r2, 201)
	if r2.Header.Get("Idempotent-Replayed") != "true" || again["id"] != first["id"] || again["payment_session_token"] != first["payment_session_token"] {
		t.Fatalf("replay %s vs %s", r2.Body, r1.Body)
	}
	if _, ok := again["payment_session_secret"]; ok || first["payment_session_secret"] == "" {
		t.Errorf("replay shows the secret: %s", r2.Body)
	}
	// the hosted page's link has the secret in its fragment in the first
	// answer only
	href := func(m map[string]any) string {
		return m["_links"].(map[string]any)["redirect"].(map[string]any)["href"].(string)
	}
	if h1, h2 := href(first), href(again); h1 != h2+"#"+first["payment_session_secret"].(string) || strings.Contains(h2, "#") {
		t.Errorf("page links: first %s, replay %s", h1, h2)
	}
	checkEnvelope(t, h.Do("POST", "/v1/payment-sessions", h.KeyA, sessionBody(map[string]any{"amount": 1}), hdr), 422, "idempotency_key_reused")

	id := first["id"].(string)
	shdr := map[string]string{"Idempotency-Key": "sess-submit-1"}
	s1 := h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", 1250), shdr)
	out := jsonObj(t, s1, 201)
	s2 := h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", 1250), shdr)
	if s2.Status != 201 || s2.Header.Get("Idempotent-Replayed") != "true" || string(s2.Body) != string(s1.Body) {
		t.Fatalf("submit replay %d %s", s2.Status, s2.Body)
	}
	checkEnvelope(t, h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, []byte(`{"session_data":"sandbox:pm_card_visa","amount":1250,"reference":"other"}`), shdr),
		422, "idempotency_key_reused")
	if n := countPayments(t, h, h.TenantA); n != 1 {
		t.Errorf("%d payments, want 1 (%v)", n, out["id"])
	}
}

// TestSessionAmounts: integer minor units in currencies of 0, 2 and 3
// decimals, from 1 minor unit to the API's largest amount, charged exactly.
func TestSessionAmounts(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{})
	type key struct {
		Cur    string
		Amount int64
	}
	want := map[string]key{}
	for _, cur := range []string{"JPY", "USD", "BHD"} {
		for _, amount := range []int64{1, 100_000_000_000_000} {
			s := createSession(t, h, map[string]any{"currency": cur, "amount": amount, "items": nil})
			if s["amount"] != json.Number(strconvI(amount)) || s["currency"] != cur {
				t.Fatalf("session %v", s)
			}
			out := jsonObj(t, h.Do("POST", "/v1/payment-sessions/"+s["id"].(string)+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", amount), nil), 201)
			p := h.WaitFinal(out["id"].(string), 10*time.Second)
			if p.Status != payment.StatusSucceeded || p.Amount != (payment.Money{Minor: amount, Currency: cur}) {
				t.Errorf("%s %d: payment %s %+v", cur, amount, p.Status, p.Amount)
			}
			want[p.ID] = key{cur, amount}
		}
	}
	got := map[string]key{}
	for _, c := range h.Sandbox.Ledger() {
		got[c.PaymentID] = key{c.Currency, c.Amount}
	}
	diff(t, "ledger", want, got)
}

func strconvI(n int64) string { return strconv.FormatInt(n, 10) }

// TestSessionPage: the page's session as the hosted page shows it, for a
// session limited to cards with items, a locale and a display name; after
// it expires the page is told no submit is allowed.
func TestSessionPage(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{NoWorker: true})
	s := createSession(t, h, map[string]any{"currency": "BHD", "amount": 2500, "locale": "fr-FR", "display_name": "Café Zoë",
		"enabled_payment_methods": []string{"card", "ach", "ideal"}, "disabled_payment_methods": []string{"ach"},
		"items":      []any{map[string]any{"name": "Tasse", "quantity": 2, "unit_price": 1000}, map[string]any{"name": "Port", "total_amount": 500}},
		"expires_on": expiresIn(1500 * time.Millisecond)})
	hdr := map[string]string{intake.SessionSecretHeader: s["payment_session_secret"].(string)}
	path := "/pay/" + s["payment_session_token"].(string) + "/session"
	r := h.Do("GET", path, "", nil, hdr)
	var pg map[string]any
	if err := json.Unmarshal(jsonBody(t, r, 200), &pg); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": s["id"], "status": "ACTIVE", "amount": 2500.0, "currency": "BHD", "display_name": "Café Zoë",
		"display_amount": "2,500\u00a0BHD", "locale": "fr-FR", "description": "Two mugs", "reference": "ORD-1",
		"items": []any{map[string]any{"name": "Tasse", "quantity": 2.0, "unit_price": 1000.0, "total_amount": 2000.0,
			"display_unit_price": "1,000\u00a0BHD", "display_total_amount": "2,000\u00a0BHD"},
			map[string]any{"name": "Port", "quantity": 1.0, "unit_price": 0.0, "total_amount": 500.0,
				"display_unit_price": "", "display_total_amount": "0,500\u00a0BHD"}},
		"enabled_methods": []any{"card"}, "payment_id": nil, "expires_on": pg["expires_on"], "retry_allowed": true,
		"last_error": nil, "success_url": "https://merchant.example/ok", "failure_url": "https://merchant.example/no", "action": nil}
	diff(t, "page session", want, pg)
	// an ACH account on a cards-only session
	b, _ := json.Marshal(map[string]string{"session_data": "sandbox:ach:021000021:123456789"})
	checkEnvelope(t, h.Do("POST", "/pay/"+s["payment_session_token"].(string)+"/submit", "", b, hdr), 422, "payment_method_not_enabled")
	time.Sleep(1600 * time.Millisecond)
	pg = jsonObj(t, h.Do("GET", path, "", nil, hdr), 200)
	if pg["status"] != "EXPIRED" || pg["retry_allowed"] != false {
		t.Errorf("page after expires_on: %v", pg)
	}
	b, _ = json.Marshal(map[string]string{"session_data": "sandbox:pm_card_visa"})
	checkEnvelope(t, h.Do("POST", "/pay/"+s["payment_session_token"].(string)+"/submit", "", b, hdr), 422, "payment_session_expired")
}

func jsonBody(t *testing.T, r testenv.Response, status int) []byte {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	return r.Body
}

// TestSessionExpiryLateCharge: a session expires while the gateway refuses
// voids; its 3-D Secure payment is canceled anyway and the customer then
// completes the challenge: the charge that lands is found by reconciliation
// and refunded, like any late charge. An abandoned session never keeps
// money.
func TestSessionExpiryLateCharge(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{})
	start := h.Store.Now()
	s := createSession(t, h, map[string]any{"expires_on": expiresIn(1500 * time.Millisecond)})
	out := jsonObj(t, h.Do("POST", "/v1/payment-sessions/"+s["id"].(string)+"/submit", h.KeyA, submitBody("sandbox:pm_card_3ds", 1250), nil), 202)
	h.Sandbox.SetFaults(sandbox.Faults{VoidDown: true})
	// the expiry runs on the low queue: under a full parallel test run it
	// can wait its turn for several seconds
	waitSession(t, h, s["id"].(string), payment.SessionExpired, 30*time.Second)
	payID := out["id"].(string)
	if p := h.WaitFinal(payID, 30*time.Second); p.Status != payment.StatusCanceled {
		t.Fatalf("payment %s", p.Status)
	}
	h.Sandbox.SetFaults(sandbox.Faults{})
	u := out["action"].(map[string]any)["url"].(string)
	if err := h.Sandbox.CompleteAction(u[strings.LastIndex(u, "/")+1:], true); err != nil {
		t.Fatalf("the challenge was never voided, so the customer can complete it: %v", err)
	}
	rep, err := h.Processor.Reconcile(context.Background(), start.Add(-time.Minute), h.Store.Now().Add(time.Minute), "test")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range rep.Findings {
		if f.PaymentID == payID && f.Action == "refund" {
			found = true
		}
	}
	if !found {
		t.Fatalf("findings %+v: want the late charge refunded", rep.Findings)
	}
	waitFor(t, 10*time.Second, "the late charge refunded", func() bool {
		var n int
		_ = h.Store.DB().QueryRowContext(context.Background(), `SELECT count(*) FROM refunds WHERE payment_id = $1 AND status = 'SUCCEEDED'`, payID).Scan(&n)
		return n == 1
	})
}

// TestSessionSettlesInvoice: a session naming an invoice (by external id)
// pays it like a seed-001 payment: the amount is reserved when submitted
// and paid when the payment succeeds; a session asking more than the
// invoice has left is refused at submit, and reserves nothing.
func TestSessionSettlesInvoice(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{})
	invID := h.CreateInvoice("inv-sess-1", "USD", "12.50")
	s := createSession(t, h, map[string]any{"invoice_id": "inv-sess-1"})
	if s["invoice_id"] != invID {
		t.Fatalf("session invoice %v, want %s", s["invoice_id"], invID)
	}
	big := createSession(t, h, map[string]any{"invoice_id": invID, "amount": 1251})
	checkEnvelope(t, h.Do("POST", "/v1/payment-sessions/"+big["id"].(string)+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", 1251), nil),
		422, "invoice_over_applied")
	out := jsonObj(t, h.Do("POST", "/v1/payment-sessions/"+s["id"].(string)+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", 1250), nil), 201)
	if p := h.WaitFinal(out["id"].(string), 10*time.Second); p.InvoiceID != invID || p.Status != payment.StatusSucceeded {
		t.Fatalf("payment %+v", p)
	}
	var reserved, paid int64
	if err := h.Store.DB().QueryRow(`SELECT amount_reserved, amount_paid FROM invoices WHERE id = $1`, invID).Scan(&reserved, &paid); err != nil {
		t.Fatal(err)
	}
	if reserved != 1250 || paid != 1250 {
		t.Errorf("invoice reserved %d paid %d, want 1250 and 1250", reserved, paid)
	}
	inv := jsonObj(t, h.Do("GET", "/v1/invoices/"+invID, h.KeyA, nil, nil), 200)
	if inv["status"] != "PAID" {
		t.Errorf("invoice %v", inv["status"])
	}
	// the refused session is still submittable with nothing reserved: its lock was released
	if sess, _ := h.Store.GetSession(context.Background(), h.TenantA, big["id"].(string)); sess.Status != payment.SessionActive || sess.SubmitLocked {
		t.Errorf("refused session %+v", sess)
	}
}

// TestSessionIdempotencyLostAnswers: a create replayed after its session's
// expires_on still gets its stored 201 (the clock check comes after the
// key's lookup), and a submit whose payment was recorded but whose answer
// was never stored (the first try died after StartSessionPayment) is
// answered, once its lease lapsed, with that payment — never a second one
// and never payment_session_completed.
func TestSessionIdempotencyLostAnswers(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{})
	hdr := map[string]string{"Idempotency-Key": "sess-create-short"}
	body := sessionBody(map[string]any{"expires_on": expiresIn(1500 * time.Millisecond)})
	first := jsonObj(t, h.Do("POST", "/v1/payment-sessions", h.KeyA, body, hdr), 201)
	time.Sleep(2 * time.Second)
	r := h.Do("POST", "/v1/payment-sessions", h.KeyA, body, hdr)
	again := jsonObj(t, r, 201)
	if again["id"] != first["id"] || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("create replayed after expiry: %d %s", r.Status, r.Body)
	}
	// without the key the same body is refused: its expires_on is past
	checkEnvelope(t, h.Do("POST", "/v1/payment-sessions", h.KeyA, body, nil), 422, "expires_on_in_past")

	id := createSession(t, h, nil)["id"].(string)
	shdr := map[string]string{"Idempotency-Key": "sess-submit-lost"}
	s1 := jsonObj(t, h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", 1250), shdr), 201)
	payID := s1["id"].(string)
	// what a submit that died after recording its payment leaves: the key
	// in flight, owned by the payment, its lease lapsed
	res, err := h.Store.DB().ExecContext(context.Background(), `UPDATE idempotency_keys SET state = 'in_flight', owner = $2,
		locked_until = now() - interval '1 second', expires_at = now() - interval '1 second', response_code = NULL, response_body = NULL
		WHERE tenant_id = $1 AND key LIKE '%sess-submit-lost'`, h.TenantA, payID)
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("reset the key: %v (%d rows)", err, n)
	}
	for i := 0; i < 2; i++ { // the second is a plain replay of what the first stored
		r := h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", 1250), shdr)
		got := jsonObj(t, r, 201)
		if got["id"] != payID || got["status"] != "Captured" || r.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry %d after a lost answer: %d %s", i, r.Status, r.Body)
		}
	}
	if n := countPayments(t, h, h.TenantA); n != 1 {
		t.Errorf("%d payments, want 1", n)
	}
}

// TestSessionCancel: the merchant cancels an ACTIVE session (200, CANCELED,
// no more submits: 422 payment_session_canceled), cancels a session whose
// payment awaits 3-D Secure (202: the payment is voided, the challenge can
// no longer charge, the ledger stays empty), cannot cancel a completed one
// (409) nor another tenant's (404); every cancel is audited.
func TestSessionCancel(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{})
	id := createSession(t, h, nil)["id"].(string)
	checkEnvelope(t, h.Do("POST", "/v1/payment-sessions/"+id+"/cancel", h.KeyB, nil, nil), 404, "resource_not_found")
	got := jsonObj(t, h.Do("POST", "/v1/payment-sessions/"+id+"/cancel", h.KeyA, nil, nil), 200)
	if got["status"] != "CANCELED" {
		t.Fatalf("canceled session: %v", got)
	}
	checkEnvelope(t, h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", 1250), nil), 422, "payment_session_canceled")
	checkEnvelope(t, h.Do("POST", "/v1/payment-sessions/"+id+"/cancel", h.KeyA, nil, nil), 409, "payment_session_not_cancelable")

	id3 := createSession(t, h, nil)["id"].(string)
	out := jsonObj(t, h.Do("POST", "/v1/payment-sessions/"+id3+"/submit", h.KeyA, submitBody("sandbox:pm_card_3ds", 1250), nil), 202)
	jsonObj(t, h.Do("POST", "/v1/payment-sessions/"+id3+"/cancel", h.KeyA, nil, nil), 202)
	if pay := h.WaitFinal(out["id"].(string), 10*time.Second); pay.Status != payment.StatusCanceled {
		t.Fatalf("payment of the canceled session: %s", pay.Status)
	}
	waitSession(t, h, id3, payment.SessionCanceled, 5*time.Second)
	u := out["action"].(map[string]any)["url"].(string)
	if err := h.Sandbox.CompleteAction(u[strings.LastIndex(u, "/")+1:], true); err == nil {
		t.Errorf("the challenge still completes after the cancel")
	}
	if l := h.Sandbox.Ledger(); len(l) != 0 {
		t.Errorf("ledger %+v", l)
	}

	done := createSession(t, h, nil)["id"].(string)
	jsonObj(t, h.Do("POST", "/v1/payment-sessions/"+done+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", 1250), nil), 201)
	checkEnvelope(t, h.Do("POST", "/v1/payment-sessions/"+done+"/cancel", h.KeyA, nil, nil), 409, "payment_session_not_cancelable")

	var n int
	if err := h.Store.DB().QueryRow(`SELECT count(*) FROM payment_session_events WHERE to_status = 'CANCELED' AND session_id IN ($1, $2)`,
		id, id3).Scan(&n); err != nil || n != 2 {
		t.Errorf("cancel audit rows: %d, %v", n, err)
	}
}
