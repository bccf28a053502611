package payment

import (
	"errors"
	"fmt"
)

// ErrInvalidLine: a line's amounts are not positive.
var ErrInvalidLine = errors.New("invalid line amounts")

// LineAmount is one invoice line of a payment: Payment minor units of the
// payment's currency applied to an invoice as Applied minor units of the
// invoice's currency. Without FX the two are equal.
type LineAmount struct {
	Payment int64
	Applied int64
}

// RefundedLines is the rule that keeps invoices in step with refunds: given
// a payment's lines, oldest first, and the payment's cumulative refunded
// amount (in its own minor units), it says how much of each line the refunds
// have taken back, in both currencies.
//
// Refunds are carved out of the lines in the payment's currency, oldest line
// first, as one prefix of the cumulative amount: line i (after lines whose
// payment amounts add up to P) has min(max(refunded−P, 0), Payment) of its
// payment amount refunded. That part is converted to the invoice's currency
// at the line's own ratio, Applied/Payment, exactly (MulDiv, 128-bit) and
// rounded half up; so a line of one currency gives back exactly what was
// refunded from it, a fully refunded line gives back exactly its applied
// amount, and no line ever gives back more than it applied.
//
// Because the result depends only on the cumulative amount, successive
// partial refunds telescope: moving each line from what it has released to
// what RefundedLines says for the new cumulative amount releases, over any
// sequence of refunds, exactly what one refund of the total would have, and
// a full refund releases every line entirely. The result is non-decreasing
// in refunded, line by line. Refunds beyond the lines' total (a payment that
// applies only part of its amount) come out of the unapplied part and
// release nothing more.
//
// Errors: ErrInvalidLine when a line's Payment is not positive or its
// Applied is negative, ErrInvalidState when refunded is negative.
func RefundedLines(refunded int64, lines []LineAmount) ([]LineAmount, error) {
	if refunded < 0 {
		return nil, fmt.Errorf("refunded amount %d is negative: %w", refunded, ErrInvalidState)
	}
	out := make([]LineAmount, len(lines))
	rest := refunded
	for i, l := range lines {
		if l.Payment <= 0 || l.Applied < 0 {
			return nil, fmt.Errorf("line %d of %d→%d: %w", i, l.Payment, l.Applied, ErrInvalidLine)
		}
		c := min(rest, l.Payment)
		rest -= c
		// c ≤ Payment, so the result is at most Applied and MulDiv cannot fail.
		a, err := MulDiv(c, l.Applied, l.Payment, RoundHalfUp)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i, err)
		}
		out[i] = LineAmount{Payment: c, Applied: a}
	}
	return out, nil
}
