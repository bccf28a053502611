// Package processor owns the asynq task handlers: one file per task type.
// Each handler reads top to bottom: parse → claim (one transaction, guarded
// update) → decide (pure) → side effect outside any transaction, keyed by the
// attempt → record (one transaction, guarded update, audit row) → enqueue the
// follow-up after commit. Every step is safe to run twice. It imports jobs,
// connector, store, metrics and payment; it must not import intake.
package processor

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/metrics"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
	"github.com/payd/payd/webhook"
)

// Config tunes the handlers.
type Config struct {
	// GatewayTimeout bounds one gateway call; it must be shorter than the
	// submit task's timeout.
	GatewayTimeout time.Duration
	// InquiryGrace is added to GatewayTimeout to schedule the safety-net
	// inquiry that a claimed submit leaves behind in case its worker dies.
	InquiryGrace time.Duration
	// SettlePoll is how often a SENT bank payment (and a settled one inside
	// its return window) is checked with the rail.
	SettlePoll time.Duration
	// ReturnWindow is how long after settlement a bank payment is watched
	// for returns.
	ReturnWindow time.Duration
	// SweepGrace is how overdue a step must be before the sweeper
	// re-enqueues it; SweepLease how long a swept row is left alone before
	// its task is inspected.
	SweepGrace, SweepLease time.Duration
	SweepBatch             int
	Policy                 payment.RetryPolicy
	// GatewayName names the gateway in reconciliation findings and runs.
	GatewayName string
	// ReconcileGrace keeps the newest part of the gateway's ledger out of
	// the periodic reconciliation window: payments there may still be in
	// flight. ReconcileOverlap is how far each periodic run reaches back
	// before where the last one ended.
	ReconcileGrace, ReconcileOverlap time.Duration
	// Webhooks: what URLs deliveries may reach, the timeout of one try,
	// and the unit of the retry schedule (PAYD_RETRY_UNIT; webhook.NextTry).
	WebhookPolicy  webhook.Policy
	WebhookTimeout time.Duration
	WebhookUnit    time.Duration
}

// Deps are what the handlers use.
type Deps struct {
	Store   *store.Store
	Gateway connector.Gateway
	Enqueue *jobs.Enqueuer
	Metrics *metrics.Metrics
	Log     *slog.Logger
	Config  Config
	// Webhook deliveries: the keys that open endpoint secrets, and the
	// renderer of an event's body (intake's, wired by cmd/payd: the body
	// is the object in its surface's shape, which only intake knows).
	// Without either, deliveries wait (and the dispatcher does not run).
	Keyring     *webhook.Keyring
	RenderEvent func(context.Context, store.OutboxEvent) ([]byte, error)
}

// Processor runs payd's tasks.
type Processor struct {
	Deps
	cfg      Config
	whOnce   sync.Once
	whClient *http.Client
}

