package intake_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/payd/payd/internal/testenv"
)

// kv overrides one member of the valid create body; raw is the member's raw
// JSON, or "" to leave the member out.
type kv struct{ k, raw string }

var validMembers = []kv{
	{"amount", `"12.50"`},
	{"currency", `"USD"`},
	{"destination_id", `"inv_1"`},
	{"destination_type", `"INVOICE"`},
	{"payment_method_type", `"CARD"`},
	{"payment_method_id", `"pm_card_visa"`},
}

// createBody writes the valid create body with overrides applied, members in
// a fixed order, overrides that name a new member appended.
func createBody(over ...kv) []byte {
	var parts []string
	used := map[string]bool{}
	for _, m := range validMembers {
		raw := m.raw
		for _, o := range over {
			if o.k == m.k {
				raw, used[o.k] = o.raw, true
			}
		}
		if raw != "" {
			parts = append(parts, fmt.Sprintf("%q:%s", m.k, raw))
		}
	}
	for _, o := range over {
		if !used[o.k] && o.raw != "" {
			parts = append(parts, fmt.Sprintf("%q:%s", o.k, o.raw))
		}
	}
	return []byte("{" + strings.Join(parts, ",") + "}")
}

func long(n int) string { return strings.Repeat("x", n) }

func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// nested wraps a string value in depth levels of {"a": …}.
func nested(depth int) string {
	return strings.Repeat(`{"a":`, depth) + `"x"` + strings.Repeat(`}`, depth)
}

type badCase struct {
	name   string
	method string // default POST
	path   string // default /v1/payments
	body   []byte // nil: no body
	key    string // "": tenant A; "-": none; anything else is sent as the key
	hdr    map[string]string
	status int
	code   string
	field  string // when set, the envelope's fields[field] must be code
}

func (c badCase) run(t *testing.T, h *testenv.Harness) {
	t.Helper()
	method, path, key := c.method, c.path, c.key
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/v1/payments"
	}
	switch key {
	case "":
		key = h.KeyA
	case "-":
		key = ""
	}
	r := h.Do(method, path, key, c.body, c.hdr)
	e := checkEnvelope(t, r, c.status, c.code)
	if c.field != "" {
		if got := e.Fields[c.field]; got != c.code {
			t.Errorf("fields[%q] = %q, want %q (fields %v)", c.field, got, c.code, e.Fields)
		}
	}
	if c.status == http.StatusUnprocessableEntity && len(e.Fields) == 0 {
		t.Errorf("a 422 names no field: %s", r.Body)
	}
}

