package intake

import (
	"encoding/json"
	"testing"

	"github.com/payd/payd/payment"
)

// FuzzDecodeFlow: a POST /v1/payment-flows body never panics, is refused
// only with a complete 4xx naming its fields, and what it accepts names a
// single_invoice_settlement of one invoice, by id or by external id.
func FuzzDecodeFlow(f *testing.F) {
	for _, s := range []string{
		`{"external_id":"pf_1","invoice":{"id":"inv_abc"},"type":"single_invoice_settlement"}`,
		`{"external_id":"pf_1","invoice":{"external_id":"inv-1"},"type":"single_invoice_settlement"}`,
		`{"external_id":"pf_1","invoice":{"id":"a","external_id":"b"},"type":"single_invoice_settlement"}`,
		`{"external_id":"pf_1","invoice":{},"type":"single_invoice_settlement"}`,
		`{"external_id":"pf_1","invoice":"inv","type":"single_invoice_settlement"}`,
		`{"external_id":"pf_1","invoice":{"id":"x"},"type":"marketplace"}`, `{}`, `[]`, ``, `null`,
		`{"external_id":"\u0000","invoice":{"id":"x"},"type":"single_invoice_settlement"}`,
		`{"external_id":"pf","invoice":{"id":"x","extra":1},"type":"single_invoice_settlement"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := checkBody(body, &createFlowRequest{}, fuzzLimits)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		acceptedObject[createFlowRequest](t, body)
		if v.Type != payment.FlowTypeSingleInvoice || v.ExternalID == "" || !safeText(v.ExternalID) ||
			(v.InvoiceID == "") == (v.InvoiceExternalID == "") {
			t.Fatalf("accepted %+v", v)
		}
		if fp := fingerprint("POST /v1/payment-flows", v); len(fp) != 32 {
			t.Fatalf("fingerprint length %d", len(fp))
		}
	})
}

// FuzzDecodeEndpoint: a webhook endpoint body (create and update) never
// panics, is refused only with a complete 4xx, and what a create accepts
// has a URL and only known event types, deduplicated and sorted.
func FuzzDecodeEndpoint(f *testing.F) {
	for _, s := range []string{
		`{"url":"https://example.com/hook","enabled_events":["*"]}`,
		`{"url":"https://example.com/hook","enabled_events":["payment.succeeded","payment.succeeded"],"description":"d"}`,
		`{"url":"https://example.com/hook","enabled_events":[]}`, `{"url":"","enabled_events":["*"]}`,
		`{"url":"https://example.com/hook","enabled_events":["payment.nope"]}`, `{"disabled":true}`,
		`{"url":"https://example.com/hook","enabled_events":"*"}`, `{}`, `[]`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, create := range []bool{true, false} {
			var v validEndpoint
			var err error
			if create {
				v, err = checkBody(body, &createEndpointRequest{}, fuzzLimits)
			} else {
				v, err = checkBody(body, &updateEndpointRequest{}, fuzzLimits)
			}
			if err != nil {
				checkRefusal(t, err)
				continue
			}
			if create && (v.URL == nil || *v.URL == "" || len(v.EnabledEvents) == 0) {
				t.Fatalf("a create accepted without url or events: %+v", v)
			}
			for i, e := range v.EnabledEvents {
				if !webhookEventTypes[e] || (i > 0 && v.EnabledEvents[i-1] >= e) {
					t.Fatalf("accepted events %v", v.EnabledEvents)
				}
			}
			if _, err := json.Marshal(v); err != nil {
				t.Fatal(err)
			}
		}
	})
}
