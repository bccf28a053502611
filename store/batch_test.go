package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lib/pq"
)

// TestGroupBatches: concurrent callers share statements, each gets its own
// result, a lone caller runs at once, and a statement that fails as a whole
// is run again row by row so only the request at fault sees the error.
func TestGroupBatches(t *testing.T) {
	t.Parallel()
	var statements, rows, maxRows atomic.Int64
	errBad := &pq.Error{Code: "23514", Message: "row 13 violates a constraint"}
	exec := func(_ context.Context, reqs []int) ([]string, error) {
		statements.Add(1)
		rows.Add(int64(len(reqs)))
		for {
			m := maxRows.Load()
			if int64(len(reqs)) <= m || maxRows.CompareAndSwap(m, int64(len(reqs))) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond) // a round trip
		out := make([]string, len(reqs))
		for i, r := range reqs {
			if r == 13 {
				return nil, errBad
			}
			out[i] = fmt.Sprint("done ", r)
		}
		return out, nil
	}
	g := newGroup(Batch{MaxRows: 16, Runners: 2, MaxRunners: 2, Timeout: time.Second}, exec)

	// alone: one statement of one row
	if got, err := g.do(context.Background(), 1); err != nil || got != "done 1" {
		t.Fatalf("lone call = %q, %v", got, err)
	}
	if statements.Load() != 1 || rows.Load() != 1 {
		t.Fatalf("lone call took %d statements, %d rows", statements.Load(), rows.Load())
	}

	statements.Store(0)
	rows.Store(0)
	const n = 200
	var wg sync.WaitGroup
	results := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = g.do(context.Background(), i)
		}()
	}
	wg.Wait()
	for i := range n {
		switch {
		case i == 13:
			var pe *pq.Error
			if !errors.As(errs[i], &pe) || pe != errBad {
				t.Errorf("request 13: %q, %v; want its own error", results[i], errs[i])
			}
		case errs[i] != nil || results[i] != fmt.Sprint("done ", i):
			t.Errorf("request %d: %q, %v", i, results[i], errs[i])
		}
	}
	if maxRows.Load() > 16 {
		t.Errorf("a statement of %d rows, over the bound of 16", maxRows.Load())
	}
	// 200 calls through 2 runners of 2 ms statements: far fewer statements
	// than calls (plus the row-by-row rerun of the batch that held 13)
	if s := statements.Load(); s >= n/2 {
		t.Errorf("%d statements for %d calls: not batched", s, n)
	}
	t.Logf("%d calls in %d statements (%d rows run, largest statement %d rows)", n, statements.Load(), rows.Load(), maxRows.Load())

	// and the runners are given back: a later lone call runs at once
	statements.Store(0)
	if got, err := g.do(context.Background(), 7); err != nil || got != "done 7" || statements.Load() != 1 {
		t.Fatalf("call after the storm = %q, %v (%d statements)", got, err, statements.Load())
	}
	for deadline := time.Now().Add(time.Second); ; time.Sleep(time.Millisecond) {
		g.mu.Lock()
		running, pending := g.running, len(g.pending)
		g.mu.Unlock()
		if running == 0 && pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle group holds %d runners and %d pending calls", running, pending)
		}
	}
}

// TestGroupStall: a statement stuck on a lock does not hold up the requests
// behind it: after Stall they run in a statement of their own.
func TestGroupStall(t *testing.T) {
	t.Parallel()
	stuck := make(chan struct{})
	exec := func(_ context.Context, reqs []int) ([]int, error) {
		for _, r := range reqs {
			if r == 0 {
				<-stuck // the first request waits on a row lock held elsewhere
			}
		}
		return reqs, nil
	}
	g := newGroup(Batch{MaxRows: 16, Runners: 1, MaxRunners: 2, Stall: 10 * time.Millisecond, Timeout: time.Second}, exec)
	first := make(chan int, 1)
	go func() { r, _ := g.do(context.Background(), 0); first <- r }()
	time.Sleep(20 * time.Millisecond)
	done := make(chan int, 1)
	go func() { r, _ := g.do(context.Background(), 1); done <- r }()
	select {
	case r := <-done:
		if r != 1 {
			t.Fatalf("second request = %d", r)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a request waited behind a stuck statement")
	}
	close(stuck)
	if r := <-first; r != 0 {
		t.Fatalf("first request = %d", r)
	}
}

// TestGroupNoRerunAfterLostConnection: a statement that failed with its
// connection (it may have committed) is not run again row by row: every
// request gets the error, and nothing runs twice.
func TestGroupNoRerunAfterLostConnection(t *testing.T) {
	t.Parallel()
	var runs atomic.Int64
	gate := make(chan struct{})
	exec := func(_ context.Context, reqs []int) ([]int, error) {
		runs.Add(1)
		if len(reqs) > 1 {
			return nil, errors.New("read tcp: connection reset by peer")
		}
		<-gate // the first, lone request holds the runner while the rest queue
		return reqs, nil
	}
	g := newGroup(Batch{MaxRows: 16, Runners: 1, MaxRunners: 1, Timeout: time.Second}, exec)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range 6 {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = g.do(context.Background(), i) }()
		if i == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(20 * time.Millisecond)
	close(gate)
	wg.Wait()
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	if failed != 5 || runs.Load() != 2 {
		t.Fatalf("%d requests failed in %d statements; want the 5 of the lost batch failed in 2 statements, none run again", failed, runs.Load())
	}
}
