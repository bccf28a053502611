package payment

import (
	"math"
	"math/big"
	"testing"
)

// TestConvert: a line in another currency counts in the payout's currency
// at its rate, exactly, rounding half up. (Moved from intake's
// payout_status_test.go with ConvertMinor and ParseRate.)
func TestConvert(t *testing.T) {
	t.Parallel()
	rate := func(s string) *big.Rat {
		r, code := ParseRate(s)
		if code != "" {
			t.Fatalf("rate %s: %s", s, code)
		}
		return r
	}
	cases := []struct {
		minor          int64
		fromExp, toExp int
		rate           string
		want           int64
	}{
		{9200, 2, 2, "0.92", 10000},          // EUR 92.00 at 0.92 EUR/USD is USD 100.00
		{15000, 0, 2, "150", 10000},          // JPY 15000 at 150 JPY/USD is USD 100.00
		{10000, 2, 0, "0.0066666667", 15000}, // USD 100 at that rate is JPY 15000 (rounded)
		{1, 2, 2, "3", 0},                    // 0.333… cents rounds to 0
		{1, 2, 2, "2", 1},                    // 0.5 cents rounds up
		{1234, 3, 2, "1", 123},               // BHD 1.234 at 1 is 123.4 cents
	}
	for _, c := range cases {
		if got := ConvertMinor(c.minor, c.fromExp, c.toExp, rate(c.rate)); got != c.want {
			t.Errorf("convert(%d, %d→%d, %s) = %d, want %d", c.minor, c.fromExp, c.toExp, c.rate, got, c.want)
		}
	}
	for s, code := range map[string]string{"1": "", "0.5": "", "123456789012.123456789012": "", "1.": "invalid",
		".5": "invalid", "01": "invalid", "1e2": "invalid", "-1": "invalid", "0": "must_be_positive", "0.000": "must_be_positive",
		"1234567890123": "invalid", "1.1234567890123": "invalid", "NaN": "invalid", "1/3": "invalid"} {
		if _, got := ParseRate(s); got != code {
			t.Errorf("parseRate(%q) = %q, want %q", s, got, code)
		}
	}
}

// TestRateText: a rate is written as the shortest exact decimal, whether it
// comes from a request (FormatRate) or from numeric(24,12) text (TrimRate),
// and a huge conversion does not wrap around.
func TestRateText(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"1": "1", "0.5": "0.5", "1.250000000000": "1.25", "150.000000000000": "150",
		"0.000000000001": "0.000000000001"} {
		r, code := ParseRate(in)
		if code != "" {
			t.Fatalf("ParseRate(%q): %s", in, code)
		}
		if got := FormatRate(r); got != want {
			t.Errorf("FormatRate(%s) = %q, want %q", in, got, want)
		}
		if got := TrimRate(in); got != want {
			t.Errorf("TrimRate(%q) = %q, want %q", in, got, want)
		}
	}
	if got := TrimRate("100"); got != "100" {
		t.Errorf("TrimRate(100) = %q", got)
	}
	if got := ConvertMinor(1<<62, 0, 4, big.NewRat(1, 1)); got != math.MaxInt64 {
		t.Errorf("an overflowing conversion = %d, want math.MaxInt64 (refused as too large)", got)
	}
}
