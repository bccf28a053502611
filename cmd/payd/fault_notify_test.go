package main

// Gateway notifications in the process fault harness. With faultOpts.notify
// the sandbox signs its notifications with the cluster's secret and posts
// them to the cluster's intake (POST /v1/gateway/notifications), delivered
// as faultNotifyEnv says. A chaos run starts with them dropped (so that the
// worker-kill windows are not resolved by notifications, which would blur
// which worker an attempt belonged to); the gateway_notifications fault
// turns them on — first as the environment configured them, then harsher,
// set at run time through the sandbox's PUT /faults — posts forged,
// tampered, replayed and lying notifications of its own, and drops them
// again. checkNotifications then requires that notifications were received
// and acted on, each recorded once however often it was delivered, and that
// no forgery was recorded or changed anything.

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/connector/sandbox"
)

// faultNotifyEnv is the notification delivery the sandbox is started with
// (PAYD_SANDBOX_NOTIFY_*): every notification three times, shuffled within
// batches gathered for 150 ms and held 200 ms more.
var faultNotifyEnv = []string{"PAYD_SANDBOX_NOTIFY_COPIES=3", "PAYD_SANDBOX_NOTIFY_ORDER=shuffled",
	"PAYD_SANDBOX_NOTIFY_DELAY=200ms", "PAYD_SANDBOX_NOTIFY_BATCH=150ms"}

// chaosNotifyHarsh is the delivery the fault switches to at run time: five
// copies, newest first (a return before its settlement), batches of 500 ms
// delivered a second late.
var chaosNotifyHarsh = sandbox.NotifyFaults{Copies: 5, Order: sandbox.NotifyReversed, Delay: time.Second, Batch: 500 * time.Millisecond}

// chaosNotifyPhase is how long each delivery lasts.
const chaosNotifyPhase = 3 * time.Second

// chaosForged is what the fault's own notifications were and got.
type chaosForged struct {
	target  string            // the payment they name
	before  chaosPaymentState // its state when they were posted
	ids     []string          // ids of the refused ones: none may be recorded
	results map[string]string // case → "401 code" as answered
	bad     []string          // wrong answers
	lieID   string            // the correctly signed lie, when accepted
	lie     string            // its answer
	skipped string            // why nothing was forged, if nothing was
}

// chaosPaymentState is what a notification must not change.
type chaosPaymentState struct {
	Status            string
	StepSeq, Attempts int
	Events, Refunded  int64
}

func chaosGatewayNotifications(r *chaosRun) {
	r.setNotify(r.nfEnv)
	time.Sleep(chaosNotifyPhase)
	r.setNotify(chaosNotifyHarsh)
	harsh := time.Now()
	forged := r.postForged()
	faultSleepUntil(harsh.Add(chaosNotifyPhase))
	r.setNotify(sandbox.NotifyFaults{Drop: true})
	// batches gathered or held before the drop are still delivered, and the
	// sandbox retries a refused delivery for about 1.5 s
	time.Sleep(chaosNotifyHarsh.Batch + chaosNotifyHarsh.Delay + 2*time.Second)
	r.mu.Lock()
	r.forged = forged
	r.mu.Unlock()
	r.note("gateway_notifications", "notifications on for %s as configured (%s), then %s ×%d %s, batches of %s held %s more; "+
		"%d forged/tampered/replayed posted; then dropped", chaosNotifyPhase, strings.Join(faultNotifyEnv, " "), chaosNotifyPhase,
		chaosNotifyHarsh.Copies, chaosNotifyHarsh.Order, chaosNotifyHarsh.Batch, chaosNotifyHarsh.Delay, len(forged.results))
}

// setNotify changes how the sandbox delivers notifications, keeping the
// gateway faults as they are.
func (r *chaosRun) setNotify(n sandbox.NotifyFaults) {
	r.t.Helper()
	r.fmu.Lock()
	defer r.fmu.Unlock()
	r.nf = n
	r.putFaultsLocked()
}

