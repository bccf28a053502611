package intake_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
)

// Merchant events (docs/events.md) on real Postgres and Redis: every
// transition of a payment, payout, session and flow has its event, in the
// order it happened, with its object in the surface's own shape, and
// nothing else has one.

// listEvents lists tenant key's events with query q, every page.
func listEvents(t *testing.T, h *testenv.Harness, key, q string) []map[string]any {
	t.Helper()
	var out []map[string]any
	after := ""
	for {
		path := "/v1/events?" + q
		if after != "" {
			path += "&starting_after=" + after
		}
		l := jsonObj(t, h.Do("GET", path, key, nil, nil), 200)
		for _, e := range l["data"].([]any) {
			out = append(out, e.(map[string]any))
		}
		if l["has_more"] != true {
			return out
		}
		after = out[len(out)-1]["id"].(string)
	}
}

// eventsOf lists the events of one object, oldest first.
func eventsOf(t *testing.T, h *testenv.Harness, id string) []map[string]any {
	t.Helper()
	evs := listEvents(t, h, h.KeyA, "object_id="+url.QueryEscape(id))
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return evs
}

// typesOf checks that evs are in increasing sequence and returns their types.
func typesOf(t *testing.T, evs []map[string]any) []string {
	t.Helper()
	var types []string
	var last int64
	for _, e := range evs {
		seq, err := e["sequence"].(json.Number).Int64()
		if err != nil || seq <= last {
			t.Fatalf("sequence %v after %d: events not in increasing order", e["sequence"], last)
		}
		last = seq
		types = append(types, e["type"].(string))
	}
	return types
}

func object(e map[string]any) map[string]any {
	return e["data"].(map[string]any)["object"].(map[string]any)
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestEventCardPayments(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	ok := h.CreatePayment("CARD", "pm_card_visa", "12.00")
	declined := h.CreatePayment("CARD", "pm_card_declined", "3.00")
	h.WaitFinal(ok, 10*time.Second)
	h.WaitFinal(declined, 10*time.Second)

	evs := eventsOf(t, h, ok)
	diff(t, "events of a card payment that succeeded", []string{"payment.processing", "payment.succeeded"}, typesOf(t, evs))
	diff(t, "events of a declined card payment", []string{"payment.processing", "payment.failed"},
		typesOf(t, eventsOf(t, h, declined)))
	for i, want := range []string{"PROCESSING", "SUCCEEDED"} {
		e := evs[i]
		id := e["id"].(string)
		if !strings.HasPrefix(id, "evt_") || len(id) != 36 || e["object_type"] != "payment" || e["object_id"] != ok {
			t.Fatalf("event %v", e)
		}
		if st := object(e)["payment_status"]; st != want {
			t.Errorf("%s's object has payment_status %v, want %s (the snapshot of its transition)", e["type"], st, want)
		}
		// GET answers the same event
		g := jsonObj(t, h.Do("GET", "/v1/events/"+id, h.KeyA, nil, nil), 200)
		if !reflect.DeepEqual(g, e) {
			t.Errorf("GET /v1/events/%s = %v, the list shows %v", id, g, e)
		}
	}
	// the object is the payment as GET /v1/payments/{id} shows it, as it was then
	now := jsonObj(t, h.Do("GET", "/v1/payments/"+ok, h.KeyA, nil, nil), 200)
	last := object(evs[1])
	diff(t, "payment.succeeded object's fields", keysOf(now), keysOf(last))
	for _, k := range []string{"id", "amount", "currency", "payment_status", "succeeded_at", "updated_at", "invoice_number", "payment_method_id"} {
		if !reflect.DeepEqual(now[k], last[k]) {
			t.Errorf("payment.succeeded %s = %v, GET shows %v", k, last[k], now[k])
		}
	}
	if evs[1]["created"] != now["updated_at"] {
		t.Errorf("created %v, want the transition's time %v", evs[1]["created"], now["updated_at"])
	}
	if object(evs[0])["succeeded_at"] != nil {
		t.Errorf("payment.processing's snapshot already has succeeded_at %v", object(evs[0])["succeeded_at"])
	}

	// filters
	failed := listEvents(t, h, h.KeyA, "type=payment.failed")
	if len(failed) != 1 || failed[0]["object_id"] != declined {
		t.Fatalf("type=payment.failed lists %v", failed)
	}
	all := listEvents(t, h, h.KeyA, "")
	if len(all) != 4 {
		t.Fatalf("%d events, want 4", len(all))
	}
	for i := 1; i < len(all); i++ { // newest first
		a, _ := all[i-1]["sequence"].(json.Number).Int64()
		b, _ := all[i]["sequence"].(json.Number).Int64()
		if a <= b {
			t.Fatalf("list not newest first: %d then %d", a, b)
		}
	}
	if n := len(listEvents(t, h, h.KeyA, "created[gte]="+url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)))); n != 0 {
		t.Errorf("created[gte] an hour ahead lists %d", n)
	}
	if n := len(listEvents(t, h, h.KeyA, "created[lte]="+url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339)))); n != 0 {
		t.Errorf("created[lte] an hour ago lists %d", n)
	}
	oldest := all[len(all)-1]["created"].(string)
	if got := listEvents(t, h, h.KeyA, "created[lte]="+url.QueryEscape(oldest)+"&created[gte]="+url.QueryEscape(oldest)); len(got) < 1 ||
		got[len(got)-1]["id"] != all[len(all)-1]["id"] {
		t.Errorf("created range [%s, %s] lists %v", oldest, oldest, got)
	}
	// the cursor walks every event once, newest first
	var walked []any
	after := ""
	for i := 0; i < 10; i++ {
		q := "/v1/events?limit=1"
		if after != "" {
			q += "&starting_after=" + after
		}
		l := jsonObj(t, h.Do("GET", q, h.KeyA, nil, nil), 200)
		d := l["data"].([]any)
		if len(d) != 1 {
			t.Fatalf("page %d: %v", i, l)
		}
		after = d[0].(map[string]any)["id"].(string)
		walked = append(walked, after)
		if l["has_more"] != true {
			break
		}
	}
	var want []any
	for _, e := range all {
		want = append(want, e["id"])
	}
	diff(t, "cursor walk", want, walked)
	for q, code := range map[string]string{"type=Payment": "type_invalid", "created[gte]=yesterday": "created_invalid",
		"limit=0": "limit_invalid", "starting_after=evt_nope": "starting_after_not_found"} {
		checkEnvelope(t, h.Do("GET", "/v1/events?"+q, h.KeyA, nil, nil), 422, code)
	}
	checkEnvelope(t, h.Do("GET", "/v1/events/evt_nope", h.KeyA, nil, nil), 404, "resource_not_found")
}

