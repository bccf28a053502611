package intake_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/payd/payd/internal/testenv"
)

// TestSessionLimits: every limit of seed 003 (DESIGN.md §5) is refused with
// its own error code, in the seed's error shape, and the value just inside
// each limit is accepted.
func TestSessionLimits(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{NoWorker: true})
	long := func(n int) string { return strings.Repeat("x", n) }
	url := func(n int) string { return "https://m.example/" + long(n-len("https://m.example/")) }
	meta := func(n int) map[string]any {
		m := map[string]any{}
		for i := range n {
			m["k"+string(rune('a'+i%26))+strings.Repeat("z", i/26)] = "v"
		}
		return m
	}
	pc := "pc_" + strings.Repeat("a", 26)
	for _, c := range []struct {
		name string
		over map[string]any
		code string // "" accepted
	}{
		{"amount missing", map[string]any{"amount": nil}, "amount_required"},
		{"amount negative", map[string]any{"amount": -1}, "amount_negative"},
		{"amount decimal", map[string]any{"amount": json.RawMessage(`12.5`)}, "amount_not_integer"},
		{"amount exponent", map[string]any{"amount": json.RawMessage(`1e3`)}, "amount_invalid"},
		{"amount string", map[string]any{"amount": "1250"}, "amount_invalid_type"},
		{"amount over max", map[string]any{"amount": json.RawMessage(`100000000000001`)}, "amount_too_large"},
		{"amount past int64", map[string]any{"amount": json.RawMessage(`99999999999999999999`)}, "amount_too_large"},
		{"amount max", map[string]any{"amount": json.RawMessage(`100000000000000`), "items": nil}, ""},
		{"amount 1", map[string]any{"amount": 1, "items": nil}, ""},
		{"amount 0", map[string]any{"amount": 0, "items": nil}, ""},
		{"currency missing", map[string]any{"currency": nil}, "currency_required"},
		{"currency 4 letters", map[string]any{"currency": "USDX"}, "currency_invalid"},
		{"currency unknown", map[string]any{"currency": "XYZ"}, "currency_unknown"},
		{"currency JPY", map[string]any{"currency": "JPY", "amount": 1250}, ""},
		{"currency BHD", map[string]any{"currency": "BHD", "amount": 1250}, ""},
		{"billing missing", map[string]any{"billing": nil}, "billing_required"},
		{"billing no country", map[string]any{"billing": map[string]any{"address": map[string]any{"city": "x"}}}, "billing_address_country_required"},
		{"billing country 3", map[string]any{"billing": map[string]any{"address": map[string]any{"country": "GBR"}}}, "billing_address_country_invalid"},
		{"billing unknown field", map[string]any{"billing": map[string]any{"nope": 1}}, "unknown_field"},
		{"success_url missing", map[string]any{"success_url": nil}, "success_url_required"},
		{"success_url 1025", map[string]any{"success_url": url(1025)}, "success_url_too_long"},
		{"success_url 1024", map[string]any{"success_url": url(1024)}, ""},
		{"success_url relative", map[string]any{"success_url": "/ok"}, "success_url_invalid"},
		{"success_url javascript", map[string]any{"success_url": "javascript:alert(1)"}, "success_url_invalid"},
		{"failure_url missing", map[string]any{"failure_url": nil}, "failure_url_required"},
		{"failure_url 1025", map[string]any{"failure_url": url(1025)}, "failure_url_too_long"},
		{"payment_type bad", map[string]any{"payment_type": "Sometimes"}, "payment_type_invalid"},
		{"payment_type MOTO", map[string]any{"payment_type": "MOTO"}, ""},
		{"reference 51", map[string]any{"reference": long(51)}, "reference_too_long"},
		{"reference 50", map[string]any{"reference": long(50)}, ""},
		{"description 101", map[string]any{"description": long(101)}, "description_too_long"},
		{"description 100", map[string]any{"description": long(100)}, ""},
		{"display_name 256", map[string]any{"display_name": long(256)}, "display_name_too_long"},
		{"display_name 255", map[string]any{"display_name": long(255)}, ""},
		{"processing_channel_id bad", map[string]any{"processing_channel_id": "pc_short"}, "processing_channel_id_invalid"},
		{"processing_channel_id good", map[string]any{"processing_channel_id": pc}, ""},
		{"expires_on bad", map[string]any{"expires_on": "tomorrow"}, "expires_on_invalid"},
		{"expires_on past", map[string]any{"expires_on": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)}, "expires_on_in_past"},
		{"expires_on too far", map[string]any{"expires_on": time.Now().Add(31 * 24 * time.Hour).UTC().Format(time.RFC3339)}, "expires_on_too_far"},
		{"expires_on good", map[string]any{"expires_on": time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)}, ""},
		{"enabled unknown", map[string]any{"enabled_payment_methods": []string{"bitcoin"}}, "enabled_payment_methods_invalid"},
		{"enabled none payd has", map[string]any{"enabled_payment_methods": []string{"ideal"}}, "payment_methods_none_supported"},
		{"disabled unknown", map[string]any{"disabled_payment_methods": []string{"bitcoin"}}, "disabled_payment_methods_invalid"},
		{"all disabled", map[string]any{"disabled_payment_methods": []string{"card", "ach"}}, "payment_methods_none_supported"},
		{"items 101", map[string]any{"items": make([]map[string]any, 101)}, "items_too_many"},
		{"item no name", map[string]any{"items": []any{map[string]any{"quantity": 1}}}, "items_name_required"},
		{"item quantity 0", map[string]any{"items": []any{map[string]any{"name": "a", "quantity": 0}}}, "items_quantity_invalid"},
		{"item negative price", map[string]any{"items": []any{map[string]any{"name": "a", "unit_price": -1}}}, "items_amount_invalid"},
		{"item fractional price", map[string]any{"items": []any{map[string]any{"name": "a", "unit_price": 1.5}}}, "items_invalid_type"},
		{"allocations over amount", map[string]any{"amount_allocations": []any{map[string]any{"id": "ent_1", "amount": 1000},
			map[string]any{"id": "ent_2", "amount": 251}}}, "amount_allocations_exceed_amount"},
		{"allocations equal amount", map[string]any{"amount_allocations": []any{map[string]any{"id": "ent_1", "amount": 1000},
			map[string]any{"id": "ent_2", "amount": 250}}}, ""},
		{"allocation no id", map[string]any{"amount_allocations": []any{map[string]any{"amount": 1}}}, "amount_allocations_invalid"},
		{"customer_retry 0", map[string]any{"customer_retry": map[string]any{"max_attempts": 0}}, "customer_retry_max_attempts_invalid"},
		{"customer_retry 11", map[string]any{"customer_retry": map[string]any{"max_attempts": 11}}, "customer_retry_max_attempts_invalid"},
		{"metadata 19 fields", map[string]any{"metadata": meta(19)}, "metadata_too_many_fields"},
		{"metadata 18 fields", map[string]any{"metadata": meta(18)}, ""},
		{"metadata value 256", map[string]any{"metadata": map[string]any{"k": long(256)}}, "metadata_value_too_long"},
		{"metadata value 255", map[string]any{"metadata": map[string]any{"k": long(255)}}, ""},
		{"metadata object value", map[string]any{"metadata": map[string]any{"k": map[string]any{}}}, "metadata_value_invalid"},
		{"locale bad", map[string]any{"locale": "english"}, "locale_invalid"},
		{"locale ja-JP", map[string]any{"locale": "ja-JP"}, ""},
		{"3ds bad", map[string]any{"3ds": map[string]any{"exemption": long(51)}}, "3ds_invalid"},
		{"capture false", map[string]any{"capture": false}, "capture_false_not_supported"},
		{"capture_on", map[string]any{"capture_on": "2030-01-01T00:00:00Z"}, "capture_on_not_supported"},
		{"shipping not object", map[string]any{"shipping": "home"}, "shipping_invalid_type"},
		{"shipping object", map[string]any{"shipping": map[string]any{"address": map[string]any{"country": "GB"}}}, ""},
		{"customer email", map[string]any{"customer": map[string]any{"email": "nope"}}, "customer_email_invalid"},
		{"invoice unknown", map[string]any{"invoice_id": "inv_nope"}, "invoice_not_found"},
		{"invoice with amount 0", map[string]any{"invoice_id": testenv.TestInvoice, "amount": 0, "items": nil}, "invoice_id_requires_amount"},
		{"invoice other currency", map[string]any{"invoice_id": testenv.TestInvoice, "currency": "EUR"}, "currency_mismatch"},
		{"invoice", map[string]any{"invoice_id": testenv.TestInvoice}, ""},
		{"field no version has", map[string]any{"colour": "red"}, "unknown_field"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.Do("POST", "/v1/payment-sessions", h.KeyA, sessionBody(c.over), nil)
			if c.code == "" {
				jsonObj(t, r, 201)
				return
			}
			checkEnvelope(t, r, 422, c.code)
		})
	}
}

