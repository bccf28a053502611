package payment

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// allMethods is every method the schema allows.
var allMethods = []Method{MethodCard, MethodACH, MethodOffline, MethodCredits, MethodWire, MethodSEPA, MethodSWIFT,
	MethodRTP, MethodCheck, MethodVirtualCard, MethodPayPal, MethodOther}

// TestPaymentsStatusTable: every canonical status has a seed-001 word, only
// the seed's six words are used, and the list filter inverts the table.
func TestPaymentsStatusTable(t *testing.T) {
	t.Parallel()
	seed := map[string]bool{"PENDING": true, "PROCESSING": true, "SUCCEEDED": true, "FAILED": true, "REFUNDED": true,
		"PARTIALLY_REFUNDED": true}
	for _, st := range Statuses {
		if n := PaymentsStatusName(st); !seed[n] {
			t.Errorf("%s → %q, not a seed-001 status", st, n)
		}
	}
	want := map[string][]Status{
		"PENDING":            {StatusPending},
		"PROCESSING":         {StatusProcessing, StatusRequiresAction, StatusSent, StatusRequiresReview},
		"SUCCEEDED":          {StatusSucceeded},
		"PARTIALLY_REFUNDED": {StatusPartiallyRefunded},
		"REFUNDED":           {StatusRefunded},
		"FAILED":             {StatusReturned, StatusFailed, StatusCanceled},
		"REQUIRES_REVIEW":    nil, // canonical, but not a seed-001 word
		"processing":         nil,
	}
	for name, w := range want {
		if d := cmp.Diff(w, PaymentsStatusesNamed(name)); d != "" {
			t.Errorf("%s (-want +got):\n%s", name, d)
		}
	}
}

// TestPayoutStatusTable: the canonical → seed 002 table names every
// canonical status exactly once, only with seed 002 words, and shows
// SUCCEEDED as SETTLED on a bank rail and as PAID when recorded as paid.
func TestPayoutStatusTable(t *testing.T) {
	t.Parallel()
	seed := map[PayoutStatus]bool{"INITIATED": true, "PROCESSING": true, "SENT": true, "SETTLED": true, "RETURNED": true,
		"FAILED": true, "CANCELED": true, "PAID": true}
	seen := map[Status]int{}
	for _, row := range payoutStatusNames {
		seen[row.canonical]++
		if !seed[row.rail] || !seed[row.paid] {
			t.Errorf("%s maps to %q / %q, not seed 002 statuses", row.canonical, row.rail, row.paid)
		}
	}
	for _, st := range Statuses {
		if seen[st] != 1 {
			t.Errorf("canonical %s appears %d times in the table, want 1", st, seen[st])
		}
	}
	want := map[Status][3]string{ // ACH payout, ACH imported as PAID, CARD payout
		StatusPending:           {"INITIATED", "INITIATED", "INITIATED"},
		StatusProcessing:        {"PROCESSING", "PROCESSING", "PROCESSING"},
		StatusRequiresAction:    {"PROCESSING", "PROCESSING", "PROCESSING"},
		StatusRequiresReview:    {"PROCESSING", "PROCESSING", "PROCESSING"},
		StatusSent:              {"SENT", "SENT", "SENT"},
		StatusSucceeded:         {"SETTLED", "PAID", "PAID"},
		StatusPartiallyRefunded: {"SETTLED", "PAID", "PAID"},
		StatusRefunded:          {"RETURNED", "RETURNED", "RETURNED"},
		StatusReturned:          {"RETURNED", "RETURNED", "RETURNED"},
		StatusFailed:            {"FAILED", "FAILED", "FAILED"},
		StatusCanceled:          {"CANCELED", "CANCELED", "CANCELED"},
	}
	for _, st := range Statuses {
		got := [3]string{PayoutStatusName(st, MethodACH, ""), PayoutStatusName(st, MethodACH, "PAID"),
			PayoutStatusName(st, MethodCard, "")}
		if got != want[st] {
			t.Errorf("%s → %v, want %v", st, got, want[st])
		}
	}
	// every bank rail settles; every other method is paid
	for _, m := range allMethods {
		got := PayoutStatusName(StatusSucceeded, m, "")
		if (got == "SETTLED") != m.BankRail() || (got == "PAID") == m.BankRail() {
			t.Errorf("%s succeeded → %s", m, got)
		}
		if imported := PayoutStatusName(StatusSucceeded, m, "SETTLED"); imported != got {
			t.Errorf("%s imported as SETTLED → %s, want %s", m, imported, got)
		}
	}
}

// TestPayoutStatusFilter: the list filter inverts the table.
func TestPayoutStatusFilter(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	cases := map[string]struct {
		statuses []Status
		paid     *bool
	}{
		"INITIATED":  {[]Status{StatusPending}, nil},
		"PROCESSING": {[]Status{StatusProcessing, StatusRequiresAction, StatusRequiresReview}, nil},
		"SENT":       {[]Status{StatusSent}, nil},
		"SETTLED":    {[]Status{StatusSucceeded, StatusPartiallyRefunded}, &no},
		"PAID":       {[]Status{StatusSucceeded, StatusPartiallyRefunded}, &yes},
		"RETURNED":   {[]Status{StatusRefunded, StatusReturned}, nil},
		"FAILED":     {[]Status{StatusFailed}, nil},
		"CANCELED":   {[]Status{StatusCanceled}, nil},
		"PENDING":    {nil, nil},
	}
	for v, want := range cases {
		st, paid := PayoutStatusesNamed(v)
		if d := cmp.Diff(want.statuses, st); d != "" {
			t.Errorf("%s statuses (-want +got):\n%s", v, d)
		}
		if (paid == nil) != (want.paid == nil) || (paid != nil && *paid != *want.paid) {
			t.Errorf("%s paid = %v, want %v", v, paid, want.paid)
		}
	}
}
