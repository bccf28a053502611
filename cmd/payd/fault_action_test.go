package main

// 3-D Secure payments and pm_card_unknown in the chaos load.
//
// Each pm_card_3ds payment of the mix has a customer and a merchant who act
// on it once it is accepted, each on its own goroutine, as real ones would:
//
//	3ds_complete  the customer completes the challenge (POST /challenge/{ref}?result=succeed on the sandbox)
//	3ds_cancel    the merchant cancels while the challenge is pending (POST /v1/payments/{id}/cancel: 202, voided, CANCELED)
//	3ds_race      both at the same moment: the cancel's void races the charge
//	3ds_expire    nobody acts: the action expires (ActionTimeout, 900 retry units: 18 s here), is voided, FAILED
//
// What each was answered decides the statuses its payment may end in
// (faultClientRecord.want), which the checker then requires; the money of
// a challenge completed as the cancel voided it must come back as a late
// charge refunded (I1, I8).
//
// Two mixed-run faults act on them: gateway_void_down (every void refused
// before processing for longer than a void's retry schedule, so cancels and
// expiries close their payments with the attempt UNKNOWN, and a challenge
// completed meanwhile is a late charge that a notification or
// reconciliation finds) and gateway_answer_unknown (the sandbox answers
// about pm_card_unknown keys for a while: those inquired then succeed, the
// others go to review, which the final reconciliation resolves from the
// gateway's ledger).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/payment"
)

const (
	// chaosActionTimeout is the policy's ActionTimeout at the harness's
	// PAYD_RETRY_UNIT (20 ms): 900 units.
	chaosActionTimeout = 900 * 20 * time.Millisecond
	// chaosChallengePatience bounds how long a client waits for its
	// payment's challenge (longer than a Redis freeze and its recovery).
	chaosChallengePatience = 90 * time.Second
	chaosVoidDownFor       = 40 * time.Second
	chaosAnswerUnknownFor  = 10 * time.Second
)

// chaosActions counts what the 3-D Secure clients did and were answered.
type chaosActions struct {
	mu     sync.Mutex
	counts map[string]int
	wg     sync.WaitGroup
}

func (a *chaosActions) count(what string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.counts == nil {
		a.counts = map[string]int{}
	}
	a.counts[what]++
}

func (a *chaosActions) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for k, n := range a.counts {
		out = append(out, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// act is the customer and the merchant of one accepted 3-D Secure payment.
// It runs on its own goroutine and sets p.want and p.actions before the
// load is drained.
func (r *chaosRun) act(hc *http.Client, p *faultClientRecord) {
	defer func() {
		if r.degradedOK && len(p.want) > 0 {
			// the gateway's faults may have sent its first attempt to review
			p.want = append(p.want, "REQUIRES_REVIEW")
		}
	}()
	if p.kind == "3ds_expire" {
		p.want, p.actions = []string{"FAILED"}, "left the challenge to expire"
		r.actions.count(p.kind + ": left to expire")
		return
	}
	ref, seen := r.awaitChallenge(hc, p.id)
	if ref == "" {
		// the payment ended (or stalled) before it asked for the challenge:
		// a gateway fault outlasted the retries or the inquiries
		p.actions = "saw no challenge (" + seen + ")"
		r.actions.count(p.kind + ": no challenge (" + seen + ")")
		return
	}
	var charged, cancel string
	var completedAt time.Time
	switch p.kind {
	case "3ds_complete":
		charged, completedAt = r.complete(hc, ref)
	case "3ds_cancel":
		cancel = r.cancel(hc, p)
	case "3ds_race":
		// the customer's answer and the merchant's cancel, at one moment
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); <-start; charged, completedAt = r.complete(hc, ref) }()
		go func() { defer wg.Done(); <-start; cancel = r.cancel(hc, p) }()
		close(start)
		wg.Wait()
	}
	var did []string
	if charged != "" {
		did = append(did, "completed the challenge: "+charged)
	}
	if cancel != "" {
		did = append(did, "canceled: "+cancel)
	}
	p.actions = strings.Join(did, "; ")
	r.actions.count(p.kind + ": " + p.actions)

	// what may follow from those answers
	accepted := cancel == "200" || cancel == "202"
	// a challenge completed can be outlived by its action's expiry only if
	// it was completed after the action could have expired, or if the
	// gateway did not answer the void for its whole schedule
	lateOK := r.degradedOK || completedAt.Sub(p.first) >= chaosActionTimeout
	switch {
	case accepted:
		p.want = []string{"CANCELED"} // charged or not: a charge must be refunded (I1, I8)
	case charged == "charged":
		p.want = []string{"SUCCEEDED"}
		if lateOK {
			p.want = append(p.want, "FAILED") // expired, voided without an answer, the charge refunded
		}
	case charged == "challenge_canceled" || strings.HasPrefix(cancel, "409 payment_not_cancelable"):
		p.want = []string{"FAILED"} // voided at its expiry before the client acted
	}
}

