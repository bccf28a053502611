package intake_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
)

// TestLargeAmountsEndToEnd (issue 19): card payments of the largest amounts
// the API accepts, in currencies of 2, 0 and 3 decimals, go through intake,
// the real worker and the in-process sandbox gateway — created, charged,
// refunded in two parts and then in full — and every balance is exact to
// the minor unit at each step: the payment's refunded and pending amounts,
// the invoice's paid, reserved and remaining amounts, and the gateway's
// ledger. Before the fix, a full refund of 50,000,000.00 USD left the
// invoice showing 36,893,488.15 paid (an int64 product overflowed).
func TestLargeAmountsEndToEnd(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{})
	for _, c := range []struct {
		name, currency string
		due, amount    string   // major units, as a client writes them
		refunds        []string // partial refunds; then the rest, with no amount
	}{
		{"issue 19", "USD", "60000000.00", "50000000.00", nil},
		{"USD 1e14 minor units", "USD", "1000000000000.00", "1000000000000.00", []string{"0.01", "333333333333.33"}},
		{"JPY 1e14", "JPY", "100000000000000", "100000000000000", []string{"1", "33333333333333"}},
		{"BHD 1e14 minor units", "BHD", "100000000000.000", "100000000000.000", []string{"0.001", "12345678901.234"}},
		{"BHD on a larger invoice", "BHD", "100000000000.000", "99999999999.999", []string{"99999999999.997", "0.001"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			minor := func(s string) int64 {
				t.Helper()
				n, err := payment.ParseMajor(s, c.currency)
				if err != nil {
					t.Fatalf("%s %s: %v", s, c.currency, err)
				}
				return n
			}
			due, amount := minor(c.due), minor(c.amount)
			inv := invoice(t, h, h.KeyA, "money-"+c.name, c.currency, c.due)
			id := jsonObj(t, h.Do("POST", "/v1/payments", h.KeyA, paymentBodyTo("money-"+c.name, `"`+c.amount+`"`, c.currency,
				"CARD", "pm_card_visa"), nil), http.StatusCreated)["id"].(string)
			if p := h.WaitFinal(id, 20*time.Second); p.Status != payment.StatusSucceeded || p.Amount.Minor != amount {
				t.Fatalf("payment %s is %s of %d, want SUCCEEDED of %d", id, p.Status, p.Amount.Minor, amount)
			}
			var refunded int64
			step := "charged"
			check := func(wantStatus, wantInvoiceStatus string) {
				t.Helper()
				// the refund worker finishes asynchronously: wait for the payment to show it
				var m map[string]any
				waitFor(t, 20*time.Second, step+": payment "+wantStatus, func() bool {
					m = jsonObj(t, h.Do("GET", "/v1/payments/"+id, h.KeyA, nil, nil), http.StatusOK)
					return m["payment_status"] == wantStatus && num(m["refunded_amount"]) == payment.FormatMajor(refunded, c.currency)
				})
				if got := num(m["amount"]); got != payment.FormatMajor(amount, c.currency) {
					t.Errorf("%s: payment amount %s, want %s", step, got, payment.FormatMajor(amount, c.currency))
				}
				p, err := h.Store.GetPayment(t.Context(), h.TenantA, id)
				if err != nil {
					t.Fatal(err)
				}
				if p.RefundedAmount != refunded || p.RefundPendingAmount != 0 {
					t.Errorf("%s: payment refunded %d, pending %d; want %d, 0", step, p.RefundedAmount, p.RefundPendingAmount, refunded)
				}
				paid := amount - refunded
				got := viewOf(getInvoice(t, h, h.KeyA, inv))
				want := invoiceView{Due: payment.FormatMajor(due, c.currency), Paid: payment.FormatMajor(paid, c.currency),
					Remaining: payment.FormatMajor(due-paid, c.currency), Status: wantInvoiceStatus}
				if got != want {
					t.Errorf("%s: invoice %+v, want %+v", step, got, want)
				}
				iv, err := h.Store.GetInvoice(t.Context(), h.TenantA, inv)
				if err != nil {
					t.Fatal(err)
				}
				if iv.AmountPaid != paid || iv.AmountReserved != paid || iv.AmountRemaining() != due-paid {
					t.Errorf("%s: invoice paid %d reserved %d remaining %d; want %d, %d, %d", step, iv.AmountPaid,
						iv.AmountReserved, iv.AmountRemaining(), paid, paid, due-paid)
				}
				var charges int
				for _, ch := range h.Sandbox.Ledger() {
					if ch.PaymentID == id {
						charges++
						if ch.Amount != amount || ch.Refunded != refunded || ch.Currency != c.currency {
							t.Errorf("%s: gateway charged %d %s and refunded %d; want %d %s and %d", step, ch.Amount, ch.Currency,
								ch.Refunded, amount, c.currency, refunded)
						}
					}
				}
				if charges != 1 {
					t.Errorf("%s: %d gateway charges, want 1", step, charges)
				}
			}
			paidStatus := "PAID"
			if amount < due {
				paidStatus = "PARTIALLY_PAID"
			}
			check("SUCCEEDED", paidStatus)
			for i, r := range c.refunds {
				ref := jsonObj(t, h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{"amount":"`+r+`"}`), nil), http.StatusCreated)
				if got := num(ref["amount"]); got != payment.FormatMajor(minor(r), c.currency) {
					t.Errorf("refund %d amount %s, want %s", i+1, got, r)
				}
				refunded += minor(r)
				step = fmt.Sprintf("refund %d of %s %s", i+1, r, c.currency)
				check("PARTIALLY_REFUNDED", "PARTIALLY_PAID")
			}
			ref := jsonObj(t, h.Do("POST", "/v1/payments/"+id+"/refunds", h.KeyA, []byte(`{}`), nil), http.StatusCreated)
			if got, want := num(ref["amount"]), payment.FormatMajor(amount-refunded, c.currency); got != want {
				t.Errorf("refund of the rest: %s, want %s", got, want)
			}
			refunded = amount
			step = "full refund"
			check("REFUNDED", "OPEN")
		})
	}
}

// TestPayoutFXLineRange: an FX line's amount in the payout's currency is
// converted exactly (math/big), rounded half up, up to the largest amounts;
// a conversion past int64 is refused as too large (it used to come back as
// -1 and be refused as too small).
func TestPayoutFXLineRange(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	for _, c := range []struct {
		name, total, invoiceCur, applied, rate, code string
		want                                         int64 // the line's amount in USD cents
	}{
		{"past int64", "100.00", "JPY", "100000000000000", "0.000000000001", "applied_amount_too_large", 0},
		{"past the API's limit", "100.00", "JPY", "99999999999999", "0.5", "applied_amount_too_large", 0},
		{"below one unit", "100.00", "JPY", "1", "999999999999", "applied_amount_too_small", 0},
		{"below half a unit", "100.00", "JPY", "1", "200.000000000001", "applied_amount_too_small", 0},
		{"the largest, from JPY", "1000000000000.00", "JPY", "100000000000000", "100", "", 1e14},
		{"the largest, from BHD", "1000000000000.00", "BHD", "100000000000.000", "0.1", "", 1e14},
		{"a third, half up", "100.00", "JPY", "1", "3", "", 33},       // 33.33… cents
		{"two thirds, half up", "100.00", "JPY", "2", "3", "", 67},    // 66.66… cents
		{"half a cent rounds up", "100.00", "JPY", "1", "200", "", 1}, // 0.5 cent
		{"half a cent from BHD", "100.00", "BHD", "0.005", "1", "", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			inv := payoutInvoice(t, h, h.TenantA, c.invoiceCur, 1e14)
			body := payoutBody(map[string]any{"total_amount": c.total, "lines": []any{map[string]any{"invoice_token": inv,
				"applied_amount": c.applied, "applied_currency": c.invoiceCur, "fx_rate_line": c.rate}}})
			r := h.Do("POST", "/v1/payouts", h.KeyA, body, nil)
			if c.code != "" {
				if e := checkEnvelope(t, r, http.StatusUnprocessableEntity, c.code); e.Fields["lines[0].applied_amount"] != c.code {
					t.Errorf("fields %v, want lines[0].applied_amount: %s", e.Fields, c.code)
				}
				return
			}
			id := jsonObj(t, r, http.StatusCreated)["id"].(string)
			ls, err := h.Store.Lines(t.Context(), []string{id})
			if err != nil {
				t.Fatal(err)
			}
			if l := ls[id]; len(l) != 1 || l[0].PaymentAmount != c.want {
				t.Errorf("lines %+v, want one of %d cents", l, c.want)
			}
		})
	}
}

// num is a JSON number's text (responses are decoded with UseNumber).
func num(v any) string {
	if n, ok := v.(json.Number); ok {
		return n.String()
	}
	return fmt.Sprintf("%T %v", v, v)
}
