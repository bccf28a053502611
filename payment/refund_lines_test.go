package payment_test

import (
	"errors"
	"math"
	"math/big"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/payd/payd/payment"
)

func TestRefundedLinesExamples(t *testing.T) {
	t.Parallel()
	type la = payment.LineAmount
	for _, c := range []struct {
		name     string
		refunded int64
		lines    []la
		want     []la
	}{
		// the reported bug: 50,000,000.00 USD on one line, refunded in full
		{"issue 19", 50_000_000_00, []la{{50_000_000_00, 50_000_000_00}}, []la{{50_000_000_00, 50_000_000_00}}},
		{"nothing refunded", 0, []la{{100, 100}, {50, 70}}, []la{{0, 0}, {0, 0}}},
		{"oldest line first", 120, []la{{100, 100}, {50, 50}}, []la{{100, 100}, {20, 20}}},
		{"beyond the lines", 1000, []la{{100, 100}, {50, 50}}, []la{{100, 100}, {50, 50}}},
		// FX: 3 USD cents applied as 1000 JPY... half-up of 1*1000/3 = 333.3
		{"fx third", 1, []la{{3, 1000}}, []la{{1, 333}}},
		{"fx two thirds", 2, []la{{3, 1000}}, []la{{2, 667}}},
		{"fx whole", 3, []la{{3, 1000}}, []la{{3, 1000}}},
		{"fx tie rounds up", 1, []la{{2, 3}}, []la{{1, 2}}},
		// the API's largest amounts on an FX line: (1e14-1)(1e14-7)/1e14
		{"fx large", 99_999_999_999_999, []la{{1e14, 1e14 - 7}}, []la{{99_999_999_999_999, 99_999_999_999_992}}}, // 99,999,999,999,992.00000000000007
		{"max int64", math.MaxInt64, []la{{math.MaxInt64, math.MaxInt64}}, []la{{math.MaxInt64, math.MaxInt64}}},
		{"zero applied", 5, []la{{10, 0}}, []la{{5, 0}}},
	} {
		got, err := payment.RefundedLines(c.refunded, c.lines)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if d := cmp.Diff(c.want, got); d != "" {
			t.Errorf("%s: RefundedLines(%d, %v) (-want +got):\n%s", c.name, c.refunded, c.lines, d)
		}
	}
	for _, c := range []struct {
		refunded int64
		lines    []la
		want     error
	}{
		{-1, []la{{1, 1}}, payment.ErrInvalidState},
		{1, []la{{0, 1}}, payment.ErrInvalidLine},
		{1, []la{{1, 1}, {-3, 1}}, payment.ErrInvalidLine},
		{1, []la{{1, -1}}, payment.ErrInvalidLine},
	} {
		if got, err := payment.RefundedLines(c.refunded, c.lines); !errors.Is(err, c.want) {
			t.Errorf("RefundedLines(%d, %v) = %v, %v; want %v", c.refunded, c.lines, got, err, c.want)
		}
	}
}

// linesGen draws up to 6 lines of the API's amounts (1 minor unit to 1e14),
// a third of them FX lines (payment amount ≠ applied amount).
func linesGen() *rapid.Generator[[]payment.LineAmount] {
	amt := rapid.OneOf(rapid.Int64Range(1, 1e14), rapid.Int64Range(1, 100))
	return rapid.SliceOfN(rapid.Custom(func(t *rapid.T) payment.LineAmount {
		p := amt.Draw(t, "payment")
		if rapid.IntRange(0, 2).Draw(t, "fx") == 0 {
			return payment.LineAmount{Payment: p, Applied: amt.Draw(t, "applied")}
		}
		return payment.LineAmount{Payment: p, Applied: p}
	}), 1, 6)
}