func TestCreatePaymentBadInput(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	// The invoice the valid body pays exists, so that only the bad member
	// can be why nothing is created.
	invoice(t, h, h.KeyA, "inv_1", "USD", maxUSD)
	invoice(t, h, h.KeyA, "inv_small", "USD", "1.00")
	invoice(t, h, h.KeyB, "inv_of_b", "USD", maxUSD)
	invoice(t, h, h.KeyA, "inv_void", "USD", maxUSD)
	if _, err := h.Store.DB().ExecContext(context.Background(),
		`UPDATE invoices SET voided_at = now() WHERE tenant_id = $1 AND external_id = 'inv_void'`, h.TenantA); err != nil {
		t.Fatal(err)
	}
	valid := createBody()
	meta := func(raw string) kv { return kv{"metadata", raw} }
	manyKeys := map[string]string{}
	for i := 0; i < 51; i++ {
		manyKeys[fmt.Sprintf("k%02d", i)] = "v"
	}
	manyKeysJSON, _ := json.Marshal(manyKeys)
	big := createBody(meta(`{"pad":` + q(long(70<<10)) + `}`))

	cases := []badCase{
		// Not JSON, or not one JSON object: 400.
		{name: "malformed truncated", body: []byte(`{"amount":`), status: 400, code: "body_malformed"},
		{name: "malformed unquoted key", body: []byte(`{amount: 1}`), status: 400, code: "body_malformed"},
		{name: "malformed trailing comma", body: []byte(`{"amount":"1",}`), status: 400, code: "body_malformed"},
		{name: "malformed single quotes", body: []byte(`{'amount':'1'}`), status: 400, code: "body_malformed"},
		{name: "empty body", body: []byte{}, status: 400, code: "body_empty"},
		{name: "whitespace body", body: []byte(" \n\t "), status: 400, code: "body_empty"},
		{name: "array body", body: []byte(`[]`), status: 400, code: "body_not_object"},
		{name: "array of object", body: []byte(`[` + string(valid) + `]`), status: 400, code: "body_not_object"},
		{name: "string body", body: []byte(`"hello"`), status: 400, code: "body_not_object"},
		{name: "number body", body: []byte(`12.50`), status: 400, code: "body_not_object"},
		{name: "null body", body: []byte(`null`), status: 400, code: "body_not_object"},
		{name: "true body", body: []byte(`true`), status: 400, code: "body_not_object"},
		{name: "trailing object", body: append(append([]byte{}, valid...), []byte(` {}`)...), status: 400, code: "body_trailing_data"},
		{name: "trailing number", body: append(append([]byte{}, valid...), []byte(` 1`)...), status: 400, code: "body_trailing_data"},
		{name: "trailing garbage", body: append(append([]byte{}, valid...), []byte(`x`)...), status: 400, code: "body_malformed"},
		{name: "trailing close brace", body: append(append([]byte{}, valid...), []byte(`}`)...), status: 400, code: "body_malformed"},
		{name: "duplicate top-level key", body: createBody(kv{"amount", `"1.00","amount":"999.00"`}), status: 400, code: "body_duplicate_key"},
		{name: "duplicate key in metadata", body: createBody(meta(`{"a":"1","a":"2"}`)), status: 400, code: "body_duplicate_key"},
		{name: "duplicate key deep", body: createBody(meta(`{"a":{"b":1,"b":2}}`)), status: 400, code: "body_duplicate_key"},
		// encoding/json matches member names case-insensitively: "Amount"
		// must not smuggle a second amount past the duplicate check.
		{name: "case-variant duplicate amount", body: createBody(kv{"Amount", `"99999.00"`}), status: 422, code: "unknown_field", field: "Amount"},
		{name: "case-variant currency", body: createBody(kv{"currency", ""}, kv{"CURRENCY", `"USD"`}), status: 422, code: "unknown_field", field: "CURRENCY"},
		{name: "nesting 17 deep", body: createBody(meta(nested(16))), status: 400, code: "body_too_deep"},
		{name: "nesting 16 deep is only a type error", body: createBody(meta(nested(15))), status: 422, code: "metadata_invalid_type", field: "metadata"},
		{name: "nesting 60k arrays", body: createBody(meta(strings.Repeat("[", 60000))), status: 400, code: "body_too_deep"},
		{name: "invalid UTF-8", body: []byte("{\"amount\":\"12.50\",\"currency\":\"US\xff\"}"), status: 400, code: "body_invalid_utf8"},
		{name: "invalid UTF-8 in key", body: []byte("{\"amo\xc3\x28unt\":\"12.50\"}"), status: 400, code: "body_invalid_utf8"},
		{name: "NUL in destination_id", body: createBody(kv{"destination_id", `"inv\u0000x"`}), status: 422, code: "string_contains_nul"},
		{name: "NUL in metadata key", body: createBody(meta(`{"a\u0000":"1"}`)), status: 422, code: "string_contains_nul"},
		{name: "NUL in metadata value", body: createBody(meta(`{"a":"\u0000"}`)), status: 422, code: "string_contains_nul"},
		{name: "unknown field", body: createBody(kv{"amount_minor", `1250`}), status: 422, code: "unknown_field", field: "amount_minor"},
		{name: "unknown field tenant_id", body: createBody(kv{"tenant_id", `"ten_other"`}), status: 422, code: "unknown_field", field: "tenant_id"},

		// Wrong JSON types: 422 naming the field.
		{name: "amount bool", body: createBody(kv{"amount", `true`}), status: 422, code: "amount_invalid_type", field: "amount"},
		{name: "amount object", body: createBody(kv{"amount", `{"value":"12.50"}`}), status: 422, code: "amount_invalid_type", field: "amount"},
		{name: "amount array", body: createBody(kv{"amount", `["12.50"]`}), status: 422, code: "amount_invalid_type", field: "amount"},
		{name: "currency number", body: createBody(kv{"currency", `840`}), status: 422, code: "currency_invalid_type", field: "currency"},
		{name: "process_payment string", body: createBody(kv{"process_payment", `"true"`}), status: 422, code: "process_payment_invalid_type", field: "process_payment"},
		{name: "process_payment number", body: createBody(kv{"process_payment", `1`}), status: 422, code: "process_payment_invalid_type", field: "process_payment"},
		{name: "metadata value number", body: createBody(meta(`{"a":1}`)), status: 422, code: "metadata_invalid_type", field: "metadata"},
		{name: "metadata array", body: createBody(meta(`["a"]`)), status: 422, code: "metadata_invalid_type", field: "metadata"},
		{name: "destination_id number", body: createBody(kv{"destination_id", `7`}), status: 422, code: "destination_id_invalid_type", field: "destination_id"},

		// Amounts.
		{name: "amount null", body: createBody(kv{"amount", `null`}), status: 422, code: "amount_required", field: "amount"},
		{name: "amount missing", body: createBody(kv{"amount", ""}), status: 422, code: "amount_required", field: "amount"},
		{name: "12.505 USD", body: createBody(kv{"amount", `12.505`}), status: 422, code: "amount_too_many_decimals", field: "amount"},
		{name: "12.505 USD string", body: createBody(kv{"amount", `"12.505"`}), status: 422, code: "amount_too_many_decimals", field: "amount"},
		{name: "1.5 JPY", body: createBody(kv{"amount", `1.5`}, kv{"currency", `"JPY"`}), status: 422, code: "amount_too_many_decimals", field: "amount"},
		{name: "1.2345 BHD", body: createBody(kv{"amount", `"1.2345"`}, kv{"currency", `"BHD"`}), status: 422, code: "amount_too_many_decimals", field: "amount"},
		{name: "exponent 1e3", body: createBody(kv{"amount", `1e3`}), status: 422, code: "amount_exponent_not_allowed", field: "amount"},
		{name: "exponent string 1.5E2", body: createBody(kv{"amount", `"1.5E2"`}), status: 422, code: "amount_exponent_not_allowed", field: "amount"},
		{name: "exponent 1E-2", body: createBody(kv{"amount", `1E-2`}), status: 422, code: "amount_exponent_not_allowed", field: "amount"},
		{name: "negative", body: createBody(kv{"amount", `-5`}), status: 422, code: "amount_must_be_positive", field: "amount"},
		{name: "negative string", body: createBody(kv{"amount", `"-0.01"`}), status: 422, code: "amount_must_be_positive", field: "amount"},
		{name: "zero", body: createBody(kv{"amount", `0`}), status: 422, code: "amount_must_be_positive", field: "amount"},
		{name: "zero string 0.00", body: createBody(kv{"amount", `"0.00"`}), status: 422, code: "amount_must_be_positive", field: "amount"},
		{name: "minus zero", body: createBody(kv{"amount", `-0`}), status: 422, code: "amount_must_be_positive", field: "amount"},
		{name: "NaN string", body: createBody(kv{"amount", `"NaN"`}), status: 422, code: "amount_invalid", field: "amount"},
		{name: "Infinity string", body: createBody(kv{"amount", `"Infinity"`}), status: 422, code: "amount_invalid", field: "amount"},
		{name: "NaN bare", body: createBody(kv{"amount", `NaN`}), status: 400, code: "body_malformed"},
		{name: "overflow int64 minor units", body: createBody(kv{"amount", `"92233720368547758.08"`}), status: 422, code: "amount_out_of_range", field: "amount"},
		{name: "overflow number", body: createBody(kv{"amount", strings.Repeat("9", 40)}), status: 422, code: "amount_out_of_range", field: "amount"},
		{name: "above max amount", body: createBody(kv{"amount", `"1000000000000.01"`}), status: 422, code: "amount_too_large", field: "amount"},
		{name: "non-numeric string", body: createBody(kv{"amount", `"twelve"`}), status: 422, code: "amount_invalid", field: "amount"},
		{name: "empty string amount", body: createBody(kv{"amount", `""`}), status: 422, code: "amount_invalid", field: "amount"},
		{name: "leading plus string", body: createBody(kv{"amount", `"+12.50"`}), status: 422, code: "amount_invalid", field: "amount"},
		{name: "leading plus number", body: createBody(kv{"amount", `+12.50`}), status: 400, code: "body_malformed"},
		{name: "leading space", body: createBody(kv{"amount", `" 12.50"`}), status: 422, code: "amount_invalid", field: "amount"},
		{name: "hex", body: createBody(kv{"amount", `"0x10"`}), status: 422, code: "amount_invalid", field: "amount"},
		{name: "thousands separator", body: createBody(kv{"amount", `"1,000.00"`}), status: 422, code: "amount_invalid", field: "amount"},
		{name: "leading zero", body: createBody(kv{"amount", `"007"`}), status: 422, code: "amount_invalid", field: "amount"},
		{name: "bare point", body: createBody(kv{"amount", `".5"`}), status: 422, code: "amount_invalid", field: "amount"},
		{name: "trailing point", body: createBody(kv{"amount", `"5."`}), status: 422, code: "amount_invalid", field: "amount"},

		// Currencies.
		{name: "unknown currency", body: createBody(kv{"currency", `"XYZ"`}), status: 422, code: "currency_unknown", field: "currency"},
		{name: "digit in currency", body: createBody(kv{"currency", `"u5d"`}), status: 422, code: "currency_invalid", field: "currency"},
		{name: "2-letter currency", body: createBody(kv{"currency", `"US"`}), status: 422, code: "currency_invalid", field: "currency"},
		{name: "4-letter currency", body: createBody(kv{"currency", `"USDD"`}), status: 422, code: "currency_invalid", field: "currency"},
		{name: "missing currency", body: createBody(kv{"currency", ""}), status: 422, code: "currency_required", field: "currency"},
		{name: "currency with space", body: createBody(kv{"currency", `"US "`}), status: 422, code: "currency_invalid", field: "currency"},

		// Other fields.
		{name: "destination_type PAYOUT", body: createBody(kv{"destination_type", `"PAYOUT"`}), status: 422, code: "destination_type_invalid", field: "destination_type"},
		{name: "destination_type lower-case", body: createBody(kv{"destination_type", `"invoice"`}), status: 422, code: "destination_type_invalid", field: "destination_type"},
		{name: "destination_type missing", body: createBody(kv{"destination_type", ""}), status: 422, code: "destination_type_required", field: "destination_type"},
		{name: "payment_method_type invalid", body: createBody(kv{"payment_method_type", `"BITCOIN"`}), status: 422, code: "payment_method_type_invalid", field: "payment_method_type"},
		{name: "payment_method_type lower-case", body: createBody(kv{"payment_method_type", `"card"`}), status: 422, code: "payment_method_type_invalid", field: "payment_method_type"},
		{name: "payment_method_type missing", body: createBody(kv{"payment_method_type", ""}), status: 422, code: "payment_method_type_required", field: "payment_method_type"},
		{name: "CARD without payment_method_id", body: createBody(kv{"payment_method_id", ""}), status: 422, code: "payment_method_id_required", field: "payment_method_id"},
		{name: "CARD with empty payment_method_id", body: createBody(kv{"payment_method_id", `""`}), status: 422, code: "payment_method_id_required", field: "payment_method_id"},
		{name: "ACH without payment_method_id", body: createBody(kv{"payment_method_type", `"ACH"`}, kv{"payment_method_id", ""}), status: 422, code: "payment_method_id_required", field: "payment_method_id"},
		{name: "destination_id 10k chars", body: createBody(kv{"destination_id", q(long(10000))}), status: 422, code: "destination_id_too_long", field: "destination_id"},
		{name: "destination_id 256 chars", body: createBody(kv{"destination_id", q(long(256))}), status: 422, code: "destination_id_too_long", field: "destination_id"},
		{name: "destination_id missing", body: createBody(kv{"destination_id", ""}), status: 422, code: "destination_id_required", field: "destination_id"},
		{name: "destination_id RTL override", body: createBody(kv{"destination_id", q("inv_\u202e1")}), status: 422, code: "destination_id_invalid_characters", field: "destination_id"},
		{name: "destination_id isolate", body: createBody(kv{"destination_id", q("inv_\u20661")}), status: 422, code: "destination_id_invalid_characters", field: "destination_id"},
		{name: "destination_id tab", body: createBody(kv{"destination_id", `"inv\t1"`}), status: 422, code: "destination_id_invalid_characters", field: "destination_id"},
		{name: "destination_id newline", body: createBody(kv{"destination_id", `"inv\n1"`}), status: 422, code: "destination_id_invalid_characters", field: "destination_id"},
		{name: "destination_id escape", body: createBody(kv{"destination_id", `"inv\u001b[31m"`}), status: 422, code: "destination_id_invalid_characters", field: "destination_id"},
		{name: "destination_id DEL", body: createBody(kv{"destination_id", `"inv\u007f"`}), status: 422, code: "destination_id_invalid_characters", field: "destination_id"},
		{name: "destination_id lone surrogate", body: createBody(kv{"destination_id", `"inv\ud800"`}), status: 422, code: "destination_id_invalid_characters", field: "destination_id"},

		// The invoice paid: it must exist, be the tenant's, open, in the
		// payment's currency, with room for the amount.
		{name: "destination_id no such invoice", body: createBody(kv{"destination_id", `"inv_nowhere"`}), status: 422, code: "destination_id_not_found", field: "destination_id"},
		{name: "destination_id another tenant's invoice", body: createBody(kv{"destination_id", `"inv_of_b"`}), status: 422, code: "destination_id_not_found", field: "destination_id"},
		{name: "destination_id differs in case", body: createBody(kv{"destination_id", `"INV_1"`}), status: 422, code: "destination_id_not_found", field: "destination_id"},
		{name: "destination_id void invoice", body: createBody(kv{"destination_id", `"inv_void"`}), status: 422, code: "invoice_void", field: "destination_id"},
		{name: "currency other than the invoice's", body: createBody(kv{"currency", `"EUR"`}), status: 422, code: "currency_mismatch", field: "currency"},
		{name: "more than the invoice's amount due", body: createBody(kv{"destination_id", `"inv_small"`}), status: 422, code: "invoice_over_applied", field: "amount"},
		{name: "payment_method_id control", body: createBody(kv{"payment_method_id", `"pm\r\n"`}), status: 422, code: "payment_method_id_invalid_characters", field: "payment_method_id"},
		{name: "idempotency_key 256 chars", body: createBody(kv{"idempotency_key", q(long(256))}), status: 422, code: "idempotency_key_too_long", field: "idempotency_key"},
		{name: "metadata 51 keys", body: createBody(meta(string(manyKeysJSON))), status: 422, code: "metadata_too_many_keys", field: "metadata"},
		{name: "metadata value 501 chars", body: createBody(meta(`{"a":` + q(long(501)) + `}`)), status: 422, code: "metadata_value_too_long", field: "metadata"},
		{name: "metadata empty key", body: createBody(meta(`{"":"v"}`)), status: 422, code: "metadata_key_invalid", field: "metadata"},
		{name: "metadata key 41 chars", body: createBody(meta(`{` + q(long(41)) + `:"v"}`)), status: 422, code: "metadata_key_invalid", field: "metadata"},
		{name: "everything missing", body: []byte(`{}`), status: 422, code: "currency_required", field: "currency"},

		// Transport-level refusals.
		{name: "body over 64 KiB", body: big, status: 413, code: "body_too_large"},
		{name: "text/plain", body: valid, hdr: map[string]string{"Content-Type": "text/plain"}, status: 415, code: "content_type_unsupported"},
		{name: "form content type", body: []byte("amount=12.50"), hdr: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, status: 415, code: "content_type_unsupported"},
		{name: "unparsable content type", body: valid, hdr: map[string]string{"Content-Type": ";;;"}, status: 415, code: "content_type_unsupported"},
		{name: "Idempotency-Key non-ASCII", body: valid, hdr: map[string]string{"Idempotency-Key": "clé-ü"}, status: 400, code: "idempotency_key_invalid"},
		{name: "Idempotency-Key 256 chars", body: valid, hdr: map[string]string{"Idempotency-Key": long(256)}, status: 400, code: "idempotency_key_invalid"},
		{name: "Idempotency-Key with space", body: valid, hdr: map[string]string{"Idempotency-Key": "a b"}, status: 400, code: "idempotency_key_invalid"},
		{name: "no API key", key: "-", body: valid, status: 401, code: "api_key_invalid"},
		{name: "wrong API key", key: "sk_" + strings.Repeat("0", 48), body: valid, status: 401, code: "api_key_invalid"},
		{name: "huge API key", key: long(5000), body: valid, status: 401, code: "api_key_invalid"},
		{name: "wrong Bearer", key: "-", body: valid, hdr: map[string]string{"Authorization": "Bearer sk_nope"}, status: 401, code: "api_key_invalid"},
		{name: "Basic auth", key: "-", body: valid, hdr: map[string]string{"Authorization": "Basic " + h.KeyA}, status: 401, code: "api_key_invalid"},
		{name: "empty Bearer", key: "-", body: valid, hdr: map[string]string{"Authorization": "Bearer "}, status: 401, code: "api_key_invalid"},
		{name: "injection as API key", key: "' OR '1'='1", body: valid, status: 401, code: "api_key_invalid"},

		// Routes.
		{name: "unknown route", method: "GET", path: "/v1/nothing", status: 404, code: "route_not_found"},
		{name: "unknown route unauthenticated", method: "GET", path: "/v2/payments", key: "-", status: 404, code: "route_not_found"},
		{name: "wrong method", method: "DELETE", path: "/v1/payments", status: 404, code: "route_not_found"},
		{name: "trailing slash", method: "POST", path: "/v1/payments/", body: valid, status: 404, code: "route_not_found"},
		{name: "unknown payment", method: "GET", path: "/v1/payments/pay_00000000000000000000000000", status: 404, code: "resource_not_found"},
		{name: "injection as payment id", method: "GET", path: "/v1/payments/" + url.PathEscape("' OR '1'='1"), status: 404, code: "resource_not_found"},
		{name: "NUL in payment id", method: "GET", path: "/v1/payments/pay_%00", status: 404, code: "resource_not_found"},
		{name: "invalid UTF-8 in payment id", method: "GET", path: "/v1/payments/pay_%FF", status: 404, code: "resource_not_found"},
		{name: "long payment id", method: "GET", path: "/v1/payments/" + long(5000), status: 404, code: "resource_not_found"},
		{name: "NUL in timeline id", method: "GET", path: "/v1/payments/%00/timeline", status: 404, code: "resource_not_found"},
		{name: "invalid UTF-8 in cancel id", method: "POST", path: "/v1/payments/%C3%28/cancel", status: 404, code: "resource_not_found"},
		{name: "unknown payment timeline", method: "GET", path: "/v1/payments/pay_nope/timeline", status: 404, code: "resource_not_found"},
		{name: "unknown payment cancel", method: "POST", path: "/v1/payments/pay_nope/cancel", status: 404, code: "resource_not_found"},

		// Lists.
		{name: "limit=0", method: "GET", path: "/v1/payments?limit=0", status: 422, code: "limit_invalid", field: "limit"},
		{name: "limit=101 with the cursor", method: "GET", path: "/v1/payments?starting_after=&limit=101", status: 422, code: "limit_invalid", field: "limit"},
		{name: "limit=1001", method: "GET", path: "/v1/payments?limit=1001", status: 422, code: "limit_invalid", field: "limit"},
		{name: "limit=abc", method: "GET", path: "/v1/payments?limit=abc", status: 422, code: "limit_invalid", field: "limit"},
		{name: "limit=-1", method: "GET", path: "/v1/payments?limit=-1", status: 422, code: "limit_invalid", field: "limit"},
		{name: "limit=1e1", method: "GET", path: "/v1/payments?limit=1e1", status: 422, code: "limit_invalid", field: "limit"},
		{name: "limit overflow", method: "GET", path: "/v1/payments?limit=99999999999999999999999", status: 422, code: "limit_invalid", field: "limit"},
		{name: "status=bogus", method: "GET", path: "/v1/payments?status=bogus", status: 422, code: "status_invalid", field: "status"},
		{name: "status lower-case", method: "GET", path: "/v1/payments?status=succeeded", status: 422, code: "status_invalid", field: "status"},
		{name: "status canonical-only", method: "GET", path: "/v1/payments?status=CANCELED", status: 422, code: "status_invalid", field: "status"},
		{name: "starting_after unknown", method: "GET", path: "/v1/payments?starting_after=pay_nope", status: 422, code: "starting_after_not_found", field: "starting_after"},
		{name: "starting_after injection", method: "GET", path: "/v1/payments?starting_after=" + url.QueryEscape("x' OR 1=1--"), status: 422, code: "starting_after_not_found", field: "starting_after"},
		{name: "starting_after NUL", method: "GET", path: "/v1/payments?starting_after=pay_%00", status: 422, code: "starting_after_not_found", field: "starting_after"},
		{name: "starting_after invalid UTF-8", method: "GET", path: "/v1/payments?starting_after=pay_%FF", status: 422, code: "starting_after_not_found", field: "starting_after"},
		{name: "starting_after too long", method: "GET", path: "/v1/payments?starting_after=" + long(101), status: 422, code: "starting_after_invalid", field: "starting_after"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, h)
		})
	}
	// Cleanups run after the parallel subtests, before the harness stops.
	t.Cleanup(func() {
		if n := countPayments(t, h, h.TenantA); n != 0 {
			t.Errorf("bad input created %d payments", n)
		}
	})
}

