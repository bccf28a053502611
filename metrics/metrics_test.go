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

// TestZeroChildren: the children alerts select by one label value exist at
// 0 from the start (a child born at its first increment hides that
// increment from rate and increase).
func TestZeroChildren(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.InitSteps("submit", "refund")
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			key := f.GetName()
			for _, l := range mt.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = true
			if v := mt.GetCounter().GetValue(); v != 0 {
				t.Errorf("%s = %v at start", key, v)
			}
		}
	}
	for _, want := range []string{
		"payd_reconciliation_runs_total,result=error",
		"payd_late_charges_total,source=void", "payd_late_charges_total,source=notification", "payd_late_charges_total,source=reconciliation",
		"payd_voids_total,outcome=gave_up,reason=expiry",
		"payd_webhook_deliveries_total,outcome=failed",
		"payd_webhook_endpoints_disabled_total",
		"payd_enqueues_total,result=error,step=submit", "payd_enqueues_total,result=ok,step=refund",
		"payd_sweeper_reenqueued_total,step=refund",
	} {
		if !got[want] {
			t.Errorf("%s not exported at start", want)
		}
	}
}
