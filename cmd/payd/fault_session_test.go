package main

// Payment sessions (seed 003, issue 21) in the chaos load: the mixed run's
// clients also create sessions and submit them with the sandbox's
// documented session_data test values, as a merchant's server (or the
// hosted page) would, while every fault runs.
//
//	session_visa            submitted with sandbox:pm_card_visa: COMPLETED, one charge
//	session_flaky           sandbox:pm_card_flaky (two transient failures, then a charge): COMPLETED
//	session_timeout         sandbox:pm_card_timeout_after_charge (charged, answer lost): COMPLETED by inquiry, one charge
//	session_declined_retry  sandbox:pm_card_declined, then once the session is FAILED, a second submit with
//	                        sandbox:pm_card_visa (a new payment of the same session): COMPLETED, one charge
//	session_3ds_abandoned   sandbox:pm_card_3ds, the customer never completes the challenge; the session
//	                        expires (12 s) before the action does (18 s): EXPIRED, its payment voided, no charge kept
//	session_3ds_left        sandbox:pm_card_3ds, never completed; the action expires first (18 s): FAILED,
//	                        then the session expires (30 s): EXPIRED, no charge kept
//	session_3ds_late        sandbox:pm_card_3ds, the customer completes the challenge just as the session
//	                        expires (10 s), racing the expiry's void: COMPLETED keeping its one charge, or
//	                        EXPIRED keeping none (a charge that lands after the void is a late charge,
//	                        refunded: by the void, or by reconciliation while gateway_void_down holds)
//	session_3ds_cancel      sandbox:pm_card_3ds; while the challenge is pending the merchant cancels the
//	                        session (POST /v1/payment-sessions/{id}/cancel: 202, the payment voided): CANCELED
//	session_3ds_cancel_race the customer completes the challenge as the merchant cancels: COMPLETED keeping
//	                        its charge (the cancel refused 409), or CANCELED keeping none (a late charge refunded)
//	session_expire          created, never submitted; expires (20 s): EXPIRED, no payment
//
// The checker (checkSessions) reads every session and the payments tied to
// it (payments.session_id) on the same snapshot as the payments' checks:
// no session the client was told of is missing (lost), none keeps more than
// one charge of the sandbox ledger across its payments (double; a late
// charge refunded is not kept), a COMPLETED one keeps exactly one, of its
// amount and currency, on its latest payment, which SUCCEEDED; an EXPIRED
// or FAILED one keeps none; every session ends as its client's kind says
// (or degraded, when a gateway fault outlasted the retries: FAILED or
// EXPIRED with no charge kept, or PROCESSING while its payment is in
// review); and after the run no session is ACTIVE, PROCESSING or FAILED
// past its expires_on (stuck), waited for as payments are (I2's bound).
//
// Replays: every create is replayed after the run, after its expires_on for
// the short-lived ones, and must answer its stored 201 (without the secret,
// faultReplayable) — I5; and a submit retried under its Idempotency-Key
// after its first try got no answer must be answered with the payment that
// try recorded, never 422 payment_session_completed (both were found by
// this run and fixed in the core: docs/RELIABILITY.md).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/payment"
)

const (
	// chaosSessionShare is the share (in %) of the mixed load's clients
	// that are payment sessions.
	chaosSessionShare = 15
	// chaosSessionPatience bounds how long a session's client waits for
	// the session to reach the status it waits for, after its expiry for
	// those that expire (longer than a Redis freeze and its recovery).
	chaosSessionPatience = 90 * time.Second
	faultSessionsPath    = "/v1/payment-sessions"
	// chaosSessionLife is the expires_on of the sessions that must not
	// expire during the run: beyond the hour clock_jump puts intake's and
	// a worker's clock ahead (intake's clock decides whether a submit
	// comes too late, a worker's whether the expiry step is due).
	chaosSessionLife = 3 * time.Hour
)

// chaosSessionExpiry is each kind's expires_on, after creation; the
// others' is chaosSessionLife.
var chaosSessionExpiry = map[string]time.Duration{
	"session_3ds_abandoned": 12 * time.Second,
	"session_3ds_left":      30 * time.Second,
	"session_3ds_late":      10 * time.Second,
	"session_expire":        20 * time.Second,
}

