package payment

// Syncing a payout from its source system (seed 002's "idempotency key from
// source"): the accounts-payable system pushes each payment it makes and
// pushes it again as it changes. A push may move the payout forward along
// the lifecycle, never back; these pure functions say how.

// Canonical is the canonical status a payout shown (or pushed) as s is in:
// INITIATED is PENDING, SETTLED and PAID are SUCCEEDED; "" for a word the
// seed does not have.
func (s PayoutStatus) Canonical() Status {
	switch s {
	case PayoutInitiated:
		return StatusPending
	case PayoutProcessing:
		return StatusProcessing
	case PayoutSent:
		return StatusSent
	case PayoutSettled, PayoutPaid:
		return StatusSucceeded
	case PayoutReturned:
		return StatusReturned
	case PayoutFailed:
		return StatusFailed
	case PayoutCanceled:
		return StatusCanceled
	}
	return ""
}

// PayoutPath is the walk of canonical statuses that takes a payout recorded
// from a source system from status from to status to, one allowed
// transition at a time (the first element is the status after the first
// move; empty when from == to). sent says a time of sending is known, so
// the walk passes through SENT where it may; settled says a time of
// settlement is known, so a return passes through SUCCEEDED. Without sent
// no time of sending is invented: PROCESSING goes straight to SUCCEEDED or
// FAILED, and a return goes through SUCCEEDED. ok is false when no walk
// exists: the target lies behind from (SETTLED → SENT), beside it (SETTLED
// → FAILED) or from is a status a source never pushes (REQUIRES_REVIEW).
func PayoutPath(from, to Status, sent, settled bool) (path []Status, ok bool) {
	if from == to {
		return nil, true
	}
	cur := from
	step := func(next Status) {
		path = append(path, next)
		cur = next
	}
	if to == StatusCanceled {
		if from == StatusPending {
			return []Status{StatusCanceled}, true
		}
		return nil, false
	}
	if cur == StatusPending {
		step(StatusProcessing)
	}
	switch to {
	case StatusSent:
		if cur == StatusProcessing {
			step(StatusSent)
		}
	case StatusSucceeded, StatusFailed:
		if cur == StatusProcessing && sent {
			step(StatusSent)
		}
		if cur == StatusProcessing || cur == StatusSent {
			step(to)
		}
	case StatusReturned:
		if cur == StatusProcessing && sent {
			step(StatusSent)
		}
		if cur == StatusProcessing || (cur == StatusSent && settled) {
			step(StatusSucceeded)
		}
		if cur == StatusSent || cur == StatusSucceeded {
			step(StatusReturned)
		}
	}
	if cur != to {
		return nil, false
	}
	return path, true
}

// PayoutConflictError: a push of a payout contradicts what is recorded for
// it (another amount, a status going backwards, …). Field is the request
// field, Code the error code (payout_conflict_<what>); it is an ErrConflict.
type PayoutConflictError struct {
	Field, Code, Message string
}

func (e *PayoutConflictError) Error() string { return e.Field + ": " + e.Code + ": " + e.Message }
func (e *PayoutConflictError) Unwrap() error { return ErrConflict }
