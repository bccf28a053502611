// Package metrics owns payd's Prometheus collectors. They are built from a
// prometheus.Registerer and injected; there is no package-level state and no
// promauto. Labels are bounded sets (status, method, outcome, step, route),
// never IDs. It imports only prometheus and the standard library.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the business collectors.
type Metrics struct {
	PaymentsCreated   *prometheus.CounterVec   // method, surface
	Transitions       *prometheus.CounterVec   // from, to
	AttemptOutcomes   *prometheus.CounterVec   // method, outcome
	AttemptLatency    *prometheus.HistogramVec // method, outcome
	TimeToTerminal    *prometheus.HistogramVec // method, status
	IdempotentReplays *prometheus.CounterVec   // route
	SweeperEnqueued   *prometheus.CounterVec   // step
	Enqueues          *prometheus.CounterVec   // step, result
	HTTPRequests      *prometheus.CounterVec   // route, code
	HTTPLatency       *prometheus.HistogramVec // route
	TaskOutcomes      *prometheus.CounterVec   // task_type, outcome
	// gateway notifications (hints): received by intake, then acted on by a worker
	GatewayNotifications      *prometheus.CounterVec // type, outcome
	GatewayNotificationChecks *prometheus.CounterVec // type, outcome
	// voids at the gateway (cancel, expiry), charges that landed for a
	// payment payd held as not charged, reconciliation and review
	Voids                  *prometheus.CounterVec // reason (cancel, expiry), outcome
	LateCharges            *prometheus.CounterVec // source (void, notification, reconciliation)
	ReconciliationFindings *prometheus.CounterVec // kind: new findings only
	ReconciliationRuns     *prometheus.CounterVec // result (ok, error)
	ReviewResolutions      *prometheus.CounterVec // to (SUCCEEDED, FAILED), by (inquiry, operator, reconciliation)
	// payment sessions (seed 003): created, finished by outcome (completed,
	// failed, expired), and how long a submit took to answer, by answer
	SessionsCreated      prometheus.Counter
	SessionsFinished     *prometheus.CounterVec   // outcome
	SessionSubmitLatency *prometheus.HistogramVec // answer (done, action, pending, refused)
	// payment flows (seed 000): flows created, status changes by status,
	// recomputes by outcome and their duration, plan payments created
	FlowsCreated        prometheus.Counter
	FlowTransitions     *prometheus.CounterVec // to (processing, settled, failed, canceled)
	FlowRecomputes      *prometheus.CounterVec // outcome (changed, unchanged, stale, error)
	FlowRecomputeTime   prometheus.Histogram   // seconds, changed and unchanged runs
	FlowPaymentsCreated *prometheus.CounterVec // batch (payins, payouts)
	// reads of a submit's payment while it waits with wake-ups: after a
	// wake-up (notified) or by the fallback poll (polled)
	SessionSubmitWakeups *prometheus.CounterVec // how
	// webhooks: tries by outcome, event-to-delivery latency, endpoints
	// disabled (the outbox backlog is the monitor's gauge)
	WebhookDeliveries *prometheus.CounterVec // outcome (delivered, retry, failed, refused)
	WebhookLatency    prometheus.Histogram   // seconds from the event to its 2xx
	WebhooksDisabled  prometheus.Counter
	// RedisUp is 1 while this process's last Redis check answered, 0
	// after one failed: every process checks every few seconds and on
	// each /readyz (Redis down does not make a process unready: Postgres
	// is the truth, and intake accepts without Redis)
	RedisUp prometheus.Gauge
}

