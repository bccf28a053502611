package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/intake"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/processor"
	"github.com/payd/payd/store"
)

const notifySecret = "whsec_test_gateway_notifications"

// notifyHarness is payd with a sandbox that pushes signed notifications to
// its intake. Polling is slowed to an hour (settlement re-checks, unknown
// outcome inquiries), so that whatever resolves a payment within seconds
// was driven by a notification.
func notifyHarness(t *testing.T, n sandbox.NotifyConfig) *testenv.Harness {
	t.Helper()
	n.Secret = notifySecret
	pol := payment.DefaultRetryPolicy(10 * time.Millisecond)
	pol.Inquiries = []time.Duration{time.Hour, time.Hour}
	return testenv.Start(t, testenv.Options{
		Sandbox:   sandbox.Config{SettleDelay: 300 * time.Millisecond, ReturnDelay: 1500 * time.Millisecond, Notify: n},
		Intake:    intake.Config{NotifySecrets: []string{"an-old-secret", notifySecret}},
		Processor: processor.Config{SettlePoll: time.Hour, ReturnWindow: 72 * time.Hour, Policy: pol},
	})
}

// waitStatus polls until the payment has status want.
func waitStatus(t *testing.T, h *testenv.Harness, id string, want payment.Status, within time.Duration) payment.Payment {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		p, err := h.Store.GetPayment(context.Background(), "", id)
		if err != nil {
			t.Fatal(err)
		}
		if p.Status == want {
			return p
		}
		if time.Now().After(deadline) {
			ns, _ := h.Store.ListNotifications(context.Background(), id, 20)
			var seen []string
			for _, n := range ns {
				seen = append(seen, fmt.Sprintf("%s×%d:%s", n.Type, n.Deliveries, n.Outcome))
			}
			t.Fatalf("payment %s is %s after %s, want %s (next %s at %v); attempts %+v; notifications %v",
				id, p.Status, within, want, p.NextStep, p.NextStepAt, p.Attempts, seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkAudit: every transition of the payment is allowed, audited once
// (no pair of statuses twice for one attempt), and the audit trail ends at
// its status.
func checkAudit(t *testing.T, h *testenv.Harness, p payment.Payment) []payment.Event {
	t.Helper()
	evs, err := h.Store.Events(context.Background(), p.TenantID, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range evs {
		if e.From == "" {
			continue // creation
		}
		pair := fmt.Sprintf("%s→%s (attempt %d)", e.From, e.To, e.AttemptNumber)
		if seen[pair] {
			t.Errorf("%s: transition %s audited twice", p.ID, pair)
		}
		seen[pair] = true
		if !payment.CanTransition(e.From, e.To) {
			t.Errorf("%s: transition %s is not allowed", p.ID, pair)
		}
	}
	if len(evs) == 0 || evs[len(evs)-1].To != p.Status {
		t.Errorf("%s: audit trail of %d rows does not end at %s", p.ID, len(evs), p.Status)
	}
	return evs
}

// postNotification posts body to the notification route with a signature
// header (empty: none).
func postNotification(h *testenv.Harness, body []byte, header string) testenv.Response {
	hdr := map[string]string{}
	if header != "" {
		hdr[connector.NotificationSignatureHeader] = header
	}
	return h.Do("POST", "/v1/gateway/notifications", "", body, hdr)
}

func notificationBody(id, typ, key, ref string) []byte {
	b, _ := json.Marshal(connector.Notification{ID: id, Type: typ, IdempotencyKey: key, GatewayReference: ref,
		OccurredAt: time.Now().UTC()})
	return b
}

func signed(body []byte) string {
	return connector.SignNotification([]byte(notifySecret), time.Now(), body)
}

// TestNotificationsDuplicatedAndReversed: the sandbox delivers every
// notification five times, the whole batch in reverse (each return before
// its settlement, later attempts before earlier ones). Final statuses are
// what the gateway says, each transition is audited once, each payment is
// charged once, and every notification is one row delivered five times.
func TestNotificationsDuplicatedAndReversed(t *testing.T) {
	t.Parallel()
	h := notifyHarness(t, sandbox.NotifyConfig{Copies: 5, Order: sandbox.NotifyReversed, Hold: true})
	ctx := context.Background()
	cases := []struct {
		method, pm string
		want       payment.Status
	}{
		{"ACH", "ba_10001", payment.StatusReturned},
		{"ACH", "ba_10002", payment.StatusReturned},
		{"ACH", "ba_123456789", payment.StatusSucceeded},
		{"CARD", "pm_card_visa", payment.StatusSucceeded},
		{"CARD", "pm_card_declined", payment.StatusFailed},
		{"CARD", "pm_card_timeout_after_charge", payment.StatusSucceeded},
	}
	ids := make([]string, len(cases))
	for i, c := range cases {
		ids[i] = h.CreatePayment(c.method, c.pm, `"12.50"`)
	}
	// every submit answered (or lost), every settlement and return happened
	// at the sandbox, and nothing was delivered yet: 2+2 for the returned
	// payments, one each for the others
	for _, id := range ids {
		waitAnswered(t, h, id)
	}
	time.Sleep(2500 * time.Millisecond) // past settlement + ReturnDelay
	flushed := time.Now()
	if n := h.Sandbox.FlushNotifications(); n != 8 {
		t.Fatalf("flushed %d notifications, want 8", n)
	}
	for i, c := range cases {
		p := waitStatus(t, h, ids[i], c.want, 20*time.Second)
		checkAudit(t, h, p)
		if c.want != payment.StatusFailed && h.Sandbox.ChargesFor(p.ID) != 1 {
			t.Errorf("%s: %d ledger charges, want 1", c.pm, h.Sandbox.ChargesFor(p.ID))
		}
	}
	if d := h.Sandbox.DoubleCharged(); len(d) != 0 {
		t.Fatalf("double charged: %v", d)
	}
	// every notification: one row, five deliveries, processed once
	deadline := time.Now().Add(20 * time.Second)
	for i, c := range cases {
		for {
			ns, err := h.Store.ListNotifications(ctx, ids[i], 100)
			if err != nil {
				t.Fatal(err)
			}
			done := len(ns) > 0
			for _, n := range ns {
				done = done && n.ProcessedAt != nil && n.Deliveries == 5
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: notifications %+v", c.pm, ns)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// a return notification made the return happen: the settlement check
	// after settling is an hour away
	for _, i := range []int{0, 1} {
		p, _ := h.Store.GetPayment(ctx, "", ids[i])
		evs := checkAudit(t, h, p)
		if at := evs[len(evs)-1].CreatedAt; at.Before(flushed) {
			t.Errorf("%s: returned at %v, before the notifications were delivered (%v)", cases[i].pm, at, flushed)
		}
	}
}

// TestNotificationsImmediateShuffled: notifications delivered at once, five
// copies each, shuffled, while the submits that caused them are still being
// recorded: no wrong or repeated transition, one charge each.
func TestNotificationsImmediateShuffled(t *testing.T) {
	t.Parallel()
	h := notifyHarness(t, sandbox.NotifyConfig{Copies: 5, Order: sandbox.NotifyShuffled, Batch: 50 * time.Millisecond})
	// (pm_card_flaky is left out: its 503 is an unknown outcome with no
	// charge to notify about, so it waits for the hour-long inquiry)
	pms := []string{"pm_card_visa", "pm_card_timeout_after_charge", "pm_card_insufficient_funds", "pm_card_declined"}
	want := []payment.Status{payment.StatusSucceeded, payment.StatusSucceeded, payment.StatusFailed, payment.StatusFailed}
	var ids []string
	for range 5 {
		for _, pm := range pms {
			ids = append(ids, h.CreatePayment("CARD", pm, "4.20"))
		}
	}
	for i, id := range ids {
		p := waitStatus(t, h, id, want[i%len(pms)], 30*time.Second)
		checkAudit(t, h, p)
	}
	if d := h.Sandbox.DoubleCharged(); len(d) != 0 {
		t.Fatalf("double charged: %v", d)
	}
}

// TestNotificationResolvesUnknownSooner: a charge whose answer was lost is
// UNKNOWN, and its inquiry is an hour away. The gateway's notification
// makes payd inquire now: the payment succeeds within seconds, by inquiry.
func TestNotificationResolvesUnknownSooner(t *testing.T) {
	t.Parallel()
	h := notifyHarness(t, sandbox.NotifyConfig{Hold: true})
	ctx := context.Background()
	id := h.CreatePayment("CARD", "pm_card_timeout_after_charge", "9.99")
	deadline := time.Now().Add(20 * time.Second)
	for {
		p, _ := h.Store.GetPayment(ctx, "", id)
		// the inquiry after the lost answer is an hour away (not the
		// safety-net inquiry the claim left)
		if a, ok := lastAttemptOf(p); ok && a.Status == payment.AttemptUnknown && p.NextStep == payment.StepInquire &&
			p.NextStepAt.After(time.Now().Add(50*time.Minute)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment not UNKNOWN: %s", p.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.Sandbox.FlushNotifications()
	p := waitStatus(t, h, id, payment.StatusSucceeded, 15*time.Second)
	evs := checkAudit(t, h, p)
	if last := evs[len(evs)-1]; !strings.Contains(last.Reason, "inquiry") {
		t.Errorf("succeeded by %q, want by inquiry", last.Reason)
	}
	if len(p.Attempts) != 1 || h.Sandbox.ChargesFor(id) != 1 {
		t.Fatalf("%d attempts, %d charges; want 1, 1", len(p.Attempts), h.Sandbox.ChargesFor(id))
	}
	// the notification is marked processed just after the check it made
	for deadline := time.Now().Add(10 * time.Second); ; {
		ns, _ := h.Store.ListNotifications(ctx, id, 10)
		if len(ns) == 1 && ns[0].Outcome == "checked" && ns[0].Type == connector.NotifyChargeSucceeded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notifications %+v", ns)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitAnswered waits until the payment's submit has an answer (or lost it):
// a status past PROCESSING, or an UNKNOWN attempt.
func waitAnswered(t *testing.T, h *testenv.Harness, id string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		p, _ := h.Store.GetPayment(context.Background(), "", id)
		a, ok := lastAttemptOf(p)
		if p.Status != payment.StatusPending && p.Status != payment.StatusProcessing || ok && a.Status == payment.AttemptUnknown {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment %s not answered: %s", id, p.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lastAttemptOf(p payment.Payment) (payment.Attempt, bool) {
	for _, a := range p.Attempts {
		if a.Number == p.AttemptCount {
			return a, true
		}
	}
	return payment.Attempt{}, false
}

// TestNotificationForgedChangesNothing: unsigned, wrongly signed, tampered
// and stale notifications are 401 in the error envelope, recorded nowhere,
// and leave an UNKNOWN payment exactly as it was; the genuine one then
// resolves it (so the forgeries named something that would have mattered).
func TestNotificationForgedChangesNothing(t *testing.T) {
	t.Parallel()
	h := notifyHarness(t, sandbox.NotifyConfig{Hold: true}) // the sandbox never delivers
	ctx := context.Background()
	id := h.CreatePayment("CARD", "pm_card_timeout_after_charge", "9.99")
	var key string
	deadline := time.Now().Add(20 * time.Second)
	for {
		p, _ := h.Store.GetPayment(ctx, "", id)
		if a, ok := lastAttemptOf(p); ok && a.Status == payment.AttemptUnknown {
			key = a.IdempotencyKey
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment not UNKNOWN: %s", p.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	before, _ := h.Store.Events(ctx, h.TenantA, id)
	body := notificationBody("evt_forged", connector.NotifyChargeSucceeded, key, "")
	old := time.Now().Add(-10 * time.Minute)
	cases := []struct {
		name, header string
		body         []byte
		code         string
	}{
		{"unsigned", "", body, "signature_missing"},
		{"garbage header", "v1=zz", body, "signature_missing"},
		{"no timestamp", "v1=" + strings.Repeat("ab", 32), body, "signature_missing"},
		{"wrong secret", connector.SignNotification([]byte("not-the-secret"), time.Now(), body), body, "signature_invalid"},
		{"tampered body", signed(body), []byte(strings.Replace(string(body), "evt_forged", "evt_forgeD", 1)), "signature_invalid"},
		{"stale", connector.SignNotification([]byte(notifySecret), old, body), body, "signature_expired"},
		{"from the future", connector.SignNotification([]byte(notifySecret), time.Now().Add(time.Hour), body), body, "signature_expired"},
	}
	for _, c := range cases {
		r := postNotification(h, c.body, c.header)
		m := r.JSON(t)
		codes, _ := m["error_codes"].([]any)
		if r.Status != http.StatusUnauthorized || m["error_type"] != "authentication_error" || len(codes) != 1 || codes[0] != c.code ||
			m["request_id"] == "" {
			t.Errorf("%s: %d %s", c.name, r.Status, r.Body)
		}
		if strings.Contains(string(r.Body), notifySecret) {
			t.Errorf("%s: the secret leaks in %s", c.name, r.Body)
		}
	}
	time.Sleep(500 * time.Millisecond)
	var rows int
	if err := h.Store.DB().QueryRowContext(ctx, `SELECT count(*) FROM gateway_notifications`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d notifications recorded (%v), want 0", rows, err)
	}
	after, _ := h.Store.Events(ctx, h.TenantA, id)
	if p, _ := h.Store.GetPayment(ctx, "", id); p.Status != payment.StatusProcessing || len(after) != len(before) {
		t.Fatalf("forgeries changed the payment: %s, %d → %d events", p.Status, len(before), len(after))
	}
	// the genuine notification, signed with the second (rotated-in) secret
	if r := postNotification(h, body, signed(body)); r.Status != http.StatusAccepted {
		t.Fatalf("genuine: %d %s", r.Status, r.Body)
	}
	checkAudit(t, h, waitStatus(t, h, id, payment.StatusSucceeded, 15*time.Second))
}

// TestNotificationUnknownOrOtherTenant: a signed notification naming no
// payment, or naming another tenant's settled payment with a false claim,
// gets the same 202 as any other, and changes nothing: the gateway is
// asked only when a payment waits on it, and its answer decides.
func TestNotificationUnknownOrOtherTenant(t *testing.T) {
	t.Parallel()
	h := notifyHarness(t, sandbox.NotifyConfig{Hold: true})
	ctx := context.Background()
	h.CreateInvoiceWithKey(h.KeyB, "inv_b", "USD", "100.00")
	body := `{"amount":"5.00","currency":"USD","destination_id":"inv_b","destination_type":"INVOICE",` +
		`"payment_method_type":"CARD","payment_method_id":"pm_card_visa"}`
	r := h.Do("POST", "/v1/payments", h.KeyB, []byte(body), nil)
	if r.Status != http.StatusCreated {
		t.Fatalf("tenant B payment: %d %s", r.Status, r.Body)
	}
	idB := r.JSON(t)["id"].(string)
	pb := h.WaitFinal(idB, 20*time.Second)
	before, _ := h.Store.Events(ctx, h.TenantB, idB)

	unknown := notificationBody("evt_unknown", connector.NotifyChargeSucceeded, "pay_nope:1", "ch_nope")
	lie := notificationBody("evt_lie", connector.NotifyPaymentReturned, payment.AttemptKey(idB, 1), pb.GatewayReference)
	ru := postNotification(h, unknown, signed(unknown))
	rl := postNotification(h, lie, signed(lie))
	if ru.Status != http.StatusAccepted || rl.Status != http.StatusAccepted || string(ru.Body) != string(rl.Body) {
		t.Fatalf("answers differ: %d %s / %d %s", ru.Status, ru.Body, rl.Status, rl.Body)
	}
	for _, id := range []string{"evt_unknown", "evt_lie"} {
		deadline := time.Now().Add(15 * time.Second)
		for {
			n, err := h.Store.GetNotification(ctx, "sandbox", id)
			if err == nil && n.ProcessedAt != nil {
				want := map[string]string{"evt_unknown": "unknown_payment", "evt_lie": "nothing_due"}[id]
				if n.Outcome != want {
					t.Errorf("%s: outcome %s, want %s", id, n.Outcome, want)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not processed: %+v %v", id, n, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	after, _ := h.Store.Events(ctx, h.TenantB, idB)
	if p, _ := h.Store.GetPayment(ctx, "", idB); p.Status != payment.StatusSucceeded || len(after) != len(before) {
		t.Fatalf("tenant B's payment changed: %s, %d → %d events", p.Status, len(before), len(after))
	}
	// and tenant A's API key still cannot see B's payment
	if r := h.Do("GET", "/v1/payments/"+idB, h.KeyA, nil, nil); r.Status != http.StatusNotFound {
		t.Fatalf("tenant A sees B's payment: %d", r.Status)
	}
}

// TestNotificationBadBodies: a correctly signed body that is not a valid
// notification is a precise 4xx, never a 500, and records nothing.
func TestNotificationBadBodies(t *testing.T) {
	t.Parallel()
	h := notifyHarness(t, sandbox.NotifyConfig{Hold: true})
	big := []byte(`{"id":"` + strings.Repeat("a", intake.DefaultNotifyMaxBody) + `"}`)
	cases := []struct {
		body   string
		status int
		code   string
	}{
		{``, 400, "body_empty"},
		{`{"id":`, 400, "body_malformed"},
		{`[]`, 400, "body_not_object"},
		{`{"id":"a","id":"b"}`, 400, "body_duplicate_key"},
		{`{"id":"e1","type":"charge.succeeded","idempotency_key":"k","occurred_at":"2026-01-01T00:00:00Z","extra":1}`, 422, "unknown_field"},
		{`{"id":"e1","type":"charge.succeeded","occurred_at":"2026-01-01T00:00:00Z"}`, 422, "idempotency_key_or_gateway_reference_required"},
		{`{"id":"e 1","type":"charge.succeeded","idempotency_key":"k","occurred_at":"2026-01-01T00:00:00Z"}`, 422, "id_invalid_characters"},
		{`{"id":"e1","type":"charge.succeeded","idempotency_key":"k","occurred_at":"yesterday"}`, 422, "occurred_at_invalid"},
		{`{"id":"e1","type":"charge.succeeded","idempotency_key":"k","occurred_at":"0000-01-01T00:00:00Z"}`, 422, "occurred_at_out_of_range"},
		{`{"id":"e1","type":7,"idempotency_key":"k","occurred_at":"2026-01-01T00:00:00Z"}`, 422, "type_invalid_type"},
		{string(big), 413, "body_too_large"},
	}
	for _, c := range cases {
		r := postNotification(h, []byte(c.body), signed([]byte(c.body)))
		m := r.JSON(t)
		codes, _ := m["error_codes"].([]any)
		if r.Status != c.status || len(codes) == 0 || fmt.Sprint(codes[0]) != c.code {
			t.Errorf("%.60q: %d %s, want %d %s", c.body, r.Status, r.Body, c.status, c.code)
		}
	}
	var rows int
	if err := h.Store.DB().QueryRow(`SELECT count(*) FROM gateway_notifications`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d rows (%v)", rows, err)
	}
	// an unknown type is recorded for operators and ignored
	body := []byte(`{"id":"evt_new","type":"dispute.created","gateway_reference":"ch_1","occurred_at":"2026-01-01T00:00:00Z"}`)
	if r := postNotification(h, body, signed(body)); r.Status != http.StatusAccepted {
		t.Fatalf("unknown type: %d %s", r.Status, r.Body)
	}
	if n, err := h.Store.GetNotification(context.Background(), "sandbox", "evt_new"); err != nil || n.Outcome != "ignored_type" {
		t.Fatalf("unknown type row %+v %v", n, err)
	}
}

// TestNotificationsOffWithoutSecret: with no secret configured the route
// does not exist, signed or not.
func TestNotificationsOffWithoutSecret(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	body := notificationBody("evt_1", connector.NotifyChargeSucceeded, "pay_x:1", "")
	r := postNotification(h, body, signed(body))
	if codes, _ := r.JSON(t)["error_codes"].([]any); r.Status != http.StatusNotFound || len(codes) != 1 || codes[0] != "route_not_found" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
}

// TestNotificationTaskLostIsSwept: a notification recorded whose task was
// lost (Redis wiped right after intake stored it) is acted on by the
// sweeper: the payment waiting an hour for its next inquiry succeeds now.
func TestNotificationTaskLostIsSwept(t *testing.T) {
	t.Parallel()
	h := notifyHarness(t, sandbox.NotifyConfig{Hold: true}) // the sandbox's own notifications never arrive
	ctx := context.Background()
	id := h.CreatePayment("CARD", "pm_card_timeout_after_charge", "9.99")
	var key string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		p, _ := h.Store.GetPayment(ctx, "", id)
		if a, ok := lastAttemptOf(p); ok && a.Status == payment.AttemptUnknown && p.NextStep == payment.StepInquire &&
			p.NextStepAt.After(time.Now().Add(50*time.Minute)) {
			key = a.IdempotencyKey
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment not UNKNOWN: %s", p.Status)
		}
	}
	// stored, as intake does, but its task never enqueued
	if _, _, err := h.Store.RecordNotification(ctx, store.Notification{Gateway: "sandbox", ID: "ntf_lost_1",
		Type: connector.NotifyChargeSucceeded, IdempotencyKey: key, OccurredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond) // past the sweep grace
	if _, err := h.Processor.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	p := waitStatus(t, h, id, payment.StatusSucceeded, 15*time.Second)
	if len(p.Attempts) != 1 || h.Sandbox.ChargesFor(id) != 1 {
		t.Fatalf("%d attempts, %d charges; want 1, 1", len(p.Attempts), h.Sandbox.ChargesFor(id))
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n, err := h.Store.GetNotification(ctx, "sandbox", "ntf_lost_1")
		if err == nil && n.ProcessedAt != nil && n.Outcome == "checked" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notification %+v, %v", n, err)
		}
	}
}