// chaosSession makes session client i's create request: its kind from rng,
// in USD, JPY or BHD as the payments are; half of them settle one of the
// shared invoices of their currency (invoice_id: reserved at submit, paid
// when the payment succeeds, released when it fails), which I3 checks.
func chaosSession(rng *rand.Rand, key, currency string, minor int64, invoice string) *faultClientRecord {
	var kind string
	switch x := rng.IntN(100); {
	case x < 25:
		kind = "session_visa"
	case x < 33:
		kind = "session_flaky"
	case x < 45:
		kind = "session_timeout"
	case x < 60:
		kind = "session_declined_retry"
	case x < 68:
		kind = "session_3ds_abandoned"
	case x < 74:
		kind = "session_3ds_left"
	case x < 82:
		kind = "session_3ds_late"
	case x < 88:
		kind = "session_3ds_cancel"
	case x < 94:
		kind = "session_3ds_cancel_race"
	default:
		kind = "session_expire"
	}
	req := map[string]any{
		"amount": minor, "currency": currency, "reference": key,
		"billing":     map[string]any{"address": map[string]any{"country": "GB"}},
		"success_url": "https://merchant.example/chaos/success", "failure_url": "https://merchant.example/chaos/failure",
		"display_name": "chaos", "metadata": map[string]string{"fault_key": key},
	}
	if rng.IntN(2) == 0 {
		req["invoice_id"] = invoice
	}
	r := &faultClientRecord{path: faultSessionsPath, key: key, kind: kind, currency: currency, minor: minor, method: "SESSION"}
	d := chaosSessionExpiry[kind]
	if d == 0 {
		d = chaosSessionLife
	}
	r.prepare = func(r *faultClientRecord) {
		r.expires = time.Now().Add(d).UTC().Truncate(time.Second)
		req["expires_on"] = r.expires.Format(time.RFC3339)
		r.body, _ = json.Marshal(req)
	}
	return r
}

// sessionData is what a kind's first submit sends.
var chaosSessionData = map[string]string{
	"session_visa":            "sandbox:" + sandbox.CardVisa,
	"session_flaky":           "sandbox:" + sandbox.CardFlaky,
	"session_timeout":         "sandbox:" + sandbox.CardTimeoutAfterCharge,
	"session_declined_retry":  "sandbox:" + sandbox.CardDeclined,
	"session_3ds_abandoned":   "sandbox:" + sandbox.Card3DS,
	"session_3ds_left":        "sandbox:" + sandbox.Card3DS,
	"session_3ds_late":        "sandbox:" + sandbox.Card3DS,
	"session_3ds_cancel":      "sandbox:" + sandbox.Card3DS,
	"session_3ds_cancel_race": "sandbox:" + sandbox.Card3DS,
}

// chaosSessionWant is the session statuses each kind may end in when no
// gateway fault degraded it.
var chaosSessionWant = map[string][]string{
	"session_visa": {"COMPLETED"}, "session_flaky": {"COMPLETED"}, "session_timeout": {"COMPLETED"},
	"session_declined_retry": {"COMPLETED"}, "session_3ds_abandoned": {"EXPIRED"}, "session_3ds_left": {"EXPIRED"},
	"session_3ds_late": {"COMPLETED", "EXPIRED"}, "session_expire": {"EXPIRED"},
	"session_3ds_cancel": {"CANCELED"}, "session_3ds_cancel_race": {"COMPLETED", "CANCELED"},
}

