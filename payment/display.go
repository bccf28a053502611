package payment

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DisplayAmount writes minor units of currency for a person reading locale:
// the currency's exponent from our ISO 4217 table, the locale's grouping and
// decimal separators and where its currency symbol goes. It is what the
// hosted payment page shows; the API's amounts stay numbers.
//
// Supported locales are en-GB, en-US, de-DE, fr-FR and ja-JP (case and "_"
// instead of "-" are forgiven, and a bare "en", "de", "fr" or "ja" means the
// listed one); anything else is formatted as en-GB. The output is what CLDR
// (ICU's Intl.NumberFormat with style "currency") gives for the same amount
// with the ISO exponent as its fraction digits — TestDisplayAmountMatchesICU
// holds it to a table that ICU wrote:
//
//	DisplayAmount(123456, "GBP", "en-GB")  £1,234.56
//	DisplayAmount(123456, "EUR", "de-DE")  1.234,56 €
//	DisplayAmount(123456, "USD", "fr-FR")  1 234,56 $US  (U+202F groups, U+00A0 before the symbol)
//	DisplayAmount(123456, "JPY", "ja-JP")  ￥123,456
//	DisplayAmount(1234567, "BHD", "en-US") BHD 1,234.567 (U+00A0)
//
// Integers only: the amount is never a float. A currency not in our table
// (which payd never stores) is written as its minor units and its code.
func DisplayAmount(minor int64, currency, locale string) string {
	loc := displayLocaleOf(locale)
	exp, ok := CurrencyExponent(currency)
	if !ok {
		exp = 0
	}
	// |minor| as unsigned, so that math.MinInt64 has a magnitude too.
	mag := uint64(minor)
	if minor < 0 {
		mag = -mag
	}
	digits := strconv.FormatUint(mag, 10)
	if len(digits) <= exp {
		digits = strings.Repeat("0", exp-len(digits)+1) + digits
	}
	intPart, frac := digits[:len(digits)-exp], digits[len(digits)-exp:]

	var num strings.Builder
	for i, d := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			num.WriteString(loc.group)
		}
		num.WriteRune(d)
	}
	if exp > 0 {
		num.WriteString(loc.decimal)
		num.WriteString(frac)
	}

	sym := currency
	if s, ok := loc.symbols[currency]; ok {
		sym = s
	}
	var out strings.Builder
	if minor < 0 {
		out.WriteByte('-')
	}
	if loc.symbolAfter {
		out.WriteString(num.String())
		out.WriteString(nbsp)
		out.WriteString(sym)
		return out.String()
	}
	out.WriteString(sym)
	// CLDR's currency spacing: a symbol that does not end in a symbol
	// character ("BHD", "Cg.", "元") is kept off the digits by a no-break
	// space; "$", "£", "¥" touch them.
	if last, _ := utf8.DecodeLastRuneInString(sym); !unicode.IsSymbol(last) {
		out.WriteString(nbsp)
	}
	out.WriteString(num.String())
	return out.String()
}

const (
	nbsp       = "\u00a0" // NO-BREAK SPACE
	narrowNbsp = "\u202f" // NARROW NO-BREAK SPACE: French digit groups
)

// DefaultLocale is the locale of a session that names none, and what an
// unsupported locale is formatted as.
const DefaultLocale = "en-GB"

// displayLocale is how one locale writes an amount of money.
type displayLocale struct {
	group, decimal string
	symbolAfter    bool              // "1.234,56 €" rather than "€1,234.56"
	symbols        map[string]string // currency → symbol; absent: the ISO code
}

// DisplayLocale returns the supported locale that locale names (see
// DisplayAmount), or DefaultLocale.
func DisplayLocale(locale string) string {
	l := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(locale), "_", "-"))
	switch l {
	case "en-gb", "en":
		return "en-GB"
	case "en-us":
		return "en-US"
	case "de-de", "de":
		return "de-DE"
	case "fr-fr", "fr":
		return "fr-FR"
	case "ja-jp", "ja":
		return "ja-JP"
	}
	return DefaultLocale
}

