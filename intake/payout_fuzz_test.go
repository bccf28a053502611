package intake

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/payd/payd/payment"
)

// fuzzNow is the clock of the payout fuzz tests.
var fuzzNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

const validPayoutBody = `{"external_payment_id":"ext-1","method":"ACH","total_amount":"100.00","currency":"USD",` +
	`"beneficiary_name":"Ada","beneficiary_account":"123456789","beneficiary_routing":"021000021",` +
	`"lines":[{"invoice_token":"3fa85f64-5717-4562-b3fc-2c963f66afa6","applied_amount":"40"}]}`

var payoutSeeds = []decodeSeed{
	{"valid", validPayoutBody, 0, ""},
	{"seed example shape", `{"external_payment_id":"string","external_source":"UNKNOWN","status":"INITIATED","method":"OTHER",` +
		`"total_amount":1,"currency":"usd","scheduled_at":"2026-07-29T15:51:28.071Z","payment_reference":"string",` +
		`"bank_reference":"string","beneficiary_name":"string","beneficiary_bank_name":"string",` +
		`"beneficiary_bank_country":"DE","beneficiary_swift_bic":"DEUTDEFF","beneficiary_iban":"DE89370400440532013000",` +
		`"payer_bank_name":"string","payer_bank_country":"US","payer_account":"12345678","payer_routing":"021000021",` +
		`"remittance_memo":"string","remittance_advice_url":"https://example.com/a","lines":[{"invoice_token":` +
		`"3fa85f64-5717-4562-b3fc-2c963f66afa6","applied_amount":0.5,"applied_currency":"USD","fx_rate_line":1,` +
		`"fx_at_line":"2026-07-29T15:51:28.071Z","discount_amount":0,"discount_currency":"USD","fee_amount_line":0,` +
		`"fee_currency_line":"USD","remittance_label":"Invoice","remittance_value":"string","notes":"string"}],"replace_lines":true}`, 0, ""},
	{"import", `{"external_payment_id":"e","status":"RETURNED","method":"SEPA","total_amount":"1","currency":"EUR",` +
		`"sent_at":"2026-01-01T00:00:00Z","settled_at":"2026-01-02T00:00:00+01:00","returned_at":"2026-01-05T00:00:00Z",` +
		`"sepa_end_to_end_id":"E2E/1"}`, 0, ""},
	{"check", `{"external_payment_id":"c","method":"CHECK","total_amount":"5","currency":"USD","beneficiary_name":"B",` +
		`"beneficiary_account":"1234","check_number":"77","check_stop_payment":false}`, 0, ""},
	{"malformed", `{"total_amount":`, 400, "body_malformed"},
	{"empty", ``, 400, "body_empty"},
	{"array", `[]`, 400, "body_not_object"},
	{"duplicate key", `{"method":"ACH","method":"WIRE"}`, 400, "body_duplicate_key"},
	{"duplicate in a line", `{"lines":[{"applied_amount":"1","applied_amount":"2"}]}`, 400, "body_duplicate_key"},
	{"case-variant member", strings.Replace(validPayoutBody, `"method"`, `"Method"`, 1), 422, "unknown_field"},
	{"case-variant line member", strings.Replace(validPayoutBody, `"applied_amount"`, `"Applied_Amount"`, 1), 422, "unknown_field"},
	{"NUL", `{"beneficiary_name":"a\u0000"}`, 422, "string_contains_nul"},
	{"too deep", `{"lines":` + strings.Repeat(`[`, 20) + strings.Repeat(`]`, 20) + `}`, 400, "body_too_deep"},
	{"lines object", `{"lines":{}}`, 422, "lines_invalid_type"},
	{"time number", strings.Replace(validPayoutBody, `}]}`, `}],"scheduled_at":5}`, 1), 422, "scheduled_at_invalid_type"},
	{"bool string", strings.Replace(validPayoutBody, `}]}`, `}],"replace_lines":"no"}`, 1), 422, "replace_lines_invalid_type"},
	{"amount exponent", strings.Replace(validPayoutBody, `"100.00"`, `1e2`, 1), 422, "total_amount_exponent_not_allowed"},
	{"amount overflow", strings.Replace(validPayoutBody, `"100.00"`, `"92233720368547758.08"`, 1), 422, "total_amount_out_of_range"},
	{"line overflow", strings.Replace(validPayoutBody, `"40"`, `99999999999999999999`, 1), 422, "applied_amount_out_of_range"},
	{"lines exceed", strings.Replace(validPayoutBody, `"40"`, `"100.01"`, 1), 422, "lines_exceed_total_amount"},
	{"IBAN checksum", strings.Replace(validPayoutBody, `"beneficiary_name"`, `"beneficiary_iban":"DE00370400440532013000","beneficiary_name"`, 1), 422, "beneficiary_iban_checksum_failed"},
	{"BIC", strings.Replace(validPayoutBody, `"beneficiary_name"`, `"beneficiary_swift_bic":"DEUTDEFF5000","beneficiary_name"`, 1), 422, "beneficiary_swift_bic_too_long"},
	{"ABA", strings.Replace(validPayoutBody, `"021000021"`, `"021000022"`, 1), 422, "beneficiary_routing_checksum_failed"},
	{"country", strings.Replace(validPayoutBody, `"beneficiary_name"`, `"payer_bank_country":"ZZ","beneficiary_name"`, 1), 422, "payer_bank_country_unknown"},
	{"check number on ACH", strings.Replace(validPayoutBody, `"beneficiary_name"`, `"check_number":"1","beneficiary_name"`, 1), 422, "check_number_not_allowed_for_method"},
	{"RTL override", strings.Replace(validPayoutBody, `"Ada"`, `"Ada\u202e"`, 1), 422, "beneficiary_name_invalid_characters"},
	{"injection", strings.Replace(validPayoutBody, `"ext-1"`, `"'; DROP TABLE payments; --"`, 1), 0, ""},
}

