package sandbox

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// Faults are the sandbox's injected faults, changeable while it runs (fault
// tests turn them on and off on a `payd sandbox` process through PUT
// /faults, an operator route). New starts with Config's Latency and FaultRate, and with
// Notify set to NotifyConfig's delivery settings.
type Faults struct {
	// Latency is slept before every call is processed (see Config.Latency).
	Latency time.Duration `json:"latency"`
	// SlowRate is the probability, drawn from the seeded generator, that a
	// call sleeps SlowLatency on top of Latency, before it is processed: a
	// gateway whose p99 is seconds.
	SlowRate    float64       `json:"slow_rate"`
	SlowLatency time.Duration `json:"slow_latency"`
	// ResponseDelay is slept after a charge has been processed (and, if it
	// moved money, written to the ledger) and before it is answered: a
	// caller that dies meanwhile leaves a charge it never heard of.
	ResponseDelay time.Duration `json:"response_delay"`
	// FaultRate is the probability of a transient gateway_503 before a call
	// is processed (see Config.FaultRate).
	FaultRate float64 `json:"fault_rate"`
	// VoidDown makes every Void fail with a transient gateway_unavailable
	// (a 503 over HTTP) before it is processed (MaybeProcessed false): a
	// gateway unreachable while payd cancels.
	VoidDown bool `json:"void_down"`
	// AnswerUnknown makes the sandbox answer, truthfully, the calls about
	// pm_card_unknown keys, which time out while it is false.
	AnswerUnknown bool `json:"answer_unknown"`
	// Notify is how notifications are delivered, when the sandbox sends
	// them (NotifyConfig has a URL or a secret); without a notifier it is
	// kept and has no effect.
	Notify NotifyFaults `json:"notify"`
}

// NotifyFaults is how the sandbox delivers its notifications, changeable
// while it runs: NotifyConfig's Copies, Order, Delay and Batch, and Drop.
// A change applies to notifications not yet gathered into a batch; a batch
// already held keeps the Delay it was flushed with.
type NotifyFaults struct {
	Copies int           `json:"copies"` // deliveries of every notification; 0 or 1: once
	Order  NotifyOrder   `json:"order"`
	Delay  time.Duration `json:"delay"`
	Batch  time.Duration `json:"batch"`
	// Drop loses every notification emitted while it is set (none is sent),
	// as when a gateway's notifications are disabled or never arrive. Those
	// already gathered or held back are still delivered.
	Drop bool `json:"drop"`
}

// valid says whether n is a delivery the notifier can do.
func (n NotifyFaults) valid() bool {
	switch n.Order {
	case NotifyInOrder, NotifyReversed, NotifyShuffled:
	default:
		return false
	}
	return n.Copies >= 0 && n.Copies <= maxNotifyCopies && n.Delay >= 0 && n.Batch >= 0
}

// SetFaults replaces the injected faults, notification delivery included;
// calls already past a fault are not affected.
func (s *Sandbox) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	if s.notify != nil {
		s.notify.setDelivery(f.Notify)
	}
}

// Faults returns the injected faults.
func (s *Sandbox) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// handleGetFaults answers GET /faults (durations in nanoseconds).
func (s *Sandbox) handleGetFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Faults())
}

// handlePutFaults answers PUT /faults. A PUT replaces every fault,
// notification delivery included: a body without "notify" delivers each
// notification once, in order, at once; GET first to change one fault only.
func (s *Sandbox) handlePutFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if !decode(w, r, &f) {
		return
	}
	if f.Latency < 0 || f.SlowLatency < 0 || f.ResponseDelay < 0 || f.SlowRate < 0 || f.SlowRate > 1 || f.FaultRate < 0 || f.FaultRate > 1 {
		writeError(w, r, http.StatusUnprocessableEntity, "invalid_request", "faults_out_of_range", "durations must be ≥ 0 and rates within [0, 1]", false)
		return
	}
	if !f.Notify.valid() {
		writeError(w, r, http.StatusUnprocessableEntity, "invalid_request", "notify_out_of_range",
			"notify: copies within [0, 100], order empty, reversed or shuffled, delay and batch ≥ 0", false)
		return
	}
	s.SetFaults(f)
	writeJSON(w, http.StatusOK, f)
}

// sleepCtx sleeps d unless ctx ends first; then it is an unknown outcome, as
// a caller that gave up cannot know what happened.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		if err := ctx.Err(); err != nil {
			return &connector.Error{Class: payment.FailureUnknown, Code: "timeout", MaybeProcessed: true, Err: err}
		}
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return &connector.Error{Class: payment.FailureUnknown, Code: "timeout", MaybeProcessed: true, Err: ctx.Err()}
	case <-t.C:
		return nil
	}
}

// respond applies ResponseDelay to a processed charge's answer.
func (s *Sandbox) respond(ctx context.Context, res connector.Result, err error) (connector.Result, error) {
	s.mu.Lock()
	d := s.faults.ResponseDelay
	s.mu.Unlock()
	if d <= 0 {
		return res, err
	}
	if serr := sleepCtx(ctx, d); serr != nil && err == nil {
		// processed, but nobody is left to hear it
		return connector.Result{}, serr
	}
	return res, err
}

var errInjected = errors.New("sandbox: injected fault")
