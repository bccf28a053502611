package payment

import (
	"fmt"
	"math/bits"
	"sort"
)

// Allocate splits total minor units into len(weights) parts in proportion to
// weights, by the largest-remainder method (Hamilton's method):
//
//  1. each part starts as its exact share total*w/W (W the sum of the
//     weights) rounded toward zero;
//  2. the units those roundings left over (fewer than the number of
//     non-zero weights) go one each to the parts whose shares lost the most
//     in step 1, the largest remainder first and, between equal remainders,
//     the lowest index first.
//
// So the parts always add up to total exactly, every part differs from its
// exact share by less than one minor unit (a part is its share rounded
// toward zero or away from it), a zero weight always gets zero, and the
// result depends on nothing but the arguments (the same call gives the same
// parts; equal weights differ by at most one unit, the earlier ones getting
// the extra units). A negative total is split as its magnitude is and every
// part negated, so Allocate(-t, w) is Allocate(t, w) negated.
//
// Every product is computed in 128 bits: any int64 total and weights work,
// as long as the weights' sum fits in 64 bits unsigned (true for any two
// int64 weights, and for up to 184,467 weights of 1e14 each, the API's
// largest amount).
//
// Errors: ErrInvalidWeights when weights is empty, a weight is negative or
// the weights sum to zero; ErrOverflow when their sum does not fit in 64
// bits. On error the parts are nil.
func Allocate(total int64, weights []int64) ([]int64, error) {
	if len(weights) == 0 {
		return nil, fmt.Errorf("allocate: no weights: %w", ErrInvalidWeights)
	}
	for i, w := range weights {
		if w < 0 {
			return nil, fmt.Errorf("allocate: weight %d is negative (%d): %w", i, w, ErrInvalidWeights)
		}
	}
	var sum uint64
	for _, w := range weights {
		var carry uint64
		if sum, carry = bits.Add64(sum, uint64(w), 0); carry != 0 {
			return nil, fmt.Errorf("allocate: the weights sum past 2^64: %w", ErrOverflow)
		}
	}
	if sum == 0 {
		return nil, fmt.Errorf("allocate: the weights sum to zero: %w", ErrInvalidWeights)
	}
	neg := total < 0
	mag := abs64(total)
	parts := make([]uint64, len(weights))
	rems := make([]uint64, len(weights))
	left := mag
	for i, w := range weights {
		// mag*w/sum ≤ mag < 2^64 because w ≤ sum, so hi < sum and Div64
		// cannot overflow.
		hi, lo := bits.Mul64(mag, uint64(w))
		parts[i], rems[i] = bits.Div64(hi, lo, sum)
		left -= parts[i]
	}
	if left > 0 {
		// left < the number of non-zero remainders (they add up to left*sum,
		// each below sum), so only parts with a remainder get a unit.
		order := make([]int, len(weights))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return rems[order[a]] > rems[order[b]] })
		for _, i := range order[:left] {
			parts[i]++
		}
	}
	out := make([]int64, len(weights))
	for i, p := range parts {
		// |part| ≤ |total|, so it fits with total's sign.
		if neg {
			out[i] = int64(-p)
		} else {
			out[i] = int64(p)
		}
	}
	return out, nil
}
