package intake

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/payd/payd/payment"
)

// checkRefusal fails t unless err is a complete 4xx for the error envelope:
// an *apiError with a status in 400–499, at least one code, a UTF-8
// message, every 422 naming its fields, and an envelope that encodes.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	var ae *apiError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *apiError", err, err)
	}
	if ae.Status < 400 || ae.Status > 499 || len(ae.Codes) == 0 || ae.Message == "" || !utf8.ValidString(ae.Message) {
		t.Fatalf("refusal %+v is not a complete 4xx", ae)
	}
	if ae.Status == http.StatusUnprocessableEntity && len(ae.Fields) == 0 {
		t.Fatalf("a 422 names no field: %+v", ae)
	}
	for _, c := range ae.Codes {
		if c == "" || !utf8.ValidString(c) {
			t.Fatalf("bad code %q in %+v", c, ae)
		}
	}
	if _, err := json.Marshal(errorBody{ErrorCodes: ae.Codes, Message: ae.Message, Fields: ae.Fields}); err != nil {
		t.Fatalf("envelope does not encode: %v", err)
	}
}

// acceptedObject fails t unless body is one valid JSON object whose members
// are all JSON names of T.
func acceptedObject[T any](t *testing.T, body []byte) {
	t.Helper()
	var members map[string]json.RawMessage
	if !utf8.Valid(body) || json.Unmarshal(body, &members) != nil {
		t.Fatalf("accepted a body that is not one JSON object: %q", body)
	}
	known := jsonFields(reflect.TypeFor[T]())
	for k := range members {
		if _, ok := known[k]; !ok {
			t.Fatalf("accepted member %q", k)
		}
	}
}

func safeText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0) && !strings.ContainsRune(s, '\u202e')
}

// fuzzLimits are what the decoders are checked against: NewServer's
// largest amount and the payout fuzz tests' clock.
var fuzzLimits = limits{now: func() time.Time { return fuzzNow }, maxAmount: fuzzMaxAmount}

// decodeUser is what handleCreateUser does with a body before any I/O.
func decodeUser(body []byte) (validUser, error) {
	return checkBody(body, &createUserRequest{}, fuzzLimits)
}

// decodeLines is what handleReplacePayoutLines does with a body for a
// payout of total, before any I/O.
func decodeLines(body []byte, total payment.Money, maxAmount int64) (lines []validLine, replace bool, err error) {
	v, err := checkBody(body, &replaceLinesRequest{payout: total}, limits{maxAmount: maxAmount})
	if err != nil {
		return nil, false, err
	}
	return v.Lines, v.Replace, nil
}

// FuzzDecodeUser: a POST /v1/users body never panics, is refused only with
// a complete 4xx, and an accepted user is storable text that survives a
// round trip: the normalized user written back as a body decodes to itself.
func FuzzDecodeUser(f *testing.F) {
	for _, s := range []string{
		`{"external_id":"c1","name":"Ada","email":"ada@example.com","metadata":{"a":"b"}}`,
		`{"external_id":"c1"}`, `{"external_id":""}`, `{"external_id":null}`, `{}`, `[]`, ``,
		`{"external_id":"c1","email":"no-at-sign"}`, `{"external_id":"c1","email":"a@b@c"}`,
		`{"external_id":"c\u0000"}`, `{"external_id":"c\u202e"}`, `{"external_id":"\udc00"}`,
		`{"external_id":"c","External_id":"d"}`, `{"external_id":"c","external_id":"d"}`,
		`{"external_id":"c","metadata":{"a":1}}`, `{"external_id":1}`,
		"{\"external_id\":\"\xff\"}", `{"external_id":"` + strings.Repeat("é", 256) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := decodeUser(body)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		acceptedObject[createUserRequest](t, body)
		if v.ExternalID == "" || utf8.RuneCountInString(v.ExternalID) > 255 {
			t.Fatalf("accepted external_id %q", v.ExternalID)
		}
		for _, s := range []string{v.ExternalID, v.Name, v.Email} {
			if !safeText(s) {
				t.Fatalf("accepted text %q", s)
			}
		}
		if v.Email != "" && !plausibleEmail(v.Email) {
			t.Fatalf("accepted email %q", v.Email)
		}
		back, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeUser(back)
		if err != nil || !reflect.DeepEqual(again, v) {
			t.Fatalf("user %+v does not round-trip through %s: %+v, %v", v, back, again, err)
		}
		if fp := fingerprint("POST /v1/users", v); len(fp) != 32 {
			t.Fatalf("fingerprint length %d", len(fp))
		}
	})
}

