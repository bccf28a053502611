package store

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// Clock tuning. A host clock step larger than jumpTolerance between two
// readings is absorbed at once; slower drift is corrected by the resync.
const (
	jumpTolerance   = 50 * time.Millisecond
	clockResync     = 30 * time.Second
	clockSyncMaxRTT = 250 * time.Millisecond
)

// dbClock is the store's clock: the host's clock (injected, for tests)
// corrected to PostgreSQL's. Every time payd writes — audit rows, attempt
// times, each step's next_step_at that the sweeper compares — and every
// schedule computed from Store.Now is on the database's clock, so payd
// processes whose clocks are off from each other, or one whose clock steps
// (an NTP step, a VM resumed), still agree on what is due. A step of the
// host clock is noticed on the next reading, by comparing how far the host
// clock moved with how far the monotonic clock moved, and absorbed into the
// offset; the offset itself is measured again every clockResync.
type dbClock struct {
	host func() time.Time

	mu     sync.Mutex
	offset time.Duration // Postgres minus host, at the last sync, plus absorbed steps
	wall   time.Time     // the host reading at the last Now, monotonic reading stripped
	mono   time.Time     // time.Now() at the last Now (monotonic)
}

func newDBClock(host func() time.Time) *dbClock {
	c := &dbClock{host: host}
	c.wall, c.mono = host().Round(0), time.Now()
	return c
}

// Now returns the host's time corrected to Postgres', in UTC.
func (c *dbClock) Now() time.Time {
	h := c.host().Round(0)
	m := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if step := h.Sub(c.wall) - m.Sub(c.mono); step > jumpTolerance || step < -jumpTolerance {
		c.offset -= step
	}
	c.wall, c.mono = h, m
	return h.Add(c.offset).UTC()
}

// sync measures the offset of the host clock from Postgres' clock: the
// database time taken against the midpoint of the round trip. A slow round
// trip (a loaded database) says little and is skipped.
func (c *dbClock) sync(ctx context.Context, db *sql.DB) error {
	m0 := time.Now()
	var dbNow time.Time
	if err := db.QueryRowContext(ctx, `SELECT clock_timestamp()`).Scan(&dbNow); err != nil {
		return err
	}
	rtt := time.Since(m0)
	if rtt > clockSyncMaxRTT {
		return nil
	}
	h := c.host().Round(0)
	m := time.Now()
	c.mu.Lock()
	c.offset = dbNow.Sub(h) + rtt/2
	c.wall, c.mono = h, m
	c.mu.Unlock()
	return nil
}

// run resyncs every clockResync until ctx ends.
func (c *dbClock) run(ctx context.Context, db *sql.DB) {
	t := time.NewTicker(clockResync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_ = c.sync(sctx, db)
			cancel()
		}
	}
}
