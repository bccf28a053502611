package payment_test

import (
	"errors"
	"math"
	"math/big"
	"testing"

	"pgregory.net/rapid"

	"github.com/payd/payd/payment"
)

var roundings = []payment.Rounding{payment.RoundDown, payment.RoundUp, payment.RoundFloor, payment.RoundCeiling,
	payment.RoundHalfUp, payment.RoundHalfEven}

// bigMulDiv is MulDiv's definition in math/big: x*y/d as an exact rational,
// rounded by each mode's own formula, and whether the result fits in int64.
func bigMulDiv(x, y, d int64, mode payment.Rounding) (int64, bool) {
	num := new(big.Int).Mul(big.NewInt(x), big.NewInt(y))
	den := big.NewInt(d)
	if den.Sign() < 0 { // keep the denominator positive: Div is then floor division
		num.Neg(num)
		den.Neg(den)
	}
	floor := func(n *big.Int) *big.Int { return new(big.Int).Div(n, den) } // Euclidean = floor for den > 0
	ceil := func(n *big.Int) *big.Int { return new(big.Int).Neg(floor(new(big.Int).Neg(n))) }
	twice := new(big.Int).Lsh(num, 1)
	var q *big.Int
	switch mode {
	case payment.RoundFloor:
		q = floor(num)
	case payment.RoundCeiling:
		q = ceil(num)
	case payment.RoundDown: // toward zero
		if num.Sign() >= 0 {
			q = floor(num)
		} else {
			q = ceil(num)
		}
	case payment.RoundUp: // away from zero
		if num.Sign() >= 0 {
			q = ceil(num)
		} else {
			q = floor(num)
		}
	case payment.RoundHalfUp: // nearest; a tie away from zero: sign * floor((2|n| + d) / 2d)
		a := new(big.Int).Abs(twice)
		a.Add(a, den)
		q = a.Div(a, new(big.Int).Lsh(den, 1))
		if num.Sign() < 0 {
			q.Neg(q)
		}
	case payment.RoundHalfEven: // nearest; a tie to the even neighbour
		lo := floor(num)
		// the distance to lo, doubled, against d
		diff := new(big.Int).Sub(twice, new(big.Int).Mul(lo, new(big.Int).Lsh(den, 1)))
		switch diff.Cmp(den) {
		case -1:
			q = lo
		case 1:
			q = lo.Add(lo, big.NewInt(1))
		default:
			if lo.Bit(0) == 0 {
				q = lo
			} else {
				q = lo.Add(lo, big.NewInt(1))
			}
		}
	}
	if !q.IsInt64() {
		return 0, false
	}
	return q.Int64(), true
}

func checkMulDiv(t interface{ Fatalf(string, ...any) }, x, y, d int64, mode payment.Rounding) {
	got, err := payment.MulDiv(x, y, d, mode)
	if d == 0 {
		if !errors.Is(err, payment.ErrDivisionByZero) {
			t.Fatalf("MulDiv(%d, %d, 0, %s) = %d, %v; want ErrDivisionByZero", x, y, mode, got, err)
		}
		return
	}
	want, ok := bigMulDiv(x, y, d, mode)
	switch {
	case !ok && !errors.Is(err, payment.ErrOverflow):
		t.Fatalf("MulDiv(%d, %d, %d, %s) = %d, %v; want ErrOverflow", x, y, d, mode, got, err)
	case ok && (err != nil || got != want):
		t.Fatalf("MulDiv(%d, %d, %d, %s) = %d, %v; want %d", x, y, d, mode, got, err, want)
	}
}

