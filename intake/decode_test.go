package intake

import (
	"errors"
	"testing"
)

// TestDecodeEmbeddedTypeError: a member promoted from an embedded struct
// (as payouts share theirs with their answer) is named on a type error as
// the body names it, never by the embedded struct's Go name, at any depth.
func TestDecodeEmbeddedTypeError(t *testing.T) {
	t.Parallel()
	type shared struct {
		At *string `json:"at"`
	}
	type line struct {
		shared
		N int `json:"n"`
	}
	type body struct {
		shared
		Lines []line          `json:"lines"`
		ByKey map[string]line `json:"by_key"`
	}
	for in, want := range map[string]string{
		`{"at":5}`:                  "at",
		`{"lines":[{"at":[]}]}`:     "lines.at",
		`{"lines":[{"n":"x"}]}`:     "lines.n",
		`{"by_key":{"k":{"at":1}}}`: "by_key.at",
	} {
		var v body
		var ae *apiError
		if err := decode([]byte(in), &v); !errors.As(err, &ae) || ae.Fields[want] != fieldCode(want)+"_invalid_type" {
			t.Errorf("%s: got %v (fields %v), want %s: %s_invalid_type", in, err, fieldsOf(ae), want, fieldCode(want))
		}
	}
}
