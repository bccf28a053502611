package payment

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// ErrAccountBlocked: the beneficiary account was returned as closed, missing
// or invalid (ReturnBlocksAccount) and takes no more payouts.
var ErrAccountBlocked = errors.New("beneficiary account is blocked")

// Bank identifiers: what a bank checks before it accepts a payout. Each
// checker returns "" for a valid value, or a short reason that intake
// prefixes with the field name to build the 422 error code.

// ibanLengths is the IBAN length of every country in the SWIFT IBAN registry
// (ISO 13616; release of 2025). A country missing here issues no IBANs.
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
	"BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
	"EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
	"GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
	"IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
	"LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
	"NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
	"RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
	"SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

// NormalizeIBAN removes the spaces of the printed form and upper-cases.
func NormalizeIBAN(s string) string {
	return strings.ToUpper(strings.ReplaceAll(s, " ", ""))
}

// CheckIBAN validates a normalized IBAN: "invalid" (not two letters, two
// digits and an alphanumeric BBAN), "country_unsupported" (no IBANs in that
// country), "length_invalid" (not the country's length) or
// "checksum_failed" (ISO 7064 mod 97-10).
func CheckIBAN(iban string) string {
	if len(iban) < 5 || len(iban) > 34 || !isAlpha(iban[:2]) || !isDigits(iban[2:4]) {
		return "invalid"
	}
	for i := 4; i < len(iban); i++ {
		if !isAlnum(iban[i]) {
			return "invalid"
		}
	}
	n, ok := ibanLengths[iban[:2]]
	if !ok {
		return "country_unsupported"
	}
	if len(iban) != n {
		return "length_invalid"
	}
	if ibanMod97(iban) != 1 {
		return "checksum_failed"
	}
	return ""
}

// ibanMod97 moves the first four characters to the end, reads letters as
// 10..35 and returns the whole number mod 97, digit by digit.
func ibanMod97(iban string) int {
	r := 0
	for _, c := range []byte(iban[4:] + iban[:4]) {
		if c >= 'A' && c <= 'Z' {
			v := int(c-'A') + 10
			r = (r*100 + v) % 97
		} else {
			r = (r*10 + int(c-'0')) % 97
		}
	}
	return r
}

// CheckBIC validates a SWIFT BIC (ISO 9362): "too_long" past 11
// characters; "invalid" unless it is 4 letters (institution), 2 letters
// (country), 2 alphanumerics (location) and an optional 3-alphanumeric
// branch, upper case. The country part is checked by the caller.
func CheckBIC(bic string) string {
	switch {
	case len(bic) > 11:
		return "too_long"
	case len(bic) != 8 && len(bic) != 11:
		return "invalid"
	case !isAlpha(bic[:6]):
		return "invalid"
	}
	for i := 6; i < len(bic); i++ {
		if !isAlnum(bic[i]) {
			return "invalid"
		}
	}
	return ""
}

// CheckABA validates a US ABA routing transit number: "invalid" unless nine
// digits, "checksum_failed" unless 3·(d1+d4+d7) + 7·(d2+d5+d8) + (d3+d6+d9)
// is a multiple of 10.
func CheckABA(rtn string) string {
	if len(rtn) != 9 || !isDigits(rtn) {
		return "invalid"
	}
	w := [3]int{3, 7, 1}
	sum := 0
	for i := 0; i < 9; i++ {
		sum += w[i%3] * int(rtn[i]-'0')
	}
	if sum%10 != 0 {
		return "checksum_failed"
	}
	return ""
}

// AccountFingerprint identifies a beneficiary account without storing it in
// one more place: hex SHA-256 of the IBAN when there is one, else of
// routing + "|" + account. Accounts are blocked by fingerprint after
// returns that say the account is closed or does not exist.
func AccountFingerprint(routing, account, iban string) string {
	key := routing + "|" + account
	if iban != "" {
		key = iban
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// returnReasons names the ACH return codes payd acts on (retry-eligible or
// blocking, see rail.go); any other is "returned by the receiving bank".
var returnReasons = map[string]string{
	"R01": "insufficient funds",
	"R02": "account closed",
	"R03": "no account or unable to locate account",
	"R04": "invalid account number",
	"R09": "uncollected funds",
}

// ReturnReason is the human reason of a return code.
func ReturnReason(code string) string {
	if r, ok := returnReasons[code]; ok {
		return r
	}
	return "returned by the receiving bank"
}

func isAlpha(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return s != ""
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func isAlnum(c byte) bool { return isDigit(c) || (c >= 'A' && c <= 'Z') }
