package payment

import (
	"math"
	"math/big"
	"strings"
)

// A payout's line may pay an invoice in another currency at the line's
// exchange rate (seed 002's fx_rate_line, numeric(24,12) in the schema):
// units of the invoice's currency per unit of the payout's. Rates are exact
// rationals, never floats.

// ParseRate reads an exchange rate: a positive decimal with at most 12
// digits on each side of the point. It returns the error code of a bad one:
// "invalid" or "must_be_positive".
func ParseRate(s string) (*big.Rat, string) {
	intg, frac, hasPoint := strings.Cut(s, ".")
	if intg == "" || len(intg) > 12 || !isDigits(intg) || (len(intg) > 1 && intg[0] == '0') ||
		(hasPoint && (frac == "" || len(frac) > 12 || !isDigits(frac))) {
		return nil, "invalid"
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, "invalid"
	}
	if r.Sign() <= 0 {
		return nil, "must_be_positive"
	}
	return r, ""
}

// FormatRate writes a rate as the shortest exact decimal (a rate ParseRate
// accepted has at most 12 decimals).
func FormatRate(r *big.Rat) string {
	s := strings.TrimRight(r.FloatString(12), "0")
	return strings.TrimSuffix(s, ".")
}

// TrimRate writes a rate stored as numeric(24,12) text without its
// trailing zeros: the form FormatRate writes.
func TrimRate(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

// ConvertMinor turns minor units of one currency (exponent fromExp) into
// minor units of another (toExp) at rate units of the first per unit of the
// second, rounding half up, exactly (math/big). A result past int64 is
// math.MaxInt64, which every amount limit refuses as too large (not -1:
// that read as "too small").
func ConvertMinor(minor int64, fromExp, toExp int, rate *big.Rat) int64 {
	q := new(big.Rat).SetInt64(minor)
	q.Quo(q, rate)
	q.Mul(q, new(big.Rat).SetFrac(powerOf10(toExp), powerOf10(fromExp)))
	// round half up: floor(q + 1/2)
	q.Add(q, big.NewRat(1, 2))
	n := new(big.Int).Quo(q.Num(), q.Denom())
	if !n.IsInt64() {
		return math.MaxInt64
	}
	return n.Int64()
}

func powerOf10(n int) *big.Int { return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil) }
