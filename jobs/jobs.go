// Package jobs is the wire contract of payd's asynq tasks: type names,
// payloads (IDs only, never card data or copies of state), per-type options
// (queue, MaxRetry, Timeout, Retention) and step TaskIDs. Golden payloads in
// testdata/ guard compatibility between deploys; redis.go reads REDIS_URL's
// forms (one server, Sentinel, Cluster) into the one RedisConn every
// Redis client of payd is built from. It imports asynq, go-redis and
// payment only; it must not import store, intake or processor.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/payment"
)

// Task type names, "aggregate:verb".
const (
	TypePaymentCreate  = "payment:create"
	TypePaymentSubmit  = "payment:submit"
	TypePaymentInquire = "payment:inquire"
	TypePaymentSettle  = "payment:settle"
	TypePaymentRefund  = "payment:refund"
	TypePaymentVoid    = "payment:void"
	TypeReconcile      = "reconcile"
	TypeSweep          = "sweep"
)

// Queues and their weights.
const (
	QueueCritical = "critical"
	QueueDefault  = "default"
	QueueLow      = "low"
)

// Queues is the weight table the worker serves.
var Queues = map[string]int{QueueCritical: 6, QueueDefault: 3, QueueLow: 1}

// spec is the per-type option set; asynq's defaults (25 retries, 30 min
// timeout) are overridden for every type.
type spec struct {
	queue    string
	maxRetry int
	timeout  time.Duration
}

var specs = map[string]spec{
	TypePaymentCreate:  {QueueDefault, 10, 60 * time.Second}, // makes the first attempt
	TypePaymentSubmit:  {QueueCritical, 10, 60 * time.Second},
	TypePaymentInquire: {QueueCritical, 10, 60 * time.Second},
	TypePaymentSettle:  {QueueDefault, 10, 30 * time.Second},
	TypePaymentRefund:  {QueueCritical, 10, 60 * time.Second},
	TypePaymentVoid:    {QueueCritical, 10, 60 * time.Second},
	// a run pages through a day of the gateway's ledger
	TypeReconcile: {QueueLow, 3, 10 * time.Minute},
	TypeSweep:     {QueueLow, 0, 60 * time.Second},
	// a hint: polling still resolves the payment if every try fails
	TypeGatewayNotification: {QueueCritical, 5, 60 * time.Second},
	// due at a session's expires_on; may void its payment's 3-D Secure
	TypeSessionExpire: {QueueLow, 10, 30 * time.Second},
	// reads and writes Postgres only: a 100-payee flow's recompute is one transaction
	TypeFlowRecompute: {QueueDefault, 10, 30 * time.Second},
	// one POST with a 10 s timeout; a failed try is scheduled again by the
	// handler itself (its own backoff over days), so asynq retries only
	// what never reached the receiver (Postgres down)
	TypeWebhookDeliver: {QueueDefault, 5, 30 * time.Second},
}

// Timeout is the handler deadline of a task type.
func Timeout(taskType string) time.Duration { return specs[taskType].timeout }

// StepPayload names one step of one payment: the payment and the step
// sequence the task was enqueued for. A handler whose sequence no longer
// matches the row is stale and does nothing.
type StepPayload struct {
	PaymentID string `json:"payment_id"`
	Seq       int    `json:"seq"`
}

// RefundPayload names one try of one refund.
type RefundPayload struct {
	RefundID string `json:"refund_id"`
	Seq      int    `json:"seq"`
}

// StepType is the task type that performs a payment step.
func StepType(step payment.Step) (string, bool) {
	switch step {
	case payment.StepCreate:
		return TypePaymentCreate, true
	case payment.StepSubmit:
		return TypePaymentSubmit, true
	case payment.StepInquire:
		return TypePaymentInquire, true
	case payment.StepSettle:
		return TypePaymentSettle, true
	case payment.StepVoid:
		return TypePaymentVoid, true
	}
	return "", false
}

// TaskID names a step, never a whole payment: payment:submit:<id>:<seq>.
func TaskID(taskType, id string, seq int) string {
	return taskType + ":" + id + ":" + strconv.Itoa(seq)
}

func newTask(taskType string, payload any, id string, at time.Time, retention time.Duration) (*asynq.Task, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", taskType, err)
	}
	sp := specs[taskType]
	opts := []asynq.Option{asynq.Queue(sp.queue), asynq.MaxRetry(sp.maxRetry), asynq.Timeout(sp.timeout)}
	if id != "" {
		opts = append(opts, asynq.TaskID(id), asynq.Retention(retention))
	}
	if !at.IsZero() {
		opts = append(opts, asynq.ProcessAt(at))
	}
	return asynq.NewTask(taskType, b, opts...), nil
}

