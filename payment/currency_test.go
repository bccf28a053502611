package payment

import "testing"

func TestCurrencyExponent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code string
		exp  int
	}{
		// The ones golang.org/x/text/currency gets wrong or lacks
		// (docs/surfaces.md, "Amounts").
		{"COP", 2}, {"IDR", 2}, {"IQD", 3}, {"RSD", 2},
		{"MRU", 2}, {"VES", 2}, {"ZWG", 2},
		// Zero-decimal currencies.
		{"JPY", 0}, {"KRW", 0}, {"CLP", 0}, {"ISK", 0}, {"VND", 0},
		{"XAF", 0}, {"XOF", 0}, {"XPF", 0}, {"UGX", 0}, {"PYG", 0},
		{"BIF", 0}, {"DJF", 0}, {"GNF", 0}, {"KMF", 0}, {"RWF", 0},
		{"VUV", 0}, {"UYI", 0},
		// Three-decimal dinars and rials.
		{"BHD", 3}, {"KWD", 3}, {"OMR", 3}, {"TND", 3}, {"LYD", 3}, {"JOD", 3},
		// Four-decimal units of account.
		{"CLF", 4}, {"UYW", 4},
		// Two-decimal, including newer codes.
		{"USD", 2}, {"EUR", 2}, {"GBP", 2}, {"CHF", 2}, {"HUF", 2},
		{"TWD", 2}, {"INR", 2}, {"CNY", 2}, {"BRL", 2}, {"MXN", 2},
		{"SLE", 2}, {"STN", 2}, {"VED", 2}, {"XCG", 2}, {"BYN", 2},
		{"USN", 2}, {"CHE", 2}, {"MGA", 2},
	}
	for _, tt := range tests {
		got, ok := CurrencyExponent(tt.code)
		if !ok || got != tt.exp {
			t.Errorf("CurrencyExponent(%q) = %d, %v; want %d, true", tt.code, got, ok, tt.exp)
		}
		if !KnownCurrency(tt.code) {
			t.Errorf("KnownCurrency(%q) = false, want true", tt.code)
		}
	}
}

func TestCurrencyUnknown(t *testing.T) {
	t.Parallel()
	for _, code := range []string{
		// No minor unit in ISO 4217: metals, funds, test and "no currency".
		"XAU", "XAG", "XPT", "XPD", "XTS", "XXX", "XDR",
		"XBA", "XBB", "XBC", "XBD", "XSU", "XUA",
		// Withdrawn from circulation.
		"ANG", "BGN", "CUC", "HRK", "SLL", "ZWL", "VEF", "MRO", "STD",
		// Not canonical spellings of known codes.
		"usd", "Usd", " USD", "USD ", "US", "USDX", "", "U$D", "ＵＳＤ",
		// Never assigned.
		"ABC", "ZZZ",
	} {
		if exp, ok := CurrencyExponent(code); ok {
			t.Errorf("CurrencyExponent(%q) = %d, true; want not found", code, exp)
		}
		if KnownCurrency(code) {
			t.Errorf("KnownCurrency(%q) = true, want false", code)
		}
	}
}

func TestCurrencyTableShape(t *testing.T) {
	t.Parallel()
	if n := len(currencyExponents); n <= 150 {
		t.Errorf("table has %d entries, want > 150", n)
	}
	for code, exp := range currencyExponents {
		if len(code) != 3 {
			t.Errorf("key %q is not 3 bytes", code)
			continue
		}
		for i := 0; i < 3; i++ {
			if code[i] < 'A' || code[i] > 'Z' {
				t.Errorf("key %q has a byte outside A-Z", code)
				break
			}
		}
		switch exp {
		case 0, 2, 3, 4:
		default:
			t.Errorf("%s has exponent %d; ISO 4217 uses only 0, 2, 3 and 4", code, exp)
		}
	}
}