func TestMulDivExamples(t *testing.T) {
	t.Parallel()
	const (
		max = math.MaxInt64
		min = math.MinInt64
	)
	for _, c := range []struct {
		x, y, d int64
		mode    payment.Rounding
		want    int64
		err     error
	}{
		// the reported bug: 5e9 * 5e9 overflows int64, MulDiv does not
		{50_000_000_00, 50_000_000_00, 50_000_000_00, payment.RoundDown, 50_000_000_00, nil},
		// the API's largest amounts
		{1e14, 1e14, 1e14, payment.RoundHalfUp, 1e14, nil},
		{1e14, 1e14 - 1, 1e14, payment.RoundDown, 1e14 - 1, nil},
		{1e14 - 1, 1e14 - 1, 1e14, payment.RoundDown, 99_999_999_999_998, nil},
		{1e14 - 1, 1e14 - 1, 1e14, payment.RoundUp, 99_999_999_999_999, nil},
		// the full int64 range
		{max, max, max, payment.RoundDown, max, nil},
		{min, min, min, payment.RoundDown, min, nil},
		{min, 1, -1, payment.RoundDown, 0, payment.ErrOverflow},
		{min, -1, 1, payment.RoundDown, 0, payment.ErrOverflow},
		{min, 1, 1, payment.RoundDown, min, nil},
		{max, 2, 1, payment.RoundDown, 0, payment.ErrOverflow},
		{max, max, 1, payment.RoundDown, 0, payment.ErrOverflow},
		{max, 2, 2, payment.RoundUp, max, nil},
		{min, 3, 2, payment.RoundDown, 0, payment.ErrOverflow},
		{min/2 - 1, 2, 1, payment.RoundDown, 0, payment.ErrOverflow},
		// rounding up past MaxInt64 overflows; past MinInt64 too
		{max, 2, 2, payment.RoundUp, max, nil},
		{max, 3, 3, payment.RoundUp, max, nil},
		{min, 1, 1, payment.RoundFloor, min, nil},
		// ties: 2.5, -2.5, 3.5
		{5, 1, 2, payment.RoundHalfUp, 3, nil},
		{-5, 1, 2, payment.RoundHalfUp, -3, nil},
		{5, 1, 2, payment.RoundHalfEven, 2, nil},
		{7, 1, 2, payment.RoundHalfEven, 4, nil},
		{-5, 1, 2, payment.RoundHalfEven, -2, nil},
		{5, 1, -2, payment.RoundFloor, -3, nil},
		{5, 1, -2, payment.RoundCeiling, -2, nil},
		{5, 1, 2, payment.RoundFloor, 2, nil},
		{5, 1, 2, payment.RoundCeiling, 3, nil},
		{-5, 1, 2, payment.RoundDown, -2, nil},
		{-5, 1, 2, payment.RoundUp, -3, nil},
		// not a tie: 2.4 and 2.6
		{12, 1, 5, payment.RoundHalfUp, 2, nil},
		{13, 1, 5, payment.RoundHalfUp, 3, nil},
		// zero
		{0, max, 7, payment.RoundUp, 0, nil},
		{0, min, -1, payment.RoundFloor, 0, nil},
		{1, 1, 0, payment.RoundDown, 0, payment.ErrDivisionByZero},
	} {
		got, err := payment.MulDiv(c.x, c.y, c.d, c.mode)
		if !errors.Is(err, c.err) || (c.err == nil && got != c.want) {
			t.Errorf("MulDiv(%d, %d, %d, %s) = %d, %v; want %d, %v", c.x, c.y, c.d, c.mode, got, err, c.want, c.err)
		}
		if c.d != 0 {
			checkMulDiv(t, c.x, c.y, c.d, c.mode)
		}
	}
}

// amount draws int64s from every scale: the whole range, the API's amounts,
// and small values (where rounding ties are common).
func amount() *rapid.Generator[int64] {
	return rapid.OneOf(rapid.Int64(), rapid.Int64Range(-1e14, 1e14), rapid.Int64Range(-1e3, 1e3),
		rapid.SampledFrom([]int64{0, 1, -1, 2, math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1, 1e14}))
}

// TestMulDivMatchesBig: MulDiv is x*y/d rounded exactly as math/big says,
// over the full int64 range and every mode, and refuses exactly the results
// that do not fit.
func TestMulDivMatchesBig(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		x, y, d := amount().Draw(t, "x"), amount().Draw(t, "y"), amount().Draw(t, "d")
		mode := rapid.SampledFrom(roundings).Draw(t, "mode")
		checkMulDiv(t, x, y, d, mode)
	})
}

// TestMulDivProperties: the identities a caller leans on.
func TestMulDivProperties(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		x, y := amount().Draw(t, "x"), amount().Draw(t, "y")
		mode := rapid.SampledFrom(roundings).Draw(t, "mode")
		if y != 0 {
			// a*b/b is a, exactly
			if got, err := payment.MulDiv(x, y, y, mode); err != nil || got != x {
				t.Fatalf("MulDiv(%d, %d, %d) = %d, %v; want %d", x, y, y, got, err, x)
			}
		}
		// a share of a part is within the part: 0 ≤ MulDiv(r, a, p) ≤ a for 0 ≤ r ≤ p, a ≥ 0
		p := rapid.Int64Range(1, math.MaxInt64).Draw(t, "p")
		r := rapid.Int64Range(0, p).Draw(t, "r")
		a := rapid.Int64Range(0, math.MaxInt64).Draw(t, "a")
		got, err := payment.MulDiv(r, a, p, mode)
		if err != nil || got < 0 || got > a {
			t.Fatalf("MulDiv(%d, %d, %d, %s) = %d, %v; want within [0, %d]", r, a, p, mode, got, err, a)
		}
		// down ≤ half-even, half-up ≤ up for non-negative results, one apart at most
		down, _ := payment.MulDiv(r, a, p, payment.RoundDown)
		up, _ := payment.MulDiv(r, a, p, payment.RoundUp)
		if up-down > 1 || got < down || got > up {
			t.Fatalf("rounding of %d*%d/%d: down %d, %s %d, up %d", r, a, p, down, mode, got, up)
		}
	})
}

func TestMulDivInvalidRoundingPanics(t *testing.T) {
	t.Parallel()
	for _, mode := range []payment.Rounding{0, payment.RoundHalfEven + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("MulDiv with rounding %d did not panic", mode)
				}
			}()
			_, _ = payment.MulDiv(1, 1, 1, mode)
		}()
	}
}

// FuzzMulDiv: MulDiv agrees with math/big on any int64 inputs and mode.
func FuzzMulDiv(f *testing.F) {
	f.Add(int64(50_000_000_00), int64(50_000_000_00), int64(50_000_000_00), uint8(1))
	f.Add(int64(math.MinInt64), int64(-1), int64(1), uint8(2))
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), uint8(5))
	f.Add(int64(-5), int64(1), int64(2), uint8(6))
	f.Add(int64(1), int64(1), int64(0), uint8(3))
	f.Fuzz(func(t *testing.T, x, y, d int64, m uint8) {
		checkMulDiv(t, x, y, d, roundings[int(m)%len(roundings)])
	})
}