// NewStepTask builds the task for a payment step at sequence seq.
func NewStepTask(step payment.Step, paymentID string, seq int, at time.Time, retention time.Duration) (*asynq.Task, error) {
	t, ok := StepType(step)
	if !ok {
		return nil, fmt.Errorf("no task for step %q", step)
	}
	return newTask(t, StepPayload{PaymentID: paymentID, Seq: seq}, TaskID(t, paymentID, seq), at, retention)
}

// NewRefundTask builds the task for a refund try.
func NewRefundTask(refundID string, seq int, at time.Time, retention time.Duration) (*asynq.Task, error) {
	return newTask(TypePaymentRefund, RefundPayload{RefundID: refundID, Seq: seq}, TaskID(TypePaymentRefund, refundID, seq), at, retention)
}

// ReconcilePayload names the window of the gateway's ledger a reconcile
// run compares; both zero means the periodic window (from where the last
// run ended to shortly before now).
type ReconcilePayload struct {
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
}

// NewReconcileTask builds a reconcile task (the scheduler's, with a zero
// window, or an operator's).
func NewReconcileTask(p ReconcilePayload) (*asynq.Task, error) {
	return newTask(TypeReconcile, p, "", time.Time{}, 0)
}

// ParseReconcile decodes a reconcile payload.
func ParseReconcile(t *asynq.Task) (ReconcilePayload, error) {
	var p ReconcilePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || (!p.To.IsZero() && !p.To.After(p.From)) {
		return p, fmt.Errorf("%s: %w", t.Type(), ErrBadPayload)
	}
	return p, nil
}

// NewSweepTask builds the periodic sweep task.
func NewSweepTask() (*asynq.Task, error) {
	return newTask(TypeSweep, struct{}{}, "", time.Time{}, 0)
}

// ErrBadPayload wraps asynq.SkipRetry: a payload that cannot be decoded will
// never succeed.
var ErrBadPayload = fmt.Errorf("bad payload: %w", asynq.SkipRetry)

// ParseStep decodes a step payload.
func ParseStep(t *asynq.Task) (StepPayload, error) {
	var p StepPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.PaymentID == "" || p.Seq <= 0 {
		return p, fmt.Errorf("%s: %w", t.Type(), ErrBadPayload)
	}
	return p, nil
}

// ParseRefund decodes a refund payload.
func ParseRefund(t *asynq.Task) (RefundPayload, error) {
	var p RefundPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.RefundID == "" || p.Seq <= 0 {
		return p, fmt.Errorf("%s: %w", t.Type(), ErrBadPayload)
	}
	return p, nil
}

// Enqueuer puts step tasks on the queue. A TaskID that already exists is
// success: the step is queued already.
type Enqueuer struct {
	Client    *asynq.Client
	Inspector *asynq.Inspector // for State (the sweeper)
	Retention time.Duration
	// Now is the clock the `at` of Step and Refund were computed with (the
	// store's); nil means time.Now. asynq schedules on its own clock.
	Now func() time.Time
}

// Step enqueues a payment step to run at at (zero: now).
func (e *Enqueuer) Step(ctx context.Context, step payment.Step, paymentID string, seq int, at time.Time) error {
	t, err := NewStepTask(step, paymentID, seq, e.when(at), e.Retention)
	if err != nil {
		return err
	}
	return e.enqueue(ctx, t)
}

// StepIn enqueues a payment step to run after delay (none when it is not
// positive), a span read on the clock that set the step's due time: unlike
// Step's absolute time, it means the same on every clock.
func (e *Enqueuer) StepIn(ctx context.Context, step payment.Step, paymentID string, seq int, delay time.Duration) error {
	var at time.Time
	if delay > 0 {
		at = time.Now().Add(delay)
	}
	t, err := NewStepTask(step, paymentID, seq, at, e.Retention)
	if err != nil {
		return err
	}
	return e.enqueue(ctx, t)
}

// Refund enqueues a refund try.
func (e *Enqueuer) Refund(ctx context.Context, refundID string, seq int, at time.Time) error {
	t, err := NewRefundTask(refundID, seq, e.when(at), e.Retention)
	if err != nil {
		return err
	}
	return e.enqueue(ctx, t)
}

