package bench

// -webhooks: what merchant webhooks cost card payments, and how fast events
// reach a receiver. Once the run's card payments are final (the phase
// without webhooks), the bench starts a receiver of its own on loopback,
// registers a webhook endpoint subscribed to every event type (*) pointing
// at it, and runs two more phases on the same payd:
//
//  1. with webhooks, at the maximum rate: -n card payments, closed loop at
//     -c, like the first phase; card payments completed/s is put beside the
//     first phase's, and deliveries/s and event-to-delivery latency are
//     measured over its events;
//  2. at half that rate, open loop for -webhook-duration: the
//     event-to-delivery latency a merchant sees when payd is not saturated
//     (target p99 ≤ 2 s).
//
// Every delivery's signature is verified with the endpoint's secret, and at
// the end every event of the phases' payments (GET /v1/events?object_id=…)
// must have reached the receiver (docs/BENCHMARKS.md "Webhooks").

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/webhook"
)

// webhookReport is the -webhooks part of a run.
type webhookReport struct {
	EndpointID string `json:"endpoint_id"`
	// the phase without webhooks is the run's own (Final.PerSecond)
	CardPerSecondWithout float64 `json:"card_completed_per_second_without"`
	// the closed-loop phase with the endpoint subscribed to *
	N                 int     `json:"n"`
	Concurrency       int     `json:"concurrency"`
	CardPerSecondWith float64 `json:"card_completed_per_second_with"`
	// VsWithout is with ÷ without.
	VsWithout   float64      `json:"with_vs_without"`
	MaxPhase    webhookPhase `json:"max_rate"`
	HalfRate    float64      `json:"half_rate"` // payments/s asked for in the second phase
	HalfPhase   webhookPhase `json:"half_rate_phase"`
	BadDelivery []string     `json:"bad_deliveries"` // signature or body refused by the receiver
	TargetP99Ms float64      `json:"target_p99_ms"`
	TargetMet   bool         `json:"target_met"`
	Error       string       `json:"error,omitempty"`
}

// webhookPhase is one phase's events and their deliveries.
type webhookPhase struct {
	Payments   int      `json:"payments"`
	Final      int      `json:"final"`
	Seconds    float64  `json:"seconds"` // first post → last delivery
	Events     int      `json:"events"`  // of the phase's payments, read from GET /v1/events
	Delivered  int      `json:"delivered"`
	Duplicates int      `json:"duplicates"`
	Missing    []string `json:"missing"` // events never delivered
	PerSecond  float64  `json:"deliveries_per_second"`
	// Latency is each event's created time (payd's clock, ms) to its first
	// delivery reaching the receiver.
	Latency dist `json:"event_to_delivery"`
}

// webhookTargetP99 is the target of event-to-delivery p99 at half the
// maximum rate.
const webhookTargetP99 = 2 * time.Second

// receiver takes the deliveries of one endpoint.
type receiver struct {
	srv    *http.Server
	url    string
	mu     sync.Mutex
	secret string
	first  map[string]time.Time     // event id → first delivery taken
	lat    map[string]time.Duration // event id → created → first delivery
	byObj  map[string][]string      // object id → event ids taken
	kinds  map[string]string        // event id → type
	dups   map[string]int
	last   time.Time
	bad    []string
}

func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: webhook receiver: %w", err)
	}
	r := &receiver{first: map[string]time.Time{}, lat: map[string]time.Duration{}, byObj: map[string][]string{}, kinds: map[string]string{}, dups: map[string]int{}}
	r.url = "http://" + ln.Addr().String() + "/hook"
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln)
	return r, nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	var ev struct {
		ID       string `json:"id"`
		Type     string `json:"type"`
		Created  string `json:"created"`
		ObjectID string `json:"object_id"`
	}
	if err == nil {
		err = json.Unmarshal(body, &ev)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		err = webhook.Verify(body, req.Header.Get(webhook.Header), []string{r.secret}, 0, now)
	}
	var created time.Time
	if err == nil {
		created, err = time.Parse(time.RFC3339Nano, ev.Created)
	}
	if err != nil || ev.ID == "" {
		if len(r.bad) < 20 {
			r.bad = append(r.bad, fmt.Sprintf("%s: %v", ev.ID, err))
		}
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if _, seen := r.first[ev.ID]; seen {
		r.dups[ev.ID]++
	} else {
		r.first[ev.ID], r.lat[ev.ID] = now, now.Sub(created)
		r.byObj[ev.ObjectID] = append(r.byObj[ev.ObjectID], ev.ID)
		r.kinds[ev.ID] = ev.Type
	}
	r.last = now
	w.WriteHeader(http.StatusNoContent)
}

