package intake_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payd/payd/intake"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/processor"
	"github.com/payd/payd/webhook"
)

// Webhook deliveries to a real local HTTP receiver, through the whole
// stack: the event trigger, the fan-out trigger, the dispatcher, the
// webhook:deliver task, signatures, retries and the delivery log.

// receiver records what it is sent and answers with fail(n) for the n-th
// request (1-based): a status code, 200 when fail is nil.
type receiver struct {
	mu    sync.Mutex
	srv   *httptest.Server
	got   []delivered
	fail  func(n int) int
	calls int
}

type delivered struct {
	body   []byte
	sig    string
	id     string
	typ    string
	object map[string]any
	seq    float64
}

func newReceiver(t *testing.T, fail func(n int) int) *receiver {
	rc := &receiver{fail: fail}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.calls++
		n := rc.calls
		var ev struct {
			ID       string  `json:"id"`
			Type     string  `json:"type"`
			Sequence float64 `json:"sequence"`
			Data     struct {
				Object map[string]any `json:"object"`
			} `json:"data"`
		}
		_ = json.Unmarshal(b, &ev)
		rc.got = append(rc.got, delivered{body: b, sig: r.Header.Get(webhook.Header), id: ev.ID, typ: ev.Type,
			object: ev.Data.Object, seq: ev.Sequence})
		rc.mu.Unlock()
		code := 200
		if rc.fail != nil {
			code = rc.fail(n)
		}
		w.WriteHeader(code)
		io.WriteString(w, strings.Repeat("x", 100_000)) // read with a cap
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) all() []delivered {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivered(nil), rc.got...)
}

// endpoint registers url for events and returns its id and secret.
func endpoint(t *testing.T, h *testenv.Harness, url string, events ...string) (string, string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"url": url, "enabled_events": events, "description": "test receiver"})
	e := jsonObj(t, h.Do("POST", "/v1/webhook-endpoints", h.KeyA, b, nil), 201)
	return e["id"].(string), e["secret"].(string)
}

func TestWebhookEveryTransitionDeliveredAndSigned(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{Webhooks: true})
	rc := newReceiver(t, nil)
	_, secret := endpoint(t, h, rc.srv.URL+"/hook", "*")
	ok := h.CreatePayment("CARD", "pm_card_visa", "12.50")
	bad := h.CreatePayment("CARD", "pm_card_declined", "3.00")
	h.WaitFinal(ok, 10*time.Second)
	h.WaitFinal(bad, 10*time.Second)
	want := map[string][]string{ok: {"payment.processing", "payment.succeeded"}, bad: {"payment.processing", "payment.failed"}}
	waitFor(t, 15*time.Second, "the four events delivered", func() bool { return len(rc.all()) >= 4 })
	time.Sleep(200 * time.Millisecond)
	got := map[string][]delivered{}
	for _, d := range rc.all() {
		if err := webhook.Verify(d.body, d.sig, []string{secret}, 0, time.Now()); err != nil {
			t.Errorf("event %s: signature: %v", d.id, err)
		}
		id, _ := d.object["id"].(string)
		got[id] = append(got[id], d)
	}
	for id, types := range want {
		ds := got[id]
		if len(ds) != len(types) {
			t.Fatalf("payment %s: %d deliveries, want %v", id, len(ds), types)
		}
		// the receiver orders one object's events by sequence
		if ds[0].seq > ds[1].seq {
			ds[0], ds[1] = ds[1], ds[0]
		}
		for i, typ := range types {
			if ds[i].typ != typ {
				t.Errorf("payment %s event %d = %s, want %s", id, i, ds[i].typ, typ)
			}
		}
	}
	// the same events are readable, and match what was delivered
	for _, d := range rc.all() {
		ev := jsonObj(t, h.Do("GET", "/v1/events/"+d.id, h.KeyA, nil, nil), 200)
		if ev["type"] != d.typ {
			t.Errorf("GET %s type %v, delivered %s", d.id, ev["type"], d.typ)
		}
	}
}

