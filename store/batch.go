package store

import (
	"context"
	"errors"
	"sync"
	"time"
)

// A group runs the hot statements of concurrent callers together: one
// multi-row statement, one round trip and one commit for every request that
// arrived while the previous statements were running. A request on an idle
// system runs at once, alone, so batching adds no latency; under load a
// batch grows to whatever queued meanwhile (up to max). Each row of a batch
// is guarded on its own (WHERE status = $observed …), so a batch changes
// nothing a caller could not have changed alone. A statement that fails as a
// whole (a CHECK or unique violation of one row, a deadlock) is run again
// row by row, so only the request at fault sees the error.
//
// Few statements in flight make batches large: Runners (default 1) per
// group. A statement that is slow (waiting on a row lock held by a long
// transaction) must not hold up every request behind it, so a request that
// has waited Stall for a runner gets one of its own, up to MaxRunners.
//
// The cost model behind it (pgbench on the 2-core machine, docs/BENCHMARKS.md):
// a round trip costs ~30-40 µs of CPU and a commit ~60 µs more, while a row
// in a multi-row statement costs ~2 µs.
type group[Req, Res any] struct {
	// exec runs reqs as one statement and returns one result per request,
	// in order; it must be atomic (one statement, or one transaction).
	exec       func(ctx context.Context, reqs []Req) ([]Res, error)
	max        int           // rows per statement
	runners    int           // statements in flight at once, normally
	maxRunners int           // … and when they stall
	stall      time.Duration // how long a request waits before it runs beside a stalled statement
	timeout    time.Duration // bound on one statement

	mu      sync.Mutex
	pending []*groupCall[Req, Res]
	running int
}

type groupCall[Req, Res any] struct {
	req   Req
	res   Res
	err   error
	taken bool // in a batch already (under group.mu)
	done  chan struct{}
}

func newGroup[Req, Res any](b Batch, exec func(context.Context, []Req) ([]Res, error)) *group[Req, Res] {
	return &group[Req, Res]{exec: exec, max: b.MaxRows, runners: b.Runners, maxRunners: max(b.MaxRunners, b.Runners),
		stall: b.Stall, timeout: b.Timeout}
}

// do runs req in the next batch and waits for its result. The statement
// runs on its own deadline, not ctx's: once queued, a request is carried
// out (or refused) whatever happens to its caller, and the caller learns
// which.
func (g *group[Req, Res]) do(ctx context.Context, req Req) (Res, error) {
	c := &groupCall[Req, Res]{req: req, done: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	lead := g.running < g.runners
	if lead {
		g.running++
	}
	g.mu.Unlock()
	if lead {
		g.lead(ctx)
	} else if g.stall > 0 && g.maxRunners > g.runners {
		t := time.NewTimer(g.stall)
		select {
		case <-c.done:
			t.Stop()
			return c.res, c.err
		case <-t.C:
		}
		// the statements in flight are slow: run beside them
		g.mu.Lock()
		lead = !c.taken && g.running < g.maxRunners
		if lead {
			g.running++
		}
		g.mu.Unlock()
		if lead {
			g.lead(ctx)
		}
	}
	<-c.done
	return c.res, c.err
}

// lead runs one batch, then hands the rest of the queue to a goroutine so
// the caller, whose request was in that batch, returns at once.
func (g *group[Req, Res]) lead(ctx context.Context) {
	batch := g.take()
	if batch == nil {
		return
	}
	g.run(ctx, batch)
	if g.more() {
		go func() {
			for b := g.take(); b != nil; b = g.take() {
				g.run(ctx, b)
			}
		}()
	}
}

// take removes up to max pending calls; with none left it gives up the
// runner slot and returns nil.
func (g *group[Req, Res]) take() []*groupCall[Req, Res] {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pending) == 0 {
		g.running--
		return nil
	}
	n := min(len(g.pending), g.max)
	batch := g.pending[:n:n]
	for _, c := range batch {
		c.taken = true
	}
	g.pending = append([]*groupCall[Req, Res](nil), g.pending[n:]...)
	return batch
}

// more reports whether calls are still queued; if not, the runner slot is
// given up here.
func (g *group[Req, Res]) more() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pending) == 0 {
		g.running--
		return false
	}
	return true
}

func (g *group[Req, Res]) run(ctx context.Context, batch []*groupCall[Req, Res]) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.timeout)
	defer cancel()
	reqs := make([]Req, len(batch))
	for i, c := range batch {
		reqs[i] = c.req
	}
	res, err := g.exec(ctx, reqs)
	if err != nil && len(batch) > 1 && spoiledByRow(err) {
		// one row spoiled the statement: each request on its own
		for _, c := range batch {
			r, err := g.exec(ctx, []Req{c.req})
			if err == nil {
				c.res = r[0]
			}
			c.err = err
			close(c.done)
		}
		return
	}
	for i, c := range batch {
		if err == nil {
			c.res = res[i]
		}
		c.err = err
		close(c.done)
	}
}

// spoiledByRow reports an error that one row can cause and running the
// rows one by one avoids (a CHECK, unique or foreign-key violation, a
// deadlock). A lost connection or a deadline is not: the statement may have
// committed without its answer reaching us, and running its rows again
// could repeat what is not idempotent; every request gets the error.
func spoiledByRow(err error) bool {
	t := translate(err)
	return !errors.Is(t, ErrUnavailable) && !errors.Is(t, context.DeadlineExceeded) && !errors.Is(t, context.Canceled) ||
		errors.Is(t, errDeadlock)
}

// one runs req through g or, inside a transaction, as a statement of its
// own on that transaction (a batch may not join a caller's transaction).
func one[Req, Res any](ctx context.Context, s *Store, g *group[Req, Res],
	exec func(*Store, context.Context, []Req) ([]Res, error), req Req) (Res, error) {
	if s.tx == nil {
		return g.do(ctx, req)
	}
	rs, err := exec(s, ctx, []Req{req})
	if err != nil {
		var zero Res
		return zero, err
	}
	return rs[0], nil
}

// pgTime is a time as the text a batch statement's `$n::text[]` carries
// and casts (`x::timestamptz`, or `NULLIF(x, ”)::timestamptz` when it may
// be absent): the zero time, or a nil one, is ”.
func pgTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func pgTimeP(t *time.Time) string {
	if t == nil {
		return ""
	}
	return pgTime(*t)
}
