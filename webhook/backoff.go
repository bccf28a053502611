package webhook

import (
	"math/rand/v2"
	"time"
)

// The retry schedule of a delivery, in units (PAYD_RETRY_UNIT, one second
// in production, which scales every schedule so tests run it in seconds):
// 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, then every 12 h,
// each ±20 % at random so that a receiver back from an outage is not hit
// by every retry at once, until Window (3 days) after the event: the try
// that would start after it is not made, and the delivery fails.
var steps = []int64{5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200}

// Window is how long a delivery is tried, in units.
const Window = 3 * 24 * 3600

// NextTry is when the try after attempt (1 for the first try) starts,
// counted from the event at eventAt with unit; ok false when it would
// start past the window: the delivery has failed.
func NextTry(eventAt, now time.Time, attempt int, unit time.Duration) (time.Time, bool) {
	i := min(max(attempt, 1)-1, len(steps)-1)
	d := time.Duration(steps[i]) * unit
	d += time.Duration((rand.Float64()*0.4 - 0.2) * float64(d)) // jitter ±20 %
	next := now.Add(d)
	if next.Sub(eventAt) > Window*unit {
		return time.Time{}, false
	}
	return next, true
}

// DisableAfter is how long an endpoint may fail every try before it is
// disabled, in units: two days. A failing endpoint is tried at least every
// 12 h (+20 %), so a try lands past this mark before the first delivery's
// 3-day window closes, and disables it; its pending deliveries fail then.
const DisableAfter = 2 * 24 * 3600
