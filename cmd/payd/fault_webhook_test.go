package main

// Merchant events and webhooks under faults (issue 23): in the mixed run
// (TestFault/mixed) the test registers two webhook endpoints before the
// load, both on one receiver of its own on loopback:
//
//   - "all" subscribes to every event type (*);
//   - "some" subscribes to payment.succeeded and payout.settled only.
//
// The receiver verifies every delivery's signature with its endpoint's
// secret and answers 503 to the first try of about one event in five (a
// receiver that fails, then takes it), so retries run under every fault of
// the mixed run (Redis flushed, workers killed, clocks jumped, …).
//
// After the run is final, checkWebhooks waits for the deliveries to finish
// and checks, on one snapshot of the database:
//
//   - every event of the run reached the receiver of every endpoint that
//     subscribes to its type, at least once, with a valid signature, the
//     body naming the event's id and type, and its delivery row says
//     delivered;
//   - no endpoint received an event it does not subscribe to, or an event
//     payd has no row of;
//   - no event exists for a transition that did not happen, and no
//     transition lacks its event: per object and status, the events equal
//     the audit rows of transitions into that status (payment_events,
//     payment_session_events, payment_flow_events), and each event's
//     snapshot is in the status its type names.
//
// TestFaultCheckerCatchesWebhooks proves the checker can fail.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payd/payd/webhook"
)

// faultWebhookEnv turns webhook delivery on in every process of a fault
// cluster: a sealing key of the run's own, and a receiver on loopback over
// plain HTTP allowed.
func faultWebhookEnv() []string {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(err)
	}
	return []string{"PAYD_WEBHOOK_KEYS=fault:" + hex.EncodeToString(key),
		"PAYD_WEBHOOK_ALLOW_HTTP=true", "PAYD_WEBHOOK_ALLOW_PRIVATE=true", "PAYD_WEBHOOK_TIMEOUT=2s"}
}

// faultHookTolerance: the receiver's signature tolerance. The mixed run
// jumps payd's clocks by hours (fault_clock_test.go), and a delivery is
// signed with its sender's clock.
const faultHookTolerance = 48 * time.Hour

// faultHookEndpoint is one endpoint the test registered.
type faultHookEndpoint struct {
	name, id, secret string
	events           []string // its enabled_events
}

func (e *faultHookEndpoint) subscribes(typ string) bool {
	return slices.Contains(e.events, "*") || slices.Contains(e.events, typ)
}

// faultHooks is the run's webhook receiver and what it received.
type faultHooks struct {
	srv *httptest.Server

	mu        sync.Mutex
	endpoints map[string]*faultHookEndpoint // by name (the receiver's path)
	got       map[string]map[string]int     // endpoint name → event id → deliveries taken
	types     map[string]string             // event id → type, as the bodies said
	tries     map[string]int                // endpoint name + event id → tries seen
	bad       []string                      // deliveries refused: bad signature, malformed body
	refused   int                           // tries answered 503 on purpose
}

// startFaultHooks starts the receiver and registers the run's endpoints
// with the cluster's API key.
func startFaultHooks(t *testing.T, c *faultCluster) *faultHooks {
	t.Helper()
	h := &faultHooks{endpoints: map[string]*faultHookEndpoint{}, got: map[string]map[string]int{},
		types: map[string]string{}, tries: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.receive))
	t.Cleanup(h.srv.Close)
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	for _, e := range []*faultHookEndpoint{
		{name: "all", events: []string{"*"}},
		{name: "some", events: []string{"payment.succeeded", "payout.settled"}},
	} {
		body, _ := json.Marshal(map[string]any{"url": h.srv.URL + "/" + e.name, "enabled_events": e.events,
			"description": "fault run receiver " + e.name})
		code, b, _, err := c.post(hc, "/v1/webhook-endpoints", "fault-hook-"+e.name, body)
		if err != nil || code != http.StatusCreated {
			t.Fatalf("register webhook endpoint %s: %d %s %v", e.name, code, b, err)
		}
		var got struct{ ID, Secret string }
		if err := json.Unmarshal(b, &got); err != nil || got.ID == "" || got.Secret == "" {
			t.Fatalf("register webhook endpoint %s: %s (%v)", e.name, b, err)
		}
		e.id, e.secret = got.ID, got.Secret
		h.mu.Lock()
		h.endpoints[e.name] = e
		h.got[e.name] = map[string]int{}
		h.mu.Unlock()
	}
	return h
}

