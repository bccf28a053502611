package payment

import (
	"fmt"
	"sort"
	"strings"
)

// Status is the canonical, internal state of a payment. Each API surface maps
// it to its own vocabulary (see the intake package's per-surface tables).
type Status string

const (
	StatusPending           Status = "PENDING"
	StatusProcessing        Status = "PROCESSING"
	StatusRequiresAction    Status = "REQUIRES_ACTION"
	StatusSent              Status = "SENT"
	StatusSucceeded         Status = "SUCCEEDED"
	StatusPartiallyRefunded Status = "PARTIALLY_REFUNDED"
	StatusRefunded          Status = "REFUNDED"
	StatusReturned          Status = "RETURNED"
	StatusFailed            Status = "FAILED"
	StatusCanceled          Status = "CANCELED"
	StatusRequiresReview    Status = "REQUIRES_REVIEW"
)

// Statuses lists every canonical status in lifecycle order.
var Statuses = []Status{
	StatusPending, StatusProcessing, StatusRequiresAction, StatusSent,
	StatusSucceeded, StatusPartiallyRefunded, StatusRefunded, StatusReturned,
	StatusFailed, StatusCanceled, StatusRequiresReview,
}

// Valid reports whether s is a canonical status.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if v == s {
			return true
		}
	}
	return false
}

// transitions is the lifecycle (docs/state-machine.md shows this table and
// what makes each move). A pair that is not here is refused.
// PARTIALLY_REFUNDED → PARTIALLY_REFUNDED is a further partial refund.
// SUCCEEDED → RETURNED is only reachable for bank payments (the processor
// decides that; the table is about statuses, not methods).
var transitions = map[Status][]Status{
	StatusPending:           {StatusProcessing, StatusCanceled},
	StatusProcessing:        {StatusSucceeded, StatusFailed, StatusPending, StatusRequiresAction, StatusSent, StatusRequiresReview},
	StatusRequiresAction:    {StatusProcessing, StatusFailed, StatusCanceled},
	StatusSent:              {StatusSucceeded, StatusReturned, StatusFailed},
	StatusSucceeded:         {StatusPartiallyRefunded, StatusRefunded, StatusReturned},
	StatusPartiallyRefunded: {StatusPartiallyRefunded, StatusRefunded},
	StatusRequiresReview:    {StatusSucceeded, StatusFailed},
}

// An audit row whose from and to are the same status is a note, not a
// transition: it records something that happened to a payment without
// changing its status (a cancel requested while a void runs, a charge that
// landed after the payment was canceled and its refund). Notes are allowed in
// every status; a transition table lookup is only for moves.

// CanTransition reports whether the lifecycle allows moving from one status to
// another.
func CanTransition(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// TransitionError is returned for a move the lifecycle does not allow.
type TransitionError struct {
	From, To Status
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("transition %s → %s is not allowed", e.From, e.To)
}

// Next validates a move and returns the new status, or a *TransitionError.
func Next(from, to Status) (Status, error) {
	if !from.Valid() || !to.Valid() || !CanTransition(from, to) {
		return from, &TransitionError{From: from, To: to}
	}
	return to, nil
}

// Absorbing reports whether no transition leaves s.
func (s Status) Absorbing() bool { return len(transitions[s]) == 0 }

// Final reports whether a payment in s has reached an outcome that counts as
// "done" for figures and for the no-lost-payment invariant (I2; see
// docs/state-machine.md, "Statuses"):
// SUCCEEDED and the refund states count even though refunds may follow, and
// REQUIRES_REVIEW counts because it waits on the gateway's slow answers or
// an operator, not on payd.
func (s Status) Final() bool {
	switch s {
	case StatusSucceeded, StatusPartiallyRefunded, StatusRefunded, StatusReturned,
		StatusFailed, StatusCanceled, StatusRequiresReview:
		return true
	}
	return false
}

// Mermaid renders the transition table as a mermaid state diagram. A golden
// test compares it with testdata/lifecycle.mmd and doc.go, so the documented
// diagram cannot drift from the code.
func Mermaid() string {
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	b.WriteString("    [*] --> PENDING\n")
	froms := make([]string, 0, len(transitions))
	for f := range transitions {
		froms = append(froms, string(f))
	}
	sort.Slice(froms, func(i, j int) bool { return order(Status(froms[i])) < order(Status(froms[j])) })
	for _, f := range froms {
		for _, t := range transitions[Status(f)] {
			fmt.Fprintf(&b, "    %s --> %s\n", f, t)
		}
	}
	for _, s := range Statuses {
		if s.Absorbing() {
			fmt.Fprintf(&b, "    %s --> [*]\n", s)
		}
	}
	return b.String()
}

func order(s Status) int {
	for i, v := range Statuses {
		if v == s {
			return i
		}
	}
	return len(Statuses)
}
