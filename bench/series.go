package bench

// The per-second time series of a run (-json "series"), which -chart draws.

import "time"

// seriesPoint is one second of a run, counted from the first request.
type seriesPoint struct {
	Second    int     `json:"second"`
	Accepted  int     `json:"accepted"`  // requests answered 2xx in this second
	Completed int     `json:"completed"` // payments that reached their final status in this second
	IntakeP50 float64 `json:"intake_p50_ms"`
	IntakeP95 float64 `json:"intake_p95_ms"`
	IntakeP99 float64 `json:"intake_p99_ms"`
	FinalP50  float64 `json:"time_to_final_p50_ms"` // of the payments completed in this second
	FinalP99  float64 `json:"time_to_final_p99_ms"`
}

// buildSeries buckets acceptances and completions by second since t0.
func buildSeries(t0 time.Time, accepted []timed, completed []timed) []seriesPoint {
	// at most a day of points; anything outside [t0, t0+day) is dropped
	const maxSeconds = 24 * 60 * 60
	sec := func(x timed) (int, bool) {
		if t0.IsZero() || x.at.IsZero() {
			return 0, false
		}
		s := max(int(x.at.Sub(t0)/time.Second), 0)
		return s, s < maxSeconds
	}
	last := -1
	for _, xs := range [][]timed{accepted, completed} {
		for _, x := range xs {
			if s, ok := sec(x); ok {
				last = max(last, s)
			}
		}
	}
	if last < 0 {
		return []seriesPoint{}
	}
	lat := make([][]time.Duration, last+1)
	ttf := make([][]time.Duration, last+1)
	for _, x := range accepted {
		if s, ok := sec(x); ok {
			lat[s] = append(lat[s], x.d)
		}
	}
	for _, x := range completed {
		if s, ok := sec(x); ok {
			ttf[s] = append(ttf[s], x.d)
		}
	}
	out := make([]seriesPoint, last+1)
	for s := range out {
		li, fi := distOf(lat[s]), distOf(ttf[s])
		out[s] = seriesPoint{Second: s, Accepted: len(lat[s]), Completed: len(ttf[s]), IntakeP50: li.P50, IntakeP95: li.P95,
			IntakeP99: li.P99, FinalP50: fi.P50, FinalP99: fi.P99}
	}
	return out
}

// timed is an event at a time with a duration (latency or time to final).
type timed struct {
	at time.Time
	d  time.Duration
}
