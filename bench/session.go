package bench

// -sessions: payment sessions (seed 003) beside the run's card payments.
// Once the card payments are final, the same payd gets -sessions payment
// sessions, each created (POST /v1/payment-sessions) and submitted (POST
// /v1/payment-sessions/{id}/submit with session_data
// sandbox:pm_card_visa) by one of -session-c clients, closed loop; the
// payment each submit answers with is then awaited like a card payment,
// and the session read back (GET /v1/payment-sessions/{id}) must be
// COMPLETED. Sessions completed/s is put beside card payments completed/s
// of the same run (docs/BENCHMARKS.md "Payment sessions").

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/payment"
)

// sessionData is what every bench session is submitted with: the
// sandbox's documented test value of a card that succeeds.
const sessionData = "sandbox:" + sandbox.CardVisa

// sessionRun is one session the bench created and submitted.
type sessionRun struct {
	start     time.Time     // first try of the create
	create    time.Duration // latency of the create that was accepted
	submit    time.Duration // latency of the submit that was accepted
	sessionID string
	paymentID string // from the submit's answer
	code      int    // the submit's HTTP status: 201 finished, 202 pending or action
	answered  string // the status the submit answered with
	tries     int    // both requests, all tries
	failure   string // why it was not created or submitted: "create 422", "submit network", …
	final     string // the session's status read back at the end
}

// sessionReport is the -sessions part of a run.
type sessionReport struct {
	N           int            `json:"n"`
	Concurrency int            `json:"concurrency"`
	SessionData string         `json:"session_data"`
	Created     int            `json:"created"`
	Submitted   int            `json:"submitted"`
	Failures    map[string]int `json:"failures,omitempty"` // why sessions were not created or submitted
	Answered    map[string]int `json:"submit_answers"`     // "201 Succeeded", "202 Pending", …
	Retries     int            `json:"retries"`
	Completed   int            `json:"completed"` // payment SUCCEEDED
	NotFinal    int            `json:"not_final"`
	Statuses    map[string]int `json:"session_statuses"` // read back at the end
	Seconds     float64        `json:"seconds"`          // first create → last payment final
	PerSecond   float64        `json:"completed_per_second"`
	// VsCard is sessions completed/s ÷ the run's card payments completed/s.
	VsCard        float64  `json:"vs_card_payments"`
	CreateLatency dist     `json:"create_latency"`
	SubmitLatency dist     `json:"submit_latency"`
	TimeToFinal   dist     `json:"time_to_final"` // first create try → the payment's final audit row
	Charges       int      `json:"charges"`
	DoubleCharged []string `json:"double_charged"`
	Missing       []string `json:"missing"`      // completed without a charge
	WrongAmount   []string `json:"wrong_amount"` // a charge of another amount or currency
	// TasksPerSession is asynq tasks processed during the sessions phase ÷
	// sessions completed (--spawn); each session also leaves its
	// session:expire task scheduled at expires_on.
	TasksPerSession float64 `json:"tasks_per_session,omitempty"`
	// CPU per completed session and per final card payment, each over its
	// own phase (--spawn): payd's processes, and the whole machine
	// (PostgreSQL, Redis, payd and the bench).
	PaydCPUMs        float64 `json:"payd_cpu_ms_per_session,omitempty"`
	MachineCPUMs     float64 `json:"machine_cpu_ms_per_session,omitempty"`
	CardPaydCPUMs    float64 `json:"payd_cpu_ms_per_card_payment,omitempty"`
	CardMachineCPUMs float64 `json:"machine_cpu_ms_per_card_payment,omitempty"`

	first, last time.Time
}

// sessionSpec is the request every bench session is created with.
func sessionSpec(runID string, i int) map[string]any {
	return map[string]any{
		"amount": smallAmount, "currency": "USD", "reference": fmt.Sprintf("bench-%s-s%d", runID, i),
		"billing":     map[string]any{"address": map[string]any{"country": "US"}},
		"success_url": "https://merchant.example/bench/success", "failure_url": "https://merchant.example/bench/failure",
		"display_name": "payd bench",
	}
}

