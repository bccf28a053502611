package bench

// Driving the load over payd's API: the run's invoices, then its payments,
// closed loop (post) or open loop (postRate), each retried under its own
// Idempotency-Key.

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
	"sync/atomic"
	"time"

	"github.com/payd/payd/payment"
)

// createInvoice creates an invoice due (minor units of currency) exactly
// what the payments dealt to it pay, retried like a payment under one
// Idempotency-Key, and returns its id.
func createInvoice(ctx context.Context, hc *http.Client, t *target, ext, currency string, due int64) (string, error) {
	b, _ := json.Marshal(map[string]any{"external_id": ext, "currency": currency,
		"amount_due": payment.FormatMajor(due, currency)})
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
	currency string        //
	amount   int64         // minor units of currency
	start    time.Time     // first try
	latency  time.Duration // of the try that was accepted
	accepted time.Time     // when the accepted answer arrived
	id       string        // empty unless accepted
	tries    int
	replayed bool
	failure  string // why it was never accepted: last HTTP status or "network"
}

const maxTries = 8

func postOne(ctx context.Context, hc *http.Client, t *target, sc scenario, currency string, amount int64, inv, key string) submission {
	body := map[string]any{"amount": payment.FormatMajor(amount, currency), "currency": currency, "destination_id": inv,
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

// post sends o.n payments at concurrency o.c (closed loop), payment i as
// the plan deals it, each under its own Idempotency-Key so that a retry
// after 409, 429, 5xx or a network error can never create a second payment.
func post(ctx context.Context, o Options, p plan, t *target, hc *http.Client, runID string, invs []string) ([]submission, float64) {
	subs := make([]submission, o.n)
	began := time.Now()
	_ = parallel(ctx, o.n, o.c, func(i int) error {
		subs[i] = postIndex(ctx, hc, t, p, invs, runID, i)
		return nil
	})
	for i := range subs {
		if subs[i].start.IsZero() { // never started: the run was cut short
			subs[i] = notSent(p, i)
		}
	}
	return subs, time.Since(began).Seconds()
}

func postIndex(ctx context.Context, hc *http.Client, t *target, p plan, invs []string, runID string, i int) submission {
	d := p.deal(i)
	cur := p.currencies[d.currency]
	s := postOne(ctx, hc, t, p.classes[d.class], cur, d.amount, invs[d.invoice], fmt.Sprintf("bench-%s-%d", runID, i))
	s.class, s.currency, s.amount = d.class, cur, d.amount
	return s
}

// notSent is payment i when the run ended before it was sent.
func notSent(p plan, i int) submission {
	d := p.deal(i)
	return submission{class: d.class, currency: p.currencies[d.currency], amount: d.amount, start: time.Now(), failure: "not sent"}
}

// postRate sends o.n payments open loop: payment i is sent at i/o.rate
// seconds, whether or not earlier ones were answered (at most maxInFlight at
// once). It returns the submissions, the posting time and how many requests
// left more than 10 ms after their slot.
func postRate(ctx context.Context, o Options, p plan, t *target, hc *http.Client, runID string, invs []string) ([]submission, float64, int) {
	const maxInFlight = 4096
	subs := make([]submission, o.n)
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	var late atomic.Int64
	began := time.Now()
	for i := range o.n {
		slot := began.Add(time.Duration(float64(i) / o.rate * float64(time.Second)))
		if d := time.Until(slot); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			for j := i; j < o.n; j++ {
				subs[j] = notSent(p, j)
			}
			break
		}
		sem <- struct{}{}
		if time.Since(slot) > 10*time.Millisecond {
			late.Add(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			subs[i] = postIndex(ctx, hc, t, p, invs, runID, i)
			<-sem
		}()
	}
	wg.Wait()
	return subs, time.Since(began).Seconds(), int(late.Load())
}

// parallel runs f(0..n-1) on c goroutines and returns the first error.
func parallel(ctx context.Context, n, c int, f func(int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(c, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return first
}
