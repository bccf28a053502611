package intake

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// A payout's lines apply its amount to invoices: given on create (lines,
// replace_lines) or by PUT /v1/payouts/{id}/lines.

// lineRequest is one element of seed 002's lines.
type lineRequest struct {
	InvoiceToken     *string `json:"invoice_token"`
	AppliedAmount    decimal `json:"applied_amount"`
	AppliedCurrency  *string `json:"applied_currency"`
	FXRateLine       decimal `json:"fx_rate_line"`
	FXAtLine         *string `json:"fx_at_line"`
	DiscountAmount   decimal `json:"discount_amount"`
	DiscountCurrency *string `json:"discount_currency"`
	FeeAmountLine    decimal `json:"fee_amount_line"`
	FeeCurrencyLine  *string `json:"fee_currency_line"`
	RemittanceLabel  *string `json:"remittance_label"`
	RemittanceValue  *string `json:"remittance_value"`
	Notes            *string `json:"notes"`
}

// replaceLinesRequest is the body of PUT /v1/payouts/{id}/lines.
type replaceLinesRequest struct {
	Lines        []lineRequest `json:"lines"`
	ReplaceLines *bool         `json:"replace_lines"`
	// payout is the amount of the payout the lines apply.
	payout payment.Money
}

// validLines is a PUT /v1/payouts/{id}/lines body that passed validation.
type validLines struct {
	Lines   []validLine
	Replace bool
}

// valid checks the lines against the payout's amount.
func (req replaceLinesRequest) valid(lim limits) (validLines, map[string]string) {
	bad := map[string]string{}
	v := validLines{Replace: req.ReplaceLines == nil || *req.ReplaceLines}
	switch {
	case req.Lines == nil:
		bad["lines"] = "lines_required"
	default:
		var sum int64
		v.Lines, sum = checkLines(req.Lines, req.payout.Currency, lim.maxAmount, bad)
		if _, done := bad["lines"]; !done && sum > req.payout.Minor {
			bad["lines"] = "lines_exceed_total_amount"
		}
	}
	return v, bad
}

// maxLines bounds the lines of one request.
const maxLines = 100

// validLine is a line that passed validation. Whether its invoice is the
// tenant's, in its currency, is checked against the database.
type validLine struct {
	InvoiceID        string     `json:"invoice_id"`
	AppliedAmount    int64      `json:"applied_amount"` // minor units of AppliedCurrency
	AppliedCurrency  string     `json:"applied_currency"`
	PaymentAmount    int64      `json:"payment_amount"` // the same in minor units of the payout's currency
	FXRate           string     `json:"fx_rate_line,omitempty"`
	FXAt             *time.Time `json:"fx_at_line,omitempty"`
	DiscountAmount   *int64     `json:"discount_amount,omitempty"`
	DiscountCurrency string     `json:"discount_currency,omitempty"`
	FeeAmount        *int64     `json:"fee_amount_line,omitempty"`
	FeeCurrency      string     `json:"fee_currency_line,omitempty"`
	RemittanceLabel  string     `json:"remittance_label"`
	RemittanceValue  string     `json:"remittance_value,omitempty"`
	Notes            string     `json:"notes,omitempty"`
}

// checkLines validates lines against the payout's currency (empty when the
// currency itself is bad) and returns them with the sum of their amounts in
// that currency.
func checkLines(reqs []lineRequest, payoutCur string, maxAmount int64, bad map[string]string) ([]validLine, int64) {
	if len(reqs) > maxLines {
		bad["lines"] = "lines_too_many"
		return nil, 0
	}
	out := make([]validLine, 0, len(reqs))
	var sum int64
	for i, l := range reqs {
		at := func(f string) string { return "lines[" + strconv.Itoa(i) + "]." + f }
		v := validLine{RemittanceLabel: "Invoice"}
		tok := str(l.InvoiceToken)
		switch id, ok := payment.InvoiceIDFromToken(tok); {
		case tok == "":
			bad[at("invoice_token")] = "invoice_token_required"
		case !ok:
			bad[at("invoice_token")] = "invoice_token_invalid"
		default:
			v.InvoiceID = id
		}
		cur := payoutCur
		if c := currencyCode(l.AppliedCurrency); c != "" {
			cur = c
			if !isUpperAlpha3(cur) || !payment.KnownCurrency(cur) {
				bad[at("applied_currency")] = "applied_currency_invalid"
				cur = ""
			}
		}
		v.AppliedCurrency = cur
		if cur != "" {
			if minor, code := parseAmount(l.AppliedAmount, cur, maxAmount, false); code != "" {
				bad[at("applied_amount")] = "applied_" + code
			} else {
				v.AppliedAmount = minor
			}
		} else if !l.AppliedAmount.Set || l.AppliedAmount.IsNul {
			bad[at("applied_amount")] = "applied_amount_required"
		}
		fx, fxCode := parseRate(l.FXRateLine)
		switch {
		case fxCode != "":
			bad[at("fx_rate_line")] = "fx_rate_line_" + fxCode
		case payoutCur == "" || cur == "":
		case cur == payoutCur && fx != nil && fx.Cmp(big.NewRat(1, 1)) != 0:
			bad[at("fx_rate_line")] = "fx_rate_line_mismatch"
		case cur != payoutCur && fx == nil:
			bad[at("fx_rate_line")] = "fx_rate_line_required"
		}
		if fx != nil && fxCode == "" {
			v.FXRate = payment.FormatRate(fx)
		}
		if t, code := parseTime(l.FXAtLine); code != "" {
			bad[at("fx_at_line")] = "fx_at_line_" + code
		} else {
			v.FXAt = t
		}
		v.DiscountAmount, v.DiscountCurrency = sideAmount(at, "discount_amount", "discount_currency", l.DiscountAmount,
			l.DiscountCurrency, cur, maxAmount, bad)
		v.FeeAmount, v.FeeCurrency = sideAmount(at, "fee_amount_line", "fee_currency_line", l.FeeAmountLine,
			l.FeeCurrencyLine, cur, maxAmount, bad)
		for _, t := range []struct {
			name string
			p    *string
			max  int
			into *string
		}{
			{"remittance_label", l.RemittanceLabel, 50, &v.RemittanceLabel},
			{"remittance_value", l.RemittanceValue, 140, &v.RemittanceValue},
			{"notes", l.Notes, 1000, &v.Notes},
		} {
			if code := checkText(t.p, false, t.max); code != "" {
				bad[at(t.name)] = t.name + "_" + code
			} else if str(t.p) != "" {
				*t.into = str(t.p)
			}
		}
		if v.AppliedAmount > 0 && payoutCur != "" {
			exp, _ := payment.CurrencyExponent(payoutCur)
			aexp, _ := payment.CurrencyExponent(cur)
			rate := big.NewRat(1, 1)
			if cur != payoutCur && fx != nil {
				rate = fx
			}
			v.PaymentAmount = payment.ConvertMinor(v.AppliedAmount, aexp, exp, rate)
			switch {
			case cur != payoutCur && fx == nil:
			case v.PaymentAmount <= 0:
				bad[at("applied_amount")] = "applied_amount_too_small"
			case v.PaymentAmount > maxAmount:
				bad[at("applied_amount")] = "applied_amount_too_large"
			default:
				sum += v.PaymentAmount
			}
		}
		out = append(out, v)
	}
	return out, sum
}

