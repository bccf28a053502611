package payment

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

func TestParseMajor(t *testing.T) {
	t.Parallel()
	const (
		invalid  = CodeAmountInvalid
		exponent = CodeAmountExponentNotAllowed
		decimals = CodeAmountTooManyDecimals
		rng      = CodeAmountOutOfRange
		currency = CodeCurrencyUnknown
	)
	tests := []struct {
		s, ccy string
		want   int64
		code   string // empty: success
	}{
		// The examples of docs/surfaces.md, "Amounts".
		{"12.5", "USD", 1250, ""},
		{"12.50", "USD", 1250, ""},
		{"-3", "JPY", -3, ""},
		{"1.234", "BHD", 1234, ""},
		{"12.505", "USD", 0, decimals},
		{"1.5", "JPY", 0, decimals},

		// Ordinary values.
		{"0", "USD", 0, ""},
		{"-0", "USD", 0, ""},
		{"-0.00", "USD", 0, ""},
		{"0.0", "JPY", 0, ""},
		{"0.05", "USD", 5, ""},
		{"-0.05", "USD", -5, ""},
		{"0.1", "USD", 10, ""},
		{"1", "USD", 100, ""},
		{"100", "JPY", 100, ""},
		{"1", "BHD", 1000, ""},
		{"0.001", "KWD", 1, ""},
		{"0.0001", "CLF", 1, ""},
		{"1.2345", "UYW", 12345, ""},
		{"10", "IQD", 10000, ""},
		{"123456789", "IDR", 12345678900, ""},

		// Trailing zeros past the exponent are the same value: accepted.
		{"12.500", "USD", 1250, ""},
		{"12.5000000000000000000000000000000", "USD", 1250, ""},
		{"1.0", "JPY", 1, ""},
		{"1.000", "JPY", 1, ""},
		{"-7.00", "KRW", -7, ""},
		{"1.2340", "BHD", 1234, ""},
		// ...but a significant digit past the exponent is not.
		{"12.501", "USD", 0, decimals},
		{"12.5001", "USD", 0, decimals},
		{"0.001", "USD", 0, decimals},
		{"-0.001", "USD", 0, decimals},
		{"1.0001", "BHD", 0, decimals},
		{"0.00001", "CLF", 0, decimals},
		{"0.1", "JPY", 0, decimals},
		{"1.05", "JPY", 0, decimals},

		// Malformed.
		{"", "USD", 0, invalid},
		{"-", "USD", 0, invalid},
		{"--1", "USD", 0, invalid},
		{"+1", "USD", 0, invalid},
		{"+0", "USD", 0, invalid},
		{" 1", "USD", 0, invalid},
		{"1 ", "USD", 0, invalid},
		{"\t1", "USD", 0, invalid},
		{"1\n", "USD", 0, invalid},
		{"1.", "USD", 0, invalid},
		{".5", "USD", 0, invalid},
		{"-.5", "USD", 0, invalid},
		{".", "USD", 0, invalid},
		{"1..2", "USD", 0, invalid},
		{"1.2.3", "USD", 0, invalid},
		{"007", "USD", 0, invalid},
		{"00", "USD", 0, invalid},
		{"-01", "USD", 0, invalid},
		{"00.5", "USD", 0, invalid},
		{"0x1A", "USD", 0, invalid},
		{"0X1a", "USD", 0, invalid},
		{"0b1", "USD", 0, invalid},
		{"0o7", "USD", 0, invalid},
		{"1_000", "USD", 0, invalid},
		{"1,000", "USD", 0, invalid},
		{"1,5", "USD", 0, invalid},
		{"NaN", "USD", 0, invalid},
		{"nan", "USD", 0, invalid},
		{"Infinity", "USD", 0, invalid},
		{"-Infinity", "USD", 0, invalid},
		{"Inf", "USD", 0, invalid},
		{"abc", "USD", 0, invalid},
		{"12abc", "USD", 0, invalid},
		{"$12", "USD", 0, invalid},
		{"12USD", "USD", 0, invalid},
		{`"12.50"`, "USD", 0, invalid},
		{"１２", "USD", 0, invalid}, // full-width digits
		{"١٢", "USD", 0, invalid}, // Arabic-Indic digits
		{"12\x00", "USD", 0, invalid},
		{"null", "USD", 0, invalid},
		{"true", "USD", 0, invalid},
		{"1e", "USD", 0, invalid},
		{"1e+", "USD", 0, invalid},
		{"1ee3", "USD", 0, invalid},
		{"1e3.5", "USD", 0, invalid},
		{"e3", "USD", 0, invalid},
		{".5e3", "USD", 0, invalid},

		// Exponent forms, whatever value they denote.
		{"1e3", "USD", 0, exponent},
		{"1E3", "USD", 0, exponent},
		{"1.5E2", "USD", 0, exponent},
		{"1.5e-2", "USD", 0, exponent},
		{"1e+2", "USD", 0, exponent},
		{"-1e2", "USD", 0, exponent},
		{"0e0", "JPY", 0, exponent},
		{"1e400", "USD", 0, exponent},
		{"1.23456e2", "BHD", 0, exponent},

		// int64 boundaries, exponent 0.
		{"9223372036854775807", "JPY", math.MaxInt64, ""},
		{"9223372036854775808", "JPY", 0, rng},
		{"-9223372036854775808", "JPY", math.MinInt64, ""},
		{"-9223372036854775809", "JPY", 0, rng},
		{"9223372036854775807.000", "JPY", math.MaxInt64, ""},
		{"18446744073709551616", "JPY", 0, rng},
		{"99999999999999999999999999999999999999", "JPY", 0, rng},
		// Exponent 2.
		{"92233720368547758.07", "USD", math.MaxInt64, ""},
		{"92233720368547758.08", "USD", 0, rng},
		{"92233720368547758.1", "USD", 0, rng},
		{"92233720368547759", "USD", 0, rng},
		{"92233720368547758", "USD", 9223372036854775800, ""},
		{"-92233720368547758.08", "USD", math.MinInt64, ""},
		{"-92233720368547758.09", "USD", 0, rng},
		{"-92233720368547759", "USD", 0, rng},
		{"92233720368547758.0700", "USD", math.MaxInt64, ""},
		{"92233720368547758.0800", "USD", 0, rng},
		// Exponent 3.
		{"9223372036854775.807", "BHD", math.MaxInt64, ""},
		{"9223372036854775.808", "BHD", 0, rng},
		{"-9223372036854775.808", "BHD", math.MinInt64, ""},
		{"-9223372036854775.809", "BHD", 0, rng},
		{"9223372036854776", "BHD", 0, rng},
		// Exponent 4.
		{"922337203685477.5807", "CLF", math.MaxInt64, ""},
		{"922337203685477.5808", "CLF", 0, rng},
		{"-922337203685477.5808", "CLF", math.MinInt64, ""},
		// A long but valid integer part is out of range, not a panic.
		{"1" + strings.Repeat("0", 400), "USD", 0, rng},
		{"-1" + strings.Repeat("0", 400) + ".5", "USD", 0, rng},
		// Decimals are judged before range.
		{"99999999999999999999.999", "USD", 0, decimals},

		// Currency: checked first, exact spelling only.
		{"12.50", "usd", 0, currency},
		{"12.50", "", 0, currency},
		{"12.50", "XAU", 0, currency},
		{"12.50", "XXX", 0, currency},
		{"12.50", "ABC", 0, currency},
		{"abc", "ABC", 0, currency},
	}
	for _, tt := range tests {
		got, err := ParseMajor(tt.s, tt.ccy)
		if tt.code == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseMajor(%q, %q) = %d, %v; want %d, nil", tt.s, tt.ccy, got, err, tt.want)
			}
			continue
		}
		if got != 0 || codeOf(err) != tt.code {
			t.Errorf("ParseMajor(%q, %q) = %d, %v; want 0 and code %s", tt.s, tt.ccy, got, err, tt.code)
		}
	}
}