// New registers every collector on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		PaymentsCreated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_payments_created_total", Help: "Payments accepted by intake."}, []string{"method", "surface"}),
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_payment_transitions_total", Help: "Payment state transitions, by canonical from and to status."}, []string{"from", "to"}),
		AttemptOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_attempt_outcomes_total", Help: "Gateway attempt and inquiry outcomes."}, []string{"method", "outcome"}),
		AttemptLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "payd_attempt_duration_seconds", Help: "Gateway call latency.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"method", "outcome"}),
		TimeToTerminal: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "payd_time_to_terminal_seconds", Help: "Time from intake to a final status.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400}}, []string{"method", "status"}),
		IdempotentReplays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_idempotent_replays_total", Help: "Requests answered from a stored idempotent response."}, []string{"route"}),
		SweeperEnqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_sweeper_reenqueued_total", Help: "Overdue steps the sweeper enqueued again."}, []string{"step"}),
		Enqueues: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_enqueues_total", Help: "Task enqueues after commit, by result (ok, error: the sweeper will recover it)."}, []string{"step", "result"}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_http_requests_total", Help: "HTTP requests by route pattern and status code."}, []string{"route", "code"}),
		HTTPLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "payd_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"route"}),
		TaskOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_task_outcomes_total", Help: "Task handler results: ok, stale, retry, skip."}, []string{"task_type", "outcome"}),
		GatewayNotifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_gateway_notifications_total",
			Help: "Gateway notifications received, by type and outcome (accepted, duplicate, bad_signature, stale_signature, invalid, unavailable)."},
			[]string{"type", "outcome"}),
		GatewayNotificationChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_gateway_notification_checks_total",
			Help: "What workers did with received gateway notifications: checked (asked the gateway now), stale, unknown_payment, other_attempt, nothing_due."},
			[]string{"type", "outcome"}),
		Voids: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_voids_total",
			Help: "Voids at the gateway of a payment awaiting a customer action, by reason (cancel, expiry) and outcome (voided, charged, unknown, gave_up)."},
			[]string{"reason", "outcome"}),
		LateCharges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_late_charges_total",
			Help: "Charges that landed for a payment payd held as not charged, each refunded, by what found them."},
			[]string{"source"}),
		ReconciliationFindings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_reconciliation_findings_total",
			Help: "New reconciliation findings: differences between the gateway's ledger and payd's records, by kind."},
			[]string{"kind"}),
		ReconciliationRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_reconciliation_runs_total", Help: "Reconciliation runs by result (ok, error)."}, []string{"result"}),
		ReviewResolutions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_review_resolutions_total",
			Help: "Payments that left REQUIRES_REVIEW, by status and by what resolved them (inquiry, operator, reconciliation)."},
			[]string{"to", "by"}),
		SessionsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payd_payment_sessions_created_total", Help: "Payment sessions created."}),
		SessionsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_payment_sessions_finished_total",
			Help: "Payment session outcomes: completed (paid), failed (a payment failed; a retry may follow), expired."},
			[]string{"outcome"}),
		SessionSubmitLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "payd_payment_session_submit_duration_seconds",
			Help:    "Payment session submit latency, by answer: done (201), action (202, 3-D Secure), pending (202, poll), refused (4xx).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2, 3, 5, 10}}, []string{"answer"}),
		FlowsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payd_payment_flows_created_total", Help: "Payment flows created."}),
		FlowTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_payment_flow_transitions_total",
			Help: "Payment flow status changes, by the status reached (processing, settled, failed, canceled)."}, []string{"to"}),
		FlowRecomputes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_payment_flow_recomputes_total",
			Help: "flow:recompute runs by outcome: changed (a new plan version), unchanged, stale (a later step is due), error."},
			[]string{"outcome"}),
		FlowRecomputeTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "payd_payment_flow_recompute_duration_seconds", Help: "flow:recompute duration (its one transaction), stale runs excluded.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}),
		FlowPaymentsCreated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_payment_flow_payments_created_total", Help: "Payments created by payment flow plans, by batch (payins, payouts)."},
			[]string{"batch"}),
		SessionSubmitWakeups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_payment_session_submit_reads_total",
			Help: "Reads of a waiting submit's payment: after the worker's wake-up (notified) or by the fallback poll (polled)."},
			[]string{"how"}),
		WebhookDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payd_webhook_deliveries_total",
			Help: "Webhook delivery tries by outcome: delivered (2xx), retry (scheduled again), failed (retries ran out or the endpoint is gone), refused (the address is not allowed)."},
			[]string{"outcome"}),
		WebhookLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "payd_webhook_delivery_latency_seconds", Help: "From an event to its delivery's 2xx.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 300, 3600, 86400}}),
		WebhooksDisabled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payd_webhook_endpoints_disabled_total", Help: "Webhook endpoints disabled because every delivery failed for the whole retry window."}),
		RedisUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "payd_redis_up", Help: "1 if this process's last check reached Redis (PING), else 0. Redis down leaves a process ready: Postgres is the truth."}),
	}
	reg.MustRegister(m.PaymentsCreated, m.Transitions, m.AttemptOutcomes, m.AttemptLatency, m.TimeToTerminal,
		m.IdempotentReplays, m.SweeperEnqueued, m.Enqueues, m.HTTPRequests, m.HTTPLatency, m.TaskOutcomes,
		m.GatewayNotifications, m.GatewayNotificationChecks, m.Voids, m.LateCharges, m.ReconciliationFindings,
		m.ReconciliationRuns, m.ReviewResolutions, m.SessionsCreated, m.SessionsFinished, m.SessionSubmitLatency,
		m.FlowsCreated, m.FlowTransitions, m.FlowRecomputes, m.FlowRecomputeTime, m.FlowPaymentsCreated,
		m.SessionSubmitWakeups, m.WebhookDeliveries, m.WebhookLatency, m.WebhooksDisabled, m.RedisUp)
	m.zero()
	return m
}

