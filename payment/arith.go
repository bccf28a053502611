package payment

import (
	"errors"
	"math"
	"math/bits"
)

// Exact integer arithmetic on amounts. A product of two int64 amounts does
// not fit in int64 (two amounts of 1e14 minor units, the API's limit, make
// 1e28), so every proportional conversion goes through MulDiv, whose
// intermediate product is 128 bits wide, and rounds the one way its caller
// names. Nothing here uses floating point.

// Errors of the exact arithmetic.
var (
	// ErrDivisionByZero: MulDiv's divisor is zero.
	ErrDivisionByZero = errors.New("division by zero")
	// ErrOverflow: the exact result does not fit in int64 (or, for
	// Allocate, the weights' sum does not fit in 64 bits).
	ErrOverflow = errors.New("result out of the int64 range")
	// ErrInvalidWeights: Allocate was given no weights, a negative weight,
	// or weights that sum to zero.
	ErrInvalidWeights = errors.New("invalid allocation weights")
)

// Rounding says which way MulDiv takes a quotient that is not a whole number
// (an exact quotient is never changed). The names are those of
// java.math.RoundingMode. The zero value is not a mode: a caller always says
// which rounding it means.
type Rounding uint8

const (
	// RoundDown goes toward zero: what Go's integer division does.
	RoundDown Rounding = iota + 1
	// RoundUp goes away from zero.
	RoundUp
	// RoundFloor goes toward negative infinity.
	RoundFloor
	// RoundCeiling goes toward positive infinity.
	RoundCeiling
	// RoundHalfUp goes to the nearest whole number, a tie away from zero
	// (2.5 → 3, -2.5 → -3): the rounding of a cash register.
	RoundHalfUp
	// RoundHalfEven goes to the nearest whole number, a tie to the even one
	// (2.5 → 2, 3.5 → 4): banker's rounding, unbiased over many roundings.
	RoundHalfEven
)

func (r Rounding) String() string {
	switch r {
	case RoundDown:
		return "down"
	case RoundUp:
		return "up"
	case RoundFloor:
		return "floor"
	case RoundCeiling:
		return "ceiling"
	case RoundHalfUp:
		return "half-up"
	case RoundHalfEven:
		return "half-even"
	}
	return "Rounding(invalid)"
}

// abs64 is |x| as a uint64; exact for math.MinInt64 too.
func abs64(x int64) uint64 {
	if x < 0 {
		return -uint64(x) // two's complement
	}
	return uint64(x)
}

// MulDiv returns x*y/d rounded as mode says, computed exactly for every
// int64 x, y and d: the product is held in 128 bits (math/bits), so
// MulDiv(a, b, b) == a for any a and non-zero b, and a proportional share
// such as MulDiv(refunded, applied, paid, RoundHalfUp) never overflows while
// its result fits.
//
// Errors: ErrDivisionByZero when d is zero; ErrOverflow when the rounded
// result is outside [math.MinInt64, math.MaxInt64]. It panics on a mode
// that is not one of the Rounding constants: that is a programming error,
// not an input.
func MulDiv(x, y, d int64, mode Rounding) (int64, error) {
	if mode < RoundDown || mode > RoundHalfEven {
		panic("payment.MulDiv: invalid rounding mode")
	}
	if d == 0 {
		return 0, ErrDivisionByZero
	}
	neg := (x < 0) != (y < 0) != (d < 0)
	ud := abs64(d)
	hi, lo := bits.Mul64(abs64(x), abs64(y))
	if hi >= ud {
		return 0, ErrOverflow // the quotient needs more than 64 bits
	}
	q, r := bits.Div64(hi, lo, ud)
	if r != 0 && roundsAway(mode, neg, q, r, ud) {
		q++
		if q == 0 {
			return 0, ErrOverflow // q was the largest uint64
		}
	}
	return signed(q, neg)
}

// roundsAway reports whether a quotient of magnitude q with remainder r ≠ 0
// (of divisor d) moves one further from zero under mode; neg is the sign of
// the exact quotient.
func roundsAway(mode Rounding, neg bool, q, r, d uint64) bool {
	switch mode {
	case RoundUp:
		return true
	case RoundFloor:
		return neg
	case RoundCeiling:
		return !neg
	case RoundHalfUp:
		return r >= d-r // 2r ≥ d, without overflow (r < d)
	case RoundHalfEven:
		return r > d-r || (r == d-r && q%2 == 1)
	}
	return false // RoundDown
}

// signed gives a magnitude its sign, if the result fits in int64.
func signed(mag uint64, neg bool) (int64, error) {
	if neg {
		if mag > 1<<63 {
			return 0, ErrOverflow
		}
		return int64(-mag), nil // -(1<<63) wraps to math.MinInt64
	}
	if mag > math.MaxInt64 {
		return 0, ErrOverflow
	}
	return int64(mag), nil
}
