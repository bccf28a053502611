package jobs

import (
	"testing"
	"time"
)

// TestWhenUnderClockSkew: a due time computed on a store clock that is off
// from asynq's runs after the shorter of its two readings, never an hour
// late.
func TestWhenUnderClockSkew(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		skew  time.Duration // store clock minus real clock
		at    time.Duration // due time, relative to the real clock
		delay time.Duration // wanted ProcessAt, relative to the real clock; 0: now
	}{
		{"no skew, due later", 0, 5 * time.Second, 5 * time.Second},
		{"no skew, due now", 0, 0, 0},
		{"store an hour ahead, backoff of 5 s", time.Hour, time.Hour + 5*time.Second, 5 * time.Second},
		{"store an hour behind, backoff of 5 s", -time.Hour, -time.Hour + 5*time.Second, 0},
		{"store an hour behind, rail settles in 5 s", -time.Hour, 5 * time.Second, 5 * time.Second},
		{"store an hour ahead, rail settles in 5 s", time.Hour, 5 * time.Second, 0},
	} {
		real := time.Now()
		e := &Enqueuer{Now: func() time.Time { return time.Now().Add(c.skew) }}
		got := e.when(real.Add(c.at))
		if c.delay == 0 {
			if !got.IsZero() {
				t.Errorf("%s: ProcessAt %v, want none", c.name, got.Sub(real))
			}
			continue
		}
		if d := got.Sub(real); d < c.delay-time.Second || d > c.delay+time.Second {
			t.Errorf("%s: ProcessAt in %v, want %v", c.name, d, c.delay)
		}
	}
	if got := (&Enqueuer{}).when(time.Time{}); !got.IsZero() {
		t.Errorf("zero time: %v", got)
	}
}