// TestCreatePaymentInjectionIsData proves that SQL in text fields is stored
// and returned verbatim: the statements are parameterized.
func TestCreatePaymentInjectionIsData(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	payloads := []string{
		`'; DROP TABLE payments; --`,
		`' OR '1'='1`,
		`Robert'); DELETE FROM invoices;--`,
		`1; UPDATE payments SET amount = 1`,
		`$1, $2) --`,
		`\'; TRUNCATE tenants CASCADE; --`,
		`inv_" || pg_sleep(5) || "`,
		`%' AND 1=(SELECT COUNT(*) FROM tenants) --`,
	}
	ids, invoices := map[string]string{}, map[string]string{}
	for _, p := range payloads {
		// the invoice paid is named by the same text
		invoices[p] = invoice(t, h, h.KeyA, p, "USD", "12.50")
		body := createBody(kv{"destination_id", q(p)}, kv{"payment_method_id", q(p)}, kv{"metadata", `{"note":` + q(p) + `}`})
		r := h.Do("POST", "/v1/payments", h.KeyA, body, nil)
		m := jsonObj(t, r, http.StatusCreated)
		if m["destination_id"] != p || m["payment_method_id"] != p {
			t.Errorf("create echoed destination_id %q payment_method_id %q, want %q", m["destination_id"], m["payment_method_id"], p)
		}
		ids[p] = m["id"].(string)
	}
	for p, id := range ids {
		var dest, pm, note, inv string
		err := h.Store.DB().QueryRowContext(context.Background(),
			`SELECT destination_id, payment_method_id, metadata->>'note', invoice_id FROM payments WHERE id = $1`, id).Scan(&dest, &pm, &note, &inv)
		if err != nil {
			t.Fatalf("load %s: %v", id, err)
		}
		diff(t, "stored row", []string{p, p, p, invoices[p]}, []string{dest, pm, note, inv})
		m := jsonObj(t, h.Do("GET", "/v1/payments/"+id, h.KeyA, nil, nil), http.StatusOK)
		if m["destination_id"] != p {
			t.Errorf("GET destination_id = %q, want %q", m["destination_id"], p)
		}
		// The invoice is keyed by the same text, stored verbatim, and paid.
		var n int
		if err := h.Store.DB().QueryRowContext(context.Background(),
			`SELECT count(*) FROM invoices WHERE external_id = $1 AND amount_reserved = 1250`, p).Scan(&n); err != nil || n != 1 {
			t.Errorf("invoices with external_id %q holding the payment: %d, %v", p, n, err)
		}
		m = jsonObj(t, h.Do("GET", "/v1/invoices/"+url.PathEscape(p), h.KeyA, nil, nil), http.StatusOK)
		if m["id"] != invoices[p] || m["external_id"] != p {
			t.Errorf("GET invoice by external id %q = %v %v", p, m["id"], m["external_id"])
		}
	}
	// Every table is intact and holds exactly what was created.
	if n := countPayments(t, h, h.TenantA); n != len(payloads) {
		t.Errorf("payments = %d, want %d", n, len(payloads))
	}
	var tenants int
	if err := h.Store.DB().QueryRowContext(context.Background(), `SELECT count(*) FROM tenants`).Scan(&tenants); err != nil || tenants != 2 {
		t.Errorf("tenants = %d, %v; want 2", tenants, err)
	}
	var amounts int
	if err := h.Store.DB().QueryRowContext(context.Background(), `SELECT count(*) FROM payments WHERE amount <> 1250`).Scan(&amounts); err != nil || amounts != 0 {
		t.Errorf("payments with a changed amount: %d, %v", amounts, err)
	}
}