// finalEventType is the event a payment's final status makes.
func finalEventType(st payment.Status) string {
	return "payment." + map[payment.Status]string{payment.StatusSucceeded: "succeeded", payment.StatusFailed: "failed",
		payment.StatusCanceled: "canceled", payment.StatusRequiresReview: "requires_review"}[st]
}

// runWebhooks runs the phases with webhooks (top of this file) after the
// run's own phase, whose completed/s is without.
func runWebhooks(ctx context.Context, o Options, p plan, t *target, hc *http.Client, runID string, without float64) *webhookReport {
	wr := &webhookReport{CardPerSecondWithout: without, N: o.n, Concurrency: o.c, TargetP99Ms: ms(webhookTargetP99)}
	fail := func(err error) *webhookReport { wr.Error = err.Error(); return wr }
	rc, err := startReceiver()
	if err != nil {
		return fail(err)
	}
	defer rc.srv.Close()
	code, b, _, _, _ := postJSON(ctx, hc, t, "/v1/webhook-endpoints", "bench-hook-"+runID,
		map[string]any{"url": rc.url, "enabled_events": []string{"*"}, "description": "paydbench receiver"})
	var ep struct{ ID, Secret string }
	if code != http.StatusCreated || json.Unmarshal(b, &ep) != nil || ep.Secret == "" {
		return fail(fmt.Errorf("register the endpoint: %d %.300s (payd needs PAYD_WEBHOOK_KEYS, and PAYD_WEBHOOK_ALLOW_HTTP and _PRIVATE for a loopback receiver; --spawn sets them)", code, b))
	}
	rc.mu.Lock()
	rc.secret = ep.Secret
	rc.mu.Unlock()
	wr.EndpointID = ep.ID

	// 1. closed loop at -c, as the run's own phase
	var with float64
	wr.MaxPhase, with, err = webhookPhaseRun(ctx, o, p, t, hc, runID+"w1", rc)
	if err != nil {
		return fail(err)
	}
	wr.CardPerSecondWith = with
	if without > 0 {
		wr.VsWithout = with / without
	}
	// 2. open loop at half that rate
	wr.HalfRate = math.Round(with/2*10) / 10
	if wr.HalfRate < 1 {
		return fail(fmt.Errorf("half of %.1f payments/s is too slow to measure", with))
	}
	oh := o
	oh.rate, oh.duration = wr.HalfRate, o.webhookDuration
	oh.n = int(math.Ceil(oh.rate * oh.duration.Seconds()))
	wr.HalfPhase, _, err = webhookPhaseRun(ctx, oh, p, t, hc, runID+"w2", rc)
	if err != nil {
		return fail(err)
	}
	rc.mu.Lock()
	wr.BadDelivery = rc.bad
	rc.mu.Unlock()
	wr.TargetMet = wr.HalfPhase.Latency.P99 <= ms(webhookTargetP99) && len(wr.HalfPhase.Missing) == 0 && len(wr.BadDelivery) == 0
	return wr
}

// webhookPhaseRun posts one phase's payments (closed loop, or open loop
// when o.rate is set), waits until they are final and their events have
// reached rc, and measures them. It returns the phase and its card
// payments completed/s.
func webhookPhaseRun(ctx context.Context, o Options, p plan, t *target, hc *http.Client, runID string, rc *receiver) (webhookPhase, float64, error) {
	var ph webhookPhase
	var invs []string
	dues := p.dues(o.n)
	for k, cur := range p.currencies {
		for j := range p.invoices {
			inv, err := createInvoice(ctx, hc, t, p.invoiceExternalID(runID, cur, j), cur, dues[k*p.invoices+j])
			if err != nil {
				return ph, 0, err
			}
			invs = append(invs, inv)
		}
	}
	var subs []submission
	var postSeconds float64
	if o.rate > 0 {
		subs, postSeconds, _ = postRate(ctx, o, p, t, hc, runID, invs)
	} else {
		subs, postSeconds = post(ctx, o, p, t, hc, runID, invs)
	}
	var ids []string
	classOf := map[string]int{}
	first := time.Now()
	for _, s := range subs {
		if s.id != "" {
			ids = append(ids, s.id)
			classOf[s.id] = s.class
		}
		if !s.start.IsZero() && s.start.Before(first) {
			first = s.start
		}
	}
	ph.Payments = len(ids)
	obs, err := await(ctx, t.observe, ids, func(id string, st payment.Status) bool { return p.classes[classOf[id]].done(st) }, o.pollEvery)
	if err != nil {
		return ph, 0, fmt.Errorf("bench: webhooks phase: waiting for final payments: %w", err)
	}
	tmp := &Report{}
	fillReport(tmp, subs, postSeconds, obs, p, nil, errors.New("not read"), "")
	ph.Final = tmp.Final.Final

	// every payment's final event delivered, then a quiet second for the rest
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		waiting := 0
		rc.mu.Lock()
		for _, id := range ids {
			if !rc.hasType(id, obs[id].Status) {
				waiting++
			}
		}
		quiet := time.Since(rc.last) > time.Second
		rc.mu.Unlock()
		if waiting == 0 && quiet {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break // the missing are counted below
		}
	}
	// the phase's events, as payd lists them, against what was delivered
	var mu sync.Mutex
	var lats []time.Duration
	_ = parallel(ctx, len(ids), 8, func(i int) error {
		evs, err := listEvents(ctx, hc, t, ids[i])
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			ph.Missing = append(ph.Missing, ids[i]+": "+err.Error())
			return nil
		}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		for _, ev := range evs {
			ph.Events++
			if _, ok := rc.first[ev]; !ok {
				ph.Missing = append(ph.Missing, ev)
				continue
			}
			ph.Delivered++
			ph.Duplicates += rc.dups[ev]
			lats = append(lats, rc.lat[ev])
		}
		return nil
	})
	rc.mu.Lock()
	last := rc.last
	rc.mu.Unlock()
	ph.Seconds = last.Sub(first).Seconds()
	if ph.Seconds > 0 {
		ph.PerSecond = float64(ph.Delivered+ph.Duplicates) / ph.Seconds
	}
	sort.Strings(ph.Missing)
	ph.Latency = distOf(lats)
	return ph, tmp.Final.PerSecond, nil
}