func TestWebhookRetriesThenDeliveredOnce(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{Webhooks: true, Processor: processor.Config{WebhookUnit: 10 * time.Millisecond}})
	rc := newReceiver(t, func(n int) int {
		if n <= 3 {
			return 503
		}
		return 200
	})
	id, _ := endpoint(t, h, rc.srv.URL, "payment.succeeded")
	pay := h.CreatePayment("CARD", "pm_card_visa", "1.00")
	h.WaitFinal(pay, 10*time.Second)
	waitFor(t, 20*time.Second, "the fourth try", func() bool { return len(rc.all()) >= 4 })
	time.Sleep(500 * time.Millisecond)
	ds := rc.all()
	if len(ds) != 4 {
		t.Fatalf("%d tries, want 3 failures and 1 success", len(ds))
	}
	for _, d := range ds {
		if d.id != ds[0].id {
			t.Fatalf("event ids differ between tries: %s vs %s", d.id, ds[0].id)
		}
	}
	log := jsonObj(t, h.Do("GET", "/v1/webhook-endpoints/"+id+"/deliveries", h.KeyA, nil, nil), 200)["data"].([]any)
	if len(log) != 4 {
		t.Fatalf("delivery log has %d tries, want 4", len(log))
	}
	delivered := 0
	for _, e := range log {
		e := e.(map[string]any)
		if e["status_code"] == json.Number("200") {
			delivered++
			if e["next_attempt_at"] != nil {
				t.Errorf("the delivered try has a next try: %v", e)
			}
		} else if e["next_attempt_at"] == nil || e["error"] == nil {
			t.Errorf("a failed try without its next try or error: %v", e)
		}
	}
	if delivered != 1 {
		t.Fatalf("%d tries delivered, want 1", delivered)
	}
}

func TestWebhookReceiverDownDisablesEndpoint(t *testing.T) {
	t.Parallel()
	// the whole 3-day window in about 2.6 s (one unit is 10 µs): on a loaded
	// machine the tries come late, so the wall clock may not reach the 2-day
	// mark before the window ends; the delivery that exhausts its window
	// with every try failed disables the endpoint all the same
	h := testenv.Start(t, testenv.Options{Webhooks: true, Processor: processor.Config{WebhookUnit: 10 * time.Microsecond}})
	rc := newReceiver(t, func(int) int { return 500 })
	id, _ := endpoint(t, h, rc.srv.URL, "payment.succeeded")
	pay := h.CreatePayment("CARD", "pm_card_visa", "1.00")
	h.WaitFinal(pay, 10*time.Second)
	var e map[string]any
	waitFor(t, 60*time.Second, "the endpoint disabled", func() bool {
		e = jsonObj(t, h.Do("GET", "/v1/webhook-endpoints/"+id, h.KeyA, nil, nil), 200)
		return e["status"] == "disabled"
	})
	if !strings.Contains(e["disabled_reason"].(string), "every delivery failed") {
		t.Errorf("disabled_reason %v", e["disabled_reason"])
	}
	evs := jsonObj(t, h.Do("GET", "/v1/events?type=webhook_endpoint.disabled", h.KeyA, nil, nil), 200)["data"].([]any)
	if len(evs) != 1 {
		t.Fatalf("%d webhook_endpoint.disabled events, want 1", len(evs))
	}
	if tries := len(rc.all()); tries < 5 {
		t.Errorf("only %d tries before the endpoint was disabled", tries)
	}
	// the delivery itself ended failed: no try is due any more
	var pending int
	if err := ownerDB(t, h).Get(&pending, `SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'pending'`, id); err != nil || pending != 0 {
		t.Fatalf("pending deliveries %d (%v) after the endpoint was disabled", pending, err)
	}
}