// TestEventTenantIsolation (I6): tenant B neither lists, reads, filters
// for, nor pages from tenant A's events.
func TestEventTenantIsolation(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	pay := h.CreatePayment("CARD", "pm_card_visa", "5.00")
	h.WaitFinal(pay, 10*time.Second)
	evs := eventsOf(t, h, pay)
	if len(evs) != 2 {
		t.Fatalf("A has %d events", len(evs))
	}
	id := evs[0]["id"].(string)
	checkEnvelope(t, h.Do("GET", "/v1/events/"+id, h.KeyB, nil, nil), 404, "resource_not_found")
	for _, q := range []string{"", "object_id=" + pay, "type=payment.succeeded"} {
		if l := listEvents(t, h, h.KeyB, q); len(l) != 0 {
			t.Fatalf("tenant B lists %v with %q", l, q)
		}
	}
	checkEnvelope(t, h.Do("GET", "/v1/events?starting_after="+id, h.KeyB, nil, nil), 422, "starting_after_not_found")
}

func TestEventPayout(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	inv := payoutInvoice(t, h, h.TenantA, "USD", 50000)
	po := createPayout(t, h, h.KeyA, payoutBody(map[string]any{"method": "ACH", "lines": []any{line(inv, "100.00")}}))
	id := po["id"].(string)
	settled := waitPayout(t, h, id, "SETTLED", 20*time.Second)
	evs := eventsOf(t, h, id)
	diff(t, "events of an ACH payout", []string{"payout.processing", "payout.sent", "payout.settled"}, typesOf(t, evs))
	for i, want := range []string{"PROCESSING", "SENT", "SETTLED"} {
		o := object(evs[i])
		if evs[i]["object_type"] != "payout" || o["status"] != want || o["object"] != "payout" {
			t.Errorf("event %d: %v status %v", i, evs[i]["object_type"], o["status"])
		}
	}
	last := object(evs[2])
	diff(t, "payout.settled object's fields", keysOf(settled), keysOf(last))
	for _, k := range []string{"id", "external_payment_id", "total_amount", "beneficiary_name", "sent_at", "settled_at"} {
		if !reflect.DeepEqual(settled[k], last[k]) {
			t.Errorf("payout.settled %s = %v, GET shows %v", k, last[k], settled[k])
		}
	}
	if evs[2]["created"] != last["updated_at"] {
		t.Errorf("payout.settled created %v, its snapshot's updated_at %v", evs[2]["created"], last["updated_at"])
	}
	if object(evs[1])["settled_at"] != nil {
		t.Errorf("payout.sent's snapshot has settled_at %v", object(evs[1])["settled_at"])
	}
	if r := listEvents(t, h, h.KeyA, "type=payout.settled"); len(r) != 1 || r[0]["object_id"] != id {
		t.Errorf("type=payout.settled lists %v", r)
	}
}

