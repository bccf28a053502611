package payment

import (
	"math"
	"strconv"
	"strings"
)

// Money is an amount in integer minor units of an ISO 4217 currency. There is
// no float anywhere on the path from the wire to the database.
type Money struct {
	Minor    int64
	Currency string
}

// Amount error codes. They are wire-stable: intake returns them verbatim as
// the 422 error code of the amount field, and clients match on them.
const (
	CodeAmountInvalid            = "amount_invalid"
	CodeAmountExponentNotAllowed = "amount_exponent_not_allowed"
	CodeAmountTooManyDecimals    = "amount_too_many_decimals"
	CodeAmountOutOfRange         = "amount_out_of_range"
	CodeCurrencyUnknown          = "currency_unknown"
)

// AmountError is returned by ParseMajor and ParseMinor. Code is one of the
// Code… constants above; Msg says what was wrong in words for a human.
type AmountError struct {
	Code string
	Msg  string
}

func (e *AmountError) Error() string {
	return e.Code + ": " + e.Msg
}

func amountErr(code, msg string) *AmountError {
	return &AmountError{Code: code, Msg: msg}
}

// decimal is the syntax of an amount, split but not yet interpreted.
type decimal struct {
	neg  bool
	intg string // digits before the point; never empty, no leading zero unless "0"
	frac string // digits after the point; empty when there is no point
}

