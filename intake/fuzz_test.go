package intake

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/payd/payd/payment"
)

const fuzzMaxAmount = 1_000_000_000_000_00 // NewServer's default

// decodeSeed is one interesting body and what decode + valid must make of
// it: status 0 means accepted.
type decodeSeed struct {
	name   string
	body   string
	status int
	code   string
}

const validBody = `{"amount":"12.50","currency":"USD","destination_id":"inv_1","destination_type":"INVOICE",` +
	`"payment_method_type":"CARD","payment_method_id":"pm_card_visa"}`

// with replaces the amount and currency of validBody.
func with(amount, currency string) string {
	s := strings.Replace(validBody, `"12.50"`, amount, 1)
	return strings.Replace(s, `"USD"`, currency, 1)
}

var decodeSeeds = []decodeSeed{
	{"valid", validBody, 0, ""},
	{"valid number", with(`12.5`, `"USD"`), 0, ""},
	{"valid JPY", with(`1500`, `"JPY"`), 0, ""},
	{"valid BHD", with(`"1.234"`, `"BHD"`), 0, ""},
	{"valid offline", `{"amount":1,"currency":"EUR","destination_id":"i","destination_type":"INVOICE","payment_method_type":"OFFLINE","process_payment":false,"metadata":{"a":"b"},"idempotency_key":"k"}`, 0, ""},
	{"malformed", `{"amount":`, 400, "body_malformed"},
	{"empty", ``, 400, "body_empty"},
	{"spaces", "  \n", 400, "body_empty"},
	{"array", `[]`, 400, "body_not_object"},
	{"string", `"x"`, 400, "body_not_object"},
	{"number", `1`, 400, "body_not_object"},
	{"null", `null`, 400, "body_not_object"},
	{"trailing object", validBody + `{}`, 400, "body_trailing_data"},
	{"trailing garbage", validBody + `x`, 400, "body_malformed"},
	{"duplicate key", `{"amount":"1","amount":"2"}`, 400, "body_duplicate_key"},
	{"duplicate in metadata", `{"metadata":{"a":"1","a":"2"}}`, 400, "body_duplicate_key"},
	{"case-variant duplicate", strings.Replace(validBody, `}`, `,"Amount":"999.00"}`, 1), 422, "unknown_field"},
	{"case-variant only", strings.Replace(validBody, `"amount"`, `"AMOUNT"`, 1), 422, "unknown_field"},
	{"too deep", `{"metadata":` + strings.Repeat(`{"a":`, 16) + `1` + strings.Repeat(`}`, 17), 400, "body_too_deep"},
	{"deep arrays", `{"metadata":` + strings.Repeat(`[`, 5000), 400, "body_too_deep"},
	{"invalid UTF-8", "{\"currency\":\"\xff\"}", 400, "body_invalid_utf8"},
	{"NUL", `{"destination_id":"a\u0000"}`, 422, "string_contains_nul"},
	{"unknown field", `{"foo":1}`, 422, "unknown_field"},
	{"amount bool", with(`true`, `"USD"`), 422, "amount_invalid_type"},
	{"amount object", with(`{}`, `"USD"`), 422, "amount_invalid_type"},
	{"amount array", with(`[1]`, `"USD"`), 422, "amount_invalid_type"},
	{"currency number", with(`"1"`, `840`), 422, "currency_invalid_type"},
	{"process_payment string", `{"process_payment":"yes"}`, 422, "process_payment_invalid_type"},
	{"metadata number", `{"metadata":{"a":1}}`, 422, "metadata_invalid_type"},
	{"amount null", with(`null`, `"USD"`), 422, "amount_required"},
	{"12.505 USD", with(`12.505`, `"USD"`), 422, "amount_too_many_decimals"},
	{"1.5 JPY", with(`1.5`, `"JPY"`), 422, "amount_too_many_decimals"},
	{"1.2345 BHD", with(`"1.2345"`, `"BHD"`), 422, "amount_too_many_decimals"},
	{"1e3", with(`1e3`, `"USD"`), 422, "amount_exponent_not_allowed"},
	{"1.5E2", with(`"1.5E2"`, `"USD"`), 422, "amount_exponent_not_allowed"},
	{"negative", with(`-1`, `"USD"`), 422, "amount_must_be_positive"},
	{"zero", with(`0`, `"USD"`), 422, "amount_must_be_positive"},
	{"NaN", with(`"NaN"`, `"USD"`), 422, "amount_invalid"},
	{"Infinity", with(`"Infinity"`, `"USD"`), 422, "amount_invalid"},
	{"overflow", with(`"92233720368547758.08"`, `"USD"`), 422, "amount_out_of_range"},
	{"huge", with(strings.Repeat("9", 400), `"USD"`), 422, "amount_out_of_range"},
	{"too large", with(`"1000000000000.01"`, `"USD"`), 422, "amount_too_large"},
	{"non-numeric", with(`"abc"`, `"USD"`), 422, "amount_invalid"},
	{"plus", with(`"+1"`, `"USD"`), 422, "amount_invalid"},
	{"XYZ", with(`"1"`, `"XYZ"`), 422, "currency_unknown"},
	{"u5d", with(`"1"`, `"u5d"`), 422, "currency_invalid"},
	{"US", with(`"1"`, `"US"`), 422, "currency_invalid"},
	{"USDD", with(`"1"`, `"USDD"`), 422, "currency_invalid"},
	{"RTL override", strings.Replace(validBody, `"inv_1"`, `"inv\u202e"`, 1), 422, "destination_id_invalid_characters"},
	{"lone surrogate", strings.Replace(validBody, `"inv_1"`, `"\udc00"`, 1), 422, "destination_id_invalid_characters"},
	{"long destination", strings.Replace(validBody, `"inv_1"`, `"`+strings.Repeat("é", 256)+`"`, 1), 422, "destination_id_too_long"},
	{"injection", strings.Replace(validBody, `"inv_1"`, `"'; DROP TABLE payments; --"`, 1), 0, ""},
	{"no payment method id", strings.Replace(validBody, `,"payment_method_id":"pm_card_visa"`, ``, 1), 422, "payment_method_id_required"},
	{"destination type", strings.Replace(validBody, `"INVOICE"`, `"PAYOUT"`, 1), 422, "destination_type_invalid"},
	{"method type", strings.Replace(validBody, `"CARD"`, `"CASH"`, 1), 422, "payment_method_type_invalid"},
	{"escaped key", `{"\u0061mount":"1"}`, 422, "currency_required"},
	// the vendor's fields beyond the seed page (its client sends them)
	{"vendor fields", strings.Replace(validBody, `}`, `,"save_card_and_make_default":false,"process_payment":true,`+
		`"payment_gateway":"sandbox","success_url":"https://a.example/ok","cancel_url":"http://a.example/c"}`, 1), 0, ""},
	{"success_url ftp", strings.Replace(validBody, `}`, `,"success_url":"ftp://a.example"}`, 1), 422, "success_url_invalid"},
	{"cancel_url long", strings.Replace(validBody, `}`, `,"cancel_url":"https://a.example/`+strings.Repeat("x", 1024)+`"}`, 1), 422, "cancel_url_too_long"},
	{"save_card string", strings.Replace(validBody, `}`, `,"save_card_and_make_default":"true"}`, 1), 422, "save_card_and_make_default_invalid_type"},
	{"gateway unknown", strings.Replace(validBody, `}`, `,"payment_gateway":"paypal"}`, 1), 422, "payment_gateway_invalid"},
	{"gateway offline", `{"amount":1,"currency":"EUR","destination_id":"i","destination_type":"INVOICE","payment_method_type":"OFFLINE","payment_gateway":"stripe"}`, 422, "payment_gateway_not_applicable"},
}

