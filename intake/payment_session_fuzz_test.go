package intake

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzSessionRequest: the session decoders (create and submit) never panic
// and either refuse a body with a complete 4xx or accept one JSON object of
// known members whose normalized form keeps every limit: integer amounts
// in range, texts within their lengths, URLs absolute http(s), a known
// currency, enabled methods payd pays with, expires_on in the future; and
// the submit's normalized form (what its fingerprint and stored answer are
// built from) never holds session_data.
func FuzzSessionRequest(f *testing.F) {
	for _, seed := range []string{
		`{"amount":1250,"currency":"USD","billing":{"address":{"country":"GB"}},"success_url":"https://a.example/ok","failure_url":"https://a.example/no"}`,
		`{"amount":0,"currency":"JPY","billing":{"address":{"country":"JP"}},"success_url":"http://x/y","failure_url":"http://x/z","items":[{"name":"a","quantity":1,"unit_price":0}],"metadata":{"a":1,"b":"c","d":true},"expires_on":"2030-01-01T00:00:00Z"}`,
		`{"amount":12.5,"currency":"usd"}`,
		`{"amount":-1,"currency":"BHD","enabled_payment_methods":["ach"],"disabled_payment_methods":["card"]}`,
		`{"amount":1e3,"currency":"EUR","shipping":"x","customer_retry":{"max_attempts":3},"3ds":{"enabled":true}}`,
		`{"session_data":"sandbox:pm_card_visa","amount":1250,"ip_address":"::1"}`,
		`{"session_data":"sandbox:ach:021000021:123456789","amount":1,"ip_address":"300.1.1.1","reference":"r"}`,
		`{"amount_allocations":[{"id":"e","amount":1}],"processing_channel_id":"pc_aaaaaaaaaaaaaaaaaaaaaaaaaa"}`,
		`{"amount":99999999999999999999}`, `[]`, `{"Amount":1}`, `{"amount":1,"amount":2}`,
	} {
		f.Add([]byte(seed))
	}
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	lim := limits{now: func() time.Time { return now }, maxAmount: fuzzMaxAmount}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := checkBody(body, &createSessionRequest{}, lim)
		if err != nil {
			checkRefusal(t, err)
		} else {
			acceptedObject[createSessionRequest](t, body)
			switch {
			case v.Amount.Minor < 0 || v.Amount.Minor > fuzzMaxAmount:
				t.Fatalf("accepted amount %d", v.Amount.Minor)
			case checkCurrency(v.Amount.Currency) != "":
				t.Fatalf("accepted currency %q", v.Amount.Currency)
			case len([]rune(v.Reference)) > maxSessionReference || len([]rune(v.Description)) > maxSessionDescription ||
				len([]rune(v.DisplayName)) > maxSessionDisplayName:
				t.Fatalf("accepted a text past its limit: %+v", v)
			case checkURL(&v.SuccessURL) != "" || checkURL(&v.FailureURL) != "":
				t.Fatalf("accepted URLs %q %q", v.SuccessURL, v.FailureURL)
			case len(v.EnabledMethods) == 0 || v.RetryLimit < 1 || v.RetryLimit > maxSessionRetries:
				t.Fatalf("accepted %+v", v)
			case v.ExpiresOn != nil && !v.ExpiresOn.After(now):
				t.Fatalf("accepted expires_on %v", v.ExpiresOn)
			case !json.Valid(v.Request):
				t.Fatalf("stored request is not JSON: %q", v.Request)
			}
			for _, m := range v.EnabledMethods {
				if m != "card" && m != "ach" {
					t.Fatalf("enabled method %q", m)
				}
			}
		}
		for _, page := range []bool{false, true} {
			sv, err := checkBody(body, &submitSessionRequest{page: page}, lim)
			if err != nil {
				checkRefusal(t, err)
				continue
			}
			acceptedObject[submitSessionRequest](t, body)
			if sv.SessionData == "" || len(sv.SessionData) > maxSessionData {
				t.Fatalf("accepted session_data of %d bytes", len(sv.SessionData))
			}
			if len(sv.IPAddress) > maxIPAddress {
				t.Fatalf("accepted ip_address %q", sv.IPAddress)
			}
			b, _ := json.Marshal(sv)
			if strings.Contains(string(b), sv.SessionData) && len(sv.SessionData) > 3 {
				t.Fatalf("the normalized submit holds session_data: %s", b)
			}
		}
	})
}