func TestEventSession(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{})
	s := createSession(t, h, nil)
	id, token, secret := s["id"].(string), s["payment_session_token"].(string), s["payment_session_secret"].(string)
	out := jsonObj(t, h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody("sandbox:pm_card_visa", 1250), nil), 201)
	pay := h.WaitFinal(out["id"].(string), 10*time.Second)
	evs := eventsOf(t, h, id)
	diff(t, "events of a session", []string{"payment_session.completed"}, typesOf(t, evs))
	o := object(evs[0])
	if o["status"] != "COMPLETED" || o["payment_id"] != pay.ID || o["id"] != id || evs[0]["object_type"] != "payment_session" {
		t.Errorf("payment_session.completed object %v", o)
	}
	raw := h.Do("GET", "/v1/events/"+evs[0]["id"].(string), h.KeyA, nil, nil).Body
	for _, secretish := range []string{token, secret, "payment_session_token", "redirect"} {
		if strings.Contains(string(raw), secretish) {
			t.Errorf("the session's event shows %q: %s", secretish, raw)
		}
	}
	// its payment's events, without the one-time token it was charged with
	pevs := eventsOf(t, h, pay.ID)
	diff(t, "events of the session's payment", []string{"payment.processing", "payment.succeeded"}, typesOf(t, pevs))
	for _, e := range pevs {
		if pm := object(e)["payment_method_id"]; pm != "" || pay.PaymentMethodID == "" {
			t.Errorf("a session payment's event shows payment_method_id %q (the row holds %q)", pm, pay.PaymentMethodID)
		}
	}
	// a session canceled
	s2 := createSession(t, h, nil)
	jsonObj(t, h.Do("POST", "/v1/payment-sessions/"+s2["id"].(string)+"/cancel", h.KeyA, nil, nil), 200)
	diff(t, "events of a canceled session", []string{"payment_session.canceled"}, typesOf(t, eventsOf(t, h, s2["id"].(string))))
}

func TestEventFlowSettled(t *testing.T) {
	t.Parallel()
	h := flowHarness(t, testenv.Options{})
	sweeping(t, h)
	flowPayer(t, h, "ev-payer", "CARD", "pm_card_visa")
	flowPayee(t, h, "ev-payee")
	inv := flowInvoice(t, h, "inv-ev", "USD", "10.00", []party{{"ev-payer", "10.00"}}, []party{{"ev-payee", "9.00"}})
	id := createFlow(t, h, "pf-ev", inv, 201)["data"].(map[string]any)["id"].(string)
	final := waitFlow(t, h, id, 30*time.Second, "settled", "failed")
	if final["status"] != "settled" {
		t.Fatalf("flow ended %v", final["status"])
	}
	evs := eventsOf(t, h, id)
	types := typesOf(t, evs)
	if len(types) < 2 || types[0] != "payment_flow.processing" || types[len(types)-1] != "payment_flow.settled" {
		t.Fatalf("events of a settled flow: %v", types)
	}
	o := object(evs[len(evs)-1])
	if !reflect.DeepEqual(o, final) {
		t.Errorf("payment_flow.settled object\n%v\nGET shows\n%v", o, final)
	}
	// the processing event carries the plan of its own version, payouts not yet out
	first := object(evs[0])
	if first["status"] != "processing" || first["payment_plan"].(map[string]any)["version"] == final["payment_plan"].(map[string]any)["version"] {
		t.Errorf("payment_flow.processing object: status %v plan version %v", first["status"], first["payment_plan"].(map[string]any)["version"])
	}
	// the flow's payments have their own events: a payin and a payout
	var payments, payouts int
	for _, e := range listEvents(t, h, h.KeyA, "") {
		switch e["type"] {
		case "payment.succeeded":
			payments++
		case "payout.settled":
			payouts++
		}
	}
	if payments != 1 || payouts != 1 {
		t.Errorf("payment.succeeded %d, payout.settled %d; want 1 each", payments, payouts)
	}
}