// decodeCreate is what handleCreatePayment does with a body before any I/O.
func decodeCreate(body []byte) (validPayment, error) {
	return checkBody(body, &createPaymentRequest{}, fuzzLimits)
}

func TestDecodePaymentSeeds(t *testing.T) {
	t.Parallel()
	for _, s := range decodeSeeds {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeCreate([]byte(s.body))
			if s.status == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ae *apiError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T), want an *apiError", err, err)
			}
			if ae.Status != s.status || !contains(ae.Codes, s.code) {
				t.Errorf("got %d %v, want %d %s", ae.Status, ae.Codes, s.status, s.code)
			}
		})
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// FuzzDecodePayment: for any bytes, decoding and validating a create body
// never panics, refuses only with a 4xx *apiError, and accepts only what the
// rest of the system can hold.
func FuzzDecodePayment(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s.body))
	}
	known := jsonFields(reflect.TypeFor[createPaymentRequest]())
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := decodeCreate(body)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T) is not an *apiError", err, err)
			}
			if ae.Status < 400 || ae.Status > 499 || len(ae.Codes) == 0 || ae.Message == "" {
				t.Fatalf("refusal %+v is not a complete 4xx", ae)
			}
			if !utf8.ValidString(ae.Message) {
				t.Fatalf("message is not UTF-8: %q", ae.Message)
			}
			if _, err := json.Marshal(errorBody{ErrorCodes: ae.Codes, Message: ae.Message, Fields: ae.Fields}); err != nil {
				t.Fatalf("envelope does not encode: %v", err)
			}
			return
		}
		// Accepted: strictly one valid JSON object of known members.
		if !json.Valid(body) || !utf8.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		var members map[string]json.RawMessage
		if err := json.Unmarshal(body, &members); err != nil {
			t.Fatalf("accepted a non-object %q: %v", body, err)
		}
		for k := range members {
			if _, ok := known[k]; !ok {
				t.Fatalf("accepted member %q", k)
			}
		}
		// Money within bounds, exactly representable, in a known currency.
		if v.Amount.Minor <= 0 || v.Amount.Minor > fuzzMaxAmount || !payment.KnownCurrency(v.Amount.Currency) {
			t.Fatalf("accepted amount %+v", v.Amount)
		}
		if back, err := payment.ParseMajor(payment.FormatMajor(v.Amount.Minor, v.Amount.Currency), v.Amount.Currency); err != nil || back != v.Amount.Minor {
			t.Fatalf("amount %+v does not round-trip: %d %v", v.Amount, back, err)
		}
		// Text Postgres can store and a terminal cannot be tricked by.
		for _, s := range []string{v.DestinationID, v.PaymentMethodID, v.IdempotencyKey} {
			if strings.ContainsRune(s, 0) || strings.ContainsRune(s, '\u202e') || !utf8.ValidString(s) {
				t.Fatalf("accepted text %q", s)
			}
		}
		if v.DestinationID == "" || v.Method == "" {
			t.Fatalf("accepted without destination or method: %+v", v)
		}
		for k, val := range v.Metadata {
			if strings.ContainsRune(k, 0) || strings.ContainsRune(val, 0) {
				t.Fatalf("accepted NUL in metadata %q=%q", k, val)
			}
		}
		for _, u := range []string{v.Options.SuccessURL, v.Options.CancelURL} {
			if u != "" && (len(u) > 1024 || !(strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")) || !safeText(u)) {
				t.Fatalf("accepted URL %q", u)
			}
		}
		if v.PaymentGateway != "" && (!paymentGateways[v.PaymentGateway] || v.Method.WithoutGateway()) {
			t.Fatalf("accepted payment_gateway %q for %s", v.PaymentGateway, v.Method)
		}
		if fp := fingerprint("POST /v1/payments", v); len(fp) != 32 {
			t.Fatalf("fingerprint length %d", len(fp))
		}
	})
}