// receive takes one delivery: 503 for the first try of about one event in
// five, else verified and recorded.
func (h *faultHooks) receive(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/")
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.endpoints[name]
	if e == nil || err != nil {
		h.bad = append(h.bad, fmt.Sprintf("delivery to unknown path %q or unreadable body (%v)", r.URL.Path, err))
		w.WriteHeader(http.StatusNotFound)
		return
	}
	var ev struct {
		ID, Type string
		Data     struct {
			Object map[string]any
		}
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" || ev.Type == "" || ev.Data.Object == nil {
		h.bad = append(h.bad, fmt.Sprintf("%s: malformed event body %.200s (%v)", name, body, err))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if err := webhook.Verify(body, r.Header.Get(webhook.Header), []string{e.secret}, faultHookTolerance, time.Now()); err != nil {
		h.bad = append(h.bad, fmt.Sprintf("%s: event %s: signature: %v", name, ev.ID, err))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	k := name + "/" + ev.ID
	h.tries[k]++
	f := fnv.New32a()
	f.Write([]byte(k))
	if h.tries[k] == 1 && f.Sum32()%5 == 0 {
		h.refused++
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if prev, ok := h.types[ev.ID]; ok && prev != ev.Type {
		h.bad = append(h.bad, fmt.Sprintf("%s: event %s came as %s and as %s", name, ev.ID, prev, ev.Type))
	}
	h.types[ev.ID] = ev.Type
	h.got[name][ev.ID]++
	w.WriteHeader(http.StatusNoContent)
}

// faultHookFigures is what checkWebhooks counted.
type faultHookFigures struct {
	events, delivered, duplicates, refused, retriedOK int
	undelivered, unsubscribed, unknown, bad           int
	untransitioned, missingEvent, wrongStatus         int
}

func (f faultHookFigures) String() string {
	return fmt.Sprintf("%d events, %d deliveries taken (%d duplicates; %d first tries refused on purpose), "+
		"undelivered=%d unsubscribed=%d unknown=%d bad=%d event_without_transition=%d transition_without_event=%d wrong_status=%d",
		f.events, f.delivered, f.duplicates, f.refused, f.undelivered, f.unsubscribed, f.unknown, f.bad,
		f.untransitioned, f.missingEvent, f.wrongStatus)
}

// waitDeliveries waits until no delivery is pending (false at the deadline).
func (c *faultCluster) waitDeliveries(deadline time.Time) bool {
	for {
		var pending int
		if err := c.db.QueryRow(`SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'`).Scan(&pending); err != nil {
			c.chk.Fatalf("count pending deliveries: %v", err)
		}
		if pending == 0 {
			return true
		}
		if time.Now().After(deadline) {
			c.chk.Errorf("webhooks: %d deliveries still pending %s after the run was final", pending, c.finalBound)
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// faultEventTransitions lists, per object and status, how many events and
// how many audited transitions into that status there are, for every kind
// of object with events: a difference either way is a violation.
const faultEventTransitions = `
WITH ev AS (
	SELECT object_type, object_id, data->>'status' AS status, count(*) AS n FROM events
	WHERE object_type IN ('payment', 'payout', 'payment_session', 'payment_flow')
	GROUP BY 1, 2, 3),
au AS (
	SELECT CASE p.surface WHEN 'payouts' THEN 'payout' ELSE 'payment' END AS object_type, a.payment_id AS object_id,
		a.to_status AS status, count(*) AS n
	FROM payment_events a JOIN payments p ON p.id = a.payment_id
	WHERE a.from_status IS DISTINCT FROM a.to_status GROUP BY 1, 2, 3
	UNION ALL
	SELECT 'payment_session', session_id, to_status, count(*) FROM payment_session_events
	WHERE from_status IS DISTINCT FROM to_status GROUP BY 1, 2, 3
	UNION ALL
	-- a failed flow's new reason (blocked, then failed for good) is a transition of its own
	SELECT 'payment_flow', flow_id, to_status, count(*) FROM payment_flow_events
	WHERE from_status IS DISTINCT FROM to_status OR to_status = 'failed' GROUP BY 1, 2, 3),
au_evented AS (
	-- only the statuses that have an event (PENDING, a session's PROCESSING, … have none)
	SELECT au.* FROM au WHERE EXISTS (SELECT 1 FROM event_types t WHERE t.object_type = au.object_type AND t.status = au.status))
SELECT COALESCE(ev.object_type, a.object_type), COALESCE(ev.object_id, a.object_id), COALESCE(ev.status, a.status),
	COALESCE(ev.n, 0), COALESCE(a.n, 0)
FROM ev FULL JOIN au_evented a ON a.object_type = ev.object_type AND a.object_id = ev.object_id AND a.status = ev.status
WHERE COALESCE(ev.n, 0) <> COALESCE(a.n, 0)`

// checkWebhooks checks the run's events and their deliveries (see the top
// of this file) on the snapshot q; violations go to t.
func (h *faultHooks) check(t faultT, q faultQuerier) faultHookFigures {
	t.Helper()
	var f faultHookFigures
	h.mu.Lock()
	defer h.mu.Unlock()
	f.refused = h.refused
	f.bad = len(h.bad)
	reportViolations(t, "webhooks: delivery the receiver refused", h.bad)

	// every event, and each endpoint's delivery row of it
	type evRow struct{ typ, status, reason string }
	events := map[string]evRow{}
	rows, err := q.Query(`SELECT e.id, e.type, COALESCE(e.data->>'status', ''), COALESCE(e.data->>'blocked_reason', '')
		FROM events e`)
	if err != nil {
		t.Fatalf("load events: %v", err)
	}
	for rows.Next() {
		var id string
		var r evRow
		if err := rows.Scan(&id, &r.typ, &r.status, &r.reason); err != nil {
			t.Fatalf("scan event: %v", err)
		}
		events[id] = r
	}
	rows.Close()
	f.events = len(events)
	rowStatus := map[string]string{} // endpoint id + event id → delivery status
	rows, err = q.Query(`SELECT endpoint_id, event_id, status FROM webhook_deliveries`)
	if err != nil {
		t.Fatalf("load deliveries: %v", err)
	}
	for rows.Next() {
		var ep, ev, st string
		if err := rows.Scan(&ep, &ev, &st); err != nil {
			t.Fatalf("scan delivery: %v", err)
		}
		rowStatus[ep+"/"+ev] = st
	}
	rows.Close()

	var undelivered, unsubscribed, unknown []string
	names := make([]string, 0, len(h.endpoints))
	for n := range h.endpoints {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		e := h.endpoints[name]
		for id, ev := range events {
			if !e.subscribes(ev.typ) {
				continue
			}
			switch n := h.got[name][id]; {
			case n == 0:
				undelivered = append(undelivered, fmt.Sprintf("%s %s never reached endpoint %s (delivery row: %q)",
					ev.typ, id, name, rowStatus[e.id+"/"+id]))
			case rowStatus[e.id+"/"+id] != "delivered":
				undelivered = append(undelivered, fmt.Sprintf("%s %s reached endpoint %s, but its delivery row is %q",
					ev.typ, id, name, rowStatus[e.id+"/"+id]))
			default:
				f.delivered += n
				f.duplicates += n - 1
				if h.tries[name+"/"+id] > n {
					f.retriedOK++
				}
			}
		}
		for id := range h.got[name] {
			ev, ok := events[id]
			switch {
			case !ok:
				unknown = append(unknown, fmt.Sprintf("endpoint %s received %s, an event payd has no row of", name, id))
			case !e.subscribes(ev.typ):
				unsubscribed = append(unsubscribed, fmt.Sprintf("endpoint %s (%v) received %s %s", name, e.events, ev.typ, id))
			case h.types[id] != ev.typ:
				unknown = append(unknown, fmt.Sprintf("endpoint %s received %s as %s; its row says %s", name, id, h.types[id], ev.typ))
			}
		}
	}
	f.undelivered, f.unsubscribed, f.unknown = len(undelivered), len(unsubscribed), len(unknown)
	reportViolations(t, "webhooks: event not delivered to a subscribed endpoint", undelivered)
	reportViolations(t, "webhooks: event delivered to an endpoint not subscribed to it", unsubscribed)
	reportViolations(t, "webhooks: delivery of an event payd did not write", unknown)

	// events and transitions, one to one
	var without, missing []string
	rows, err = q.Query(faultEventTransitions)
	if err != nil {
		t.Fatalf("events against transitions: %v", err)
	}
	for rows.Next() {
		var typ, id, status string
		var evs, trs int
		if err := rows.Scan(&typ, &id, &status, &evs, &trs); err != nil {
			t.Fatalf("scan events against transitions: %v", err)
		}
		if evs > trs {
			without = append(without, fmt.Sprintf("%s %s: %d events into %s, %d audited transitions", typ, id, evs, status, trs))
		} else {
			missing = append(missing, fmt.Sprintf("%s %s: %d audited transitions into %s, %d events", typ, id, trs, status, evs))
		}
	}
	rows.Close()
	f.untransitioned, f.missingEvent = len(without), len(missing)
	reportViolations(t, "webhooks: event for a transition that did not happen", without)
	reportViolations(t, "webhooks: transition without its event", missing)

	// each event's type is the one its snapshot's status (and reason) names
	var wrong []string
	rows, err = q.Query(`SELECT e.id, e.type, e.object_type, COALESCE(e.data->>'status', '') FROM events e
		WHERE e.object_type IN ('payment', 'payout', 'payment_session', 'payment_flow')
		  AND e.type IS DISTINCT FROM (SELECT t.type FROM event_types t WHERE t.object_type = e.object_type
			AND t.status = e.data->>'status' AND t.reason IN (COALESCE(e.data->>'blocked_reason', '*'), '*')
			ORDER BY t.reason = '*' LIMIT 1)`)
	if err != nil {
		t.Fatalf("events against their snapshots: %v", err)
	}
	for rows.Next() {
		var id, typ, obj, status string
		if err := rows.Scan(&id, &typ, &obj, &status); err != nil {
			t.Fatalf("scan: %v", err)
		}
		wrong = append(wrong, fmt.Sprintf("%s %s is a %s whose snapshot is %s", obj, id, typ, status))
	}
	rows.Close()
	f.wrongStatus = len(wrong)
	reportViolations(t, "webhooks: event whose snapshot is not in its type's status", wrong)
	return f
}

// TestFaultCheckerCatchesWebhooks proves checkWebhooks can fail: a real
// cluster delivers a few payments' events to the receiver and the checker
// finds nothing; then the database and the receiver's record are broken
// one way per property, and it finds each.
func TestFaultCheckerCatchesWebhooks(t *testing.T) {
	bin := buildFaultPayd(t)
	c := startFaultCluster(t, bin)
	hooks := startFaultHooks(t, c)
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	run := fmt.Sprint(time.Now().UnixNano())
	var ids []string
	for i, pm := range []string{"pm_card_visa", "pm_card_visa", "pm_card_declined"} {
		body, _ := json.Marshal(map[string]any{"amount": "1.00", "currency": "USD", "destination_id": faultInvoiceExt("USD", i),
			"destination_type": "INVOICE", "payment_method_type": "CARD", "payment_method_id": pm})
		code, b, _, err := c.post(hc, "", "neg-hook-"+run+fmt.Sprint(i), body)
		if err != nil || code != http.StatusCreated && code != http.StatusAccepted {
			t.Fatalf("create payment %d: %d %s %v", i, code, b, err)
		}
		var p struct{ ID string }
		if err := json.Unmarshal(b, &p); err != nil || p.ID == "" {
			t.Fatalf("create payment %d: %s", i, b)
		}
		ids = append(ids, p.ID)
	}
	if _, ok := c.waitQuiescent(time.Now().Add(60 * time.Second)); !ok {
		t.Fatal("payments not final after 60 s")
	}
	c.waitDeliveries(time.Now().Add(60 * time.Second))
	ok := &faultRecorder{t: t}
	if f := hooks.check(ok, c.db); len(ok.findings) > 0 || f.events < 6 || f.undelivered != 0 {
		t.Fatalf("the run as payd left it: %s; findings %q; want ≥ 6 events (processing, then succeeded or failed, for 3 payments), all delivered, no finding",
			f, ok.findings)
	}

	// now break each property
	var succeeded string
	if err := c.db.QueryRow(`SELECT id FROM events WHERE object_id = $1 AND type = 'payment.succeeded'`, ids[0]).Scan(&succeeded); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		// payment 1: an event for a transition that never happened (a refund)
		`INSERT INTO events (id, tenant_id, type, object_type, object_id, data, created_at)
			SELECT 'evt_forged' || md5(id), tenant_id, 'payment.refunded', 'payment', id,
				to_jsonb(p) || '{"status":"REFUNDED"}', now() FROM payments p WHERE id = '` + ids[1] + `'`,
		// payment 2: its FAILED transition's event is gone (and its deliveries)
		`DELETE FROM webhook_delivery_attempts WHERE event_id IN (SELECT id FROM events WHERE object_id = '` + ids[2] + `' AND type = 'payment.failed')`,
		`DELETE FROM webhook_deliveries WHERE event_id IN (SELECT id FROM events WHERE object_id = '` + ids[2] + `' AND type = 'payment.failed')`,
		`DELETE FROM events WHERE object_id = '` + ids[2] + `' AND type = 'payment.failed'`,
	} {
		if _, err := c.db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	hooks.mu.Lock()
	// payment 0: the receiver of "some" never took its succeeded event
	delete(hooks.got["some"], succeeded)
	// and "some" took an event it does not subscribe to, and one payd never wrote
	hooks.got["some"]["evt_never_written"] = 1
	for id, typ := range hooks.types {
		if typ == "payment.processing" {
			hooks.got["some"][id] = 1
			break
		}
	}
	hooks.mu.Unlock()
	rec := &faultRecorder{t: t}
	f := hooks.check(rec, c.db)
	for _, want := range []string{
		"webhooks: event not delivered to a subscribed endpoint: 2 violation", // payment 0's to "some", the forged refund to "all"
		"webhooks: event delivered to an endpoint not subscribed to it: 1 violation",
		// evt_never_written, and the deleted payment.failed "all" received
		"webhooks: delivery of an event payd did not write: 2 violation",
		"webhooks: event for a transition that did not happen: 1 violation",
		"webhooks: transition without its event: 1 violation",
	} {
		if !rec.found(want) {
			t.Errorf("checkWebhooks missed %q; findings:\n%s", want, strings.Join(rec.findings, "\n"))
		}
	}
	if f.untransitioned != 1 || f.missingEvent != 1 || f.unsubscribed != 1 || f.unknown != 2 {
		t.Errorf("figures %s; want one of each broken property:\n%s", f, strings.Join(rec.findings, "\n"))
	}
}