// The label values of the vectors whose alerts and panels select one value
// (result="error", a late charge's source, a void's outcome): zero creates
// each child at 0 when the process starts.
var (
	reconcileResults = []string{"ok", "error"}
	lateSources      = []string{"void", "notification", "reconciliation"}
	voidReasons      = []string{"cancel", "expiry"}
	voidOutcomes     = []string{"voided", "charged", "unknown", "gave_up"}
	webhookOutcomes  = []string{"delivered", "retry", "failed", "refused"}
	enqueueResults   = []string{"ok", "error"}
)

// zero creates, at 0, the children whose label values are known up front.
// A child created by its first increment is invisible until then, so a
// query selecting it (`{result="error"}`) finds no series, not 0, and
// rate() and increase() miss that first increment: Prometheus needs a
// sample before it to see a rise. Prometheus's instrumentation guide says
// the same ("Avoid missing metrics").
func (m *Metrics) zero() {
	for _, r := range reconcileResults {
		m.ReconciliationRuns.WithLabelValues(r)
	}
	for _, s := range lateSources {
		m.LateCharges.WithLabelValues(s)
	}
	for _, r := range voidReasons {
		for _, o := range voidOutcomes {
			m.Voids.WithLabelValues(r, o)
		}
	}
	for _, o := range webhookOutcomes {
		m.WebhookDeliveries.WithLabelValues(o)
	}
}

// InitSteps creates, at 0, the enqueue and sweeper children of every step
// (the wiring passes the steps the sweeper knows, store.DueSteps), for the
// same reason as zero: the enqueue-error and sweeper alerts select them
// before the first error or re-enqueue.
func (m *Metrics) InitSteps(steps ...string) {
	for _, s := range steps {
		m.SweeperEnqueued.WithLabelValues(s)
		for _, r := range enqueueResults {
			m.Enqueues.WithLabelValues(s, r)
		}
	}
}

// Discard returns collectors registered nowhere, for tests and tools.
func Discard() *Metrics { return New(prometheus.NewRegistry()) }

// ObserveTerminal records a payment reaching a final status.
func (m *Metrics) ObserveTerminal(method, status string, created, at time.Time) {
	m.TimeToTerminal.WithLabelValues(method, status).Observe(at.Sub(created).Seconds())
}
