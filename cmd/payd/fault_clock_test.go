package main

// Clock jumps in the process fault harness. A payd process of the harness
// that may have its clock jumped is the test binary's payd child (TestMain)
// with PAYD_TEST_CLOCK_FILE naming a file of its own; its host clock
// (hostClock, handed to store.Open) is the real clock plus the Go duration
// in that file, read again at most every fileClockRead. The clock_jump fault
// writes +1h, 0 and -1h there for a worker, then the scheduler, then intake,
// while the load runs, and last wipes Redis while a worker and intake run an
// hour ahead.

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// envTestClockFile names the clock file of a payd child of the test binary.
const envTestClockFile = "PAYD_TEST_CLOCK_FILE"

// fileClockRead is how often a fileClock reads its file again.
const fileClockRead = 50 * time.Millisecond

// fileClock returns the real clock plus the offset written in path (a Go
// duration such as "1h" or "-1h"); a missing file is 0, an unreadable or
// unparsable one keeps the last offset.
func fileClock(path string) func() time.Time {
	var mu sync.Mutex
	var offset time.Duration
	var readAt time.Time
	return func() time.Time {
		now := time.Now()
		mu.Lock()
		if readAt.IsZero() || now.Sub(readAt) >= fileClockRead {
			readAt = now
			b, err := os.ReadFile(path)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				offset = 0
			case err == nil:
				if d, perr := time.ParseDuration(strings.TrimSpace(string(b))); perr == nil {
					offset = d
				}
			}
		}
		off := offset
		mu.Unlock()
		return now.Add(off)
	}
}

