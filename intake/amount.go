package intake

import (
	"encoding/json"
	"errors"
	"math/big"
	"strings"

	"github.com/payd/payd/payment"
)

// Amounts and rates in requests: read as the exact text the client sent,
// never through float64, and parsed by payment into minor units.

// decimal holds the raw text of a JSON amount: a number literal or the
// content of a string, never converted through float64.
type decimal struct {
	Raw   string
	Set   bool // the field was present
	Kind  byte // 'n' number, 's' string, 'x' any other JSON type
	IsNul bool // JSON null
}

func (d *decimal) UnmarshalJSON(b []byte) error {
	d.Set = true
	switch {
	case len(b) == 0:
		d.Kind = 'x'
	case string(b) == "null":
		d.IsNul = true
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			d.Kind = 'x'
			return nil
		}
		d.Raw, d.Kind = s, 's'
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		d.Raw, d.Kind = string(b), 'n'
	default:
		d.Kind = 'x'
	}
	return nil
}

// MarshalJSON writes the fingerprinted form.
func (d decimal) MarshalJSON() ([]byte, error) { return json.Marshal(d.Raw) }

// absent reports a member not given, or given as null.
func (d decimal) absent() bool { return !d.Set || d.IsNul }

// parseAmount turns a wire amount in major units into minor units, exactly.
// It returns the error code for a bad amount.
func parseAmount(d decimal, currency string, maxAmount int64, allowZero bool) (int64, string) {
	switch {
	case d.absent():
		return 0, "amount_required"
	case d.Kind != 'n' && d.Kind != 's':
		return 0, "amount_invalid_type"
	}
	minor, err := payment.ParseMajor(d.Raw, currency)
	if err != nil {
		var ae *payment.AmountError
		if errors.As(err, &ae) {
			return 0, ae.Code
		}
		return 0, "amount_invalid"
	}
	switch {
	case minor < 0 || (minor == 0 && !allowZero):
		return 0, "amount_must_be_positive"
	case minor > maxAmount:
		return 0, "amount_too_large"
	}
	return minor, ""
}

// amountCode renames an amount error code for another field:
// amount_too_many_decimals of amount_due is amount_due_too_many_decimals.
func amountCode(field, code string) string {
	if rest, ok := strings.CutPrefix(code, "amount_"); ok {
		return field + "_" + rest
	}
	return field + "_invalid"
}

// parseRate reads an exchange rate (payment.ParseRate), as a JSON number or
// a string. nil when absent.
func parseRate(d decimal) (*big.Rat, string) {
	switch {
	case d.absent():
		return nil, ""
	case d.Kind != 'n' && d.Kind != 's':
		return nil, "invalid_type"
	}
	return payment.ParseRate(d.Raw)
}
