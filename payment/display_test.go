package payment_test

import (
	"bufio"
	"math"
	"math/big"
	"os"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/payd/payd/payment"
)

func TestDisplayAmount(t *testing.T) {
	t.Parallel()
	const nb, nnb = "\u00a0", "\u202f"
	tests := []struct {
		minor            int64
		currency, locale string
		want             string
	}{
		{123456, "GBP", "en-GB", "£1,234.56"},
		{123456, "USD", "en-GB", "US$1,234.56"},
		{123456, "USD", "en-US", "$1,234.56"},
		{123456, "EUR", "de-DE", "1.234,56" + nb + "€"},
		{123456, "EUR", "fr-FR", "1" + nnb + "234,56" + nb + "€"},
		{123456, "USD", "fr-FR", "1" + nnb + "234,56" + nb + "$US"},
		{123456, "JPY", "ja-JP", "￥123,456"},
		{123456, "JPY", "en-GB", "JP¥123,456"},
		{123456, "JPY", "de-DE", "123.456" + nb + "¥"},
		{1234567, "BHD", "en-US", "BHD" + nb + "1,234.567"},
		{1234567, "BHD", "de-DE", "1.234,567" + nb + "BHD"},
		{1, "BHD", "en-GB", "BHD" + nb + "0.001"},
		{1, "USD", "en-US", "$0.01"},
		{0, "USD", "en-US", "$0.00"},
		{0, "JPY", "ja-JP", "￥0"},
		{5, "CLF", "en-GB", "CLF" + nb + "0.0005"}, // exponent 4
		{-123456, "GBP", "en-GB", "-£1,234.56"},
		{-123456, "EUR", "de-DE", "-1.234,56" + nb + "€"},
		{100, "EUR", "en-GB", "€1.00"},
		{99999, "EUR", "en-GB", "€999.99"},
		{100000, "EUR", "en-GB", "€1,000.00"},
		{100_000_000_000_000, "USD", "en-US", "$1,000,000,000,000.00"},
		{100_000_000_000_000, "JPY", "fr-FR", "100" + nnb + "000" + nnb + "000" + nnb + "000" + nnb + "000" + nb + "JPY"},
		{math.MinInt64, "USD", "en-US", "-$92,233,720,368,547,758.08"},
		{math.MaxInt64, "JPY", "ja-JP", "￥9,223,372,036,854,775,807"},
		// the locale: case, "_" and bare languages are forgiven; anything
		// else is en-GB
		{123456, "EUR", "DE-de", "1.234,56" + nb + "€"},
		{123456, "EUR", "de_DE", "1.234,56" + nb + "€"},
		{123456, "EUR", "fr", "1" + nnb + "234,56" + nb + "€"},
		{123456, "USD", "en", "US$1,234.56"},
		{123456, "USD", "", "US$1,234.56"},
		{123456, "USD", "pt-BR", "US$1,234.56"},
		{123456, "USD", "de-AT", "US$1,234.56"},
		{123456, "USD", "xx-<script>", "US$1,234.56"},
		// a currency payd never stores: minor units and the code
		{123456, "XTS", "en-GB", "XTS" + nb + "123,456"},
		{123456, "XTS", "de-DE", "123.456" + nb + "XTS"},
	}
	for _, tt := range tests {
		if got := payment.DisplayAmount(tt.minor, tt.currency, tt.locale); got != tt.want {
			t.Errorf("DisplayAmount(%d, %q, %q) = %q, want %q", tt.minor, tt.currency, tt.locale, got, tt.want)
		}
	}
}