// readNotifyEnv reads the delivery the sandbox was started with.
func (r *chaosRun) readNotifyEnv() sandbox.NotifyFaults {
	r.t.Helper()
	resp, err := http.Get(r.c.sandboxURL + "/faults")
	if err != nil {
		r.t.Fatalf("GET sandbox /faults: %v", err)
	}
	defer resp.Body.Close()
	var f sandbox.Faults
	if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
		r.t.Fatalf("GET sandbox /faults: %v", err)
	}
	return f.Notify
}

// postForged posts notifications about a payment that failed (a declined
// card: final, never charged, never refunded) that intake must refuse with
// 401 — unsigned, a malformed signature, the wrong secret, a body changed
// after signing, a replay 70 minutes old, a timestamp 70 minutes ahead —
// and one correctly signed lie (charge.succeeded), which is accepted (202:
// the sender is the gateway) and, being only a hint, changes nothing.
func (r *chaosRun) postForged() chaosForged {
	f := chaosForged{results: map[string]string{}}
	var key, ref string
	for end := time.Now().Add(15 * time.Second); f.target == "" && time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		err := r.c.db.QueryRow(`SELECT p.id, p.id || ':' || p.attempt_count, COALESCE(a.gateway_reference, '')
			FROM payments p JOIN payment_attempts a ON a.payment_id = p.id AND a.attempt_number = p.attempt_count
			WHERE p.status = 'FAILED' AND p.payment_method_id = $1 AND p.next_step IS NULL ORDER BY p.id LIMIT 1`,
			sandbox.CardDeclined).Scan(&f.target, &key, &ref)
		if err != nil && err != sql.ErrNoRows {
			r.t.Logf("forged notifications: pick a target: %v", err)
		}
	}
	if f.target == "" {
		f.skipped = "no declined payment was final within 15 s"
		return f
	}
	f.before = r.paymentState(f.target)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	secret := []byte(r.c.notifySecret)
	body := func(id, typ string) []byte {
		b, _ := json.Marshal(connector.Notification{ID: id, Type: typ, IdempotencyKey: key, GatewayReference: ref,
			OccurredAt: time.Now().UTC()})
		return b
	}
	now := time.Now()
	type forgery struct {
		name, id, header string
		body             []byte
		code             string
	}
	var cases []forgery
	add := func(name, code string, sign func(id string, b []byte) (string, []byte)) {
		id := "evt_forged_" + strings.ReplaceAll(name, " ", "_") + "_" + run
		hdr, b := sign(id, body(id, connector.NotifyChargeSucceeded))
		cases = append(cases, forgery{name: name, id: id, header: hdr, body: b, code: code})
	}
	add("unsigned", "signature_missing", func(_ string, b []byte) (string, []byte) { return "", b })
	add("malformed signature", "signature_missing", func(_ string, b []byte) (string, []byte) { return "t=soon,v1=zz", b })
	add("wrong secret", "signature_invalid", func(_ string, b []byte) (string, []byte) {
		return connector.SignNotification([]byte("whsec_not_the_gateways"), now, b), b
	})
	add("tampered", "signature_invalid", func(id string, b []byte) (string, []byte) {
		// signed as charge.failed, delivered as charge.succeeded
		return connector.SignNotification(secret, now, body(id, connector.NotifyChargeFailed)), b
	})
	add("replayed 70 min later", "signature_expired", func(_ string, b []byte) (string, []byte) {
		return connector.SignNotification(secret, now.Add(-70*time.Minute), b), b
	})
	add("70 min ahead", "signature_expired", func(_ string, b []byte) (string, []byte) {
		return connector.SignNotification(secret, now.Add(70*time.Minute), b), b
	})
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	for _, fc := range cases {
		f.ids = append(f.ids, fc.id)
		code, errCode := r.postNotification(hc, fc.header, fc.body, false)
		f.results[fc.name] = fmt.Sprintf("%d %s", code, errCode)
		if code != http.StatusUnauthorized || errCode != fc.code {
			f.bad = append(f.bad, fmt.Sprintf("%s notification answered %d %s, want 401 %s", fc.name, code, errCode, fc.code))
		}
	}
	lie := "evt_lie_" + run
	b := body(lie, connector.NotifyChargeSucceeded)
	code, errCode := r.postNotification(hc, connector.SignNotification(secret, time.Now(), b), b, true)
	f.lie = fmt.Sprintf("%d %s", code, errCode)
	if code == http.StatusAccepted {
		f.lieID = lie
	} else {
		f.bad = append(f.bad, fmt.Sprintf("signed charge.succeeded about %s answered %d %s, want 202", f.target, code, errCode))
	}
	return f
}