func displayLocaleOf(locale string) displayLocale { return displayLocales[DisplayLocale(locale)] }

// displayLocales hold CLDR's data for the supported locales: separators,
// the symbol's side and every currency of our table whose symbol in that
// locale is not its ISO code (CLDR 48, as ICU 78 ships it).
var displayLocales = map[string]displayLocale{
	"en-GB": {group: ",", decimal: ".", symbols: map[string]string{
		"AUD": "A$", "BRL": "R$", "CAD": "CA$", "CNY": "CN¥", "EUR": "€", "GBP": "£", "HKD": "HK$", "ILS": "₪",
		"INR": "₹", "JPY": "JP¥", "KRW": "₩", "MXN": "MX$", "NZD": "NZ$", "PHP": "₱", "TWD": "NT$", "USD": "US$",
		"VND": "₫", "XAF": "FCFA", "XCD": "EC$", "XCG": "Cg.", "XOF": "F\u202fCFA", "XPF": "CFPF",
	}},
	"en-US": {group: ",", decimal: ".", symbols: map[string]string{
		"AUD": "A$", "BRL": "R$", "CAD": "CA$", "CNY": "CN¥", "EUR": "€", "GBP": "£", "HKD": "HK$", "ILS": "₪",
		"INR": "₹", "JPY": "¥", "KRW": "₩", "MXN": "MX$", "NZD": "NZ$", "PHP": "₱", "TWD": "NT$", "USD": "$",
		"VND": "₫", "XAF": "FCFA", "XCD": "EC$", "XCG": "Cg.", "XOF": "F\u202fCFA", "XPF": "CFPF",
	}},
	"de-DE": {group: ".", decimal: ",", symbolAfter: true, symbols: map[string]string{
		"AUD": "AU$", "BRL": "R$", "CAD": "CA$", "CNY": "CN¥", "EUR": "€", "GBP": "£", "HKD": "HK$", "ILS": "₪",
		"INR": "₹", "JPY": "¥", "KRW": "₩", "MXN": "MX$", "NZD": "NZ$", "THB": "฿", "TWD": "NT$", "USD": "$",
		"VND": "₫", "XAF": "FCFA", "XCD": "EC$", "XCG": "Cg.", "XOF": "F\u202fCFA", "XPF": "CFPF",
	}},
	"fr-FR": {group: narrowNbsp, decimal: ",", symbolAfter: true, symbols: map[string]string{
		"ARS": "$AR", "AUD": "$AU", "BMD": "$BM", "BND": "$BN", "BRL": "R$", "BZD": "$BZ", "CAD": "$CA", "CLP": "$CL",
		"COP": "$CO", "EUR": "€", "FJD": "$FJ", "FKP": "£FK", "GBP": "£GB", "GIP": "£GI", "ILS": "₪", "INR": "₹",
		"KRW": "₩", "LBP": "£LB", "MXN": "$MX", "NAD": "$NA", "NZD": "$NZ", "SBD": "$SB", "SGD": "$SG", "SRD": "$SR",
		"TTD": "$TT", "USD": "$US", "UYU": "$UY", "VND": "₫", "WST": "$WS", "XAF": "FCFA", "XCG": "Cg.",
		"XOF": "F\u202fCFA", "XPF": "FCFP",
	}},
	"ja-JP": {group: ",", decimal: ".", symbols: map[string]string{
		"AUD": "A$", "BRL": "R$", "CAD": "CA$", "CNY": "元", "EUR": "€", "GBP": "£", "HKD": "HK$", "ILS": "₪",
		"INR": "₹", "JPY": "￥", "KRW": "₩", "MXN": "MX$", "NZD": "NZ$", "TWD": "NT$", "USD": "$", "VND": "₫",
		"XAF": "FCFA", "XCD": "EC$", "XCG": "Cg", "XOF": "F\u202fCFA", "XPF": "CFPF",
	}},
}
