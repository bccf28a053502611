package intake_test

import (
	"testing"

	"github.com/payd/payd/internal/testenv"
)

// TestCreatePaymentBadInputEdges adds to TestCreatePaymentBadInput's table
// what it leaves out: duplicate keys spelled with escapes, null where a
// value is required, non-ASCII digits and letters in amounts and currencies,
// more exponent and overflow forms, 10k-character, bidi-override and NUL
// strings in every free-text member, and SQL in the members that are
// validated against a list. Each is refused with its own 4xx and code, and
// nothing is created.
func TestCreatePaymentBadInputEdges(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	invoice(t, h, h.KeyA, "inv_1", "USD", maxUSD)
	meta := func(raw string) kv { return kv{"metadata", raw} }
	cases := []badCase{
		// a key spelled with an escape is the same key
		{name: "escaped duplicate amount", body: createBody(kv{"amount", `"1.00","\u0061mount":"999.00"`}), status: 400, code: "body_duplicate_key"},
		{name: "escaped duplicate in metadata", body: createBody(meta(`{"a":"1","\u0061":"2"}`)), status: 400, code: "body_duplicate_key"},
		{name: "byte order mark", body: append([]byte("\ufeff"), createBody()...), status: 400, code: "body_malformed"},

		// null where a value is required
		{name: "currency null", body: createBody(kv{"currency", `null`}), status: 422, code: "currency_required", field: "currency"},
		{name: "destination_id null", body: createBody(kv{"destination_id", `null`}), status: 422, code: "destination_id_required", field: "destination_id"},
		{name: "payment_method_type null", body: createBody(kv{"payment_method_type", `null`}), status: 422, code: "payment_method_type_required", field: "payment_method_type"},
		{name: "payment_method_id null", body: createBody(kv{"payment_method_id", `null`}), status: 422, code: "payment_method_id_required", field: "payment_method_id"},

		// amounts
		{name: "Arabic-Indic digits", body: createBody(kv{"amount", `"١٢.٥٠"`}), status: 422, code: "amount_invalid", field: "amount"},
		{name: "full-width digits", body: createBody(kv{"amount", `"１２.５０"`}), status: 422, code: "amount_invalid", field: "amount"},
		{name: "double-encoded string", body: createBody(kv{"amount", `"\"12.50\""`}), status: 422, code: "amount_invalid", field: "amount"},
		{name: "trailing space", body: createBody(kv{"amount", `"12.50 "`}), status: 422, code: "amount_invalid", field: "amount"},
		{name: "leading zero number", body: createBody(kv{"amount", `012.50`}), status: 400, code: "body_malformed"},
		{name: "exponent string lower-case", body: createBody(kv{"amount", `"1e3"`}), status: 422, code: "amount_exponent_not_allowed", field: "amount"},
		{name: "exponent E+0", body: createBody(kv{"amount", `12.50E+0`}), status: 422, code: "amount_exponent_not_allowed", field: "amount"},
		{name: "exponent 1E400", body: createBody(kv{"amount", `1E400`}), status: 422, code: "amount_exponent_not_allowed", field: "amount"},
		{name: "exponent string 1E-2", body: createBody(kv{"amount", `"1E-2"`}), status: 422, code: "amount_exponent_not_allowed", field: "amount"},
		{name: "20 decimals", body: createBody(kv{"amount", `12.50000000000000000001`}), status: 422, code: "amount_too_many_decimals", field: "amount"},
		{name: "0.0001 BHD", body: createBody(kv{"amount", `0.0001`}, kv{"currency", `"BHD"`}), status: 422, code: "amount_too_many_decimals", field: "amount"},
		{name: "zero JPY", body: createBody(kv{"amount", `0`}, kv{"currency", `"JPY"`}), status: 422, code: "amount_must_be_positive", field: "amount"},
		{name: "minus zero string", body: createBody(kv{"amount", `"-0.00"`}), status: 422, code: "amount_must_be_positive", field: "amount"},
		{name: "negative overflow", body: createBody(kv{"amount", `"-92233720368547758.09"`}), status: 422, code: "amount_out_of_range", field: "amount"},
		{name: "2^63 JPY", body: createBody(kv{"amount", `9223372036854775808`}, kv{"currency", `"JPY"`}), status: 422, code: "amount_out_of_range", field: "amount"},

		// currencies
		{name: "full-width currency", body: createBody(kv{"currency", `"ＵＳＤ"`}), status: 422, code: "currency_invalid", field: "currency"},
		{name: "dotless i is not an ASCII letter", body: createBody(kv{"currency", `"ınr"`}), status: 422, code: "currency_invalid", field: "currency"},
		{name: "long s is not an ASCII letter", body: createBody(kv{"amount", `1`}, kv{"currency", `"ſek"`}), status: 422, code: "currency_invalid", field: "currency"},
		{name: "XXX (no currency)", body: createBody(kv{"currency", `"XXX"`}), status: 422, code: "currency_unknown", field: "currency"},
		{name: "XTS (testing code)", body: createBody(kv{"currency", `"XTS"`}), status: 422, code: "currency_unknown", field: "currency"},
		{name: "NUL in currency", body: createBody(kv{"currency", `"US\u0000"`}), status: 422, code: "string_contains_nul"},

		// long, bidi-override and NUL text in the other members
		{name: "payment_method_id 10k chars", body: createBody(kv{"payment_method_id", q(long(10000))}), status: 422, code: "payment_method_id_too_long", field: "payment_method_id"},
		{name: "idempotency_key 10k chars", body: createBody(kv{"idempotency_key", q(long(10000))}), status: 422, code: "idempotency_key_too_long", field: "idempotency_key"},
		{name: "metadata key 10k chars", body: createBody(meta(`{` + q(long(10000)) + `:"v"}`)), status: 422, code: "metadata_key_invalid", field: "metadata"},
		{name: "metadata value 10k chars", body: createBody(meta(`{"a":` + q(long(10000)) + `}`)), status: 422, code: "metadata_value_too_long", field: "metadata"},
		{name: "metadata value RTL override", body: createBody(meta(`{"a":"\u202edecoy"}`)), status: 422, code: "metadata_invalid_characters", field: "metadata"},
		{name: "metadata key RTL override", body: createBody(meta(`{"\u202ea":"v"}`)), status: 422, code: "metadata_invalid_characters", field: "metadata"},
		{name: "metadata value escape char", body: createBody(meta(`{"a":"x\u001b[31my"}`)), status: 422, code: "metadata_invalid_characters", field: "metadata"},
		{name: "metadata key newline", body: createBody(meta(`{"a\nb":"v"}`)), status: 422, code: "metadata_invalid_characters", field: "metadata"},
		{name: "payment_method_id RTL override", body: createBody(kv{"payment_method_id", q("pm_\u202evisa")}), status: 422, code: "payment_method_id_invalid_characters", field: "payment_method_id"},
		{name: "idempotency_key RTL override", body: createBody(kv{"idempotency_key", q("k\u202e1")}), status: 422, code: "idempotency_key_invalid_characters", field: "idempotency_key"},
		{name: "NUL in payment_method_id", body: createBody(kv{"payment_method_id", `"pm\u0000"`}), status: 422, code: "string_contains_nul"},
		{name: "NUL in idempotency_key", body: createBody(kv{"idempotency_key", `"k\u0000"`}), status: 422, code: "string_contains_nul"},

		// SQL where the value is checked against a list
		{name: "injection as currency", body: createBody(kv{"currency", q("USD'; DROP TABLE payments;--")}), status: 422, code: "currency_invalid", field: "currency"},
		{name: "injection as payment_method_type", body: createBody(kv{"payment_method_type", q("CARD' OR '1'='1")}), status: 422, code: "payment_method_type_invalid", field: "payment_method_type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, h)
		})
	}
	t.Cleanup(func() {
		if n := countPayments(t, h, h.TenantA); n != 0 {
			t.Errorf("bad input created %d payments", n)
		}
	})
}