// decodePayout is what handleCreatePayout does with a body before any I/O.
func decodePayout(body []byte) (validPayout, error) {
	return checkBody(body, &createPayoutRequest{}, fuzzLimits)
}

func TestDecodePayoutSeeds(t *testing.T) {
	t.Parallel()
	for _, s := range payoutSeeds {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodePayout([]byte(s.body))
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

// FuzzDecodePayout: for any bytes, decoding and validating a payout never
// panics, refuses only with a complete 4xx, and accepts only what the rest
// of the system can hold: known members, exact money within bounds, lines
// within the amount, text Postgres can store, bank identifiers that pass
// their checks, times in order.
func FuzzDecodePayout(f *testing.F) {
	for _, s := range payoutSeeds {
		f.Add([]byte(s.body))
	}
	known := jsonFields(reflect.TypeFor[createPayoutRequest]())
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := decodePayout(body)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T) is not an *apiError", err, err)
			}
			if ae.Status < 400 || ae.Status > 499 || len(ae.Codes) == 0 || ae.Message == "" || !utf8.ValidString(ae.Message) {
				t.Fatalf("refusal %+v is not a complete 4xx", ae)
			}
			if ae.Status == 422 && len(ae.Codes) > len(ae.Fields) && len(ae.Fields) > 0 {
				t.Fatalf("more codes than fields: %+v", ae)
			}
			return
		}
		var members map[string]json.RawMessage
		if !json.Valid(body) || json.Unmarshal(body, &members) != nil {
			t.Fatalf("accepted a non-object %q", body)
		}
		for k := range members {
			if _, ok := known[k]; !ok {
				t.Fatalf("accepted member %q", k)
			}
		}
		if v.Amount.Minor <= 0 || v.Amount.Minor > fuzzMaxAmount || !payment.KnownCurrency(v.Amount.Currency) {
			t.Fatalf("accepted amount %+v", v.Amount)
		}
		if _, ok := payoutMethods[string(v.Method)]; !ok || !v.Status.Known() || v.ExternalPaymentID == "" {
			t.Fatalf("accepted method %q status %q external id %q", v.Method, v.Status, v.ExternalPaymentID)
		}
		var sum int64
		for _, l := range v.Lines {
			if l.AppliedAmount <= 0 || l.PaymentAmount <= 0 || !strings.HasPrefix(l.InvoiceID, "inv_") || len(l.InvoiceID) != 36 ||
				!payment.KnownCurrency(l.AppliedCurrency) || (l.AppliedCurrency != v.Amount.Currency && l.FXRate == "") {
				t.Fatalf("accepted line %+v", l)
			}
			sum += l.PaymentAmount
		}
		if sum > v.Amount.Minor {
			t.Fatalf("accepted lines of %d over an amount of %d", sum, v.Amount.Minor)
		}
		f := v.Fields
		for _, s := range []string{v.ExternalPaymentID, v.ExternalSource, f.BeneficiaryName, f.BeneficiaryAccount,
			f.PayerAccount, f.RemittanceMemo, f.PaymentReference, f.BankReference, f.SEPAEndToEndID, f.RTPTraceID} {
			if strings.ContainsRune(s, 0) || strings.ContainsRune(s, '\u202e') || !utf8.ValidString(s) {
				t.Fatalf("accepted text %q", s)
			}
		}
		if f.BeneficiaryIBAN != "" && payment.CheckIBAN(f.BeneficiaryIBAN) != "" {
			t.Fatalf("accepted IBAN %q", f.BeneficiaryIBAN)
		}
		if f.BeneficiarySwiftBIC != "" && (payment.CheckBIC(f.BeneficiarySwiftBIC) != "" || !bankCountries[f.BeneficiarySwiftBIC[4:6]]) {
			t.Fatalf("accepted BIC %q", f.BeneficiarySwiftBIC)
		}
		for _, c := range []string{f.BeneficiaryBankCountry, f.PayerBankCountry} {
			if c != "" && !bankCountries[c] {
				t.Fatalf("accepted country %q", c)
			}
		}
		if f.CheckNumber != "" && v.Method != payment.MethodCheck || f.ACHTraceNumber != "" && v.Method != payment.MethodACH ||
			f.SEPAEndToEndID != "" && v.Method != payment.MethodSEPA || f.RTPTraceID != "" && v.Method != payment.MethodRTP {
			t.Fatalf("accepted a reference of another rail on %s: %+v", v.Method, f)
		}
		if f.SentAt != nil && f.SettledAt != nil && f.SettledAt.Before(*f.SentAt) {
			t.Fatalf("accepted settled_at before sent_at")
		}
		if v.live() && (f.BeneficiaryName == "" || f.beneficiary().AccountKey(v.Method) == "") {
			t.Fatalf("accepted a live %s payout without a beneficiary account", v.Method)
		}
		if fp := fingerprint("POST /v1/payouts", v); len(fp) != 32 {
			t.Fatalf("fingerprint length %d", len(fp))
		}
		if _, err := json.Marshal(v.Fields); err != nil {
			t.Fatalf("details do not encode: %v", err)
		}
	})
}