func TestParseMinor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    string
		want int64
		code string
	}{
		{"1250", 1250, ""},
		{"0", 0, ""},
		{"-0", 0, ""},
		{"1", 1, ""},
		{"-1", -1, ""},
		{"9223372036854775807", math.MaxInt64, ""},
		{"-9223372036854775808", math.MinInt64, ""},
		{"9223372036854775808", 0, CodeAmountOutOfRange},
		{"-9223372036854775809", 0, CodeAmountOutOfRange},
		{"18446744073709551615", 0, CodeAmountOutOfRange},
		{"1" + strings.Repeat("0", 100), 0, CodeAmountOutOfRange},
		{"1e3", 0, CodeAmountExponentNotAllowed},
		{"1E3", 0, CodeAmountExponentNotAllowed},
		{"12.5e1", 0, CodeAmountExponentNotAllowed},
		{"-1e+2", 0, CodeAmountExponentNotAllowed},
		{"", 0, CodeAmountInvalid},
		{"-", 0, CodeAmountInvalid},
		{"12.50", 0, CodeAmountInvalid},
		{"12.0", 0, CodeAmountInvalid},
		{"1.", 0, CodeAmountInvalid},
		{".5", 0, CodeAmountInvalid},
		{"007", 0, CodeAmountInvalid},
		{"00", 0, CodeAmountInvalid},
		{"+1250", 0, CodeAmountInvalid},
		{" 1250", 0, CodeAmountInvalid},
		{"1250 ", 0, CodeAmountInvalid},
		{"0x10", 0, CodeAmountInvalid},
		{"1_250", 0, CodeAmountInvalid},
		{"NaN", 0, CodeAmountInvalid},
		{"Infinity", 0, CodeAmountInvalid},
		{"12abc", 0, CodeAmountInvalid},
		{`"1250"`, 0, CodeAmountInvalid},
		{"1e", 0, CodeAmountInvalid},
	}
	for _, tt := range tests {
		got, err := ParseMinor(tt.s)
		if tt.code == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseMinor(%q) = %d, %v; want %d, nil", tt.s, got, err, tt.want)
			}
			continue
		}
		if got != 0 || codeOf(err) != tt.code {
			t.Errorf("ParseMinor(%q) = %d, %v; want 0 and code %s", tt.s, got, err, tt.code)
		}
	}
}

