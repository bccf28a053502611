package main

// payd bench: a load driver. It creates an invoice big enough for the run
// (or -invoices of them, sharing the payments) and posts seed-001 payments
// against it to a running payd (-addr, -key) or to one it starts in this
// process (--spawn), measures
// intake throughput and latency, waits until every accepted payment is final,
// measures time to final, and checks correctness: nothing lost, every
// payment in its expected status, and, where the sandbox ledger can be read,
// exactly one charge per charged payment (invariants I1 and I2).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

type benchOptions struct {
	addr, key   string
	n, c        int
	invoices    int // the payments are spread over this many invoices
	method, pm  string
	expect      string // canonical status every payment must end in; empty: from the payment method
	timeout     time.Duration
	spawn       bool
	sandboxURL  string // addr mode: where the sandbox ledger is read
	jsonPath    string
	logPath     string // spawn mode: payd's own logs
	pollEvery   time.Duration
	requestTime time.Duration
}

func parseBenchFlags(args []string, out io.Writer) (benchOptions, error) {
	var o benchOptions
	fs := flag.NewFlagSet("payd bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.addr, "addr", "", "base URL of a running payd, e.g. http://127.0.0.1:8080")
	fs.StringVar(&o.key, "key", "", "API key secret for -addr")
	fs.BoolVar(&o.spawn, "spawn", false, "start payd (intake, worker, scheduler) in this process on a free loopback port, with DATABASE_URL, REDIS_URL and the rest of the env config")
	fs.IntVar(&o.n, "n", 2000, "payments to post")
	fs.IntVar(&o.c, "c", 16, "concurrent requests")
	fs.IntVar(&o.invoices, "invoices", 1, "invoices the payments are spread over, round robin (every payment of one invoice takes its row lock)")
	fs.StringVar(&o.method, "method", "CARD", "payment_method_type")
	fs.StringVar(&o.pm, "pm", sandbox.CardVisa, "payment_method_id")
	fs.StringVar(&o.expect, "expect", "", "canonical status every payment must reach (default: what the sandbox does with -pm)")
	fs.DurationVar(&o.timeout, "timeout", 120*time.Second, "bound on the whole run, posting and waiting")
	fs.StringVar(&o.sandboxURL, "sandbox", "", "with -addr: sandbox base URL whose ledger is checked (default ADDR/sandbox, the in-process sandbox of payd all)")
	fs.StringVar(&o.jsonPath, "json", "", "write the figures as JSON to this file")
	fs.StringVar(&o.logPath, "log", "", "with --spawn: append payd's logs to this file (default: discarded)")
	fs.DurationVar(&o.pollEvery, "poll", 200*time.Millisecond, "shortest pause between looks for final payments")
	fs.DurationVar(&o.requestTime, "request-timeout", 30*time.Second, "timeout of one HTTP request")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("bench: unexpected argument %q: %w", fs.Arg(0), errUsage)
	case o.spawn && (o.addr != "" || o.key != ""):
		return o, fmt.Errorf("bench: --spawn and -addr/-key exclude each other: %w", errUsage)
	case !o.spawn && (o.addr == "" || o.key == ""):
		return o, fmt.Errorf("bench: need -addr and -key, or --spawn: %w", errUsage)
	case o.n < 1 || o.c < 1:
		return o, fmt.Errorf("bench: -n and -c must be positive: %w", errUsage)
	case o.invoices < 1 || o.invoices > min(o.n, 1000):
		return o, fmt.Errorf("bench: -invoices must be 1 to min(-n, 1000): %w", errUsage)
	case int64(o.n) > math.MaxInt64/benchAmount/2:
		return o, fmt.Errorf("bench: -n too large: %w", errUsage)
	case o.timeout <= 0 || o.pollEvery <= 0 || o.requestTime <= 0:
		return o, fmt.Errorf("bench: -timeout, -poll and -request-timeout must be positive: %w", errUsage)
	}
	o.addr = strings.TrimRight(o.addr, "/")
	return o, nil
}