// New builds a Processor, filling defaults.
func New(d Deps) *Processor {
	c := d.Config
	if c.GatewayTimeout <= 0 {
		c.GatewayTimeout = 20 * time.Second
	}
	if c.InquiryGrace <= 0 {
		c.InquiryGrace = 10 * time.Second
	}
	if c.SettlePoll <= 0 {
		c.SettlePoll = time.Minute
	}
	if c.ReturnWindow <= 0 {
		c.ReturnWindow = 72 * time.Hour
	}
	if c.SweepGrace <= 0 {
		c.SweepGrace = 5 * time.Second
	}
	if c.SweepLease <= 0 {
		c.SweepLease = 30 * time.Second
	}
	if c.SweepBatch <= 0 {
		c.SweepBatch = 500
	}
	if c.GatewayName == "" {
		c.GatewayName = "sandbox"
	}
	if c.ReconcileGrace <= 0 {
		c.ReconcileGrace = c.GatewayTimeout + c.InquiryGrace + time.Minute
	}
	if c.ReconcileOverlap <= 0 {
		c.ReconcileOverlap = 10 * time.Minute
	}
	if c.WebhookTimeout <= 0 {
		c.WebhookTimeout = 10 * time.Second
	}
	if c.WebhookUnit <= 0 {
		c.WebhookUnit = time.Second
	}
	if c.Policy.Card == nil {
		c.Policy = payment.DefaultRetryPolicy(time.Second)
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Metrics == nil {
		d.Metrics = metrics.Discard()
	}
	d.Config = c
	return &Processor{Deps: d, cfg: c}
}

// Mux routes every task type to its handler, with the outcome mapping of
// errors.go around each.
func (p *Processor) Mux() *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.Handle(jobs.TypePaymentCreate, p.wrap(jobs.TypePaymentCreate, p.create))
	mux.Handle(jobs.TypePaymentSubmit, p.wrap(jobs.TypePaymentSubmit, p.submit))
	mux.Handle(jobs.TypePaymentInquire, p.wrap(jobs.TypePaymentInquire, p.inquire))
	mux.Handle(jobs.TypePaymentSettle, p.wrap(jobs.TypePaymentSettle, p.settle))
	mux.Handle(jobs.TypePaymentRefund, p.wrap(jobs.TypePaymentRefund, p.refund))
	mux.Handle(jobs.TypePaymentVoid, p.wrap(jobs.TypePaymentVoid, p.void))
	mux.Handle(jobs.TypeSessionExpire, p.wrap(jobs.TypeSessionExpire, p.expireSession))
	mux.Handle(jobs.TypeFlowRecompute, p.wrap(jobs.TypeFlowRecompute, p.recomputeFlow))
	mux.Handle(jobs.TypeWebhookDeliver, p.wrap(jobs.TypeWebhookDeliver, p.deliverWebhook))
	mux.Handle(jobs.TypeReconcile, p.wrap(jobs.TypeReconcile, p.reconcileTask))
	mux.Handle(jobs.TypeGatewayNotification, p.wrap(jobs.TypeGatewayNotification, p.notification))
	mux.Handle(jobs.TypeSweep, p.wrap(jobs.TypeSweep, func(ctx context.Context, _ *asynq.Task) error {
		_, err := p.Sweep(ctx)
		return err
	}))
	return mux
}

const actor = "worker"

// record applies a decision atomically: the attempt's outcome, then each
// payment change guarded on the sequence the previous one produced (one
// change: one statement, store.Record; more, or a payout: one transaction).
// It then enqueues the follow-up step, after commit. A stale guard means
// another run already recorded this step: nothing to do.
func (p *Processor) record(ctx context.Context, pay payment.Payment, d decision) error {
	seq := pay.StepSeq
	var last store.Change
	// The follow-up's delay is read on the store clock now, next to the
	// decision that set its due time, not after the commit: a clock that
	// jumps in between must not park the task for the size of the jump.
	// A due time that came from elsewhere (a rail's settlement date on the
	// gateway's clock) is also read on the local clock, and the shorter
	// delay wins: a step that runs early is harmless (handlers are guarded
	// and ask the gateway), one parked for an hour is not.
	decidedAt := p.Store.Now()
	var err error
	var late payment.Refund
	var lateFresh bool
	if len(d.changes) == 1 && pay.Surface != store.SurfacePayouts && d.lateCharge == nil {
		// the common case: one statement shared with concurrent records
		c := d.changes[0]
		c.Seq, c.Actor = pay.StepSeq, actor
		seq, err = p.Store.Record(ctx, d.attempt, c)
		last = c
	} else {
		err = p.Store.InTx(ctx, func(tx *store.Store) error {
			s, att := pay.StepSeq, d.attempt
			for _, c := range d.changes {
				c.Seq, c.Actor = s, actor
				next, err := tx.ApplyWith(ctx, att, c)
				if err != nil {
					return err
				}
				s, last, att = next, c, nil
			}
			seq = s
			if att != nil { // an outcome with no change of the payment
				if err := tx.FinishAttempt(ctx, *att); err != nil {
					return err
				}
			}
			if d.lateCharge != nil {
				var err error
				late, lateFresh, err = tx.RecordLateCharge(ctx, *d.lateCharge)
				return err
			}
			return nil
		})
	}
	if err != nil {
		return err
	}
	p.observe(pay, d.changes)
	if pay.FlowID != "" {
		p.followFlow(ctx, pay.FlowID)
	}
	if lateFresh {
		p.startLateRefund(ctx, d.lateCharge.Source, late)
	}
	if last.NextStep != payment.StepNone {
		p.follow(ctx, last.NextStep, pay.ID, seq, min(last.NextStepAt.Sub(decidedAt), time.Until(last.NextStepAt)))
	}
	return nil
}

