package payment_test

import (
	"encoding/binary"
	"errors"
	"math"
	"math/big"
	"slices"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/payd/payd/payment"
)

func TestAllocateExamples(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		total   int64
		weights []int64
		want    []int64
	}{
		{"thirds: the first gets the extra unit", 100, []int64{1, 1, 1}, []int64{34, 33, 33}},
		{"two units over three", 2, []int64{1, 1, 1}, []int64{1, 1, 0}},
		{"largest remainder, not lowest index", 10, []int64{1, 2, 4}, []int64{1, 3, 6}}, // exact 1.43, 2.86, 5.71
		{"exact shares", 1000, []int64{1, 3}, []int64{250, 750}},
		{"zero weight gets zero", 7, []int64{0, 1, 0, 1}, []int64{0, 4, 0, 3}},
		{"zero total", 0, []int64{5, 5}, []int64{0, 0}},
		{"negative total", -100, []int64{1, 1, 1}, []int64{-34, -33, -33}},
		{"one weight", 12345, []int64{9}, []int64{12345}},
		{"the API's largest amounts", 1e14, []int64{1e14, 1e14, 1e14}, []int64{33333333333334, 33333333333333, 33333333333333}},
		{"total past the weights", 1e14, []int64{1, 1e14 - 1}, []int64{1, 1e14 - 1}},
		{"full int64 range", math.MaxInt64, []int64{math.MaxInt64, math.MaxInt64}, []int64{math.MaxInt64/2 + 1, math.MaxInt64 / 2}},
		{"MinInt64", math.MinInt64, []int64{1, 1}, []int64{math.MinInt64 / 2, math.MinInt64 / 2}},
		{"MinInt64 in three", math.MinInt64, []int64{1, 1, 1}, []int64{-3074457345618258603, -3074457345618258603, -3074457345618258602}},
	} {
		got, err := payment.Allocate(c.total, c.weights)
		if err != nil {
			t.Errorf("%s: Allocate(%d, %v): %v", c.name, c.total, c.weights, err)
			continue
		}
		if d := cmp.Diff(c.want, got); d != "" {
			t.Errorf("%s: Allocate(%d, %v) (-want +got):\n%s", c.name, c.total, c.weights, d)
		}
	}
}

func TestAllocateErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		weights []int64
		want    error
	}{
		{nil, payment.ErrInvalidWeights},
		{[]int64{}, payment.ErrInvalidWeights},
		{[]int64{0, 0}, payment.ErrInvalidWeights},
		{[]int64{1, -1, 3}, payment.ErrInvalidWeights},
		{[]int64{math.MinInt64}, payment.ErrInvalidWeights},
		{[]int64{math.MaxInt64, math.MaxInt64, 2}, payment.ErrOverflow},
		// a negative weight is refused as such even after the sum overflowed (found by FuzzAllocate)
		{[]int64{math.MaxInt64, math.MaxInt64, math.MaxInt64, -1}, payment.ErrInvalidWeights},
	} {
		got, err := payment.Allocate(100, c.weights)
		if !errors.Is(err, c.want) || got != nil {
			t.Errorf("Allocate(100, %v) = %v, %v; want nil, %v", c.weights, got, err, c.want)
		}
	}
	// the largest sum that fits: 2 × MaxInt64 + 1 = 2^64 - 1
	if _, err := payment.Allocate(100, []int64{math.MaxInt64, math.MaxInt64, 1}); err != nil {
		t.Errorf("weights summing to 2^64-1: %v", err)
	}
}

// refAllocate is largest remainder written out in math/big, independently of
// Allocate's 128-bit arithmetic: floor shares of |total|, then one unit each
// to the largest exact remainders, lowest index first among equals.
func refAllocate(total int64, weights []int64) []int64 {
	sum := new(big.Int)
	for _, w := range weights {
		sum.Add(sum, big.NewInt(w))
	}
	mag := new(big.Int).Abs(big.NewInt(total))
	parts := make([]*big.Int, len(weights))
	rems := make([]*big.Int, len(weights))
	left := new(big.Int).Set(mag)
	for i, w := range weights {
		parts[i], rems[i] = new(big.Int).QuoRem(new(big.Int).Mul(mag, big.NewInt(w)), sum, new(big.Int))
		left.Sub(left, parts[i])
	}
	idx := make([]int, len(weights))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return rems[idx[a]].Cmp(rems[idx[b]]) > 0 })
	for k := 0; k < int(left.Int64()); k++ {
		parts[idx[k]].Add(parts[idx[k]], big.NewInt(1))
	}
	out := make([]int64, len(weights))
	for i, p := range parts {
		if total < 0 {
			p.Neg(p)
		}
		out[i] = p.Int64()
	}
	return out
}

// weightsGen draws weights whose sum fits in 64 bits: up to 12 of them from
// the API's range, or a few from the whole int64 range, with zeros and equal
// weights (ties) common.
func weightsGen() *rapid.Generator[[]int64] {
	small := rapid.OneOf(rapid.Int64Range(0, 1e14), rapid.Int64Range(0, 10), rapid.SampledFrom([]int64{0, 1, 1e14}))
	return rapid.OneOf(
		rapid.SliceOfN(small, 1, 12),
		rapid.SliceOfN(rapid.Int64Range(0, math.MaxInt64), 1, 2),
	).Filter(func(w []int64) bool { return slices.ContainsFunc(w, func(x int64) bool { return x > 0 }) })
}