// awaitChallenge polls the payment until it asks for its challenge and
// returns the challenge's reference, or "" and what it saw instead.
func (r *chaosRun) awaitChallenge(hc *http.Client, id string) (string, string) {
	seen := "nothing"
	wait := 100 * time.Millisecond
	for end := time.Now().Add(chaosChallengePatience); time.Now().Before(end); time.Sleep(wait) {
		wait = 150 * time.Millisecond
		req, _ := http.NewRequest(http.MethodGet, r.c.intakeURL+"/v1/payments/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+r.c.apiKey)
		resp, err := hc.Do(req)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if d, ok := faultRetryAfter(resp.Header); ok && resp.StatusCode == http.StatusTooManyRequests {
			wait = min(max(d, wait), 2*time.Second) // the tenant's rate limit: as a polite client
			continue
		}
		var v struct {
			Status     string `json:"payment_status"`
			NextAction *struct {
				URL string `json:"url"`
			} `json:"next_action"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &v) != nil {
			continue
		}
		if v.NextAction != nil && v.NextAction.URL != "" {
			return path.Base(v.NextAction.URL), ""
		}
		seen = "payment_status " + v.Status
		switch v.Status {
		case "SUCCEEDED", "FAILED", "REFUNDED", "PARTIALLY_REFUNDED":
			return "", seen
		}
	}
	return "", seen + " after " + chaosChallengePatience.String()
}

// complete completes the challenge as the customer's browser would, on the
// sandbox's own port (reachable while payd's way to the gateway is down).
// It returns what the sandbox answered: charged, challenge_canceled (the
// charge was voided first) or another refusal, and when it answered.
func (r *chaosRun) complete(hc *http.Client, ref string) (string, time.Time) {
	gw := sandbox.NewClient(r.c.sandboxURL, hc).(*sandbox.Client)
	var err error
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = gw.CompleteAction(ctx, ref, true)
		cancel()
		switch {
		case err == nil:
			return "charged", time.Now()
		case errors.Is(err, sandbox.ErrAuthenticationCanceled):
			return "challenge_canceled", time.Now()
		case errors.Is(err, payment.ErrInvalidState), errors.Is(err, payment.ErrNotFound):
			return "refused: " + err.Error(), time.Now()
		case time.Now().After(end):
			return "no answer: " + err.Error(), time.Now()
		}
	}
}

// cancel cancels the payment as the merchant would (POST
// /v1/payments/{id}/cancel with an Idempotency-Key), retrying what a client
// retries. It returns the status and, for a refusal, its error code.
func (r *chaosRun) cancel(hc *http.Client, p *faultClientRecord) string {
	backoff := 50 * time.Millisecond
	last := ""
	for end := time.Now().Add(faultClientPatience); ; {
		code, body, hdr, err := r.c.post(hc, "/v1/payments/"+p.id+"/cancel", p.key+"-cancel", nil)
		wait := backoff
		if err == nil {
			var e struct {
				Codes []string `json:"error_codes"`
			}
			_ = json.Unmarshal(body, &e)
			last = fmt.Sprint(code)
			if len(e.Codes) > 0 {
				last += " " + e.Codes[0]
			}
			inFlight := code == http.StatusConflict && len(e.Codes) > 0 && e.Codes[0] == "idempotent_request_in_flight"
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

// gateway_void_down: every void is refused before processing for longer
// than a void's retry schedule (the inquiry schedule, 1,313 units ≈ 26 s):
// cancels and expiries meanwhile close their payments with the attempt
// UNKNOWN, and a challenge completed in that window is a late charge.
func chaosVoidDown(r *chaosRun) {
	r.setGatewayFlags(func() { r.voidDown = true })
	time.Sleep(chaosVoidDownFor)
	r.setGatewayFlags(func() { r.voidDown = false })
	r.note("gateway_void_down", "every void refused (503, not processed) for %s", chaosVoidDownFor)
}

// gateway_answer_unknown: the sandbox answers about pm_card_unknown keys
// for a while; payments inquired meanwhile succeed, the rest stay in (or
// go to) review.
func chaosAnswerUnknown(r *chaosRun) {
	r.setGatewayFlags(func() { r.answerUnknown = true })
	time.Sleep(chaosAnswerUnknownFor)
	r.setGatewayFlags(func() { r.answerUnknown = false })
	r.note("gateway_answer_unknown", "pm_card_unknown keys answered for %s, then unanswered again", chaosAnswerUnknownFor)
}

// setGatewayFlags changes voidDown or answerUnknown (set) and PUTs the
// sandbox's faults.
func (r *chaosRun) setGatewayFlags(set func()) {
	r.t.Helper()
	r.fmu.Lock()
	defer r.fmu.Unlock()
	set()
	r.putFaultsLocked()
}

// lateChargeSources counts the late charges payd recorded, by what found
// them (void, notification, reconciliation), from the attempts it marked.
func (c *faultCluster) lateChargeSources() map[string]int {
	out := map[string]int{}
	rows, err := c.db.Query(`SELECT COALESCE(substring(error_message from 'found by ([a-z_]+)'), '?'), count(*)
		FROM payment_attempts WHERE error_code = $1 GROUP BY 1`, payment.RefundReasonChargeAfterCancel)
	if err != nil {
		c.chk.Fatalf("late charges: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var src string
		var n int
		if err := rows.Scan(&src, &n); err != nil {
			c.chk.Fatalf("late charges: %v", err)
		}
		out[src] = n
	}
	return out
}
