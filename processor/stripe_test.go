package processor_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/connector/stripe"
	"github.com/payd/payd/connector/stripe/stripefake"
	"github.com/payd/payd/intake"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/processor"
)

const (
	stripeWebhookSecret = "whsec_payd_engine_test"
	stripeEngineKey     = "sk_test_paydEngine123"
)

// stripeHarness is payd charging through the Stripe connector, pointed at
// the local fake Stripe (stripefake); gw, when given, wraps the connector.
func stripeHarness(t *testing.T, pol payment.RetryPolicy, wrap func(*stripe.Connector) connector.Gateway) (*testenv.Harness, *stripefake.Fake) {
	t.Helper()
	f := stripefake.New(t)
	c, err := stripe.New(stripe.Config{APIKey: stripeEngineKey, APIBase: f.URL,
		HTTPClient: &http.Client{Timeout: 5 * time.Second}, ReturnURL: "https://payd.example/return",
		WebhookSecrets: []string{"whsec_an_old_one", stripeWebhookSecret}, WebhookTolerance: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var gw connector.Gateway = c
	if wrap != nil {
		gw = wrap(c)
	}
	logs := &lockedBuffer{}
	h := testenv.Start(t, testenv.Options{Gateway: gw, Intake: intake.Config{NotifyGateway: "stripe"},
		Processor: processor.Config{Policy: pol, GatewayName: "stripe"}, Log: logs})
	t.Cleanup(func() {
		// I7: the API key is in no log line (it is in no error either)
		if logs.String() == "" || strings.Contains(logs.String(), stripeEngineKey) {
			t.Errorf("logs (%d bytes) empty or carry the Stripe API key", len(logs.String()))
		}
	})
	return h, f
}

func fastPolicy() payment.RetryPolicy {
	pol := payment.DefaultRetryPolicy(10 * time.Millisecond)
	pol.Inquiries = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}
	return pol
}

// TestStripeUnknownOutcome: the engine's unknown-outcome path through the
// Stripe connector. The create's answer (or the request) is lost: the
// attempt is UNKNOWN, the inquiry finds the PaymentIntent (search, or the
// replay under the same key while the index lags) or makes the attempt's
// one charge; the payment ends as Stripe says, with one attempt and one
// PaymentIntent.
func TestStripeUnknownOutcome(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		out       stripefake.Outcome
		searchLag bool
		want      payment.Status
	}{
		{"response lost, found by search", stripefake.Outcome{Status: "succeeded", LoseResponse: true}, false, payment.StatusSucceeded},
		{"response lost, search lags, replay", stripefake.Outcome{Status: "succeeded", LoseResponse: true}, true, payment.StatusSucceeded},
		{"request lost, replay charges once", stripefake.Outcome{Status: "succeeded", LoseRequest: true}, true, payment.StatusSucceeded},
		{"decline lost, found by search", stripefake.Outcome{Status: "requires_payment_method", Code: "card_declined",
			DeclineCode: "stolen_card", LoseResponse: true}, false, payment.StatusFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, f := stripeHarness(t, fastPolicy(), nil)
			f.Outcomes["pm_lost"] = tc.out
			f.SearchLag = tc.searchLag
			id := h.CreatePayment("CARD", "pm_lost", "12.50")
			p := h.WaitFinal(id, 30*time.Second)
			if p.Status != tc.want {
				t.Fatalf("status %s, want %s; attempts %+v", p.Status, tc.want, p.Attempts)
			}
			checkAudit(t, h, p)
			key := payment.AttemptKey(id, 1)
			if len(p.Attempts) != 1 || f.Creates(key) != 1 {
				t.Fatalf("%d attempts, %d PaymentIntents; want 1, 1", len(p.Attempts), f.Creates(key))
			}
			if a := p.Attempts[0]; !strings.HasPrefix(a.GatewayReference, "pi_") {
				t.Errorf("attempt reference %q", a.GatewayReference)
			}
			// the outcome came from an inquiry: the charge's answer was lost
			if len(f.CallsOf("GET /v1/payment_intents/search")) == 0 || p.Attempts[0].InquiryCount == 0 {
				t.Errorf("no inquiry: calls %v, attempt %+v", f.CallsOf(""), p.Attempts[0])
			}
		})
	}
}

// notFoundStripe is a Stripe connector whose inquiries answer "not found"
// (as a search that missed would): the engine must not take it as proof,
// since Stripe does not fence keys, and must never start a new attempt.
type notFoundStripe struct{ *stripe.Connector }

func (g notFoundStripe) InquireAttempt(ctx context.Context, a connector.Attempt) (connector.Result, error) {
	return connector.Result{Status: connector.StatusNotFound}, nil
}

