package processor_test

import (
	"testing"
	"time"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
)

// TestScenarios runs every sandbox outcome end to end: intake → create →
// submit (→ inquire) (→ settle), on real Postgres and Redis.
func TestScenarios(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	cases := []struct {
		method, pm string
		want       payment.Status
		attempts   int
		code       string
	}{
		{"CARD", "pm_card_visa", payment.StatusSucceeded, 1, ""},
		{"CARD", "pm_card_declined", payment.StatusFailed, 1, "card_declined"},
		{"CARD", "pm_card_insufficient_funds", payment.StatusFailed, 3, "insufficient_funds"},
		{"CARD", "pm_card_flaky", payment.StatusSucceeded, 3, ""},
		{"CARD", "pm_card_timeout_after_charge", payment.StatusSucceeded, 1, ""},
		{"ACH", "ba_123456789", payment.StatusSucceeded, 1, ""},
		{"ACH", "ba_10001", payment.StatusReturned, 1, "returned_R01"},
		{"ACH", "ba_111111119", payment.StatusFailed, 1, "account_invalid"},
		{"OFFLINE", "", payment.StatusSucceeded, 0, ""},
	}
	ids := make([]string, len(cases))
	for i, c := range cases {
		ids[i] = h.CreatePayment(c.method, c.pm, `"12.50"`)
	}
	for i, c := range cases {
		p := h.WaitFinal(ids[i], 20*time.Second)
		if p.Status != c.want || len(p.Attempts) != c.attempts || p.ErrorCode != c.code {
			t.Errorf("%s: got %s, %d attempts, code %q; want %s, %d, %q", c.pm, p.Status, len(p.Attempts), p.ErrorCode, c.want, c.attempts, c.code)
		}
		if got := h.Sandbox.ChargesFor(p.ID); (p.Status == payment.StatusSucceeded && c.method == "CARD") && got != 1 {
			t.Errorf("%s: %d sandbox charges, want 1", c.pm, got)
		}
	}
	if d := h.Sandbox.DoubleCharged(); len(d) != 0 {
		t.Fatalf("double charged: %v", d)
	}
}