// scenario is what one posted payment is and where it must end.
type scenario struct {
	Method payment.Method `json:"method"`
	PM     string         `json:"payment_method_id"`
	Expect payment.Status `json:"expect"`
}

// expectedStatus is the canonical status the sandbox drives a payment to
// (DESIGN.md §7), or an error for a payment method the bench cannot finish.
func expectedStatus(m payment.Method, pm string) (payment.Status, error) {
	switch {
	case m == payment.MethodOffline || m == payment.MethodCredits:
		return payment.StatusSucceeded, nil
	case m == payment.MethodCard:
		switch pm {
		case sandbox.CardDeclined, sandbox.CardInsufficientFunds:
			return payment.StatusFailed, nil
		case sandbox.Card3DS:
			return "", fmt.Errorf("bench: %s waits for a customer in a browser; pass -expect to bench it anyway", pm)
		}
		return payment.StatusSucceeded, nil
	case m.BankRail():
		acct := strings.TrimPrefix(pm, "ba_")
		switch {
		case strings.HasPrefix(acct, "11111111"):
			return payment.StatusFailed, nil
		case len(acct) == 5 && strings.HasPrefix(acct, "100"):
			return payment.StatusReturned, nil
		}
		return payment.StatusSucceeded, nil
	}
	return "", fmt.Errorf("bench: no expected outcome for method %s; pass -expect", m)
}

// done reports whether a payment in status st will not move on by itself
// towards the expected status. A final status counts, except SUCCEEDED when
// the expectation lies beyond it (a bank payment settles, then is returned).
func (s scenario) done(st payment.Status) bool {
	if st == s.Expect {
		return true
	}
	return st.Final() && !(st == payment.StatusSucceeded && payment.CanTransition(st, s.Expect))
}

// usesGateway reports whether payments of this method are charged through
// the gateway, and so appear in the sandbox ledger.
func usesGateway(m payment.Method) bool { return m == payment.MethodCard || m.BankRail() }

// ---------------------------------------------------------------- run

// benchReport is every figure of a run; -json writes it as is.
type benchReport struct {
	Mode        string   `json:"mode"` // spawn or addr
	Addr        string   `json:"addr"`
	Scenario    scenario `json:"scenario"`
	N           int      `json:"n"`
	Concurrency int      `json:"concurrency"`
	Started     string   `json:"started"`
	Invoices    []string `json:"invoices"` // ids of the invoices the payments pay

	Intake struct {
		Accepted    int            `json:"accepted"`
		Rejected    int            `json:"rejected"` // never got a 2xx
		Retries     int            `json:"retries"`  // extra tries after 409/429/5xx/network errors
		Replayed    int            `json:"replayed"` // answered with Idempotent-Replayed
		Seconds     float64        `json:"seconds"`
		PerSecond   float64        `json:"accepted_per_second"`
		Latency     dist           `json:"latency"`
		RejectCodes map[string]int `json:"reject_codes,omitempty"` // HTTP status or "network" → count
	} `json:"intake"`

	Final struct {
		Final       int            `json:"final"`
		NotFinal    int            `json:"not_final"`
		Seconds     float64        `json:"seconds"` // first request start → last terminal event
		PerSecond   float64        `json:"completed_per_second"`
		TimeToFinal dist           `json:"time_to_final"`
		Statuses    map[string]int `json:"statuses"`
		// NotFinalStatuses counts where the payments that did not finish
		// were left ("unseen": not found at all).
		NotFinalStatuses map[string]int `json:"not_final_statuses,omitempty"`
	} `json:"final"`

	Ledger struct {
		Source        string   `json:"source"` // in-process, remote URL, or "" when unavailable
		Unavailable   string   `json:"unavailable,omitempty"`
		Charges       int      `json:"charges"` // entries for the bench's payments
		DoubleCharged []string `json:"double_charged"`
		Missing       []string `json:"missing"`    // charged payments with no entry
		Unexpected    []string `json:"unexpected"` // entries for payments that should not have one
	} `json:"ledger"`

	Checks []check `json:"checks"`
	Pass   bool    `json:"pass"`
}

