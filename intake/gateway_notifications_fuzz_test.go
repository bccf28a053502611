package intake

import (
	"errors"
	"testing"
	"time"
)

// FuzzGatewayNotificationDecode: the notification decoder (strict decode,
// then valid) never panics, answers only 400 or 422 for what it refuses,
// and whatever it accepts is within the bounds the table and the TaskID
// rely on. Seeds: the f.Add calls and testdata/fuzz/FuzzGatewayNotificationDecode.
func FuzzGatewayNotificationDecode(f *testing.F) {
	for _, s := range []string{
		`{"id":"evt_1","type":"charge.succeeded","idempotency_key":"pay_1:1","occurred_at":"2026-11-22T10:00:00Z"}`,
		`{"id":"evt_2","type":"payment.returned","gateway_reference":"ch_9","occurred_at":"2026-11-22T10:00:00.123456789+01:00"}`,
		`{"id":"evt_3","type":"x","idempotency_key":null,"gateway_reference":"r","occurred_at":"2026-11-22T10:00:00Z"}`,
		`{"id":"","type":"","occurred_at":""}`,
		`{"id":"a","id":"b"}`,
		`{"ID":"evt_1"}`,
		`{"id":"evt\u0000"}`,
		`{"id":1}`,
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req gatewayNotificationRequest
		err := decode(body, &req)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || (ae.Status != 400 && ae.Status != 422) || len(ae.Codes) == 0 {
				t.Fatalf("decode(%q) = %v", body, err)
			}
			return
		}
		_, bad := req.valid(limits{})
		if len(bad) > 0 {
			if ae := validation(bad); ae.Status != 422 || len(ae.Codes) == 0 {
				t.Fatalf("validation(%v) = %+v", bad, ae)
			}
			return
		}
		key, ref := str(req.IdempotencyKey), str(req.GatewayReference)
		if len(req.ID) == 0 || len(req.ID) > 100 || len(req.Type) == 0 || len(req.Type) > 64 ||
			len(key) > 200 || len(ref) > 200 || key+ref == "" {
			t.Fatalf("accepted out of bounds: %+v", req)
		}
		for _, s := range []string{req.ID, req.Type, key, ref} {
			for i := 0; i < len(s); i++ {
				if s[i] < 0x21 || s[i] > 0x7e {
					t.Fatalf("accepted a non-token %q", s)
				}
			}
		}
		if at, err := time.Parse(time.RFC3339Nano, req.OccurredAt); err != nil || at.Year() < 2000 || at.Year() > 2999 {
			t.Fatalf("accepted occurred_at %q", req.OccurredAt)
		}
	})
}