// TestRefundedLinesProperties: for random lines and refunds, the refunded
// parts in the payment's currency are the oldest-first prefix of the
// refunded amount and add up to it (up to the lines' total); each line's
// part in the invoice's currency is its exact share rounded half up, within
// [0, applied], the whole applied amount once the line is fully refunded
// and exactly the payment part on a line of one currency; and it never
// decreases as more is refunded, so a sequence of partial refunds, each
// releasing the difference, releases exactly what one refund of the sum
// would (telescoping), and the full refund releases every line.
func TestRefundedLinesProperties(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		lines := linesGen().Draw(t, "lines")
		var total int64
		for _, l := range lines {
			total += l.Payment
		}
		// the payment may be larger than its lines (a payout applying part of its amount)
		amount := total + rapid.OneOf(rapid.Just(int64(0)), rapid.Int64Range(0, 1e14)).Draw(t, "unapplied")
		refunds := rapid.SliceOfN(rapid.Int64Range(1, amount), 1, 8).Draw(t, "refunds")
		released := make([]int64, len(lines))
		var refunded int64
		prev := make([]payment.LineAmount, len(lines))
		for k, r := range refunds {
			last := k == len(refunds)-1
			if last || refunded+r > amount {
				r = amount - refunded // the final refund takes the rest
			}
			refunded += r
			got, err := payment.RefundedLines(refunded, lines)
			if err != nil {
				t.Fatalf("RefundedLines(%d, %v): %v", refunded, lines, err)
			}
			rest := refunded
			var sumPay int64
			for i, l := range lines {
				g := got[i]
				if want := min(rest, l.Payment); g.Payment != want {
					t.Fatalf("line %d: payment part %d after %d refunded, want %d (oldest first)", i, g.Payment, refunded, want)
				}
				rest -= g.Payment
				sumPay += g.Payment
				// half up: |2(g.Applied·p − c·a)| ≤ p, and ties (== p) only above
				dev := new(big.Int).Sub(new(big.Int).Mul(big.NewInt(g.Applied), big.NewInt(l.Payment)),
					new(big.Int).Mul(big.NewInt(g.Payment), big.NewInt(l.Applied)))
				dev.Lsh(dev, 1)
				if dev.CmpAbs(big.NewInt(l.Payment)) > 0 || dev.Cmp(new(big.Int).Neg(big.NewInt(l.Payment))) == 0 {
					t.Fatalf("line %d %v: applied part %d for %d refunded is not its share rounded half up", i, l, g.Applied, g.Payment)
				}
				if g.Applied < 0 || g.Applied > l.Applied ||
					(g.Payment == l.Payment && g.Applied != l.Applied) ||
					(l.Payment == l.Applied && g.Applied != g.Payment) {
					t.Fatalf("line %d %v: applied part %d for %d refunded", i, l, g.Applied, g.Payment)
				}
				if g.Payment < prev[i].Payment || g.Applied < prev[i].Applied {
					t.Fatalf("line %d went back from %v to %v as refunds grew", i, prev[i], g)
				}
				released[i] += g.Applied - prev[i].Applied // what this refund releases
			}
			if sumPay != min(refunded, total) {
				t.Fatalf("payment parts add up to %d for %d refunded over lines of %d", sumPay, refunded, total)
			}
			prev = got
			if last {
				break
			}
		}
		if refunded != amount {
			t.Fatalf("refunded %d of %d", refunded, amount)
		}
		for i, l := range lines {
			if released[i] != l.Applied {
				t.Fatalf("after a full refund line %d %v released %d in all", i, l, released[i])
			}
		}
	})
}

// FuzzRefundedLines: any refunded amount over two lines of any amounts:
// RefundedLines refuses what is invalid and otherwise keeps every part
// within its line.
func FuzzRefundedLines(f *testing.F) {
	f.Add(int64(50_000_000_00), int64(50_000_000_00), int64(50_000_000_00), int64(1), int64(1))
	f.Add(int64(1), int64(3), int64(1000), int64(2), int64(3))
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(1))
	f.Fuzz(func(t *testing.T, refunded, p1, a1, p2, a2 int64) {
		lines := []payment.LineAmount{{Payment: p1, Applied: a1}, {Payment: p2, Applied: a2}}
		got, err := payment.RefundedLines(refunded, lines)
		switch {
		case refunded < 0:
			if !errors.Is(err, payment.ErrInvalidState) {
				t.Fatalf("negative refunded %d: %v, %v", refunded, got, err)
			}
			return
		case p1 <= 0 || p2 <= 0 || a1 < 0 || a2 < 0:
			if !errors.Is(err, payment.ErrInvalidLine) {
				t.Fatalf("invalid lines %v: %v, %v", lines, got, err)
			}
			return
		case err != nil:
			t.Fatalf("RefundedLines(%d, %v): %v", refunded, lines, err)
		}
		if got[0].Payment != min(refunded, p1) || got[1].Payment != min(refunded-got[0].Payment, p2) {
			t.Fatalf("RefundedLines(%d, %v) = %v: not the oldest-first prefix", refunded, lines, got)
		}
		for i, l := range lines {
			want, err := payment.MulDiv(got[i].Payment, l.Applied, l.Payment, payment.RoundHalfUp)
			if err != nil || got[i].Applied != want || want > l.Applied || (got[i].Payment == l.Payment && want != l.Applied) {
				t.Fatalf("line %d %v: %v, want applied %d (%v)", i, l, got[i], want, err)
			}
		}
	})
}