// decodePaymentUpdate is what handleUpdatePayment does with a body before
// any I/O.
func decodePaymentUpdate(body []byte) (validUpdate, error) {
	return checkBody(body, &updatePaymentRequest{}, fuzzLimits)
}

// FuzzDecodePaymentUpdate: a PUT /v1/payments/{id} body never panics, is
// refused only with a complete 4xx, and an accepted one changes only
// metadata and the payment method, with text Postgres can store.
func FuzzDecodePaymentUpdate(f *testing.F) {
	for _, s := range []string{
		`{"metadata":{"a":"b"}}`, `{"metadata":null}`, `{}`, `{"payment_method_id":"pm_card_visa"}`,
		`{"payment_method_id":""}`, `{"payment_method_id":7}`, `{"payment_status":"SUCCEEDED"}`,
		`{"succeeded_at":"2026-01-01T00:00:00Z","failed_at":null}`, `{"error_message":"x"}`, `{"gateway_payment_id":"ch"}`,
		`{"payment_gateway":"stripe"}`, `{"metdata":{}}`, `{"metadata":{"a":1}}`, `{"metadata":"x"}`, `[]`, ``, `{"metadata":`,
		`{"payment_method_id":"p\u0000"}`, `{"payment_method_id":"p\u202e"}`, "{\"metadata\":{\"\xff\":\"b\"}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := decodePaymentUpdate(body)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		acceptedObject[updatePaymentRequest](t, body)
		var members map[string]json.RawMessage
		_ = json.Unmarshal(body, &members)
		for k, raw := range members {
			if k != "metadata" && k != "payment_method_id" && string(raw) != "null" {
				t.Fatalf("accepted a change of %s", k)
			}
		}
		if v.PaymentMethodID != nil && (*v.PaymentMethodID == "" || !safeText(*v.PaymentMethodID) || utf8.RuneCountInString(*v.PaymentMethodID) > 255) {
			t.Fatalf("accepted payment_method_id %q", *v.PaymentMethodID)
		}
		for k, val := range v.Metadata {
			if strings.ContainsRune(k, 0) || strings.ContainsRune(val, 0) {
				t.Fatalf("accepted NUL in metadata %q=%q", k, val)
			}
		}
		if fp := fingerprint("PUT /v1/payments/{id}", []any{"pay_x", v}); len(fp) != 32 {
			t.Fatalf("fingerprint length %d", len(fp))
		}
	})
}