func TestFormatMajor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		minor int64
		ccy   string
		want  string
	}{
		{1250, "USD", "12.50"},
		{5, "USD", "0.05"},
		{-5, "USD", "-0.05"},
		{50, "USD", "0.50"},
		{100, "USD", "1.00"},
		{-100, "USD", "-1.00"},
		{0, "USD", "0.00"},
		{100, "JPY", "100"},
		{0, "JPY", "0"},
		{-3, "JPY", "-3"},
		{1234, "BHD", "1.234"},
		{1, "BHD", "0.001"},
		{-1, "KWD", "-0.001"},
		{1, "CLF", "0.0001"},
		{12345, "UYW", "1.2345"},
		{math.MaxInt64, "USD", "92233720368547758.07"},
		{math.MinInt64, "USD", "-92233720368547758.08"},
		{math.MaxInt64, "JPY", "9223372036854775807"},
		{math.MinInt64, "JPY", "-9223372036854775808"},
		{math.MinInt64, "BHD", "-9223372036854775.808"},
		{math.MinInt64, "CLF", "-922337203685477.5808"},
		// Unknown currencies format with exponent 2.
		{1250, "XYZ", "12.50"},
		{1250, "", "12.50"},
		{-1, "usd", "-0.01"},
		{math.MinInt64, "???", "-92233720368547758.08"},
	}
	for _, tt := range tests {
		if got := FormatMajor(tt.minor, tt.ccy); got != tt.want {
			t.Errorf("FormatMajor(%d, %q) = %q, want %q", tt.minor, tt.ccy, got, tt.want)
		}
	}
}

func TestAmountError(t *testing.T) {
	t.Parallel()
	_, err := ParseMajor("12.505", "USD")
	var ae *AmountError
	if !errors.As(err, &ae) {
		t.Fatalf("ParseMajor error %T is not *AmountError", err)
	}
	if ae.Code != "amount_too_many_decimals" {
		t.Errorf("Code = %q, want amount_too_many_decimals", ae.Code)
	}
	if ae.Msg == "" {
		t.Error("Msg is empty")
	}
	if got, want := ae.Error(), ae.Code+": "+ae.Msg; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	// The codes are a wire contract; pin their spelling.
	for c, want := range map[string]string{
		CodeAmountInvalid:            "amount_invalid",
		CodeAmountExponentNotAllowed: "amount_exponent_not_allowed",
		CodeAmountTooManyDecimals:    "amount_too_many_decimals",
		CodeAmountOutOfRange:         "amount_out_of_range",
		CodeCurrencyUnknown:          "currency_unknown",
	} {
		if c != want {
			t.Errorf("code constant %q, want %q", c, want)
		}
	}
}