// startLateRefund enqueues, after its commit, the refund of a charge that
// landed for a payment payd held as not charged. A failed enqueue is
// logged: the refund row is due and the sweeper enqueues it.
func (p *Processor) startLateRefund(ctx context.Context, source string, r payment.Refund) {
	p.Metrics.LateCharges.WithLabelValues(source).Inc()
	p.Log.WarnContext(ctx, "a charge landed for a payment held as not charged; refunding it",
		"payment_id", r.PaymentID, "refund_id", r.ID, "source", source)
	if err := p.Enqueue.Refund(ctx, r.ID, r.StepSeq, time.Time{}); err != nil {
		p.Log.WarnContext(ctx, "enqueue late charge refund failed; the sweeper will recover it", "refund_id", r.ID, "err", err)
	}
}

// observe feeds the business metrics after a commit.
func (p *Processor) observe(pay payment.Payment, changes []store.Change) {
	now := p.Store.Now()
	for _, c := range changes {
		if c.From == c.To && !c.Audit {
			continue
		}
		p.Metrics.Transitions.WithLabelValues(string(c.From), string(c.To)).Inc()
		if c.To.Final() && !c.From.Final() {
			p.Metrics.ObserveTerminal(string(pay.Method), string(c.To), pay.CreatedAt, now)
		}
		// the session followed its payment in the same statement (store.applyRows);
		// a payment voided because its session expired counted as expired
		if pay.SessionID != "" && c.From != c.To && pay.CancelRequestedAt == nil {
			switch c.To {
			case payment.StatusSucceeded, payment.StatusSent:
				p.Metrics.SessionsFinished.WithLabelValues("completed").Inc()
			case payment.StatusFailed, payment.StatusCanceled:
				p.Metrics.SessionsFinished.WithLabelValues("failed").Inc()
			}
		}
	}
}

// follow enqueues the next step after commit. A failure is logged, not
// returned: the row says what is due and the sweeper will enqueue it.
func (p *Processor) follow(ctx context.Context, step payment.Step, id string, seq int, delay time.Duration) {
	err := p.Enqueue.StepIn(ctx, step, id, seq, delay)
	res := "ok"
	if err != nil {
		res = "error"
		p.Log.WarnContext(ctx, "enqueue follow-up failed; the sweeper will recover it",
			"payment_id", id, "step", string(step), "err", err)
	}
	p.Metrics.Enqueues.WithLabelValues(string(step), res).Inc()
}

func (p *Processor) gatewayCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.cfg.GatewayTimeout)
}

// stepPayment parses a payment step's task and loads its payment with its
// attempts. It is payment.ErrStale when the row no longer waits on that
// step at the task's sequence, or is in none of the statuses given: the
// task is out of date and does nothing.
func (p *Processor) stepPayment(ctx context.Context, t *asynq.Task, step payment.Step, statuses ...payment.Status) (payment.Payment, error) {
	pl, err := jobs.ParseStep(t)
	if err != nil {
		return payment.Payment{}, err
	}
	pay, err := p.Store.GetPayment(ctx, "", pl.PaymentID)
	if err != nil {
		return pay, err
	}
	if pay.NextStep != step || pay.StepSeq != pl.Seq || !slices.Contains(statuses, pay.Status) {
		return pay, payment.ErrStale
	}
	return pay, nil
}

// lastAttempt returns the payment's current attempt.
func lastAttempt(pay payment.Payment) (payment.Attempt, bool) {
	for _, a := range pay.Attempts {
		if a.Number == pay.AttemptCount {
			return a, true
		}
	}
	return payment.Attempt{}, false
}

var errNoAttempt = errors.New("payment has no current attempt")