// TestStripeNotFoundIsNoProof: the charge's answer is lost and every
// inquiry says "not found" within the key's 24 h: the attempt stays
// UNKNOWN and the payment goes to review; no second attempt, no second
// PaymentIntent.
func TestStripeNotFoundIsNoProof(t *testing.T) {
	t.Parallel()
	h, f := stripeHarness(t, fastPolicy(), func(c *stripe.Connector) connector.Gateway { return notFoundStripe{c} })
	f.Outcomes["pm_lost"] = stripefake.Outcome{Status: "succeeded", LoseResponse: true}
	id := h.CreatePayment("CARD", "pm_lost", "12.50")
	p := waitStatus(t, h, id, payment.StatusRequiresReview, 30*time.Second)
	if len(p.Attempts) != 1 || p.Attempts[0].Status != payment.AttemptUnknown || f.Creates(payment.AttemptKey(id, 1)) != 1 {
		t.Fatalf("attempts %+v, %d PaymentIntents", p.Attempts, f.Creates(payment.AttemptKey(id, 1)))
	}
	if !strings.Contains(p.Attempts[0].ErrorCode, "not_found_unfenced") {
		t.Errorf("attempt error %q", p.Attempts[0].ErrorCode)
	}
	checkAudit(t, h, p)
}

// stripeEvent is a Stripe event about a PaymentIntent, signed at `at` with
// secret.
func stripeEvent(t *testing.T, id, typ, piID, attemptKey, secret string, at time.Time) ([]byte, string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"id": id, "object": "event", "api_version": "2025-01-27.acacia",
		"created": at.Unix(), "type": typ, "livemode": false, "pending_webhooks": 1,
		"request": map[string]any{"id": nil, "idempotency_key": nil},
		"data": map[string]any{"object": map[string]any{"id": piID, "object": "payment_intent", "status": "succeeded",
			"metadata": map[string]any{"payd_attempt_key": attemptKey}}}})
	if err != nil {
		t.Fatal(err)
	}
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at})
	return body, sp.Header
}