// roundTripCurrencies covers every exponent in the table.
var roundTripCurrencies = []string{"JPY", "USD", "EUR", "BHD", "IQD", "CLF", "UYW", "KRW", "IDR"}

func TestMajorRoundTrip(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	values := []int64{0, 1, -1, 9, 10, 99, 100, 101, -999, 1000, math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1}
	for range 20000 {
		x := int64(r.Uint64())
		// Bias half the samples towards small magnitudes, where padding lives.
		if r.IntN(2) == 0 {
			x >>= r.IntN(64)
		}
		values = append(values, x)
	}
	for _, c := range roundTripCurrencies {
		for _, x := range values {
			s := FormatMajor(x, c)
			got, err := ParseMajor(s, c)
			if err != nil || got != x {
				t.Fatalf("ParseMajor(FormatMajor(%d, %s) = %q) = %d, %v", x, c, s, got, err)
			}
		}
	}
	// Every currency in the table round-trips its extremes.
	for c := range currencyExponents {
		for _, x := range []int64{0, 1, -1, math.MaxInt64, math.MinInt64} {
			s := FormatMajor(x, c)
			if got, err := ParseMajor(s, c); err != nil || got != x {
				t.Errorf("ParseMajor(FormatMajor(%d, %s) = %q) = %d, %v", x, c, s, got, err)
			}
		}
	}
}

func codeOf(err error) string {
	var ae *AmountError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// The fuzz oracles below restate the grammar with regexp and the arithmetic
// with big.Int (integers only), independently of the parser under test.
var (
	reDecimal  = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?$`)
	reExponent = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?[eE][+-]?[0-9]+$`)
	reInteger  = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)
	minInt64   = big.NewInt(math.MinInt64)
	maxInt64   = big.NewInt(math.MaxInt64)
)

