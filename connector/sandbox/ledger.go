package sandbox

import (
	"sort"
	"time"

	"github.com/payd/payd/payment"
)

// Charge is one ledger entry: money the sandbox moved for an idempotency key.
// Card charges are booked when they succeed, bank payments when they are sent
// (a later return does not remove the entry).
type Charge struct {
	Key       string         `json:"key"`
	PaymentID string         `json:"payment_id"`
	Reference string         `json:"reference"`
	Amount    int64          `json:"amount"` // minor units
	Currency  string         `json:"currency"`
	Method    payment.Method `json:"method"`
	At        time.Time      `json:"at"`
	Refunded  int64          `json:"refunded"` // minor units, never above Amount
}

// Ledger returns a copy of every charge in the order it was booked.
func (s *Sandbox) Ledger() []Charge {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Charge, len(s.ledger))
	for i, c := range s.ledger {
		out[i] = *c
	}
	return out
}

// ChargesFor counts the ledger entries of one payment; more than one is a
// double charge.
func (s *Sandbox) ChargesFor(paymentID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.ledger {
		if c.PaymentID == paymentID {
			n++
		}
	}
	return n
}

// DoubleCharged lists, sorted, the payments with more than one ledger entry:
// the judge of invariant I1. It is empty when no payment was charged twice.
func (s *Sandbox) DoubleCharged() []string {
	return DoubleCharged(s.Ledger())
}

// DoubleCharged lists, sorted, the payments with more than one entry in a
// ledger, such as one read from a remote sandbox with (*Client).Ledger.
func DoubleCharged(ledger []Charge) []string {
	n := make(map[string]int)
	for _, c := range ledger {
		n[c.PaymentID]++
	}
	var out []string
	for id, k := range n {
		if k > 1 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}