// FuzzDecodePayoutLines: a PUT /v1/payouts/{id}/lines body against a payout
// of any currency and amount never panics, is refused only with a complete
// 4xx, and accepted lines name invoices, carry positive amounts in known
// currencies and together never exceed the payout.
func FuzzDecodePayoutLines(f *testing.F) {
	tok := `"inv_0123456789abcdef0123456789abcdef"`
	for _, s := range []string{
		`{"lines":[{"invoice_token":` + tok + `,"applied_amount":"60.00"}]}`,
		`{"lines":[{"invoice_token":` + tok + `,"applied_amount":"60.00"}],"replace_lines":false}`,
		`{"lines":[]}`, `{}`, `{"lines":null}`, `[]`, ``,
		`{"lines":[{"invoice_token":"01234567-89ab-cdef-0123-456789abcdef","applied_amount":1}]}`,
		`{"lines":[{"invoice_token":` + tok + `,"applied_amount":"100.01"}]}`,
		`{"lines":[{"invoice_token":` + tok + `,"applied_amount":"50","applied_currency":"EUR","fx_rate_line":"1.1"}]}`,
		`{"lines":[{"invoice_token":` + tok + `,"applied_amount":"50","applied_currency":"EUR"}]}`,
		`{"lines":[{"invoice_token":` + tok + `,"applied_amount":"1","fx_rate_line":"0"}]}`,
		`{"lines":[{"invoice_token":` + tok + `,"applied_amount":"1","fx_rate_line":"-1e9"}]}`,
		`{"lines":[{"invoice_token":` + tok + `,"applied_amount":"1","fee_amount_line":"0.5","discount_amount":"9"}]}`,
		`{"lines":[{"invoice_token":` + tok + `,"applied_amount":"1","fx_at_line":"2026-13-01T00:00:00Z"}]}`,
		`{"lines":[{"invoice_token":` + tok + `,"applied_amount":"1","Applied_amount":"2"}]}`,
		`{"lines":[{"invoice_token":"inv_zz","applied_amount":"1"}]}`,
		`{"lines":[{"invoice_token":` + tok + `,"applied_amount":"92233720368547758.08"}]}`,
		`{"lines":[{"invoice_token":` + tok + `,"applied_amount":1e400}]}`,
		`{"lines":[{"invoice_token":` + tok + `,"applied_amount":"1","notes":"a\u0000"}]}`,
		`{"lines":` + strings.Repeat(`[`, 40) + `}`,
		`{"lines":[` + strings.Repeat(`{"invoice_token":`+tok+`,"applied_amount":"0.01"},`, 300) + `{}]}`,
	} {
		f.Add([]byte(s), uint16(0), int64(10000))
	}
	f.Add([]byte(`{"lines":[{"invoice_token":`+tok+`,"applied_amount":"1.5"}]}`), uint16(1), int64(100))
	codes := sortedCurrencyCodes()
	f.Fuzz(func(t *testing.T, body []byte, ci uint16, total int64) {
		cur := codes[int(ci)%len(codes)]
		if total <= 0 || total > fuzzMaxAmount {
			total = total&0xffffffff + 1
		}
		lines, _, err := decodeLines(body, payment.Money{Minor: total, Currency: cur}, fuzzMaxAmount)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		acceptedObject[replaceLinesRequest](t, body)
		var sum int64
		for _, l := range lines {
			if _, ok := payment.InvoiceIDFromToken(l.InvoiceID); !ok || l.AppliedAmount <= 0 || l.PaymentAmount <= 0 ||
				!payment.KnownCurrency(l.AppliedCurrency) || (l.AppliedCurrency != cur && l.FXRate == "") {
				t.Fatalf("accepted line %+v on a %s payout", l, cur)
			}
			if !safeText(l.RemittanceLabel) || !safeText(l.RemittanceValue) || !safeText(l.Notes) {
				t.Fatalf("accepted line text %+v", l)
			}
			sum += l.PaymentAmount
		}
		if sum > total {
			t.Fatalf("accepted lines of %d over a payout of %d %s", sum, total, cur)
		}
	})
}

func sortedCurrencyCodes() []string {
	var out []string
	for _, c := range []string{"USD", "JPY", "BHD", "EUR", "CLF", "GBP", "KWD", "UYW", "XAU"} {
		if payment.KnownCurrency(c) {
			out = append(out, c)
		}
	}
	return out
}

// FuzzListParams: any query string of a list route parses without panic;
// without a refusal, limit is 1–100 and the cursor a possible id, and the
// accepted parameters written back as a query parse to the same values.
func FuzzListParams(f *testing.F) {
	for _, s := range []string{
		"", "limit=5", "limit=100", "limit=101", "limit=0", "limit=-1", "limit=1e2", "limit=9223372036854775808",
		"limit=%00", "limit=5&limit=6", "starting_after=pay_x", "starting_after=" + strings.Repeat("a", 101),
		"starting_after=%ff%fe", "starting_after=%00", "status=SUCCEEDED", "status=nope", "status=%e2%80%ae",
		"a=%zz", ";;;", "limit=+5", "limit= 5", "limit=05",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := &http.Request{URL: &url.URL{Path: "/v1/payments", RawQuery: raw}}
		lq := parseListQuery(r)
		limit, after, bad := lq.limit, lq.after, lq.bad
		_ = payment.PaymentsStatusesNamed(r.URL.Query().Get("status"))
		if len(bad) > 0 {
			for k, c := range bad {
				if !strings.HasPrefix(c, k+"_") {
					t.Fatalf("code %q for field %q", c, k)
				}
			}
			checkRefusal(t, validation(bad))
			return
		}
		if limit < 1 || limit > 100 || len(after) > 100 {
			t.Fatalf("accepted limit %d after %q from %q", limit, after, raw)
		}
		q := url.Values{"limit": {strconv.Itoa(limit)}}
		if after != "" {
			q.Set("starting_after", after)
		}
		lq2 := parseListQuery(&http.Request{URL: &url.URL{RawQuery: q.Encode()}})
		l2, a2, bad2 := lq2.limit, lq2.after, lq2.bad
		if len(bad2) > 0 || l2 != limit || a2 != after {
			t.Fatalf("%q → (%d, %q) → %q → (%d, %q, %v)", raw, limit, after, q.Encode(), l2, a2, bad2)
		}
	})
}