func sortedCurrencies() []string {
	codes := make([]string, 0, len(currencyExponents))
	for c := range currencyExponents {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	return codes
}

// oracleMajor computes what ParseMajor must return: a value or an error code.
func oracleMajor(s, ccy string) (int64, string) {
	exp, ok := currencyExponents[ccy]
	switch {
	case !ok:
		return 0, CodeCurrencyUnknown
	case reExponent.MatchString(s):
		return 0, CodeAmountExponentNotAllowed
	case !reDecimal.MatchString(s):
		return 0, CodeAmountInvalid
	}
	neg := strings.HasPrefix(s, "-")
	intg, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	if len(frac) > exp {
		if strings.Trim(frac[exp:], "0") != "" {
			return 0, CodeAmountTooManyDecimals
		}
		frac = frac[:exp]
	}
	frac += strings.Repeat("0", exp-len(frac))
	digits := strings.TrimLeft(intg+frac, "0")
	if len(digits) > 19 {
		// Past 19 significant digits it cannot fit; and big.Int parsing is
		// superlinear, which would stall the fuzzer on megabyte inputs.
		return 0, CodeAmountOutOfRange
	}
	v, _ := new(big.Int).SetString("0"+digits, 10)
	if neg {
		v.Neg(v)
	}
	if v.Cmp(minInt64) < 0 || v.Cmp(maxInt64) > 0 {
		return 0, CodeAmountOutOfRange
	}
	return v.Int64(), ""
}

func FuzzParseMajor(f *testing.F) {
	codes := sortedCurrencies()
	index := make(map[string]uint16, len(codes))
	for i, c := range codes {
		index[c] = uint16(i)
	}
	unknown := uint16(len(codes)) // any index past the table means "XYZ"
	for _, seed := range []struct {
		s   string
		ccy string
	}{
		{"12.5", "USD"}, {"12.50", "USD"}, {"12.505", "USD"}, {"12.500", "USD"},
		{"1.5", "JPY"}, {"1.0", "JPY"}, {"-3", "JPY"}, {"1.234", "BHD"},
		{"-0", "USD"}, {"0", "CLF"}, {"0.0001", "CLF"}, {"1.2345", "UYW"},
		{"1e3", "USD"}, {"1.5E2", "USD"}, {"1e", "USD"}, {"NaN", "USD"},
		{"Infinity", "USD"}, {"0x1A", "USD"}, {"+1", "USD"}, {" 1", "USD"},
		{"1.", "USD"}, {".5", "USD"}, {"007", "USD"}, {"", "USD"},
		{"9223372036854775807", "JPY"}, {"9223372036854775808", "JPY"},
		{"-9223372036854775808", "JPY"}, {"-9223372036854775809", "JPY"},
		{"92233720368547758.07", "USD"}, {"92233720368547758.08", "USD"},
		{"-92233720368547758.08", "USD"}, {"9223372036854775.807", "BHD"},
		{"9223372036854775.808", "BHD"}, {"12.50", "XYZ"},
	} {
		i, ok := index[seed.ccy]
		if !ok {
			i = unknown
		}
		f.Add(seed.s, i)
	}
	f.Fuzz(func(t *testing.T, s string, ci uint16) {
		ccy := "XYZ"
		if int(ci) < len(codes) {
			ccy = codes[ci]
		}
		got, err := ParseMajor(s, ccy)
		want, wantCode := oracleMajor(s, ccy)
		if err != nil {
			var ae *AmountError
			if !errors.As(err, &ae) {
				t.Fatalf("ParseMajor(%q, %s) error %T is not *AmountError", s, ccy, err)
			}
			if got != 0 || ae.Code != wantCode {
				t.Fatalf("ParseMajor(%q, %s) = %d, %v; oracle says %d, %q", s, ccy, got, err, want, wantCode)
			}
			return
		}
		if wantCode != "" || got != want {
			t.Fatalf("ParseMajor(%q, %s) = %d, nil; oracle says %d, %q", s, ccy, got, want, wantCode)
		}
		formatted := FormatMajor(got, ccy)
		back, err := ParseMajor(formatted, ccy)
		if err != nil || back != got {
			t.Fatalf("ParseMajor(FormatMajor(%d, %s) = %q) = %d, %v", got, ccy, formatted, back, err)
		}
		// The formatted form is canonical: formatting it again changes nothing.
		if again := FormatMajor(back, ccy); again != formatted {
			t.Fatalf("FormatMajor not stable: %q then %q", formatted, again)
		}
	})
}

func FuzzParseMinor(f *testing.F) {
	for _, s := range []string{
		"1250", "0", "-0", "-1", "9223372036854775807", "9223372036854775808",
		"-9223372036854775808", "-9223372036854775809", "12.50", "1e3", "12.5e1",
		"007", "+1", " 1", "", "-", "NaN", "0x10", "1_000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseMinor(s)
		var wantCode string
		var want int64
		switch {
		case reExponent.MatchString(s):
			wantCode = CodeAmountExponentNotAllowed
		case !reInteger.MatchString(s):
			wantCode = CodeAmountInvalid
		default:
			v, perr := strconv.ParseInt(s, 10, 64)
			if perr != nil {
				wantCode = CodeAmountOutOfRange
			}
			want = v
		}
		if err != nil {
			if got != 0 || codeOf(err) != wantCode {
				t.Fatalf("ParseMinor(%q) = %d, %v; want code %q", s, got, err, wantCode)
			}
			return
		}
		if wantCode != "" || got != want {
			t.Fatalf("ParseMinor(%q) = %d, nil; want %d, %q", s, got, want, wantCode)
		}
		if s != "-0" && strconv.FormatInt(got, 10) != s {
			t.Fatalf("ParseMinor(%q) = %d, which does not print back as the input", s, got)
		}
		for _, c := range roundTripCurrencies {
			formatted := FormatMajor(got, c)
			if back, err := ParseMajor(formatted, c); err != nil || back != got {
				t.Fatalf("ParseMajor(FormatMajor(%d, %s) = %q) = %d, %v", got, c, formatted, back, err)
			}
		}
	})
}