func TestWebhookRotationSignsWithBoth(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{Webhooks: true})
	rc := newReceiver(t, nil)
	id, old := endpoint(t, h, rc.srv.URL, "payment.succeeded")
	rot := jsonObj(t, h.Do("POST", "/v1/webhook-endpoints/"+id+"/rotate-secret", h.KeyA, []byte(`{"expires_in":3600}`), nil), 200)
	fresh := rot["secret"].(string)
	if fresh == old || !strings.HasPrefix(fresh, webhook.SecretPrefix) || rot["previous_secret_expires_at"] == nil {
		t.Fatalf("rotation = %v", rot)
	}
	if g := jsonObj(t, h.Do("GET", "/v1/webhook-endpoints/"+id, h.KeyA, nil, nil), 200); g["secret"] != nil {
		t.Fatal("GET shows the secret")
	}
	h.WaitFinal(h.CreatePayment("CARD", "pm_card_visa", "1.00"), 10*time.Second)
	waitFor(t, 15*time.Second, "a delivery", func() bool { return len(rc.all()) >= 1 })
	d := rc.all()[0]
	if strings.Count(d.sig, "v1=") != 2 {
		t.Fatalf("signature header %q, want two v1 during the rotation", d.sig)
	}
	for _, s := range []string{old, fresh} {
		if err := webhook.Verify(d.body, d.sig, []string{s}, 0, time.Now()); err != nil {
			t.Errorf("verify with one secret: %v", err)
		}
	}
	// the secret is sealed: the database holds neither secret
	var rows int
	if err := ownerDB(t, h).Get(&rows, `SELECT count(*) FROM webhook_endpoints WHERE secret_sealed LIKE '%whsec%'
		OR previous_sealed LIKE '%whsec%' OR position($1 in secret_sealed) > 0`, fresh); err != nil || rows != 0 {
		t.Fatalf("a secret in the clear in the database: %d rows (%v)", rows, err)
	}
}

func TestWebhookPrivateAddressesRefused(t *testing.T) {
	t.Parallel()
	// this deployment allows http but not private addresses
	h := testenv.Start(t, testenv.Options{Intake: intakeStrictWebhooks()})
	for _, u := range []string{"http://127.0.0.1:9/hook", "http://10.0.0.1/", "http://169.254.169.254/latest/meta-data", "http://[::1]/"} {
		b, _ := json.Marshal(map[string]any{"url": u, "enabled_events": []string{"*"}})
		checkEnvelope(t, h.Do("POST", "/v1/webhook-endpoints", h.KeyA, b, nil), 422, "url_private_address")
	}
	b, _ := json.Marshal(map[string]any{"url": "ftp://x/", "enabled_events": []string{"*"}})
	checkEnvelope(t, h.Do("POST", "/v1/webhook-endpoints", h.KeyA, b, nil), 422, "url_invalid")
	b, _ = json.Marshal(map[string]any{"url": "https://example.com/", "enabled_events": []string{"payment.nonsense"}})
	checkEnvelope(t, h.Do("POST", "/v1/webhook-endpoints", h.KeyA, b, nil), 422, "enabled_events_unknown")
}

// TestWebhookPrivateAtConnectRefused: an endpoint registered at a public
// address whose URL then leads to a private one (what DNS rebinding does to
// a name; here the row's URL is pointed at the receiver on loopback, as a
// resolver would point the name) is refused when the worker connects, on
// the address dialed: the receiver is never reached, and the try is logged
// with the refusal.
func TestWebhookPrivateAtConnectRefused(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{Webhooks: true, Intake: intakeStrictWebhooks(),
		Processor: processor.Config{WebhookPolicy: webhook.Policy{AllowHTTP: true}}})
	rc := newReceiver(t, nil)
	id, _ := endpoint(t, h, "http://93.184.216.34/hook", "payment.succeeded")
	if _, err := ownerDB(t, h).Exec(`UPDATE webhook_endpoints SET url = $2 WHERE id = $1`, id, rc.srv.URL+"/hook"); err != nil {
		t.Fatal(err)
	}
	h.WaitFinal(h.CreatePayment("CARD", "pm_card_visa", "1.00"), 10*time.Second)
	var tries []any
	waitFor(t, 15*time.Second, "a refused try logged", func() bool {
		tries = jsonObj(t, h.Do("GET", "/v1/webhook-endpoints/"+id+"/deliveries", h.KeyA, nil, nil), 200)["data"].([]any)
		return len(tries) >= 1
	})
	if e, _ := tries[0].(map[string]any)["error"].(string); !strings.Contains(e, "private") {
		t.Errorf("the try's error %q, want the private-address refusal", e)
	}
	if n := len(rc.all()); n != 0 {
		t.Fatalf("the receiver on loopback was reached %d times", n)
	}
}

