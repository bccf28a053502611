// Package monitor owns the monitor role's gauges, read at scrape time from
// Redis (asynq's Inspector: queue sizes and latency) and from Postgres
// (overdue steps, payments in review by age, open reconciliation
// findings). Register them in one process only: every scrape reads both.
// It imports store and jobs; it must not import intake, processor or cli.
package monitor

import (
	"context"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/payd/payd/jobs"
	"github.com/payd/payd/store"
)

// Collector exports the monitor's gauges at scrape time.
type Collector struct {
	insp     *asynq.Inspector
	store    *store.Store
	tasks    *prometheus.Desc
	latency  *prometheus.Desc
	overdue  *prometheus.Desc
	review   *prometheus.Desc
	findings *prometheus.Desc
	flows    *prometheus.Desc
	backlog  *prometheus.Desc
	up       *prometheus.Desc
}

// NewCollector builds the collector over an inspector and the store.
func NewCollector(insp *asynq.Inspector, st *store.Store) *Collector {
	return &Collector{insp: insp, store: st,
		tasks: prometheus.NewDesc("payd_queue_tasks", "Tasks in each asynq queue by state.", []string{"queue", "state"}, nil),
		latency: prometheus.NewDesc("payd_queue_latency_seconds",
			"Age of the oldest pending task in each queue.", []string{"queue"}, nil),
		overdue: prometheus.NewDesc("payd_payments_overdue",
			"Payments and refunds whose next step is overdue by more than a minute.", nil, nil),
		review: prometheus.NewDesc("payd_payments_in_review",
			"Payments in REQUIRES_REVIEW, by how long they have been there (under_1h, 1h_to_24h, over_24h).", []string{"age"}, nil),
		findings: prometheus.NewDesc("payd_reconciliation_findings_open",
			"Reconciliation findings open for an operator, by kind.", []string{"kind"}, nil),
		flows: prometheus.NewDesc("payd_payment_flows_open",
			"Payment flows not settled or canceled, by status (pending, processing, failed: blocked until an operator or a new payin method acts).",
			[]string{"status"}, nil),
		backlog: prometheus.NewDesc("payd_webhook_deliveries_pending",
			"The webhook outbox backlog: deliveries not yet delivered nor failed (new, or waiting for a retry).", nil, nil),
		up: prometheus.NewDesc("payd_monitor_source_up", "Whether the monitor could read a source (redis, postgres).", []string{"source"}, nil),
	}
}

func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.tasks
	ch <- c.latency
	ch <- c.overdue
	ch <- c.review
	ch <- c.findings
	ch <- c.flows
	ch <- c.backlog
	ch <- c.up
}

func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	redisUp := 1.0
	existing := map[string]bool{}
	if qs, err := c.insp.Queues(); err != nil {
		redisUp = 0
	} else {
		for _, q := range qs {
			existing[q] = true
		}
	}
	for q := range jobs.Queues {
		info := &asynq.QueueInfo{} // a queue that never held a task does not exist yet: all zero
		if existing[q] {
			if got, err := c.insp.GetQueueInfo(q); err == nil {
				info = got
			} else {
				redisUp = 0
			}
		}
		for state, n := range map[string]int{"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived, "completed": info.Completed} {
			ch <- prometheus.MustNewConstMetric(c.tasks, prometheus.GaugeValue, float64(n), q, state)
		}
		ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, info.Latency.Seconds(), q)
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, redisUp, "redis")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pgUp := 1.0
	n, err := c.store.OverdueCount(ctx, c.store.Now().Add(-time.Minute))
	if err != nil {
		pgUp = 0
	}
	ch <- prometheus.MustNewConstMetric(c.overdue, prometheus.GaugeValue, float64(n))
	if ages, err := c.store.CountReview(ctx); err != nil {
		pgUp = 0
	} else {
		for age, n := range ages {
			ch <- prometheus.MustNewConstMetric(c.review, prometheus.GaugeValue, float64(n), age)
		}
	}
	if open, err := c.store.CountFindings(ctx, store.FindingOpen); err != nil {
		pgUp = 0
	} else {
		for _, kind := range store.FindingKinds {
			ch <- prometheus.MustNewConstMetric(c.findings, prometheus.GaugeValue, float64(open[kind]), kind)
		}
	}
	if open, err := c.store.CountOpenFlows(ctx); err != nil {
		pgUp = 0
	} else {
		for status, n := range open {
			ch <- prometheus.MustNewConstMetric(c.flows, prometheus.GaugeValue, float64(n), status)
		}
	}
	if n, err := c.store.PendingDeliveries(ctx); err != nil {
		pgUp = 0
	} else {
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(n))
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, pgUp, "postgres")
}
