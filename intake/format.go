package intake

import (
	"encoding/json"
	"time"

	"github.com/payd/payd/payment"
)

// How answers write times, optional text and amounts, on every surface.

const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// ts writes a time in UTC with milliseconds.
func ts(t time.Time) string { return t.UTC().Format(timeFormat) }

// tsp is ts of an optional time; null when absent.
func tsp(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := ts(*t)
	return &s
}

// strp is optional text: null when empty.
func strp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// major writes minor units of currency as a JSON number in major units,
// with the currency's decimals.
func major(minor int64, currency string) json.Number {
	return json.Number(payment.FormatMajor(minor, currency))
}

func firstNonNil(ts ...*time.Time) *time.Time {
	for _, t := range ts {
		if t != nil {
			return t
		}
	}
	return nil
}

func nonEmptyStr(s, fallback string) string {
	if s != "" {
		return s
	}
	return fallback
}
