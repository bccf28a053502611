package processor_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/processor"
)

// jumpClock is the host clock the store is given, set off from the real one
// by an offset that the test changes mid-run (an NTP step, a VM resumed, a
// bad host).
type jumpClock struct{ offset atomic.Int64 }

func (c *jumpClock) Now() time.Time           { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *jumpClock) Set(offset time.Duration) { c.offset.Store(int64(offset)) }

// TestClockJumps runs the real processor (asynq on real Redis, real
// Postgres, the sweeper every 200 ms as the scheduler would) while the host
// clock given to the store jumps an hour ahead, back, and an hour behind.
// asynq keeps its own clock. The store's clock follows Postgres' (dbClock),
// so no schedule written during a jump may be an hour off; every payment
// must still reach a final status within a bound, no payment is charged
// twice, and every transition is audited and allowed.
func TestClockJumps(t *testing.T) {
	t.Parallel()
	clk := &jumpClock{}
	h := testenv.Start(t, testenv.Options{Now: clk.Now, Processor: processor.Config{SweepGrace: 200 * time.Millisecond,
		SweepLease: 2 * time.Second}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the scheduler's periodic sweep
		defer wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_, _ = h.Processor.Sweep(ctx)
			}
		}
	}()
	defer func() { cancel(); wg.Wait() }()

	mix := []struct{ method, pm string }{
		{"CARD", "pm_card_visa"},
		{"CARD", "pm_card_flaky"},
		{"CARD", "pm_card_insufficient_funds"},
		{"CARD", "pm_card_timeout_after_charge"},
		{"ACH", "ba_123456789"},
		{"ACH", "ba_10001"},
	}
	var ids []string
	wave := func() {
		for _, m := range mix {
			ids = append(ids, h.CreatePayment(m.method, m.pm, "3.00"))
		}
	}
	// each wave's steps get scheduled under one offset and run under the next
	for _, offset := range []time.Duration{0, time.Hour, 0, -time.Hour, -time.Hour} {
		clk.Set(offset)
		wave()
		time.Sleep(400 * time.Millisecond)
		// what is due is written on Postgres' clock, not the jumped one
		var secs float64
		if err := h.Store.DB().QueryRow(`SELECT COALESCE(EXTRACT(EPOCH FROM max(abs_gap)), 0) FROM (
			SELECT greatest(next_step_at - clock_timestamp(), clock_timestamp() - next_step_at) AS abs_gap
			FROM payments WHERE next_step IS NOT NULL) g`).Scan(&secs); err != nil {
			t.Fatal(err)
		}
		if ahead := time.Duration(secs * float64(time.Second)); ahead > 10*time.Minute {
			t.Errorf("host clock %v: a step is scheduled %v away from Postgres' now", offset, ahead)
		}
	}

	const bound = 45 * time.Second // generous for a loaded 2-core machine
	deadline := time.Now().Add(bound)
	for _, id := range ids {
		for {
			p, err := h.Store.GetPayment(context.Background(), "", id)
			if err != nil {
				t.Fatal(err)
			}
			if p.Status.Final() {
				checkAudit(t, h, p)
				if n := h.Sandbox.ChargesFor(id); n > 1 || (p.Status == payment.StatusSucceeded && n != 1) {
					t.Errorf("%s (%s): %s with %d ledger charges", id, p.PaymentMethodID, p.Status, n)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s (%s) not final within %s of the last jump: %s, next %s at %v (store clock %v)",
					id, p.PaymentMethodID, bound, p.Status, p.NextStep, p.NextStepAt, clk.Now())
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	if d := h.Sandbox.DoubleCharged(); len(d) != 0 {
		t.Fatalf("double charged: %v", d)
	}
}