// TestAllocateProperties: for random totals over the whole int64 range and
// random weights, the parts add up to the total exactly, each is within one
// unit of its exact share (its share rounded toward or away from zero), a
// zero weight gets nothing, the result is the same on every call, matches
// largest remainder computed in math/big, is symmetric in the total's sign
// and unchanged when every weight is scaled by the same factor.
func TestAllocateProperties(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		total := amount().Draw(t, "total")
		weights := weightsGen().Draw(t, "weights")
		parts, err := payment.Allocate(total, weights)
		if err != nil {
			t.Fatalf("Allocate(%d, %v): %v", total, weights, err)
		}
		if len(parts) != len(weights) {
			t.Fatalf("%d parts for %d weights", len(parts), len(weights))
		}
		sumW, sumP := new(big.Int), new(big.Int)
		for i, w := range weights {
			sumW.Add(sumW, big.NewInt(w))
			sumP.Add(sumP, big.NewInt(parts[i]))
		}
		if sumP.Cmp(big.NewInt(total)) != 0 {
			t.Fatalf("Allocate(%d, %v) = %v sums to %s", total, weights, parts, sumP)
		}
		for i, w := range weights {
			// |part·W − total·w| < W: within one unit of the exact share
			dev := new(big.Int).Sub(new(big.Int).Mul(big.NewInt(parts[i]), sumW), new(big.Int).Mul(big.NewInt(total), big.NewInt(w)))
			if dev.CmpAbs(sumW) >= 0 {
				t.Fatalf("part %d = %d of Allocate(%d, %v) is a unit or more from its share", i, parts[i], total, weights)
			}
			if w == 0 && parts[i] != 0 {
				t.Fatalf("zero weight %d got %d", i, parts[i])
			}
		}
		if d := cmp.Diff(refAllocate(total, weights), parts); d != "" {
			t.Fatalf("Allocate(%d, %v) differs from largest remainder (-want +got):\n%s", total, weights, d)
		}
		again, _ := payment.Allocate(total, weights)
		if !slices.Equal(again, parts) {
			t.Fatalf("Allocate(%d, %v) gave %v, then %v", total, weights, parts, again)
		}
		if total != math.MinInt64 {
			neg, _ := payment.Allocate(-total, weights)
			for i := range neg {
				if neg[i] != -parts[i] {
					t.Fatalf("Allocate(%d) = %v but Allocate(%d) = %v", total, parts, -total, neg)
				}
			}
		}
		k := rapid.Int64Range(2, 1000).Draw(t, "scale")
		scaled := make([]int64, len(weights))
		for i, w := range weights {
			if w > math.MaxInt64/k/int64(len(weights)) {
				return // the scaled sum would not fit: nothing to compare
			}
			scaled[i] = w * k
		}
		if got, err := payment.Allocate(total, scaled); err != nil || !slices.Equal(got, parts) {
			t.Fatalf("weights scaled by %d: %v, %v; want %v", k, got, err, parts)
		}
	})
}

// FuzzAllocate: for any total and any weights (eight bytes each), Allocate
// either refuses them with a named error or returns parts that sum to the
// total, each within one unit of its share, as largest remainder says.
func FuzzAllocate(f *testing.F) {
	le := func(ws ...int64) []byte {
		var b []byte
		for _, w := range ws {
			b = binary.LittleEndian.AppendUint64(b, uint64(w))
		}
		return b
	}
	f.Add(int64(100), le(1, 1, 1))
	f.Add(int64(math.MinInt64), le(1, 1, 1))
	f.Add(int64(1e14), le(1e14, 1e14, 0, 7))
	f.Add(int64(5), le(0, 0))
	f.Add(int64(5), le(-1, 2))
	f.Add(int64(math.MaxInt64), le(math.MaxInt64, math.MaxInt64, 1))
	f.Fuzz(func(t *testing.T, total int64, raw []byte) {
		var weights []int64
		for len(raw) >= 8 && len(weights) < 64 {
			weights = append(weights, int64(binary.LittleEndian.Uint64(raw)))
			raw = raw[8:]
		}
		parts, err := payment.Allocate(total, weights)
		sumW := new(big.Int)
		valid := len(weights) > 0
		for _, w := range weights {
			valid = valid && w >= 0
			sumW.Add(sumW, big.NewInt(w))
		}
		switch {
		case !valid || sumW.Sign() == 0:
			if !errors.Is(err, payment.ErrInvalidWeights) {
				t.Fatalf("Allocate(%d, %v) = %v, %v; want ErrInvalidWeights", total, weights, parts, err)
			}
			return
		case sumW.BitLen() > 64:
			if !errors.Is(err, payment.ErrOverflow) {
				t.Fatalf("Allocate(%d, %v) = %v, %v; want ErrOverflow", total, weights, parts, err)
			}
			return
		case err != nil:
			t.Fatalf("Allocate(%d, %v): %v", total, weights, err)
		}
		sumP := new(big.Int)
		for i, w := range weights {
			sumP.Add(sumP, big.NewInt(parts[i]))
			dev := new(big.Int).Sub(new(big.Int).Mul(big.NewInt(parts[i]), sumW), new(big.Int).Mul(big.NewInt(total), big.NewInt(w)))
			if dev.CmpAbs(sumW) >= 0 {
				t.Fatalf("part %d = %d of Allocate(%d, %v) is a unit or more from its share", i, parts[i], total, weights)
			}
		}
		if sumP.Cmp(big.NewInt(total)) != 0 {
			t.Fatalf("Allocate(%d, %v) = %v sums to %s", total, weights, parts, sumP)
		}
		if d := cmp.Diff(refAllocate(total, weights), parts); d != "" {
			t.Fatalf("Allocate(%d, %v) (-largest remainder +got):\n%s", total, weights, d)
		}
	})
}