// FuzzDecodeRefund does the same for refund bodies and amounts.
func FuzzDecodeRefund(f *testing.F) {
	for _, s := range []string{`{}`, `{"amount":"1.00"}`, `{"amount":1e2}`, `{"amount":-1}`, `{"reason":"x"}`,
		`{"amount":null}`, `{"AMOUNT":"1"}`, `{"amount":"1","amount":"2"}`, `[]`, ``} {
		f.Add([]byte(s), "USD")
	}
	f.Add([]byte(`{"amount":"1.5"}`), "JPY")
	f.Add([]byte(`{"amount":"1.234"}`), "BHD")
	f.Fuzz(func(t *testing.T, body []byte, currency string) {
		var req createRefundRequest
		if err := decode(body, &req); err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status < 400 || ae.Status > 499 {
				t.Fatalf("error %v is not a 4xx *apiError", err)
			}
			return
		}
		if !payment.KnownCurrency(currency) {
			return
		}
		if req.Amount.Set {
			minor, code := parseAmount(req.Amount, currency, fuzzMaxAmount, false)
			if code == "" && (minor <= 0 || minor > fuzzMaxAmount) {
				t.Fatalf("accepted refund amount %d", minor)
			}
			if code != "" && minor != 0 {
				t.Fatalf("refused with code %s but amount %d", code, minor)
			}
		}
		_ = checkText(req.Reason, false, 255)
	})
}

