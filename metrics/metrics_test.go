package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestSessionMetrics: the payment-session collectors are registered under
// their documented names, with bounded labels only.
func TestSessionMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.SessionsCreated.Inc()
	m.SessionsFinished.WithLabelValues("completed").Inc()
	m.SessionSubmitLatency.WithLabelValues("done").Observe(0.2)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"payd_payment_sessions_created_total": false, "payd_payment_sessions_finished_total": false,
		"payd_payment_session_submit_duration_seconds": false}
	for _, f := range fams {
		if _, ok := want[f.GetName()]; ok {
			want[f.GetName()] = true
			for _, mt := range f.GetMetric() {
				for _, l := range mt.GetLabel() {
					if l.GetName() != "outcome" && l.GetName() != "answer" {
						t.Errorf("%s has label %s", f.GetName(), l.GetName())
					}
				}
			}
		}
	}
	for name, seen := range want {
		if !seen {
			t.Errorf("%s not exported", name)
		}
	}
}