func TestDisplayLocale(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"en-GB": "en-GB", "en-us": "en-US", "de_DE": "de-DE", "FR-FR": "fr-FR", "ja": "ja-JP", " ja-JP ": "ja-JP",
		"": "en-GB", "es-ES": "en-GB", "en-AU": "en-GB", "de-CH": "en-GB",
	} {
		if got := payment.DisplayLocale(in); got != want {
			t.Errorf("DisplayLocale(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDisplayAmountMatchesICU: for every currency of our table in every
// supported locale, DisplayAmount writes what ICU's Intl.NumberFormat
// writes with the ISO exponent as the fraction digits (the table in
// testdata/display_amount.golden, written by testdata/display_amount.js).
func TestDisplayAmountMatchesICU(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/display_amount.golden")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	currencies := map[string]bool{}
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, "\t")
		if len(fields) != 4 {
			t.Fatalf("bad golden line %q", line)
		}
		minor, err := strconv.ParseInt(fields[2], 10, 64)
		if err != nil {
			t.Fatalf("bad golden line %q: %v", line, err)
		}
		if got := payment.DisplayAmount(minor, fields[1], fields[0]); got != fields[3] {
			t.Errorf("DisplayAmount(%d, %q, %q) = %q, ICU writes %q", minor, fields[1], fields[0], got, fields[3])
		}
		currencies[fields[1]] = true
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 1700 {
		t.Fatalf("only %d golden lines", n)
	}
	for _, c := range []string{"USD", "JPY", "BHD", "CLF", "ZWG", "XCG"} {
		if !currencies[c] {
			t.Errorf("the golden table has no %s: regenerate it (testdata/display_amount.js)", c)
		}
	}
}

// TestDisplayAmountProperties: for 0-, 2- and 3-decimal currencies and
// amounts from one minor unit to 1e14 in every locale, the text holds the
// amount's digits exactly once, in order, with exactly the currency's
// exponent after the locale's decimal separator, groups of three digits
// before it, the symbol on the locale's side, and an unsupported locale
// writes what en-GB writes.
func TestDisplayAmountProperties(t *testing.T) {
	t.Parallel()
	type loc struct{ group, decimal string }
	locales := map[string]loc{
		"en-GB": {",", "."}, "en-US": {",", "."}, "de-DE": {".", ","}, "fr-FR": {"\u202f", ","}, "ja-JP": {",", "."},
	}
	names := []string{"en-GB", "en-US", "de-DE", "fr-FR", "ja-JP"}
	rapid.Check(t, func(t *rapid.T) {
		currency := rapid.SampledFrom([]string{"JPY", "KRW", "CLP", "USD", "EUR", "GBP", "BHD", "KWD", "TND"}).Draw(t, "currency")
		locale := rapid.SampledFrom(names).Draw(t, "locale")
		minor := rapid.OneOf(rapid.Int64Range(1, 1e14), rapid.Int64Range(1, 1000),
			rapid.SampledFrom([]int64{1, 9, 10, 99, 100, 999, 1000, 1e14})).Draw(t, "minor")
		exp, _ := payment.CurrencyExponent(currency)
		got := payment.DisplayAmount(minor, currency, locale)
		l := locales[locale]

		// the number is the run of digits and separators
		num := strings.TrimFunc(got, func(r rune) bool {
			return !(r >= '0' && r <= '9')
		})
		if got != num && !strings.HasPrefix(got, num) && !strings.HasSuffix(got, num) {
			t.Fatalf("%q: the symbol is inside the number", got)
		}
		symbolAfter := locale == "de-DE" || locale == "fr-FR"
		if symbolAfter != strings.HasPrefix(got, num) {
			t.Fatalf("%q: the symbol is on the wrong side for %s", got, locale)
		}
		intPart, frac, hasDec := strings.Cut(num, l.decimal)
		if hasDec != (exp > 0) || len(frac) != exp {
			t.Fatalf("%q: want %d decimals after %q", got, exp, l.decimal)
		}
		groups := strings.Split(intPart, l.group)
		for i, g := range groups {
			if g == "" || len(g) > 3 || (i > 0 && len(g) != 3) || strings.ContainsFunc(g, func(r rune) bool { return r < '0' || r > '9' }) {
				t.Fatalf("%q: bad digit group %q", got, g)
			}
		}
		digits := strings.Join(groups, "") + frac
		back, ok := new(big.Int).SetString(digits, 10)
		if !ok || back.Cmp(big.NewInt(minor)) != 0 {
			t.Fatalf("%q reads back as %s minor units, want %d", got, digits, minor)
		}
		if len(groups[0]) > 1 && groups[0][0] == '0' {
			t.Fatalf("%q: leading zero", got)
		}
		if neg := payment.DisplayAmount(-minor, currency, locale); neg != "-"+got {
			t.Fatalf("DisplayAmount(-%d) = %q, want %q", minor, neg, "-"+got)
		}
		if other := payment.DisplayAmount(minor, currency, "es-ES"); other != payment.DisplayAmount(minor, currency, "en-GB") {
			t.Fatalf("es-ES wrote %q, not en-GB's", other)
		}
	})
}