// TestWebhookSurvivesFlushAll: an event written while nothing runs the
// queue, then the queue wiped (FLUSHDB of the test's own database, the
// FLUSHALL of a shared instance), is still delivered: the delivery row is
// in Postgres and the dispatcher finds it.
func TestWebhookSurvivesFlushAll(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true, Webhooks: true})
	rc := newReceiver(t, nil)
	endpoint(t, h, rc.srv.URL, "payment.processing")
	// the event is written with its transition while nothing runs the queue
	pay := h.CreatePayment("CARD", "pm_card_visa", "1.00")
	_ = pay
	if err := h.Redis.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	h.StartWorker()
	sweeping(t, h)
	waitFor(t, 20*time.Second, "the event delivered after FLUSHALL", func() bool { return len(rc.all()) >= 1 })
	if d := rc.all()[0]; d.typ != "payment.processing" {
		t.Fatalf("delivered %s", d.typ)
	}
}

func TestWebhookRedeliver(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{Webhooks: true})
	rc := newReceiver(t, nil)
	id, _ := endpoint(t, h, rc.srv.URL, "payment.succeeded")
	h.WaitFinal(h.CreatePayment("CARD", "pm_card_visa", "1.00"), 10*time.Second)
	waitFor(t, 15*time.Second, "a delivery", func() bool { return len(rc.all()) == 1 })
	ev := rc.all()[0].id
	b, _ := json.Marshal(map[string]any{"endpoint_id": id})
	jsonObj(t, h.Do("POST", "/v1/events/"+ev+"/redeliver", h.KeyA, b, nil), 202)
	waitFor(t, 15*time.Second, "the redelivery", func() bool { return len(rc.all()) == 2 })
	if d := rc.all(); d[1].id != ev {
		t.Fatalf("redelivered %s, want %s", d[1].id, ev)
	}
	checkEnvelope(t, h.Do("POST", "/v1/events/"+ev+"/redeliver", h.KeyB, b, nil), 404, "resource_not_found")
}

func TestWebhookEndpointTenantIsolation(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	id, _ := endpoint(t, h, "https://93.184.216.34/hook", "*")
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/webhook-endpoints/" + id}, {"POST", "/v1/webhook-endpoints/" + id},
		{"DELETE", "/v1/webhook-endpoints/" + id}, {"POST", "/v1/webhook-endpoints/" + id + "/rotate-secret"},
		{"GET", "/v1/webhook-endpoints/" + id + "/deliveries"},
	} {
		checkEnvelope(t, h.Do(c.method, c.path, h.KeyB, []byte(`{}`), nil), 404, "resource_not_found")
	}
	if l := jsonObj(t, h.Do("GET", "/v1/webhook-endpoints", h.KeyB, nil, nil), 200); len(l["data"].([]any)) != 0 {
		t.Fatalf("tenant B lists %v", l["data"])
	}
	// update and delete for the owner
	u := jsonObj(t, h.Do("POST", "/v1/webhook-endpoints/"+id, h.KeyA, []byte(`{"disabled":true,"enabled_events":["payment.failed"]}`), nil), 200)
	if u["status"] != "disabled" || len(u["enabled_events"].([]any)) != 1 {
		t.Fatalf("update = %v", u)
	}
	jsonObj(t, h.Do("DELETE", "/v1/webhook-endpoints/"+id, h.KeyA, nil, nil), 200)
	checkEnvelope(t, h.Do("GET", "/v1/webhook-endpoints/"+id, h.KeyA, nil, nil), 404, "resource_not_found")
}

// intakeStrictWebhooks allows http but no private address.
func intakeStrictWebhooks() intake.Config {
	return intake.Config{WebhookPolicy: webhook.Policy{AllowHTTP: true}}
}