// scanDecimal accepts exactly -?(0|[1-9][0-9]*)(\.[0-9]+)? , the JSON number
// grammar without its exponent part. The exponent form is recognised only to
// give it its own error code.
func scanDecimal(s string) (decimal, *AmountError) {
	var d decimal
	if s == "" {
		return d, amountErr(CodeAmountInvalid, "amount is empty")
	}
	i := 0
	if s[0] == '-' {
		d.neg = true
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	d.intg = s[start:i]
	if d.intg == "" {
		return d, invalidSyntax()
	}
	if len(d.intg) > 1 && d.intg[0] == '0' {
		return d, amountErr(CodeAmountInvalid, "amount has a leading zero")
	}
	if i < len(s) && s[i] == '.' {
		i++
		start = i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		d.frac = s[start:i]
		if d.frac == "" {
			return d, amountErr(CodeAmountInvalid, "amount needs a digit after the decimal point")
		}
	}
	if i == len(s) {
		return d, nil
	}
	if isExponent(s[i:]) {
		return d, amountErr(CodeAmountExponentNotAllowed, "amount must be written without an exponent")
	}
	return d, invalidSyntax()
}

// isExponent reports whether rest is a JSON exponent part: [eE][+-]?[0-9]+.
func isExponent(rest string) bool {
	if rest[0] != 'e' && rest[0] != 'E' {
		return false
	}
	rest = rest[1:]
	if rest != "" && (rest[0] == '+' || rest[0] == '-') {
		rest = rest[1:]
	}
	if rest == "" {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if !isDigit(rest[i]) {
			return false
		}
	}
	return true
}

func invalidSyntax() *AmountError {
	// The input is not echoed back: it is untrusted and can be arbitrarily
	// long. The message only names the grammar.
	return amountErr(CodeAmountInvalid, "amount must be a plain decimal number such as 12.50 or -3")
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// accumulate appends decimal digits to mag, failing if the result would
// exceed limit. Inputs have no leading zeros except a lone "0", so digit
// count bounds the work and the overflow check below is exact.
func accumulate(mag uint64, digits string, limit uint64) (uint64, bool) {
	for i := 0; i < len(digits); i++ {
		dg := uint64(digits[i] - '0')
		if mag > (limit-dg)/10 {
			return 0, false
		}
		mag = mag*10 + dg
	}
	return mag, true
}

// toInt64 turns a magnitude that is within its sign's limit into an int64.
// For neg, mag may be exactly 1<<63, which is math.MinInt64.
func toInt64(mag uint64, neg bool) int64 {
	if neg {
		return int64(-mag) // two's complement: -(1<<63) wraps to MinInt64
	}
	return int64(mag)
}

func magnitudeLimit(neg bool) uint64 {
	if neg {
		return uint64(math.MaxInt64) + 1
	}
	return uint64(math.MaxInt64)
}

// ParseMajor parses an amount written in major units (the 001/002/invoice
// wire form, docs/surfaces.md "Amounts") into int64 minor units of currency,
// exactly and without floating point: "12.5" USD is 1250, "-3" JPY is -3,
// "1.234" BHD is 1234.
//
// s is the literal text of a JSON number, or the contents of a JSON string
// with its quotes already removed. It must match -?(0|[1-9][0-9]*)(\.[0-9]+)?
// exactly:
//   - no sign other than a leading '-', no '+', no surrounding space, no
//     digit separators, no hex, no NaN or Infinity, no leading zeros ("007"),
//     at least one digit before a point and at least one after it ("1." and
//     ".5" are rejected) — all CodeAmountInvalid;
//   - an exponent ("1e3", "1.5E2") is CodeAmountExponentNotAllowed, even when
//     the value it denotes would be exact;
//   - more fractional digits than the currency's exponent are accepted only
//     when every extra digit is zero: "12.500" USD is 1250 and "1.0" JPY is 1,
//     while "12.505" USD and "1.5" JPY are CodeAmountTooManyDecimals. The value
//     is what matters, and trailing zeros do not change it;
//   - a value whose minor units do not fit in int64 is CodeAmountOutOfRange
//     (the range is [math.MinInt64, math.MaxInt64] minor units, so it depends
//     on the exponent);
//   - an unknown or non-canonical currency ("usd") is CodeCurrencyUnknown;
//     the currency is checked first.
//
// Negative values are returned negative and "-0" is 0: whether a sign or
// zero is allowed is the caller's rule, not the parser's. Every error is a
// *AmountError.
func ParseMajor(s, currency string) (int64, error) {
	exp, ok := CurrencyExponent(currency)
	if !ok {
		return 0, amountErr(CodeCurrencyUnknown, "currency is not a known ISO 4217 code")
	}
	d, err := scanDecimal(s)
	if err != nil {
		return 0, err
	}
	frac := d.frac
	if len(frac) > exp {
		if strings.Trim(frac[exp:], "0") != "" {
			return 0, amountErr(CodeAmountTooManyDecimals,
				"amount has more than "+strconv.Itoa(exp)+" decimal places for "+currency)
		}
		frac = frac[:exp]
	}
	limit := magnitudeLimit(d.neg)
	mag, ok := accumulate(0, d.intg, limit)
	if ok {
		mag, ok = accumulate(mag, frac, limit)
	}
	// Pad the fraction out to the exponent: "12.5" USD is 12|5|0.
	for i := len(frac); ok && i < exp; i++ {
		mag, ok = accumulate(mag, "0", limit)
	}
	if !ok {
		return 0, amountErr(CodeAmountOutOfRange, "amount is outside the range of int64 minor units")
	}
	return toInt64(mag, d.neg), nil
}

// ParseMinor parses an amount written in integer minor units, as the 000
// payment-flow surface sends it ("1250" is USD 12.50). It accepts exactly
// -?(0|[1-9][0-9]*): a fraction ("12.50"), leading zeros ("007"), '+', space
// and anything non-numeric are CodeAmountInvalid; an exponent ("1e3") is
// CodeAmountExponentNotAllowed; a value outside int64 is CodeAmountOutOfRange.
// "-0" is 0; the sign is the caller's rule. Every error is a *AmountError.
func ParseMinor(s string) (int64, error) {
	d, err := scanDecimal(s)
	if err != nil {
		return 0, err
	}
	if d.frac != "" {
		return 0, amountErr(CodeAmountInvalid, "amount in minor units must be a whole number")
	}
	mag, ok := accumulate(0, d.intg, magnitudeLimit(d.neg))
	if !ok {
		return 0, amountErr(CodeAmountOutOfRange, "amount is outside the range of int64 minor units")
	}
	return toInt64(mag, d.neg), nil
}

// FormatMajor writes minor units as an exact decimal in major units with
// exactly the currency's exponent digits after the point: 1250 USD is
// "12.50", -5 USD is "-0.05", 100 JPY is "100", 1234 BHD is "1.234". Zero is
// never signed. An unknown currency is formatted with exponent 2 so that a
// log line or an error message never fails; validate the currency elsewhere.
// For every known currency, ParseMajor(FormatMajor(x, c), c) == x.
func FormatMajor(minor int64, currency string) string {
	exp, ok := CurrencyExponent(currency)
	if !ok {
		exp = 2
	}
	neg := minor < 0
	mag := uint64(minor)
	if neg {
		mag = -mag // two's complement; exact for math.MinInt64 too
	}
	digits := strconv.FormatUint(mag, 10)
	if exp == 0 {
		if neg {
			return "-" + digits
		}
		return digits
	}
	if len(digits) <= exp {
		digits = strings.Repeat("0", exp-len(digits)+1) + digits
	}
	cut := len(digits) - exp
	var b strings.Builder
	b.Grow(len(digits) + 2)
	if neg {
		b.WriteByte('-')
	}
	b.WriteString(digits[:cut])
	b.WriteByte('.')
	b.WriteString(digits[cut:])
	return b.String()
}
