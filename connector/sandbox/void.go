package sandbox

import (
	"context"
	"errors"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// errVoidDown is a Void refused by Faults.VoidDown.
var errVoidDown = errors.New("sandbox: voids are unavailable (injected fault)")

// Void implements connector.Gateway. A pm_card_3ds charge whose challenge is
// still pending is voided: from then on Inquire answers StatusVoided, a
// Charge with its key is declined idempotency_key_voided and its challenge
// can no longer be completed (ErrAuthenticationCanceled). Any other key
// answers what became of it: a captured card charge StatusSucceeded with its
// reference, a declined or voided one as recorded, a bank payment its rail
// status (sent, settled, returned). A key never seen is fenced and answers
// StatusNotFound, as Inquire does; a pm_card_unknown key times out until
// Faults.AnswerUnknown. Faults.VoidDown refuses every Void before it is
// processed.
func (s *Sandbox) Void(ctx context.Context, idempotencyKey string) (connector.Result, error) {
	if err := s.arrive(ctx); err != nil {
		return connector.Result{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.VoidDown {
		return connector.Result{}, &connector.Error{Class: payment.FailureTransient, Code: "gateway_unavailable",
			MaybeProcessed: false, Err: errVoidDown}
	}
	rec, ok := s.charges[idempotencyKey]
	if !ok {
		s.fenced[idempotencyKey] = true
		return connector.Result{Status: connector.StatusNotFound,
			Message: "no charge with this idempotency key; the key is now fenced"}, nil
	}
	if s.unansweredLocked(rec) {
		return connector.Result{}, unansweredError(errUnanswered)
	}
	switch {
	case rec.bank:
		// money already left on the rail: only its status can be told
		return s.railStatusLocked(rec), nil
	case rec.result.Status == connector.StatusRequiresAction,
		rec.result.Status == connector.StatusSucceeded && rec.entry == nil:
		// a pending challenge, or a card verification (amount 0): nothing was charged, and now nothing will be
		rec.result = connector.Result{Status: connector.StatusVoided, Reference: rec.result.Reference,
			Message: "the pending 3-D Secure authentication was canceled; nothing was charged"}
	}
	return rec.result, nil
}