// hasType: the receiver took the event of payment id's status (rc.mu held).
func (r *receiver) hasType(id string, st payment.Status) bool {
	want := finalEventType(st)
	for _, ev := range r.byObj[id] {
		if r.kinds[ev] == want {
			return true
		}
	}
	return false
}

// listEvents lists the ids of the events of one object, newest first.
func listEvents(ctx context.Context, hc *http.Client, t *target, objectID string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+"/v1/events?limit=100&object_id="+url.QueryEscape(objectID), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+t.key)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var page struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/events: %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return nil, err
	}
	ids := make([]string, len(page.Data))
	for i, d := range page.Data {
		ids[i] = d.ID
	}
	return ids, nil
}

// printWebhooks prints the -webhooks part of a report.
func printWebhooks(w io.Writer, r *Report) {
	h := r.Webhooks
	if h == nil {
		return
	}
	fmt.Fprintf(w, "\nwebhooks (an endpoint on * at a loopback receiver, every signature verified):\n")
	if h.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", h.Error)
		return
	}
	fmt.Fprintf(w, "  card payments completed/s: %.1f without webhooks, %.1f with (%.2f×), %d payments at -c %d each\n",
		h.CardPerSecondWithout, h.CardPerSecondWith, h.VsWithout, h.N, h.Concurrency)
	for _, p := range []struct {
		name string
		ph   webhookPhase
	}{{"at the maximum rate", h.MaxPhase}, {fmt.Sprintf("at half of it (%.1f payments/s open loop)", h.HalfRate), h.HalfPhase}} {
		fmt.Fprintf(w, "  %s: %d payments, %d events, %d delivered (%d duplicates, %d missing), %.1f deliveries/s; event→delivery p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
			p.name, p.ph.Payments, p.ph.Events, p.ph.Delivered, p.ph.Duplicates, len(p.ph.Missing), p.ph.PerSecond,
			p.ph.Latency.P50, p.ph.Latency.P99, p.ph.Latency.Max)
	}
	met := "MET"
	if !h.TargetMet {
		met = "MISSED"
	}
	fmt.Fprintf(w, "  target event→delivery p99 ≤ %.0f ms at half the maximum rate: %s; bad deliveries: %d\n", h.TargetP99Ms, met, len(h.BadDelivery))
}

// addWebhookCheck adds the -webhooks check to the report: every event of
// both phases delivered, no delivery refused by the receiver.
func addWebhookCheck(rep *Report, h *webhookReport) {
	c := check{Name: "webhooks", Result: "PASS"}
	missing := len(h.MaxPhase.Missing) + len(h.HalfPhase.Missing)
	events := h.MaxPhase.Events + h.HalfPhase.Events
	switch {
	case h.Error != "":
		c.Result, c.Detail = "FAIL", h.Error
	default:
		c.Detail = fmt.Sprintf("%d/%d events of the webhook phases delivered to the endpoint on *, %d bad deliveries",
			events-missing, events, len(h.BadDelivery))
		if missing > 0 || len(h.BadDelivery) > 0 || events == 0 {
			c.Result = "FAIL"
			if missing > 0 {
				c.Detail += "; missing e.g. " + examples(append(h.MaxPhase.Missing, h.HalfPhase.Missing...))
			}
		}
	}
	rep.Checks = append(rep.Checks, c)
	if c.Result == "FAIL" {
		rep.Pass = false
	}
}