// sessionClient is the customer (and merchant server) of one created
// session. It runs on its own goroutine and records what it did in
// p.actions; the load is drained only when it returns.
func (r *chaosRun) sessionClient(hc *http.Client, p *faultClientRecord) {
	var did []string
	defer func() {
		p.actions = strings.Join(did, "; ")
		r.sessions.count(p.kind + ": " + p.actions)
	}()
	var action string // the first submit's 202 action URL (3-D Secure)
	submit := func(n int, data string) (string, bool) {
		body, _ := json.Marshal(map[string]any{"session_data": data, "amount": p.minor})
		sub := &faultClientRecord{path: faultSessionsPath + "/" + p.id + "/submit", key: fmt.Sprintf("%s-submit-%d", p.key, n), body: body}
		r.c.create(hc, r.l, sub)
		if sub.id == "" {
			if sub.tries > 1 && strings.Contains(sub.lastErr, `"payment_session_completed"`) {
				// its first try recorded the payment, and the retry under
				// the same key must be answered with it
				r.c.chk.Errorf("sessions: submit %s of session %s retried under its Idempotency-Key after %d tries was answered %s, not its payment",
					sub.key, p.id, sub.tries, faultShortErr(sub.lastErr))
			}
			r.sessions.count("submits without an answer")
			return fmt.Sprintf("submit %s: no answer (%s)", strings.TrimPrefix(data, "sandbox:"), faultShortErr(sub.lastErr)), false
		}
		var v struct {
			Status string `json:"status"`
			Action struct {
				Type string `json:"type"`
				URL  string `json:"url"`
			} `json:"action"`
		}
		_ = json.Unmarshal(sub.resp, &v)
		if n == 1 && v.Action.Type == "redirect" {
			action = v.Action.URL
		}
		r.sessions.mu.Lock()
		r.sessions.payments[sub.id] = p.key
		r.sessions.mu.Unlock()
		return fmt.Sprintf("submit %s: %d %s", strings.TrimPrefix(data, "sandbox:"), sub.code, v.Status), true
	}
	if data := chaosSessionData[p.kind]; data != "" {
		what, ok := submit(1, data)
		did = append(did, what)
		if !ok {
			return
		}
	}
	switch p.kind {
	case "session_declined_retry":
		st := r.awaitSession(hc, p.id, time.Now().Add(chaosSessionPatience), "FAILED", "COMPLETED", "EXPIRED")
		did = append(did, "then "+st)
		if st != "FAILED" {
			return // a gateway fault, or the declined card was not declined: the checker judges it
		}
		what, _ := submit(2, "sandbox:"+sandbox.CardVisa)
		did = append(did, what)
	case "session_3ds_late":
		if action == "" {
			did = append(did, "no challenge")
			break
		}
		// the customer comes back just as the session expires
		faultSleepUntil(p.expires.Add(time.Duration(rand.IntN(400)-200) * time.Millisecond))
		charged, _ := r.complete(hc, path.Base(action))
		did = append(did, "completed the challenge at its expiry: "+charged)
		did = append(did, "then "+r.awaitSession(hc, p.id, p.expires.Add(chaosSessionPatience), "COMPLETED", "EXPIRED"))
		return
	case "session_3ds_cancel", "session_3ds_cancel_race":
		if action == "" {
			did = append(did, "no challenge")
			break
		}
		var charged, canceled string
		if p.kind == "session_3ds_cancel" {
			canceled = r.cancelSession(hc, p)
		} else {
			start := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); <-start; charged, _ = r.complete(hc, path.Base(action)) }()
			go func() { defer wg.Done(); <-start; canceled = r.cancelSession(hc, p) }()
			close(start)
			wg.Wait()
			did = append(did, "completed the challenge: "+charged)
		}
		did = append(did, "canceled: "+canceled)
	case "session_3ds_abandoned", "session_3ds_left", "session_expire":
		// the customer walks away; the client waits past the expiry so
		// that the run ends after it
		st := r.awaitSession(hc, p.id, p.expires.Add(chaosSessionPatience), "EXPIRED")
		did = append(did, "left; then "+st)
		return
	}
	did = append(did, "then "+r.awaitSession(hc, p.id, time.Now().Add(chaosSessionPatience), "COMPLETED", "FAILED", "EXPIRED", "CANCELED"))
}

// cancelSession cancels the session as its merchant would (POST
// /v1/payment-sessions/{id}/cancel with an Idempotency-Key), retrying what
// a client retries, and returns the status and, for a refusal, its code.
func (r *chaosRun) cancelSession(hc *http.Client, p *faultClientRecord) string {
	return r.cancelAt(hc, faultSessionsPath+"/"+p.id+"/cancel", p.key+"-cancel")
}

// cancelAt posts a cancel (a session's, a flow's) with its Idempotency-Key,
// retrying what a client retries, and returns the status and, for a
// refusal, its code.
func (r *chaosRun) cancelAt(hc *http.Client, path, key string) string {
	backoff := 50 * time.Millisecond
	last := ""
	for end := time.Now().Add(faultClientPatience); ; {
		code, body, hdr, err := r.c.post(hc, path, key, nil)
		wait := backoff
		if err == nil {
			last = fmt.Sprint(code)
			if c := faultShortErr(fmt.Sprintf("HTTP %d: %s", code, body)); code >= 400 {
				last = strings.TrimPrefix(c, "HTTP ")
			}
			inFlight := code == http.StatusConflict && bytes.Contains(body, []byte(`"idempotent_request_in_flight"`))
			if code < 500 && code != http.StatusTooManyRequests && !inFlight {
				return last
			}
			if d, ok := faultRetryAfter(hdr); ok {
				wait = min(d, 2*time.Second)
			}
		} else {
			last = "no answer: " + err.Error()
		}
		if time.Now().Add(wait).After(end) {
			return last
		}
		time.Sleep(wait)
		backoff = min(2*backoff, time.Second)
	}
}