// TestEventPerBatchedTransition: concurrent payments, whose transitions the
// batched statement of store/payment_change.go records many at a time. Each
// payment's events are exactly its audited transitions into a status that
// has an event (every one but PENDING), in the same order and at the same
// times: no transition without its event, no event without its transition.
func TestEventPerBatchedTransition(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	const n = 48
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			pm := []string{"pm_card_visa", "pm_card_declined", "pm_card_visa"}[i%3]
			ids[i] = h.CreatePayment("CARD", pm, "1.00")
		}(i)
	}
	wg.Wait()
	for _, id := range ids {
		h.WaitFinal(id, 30*time.Second)
	}
	db := ownerDB(t, h)
	type step struct {
		To string
		At time.Time
	}
	var audit, events []struct {
		ID string    `db:"id"`
		To string    `db:"to"`
		At time.Time `db:"at"`
	}
	if err := db.Select(&audit, `SELECT payment_id AS id, to_status AS to, created_at AS at FROM payment_events
		WHERE payment_id = ANY($1) AND from_status IS DISTINCT FROM to_status AND to_status <> 'PENDING' ORDER BY payment_events.id`,
		pq.Array(ids)); err != nil {
		t.Fatal(err)
	}
	if err := db.Select(&events, `SELECT object_id AS id, data->>'status' AS to, created_at AS at FROM events
		WHERE object_id = ANY($1) ORDER BY seq`, pq.Array(ids)); err != nil {
		t.Fatal(err)
	}
	if len(audit) != 2*n || len(events) != len(audit) {
		t.Fatalf("%d audited transitions, %d events; want %d of each", len(audit), len(events), 2*n)
	}
	per := func(rows []struct {
		ID string    `db:"id"`
		To string    `db:"to"`
		At time.Time `db:"at"`
	}) map[string][]step {
		m := map[string][]step{}
		for _, r := range rows {
			m[r.ID] = append(m[r.ID], step{r.To, r.At.UTC()})
		}
		return m
	}
	diff(t, "events against audited transitions", per(audit), per(events))
	// and the API agrees on the type
	for _, id := range ids[:3] {
		types := typesOf(t, eventsOf(t, h, id))
		if len(types) != 2 || types[0] != "payment.processing" {
			t.Errorf("%s: %v", id, types)
		}
	}
}

// TestEventSecretCanary: no events row holds a secret: the session's
// secret (or its hash), its token, the one-time card token its payment was
// charged with, the session_data it came from, a request fingerprint.
func TestEventSecretCanary(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{})
	const nonce = "evtCnry7Qz4"
	s := createSession(t, h, nil)
	id, token, secret := s["id"].(string), s["payment_session_token"].(string), s["payment_session_secret"].(string)
	out := jsonObj(t, h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA,
		submitBody("sandbox:pm_card_visa:"+nonce, 1250), nil), 201)
	pay := h.WaitFinal(out["id"].(string), 10*time.Second)
	card := h.CreatePayment("CARD", "pm_card_visa", "2.00")
	h.WaitFinal(card, 10*time.Second)
	db := ownerDB(t, h)
	var hashes [][]byte
	if err := db.Select(&hashes, `SELECT secret_hash FROM payment_sessions UNION ALL
		SELECT request_fingerprint FROM payments WHERE request_fingerprint IS NOT NULL UNION ALL
		SELECT request_fingerprint FROM payment_flows`); err != nil {
		t.Fatal(err)
	}
	canaries := []string{secret, token, nonce, pay.PaymentMethodID}
	for _, b := range hashes {
		canaries = append(canaries, hex.EncodeToString(b))
	}
	if pay.PaymentMethodID == "" || len(hashes) < 2 {
		t.Fatalf("nothing to look for: token %q, %d hashes", pay.PaymentMethodID, len(hashes))
	}
	var rows []string
	if err := db.Select(&rows, `SELECT row_to_json(e)::text FROM events e`); err != nil {
		t.Fatal(err)
	}
	api := listEvents(t, h, h.KeyA, "")
	apiText, _ := json.Marshal(api)
	dump := strings.Join(rows, "\n")
	if len(rows) < 5 || !strings.Contains(dump, id) || !strings.Contains(dump, pay.ID) || len(api) != len(rows) {
		t.Fatalf("the search is broken: %d rows, %d listed", len(rows), len(api))
	}
	for _, c := range canaries {
		if strings.Contains(dump, c) {
			t.Errorf("%q appears in the events table", c)
		}
		if strings.Contains(string(apiText), c) {
			t.Errorf("%q appears in GET /v1/events", c)
		}
	}
	for _, col := range []string{"secret_hash", "request_fingerprint", `"token"`, "submit_lock_until"} {
		if strings.Contains(dump, col) {
			t.Errorf("column %s is in an event's snapshot", col)
		}
	}
}

