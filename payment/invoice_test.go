package payment

import "testing"

// TestInvoiceToken: invoice_token accepts the invoice id and its UUID form,
// and answers with the UUID form. (Moved from intake's
// payout_status_test.go with InvoiceIDFromToken and InvoiceToken.)
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
		got, ok := InvoiceIDFromToken(tok)
		if ok != (want != "") || got != want {
			t.Errorf("invoiceID(%q) = %q %v, want %q", tok, got, ok, want)
		}
	}
	if got := InvoiceToken(id); got != "019a2b3c-4d5e-7f80-91a2-b3c4d5e6f708" {
		t.Errorf("invoiceToken = %q", got)
	}
}