// postNotification posts one notification as the gateway would, retrying
// what a gateway retries (no answer, 5xx, 429) and, when the signature is
// good, a 401 signature_expired (an intake whose clock was jumped), for up
// to 30 s. It returns the status and the first error code.
func (r *chaosRun) postNotification(hc *http.Client, header string, body []byte, signed bool) (int, string) {
	var code int
	var errCode string
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodPost, r.c.intakeURL+"/v1/gateway/notifications", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if header != "" {
			req.Header.Set(connector.NotificationSignatureHeader, header)
		}
		resp, err := hc.Do(req)
		code, errCode = 0, ""
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code = resp.StatusCode
			var e struct {
				Codes []string `json:"error_codes"`
			}
			if json.Unmarshal(b, &e) == nil && len(e.Codes) > 0 {
				errCode = e.Codes[0]
			}
		}
		retry := err != nil || code >= 500 || code == http.StatusTooManyRequests ||
			(signed && code == http.StatusUnauthorized && errCode == "signature_expired")
		if !retry || time.Now().After(end) {
			return code, errCode
		}
	}
}

func (r *chaosRun) paymentState(id string) chaosPaymentState {
	var s chaosPaymentState
	err := r.c.db.QueryRow(`SELECT status, step_seq, attempt_count,
			(SELECT count(*) FROM payment_events e WHERE e.payment_id = p.id), refunded_amount
		FROM payments p WHERE id = $1`, id).Scan(&s.Status, &s.StepSeq, &s.Attempts, &s.Events, &s.Refunded)
	if err != nil {
		r.t.Errorf("state of %s: %v", id, err)
	}
	return s
}

// chaosNotifications is what checkNotifications counted.
type chaosNotifications struct {
	rows, deliveries, duplicated, unprocessed int
	outcomes                                  map[string]int
}