// awaitSession polls GET /v1/payment-sessions/{id} until its status is one
// of want or the deadline passes, and returns the last status seen.
func (r *chaosRun) awaitSession(hc *http.Client, id string, deadline time.Time, want ...string) string {
	seen := "unread"
	wait := 200 * time.Millisecond
	for ; time.Now().Before(deadline); time.Sleep(wait) {
		wait = 250 * time.Millisecond
		req, _ := http.NewRequest(http.MethodGet, r.c.intakeURL+faultSessionsPath+"/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+r.c.apiKey)
		resp, err := hc.Do(req)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if d, ok := faultRetryAfter(resp.Header); ok && resp.StatusCode == http.StatusTooManyRequests {
			wait = min(max(d, wait), 2*time.Second)
			continue
		}
		var v struct {
			Status string `json:"status"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &v) != nil {
			continue
		}
		seen = v.Status
		if slices.Contains(want, v.Status) {
			return seen
		}
	}
	return seen + " at its deadline"
}

// chaosSessions is what the session clients did, and the payments their
// submits were answered with (payment id → session client key).
type chaosSessions struct {
	mu       sync.Mutex
	counts   map[string]int
	payments map[string]string
}

func newChaosSessions() *chaosSessions {
	return &chaosSessions{counts: map[string]int{}, payments: map[string]string{}}
}

func (s *chaosSessions) count(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[what]++
}

func (s *chaosSessions) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k, n := range s.counts {
		out = append(out, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// faultSessionFigures are the sessions' share of a run's figures.
type faultSessionFigures struct {
	sessions, lost, double, stuck, wrong, degraded, review int
	unanswered                                             int // ACTIVE, no payment ever recorded: no submit of its client got through
	clockRefused                                           int // creates refused while intake's clock ran an hour ahead
	payments, charged, lateRefunded                        int // payments tied to sessions; sessions keeping a charge; late charges refunded
	statuses                                               map[string]int
}

func (f faultSessionFigures) String() string {
	if f.sessions == 0 {
		return "none"
	}
	return fmt.Sprintf("%d sessions (%d payments), lost %d, double-charged %d, stuck past expiry %d, wrong outcome %d, "+
		"degraded %d, never submitted through faults %d, payment in review %d, keeping a charge %d, late charges refunded %d, "+
		"creates refused under intake's clock an hour ahead %d; statuses %v",
		f.sessions, f.payments, f.lost, f.double, f.stuck, f.wrong, f.degraded, f.unanswered, f.review, f.charged, f.lateRefunded,
		f.clockRefused, f.statuses)
}

// faultSessionOpenSQL selects sessions left open past their expiry: ACTIVE,
// PROCESSING (unless their payment waits in review, which only an operator
// or a slow inquiry ends) or FAILED (a FAILED session still takes a retry
// until it expires, then expires).
const faultSessionOpenSQL = `SELECT s.id || ' ' || s.status || ' expires_on ' || s.expires_on || ' payment ' || COALESCE(s.payment_id, '-') ||
		' ' || COALESCE(p.status, '-')
	FROM payment_sessions s LEFT JOIN payments p ON p.id = s.payment_id
	WHERE s.status IN ('ACTIVE', 'PROCESSING', 'FAILED') AND s.expires_on < now() - interval '2 seconds'
		AND NOT (s.status = 'PROCESSING' AND p.status = 'REQUIRES_REVIEW')`

// waitSessions polls until no session is open past its expiry, or the
// deadline.
func (c *faultCluster) waitSessions(deadline time.Time) bool {
	for {
		var open int
		if err := c.db.QueryRow(`SELECT count(*) FROM (` + faultSessionOpenSQL + `) o`).Scan(&open); err != nil {
			c.chk.Fatalf("count open sessions: %v", err)
		}
		if open == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkSessions checks the sessions of the load (l) on the snapshot q and
// the gateway's ledger; lateRefund holds the late-charge refunds by
// payment|charge reference.
func checkSessions(t faultT, q faultQuerier, ledger []sandbox.Charge, l *faultLoad, lateRefund map[string]string) faultSessionFigures {
	t.Helper()
	f := faultSessionFigures{statuses: map[string]int{}}
	type sess struct {
		id, status, paymentID string
		amount                int64
		currency              string
		expires               time.Time
	}
	sessions := map[string]*sess{}
	rows, err := q.Query(`SELECT id, status, COALESCE(payment_id, ''), amount, currency, expires_on FROM payment_sessions`)
	if err != nil {
		t.Fatalf("load sessions: %v", err)
	}
	for rows.Next() {
		s := &sess{}
		if err := rows.Scan(&s.id, &s.status, &s.paymentID, &s.amount, &s.currency, &s.expires); err != nil {
			t.Fatalf("scan session: %v", err)
		}
		sessions[s.id] = s
	}
	rows.Close()
	type pay struct{ id, status string }
	paysOf := map[string][]pay{}
	status := map[string]string{}
	rows, err = q.Query(`SELECT id, session_id, status FROM payments WHERE session_id IS NOT NULL ORDER BY created_at, id`)
	if err != nil {
		t.Fatalf("load session payments: %v", err)
	}
	for rows.Next() {
		var p pay
		var sid string
		if err := rows.Scan(&p.id, &sid, &p.status); err != nil {
			t.Fatalf("scan session payment: %v", err)
		}
		paysOf[sid] = append(paysOf[sid], p)
		status[p.id] = p.status
		f.payments++
	}
	rows.Close()
	charges := map[string][]sandbox.Charge{}
	for _, ch := range ledger {
		charges[ch.PaymentID] = append(charges[ch.PaymentID], ch)
	}

	var lost, double, wrong, open []string
	told := map[string]bool{}
	for _, r := range l.recs {
		if r.path == faultSessionsPath && r.clockRefused {
			f.clockRefused++
		}
		if r.path != faultSessionsPath || r.id == "" {
			continue
		}
		told[r.id] = true
		f.sessions++
		s := sessions[r.id]
		if s == nil {
			lost = append(lost, fmt.Sprintf("key %s got %d with session %s, which does not exist", r.key, r.code, r.id))
			continue
		}
		f.statuses[s.status]++
		// the charges the session keeps, over all its payments: a late
		// charge refunded is given back
		var kept []sandbox.Charge
		for _, p := range paysOf[s.id] {
			for _, ch := range charges[p.id] {
				if lateRefund[p.id+"|"+ch.Reference] == string(payment.RefundSucceeded) {
					f.lateRefunded++
					continue
				}
				kept = append(kept, ch)
			}
		}
		if len(kept) > 0 {
			f.charged++
		}
		if len(kept) > 1 {
			f.double++
			double = append(double, fmt.Sprintf("session %s (%s) keeps %d charges: %+v", s.id, r.kind, len(kept), kept))
			continue
		}
		latest := status[s.paymentID]
		ok := false
		switch s.status {
		case "COMPLETED":
			ok = len(kept) == 1 && kept[0].PaymentID == s.paymentID && latest == "SUCCEEDED" &&
				kept[0].Amount == s.amount && kept[0].Currency == s.currency
		case "EXPIRED", "FAILED", "CANCELED":
			ok = len(kept) == 0
		case "PROCESSING":
			ok = latest == "REQUIRES_REVIEW" && len(kept) <= 1
		}
		want := chaosSessionWant[r.kind]
		isOpen := s.status == "ACTIVE" || s.status == "PROCESSING" || s.status == "FAILED"
		switch {
		case isOpen && s.expires.Before(time.Now()) && !(s.status == "PROCESSING" && latest == "REQUIRES_REVIEW"):
			// left open past its expiry: reported as stuck (faultSessionOpenSQL)
		case s.status == "ACTIVE" && len(paysOf[s.id]) == 0 && len(kept) == 0:
			// no submit was ever recorded (its client's every try went
			// unanswered or was told another was in flight, through the
			// faults): nothing was charged and the customer may still pay
			f.unanswered++
		case !ok:
			wrong = append(wrong, fmt.Sprintf("session %s (%s) is %s keeping %d charges; latest payment %s %s; payments %+v; the client %s",
				s.id, r.kind, s.status, len(kept), s.paymentID, latest, paysOf[s.id], r.actions))
		case slices.Contains(want, s.status):
		case s.status == "PROCESSING":
			f.review++
		case l.spec.degradedOK && (s.status == "FAILED" || s.status == "EXPIRED" && slices.Contains(want, "COMPLETED")):
			f.degraded++ // a gateway fault outlasted the retries: no charge kept, checked above
		case slices.Contains(want, "EXPIRED") && s.status == "FAILED" && s.expires.After(time.Now()):
			// not expired yet (a fault delayed it): its expiry is checked as stuck
		default:
			wrong = append(wrong, fmt.Sprintf("session %s (%s) ended %s, want %s; the client %s", s.id, r.kind, s.status,
				strings.Join(want, " or "), r.actions))
		}
	}
	for id, s := range sessions {
		if !told[id] {
			// created, the client never told (intake killed before it
			// answered): its key still names it; it must not hold money
			for _, p := range paysOf[id] {
				if len(charges[p.id]) > 0 {
					wrong = append(wrong, fmt.Sprintf("session %s no client was told of has a charged payment %s", id, p.id))
				}
			}
			f.statuses[s.status+" (unacknowledged)"]++
		}
	}
	orows, err := q.Query(faultSessionOpenSQL)
	if err != nil {
		t.Fatalf("load open sessions: %v", err)
	}
	for orows.Next() {
		var s string
		_ = orows.Scan(&s)
		open = append(open, s)
	}
	orows.Close()
	f.stuck, f.lost, f.wrong = len(open), len(lost), len(wrong)
	reportViolations(t, "sessions: session the client was told of missing", lost)
	reportViolations(t, "sessions: a session keeps more than one charge", double)
	reportViolations(t, "sessions: outcome", wrong)
	reportViolations(t, "sessions: open past its expiry", open)
	return f
}

// faultReplayable is the answer a replay of r's request must repeat byte
// for byte: the first answer, but for a session's create, whose
// payment_session_secret is shown once and kept only as a hash, without it
// (and without the #secret fragment of its hosted page's link).
func faultReplayable(r *faultClientRecord) []byte {
	if r.path != faultSessionsPath {
		return r.resp
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(r.resp, &m) != nil {
		return r.resp
	}
	if _, ok := m["payment_session_secret"]; !ok {
		return r.resp
	}
	// the secret is the last field but one or so: cut it out of the bytes,
	// keeping the rest exactly as answered
	i := bytes.Index(r.resp, []byte(`"payment_session_secret":`))
	if i < 0 {
		return r.resp
	}
	j := i + len(`"payment_session_secret":`) + len(m["payment_session_secret"])
	out := append([]byte{}, r.resp[:i]...)
	switch {
	case j < len(r.resp) && r.resp[j] == ',':
		out = append(out, r.resp[j+1:]...)
	case i > 0 && out[len(out)-1] == ',':
		out = append(out[:len(out)-1], r.resp[j:]...)
	default:
		out = append(out, r.resp[j:]...)
	}
	// the hosted page's link carries the secret in its fragment, in the
	// first answer only
	var secret string
	if json.Unmarshal(m["payment_session_secret"], &secret) == nil && secret != "" {
		out = bytes.ReplaceAll(out, []byte("#"+secret), nil)
	}
	return out
}

// faultShortErr is a client's last error in a few words: the HTTP status
// and the error code of a seed-003 error body.
func faultShortErr(s string) string {
	var code int
	var body string
	if _, err := fmt.Sscanf(s, "HTTP %d:", &code); err != nil {
		return strings.TrimSpace(s)
	}
	if i := strings.Index(s, "{"); i >= 0 {
		body = s[i:]
	}
	var e struct {
		Codes []string `json:"error_codes"`
	}
	if json.Unmarshal([]byte(body), &e) == nil && len(e.Codes) > 0 {
		return fmt.Sprintf("HTTP %d %s", code, strings.Join(e.Codes, ","))
	}
	return fmt.Sprintf("HTTP %d", code)
}

// TestFaultCheckerCatchesSessions proves checkSessions can fail: on a real
// cluster, sessions paid and expired through the API pass it; then a
// ledger with a second charge for a completed session's payment, a session
// turned EXPIRED while it keeps its charge, one turned ACTIVE past its
// expiry, and a client told of a session that does not exist must each be
// found, under its own heading, and nothing else.
func TestFaultCheckerCatchesSessions(t *testing.T) {
	bin := buildFaultPayd(t)
	c := startFaultCluster(t, bin)
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	l := &faultLoad{statusCounts: map[int]int{}}
	session := func(key string, life time.Duration, data string) *faultClientRecord {
		t.Helper()
		r := &faultClientRecord{path: faultSessionsPath, key: key, kind: "session_visa", currency: "USD", minor: 1250,
			expires: time.Now().Add(life).UTC().Truncate(time.Second)}
		r.body, _ = json.Marshal(map[string]any{"amount": 1250, "currency": "USD", "expires_on": r.expires.Format(time.RFC3339),
			"billing": map[string]any{"address": map[string]any{"country": "GB"}}, "success_url": "https://merchant.example/ok",
			"failure_url": "https://merchant.example/ko"})
		c.create(hc, l, r)
		if r.id == "" {
			t.Fatalf("create session %s: %s", key, r.lastErr)
		}
		if data != "" {
			body, _ := json.Marshal(map[string]any{"session_data": data, "amount": 1250})
			sub := &faultClientRecord{path: faultSessionsPath + "/" + r.id + "/submit", key: key + "-submit", body: body}
			c.create(hc, l, sub)
			if sub.id == "" {
				t.Fatalf("submit session %s: %s", key, sub.lastErr)
			}
		} else {
			r.kind = "session_expire"
		}
		l.recs = append(l.recs, r)
		return r
	}
	paid := session("neg-paid", time.Hour, "sandbox:"+sandbox.CardVisa)
	turned := session("neg-turned", time.Hour, "sandbox:"+sandbox.CardVisa)
	left := session("neg-left", 2*time.Second, "")
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var done int
		if err := c.db.QueryRow(`SELECT count(*) FROM payment_sessions WHERE (id IN ($1, $2) AND status = 'COMPLETED')
			OR (id = $3 AND status = 'EXPIRED')`, paid.id, turned.id, left.id).Scan(&done); err != nil {
			t.Fatal(err)
		}
		if done == 3 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("sessions not COMPLETED, COMPLETED, EXPIRED after 30 s (%d of 3)", done)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ledger, err := sandbox.NewClient(c.sandboxURL, nil).(*sandbox.Client).Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ok := &faultRecorder{t: t}
	if f := checkSessions(ok, c.db, ledger, l, nil); len(ok.findings) > 0 || f.sessions != 3 || f.charged != 2 {
		t.Fatalf("the sessions as payd left them: figures %s, findings %q; want 3 sessions, 2 keeping a charge, no finding", f, ok.findings)
	}

	// now break each property
	var paidPayment string
	if err := c.db.QueryRow(`SELECT payment_id FROM payment_sessions WHERE id = $1`, paid.id).Scan(&paidPayment); err != nil {
		t.Fatal(err)
	}
	var again sandbox.Charge
	for _, ch := range ledger {
		if ch.PaymentID == paidPayment {
			again = ch
		}
	}
	again.Reference += "-again"
	broken := append(append([]sandbox.Charge{}, ledger...), again)
	for _, q := range []string{
		`UPDATE payment_sessions SET status = 'EXPIRED', next_at = NULL WHERE id = '` + turned.id + `'`,
		`UPDATE payment_sessions SET status = 'ACTIVE', next_at = NULL, expires_on = now() - interval '1 minute' WHERE id = '` + left.id + `'`,
	} {
		if _, err := c.db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	l.recs = append(l.recs, &faultClientRecord{path: faultSessionsPath, key: "neg-lost", kind: "session_visa", id: "ps_0000000000000000000000000000000", code: 201})
	rec := &faultRecorder{t: t}
	f := checkSessions(rec, c.db, broken, l, nil)
	for _, want := range []string{
		"sessions: session the client was told of missing: 1 violation",
		"sessions: a session keeps more than one charge: 1 violation",
		"sessions: outcome: 1 violation",
		"sessions: open past its expiry: 1 violation",
	} {
		if !rec.found(want) {
			t.Errorf("checkSessions missed %q; findings:\n%s", want, strings.Join(rec.findings, "\n"))
		}
	}
	if len(rec.findings) != 4 || f.lost != 1 || f.double != 1 || f.wrong != 1 || f.stuck != 1 {
		t.Errorf("figures %s, %d findings; want lost, double-charged, wrong outcome and stuck 1 each, 4 findings:\n%s",
			f, len(rec.findings), strings.Join(rec.findings, "\n"))
	}
}