// TestRefundBadInput sends hostile refunds; the payment is PENDING (no worker).
func TestRefundBadInput(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	id := h.CreatePayment("CARD", "pm_card_visa", "10.00")
	path := "/v1/payments/" + id + "/refunds"
	ok := []byte(`{"amount":"1.00"}`)
	cases := []badCase{
		{name: "unknown payment", path: "/v1/payments/pay_nope/refunds", body: ok, status: 404, code: "resource_not_found"},
		{name: "NUL in payment id", path: "/v1/payments/pay_%00/refunds", body: ok, status: 404, code: "resource_not_found"},
		{name: "injection in payment id", path: "/v1/payments/" + url.PathEscape("x' OR '1'='1") + "/refunds", body: ok, status: 404, code: "resource_not_found"},
		{name: "no key", key: "-", body: ok, status: 401, code: "api_key_invalid"},
		{name: "malformed", body: []byte(`{"amount":`), status: 400, code: "body_malformed"},
		{name: "empty", body: []byte{}, status: 400, code: "body_empty"},
		{name: "array", body: []byte(`[{"amount":"1.00"}]`), status: 400, code: "body_not_object"},
		{name: "duplicate amount", body: []byte(`{"amount":"1.00","amount":"10.00"}`), status: 400, code: "body_duplicate_key"},
		{name: "case-variant amount", body: []byte(`{"amount":"1.00","AMOUNT":"10.00"}`), status: 422, code: "unknown_field", field: "AMOUNT"},
		{name: "trailing data", body: []byte(`{"amount":"1.00"}{}`), status: 400, code: "body_trailing_data"},
		{name: "invalid UTF-8", body: []byte("{\"reason\":\"\xfe\"}"), status: 400, code: "body_invalid_utf8"},
		{name: "too deep", body: []byte(`{"reason":` + nested(16) + `}`), status: 400, code: "body_too_deep"},
		{name: "NUL in reason", body: []byte(`{"reason":"a\u0000b"}`), status: 422, code: "string_contains_nul"},
		{name: "unknown field", body: []byte(`{"amount":"1.00","payment_id":"pay_other"}`), status: 422, code: "unknown_field", field: "payment_id"},
		{name: "amount non-numeric", body: []byte(`{"amount":"abc"}`), status: 422, code: "amount_invalid", field: "amount"},
		{name: "amount negative", body: []byte(`{"amount":-1}`), status: 422, code: "amount_must_be_positive", field: "amount"},
		{name: "amount zero", body: []byte(`{"amount":0}`), status: 422, code: "amount_must_be_positive", field: "amount"},
		{name: "amount too many decimals", body: []byte(`{"amount":1.005}`), status: 422, code: "amount_too_many_decimals", field: "amount"},
		{name: "amount exponent", body: []byte(`{"amount":1e2}`), status: 422, code: "amount_exponent_not_allowed", field: "amount"},
		{name: "amount bool", body: []byte(`{"amount":false}`), status: 422, code: "amount_invalid_type", field: "amount"},
		{name: "amount overflow", body: []byte(`{"amount":"92233720368547758.08"}`), status: 422, code: "amount_out_of_range", field: "amount"},
		{name: "amount null", body: []byte(`{"amount":null}`), status: 422, code: "amount_required", field: "amount"},
		{name: "reason number", body: []byte(`{"reason":5}`), status: 422, code: "reason_invalid_type", field: "reason"},
		{name: "reason RTL override", body: []byte(`{"reason":"\u202edecoy"}`), status: 422, code: "reason_invalid_characters", field: "reason"},
		{name: "reason too long", body: []byte(`{"reason":` + q(long(256)) + `}`), status: 422, code: "reason_too_long", field: "reason"},
		{name: "text/plain", body: ok, hdr: map[string]string{"Content-Type": "text/plain"}, status: 415, code: "content_type_unsupported"},
		{name: "over 64 KiB", body: []byte(`{"reason":` + q(long(70<<10)) + `}`), status: 413, code: "body_too_large"},
		{name: "bad Idempotency-Key", body: ok, hdr: map[string]string{"Idempotency-Key": "ключ"}, status: 400, code: "idempotency_key_invalid"},
		{name: "payment not captured", body: ok, status: 409, code: "invalid_state"},
		{name: "whole refund of uncaptured payment", body: []byte(`{}`), status: 409, code: "invalid_state"},
	}
	for _, c := range cases {
		if c.path == "" {
			c.path = path
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, h)
		})
	}
	t.Cleanup(func() {
		var n int
		if err := h.Store.DB().QueryRowContext(context.Background(), `SELECT count(*) FROM refunds`).Scan(&n); err != nil || n != 0 {
			t.Errorf("refunds recorded: %d, %v", n, err)
		}
	})
}