type check struct {
	Name   string `json:"name"`
	Result string `json:"result"` // PASS, FAIL or SKIP
	Detail string `json:"detail"`
}

// dist is a latency distribution in milliseconds.
type dist struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// distOf uses nearest-rank percentiles; it sorts ds.
func distOf(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	slices.Sort(ds)
	rank := func(p float64) float64 {
		i := int(p*float64(len(ds))+0.999999) - 1
		return ms(ds[min(max(i, 0), len(ds)-1)])
	}
	return dist{Count: len(ds), P50: rank(0.50), P95: rank(0.95), P99: rank(0.99), Max: ms(ds[len(ds)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// target is the payd under load.
type target struct {
	base    string
	key     string
	observe observer
	// ledger reads the sandbox's ledger; nil when it cannot be reached.
	ledger       func(context.Context) ([]sandbox.Charge, error)
	ledgerSource string
	stop         func() error // spawn mode: shut payd down
	died         <-chan struct{}
	diedErr      func() error
}

func runBench(ctx context.Context, cfg config, args []string, stdout io.Writer) error {
	o, err := parseBenchFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	sc := scenario{Method: payment.Method(o.method), PM: o.pm, Expect: payment.Status(o.expect)}
	if sc.Expect == "" {
		if sc.Expect, err = expectedStatus(sc.Method, sc.PM); err != nil {
			return err
		}
	} else if !sc.Expect.Valid() {
		return fmt.Errorf("bench: -expect %q is not a canonical status", o.expect)
	}
	runID := randomID()
	hc := &http.Client{Timeout: o.requestTime, Transport: &http.Transport{
		DialContext:  (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns: 2 * o.c, MaxIdleConnsPerHost: 2 * o.c, IdleConnTimeout: 90 * time.Second}}
	defer hc.CloseIdleConnections()

	ctx, cancel := context.WithTimeoutCause(ctx, o.timeout, fmt.Errorf("-timeout %s reached", o.timeout))
	defer cancel()

	var t *target
	mode := "addr"
	if o.spawn {
		mode = "spawn"
		if t, err = spawnPayd(ctx, cfg, o, runID); err != nil {
			return err
		}
	} else {
		t = remoteTarget(o, hc)
	}
	rep, runErr := benchRun(ctx, o, sc, t, hc, runID)
	var stopErr error
	if t.stop != nil {
		stopErr = t.stop()
	}
	if rep == nil {
		return errors.Join(runErr, stopErr)
	}
	rep.Mode = mode
	printReport(stdout, rep)
	if o.jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonPath, append(b, '\n'), 0o644); err != nil {
			return errors.Join(fmt.Errorf("bench: write -json: %w", err), stopErr)
		}
	}
	if !rep.Pass {
		return errors.Join(errors.New("bench: FAIL: correctness checks failed"), runErr, stopErr)
	}
	return errors.Join(runErr, stopErr)
}

// benchRun posts, waits and checks. It returns a report whenever payments
// were posted, with an error for what cut the run short.
func benchRun(ctx context.Context, o benchOptions, sc scenario, t *target, hc *http.Client, runID string) (*benchReport, error) {
	if t.died != nil {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		go func() {
			select {
			case <-t.died:
				cancel(fmt.Errorf("spawned payd stopped: %v", t.diedErr()))
			case <-ctx.Done():
			}
		}()
	}
	if err := waitReady(ctx, hc, t.base); err != nil {
		return nil, err
	}
	rep := &benchReport{Addr: t.base, Scenario: sc, N: o.n, Concurrency: o.c, Started: time.Now().UTC().Format(time.RFC3339)}
	// Payments need an existing invoice with room for them.
	for j := range o.invoices {
		ext, due := "bench-"+runID, o.n/o.invoices
		if o.invoices > 1 {
			ext = fmt.Sprintf("bench-%s-%d", runID, j)
		}
		if j < o.n%o.invoices {
			due++
		}
		inv, err := createInvoice(ctx, hc, t, ext, due)
		if err != nil {
			return nil, err
		}
		rep.Invoices = append(rep.Invoices, inv)
	}

	subs, postSeconds := post(ctx, o, sc, t, hc, runID, rep.Invoices)
	var ids []string
	for _, s := range subs {
		if s.id != "" {
			ids = append(ids, s.id)
		}
	}
	obs, waitErr := await(ctx, t.observe, ids, sc, o.pollEvery)
	var charges []sandbox.Charge
	var ledgerErr error
	if t.ledger != nil {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		charges, ledgerErr = t.ledger(lctx)
		cancel()
	} else {
		ledgerErr = errors.New("no sandbox ledger for this gateway")
	}
	fillReport(rep, subs, postSeconds, obs, sc, charges, ledgerErr, t.ledgerSource)
	if waitErr != nil {
		waitErr = fmt.Errorf("bench: waiting for final payments: %w", waitErr)
	}
	return rep, waitErr
}

// ---------------------------------------------------------------- posting

// benchAmount is what every bench payment pays, in USD cents (wire "12.50").
const benchAmount = 1250

// createInvoice creates an invoice due exactly n bench payments, retried
// like a payment under one Idempotency-Key, and returns its id.
func createInvoice(ctx context.Context, hc *http.Client, t *target, ext string, n int) (string, error) {
	b, _ := json.Marshal(map[string]any{"external_id": ext, "currency": "USD",
		"amount_due": payment.FormatMajor(int64(n)*benchAmount, "USD")})
	var last string
	for try := 1; try <= maxTries; try++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, t.base+"/v1/invoices", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-api-key", t.key)
		req.Header.Set("Idempotency-Key", ext)
		resp, err := hc.Do(req)
		if err != nil {
			last = err.Error()
		} else {
			data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			last = resp.Status + ": " + strings.TrimSpace(string(data))
			switch {
			case resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK:
				var inv struct {
					ID string `json:"id"`
				}
				if json.Unmarshal(data, &inv) == nil && validID(inv.ID) {
					return inv.ID, nil
				}
				return "", fmt.Errorf("bench: create invoice: no id in %s", data)
			case resp.StatusCode != http.StatusConflict && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500:
				return "", fmt.Errorf("bench: create invoice: %s", last)
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("bench: create invoice (%s): %w", last, context.Cause(ctx))
		case <-time.After(min(25*time.Millisecond<<(try-1), 2*time.Second)):
		}
	}
	return "", fmt.Errorf("bench: create invoice: %s", last)
}

// submission is one payment the bench asked for.
type submission struct {
	start    time.Time     // first try
	latency  time.Duration // of the try that was accepted
	id       string        // empty unless accepted
	tries    int
	replayed bool
	failure  string // why it was never accepted: last HTTP status or "network"
}

const maxTries = 8

// post sends o.n payments at concurrency o.c, payment i against invoice
// i mod len(invs), each under its own Idempotency-Key so that a retry after
// 409, 429, 5xx or a network error can never create a second payment.
func post(ctx context.Context, o benchOptions, sc scenario, t *target, hc *http.Client, runID string, invs []string) ([]submission, float64) {
	subs := make([]submission, o.n)
	var next atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	for range min(o.c, o.n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= o.n {
					return
				}
				subs[i] = postOne(ctx, hc, t, sc, invs[i%len(invs)], fmt.Sprintf("bench-%s-%d", runID, i))
			}
		}()
	}
	wg.Wait()
	return subs, time.Since(began).Seconds()
}

func postOne(ctx context.Context, hc *http.Client, t *target, sc scenario, inv, key string) submission {
	body := map[string]any{"amount": payment.FormatMajor(benchAmount, "USD"), "currency": "USD", "destination_id": inv,
		"destination_type": "INVOICE", "payment_method_type": string(sc.Method)}
	if sc.PM != "" {
		body["payment_method_id"] = sc.PM
	}
	b, _ := json.Marshal(body)
	s := submission{start: time.Now()}
	for s.tries < maxTries {
		if ctx.Err() != nil {
			if s.failure == "" {
				s.failure = "not sent"
			}
			return s
		}
		s.tries++
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, t.base+"/v1/payments", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-api-key", t.key)
		req.Header.Set("Idempotency-Key", key)
		tryStart := time.Now()
		resp, err := hc.Do(req)
		var wait time.Duration
		if err != nil {
			s.failure = "network"
		} else {
			data, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			s.failure = strconv.Itoa(resp.StatusCode)
			switch {
			case rerr != nil:
				s.failure = "network"
			case resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK:
				var p struct {
					ID string `json:"id"`
				}
				if json.Unmarshal(data, &p) == nil && validID(p.ID) {
					s.latency, s.id, s.failure = time.Since(tryStart), p.ID, ""
					s.replayed = resp.Header.Get("Idempotent-Replayed") == "true"
					return s
				}
				s.failure = "bad body"
				return s
			case resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusTooManyRequests ||
				resp.StatusCode >= 500:
				if sec, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && sec > 0 {
					wait = time.Duration(sec) * time.Second
				}
			default: // refused: retrying the same request cannot help
				return s
			}
		}
		if wait == 0 {
			wait = min(25*time.Millisecond<<(s.tries-1), 2*time.Second)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return s
}

// validID accepts the ids payd hands out (prefix_hex); anything else would
// not be safe in the observers' queries.
func validID(id string) bool {
	if id == "" || len(id) > 100 {
		return false
	}
	for _, r := range id {
		if !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

func waitReady(ctx context.Context, hc *http.Client, base string) error {
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: %s/readyz not ready (%s): %w", base, last, context.Cause(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ---------------------------------------------------------------- waiting

// observation is a payment's canonical status and when it entered it (the
// created_at of its latest audit row into that status).
type observation struct {
	Status payment.Status
	At     time.Time
}

// observer looks up payments; ids it does not return are not found yet.
type observer interface {
	observe(ctx context.Context, ids []string) (map[string]observation, error)
}

// await polls until every payment is done (see scenario.done) or ctx ends.
// It returns the last observation of every payment it saw. A failed look is
// tried again on the next poll: a bench may run while payd's dependencies
// restart.
func await(ctx context.Context, ob observer, ids []string, sc scenario, every time.Duration) (map[string]observation, error) {
	seen := make(map[string]observation, len(ids))
	pending := slices.Clone(ids)
	var lastErr error
	for len(pending) > 0 {
		began := time.Now()
		got, err := ob.observe(ctx, pending)
		// Keep the bench's own load on payd small: the observation times
		// come from the audit rows, so polling less often costs no precision.
		wait := max(every, 3*time.Since(began))
		lastErr = err
		left := pending[:0]
		for _, id := range pending {
			o, ok := got[id]
			if ok {
				seen[id] = o
			}
			if !ok || !sc.done(o.Status) {
				left = append(left, id)
			}
		}
		pending = left
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return seen, fmt.Errorf("%w (last lookup error: %v)", context.Cause(ctx), lastErr)
			}
			return seen, context.Cause(ctx)
		case <-time.After(wait):
		}
	}
	return seen, nil
}

// dbObserver reads payments and their audit rows from Postgres.
type dbObserver struct{ st *store.Store }

func (d dbObserver) observe(ctx context.Context, ids []string) (map[string]observation, error) {
	out := make(map[string]observation, len(ids))
	for chunk := range slices.Chunk(ids, 5000) {
		states, err := d.st.PaymentStates(ctx, chunk)
		if err != nil {
			return out, fmt.Errorf("observe payments: %w", err)
		}
		for id, st := range states {
			out[id] = observation{Status: st.Status, At: st.Since}
		}
	}
	return out, nil
}

// apiObserver reads GET /v1/payments/{id}/timeline, c at a time.
type apiObserver struct {
	hc        *http.Client
	base, key string
	c         int
}

func (a apiObserver) observe(ctx context.Context, ids []string) (map[string]observation, error) {
	var mu sync.Mutex
	out := make(map[string]observation, len(ids))
	var firstErr error
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(a.c, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) || ctx.Err() != nil {
					return
				}
				o, ok, err := a.timeline(ctx, ids[i])
				mu.Lock()
				if ok {
					out[ids[i]] = o
				} else if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// A failed lookup is retried on the next poll; only a run where nothing
	// answers is an error.
	if len(out) == 0 && firstErr != nil {
		return out, firstErr
	}
	return out, nil
}

func (a apiObserver) timeline(ctx context.Context, id string) (observation, bool, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/v1/payments/"+id+"/timeline", nil)
	req.Header.Set("x-api-key", a.key)
	resp, err := a.hc.Do(req)
	if err != nil {
		return observation{}, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return observation{}, false, fmt.Errorf("GET timeline of %s: %s", id, resp.Status)
	}
	var tl struct {
		Status string `json:"status"`
		Events []struct {
			To        string    `json:"to"`
			CreatedAt time.Time `json:"created_at"`
		} `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tl); err != nil {
		return observation{}, false, fmt.Errorf("GET timeline of %s: %w", id, err)
	}
	o := observation{Status: payment.Status(tl.Status)}
	for _, e := range tl.Events {
		if e.To == tl.Status {
			o.At = e.CreatedAt
		}
	}
	return o, true, nil
}

// ---------------------------------------------------------------- targets

// spawnPayd starts payd's intake, worker and scheduler in this process, as
// `payd all` would (without the admin port), on a free loopback port, and
// makes a tenant with a key for the run.
func spawnPayd(ctx context.Context, cfg config, o benchOptions, runID string) (*target, error) {
	if err := cfg.migrate(ctx); err != nil {
		return nil, err
	}
	logw := io.Discard
	var logFile *os.File
	if o.logPath != "" {
		f, err := os.OpenFile(o.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("bench: -log: %w", err)
		}
		logw, logFile = f, f
	}
	closeLog := func() {
		if logFile != nil {
			logFile.Close()
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		closeLog()
		return nil, fmt.Errorf("bench: listen: %w", err)
	}
	cfg.Addr = ln.Addr().String() // also the in-process sandbox's public URL
	d, err := build(ctx, cfg, logw)
	if err != nil {
		ln.Close()
		closeLog()
		return nil, err
	}
	d.intakeLn = ln
	ten, err := d.store.CreateTenant(ctx, "bench-"+runID)
	var secret string
	if err == nil {
		_, secret, err = d.store.CreateAPIKey(ctx, ten.ID)
	}
	if err != nil {
		ln.Close()
		d.close()
		closeLog()
		return nil, fmt.Errorf("bench: tenant key: %w", err)
	}

	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	died := make(chan struct{})
	var serveErr error
	go func() {
		serveErr = d.serve(sctx, roleIntake, roleWorker, roleScheduler)
		close(died)
	}()
	t := &target{base: "http://" + cfg.Addr, key: secret, observe: dbObserver{d.store},
		died: died, diedErr: func() error { return serveErr }}
	t.stop = func() error {
		stop()
		<-died
		d.close()
		closeLog()
		return serveErr
	}
	switch gw := d.gateway.(type) {
	case *sandbox.Sandbox:
		t.ledgerSource = "in-process sandbox"
		t.ledger = func(context.Context) ([]sandbox.Charge, error) { return gw.Ledger(), nil }
	case *sandbox.Client:
		t.ledgerSource = cfg.SandboxURL
		t.ledger = gw.Ledger
	}
	return t, nil
}

// remoteTarget is a payd someone else runs. Its ledger is read from -sandbox,
// by default the in-process sandbox that `payd all` mounts at /sandbox/.
func remoteTarget(o benchOptions, hc *http.Client) *target {
	sb := o.sandboxURL
	if sb == "" {
		sb = o.addr + "/sandbox"
	}
	cl := sandbox.NewClient(sb, hc).(*sandbox.Client)
	return &target{base: o.addr, key: o.key, observe: apiObserver{hc: hc, base: o.addr, key: o.key, c: o.c},
		ledger: cl.Ledger, ledgerSource: sb}
}

// ---------------------------------------------------------------- figures and checks

func fillReport(rep *benchReport, subs []submission, postSeconds float64, obs map[string]observation, sc scenario,
	ledger []sandbox.Charge, ledgerErr error, ledgerSource string) {
	in := &rep.Intake
	in.Seconds = postSeconds
	var lat, ttf []time.Duration
	var first, last time.Time
	fin := &rep.Final
	fin.Statuses = map[string]int{}
	var wrong []string
	for _, s := range subs {
		in.Retries += max(s.tries-1, 0)
		if first.IsZero() || s.start.Before(first) {
			first = s.start
		}
		if s.id == "" {
			in.Rejected++
			if in.RejectCodes == nil {
				in.RejectCodes = map[string]int{}
			}
			in.RejectCodes[s.failure]++
			continue
		}
		in.Accepted++
		if s.replayed {
			in.Replayed++
		}
		lat = append(lat, s.latency)
		o, ok := obs[s.id]
		if !ok || !sc.done(o.Status) {
			fin.NotFinal++
			if fin.NotFinalStatuses == nil {
				fin.NotFinalStatuses = map[string]int{}
			}
			if !ok {
				o.Status = "unseen"
			}
			fin.NotFinalStatuses[string(o.Status)]++
			continue
		}
		fin.Final++
		fin.Statuses[string(o.Status)]++
		if o.Status != sc.Expect {
			wrong = append(wrong, s.id+" "+string(o.Status))
		}
		ttf = append(ttf, o.At.Sub(s.start))
		if o.At.After(last) {
			last = o.At
		}
	}
	if postSeconds > 0 {
		in.PerSecond = float64(in.Accepted) / postSeconds
	}
	in.Latency = distOf(lat)
	fin.TimeToFinal = distOf(ttf)
	if fin.Final > 0 {
		fin.Seconds = last.Sub(first).Seconds()
		if fin.Seconds > 0 {
			fin.PerSecond = float64(fin.Final) / fin.Seconds
		}
	}

	add := func(name string, ok bool, detail string) {
		res := "PASS"
		if !ok {
			res = "FAIL"
		}
		rep.Checks = append(rep.Checks, check{Name: name, Result: res, Detail: detail})
	}
	add("accepted", in.Rejected == 0, fmt.Sprintf("%d/%d requests accepted%s", in.Accepted, rep.N,
		counts(" (not accepted: ", in.RejectCodes, ")")))
	add("no lost payment", fin.NotFinal == 0, fmt.Sprintf("%d/%d accepted payments final, %d not final%s", fin.Final, in.Accepted,
		fin.NotFinal, counts(" (left in: ", fin.NotFinalStatuses, ")")))
	add("final status", len(wrong) == 0, fmt.Sprintf("%d/%d final payments %s%s", fin.Final-len(wrong), fin.Final, sc.Expect, examples(wrong)))

	lg := &rep.Ledger
	lg.DoubleCharged, lg.Missing, lg.Unexpected = []string{}, []string{}, []string{}
	if ledgerErr != nil {
		lg.Unavailable = ledgerErr.Error()
		rep.Checks = append(rep.Checks, check{Name: "ledger", Result: "SKIP", Detail: "sandbox ledger unavailable: " + ledgerErr.Error()})
	} else {
		lg.Source = ledgerSource
		checkLedger(rep, subs, obs, sc, ledger)
		add("ledger", len(lg.DoubleCharged)+len(lg.Missing)+len(lg.Unexpected) == 0,
			fmt.Sprintf("%d charges (%s): %d double-charged%s, %d succeeded without a charge%s, %d charged but not succeeded%s",
				lg.Charges, ledgerSource, len(lg.DoubleCharged), examples(lg.DoubleCharged), len(lg.Missing), examples(lg.Missing),
				len(lg.Unexpected), examples(lg.Unexpected)))
	}
	rep.Pass = true
	for _, c := range rep.Checks {
		if c.Result == "FAIL" {
			rep.Pass = false
		}
	}
}

// checkLedger compares the sandbox's charges for the bench's payments with
// their final statuses: a payment that took money (SUCCEEDED, refunded or
// returned) has exactly one charge, a FAILED or CANCELED one none, and no
// payment ever has two (invariant I1). REQUIRES_REVIEW is left to an
// operator, and a payment that is not final is reported by another check.
func checkLedger(rep *benchReport, subs []submission, obs map[string]observation, sc scenario, ledger []sandbox.Charge) {
	n := map[string]int{}
	for _, c := range ledger {
		n[c.PaymentID]++
	}
	lg := &rep.Ledger
	for _, s := range subs {
		if s.id == "" {
			continue
		}
		got := n[s.id]
		lg.Charges += got
		if got > 1 {
			lg.DoubleCharged = append(lg.DoubleCharged, s.id)
			continue
		}
		o, ok := obs[s.id]
		if !ok || !sc.done(o.Status) {
			continue
		}
		want := -1
		switch o.Status {
		case payment.StatusSucceeded, payment.StatusPartiallyRefunded, payment.StatusRefunded, payment.StatusReturned:
			want = 0
			if usesGateway(sc.Method) {
				want = 1
			}
		case payment.StatusFailed, payment.StatusCanceled:
			want = 0
		}
		switch {
		case want == 1 && got == 0:
			lg.Missing = append(lg.Missing, s.id)
		case want == 0 && got > 0:
			lg.Unexpected = append(lg.Unexpected, s.id)
		}
	}
}

// counts renders a tally as "k n, k n", sorted, between pre and post; an
// empty tally is "".
func counts(pre string, m map[string]int, post string) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(parts)
	return pre + strings.Join(parts, ", ") + post
}

func examples(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	more := ""
	if len(ids) > 3 {
		more = ", …"
	}
	return " [" + strings.Join(ids[:min(len(ids), 3)], ", ") + more + "]"
}

func printReport(w io.Writer, r *benchReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "payd bench (%s %s): %d × %s %s → %s, concurrency %d, %d invoice(s)\n", r.Mode, r.Addr, r.N,
		r.Scenario.Method, r.Scenario.PM, r.Scenario.Expect, r.Concurrency, len(r.Invoices))
	fmt.Fprintf(tw, "\t\tcount\tseconds\tper second\tp50 ms\tp95 ms\tp99 ms\tmax ms\n")
	in, fin := r.Intake, r.Final
	fmt.Fprintf(tw, "intake\taccepted\t%d\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\n", in.Accepted, in.Seconds, in.PerSecond,
		in.Latency.P50, in.Latency.P95, in.Latency.P99, in.Latency.Max)
	fmt.Fprintf(tw, "end to end\tfinal\t%d\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\n", fin.Final, fin.Seconds, fin.PerSecond,
		fin.TimeToFinal.P50, fin.TimeToFinal.P95, fin.TimeToFinal.P99, fin.TimeToFinal.Max)
	tw.Flush()
	fmt.Fprintf(w, "retries %d, replayed %d, rejected %d; final statuses: %s\n", in.Retries, in.Replayed, in.Rejected,
		counts("", fin.Statuses, ""))
	fmt.Fprintln(w, "checks:")
	for _, c := range r.Checks {
		fmt.Fprintf(w, "  %-4s  %-16s %s\n", c.Result, c.Name, c.Detail)
	}
	if r.Pass {
		fmt.Fprintln(w, "RESULT PASS")
	} else {
		fmt.Fprintln(w, "RESULT FAIL")
	}
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