// postJSON posts body under an Idempotency-Key, retrying what a client
// retries (network errors, 409, 429, 5xx; Retry-After honoured) up to
// maxTries. It returns the accepted answer's status, body and latency, the
// tries, and the last failure when nothing was accepted.
func postJSON(ctx context.Context, hc *http.Client, t *target, path, key string, body any) (int, []byte, time.Duration, int, string) {
	b, _ := json.Marshal(body)
	var failure string
	for try := 1; try <= maxTries; try++ {
		if ctx.Err() != nil {
			return 0, nil, 0, try - 1, "not sent"
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, t.base+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-api-key", t.key)
		req.Header.Set("Idempotency-Key", key)
		began := time.Now()
		resp, err := hc.Do(req)
		var wait time.Duration
		if err != nil {
			failure = "network"
		} else {
			data, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			failure = strconv.Itoa(resp.StatusCode)
			switch {
			case rerr != nil:
				failure = "network"
			case resp.StatusCode/100 == 2:
				return resp.StatusCode, data, time.Since(began), try, ""
			case resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
				if sec, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && sec > 0 {
					wait = time.Duration(sec) * time.Second
				}
			default:
				return resp.StatusCode, data, 0, try, failure + " " + errorCode(data)
			}
		}
		if wait == 0 {
			wait = min(25*time.Millisecond<<(try-1), 2*time.Second)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return 0, nil, 0, maxTries, failure
}

// errorCode is the first of an error body's error_codes (seed 003's shape).
func errorCode(data []byte) string {
	var e struct {
		Codes []string `json:"error_codes"`
	}
	if json.Unmarshal(data, &e) == nil && len(e.Codes) > 0 {
		return e.Codes[0]
	}
	return ""
}

// runSession creates session i and submits it.
func runSession(ctx context.Context, hc *http.Client, t *target, runID string, i int) sessionRun {
	s := sessionRun{start: time.Now()}
	key := fmt.Sprintf("bench-%s-s%d", runID, i)
	code, data, lat, tries, failure := postJSON(ctx, hc, t, "/v1/payment-sessions", key, sessionSpec(runID, i))
	s.tries += tries
	if failure != "" {
		s.failure = "create " + failure
		return s
	}
	var ps struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(data, &ps) != nil || !validID(ps.ID) {
		s.failure = "create " + strconv.Itoa(code) + " without an id"
		return s
	}
	s.sessionID, s.create = ps.ID, lat
	code, data, lat, tries, failure = postJSON(ctx, hc, t, "/v1/payment-sessions/"+ps.ID+"/submit", key+"-submit",
		map[string]any{"session_data": sessionData, "amount": smallAmount})
	s.tries += tries
	if failure != "" {
		s.failure = "submit " + failure
		return s
	}
	var pay struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if json.Unmarshal(data, &pay) != nil || !validID(pay.ID) {
		s.failure = "submit " + strconv.Itoa(code) + " without an id"
		return s
	}
	s.paymentID, s.submit, s.code, s.answered = pay.ID, lat, code, pay.Status
	return s
}

// sessionStatus reads a session's status (GET /v1/payment-sessions/{id}).
func sessionStatus(ctx context.Context, hc *http.Client, t *target, id string) string {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.base+"/v1/payment-sessions/"+id, nil)
	req.Header.Set("x-api-key", t.key)
	resp, err := hc.Do(req)
	if err != nil {
		return "unread"
	}
	defer resp.Body.Close()
	var v struct {
		Status string `json:"status"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&v) != nil {
		return "unread (" + resp.Status + ")"
	}
	return v.Status
}

// runSessions is the sessions phase: create and submit o.sessions
// sessions at -session-c, await their payments, and read every session
// back. It returns the runs and the payments' observations.
func runSessions(ctx context.Context, o Options, t *target, hc *http.Client, runID string) ([]sessionRun, map[string]observation, error) {
	runs := make([]sessionRun, o.sessions)
	_ = parallel(ctx, o.sessions, o.sessionC, func(i int) error {
		runs[i] = runSession(ctx, hc, t, runID, i)
		return nil
	})
	var ids []string
	for i := range runs {
		if runs[i].start.IsZero() {
			runs[i] = sessionRun{start: time.Now(), failure: "not sent"}
		}
		if runs[i].paymentID != "" {
			ids = append(ids, runs[i].paymentID)
		}
	}
	card := scenario{Method: payment.MethodCard, Expect: payment.StatusSucceeded}
	obs, err := await(ctx, t.observe, ids, func(_ string, st payment.Status) bool { return card.done(st) }, o.pollEvery)
	var mu sync.Mutex
	_ = parallel(context.WithoutCancel(ctx), len(runs), o.sessionC, func(i int) error {
		if runs[i].sessionID == "" {
			return nil
		}
		st := sessionStatus(ctx, hc, t, runs[i].sessionID)
		mu.Lock()
		runs[i].final = st
		mu.Unlock()
		return nil
	})
	return runs, obs, err
}

// fillSessions computes the sessions' figures and their check: every
// session created and submitted, its payment SUCCEEDED with exactly one
// sandbox charge of the session's amount and currency, and the session
// COMPLETED.
func fillSessions(rep *Report, o Options, runs []sessionRun, obs map[string]observation, ledger []sandbox.Charge, ledgerErr error) {
	sr := &sessionReport{N: o.sessions, Concurrency: o.sessionC, SessionData: sessionData, Answered: map[string]int{},
		Statuses: map[string]int{}, DoubleCharged: []string{}, Missing: []string{}, WrongAmount: []string{}}
	rep.Sessions = sr
	charges := map[string][]sandbox.Charge{}
	for _, c := range ledger {
		charges[c.PaymentID] = append(charges[c.PaymentID], c)
	}
	var created, submitted, ttf []time.Duration
	var notCompleted []string
	for _, s := range runs {
		sr.Retries += max(s.tries-2, 0)
		if sr.first.IsZero() || s.start.Before(sr.first) {
			sr.first = s.start
		}
		if s.sessionID != "" {
			sr.Created++
			created = append(created, s.create)
			sr.Statuses[s.final]++
		}
		if s.failure != "" {
			if sr.Failures == nil {
				sr.Failures = map[string]int{}
			}
			sr.Failures[s.failure]++
			continue
		}
		sr.Submitted++
		submitted = append(submitted, s.submit)
		sr.Answered[strconv.Itoa(s.code)+" "+s.answered]++
		o, ok := obs[s.paymentID]
		if !ok || !o.Status.Final() && o.Status != payment.StatusRequiresReview {
			sr.NotFinal++
		}
		chs := charges[s.paymentID]
		sr.Charges += len(chs)
		for _, c := range chs {
			if c.Amount != smallAmount || c.Currency != "USD" {
				sr.WrongAmount = append(sr.WrongAmount, s.sessionID)
				break
			}
		}
		switch {
		case len(chs) > 1:
			sr.DoubleCharged = append(sr.DoubleCharged, s.sessionID)
		case ledgerErr == nil && ok && o.Status == payment.StatusSucceeded && len(chs) == 0:
			sr.Missing = append(sr.Missing, s.sessionID)
		}
		if !ok || o.Status != payment.StatusSucceeded || !strings.EqualFold(s.final, "Completed") {
			notCompleted = append(notCompleted, fmt.Sprintf("%s %s/%s", s.sessionID, o.Status, s.final))
			continue
		}
		sr.Completed++
		d := o.At.Sub(s.start)
		ttf = append(ttf, d)
		if o.At.After(sr.last) {
			sr.last = o.At
		}
	}
	sr.CreateLatency, sr.SubmitLatency, sr.TimeToFinal = distOf(created), distOf(submitted), distOf(ttf)
	if sr.Completed > 0 {
		sr.Seconds = sr.last.Sub(sr.first).Seconds()
		if sr.Seconds > 0 {
			sr.PerSecond = float64(sr.Completed) / sr.Seconds
		}
	}
	if rep.Final.PerSecond > 0 {
		sr.VsCard = sr.PerSecond / rep.Final.PerSecond
	}
	ok := sr.Completed == sr.N && len(sr.DoubleCharged)+len(sr.Missing)+len(sr.WrongAmount) == 0
	ledgerNote := fmt.Sprintf("%d charges: %d double-charged%s, %d completed without a charge%s, %d of another amount or currency%s",
		sr.Charges, len(sr.DoubleCharged), examples(sr.DoubleCharged), len(sr.Missing), examples(sr.Missing),
		len(sr.WrongAmount), examples(sr.WrongAmount))
	if ledgerErr != nil {
		ledgerNote = "sandbox ledger unavailable"
	}
	res := "PASS"
	if !ok {
		res = "FAIL"
	}
	rep.Checks = append(rep.Checks, check{Name: "sessions", Result: res,
		Detail: fmt.Sprintf("%d/%d sessions completed (payment SUCCEEDED, session %s)%s%s; %s", sr.Completed, sr.N,
			"COMPLETED", counts(" (not completed: ", sr.Failures, ")"), examples(notCompleted), ledgerNote)})
	if !ok {
		rep.Pass = false
	}
}

// printSessions writes the sessions' lines of the text report.
func printSessions(w io.Writer, r *Report) {
	s := r.Sessions
	if s == nil {
		return
	}
	fmt.Fprintf(w, "sessions: %d created and submitted (session_data %s) at concurrency %d: %d completed in %.2f s = %.1f/s; "+
		"card payments of this run %.1f/s; sessions ÷ card payments = %.2f (target ≥ 0.70)\n",
		s.N, s.SessionData, s.Concurrency, s.Completed, s.Seconds, s.PerSecond, r.Final.PerSecond, s.VsCard)
	fmt.Fprintf(w, "sessions: create p50/p95/p99/max %.1f/%.1f/%.1f/%.1f ms, submit %.1f/%.1f/%.1f/%.1f ms, time to final %.1f/%.1f/%.1f/%.1f ms; "+
		"submit answers %s; session statuses %s; retries %d",
		s.CreateLatency.P50, s.CreateLatency.P95, s.CreateLatency.P99, s.CreateLatency.Max,
		s.SubmitLatency.P50, s.SubmitLatency.P95, s.SubmitLatency.P99, s.SubmitLatency.Max,
		s.TimeToFinal.P50, s.TimeToFinal.P95, s.TimeToFinal.P99, s.TimeToFinal.Max,
		counts("", s.Answered, ""), counts("", s.Statuses, ""), s.Retries)
	if s.TasksPerSession > 0 {
		fmt.Fprintf(w, "; %.2f asynq tasks per session", s.TasksPerSession)
	}
	fmt.Fprintln(w)
	if s.MachineCPUMs > 0 {
		fmt.Fprintf(w, "sessions: CPU per completed session %.2f ms payd, %.2f ms machine; per final card payment %.2f ms payd, %.2f ms machine\n",
			s.PaydCPUMs, s.MachineCPUMs, s.CardPaydCPUMs, s.CardMachineCPUMs)
	}
}
