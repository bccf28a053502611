package store_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/store"
)

// stepClock is a host clock off from the real one by an offset the test
// steps, as an NTP step or a resumed VM would.
type stepClock struct{ offset atomic.Int64 }

func (c *stepClock) Now() time.Time      { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *stepClock) set(d time.Duration) { c.offset.Store(int64(d)) }
func (c *stepClock) get() time.Duration  { return time.Duration(c.offset.Load()) }
func abs(d time.Duration) time.Duration  { return max(d, -d) }
func within(d, bound time.Duration) bool { return abs(d) <= bound }

// TestClockFollowsPostgres: the store's clock is Postgres' clock, whatever
// the host clock says at start and however it steps afterwards.
func TestClockFollowsPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, app := testenv.PostgresURLs(t)
	if err := store.Migrate(ctx, owner, testenv.AppRole); err != nil {
		t.Fatal(err)
	}
	clk := &stepClock{}
	clk.set(-3 * time.Hour) // a host that starts three hours behind
	st, err := store.Open(ctx, store.Config{URL: app}, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// off is Store.Now() minus Postgres' clock, read inside one round trip.
	off := func() time.Duration {
		t.Helper()
		before := st.Now()
		var dbNow time.Time
		if err := st.DB().QueryRowContext(ctx, `SELECT clock_timestamp()`).Scan(&dbNow); err != nil {
			t.Fatal(err)
		}
		after := st.Now()
		if after.Before(before) {
			t.Fatalf("store clock went backwards: %v then %v", before, after)
		}
		mid := before.Add(after.Sub(before) / 2)
		return mid.Sub(dbNow)
	}
	const bound = 60 * time.Millisecond // the absorb tolerance plus a loaded machine's round trip
	if d := off(); !within(d, bound) {
		t.Fatalf("host 3 h behind: store clock off Postgres by %v", d)
	}
	for _, step := range []time.Duration{time.Hour, 0, -time.Hour, 24 * time.Hour, -90 * time.Second} {
		prev := clk.get()
		clk.set(step)
		if d := off(); !within(d, bound) {
			t.Errorf("host clock stepped %v → %v: store clock off Postgres by %v", prev, step, d)
		}
		// and the next readings stay with it
		time.Sleep(20 * time.Millisecond)
		if d := off(); !within(d, bound) {
			t.Errorf("after the step to %v: store clock off Postgres by %v", step, d)
		}
	}
	// What it writes is on that clock too.
	if st.Now().Location() != time.UTC {
		t.Errorf("store clock not UTC: %v", st.Now().Location())
	}
	tn, err := st.CreateTenant(ctx, "clock")
	if err != nil {
		t.Fatal(err)
	}
	p := newPayment(t, st, tn, 100)
	var created time.Time
	if err := st.DB().QueryRowContext(ctx, `SELECT e.created_at FROM payment_events e WHERE e.payment_id = $1`, p.ID).Scan(&created); err != nil {
		t.Fatal(err)
	}
	var dbNow time.Time
	if err := st.DB().QueryRowContext(ctx, `SELECT clock_timestamp()`).Scan(&dbNow); err != nil {
		t.Fatal(err)
	}
	if d := dbNow.Sub(created); d < -bound || d > 5*time.Second {
		t.Errorf("audit row written with created_at %v, Postgres clock %v (host clock off by %v)", created, dbNow, clk.get())
	}
}
