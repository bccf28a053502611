package intake

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/payd/payd/payment"
)

// TestPayoutStatusTable: the canonical → seed 002 table names every
// canonical status exactly once, only with seed 002 words, and shows
// SUCCEEDED as SETTLED on a bank rail and as PAID when recorded as paid.
func TestPayoutStatusTable(t *testing.T) {
	t.Parallel()
	seed := map[payment.PayoutStatus]bool{"INITIATED": true, "PROCESSING": true, "SENT": true, "SETTLED": true, "RETURNED": true,
		"FAILED": true, "CANCELED": true, "PAID": true}
	seen := map[payment.Status]int{}
	for _, row := range payoutStatusNames {
		seen[row.canonical]++
		if !seed[row.rail] || !seed[row.paid] {
			t.Errorf("%s maps to %q / %q, not seed 002 statuses", row.canonical, row.rail, row.paid)
		}
	}
	for _, st := range payment.Statuses {
		if seen[st] != 1 {
			t.Errorf("canonical %s appears %d times in the table, want 1", st, seen[st])
		}
	}
	want := map[payment.Status][3]string{ // ACH payout, ACH imported as PAID, CARD payout
		payment.StatusPending:           {"INITIATED", "INITIATED", "INITIATED"},
		payment.StatusProcessing:        {"PROCESSING", "PROCESSING", "PROCESSING"},
		payment.StatusRequiresAction:    {"PROCESSING", "PROCESSING", "PROCESSING"},
		payment.StatusRequiresReview:    {"PROCESSING", "PROCESSING", "PROCESSING"},
		payment.StatusSent:              {"SENT", "SENT", "SENT"},
		payment.StatusSucceeded:         {"SETTLED", "PAID", "PAID"},
		payment.StatusPartiallyRefunded: {"SETTLED", "PAID", "PAID"},
		payment.StatusRefunded:          {"RETURNED", "RETURNED", "RETURNED"},
		payment.StatusReturned:          {"RETURNED", "RETURNED", "RETURNED"},
		payment.StatusFailed:            {"FAILED", "FAILED", "FAILED"},
		payment.StatusCanceled:          {"CANCELED", "CANCELED", "CANCELED"},
	}
	for _, st := range payment.Statuses {
		got := [3]string{payoutStatus(st, payment.MethodACH, ""), payoutStatus(st, payment.MethodACH, "PAID"),
			payoutStatus(st, payment.MethodCard, "")}
		if got != want[st] {
			t.Errorf("%s → %v, want %v", st, got, want[st])
		}
	}
	// every bank rail settles; every other method is paid
	for name, m := range payoutMethods {
		got := payoutStatus(payment.StatusSucceeded, m, "")
		if (got == "SETTLED") != m.BankRail() || (got == "PAID") == m.BankRail() {
			t.Errorf("%s succeeded → %s", name, got)
		}
		if imported := payoutStatus(payment.StatusSucceeded, m, "SETTLED"); imported != got {
			t.Errorf("%s imported as SETTLED → %s, want %s", name, imported, got)
		}
	}
}

// TestPayoutStatusFilter: the list filter inverts the table.
func TestPayoutStatusFilter(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	cases := map[string]struct {
		statuses []payment.Status
		paid     *bool
	}{
		"INITIATED":  {[]payment.Status{payment.StatusPending}, nil},
		"PROCESSING": {[]payment.Status{payment.StatusProcessing, payment.StatusRequiresAction, payment.StatusRequiresReview}, nil},
		"SENT":       {[]payment.Status{payment.StatusSent}, nil},
		"SETTLED":    {[]payment.Status{payment.StatusSucceeded, payment.StatusPartiallyRefunded}, &no},
		"PAID":       {[]payment.Status{payment.StatusSucceeded, payment.StatusPartiallyRefunded}, &yes},
		"RETURNED":   {[]payment.Status{payment.StatusRefunded, payment.StatusReturned}, nil},
		"FAILED":     {[]payment.Status{payment.StatusFailed}, nil},
		"CANCELED":   {[]payment.Status{payment.StatusCanceled}, nil},
		"PENDING":    {nil, nil},
	}
	for v, want := range cases {
		st, paid := payoutStatusesNamed(v)
		if d := cmp.Diff(want.statuses, st); d != "" {
			t.Errorf("%s statuses (-want +got):\n%s", v, d)
		}
		if (paid == nil) != (want.paid == nil) || (paid != nil && *paid != *want.paid) {
			t.Errorf("%s paid = %v, want %v", v, paid, want.paid)
		}
	}
}
