package intake

import (
	"strings"
	"unicode/utf8"

	"github.com/payd/payd/payment"
)

// Checks of free text and machine tokens in requests, shared by every
// surface. Each returns an error-code suffix ("required", "too_long",
// "invalid_characters") or a verdict, never an answer: the caller names the
// field.

// str is the text of an optional member; "" when absent or null.
func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// checkText validates a free-text identifier: present if required, at most
// max characters, no control characters. It returns "required", "too_long",
// "invalid_characters" or "".
func checkText(p *string, required bool, max int) string {
	if p == nil || *p == "" {
		if required {
			return "required"
		}
		return ""
	}
	if utf8.RuneCountInString(*p) > max {
		return "too_long"
	}
	if badChars(*p) {
		return "invalid_characters"
	}
	return ""
}

// badChars reports control characters, bidirectional overrides and
// isolates (which make text display other than it reads) and invalid UTF-8.
func badChars(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == utf8.RuneError {
			return true
		}
	}
	return false
}

// checkMetadata returns the error code of a metadata object: at most 50
// keys of 1 to 40 characters, values of at most 500, free text.
func checkMetadata(m map[string]string) string {
	if len(m) > 50 {
		return "metadata_too_many_keys"
	}
	for k, v := range m {
		if k == "" || utf8.RuneCountInString(k) > 40 {
			return "metadata_key_invalid"
		}
		if utf8.RuneCountInString(v) > 500 {
			return "metadata_value_too_long"
		}
		// values are free text: tabs and line breaks are fine in them
		if badChars(k) || badChars(strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(v)) {
			return "metadata_invalid_characters"
		}
	}
	return ""
}

// oneOf reads a member that takes one of table's values: the value, or the
// error code field_required or field_invalid.
func oneOf[T any](field string, p *string, table map[string]T) (T, string) {
	v, ok := table[str(p)]
	switch {
	case str(p) == "":
		return v, field + "_required"
	case !ok:
		return v, field + "_invalid"
	}
	return v, ""
}

// currencyCode is a currency code as given, with ASCII letters upper-cased:
// every surface accepts "usd" as "USD" (seed 002: "uppercased by API"; no
// seed refuses lower case, and the vendors upper-case). Only a–z are
// mapped, so no other script's letter can turn into one (ı → I, ſ → S):
// anything else stays and checkCurrency refuses it.
func currencyCode(p *string) string {
	b := []byte(str(p))
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// checkCurrency returns the error code of a currency code (after
// currencyCode): required, three upper-case letters, in the ISO 4217
// table; "" when it is good.
func checkCurrency(cur string) string {
	switch {
	case cur == "":
		return "currency_required"
	case !isUpperAlpha3(cur):
		return "currency_invalid"
	case !payment.KnownCurrency(cur):
		return "currency_unknown"
	}
	return ""
}

func isUpperAlpha3(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// checkToken accepts 1..max printable ASCII characters without spaces:
// ids, types, keys and references are machine tokens.
func checkToken(s string, required bool, max int) string {
	switch {
	case s == "" && required:
		return "required"
	case s == "":
		return ""
	case len(s) > max:
		return "too_long"
	case !printable(s):
		return "invalid_characters"
	}
	return ""
}

// printable reports whether s is one or more visible ASCII characters (no
// spaces): what ids, keys and tokens are made of.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}

// validID reports whether s could be an object id: 1 to 100 printable ASCII
// characters (ids are a type prefix and hex).
func validID(s string) bool { return len(s) <= 100 && printable(s) }

// validRef reports whether a path segment could name an object by id or
// external id. Routes with an {id} segment get validID (ids are short
// ASCII); external ids are up to 255 characters of any script, so invoices
// and users check the way their external ids were checked on create, which
// also keeps NUL and invalid UTF-8 (refused by Postgres) from a query.
func validRef(ref string) bool {
	return utf8.ValidString(ref) && checkText(&ref, true, 255) == ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
