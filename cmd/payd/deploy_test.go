package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/metrics"
	"github.com/payd/payd/monitor"
	"github.com/payd/payd/store"
)

// exportedMetrics gathers the names /metrics really exports: the business
// collectors and the monitor's queue collector, read from real Redis and
// Postgres.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	ctx := context.Background()
	dbURL := testenv.PostgresURL(t)
	if err := store.Migrate(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Config{URL: dbURL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	opt, err := asynq.ParseRedisURI(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	// every vector needs one child to be gathered
	m.PaymentsCreated.WithLabelValues("CARD", "payments").Inc()
	m.Transitions.WithLabelValues("PENDING", "PROCESSING").Inc()
	m.AttemptOutcomes.WithLabelValues("CARD", "succeeded").Inc()
	m.AttemptLatency.WithLabelValues("CARD", "succeeded").Observe(0.01)
	m.TimeToTerminal.WithLabelValues("CARD", "SUCCEEDED").Observe(0.1)
	m.IdempotentReplays.WithLabelValues("r").Inc()
	m.SweeperEnqueued.WithLabelValues("submit").Inc()
	m.Enqueues.WithLabelValues("submit", "ok").Inc()
	m.HTTPRequests.WithLabelValues("r", "200").Inc()
	m.HTTPLatency.WithLabelValues("r").Observe(0.01)
	m.TaskOutcomes.WithLabelValues("payment:submit", "ok").Inc()
	m.Voids.WithLabelValues("cancel", "voided").Inc()
	m.LateCharges.WithLabelValues("void").Inc()
	m.ReconciliationFindings.WithLabelValues("unknown_charge").Inc()
	m.ReconciliationRuns.WithLabelValues("ok").Inc()
	m.ReviewResolutions.WithLabelValues("SUCCEEDED", "operator").Inc()
	reg.MustRegister(monitor.NewCollector(insp, st))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		n := f.GetName()
		names[n] = true
		if f.GetType().String() == "HISTOGRAM" {
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		}
	}
	for _, want := range []string{"payd_queue_tasks", "payd_queue_latency_seconds", "payd_payments_overdue",
		"payd_payments_in_review", "payd_reconciliation_findings_open", "payd_payment_flows_open"} {
		if !names[want] {
			t.Fatalf("the monitor does not export %s", want)
		}
	}
	return names
}

var metricName = regexp.MustCompile(`\bpayd_[a-z_]+\b`)

// TestDashboardAndAlertsUseRealMetrics: every query in the Grafana dashboard
// and every alert rule names only metrics /metrics exports.
func TestDashboardAndAlertsUseRealMetrics(t *testing.T) {
	t.Parallel()
	names := exportedMetrics(t)
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	readJSON(t, "../../deploy/grafana/payd.json", &dash)
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	docs := readYAML(t, "../../deploy/prometheus/alerts.yaml")
	if err := docs[0].Decode(&rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("rule %+v lacks a name or expression", r)
			}
			exprs = append(exprs, r.Expr)
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("found only %d queries", len(exprs))
	}
	for _, e := range exprs {
		found := metricName.FindAllString(e, -1)
		if len(found) == 0 {
			t.Errorf("query %q names no payd metric", e)
		}
		for _, n := range found {
			if !names[n] {
				t.Errorf("query %q uses %s, which /metrics does not export", e, n)
			}
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readYAML(t *testing.T, path string) []*yaml.Node {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		if err := dec.Decode(&n); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, &n)
	}
	if len(docs) == 0 {
		t.Fatalf("%s is empty", path)
	}
	return docs
}