// TestDecodeMemberNames: members of structs must be named exactly as their
// JSON tags, at any depth (encoding/json alone would match them ignoring
// case); map keys and values decoded another way are free.
func TestDecodeMemberNames(t *testing.T) {
	t.Parallel()
	type inner struct {
		Amount decimal `json:"amount"`
		Token  string  `json:"invoice_token"`
	}
	type Embedded struct {
		Extra string `json:"extra"`
	}
	type outer struct {
		Embedded
		Lines []inner           `json:"lines"`
		ByKey map[string]inner  `json:"by_key"`
		Ptr   *inner            `json:"ptr"`
		Arr   [2]inner          `json:"arr"`
		Plain string            // no tag: the Go name
		Skip  string            `json:"-"`
		Meta  map[string]string `json:"meta"`
		Any   any               `json:"any"`
		Raw   json.RawMessage   `json:"raw"`
		Opt   *string           `json:"opt,omitempty"`
	}
	cases := []struct {
		body   string
		status int
		field  string
	}{
		{`{"lines":[{"amount":"1","invoice_token":"x"}],"opt":"y"}`, 0, ""},
		{`{"lines":[{"amount":"1"},{"Amount":"2"}]}`, 422, "Amount"},
		{`{"by_key":{"Any-Case":{"amount":"1"}}}`, 0, ""},
		{`{"by_key":{"a":{"AMOUNT":"1"}}}`, 422, "AMOUNT"},
		{`{"ptr":{"invoice_TOKEN":"x"}}`, 422, "invoice_TOKEN"},
		{`{"arr":[{},{"Invoice_token":"x"}]}`, 422, "Invoice_token"},
		{`{"extra":"x"}`, 0, ""},
		{`{"Extra":"x"}`, 422, "Extra"},
		{`{"Plain":"x"}`, 0, ""},
		{`{"plain":"x"}`, 422, "plain"},
		{`{"Skip":"x"}`, 422, "Skip"},
		{`{"Opt":"x"}`, 422, "Opt"},
		{`{"meta":{"A":"1","a":"2"}}`, 0, ""},
		{`{"any":{"Whatever":{"X":1}}}`, 0, ""},
		{`{"raw":{"Whatever":1}}`, 0, ""},
		{`{"lines":{"amount":"1"}}`, 422, "lines"},
		{`{"ptr":[{"Amount":1}]}`, 422, "ptr"},
	}
	for _, c := range cases {
		var v outer
		err := decode([]byte(c.body), &v)
		if c.status == 0 {
			if err != nil {
				t.Errorf("%s: refused: %v", c.body, err)
			}
			continue
		}
		var ae *apiError
		if !errors.As(err, &ae) || ae.Status != c.status || ae.Fields[c.field] == "" {
			t.Errorf("%s: got %v (fields %v), want %d naming %s", c.body, err, fieldsOf(ae), c.status, c.field)
		}
	}
}

func fieldsOf(ae *apiError) map[string]string {
	if ae == nil {
		return nil
	}
	return ae.Fields
}
