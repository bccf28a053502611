package bench

// Waiting for payments to be final (from Postgres with --spawn, through the
// API otherwise), the sandbox's ledger, and asynq's counters of payd's
// queues.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

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

// processedTotals sums asynq's lifetime processed counters (succeeded plus
// failed tries) of payd's queues.
func processedTotals(insp *asynq.Inspector) (map[string]int, error) {
	// A queue asynq has never seen has no stats (and an error of asynq's
	// internal type): ask only about the queues that exist.
	exist, err := insp.Queues()
	if err != nil {
		return nil, fmt.Errorf("queues: %w", err)
	}
	out := map[string]int{}
	for q := range jobs.Queues {
		out[q] = 0
		if !slices.Contains(exist, q) {
			continue
		}
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			return out, fmt.Errorf("queue %s: %w", q, err)
		}
		out[q] = info.ProcessedTotal
	}
	return out, nil
}

// queuedTasks counts tasks waiting in payd's queues (pending, scheduled, retry).
func queuedTasks(insp *asynq.Inspector) int {
	var n int
	for q := range jobs.Queues {
		if info, err := insp.GetQueueInfo(q); err == nil {
			n += info.Pending + info.Scheduled + info.Retry
		}
	}
	return n
}