// TestStripeWebhookThroughIntake: a 3-D Secure payment waits for its
// customer (polled only hourly); the customer completes; Stripe's
// payment_intent.succeeded webhook, validly signed, is accepted and acted
// on once (the payment succeeds by the inquiry it triggers). A forged one
// (another secret, or a tampered body), a stale one (signed 10 minutes
// ago) and one without a signature are refused 401 and recorded nowhere;
// a replay of the genuine one is 202 but acted on no more.
func TestStripeWebhookThroughIntake(t *testing.T) {
	t.Parallel()
	pol := fastPolicy()
	pol.ActionPoll = time.Hour
	h, f := stripeHarness(t, pol, nil)
	f.Outcomes["pm_3ds"] = stripefake.Outcome{Status: "requires_action"}
	ctx := context.Background()
	id := h.CreatePayment("CARD", "pm_3ds", "12.50")
	p := waitStatus(t, h, id, payment.StatusRequiresAction, 20*time.Second)
	a, _ := lastAttemptOf(p)
	pi := f.IntentFor(a.IdempotencyKey)
	if p.GatewayReference != pi {
		t.Fatalf("payment reference %q, PaymentIntent %q", p.GatewayReference, pi)
	}
	if !strings.HasPrefix(pi, "pi_") {
		t.Fatalf("reference %q", pi)
	}
	post := func(body []byte, sig string) testenv.Response {
		hdr := map[string]string{}
		if sig != "" {
			hdr[stripe.SignatureHeader] = sig
		}
		return h.Do("POST", "/v1/gateway/notifications", "", body, hdr)
	}
	now := time.Now()
	f.SetStatus(pi, "succeeded")

	forgedBody, forgedSig := stripeEvent(t, "evt_forged", "payment_intent.succeeded", pi, a.IdempotencyKey, "whsec_not_ours", now)
	goodBody, goodSig := stripeEvent(t, "evt_good", "payment_intent.succeeded", pi, a.IdempotencyKey, stripeWebhookSecret, now)
	staleBody, staleSig := stripeEvent(t, "evt_stale", "payment_intent.succeeded", pi, a.IdempotencyKey, stripeWebhookSecret,
		now.Add(-10*time.Minute))
	tampered := []byte(strings.Replace(string(goodBody), "evt_good", "evt_tampered", 1))
	for _, tc := range []struct {
		name string
		body []byte
		sig  string
		code string
	}{
		{"forged", forgedBody, forgedSig, "signature_invalid"},
		{"tampered", tampered, goodSig, "signature_invalid"},
		{"stale", staleBody, staleSig, "signature_expired"},
		{"unsigned", goodBody, "", "signature_missing"},
	} {
		r := post(tc.body, tc.sig)
		if r.Status != http.StatusUnauthorized || !strings.Contains(string(r.Body), tc.code) {
			t.Errorf("%s: %d %s, want 401 %s", tc.name, r.Status, r.Body, tc.code)
		}
	}
	if ns, _ := h.Store.ListNotifications(ctx, id, 10); len(ns) != 0 {
		t.Fatalf("refused notifications recorded: %+v", ns)
	}
	if p, _ := h.Store.GetPayment(ctx, "", id); p.Status != payment.StatusRequiresAction {
		t.Fatalf("a refused notification moved the payment: %s", p.Status)
	}

	if r := post(goodBody, goodSig); r.Status != http.StatusAccepted {
		t.Fatalf("genuine: %d %s", r.Status, r.Body)
	}
	p = waitStatus(t, h, id, payment.StatusSucceeded, 15*time.Second)
	checkAudit(t, h, p)
	var ns []notificationRow
	for deadline := time.Now().Add(10 * time.Second); ; {
		ns = listNotes(t, h, id)
		if len(ns) == 1 && ns[0].outcome == "checked" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notifications %+v", ns)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ns[0].typ != connector.NotifyChargeSucceeded || ns[0].gateway != "stripe" {
		t.Errorf("notification %+v", ns[0])
	}
	// the same event again (Stripe retries; or a replay within the tolerance)
	againSig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: goodBody, Secret: stripeWebhookSecret,
		Timestamp: time.Now().Add(time.Second)}).Header
	if r := post(goodBody, againSig); r.Status != http.StatusAccepted {
		t.Fatalf("replay: %d %s", r.Status, r.Body)
	}
	if r := post(goodBody, goodSig); r.Status != http.StatusAccepted {
		t.Fatalf("replay: %d %s", r.Status, r.Body)
	}
	time.Sleep(300 * time.Millisecond)
	ns = listNotes(t, h, id)
	if len(ns) != 1 || ns[0].deliveries != 3 || ns[0].outcome != "checked" {
		t.Fatalf("after replays: %+v", ns)
	}
	p2, _ := h.Store.GetPayment(ctx, "", id)
	evs1, _ := h.Store.Events(ctx, p.TenantID, id)
	if p2.Status != payment.StatusSucceeded || len(p2.Attempts) != 1 || f.Creates(a.IdempotencyKey) != 1 {
		t.Fatalf("after replays: %s, %d attempts, %d PaymentIntents", p2.Status, len(p2.Attempts), f.Creates(a.IdempotencyKey))
	}
	if evs0, _ := h.Store.Events(ctx, p.TenantID, id); len(evs0) != len(evs1) {
		t.Fatalf("audit grew")
	}
}

type notificationRow struct {
	gateway, typ, outcome string
	deliveries            int
}

func listNotes(t *testing.T, h *testenv.Harness, id string) []notificationRow {
	t.Helper()
	ns, err := h.Store.ListNotifications(context.Background(), id, 10)
	if err != nil {
		t.Fatal(err)
	}
	var out []notificationRow
	for _, n := range ns {
		out = append(out, notificationRow{gateway: n.Gateway, typ: n.Type, outcome: n.Outcome, deliveries: n.Deliveries})
	}
	return out
}

// TestStripeCancelVoids: the merchant cancels a payment awaiting 3-D
// Secure; the engine voids it at Stripe (the PaymentIntent is canceled)
// before the payment is CANCELED, and creates nothing.
func TestStripeCancelVoids(t *testing.T) {
	t.Parallel()
	pol := fastPolicy()
	pol.ActionPoll = time.Hour
	h, f := stripeHarness(t, pol, nil)
	f.Outcomes["pm_3ds"] = stripefake.Outcome{Status: "requires_action"}
	id := h.CreatePayment("CARD", "pm_3ds", "12.50")
	p := waitStatus(t, h, id, payment.StatusRequiresAction, 20*time.Second)
	pi := p.GatewayReference
	cancelPayment(t, h, id, http.StatusAccepted) // voided first, then canceled
	p = waitStatus(t, h, id, payment.StatusCanceled, 20*time.Second)
	if r := timelineReasons(t, h, id); !strings.Contains(r, "voided at the gateway (voided)") {
		t.Errorf("timeline:\n%s", r)
	}
	if f.Status(pi) != "canceled" || f.Creates(payment.AttemptKey(id, 1)) != 1 || len(f.CallsOf("POST /v1/payment_intents/"+pi+"/cancel")) == 0 {
		t.Fatalf("PaymentIntent %s is %s; calls %v", pi, f.Status(pi), f.CallsOf(""))
	}
}
