package main

// payd bench over HTTP: invoices, payments, and watching them finish.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

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
	class    int           // index of its scenario in the mix
	start    time.Time     // first try
	latency  time.Duration // of the try that was accepted
	accepted time.Time     // when the accepted answer arrived
	id       string        // empty unless accepted
	tries    int
	replayed bool
	failure  string // why it was never accepted: last HTTP status or "network"
}

const maxTries = 8

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
					s.accepted = time.Now()
					s.latency, s.id, s.failure = s.accepted.Sub(tryStart), p.ID, ""
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
func await(ctx context.Context, ob observer, ids []string, done func(id string, st payment.Status) bool, every time.Duration) (map[string]observation, error) {
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
			if !ok || !done(id, o.Status) {
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

// dbObserver reads payments and their audit rows from Postgres. Each look
// reads only statuses (by primary key); the time a payment entered its
// status (from its audit rows) is read once, when the status changes, so
// the bench's polling costs the database little while payd drains.
type dbObserver struct {
	st   *store.Store
	seen map[string]observation
}

func newDBObserver(st *store.Store) *dbObserver {
	return &dbObserver{st: st, seen: map[string]observation{}}
}

func (d *dbObserver) observe(ctx context.Context, ids []string) (map[string]observation, error) {
	out := make(map[string]observation, len(ids))
	for chunk := range slices.Chunk(ids, 5000) {
		statuses, err := d.st.PaymentStatuses(ctx, chunk)
		if err != nil {
			return out, fmt.Errorf("observe payments: %w", err)
		}
		var changed []string
		for id, st := range statuses {
			if o, ok := d.seen[id]; ok && o.Status == st {
				out[id] = o
			} else {
				changed = append(changed, id)
			}
		}
		if len(changed) == 0 {
			continue
		}
		states, err := d.st.PaymentStates(ctx, changed)
		if err != nil {
			return out, fmt.Errorf("observe payments: %w", err)
		}
		for id, st := range states {
			o := observation{Status: st.Status, At: st.Since}
			d.seen[id], out[id] = o, o
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

// readLedger reads a sandbox's ledger (GET base/ledger) with no size limit:
// the gateway client caps its responses, and a long run's ledger is larger.
// A base with user info (payd's admin port) is sent as basic auth and never
// appears in an error.
func readLedger(ctx context.Context, hc *http.Client, base string) ([]sandbox.Charge, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ledger", nil)
	if err != nil {
		return nil, fmt.Errorf("sandbox ledger: the sandbox URL does not parse")
	}
	shown := req.URL.Redacted()
	resp, err := hc.Do(req) // net/http sends the URL's user info as basic auth and strips it from errors
	if err != nil {
		return nil, fmt.Errorf("sandbox ledger: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sandbox ledger: GET %s: %s", shown, resp.Status)
	}
	var body struct {
		Charges []sandbox.Charge `json:"charges"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("sandbox ledger: decode GET %s: %w", shown, err)
	}
	return body.Charges, nil
}