// checkNotifications runs after the payments are final: notifications were
// received, each is one row however often it was delivered, each was acted
// on (processed, matched to its payment) — if Redis lost its task, the
// sweeper enqueued it again — and the fault's forgeries were refused and
// changed nothing.
func (r *chaosRun) checkNotifications() chaosNotifications {
	c := r.c
	t := c.chk
	n := chaosNotifications{outcomes: map[string]int{}}
	// deliveries still arrive for a few seconds; wait until every row is
	// processed (one whose task went with Redis waits for the sweeper)
	var last [2]int
	stable := time.Now()
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		var rows, open int
		if err := c.db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE processed_at IS NULL) FROM gateway_notifications`).
			Scan(&rows, &open); err != nil {
			t.Fatalf("count notifications: %v", err)
		}
		if [2]int{rows, open} != last {
			last, stable = [2]int{rows, open}, time.Now()
		}
		if (open == 0 && time.Since(stable) > time.Second) || time.Since(start) > c.finalBound {
			break
		}
	}
	rows, err := c.db.Query(`SELECT g.notification_id, g.type, g.deliveries, g.processed_at IS NOT NULL, g.outcome,
			COALESCE(g.payment_id, ''), COALESCE(p.id, ''), g.idempotency_key
		FROM gateway_notifications g LEFT JOIN payments p ON p.id = g.payment_id`)
	if err != nil {
		t.Fatalf("load notifications: %v", err)
	}
	var unmatched, open []string
	recorded := map[string]bool{}
	for rows.Next() {
		var id, typ, outcome, pid, found, key string
		var deliveries int
		var processed bool
		if err := rows.Scan(&id, &typ, &deliveries, &processed, &outcome, &pid, &found, &key); err != nil {
			t.Fatalf("scan notification: %v", err)
		}
		recorded[id] = true
		n.rows++
		n.deliveries += deliveries
		if deliveries > 1 {
			n.duplicated++
		}
		switch {
		case !processed:
			n.unprocessed++
			open = append(open, fmt.Sprintf("%s %s about %s, delivered %d times, never acted on", id, typ, key, deliveries))
		case outcome == "unknown_payment" || pid == "" || found == "":
			// the sandbox notifies only about charges payd asked for
			unmatched = append(unmatched, fmt.Sprintf("%s %s about %s: outcome %s, payment %q", id, typ, key, outcome, pid))
		}
		if processed {
			n.outcomes[outcome]++
		}
	}
	rows.Close()
	switch {
	case n.rows == 0:
		t.Errorf("gateway notifications: none received")
	case n.duplicated == 0:
		t.Errorf("gateway notifications: %d received, none delivered more than once (copies were on)", n.rows)
	case n.outcomes["checked"] == 0:
		t.Errorf("gateway notifications: %d received, none made payd ask the gateway (outcomes %v)", n.rows, n.outcomes)
	}
	if n.deliveries <= n.rows {
		t.Errorf("gateway notifications: %d rows for %d deliveries: duplicates were not recorded once", n.rows, n.deliveries)
	}
	reportViolations(t, "gateway notification not matched to its payment", unmatched)
	reportViolations(t, "gateway notification never acted on", open)

	r.mu.Lock()
	f := r.forged
	r.mu.Unlock()
	if f.skipped != "" {
		t.Errorf("forged notifications: %s", f.skipped)
		return n
	}
	reportViolations(t, "forged notification answered", f.bad)
	var kept []string
	for _, id := range f.ids {
		if recorded[id] {
			kept = append(kept, id+" was refused, yet recorded")
		}
	}
	reportViolations(t, "forged notification recorded", kept)
	if f.lieID != "" {
		var outcome sql.NullString
		_ = c.db.QueryRow(`SELECT outcome FROM gateway_notifications WHERE notification_id = $1 AND processed_at IS NOT NULL`, f.lieID).Scan(&outcome)
		switch {
		case outcome.Valid && outcome.String != "nothing_due" && outcome.String != "other_attempt":
			t.Errorf("the signed lie about %s (FAILED) was acted on: outcome %s", f.target, outcome.String)
		case !outcome.Valid:
			t.Errorf("the signed lie about %s was never processed", f.target)
		}
	}
	if after := r.paymentState(f.target); after != f.before {
		t.Errorf("forged notifications changed %s: %+v, before %+v", f.target, after, f.before)
	}
	return n
}

// notifyFigures is the table's line about notifications.
func (n chaosNotifications) String(f chaosForged) string {
	var oc []string
	for k, v := range n.outcomes {
		oc = append(oc, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(oc)
	forged := f.skipped
	if forged == "" {
		var rs []string
		for k, v := range f.results {
			rs = append(rs, k+" "+v)
		}
		sort.Strings(rs)
		forged = fmt.Sprintf("about %s: %s; signed lie %s", f.target, strings.Join(rs, ", "), f.lie)
	}
	return fmt.Sprintf("gateway notifications %d recorded from %d deliveries (%d delivered more than once), %d never acted on, outcomes {%s}; forged %s",
		n.rows, n.deliveries, n.duplicated, n.unprocessed, strings.Join(oc, ", "), forged)
}