// TestSessionSubmitLimits: the submit's limits, each with its own code.
func TestSessionSubmitLimits(t *testing.T) {
	t.Parallel()
	h := sessionHarness(t, testenv.Options{NoWorker: true})
	id := createSession(t, h, nil)["id"].(string)
	path := "/v1/payment-sessions/" + id + "/submit"
	for _, c := range []struct {
		name string
		body map[string]any
		code string
	}{
		{"session_data missing", map[string]any{"amount": 1250}, "session_data_required"},
		{"session_data empty", map[string]any{"session_data": "", "amount": 1250}, "session_data_required"},
		{"session_data too long", map[string]any{"session_data": strings.Repeat("x", 1025), "amount": 1250}, "session_data_too_long"},
		{"session_data unknown", map[string]any{"session_data": "tok_anything", "amount": 1250}, "session_data_invalid"},
		{"session_data bad card", map[string]any{"session_data": "sandbox:pm_card_gold", "amount": 1250}, "session_data_invalid"},
		{"session_data bad routing", map[string]any{"session_data": "sandbox:ach:12345:123456789", "amount": 1250}, "session_data_invalid"},
		{"session_data bad account", map[string]any{"session_data": "sandbox:ach:021000021:12", "amount": 1250}, "session_data_invalid"},
		{"session_data bad nonce", map[string]any{"session_data": "sandbox:pm_card_visa:a b", "amount": 1250}, "session_data_invalid"},
		{"amount missing", map[string]any{"session_data": "sandbox:pm_card_visa"}, "amount_required"},
		{"amount other", map[string]any{"session_data": "sandbox:pm_card_visa", "amount": 1249}, "amount_mismatch"},
		{"amount negative", map[string]any{"session_data": "sandbox:pm_card_visa", "amount": -1}, "amount_negative"},
		{"ip too long", map[string]any{"session_data": "sandbox:pm_card_visa", "amount": 1250, "ip_address": strings.Repeat("1", 46)}, "ip_address_too_long"},
		{"ip invalid", map[string]any{"session_data": "sandbox:pm_card_visa", "amount": 1250, "ip_address": "300.1.1.1"}, "ip_address_invalid"},
		{"reference 51", map[string]any{"session_data": "sandbox:pm_card_visa", "amount": 1250, "reference": strings.Repeat("r", 51)}, "reference_too_long"},
		{"items bad", map[string]any{"session_data": "sandbox:pm_card_visa", "amount": 1250, "items": []any{map[string]any{"quantity": 1}}}, "items_name_required"},
		{"3ds bad", map[string]any{"session_data": "sandbox:pm_card_visa", "amount": 1250, "3ds": map[string]any{"exemption": strings.Repeat("e", 51)}}, "3ds_invalid"},
		{"unknown field", map[string]any{"session_data": "sandbox:pm_card_visa", "amount": 1250, "card_number": "4242"}, "unknown_field"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, _ := json.Marshal(c.body)
			checkEnvelope(t, h.Do("POST", path, h.KeyA, b, nil), 422, c.code)
		})
	}
	// an IPv6 address of 45 characters is good, and nothing above left the session locked
	b, _ := json.Marshal(map[string]any{"session_data": "sandbox:pm_card_visa:n1", "amount": 1250,
		"ip_address": "0000:0000:0000:0000:0000:ffff:192.168.100.228"})
	if r := h.Do("POST", path, h.KeyA, b, nil); r.Status != 202 {
		t.Fatalf("good submit: %d %s", r.Status, r.Body)
	}
	// merchant-level submit of a session that does not exist
	checkEnvelope(t, h.Do("POST", "/v1/payment-sessions/ps_nope/submit", h.KeyA, b, nil), 404, "resource_not_found")
}