// sideAmount validates a line's discount or fee: zero or more, in its own
// currency (default the line's).
func sideAmount(at func(string) string, amountName, curName string, d decimal, c *string, lineCur string,
	maxAmount int64, bad map[string]string) (*int64, string) {
	cur := lineCur
	if s := currencyCode(c); s != "" {
		cur = s
		if !isUpperAlpha3(cur) || !payment.KnownCurrency(cur) {
			bad[at(curName)] = curName + "_invalid"
			return nil, ""
		}
	}
	if !d.Set || d.IsNul {
		return nil, ""
	}
	if cur == "" {
		return nil, "" // the line's currency is already refused
	}
	minor, code := parseAmount(d, cur, maxAmount, true)
	if code != "" {
		bad[at(amountName)] = strings.TrimSuffix(amountName, "_line") + strings.TrimPrefix(code, "amount")
		return nil, ""
	}
	return &minor, cur
}

// paymentLines are validated lines as the store records them.
func paymentLines(ls []validLine) []payment.Line {
	out := make([]payment.Line, len(ls))
	for i, l := range ls {
		out[i] = payment.Line{InvoiceID: l.InvoiceID, AppliedAmount: l.AppliedAmount, PaymentAmount: l.PaymentAmount,
			AppliedCurrency: l.AppliedCurrency, FXRate: l.FXRate, FXAt: l.FXAt, DiscountAmount: l.DiscountAmount,
			DiscountCurrency: l.DiscountCurrency, FeeAmount: l.FeeAmount, FeeCurrency: l.FeeCurrency,
			RemittanceLabel: l.RemittanceLabel, RemittanceValue: l.RemittanceValue, Notes: l.Notes}
	}
	return out
}

// checkInvoices verifies, inside the request's transaction, that every line
// names an invoice of the tenant in the line's currency.
func checkInvoices(ctx context.Context, tx *store.Store, tenantID string, ls []validLine) error {
	if len(ls) == 0 {
		return nil
	}
	ids := make([]string, len(ls))
	for i, l := range ls {
		ids[i] = l.InvoiceID
	}
	curs, err := tx.InvoiceCurrencies(ctx, tenantID, ids)
	if err != nil {
		return err
	}
	bad := map[string]string{}
	for i, l := range ls {
		cur, ok := curs[l.InvoiceID]
		switch {
		case !ok:
			bad[fmt.Sprintf("lines[%d].invoice_token", i)] = "invoice_token_not_found"
		case cur != l.AppliedCurrency:
			bad[fmt.Sprintf("lines[%d].applied_currency", i)] = "applied_currency_mismatch"
		}
	}
	if len(bad) > 0 {
		return validation(bad)
	}
	return nil
}

// linesError turns the store's refusal of lines into a 422 naming the line.
func linesError(err error, ls []validLine) error {
	var oe *payment.InvoiceOverAppliedError
	switch {
	case errors.As(err, &oe):
		for i, l := range ls {
			if l.InvoiceID == oe.InvoiceID {
				return validation(map[string]string{fmt.Sprintf("lines[%d].applied_amount", i): "invoice_over_applied"})
			}
		}
		return validation(map[string]string{"lines": "invoice_over_applied"})
	case errors.Is(err, payment.ErrLinesExceedAmount):
		return validation(map[string]string{"lines": "lines_exceed_total_amount"})
	}
	return err
}