// TestEventBlockedFlowResumes: a flow whose payin is declined is
// payment_flow.blocked (payin_failed: the merchant can act), and after a new
// payin method processing, then settled; a refund is payment.partially_refunded
// then payment.refunded.
func TestEventBlockedFlowResumes(t *testing.T) {
	t.Parallel()
	h := flowHarness(t, testenv.Options{})
	sweeping(t, h)
	flowPayer(t, h, "blk-payer", "CARD", "pm_card_declined")
	flowPayee(t, h, "blk-payee")
	inv := flowInvoice(t, h, "inv-blk", "USD", "10.00", []party{{"blk-payer", "10.00"}}, []party{{"blk-payee", "9.00"}})
	id := createFlow(t, h, "pf-blk", inv, 201)["data"].(map[string]any)["id"].(string)
	waitFlow(t, h, id, 30*time.Second, "failed")
	evs := eventsOf(t, h, id)
	types := typesOf(t, evs)
	if types[len(types)-1] != "payment_flow.blocked" {
		t.Fatalf("events of a flow whose payin was declined: %v", types)
	}
	if o := object(evs[len(evs)-1]); o["status"] != "failed" || o["blocked_reason"] != payment.BlockedPayinFailed {
		t.Errorf("payment_flow.blocked object: %v / %v", o["status"], o["blocked_reason"])
	}
	b, _ := json.Marshal(map[string]any{"payin_method": map[string]any{"payment_method_type": "CARD", "payment_method_id": "pm_card_visa"}})
	jsonObj(t, h.Do("PATCH", "/v1/users/blk-payer", h.KeyA, b, nil), 200)
	waitFlow(t, h, id, 30*time.Second, "settled")
	types = typesOf(t, eventsOf(t, h, id))
	diff(t, "events of the flow after it resumed", []string{"payment_flow.blocked", "payment_flow.processing", "payment_flow.settled"},
		types[len(types)-3:])

	pay := h.CreatePayment("CARD", "pm_card_visa", "10.00")
	h.WaitFinal(pay, 10*time.Second)
	for _, amount := range []string{"4.00", "6.00"} {
		r := h.Do("POST", "/v1/payments/"+pay+"/refunds", h.KeyA, []byte(`{"amount":"`+amount+`"}`), nil)
		if r.Status != 201 && r.Status != 202 && r.Status != 200 {
			t.Fatalf("refund %s: %d %s", amount, r.Status, r.Body)
		}
		waitFor(t, 10*time.Second, "refund "+amount, func() bool {
			p, _ := h.Store.GetPayment(context.Background(), "", pay)
			return p.RefundPendingAmount == 0
		})
	}
	evs = eventsOf(t, h, pay)
	diff(t, "events of a payment refunded in two parts",
		[]string{"payment.processing", "payment.succeeded", "payment.partially_refunded", "payment.refunded"}, typesOf(t, evs))
	if o := object(evs[2]); o["refunded_amount"] != json.Number("4.00") || o["payment_status"] != "PARTIALLY_REFUNDED" {
		t.Errorf("payment.partially_refunded object: %v %v", o["refunded_amount"], o["payment_status"])
	}
}
