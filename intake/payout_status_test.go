package intake

import (
	"math/big"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/payd/payd/payment"
)

// TestPayoutStatusTable: the canonical → seed 002 table names every
// canonical status exactly once, only with seed 002 words, and shows
// SUCCEEDED as SETTLED on a bank rail and as PAID when recorded as paid.
func TestPayoutStatusTable(t *testing.T) {
	t.Parallel()
	seed := map[string]bool{"INITIATED": true, "PROCESSING": true, "SENT": true, "SETTLED": true, "RETURNED": true,
		"FAILED": true, "CANCELED": true, "PAID": true}
	seen := map[payment.Status]int{}
	for _, row := range payoutStatuses {
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
	for name, m := range methods002 {
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
		st, paid := statuses002(v)
		if d := cmp.Diff(want.statuses, st); d != "" {
			t.Errorf("%s statuses (-want +got):\n%s", v, d)
		}
		if (paid == nil) != (want.paid == nil) || (paid != nil && *paid != *want.paid) {
			t.Errorf("%s paid = %v, want %v", v, paid, want.paid)
		}
	}
}

// TestInvoiceToken: invoice_token accepts the invoice id and its UUID form,
// and answers with the UUID form.
func TestInvoiceToken(t *testing.T) {
	t.Parallel()
	id := "inv_019a2b3c4d5e7f8091a2b3c4d5e6f708"
	for tok, want := range map[string]string{
		id:                                       id,
		"019a2b3c-4d5e-7f80-91a2-b3c4d5e6f708":   id,
		"019A2B3C-4D5E-7F80-91A2-B3C4D5E6F708":   id,
		"019a2b3c4d5e7f8091a2b3c4d5e6f708":       id, // the simple form
		"inv_019a2b3c4d5e7f8091a2b3c4d5e6f70g":   "",
		"inv_1":                                  "",
		"{019a2b3c-4d5e-7f80-91a2-b3c4d5e6f708}": "",
		"":                                       "",
	} {
		got, ok := invoiceID(tok)
		if ok != (want != "") || got != want {
			t.Errorf("invoiceID(%q) = %q %v, want %q", tok, got, ok, want)
		}
	}
	if got := invoiceToken(id); got != "019a2b3c-4d5e-7f80-91a2-b3c4d5e6f708" {
		t.Errorf("invoiceToken = %q", got)
	}
}

// TestConvert: a line in another currency counts in the payout's currency
// at its rate, exactly, rounding half up.
func TestConvert(t *testing.T) {
	t.Parallel()
	rate := func(s string) *big.Rat {
		r, code := parseRate(decimal{Raw: s, Set: true, Kind: 's'})
		if code != "" {
			t.Fatalf("rate %s: %s", s, code)
		}
		return r
	}
	cases := []struct {
		minor          int64
		fromExp, toExp int
		rate           string
		want           int64
	}{
		{9200, 2, 2, "0.92", 10000},          // EUR 92.00 at 0.92 EUR/USD is USD 100.00
		{15000, 0, 2, "150", 10000},          // JPY 15000 at 150 JPY/USD is USD 100.00
		{10000, 2, 0, "0.0066666667", 15000}, // USD 100 at that rate is JPY 15000 (rounded)
		{1, 2, 2, "3", 0},                    // 0.333… cents rounds to 0
		{1, 2, 2, "2", 1},                    // 0.5 cents rounds up
		{1234, 3, 2, "1", 123},               // BHD 1.234 at 1 is 123.4 cents
	}
	for _, c := range cases {
		if got := convert(c.minor, c.fromExp, c.toExp, rate(c.rate)); got != c.want {
			t.Errorf("convert(%d, %d→%d, %s) = %d, want %d", c.minor, c.fromExp, c.toExp, c.rate, got, c.want)
		}
	}
	for s, code := range map[string]string{"1": "", "0.5": "", "123456789012.123456789012": "", "1.": "invalid",
		".5": "invalid", "01": "invalid", "1e2": "invalid", "-1": "invalid", "0": "must_be_positive", "0.000": "must_be_positive",
		"1234567890123": "invalid", "1.1234567890123": "invalid", "NaN": "invalid", "1/3": "invalid"} {
		if _, got := parseRate(decimal{Raw: s, Set: true, Kind: 's'}); got != code {
			t.Errorf("parseRate(%q) = %q, want %q", s, got, code)
		}
	}
}