// when turns a step's due time into asynq's ProcessAt. A due time is
// either now-plus-a-delay on the store's clock (a retry's backoff, the next
// poll) or an absolute time from elsewhere (a rail's settlement date, from
// the gateway's clock). If the store's clock is off from asynq's (a jump, a
// skewed host), reading the first kind on asynq's clock would shift it by
// the skew: an hour ahead parks a payment for an hour. So the task runs
// after the shorter of the two readings, at − Now() and at − time.Now():
// a step that runs early is harmless (handlers are guarded and ask the
// gateway, which says "not yet"), one that runs an hour late is not. Times
// not in the future give no ProcessAt, so a due task goes straight to the
// pending list instead of through the scheduled set.
func (e *Enqueuer) when(at time.Time) time.Time {
	if at.IsZero() {
		return time.Time{}
	}
	now := time.Now()
	d := at.Sub(now)
	if e.Now != nil {
		d = min(d, at.Sub(e.Now()))
	}
	if d <= 0 {
		return time.Time{}
	}
	return now.Add(d)
}

func (e *Enqueuer) enqueue(ctx context.Context, t *asynq.Task) error {
	_, err := e.Client.EnqueueContext(ctx, t)
	if errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", t.Type(), err)
	}
	return nil
}

// TaskState is what the queue holds for a step's task, as the sweeper sees it.
type TaskState int

const (
	TaskMissing TaskState = iota // no task with that ID: enqueue it
	TaskWaiting                  // pending, scheduled or retrying: it will run
	TaskActive                   // a worker holds it (or held it, and died)
	TaskStuck                    // archived or completed: it will never run again
)

// State looks up the task of a payment step (or, with step "refund", of a
// refund try) by its ID. It needs Inspector.
func (e *Enqueuer) State(step payment.Step, id string, seq int) (TaskState, error) {
	t := TypePaymentRefund
	if step != "refund" {
		var ok bool
		if t, ok = StepType(step); !ok {
			return TaskMissing, fmt.Errorf("no task for step %q", step)
		}
	}
	return e.taskState(specs[t].queue, TaskID(t, id, seq))
}

func (e *Enqueuer) taskState(queue, taskID string) (TaskState, error) {
	info, err := e.Inspector.GetTaskInfo(queue, taskID)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound):
		return TaskMissing, nil
	case errors.Is(err, asynq.ErrQueueNotFound):
		// After Redis lost its keys (FLUSHALL, a restart), a client that
		// registered the queue before does not register it again, so the
		// inspector cannot see tasks that do exist; an enqueue under the
		// same ID then silently collides with one that may be held by a
		// worker that is gone (seen after a SIGSTOP of Redis). A step still
		// due after its sweep lease is re-armed under a fresh ID instead:
		// the old task, if it ever runs, is stale.
		return TaskStuck, nil
	case err != nil:
		return TaskMissing, fmt.Errorf("inspect task %s: %w", taskID, err)
	}
	switch info.State {
	case asynq.TaskStateActive:
		return TaskActive, nil
	case asynq.TaskStateArchived, asynq.TaskStateCompleted:
		return TaskStuck, nil
	}
	return TaskWaiting, nil
}

// StepQueue is the queue a step's task runs on: a payment step's, a refund
// try's (step "refund") or a gateway notification's (step "notification").
func StepQueue(step payment.Step) string {
	if t, ok := StepType(step); ok {
		return specs[t].queue
	}
	switch step {
	case "notification":
		return specs[TypeGatewayNotification].queue
	case "session":
		return specs[TypeSessionExpire].queue
	case "flow":
		return specs[TypeFlowRecompute].queue
	case "delivery":
		return specs[TypeWebhookDeliver].queue
	}
	return specs[TypePaymentRefund].queue
}

// Backlog is, per queue, how long its oldest pending task has waited (0
// for an empty or unknown queue). A step that fell due less than that ago
// is most likely still waiting its turn in the queue, not lost. It needs
// Inspector.
func (e *Enqueuer) Backlog() (map[string]time.Duration, error) {
	out := make(map[string]time.Duration, len(Queues))
	known, err := e.Inspector.Queues()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	for _, q := range known {
		if _, ours := Queues[q]; !ours {
			continue
		}
		info, err := e.Inspector.GetQueueInfo(q)
		if err != nil {
			return nil, fmt.Errorf("inspect queue %s: %w", q, err)
		}
		out[q] = info.Latency
	}
	return out, nil
}