func TestFileClock(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "clock")
	clk := fileClock(path)
	near := func(what string, got time.Time, off time.Duration) {
		t.Helper()
		if d := got.Sub(time.Now().Add(off)); d < -time.Second || d > time.Second {
			t.Errorf("%s: clock is %s off the real one, want %s", what, got.Sub(time.Now()).Round(time.Millisecond), off)
		}
	}
	near("no file", clk(), 0)
	for _, c := range []struct {
		text string
		want time.Duration
	}{{"1h\n", time.Hour}, {"0s", 0}, {"-1h", -time.Hour}, {"not a duration", -time.Hour}, {" 90m ", 90 * time.Minute}} {
		if err := os.WriteFile(path, []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(fileClockRead + 10*time.Millisecond)
		near("file "+c.text, clk(), c.want)
	}
	// read again at most every fileClockRead
	if err := os.WriteFile(path, []byte("2h"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(fileClockRead + 10*time.Millisecond)
	clk()
	if err := os.WriteFile(path, []byte("0s"), 0o644); err != nil {
		t.Fatal(err)
	}
	near("just after a read", clk(), 2*time.Hour)
	time.Sleep(fileClockRead + 10*time.Millisecond)
	near("a read later", clk(), 0)
	os.Remove(path)
	time.Sleep(fileClockRead + 10*time.Millisecond)
	near("file removed", clk(), 0)
}

// clockFile is the clock file of a payd process: one per worker and one
// each for intake (shared by every intake that replaces a killed one) and
// the scheduler.
func (c *faultCluster) clockFile(name string) string {
	if strings.HasPrefix(name, "intake") {
		name = "intake"
	}
	return filepath.Join(c.dir, "clock-"+name)
}

// setClock sets the host clock offset of the process called name (or of
// every intake), written atomically.
func (c *faultCluster) setClock(name string, off time.Duration) {
	c.t.Helper()
	path := c.clockFile(name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(off.String()+"\n"), 0o644); err != nil {
		c.t.Fatalf("clock of %s: %v", name, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		c.t.Fatalf("clock of %s: %v", name, err)
	}
	if strings.HasPrefix(name, "intake") {
		c.noteIntakeClock(off)
	}
}

// noteIntakeClock records when intake's clock ran ahead (a session's
// expires_on can then be refused as in the past: fault_session_test.go).
func (c *faultCluster) noteIntakeClock(off time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	n := len(c.intakeAhead)
	open := n > 0 && c.intakeAhead[n-1][1].IsZero()
	switch {
	case off > 0 && !open:
		c.intakeAhead = append(c.intakeAhead, [2]time.Time{now, {}})
	case off <= 0 && open:
		c.intakeAhead[n-1][1] = now
	}
}

// intakeAheadDuring reports whether intake's clock ran ahead at some time
// within [from, to], give or take the clock file's read interval.
func (c *faultCluster) intakeAheadDuring(from, to time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	slack := 2 * fileClockRead
	for _, iv := range c.intakeAhead {
		end := iv[1]
		if end.IsZero() {
			end = time.Now()
		}
		if !iv[0].After(to.Add(slack)) && !end.Add(slack).Before(from) {
			return true
		}
	}
	return false
}

// chaosClockHold is how long a jumped clock stays off before the next step.
const chaosClockHold = 1500 * time.Millisecond

// chaosClockJump jumps host clocks while the load runs: a worker's +1h,
// back to 0, -1h, back; the same for the scheduler, then for intake; then,
// with a worker and intake an hour ahead, FLUSHALL (the sweeper must still
// find every step whose task the flush took, though the step was scheduled
// by a clock an hour ahead), and the clocks back to 0.
func chaosClockJump(r *chaosRun) {
	c := r.c
	ws := r.aliveWorkers()
	if len(ws) == 0 {
		r.t.Fatalf("clock_jump: no worker alive")
	}
	worker := ws[0].name
	jumps := 0
	jump := func(who string) {
		for _, off := range []time.Duration{time.Hour, 0, -time.Hour, 0} {
			c.setClock(who, off)
			jumps++
			if off != 0 {
				time.Sleep(chaosClockHold)
			} else {
				time.Sleep(chaosClockHold / 2)
			}
		}
	}
	jump(worker)
	jump("scheduler")
	jump("intake")
	c.setClock(worker, time.Hour)
	c.setClock("intake", time.Hour)
	jumps += 2
	time.Sleep(chaosClockHold)
	waited := r.flushAllWhenRedisIsOurs()
	time.Sleep(time.Second)
	c.setClock(worker, 0)
	c.setClock("intake", 0)
	jumps += 2
	r.note("clock_jump", "host clock +1h, 0, -1h, 0 (%s each) of %s, of the scheduler, of intake; then %s and intake +1h, "+
		"FLUSHALL (after waiting %s for Redis), clocks back to 0 a second later; %d clock writes",
		chaosClockHold, worker, worker, waited.Round(time.Millisecond), jumps)
}

// flushAllWhenRedisIsOurs runs FLUSHALL once no other fault holds Redis
// (stopped, restarting, being flushed), retrying a refused connection, and
// returns how long it waited.
func (r *chaosRun) flushAllWhenRedisIsOurs() time.Duration {
	start := time.Now()
	r.redisMu.Lock()
	defer r.redisMu.Unlock()
	var err error
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = r.c.rdb.FlushAll(ctx).Err()
		cancel()
		if err == nil {
			return time.Since(start)
		}
	}
	r.t.Fatalf("FLUSHALL: %v", err)
	return 0
}

// clockSkewedRows counts the audit rows whose created_at (the writer's
// store clock) is more than 10 minutes off their commit time: rows written
// under a jumped clock. Zero once the store's clock no longer follows the
// host clock. -1 when the database keeps no commit timestamps.
func clockSkewedRows(c *faultCluster) (ahead, behind int) {
	if !c.commitTS {
		return -1, -1
	}
	err := c.db.QueryRow(`SELECT
			count(*) FILTER (WHERE created_at > pg_xact_commit_timestamp(xmin) + interval '10 minutes'),
			count(*) FILTER (WHERE created_at < pg_xact_commit_timestamp(xmin) - interval '10 minutes')
		FROM payment_events`).Scan(&ahead, &behind)
	if err != nil {
		c.t.Logf("skewed audit rows: %v", err)
		return -1, -1
	}
	return ahead, behind
}
