package payment

import (
	"strings"
	"time"
)

// User is a payer or payee, named by the tenant's external id.
type User struct {
	ID         string
	TenantID   string
	ExternalID string
	Name       string
	Email      string
	Metadata   map[string]string
	CreatedAt  time.Time
	// What payment flows need (nil when not given).
	PayinMethod   *PayinMethod
	PayoutAccount *PayoutAccount
}

// Invoice is what payments pay. Its balances change only with lines.
type Invoice struct {
	ID             string
	TenantID       string
	ExternalID     string
	InvoiceNumber  string
	Currency       string
	AmountDue      int64
	AmountReserved int64
	AmountPaid     int64
	Status         string // OPEN, PARTIALLY_PAID, PAID, VOID (derived by the schema)
	Payer          *User
	Payers         []Payee // several payers with their shares (summing to AmountDue); empty with Payer alone
	Payees         []Payee
	DueDate        *time.Time // a calendar date: midnight UTC
	Metadata       map[string]string
	CreatedAt      time.Time
	// Fingerprint is the fingerprint of the request that created the
	// invoice; nil for invoices made before invoices had a create API.
	Fingerprint []byte
}

// PayersWithShares are who pays the invoice and how much: its payers, or
// its one payer (the shorthand) for the whole amount due; none without.
func (i Invoice) PayersWithShares() []Payee {
	if len(i.Payers) == 0 && i.Payer != nil {
		return []Payee{{User: *i.Payer, Amount: i.AmountDue}}
	}
	return i.Payers
}

// AmountRemaining is what is still to be paid.
func (i Invoice) AmountRemaining() int64 { return i.AmountDue - i.AmountPaid }

// Payee is a user paid out of an invoice, and how much.
type Payee struct {
	User   User
	Amount int64
}

// Line applies part of a payment to an invoice (seed 002 "lines"; a seed
// 001 payment has one line for its whole amount).
type Line struct {
	ID               string
	PaymentID        string
	InvoiceID        string
	AppliedAmount    int64  // minor units of AppliedCurrency (the invoice's currency)
	PaymentAmount    int64  // the same amount in minor units of the payment's currency
	AppliedCurrency  string // the invoice's currency
	FXRate           string // exact decimal text, empty for none
	FXAt             *time.Time
	DiscountAmount   *int64
	DiscountCurrency string
	FeeAmount        *int64
	FeeCurrency      string
	RemittanceLabel  string
	RemittanceValue  string
	Notes            string
	State            string // reserved, applied, released
	ReleasedAmount   int64
	CreatedAt        time.Time
}

// InvoiceOverAppliedError names the invoice a line would over-apply; it is
// an ErrInvoiceOverApplied.
type InvoiceOverAppliedError struct{ InvoiceID string }

func (e *InvoiceOverAppliedError) Error() string {
	return "invoice " + e.InvoiceID + " would be over-applied"
}
func (e *InvoiceOverAppliedError) Unwrap() error { return ErrInvoiceOverApplied }

// InvoiceIDFromToken reads an invoice token (seed 002's invoice_token): the
// invoice id (inv_ and 32 hex digits) or the UUID it is made of, in its
// hyphenated form as the seed shows it or in its 32-digit simple form.
func InvoiceIDFromToken(tok string) (string, bool) {
	h, ok := strings.CutPrefix(tok, PrefixInvoice)
	if !ok && len(tok) == 36 && tok[8] == '-' && tok[13] == '-' && tok[18] == '-' && tok[23] == '-' {
		h = strings.ReplaceAll(tok, "-", "")
	}
	if len(h) != 32 {
		return "", false
	}
	h = strings.ToLower(h)
	for i := 0; i < len(h); i++ {
		if !(h[i] >= '0' && h[i] <= '9' || h[i] >= 'a' && h[i] <= 'f') {
			return "", false
		}
	}
	return PrefixInvoice + h, true
}

// InvoiceToken is the UUID form of an invoice id, as seed 002 shows it.
func InvoiceToken(id string) string {
	h, ok := strings.CutPrefix(id, PrefixInvoice)
	if !ok || len(h) != 32 {
		return id
	}
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
