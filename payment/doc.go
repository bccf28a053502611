// Package payment is payd's domain: payments, attempts, refunds, invoices,
// users and the lines that apply payments to invoices, payouts, money in
// integer minor units with our own ISO 4217 exponent table and its exact
// arithmetic (MulDiv: 128-bit multiply-then-divide with a named rounding;
// Allocate: largest-remainder splits; RefundedLines: how refunds release
// invoice lines), prefixed IDs, the
// canonical state machine as a table plus a pure function, the retry policy
// as data, and the rules banks apply to payouts (lifecycle times, rails,
// references, accounts, exchange rates) as pure functions. It imports only
// the standard library; every other package may import it, and it imports
// none of them.
//
// The canonical lifecycle (DESIGN.md §3), rendered from the transition table
// by Mermaid and checked by TestDiagramGolden, so it cannot drift:
//
//	stateDiagram-v2
//	    [*] --> PENDING
//	    PENDING --> PROCESSING
//	    PENDING --> CANCELED
//	    PROCESSING --> SUCCEEDED
//	    PROCESSING --> FAILED
//	    PROCESSING --> PENDING
//	    PROCESSING --> REQUIRES_ACTION
//	    PROCESSING --> SENT
//	    PROCESSING --> REQUIRES_REVIEW
//	    REQUIRES_ACTION --> PROCESSING
//	    REQUIRES_ACTION --> FAILED
//	    REQUIRES_ACTION --> CANCELED
//	    SENT --> SUCCEEDED
//	    SENT --> RETURNED
//	    SENT --> FAILED
//	    SUCCEEDED --> PARTIALLY_REFUNDED
//	    SUCCEEDED --> REFUNDED
//	    SUCCEEDED --> RETURNED
//	    PARTIALLY_REFUNDED --> PARTIALLY_REFUNDED
//	    PARTIALLY_REFUNDED --> REFUNDED
//	    REQUIRES_REVIEW --> SUCCEEDED
//	    REQUIRES_REVIEW --> FAILED
//	    REFUNDED --> [*]
//	    RETURNED --> [*]
//	    FAILED --> [*]
//	    CANCELED --> [*]
//
// PROCESSING → PENDING is a retry scheduled after an attempt that was
// confirmed not charged; PARTIALLY_REFUNDED → PARTIALLY_REFUNDED is a further
// partial refund; SUCCEEDED → RETURNED only happens to settled bank payments.
// REQUIRES_REVIEW leaves only by an operator's resolution.
package payment
