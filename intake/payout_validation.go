package intake

import (
	"math"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/biter777/countries"

	"github.com/payd/payd/payment"
)

// Validation of seed 002's PaymentCreateRequest: every field, and the rules a
// bank applies before it accepts a payout. Each violation is one error code
// on its field (DESIGN.md §5); a field breaking several rules reports the
// first.

// createPayoutRequest is seed 002's PaymentCreateRequest, field by field.
// Times are strings so that a bad one is reported as such, not as a type
// error; null is the same as absent.
type createPayoutRequest struct {
	ExternalPaymentID      *string       `json:"external_payment_id"`
	ExternalSource         *string       `json:"external_source"`
	Status                 *string       `json:"status"`
	Method                 *string       `json:"method"`
	TotalAmount            decimal       `json:"total_amount"`
	Currency               *string       `json:"currency"`
	ScheduledAt            *string       `json:"scheduled_at"`
	SubmittedAt            *string       `json:"submitted_at"`
	SentAt                 *string       `json:"sent_at"`
	ExpectedSettlementAt   *string       `json:"expected_settlement_at"`
	SettledAt              *string       `json:"settled_at"`
	ReturnedAt             *string       `json:"returned_at"`
	PaymentReference       *string       `json:"payment_reference"`
	BankReference          *string       `json:"bank_reference"`
	ACHTraceNumber         *string       `json:"ach_trace_number"`
	SEPAEndToEndID         *string       `json:"sepa_end_to_end_id"`
	RTPTraceID             *string       `json:"rtp_trace_id"`
	CheckNumber            *string       `json:"check_number"`
	CheckMailedAt          *string       `json:"check_mailed_at"`
	CheckClearedAt         *string       `json:"check_cleared_at"`
	CheckStopPayment       *bool         `json:"check_stop_payment"`
	BeneficiaryName        *string       `json:"beneficiary_name"`
	BeneficiaryBankName    *string       `json:"beneficiary_bank_name"`
	BeneficiaryBankCountry *string       `json:"beneficiary_bank_country"`
	BeneficiarySwiftBIC    *string       `json:"beneficiary_swift_bic"`
	BeneficiaryIBAN        *string       `json:"beneficiary_iban"`
	BeneficiaryAccount     *string       `json:"beneficiary_account"`
	BeneficiaryRouting     *string       `json:"beneficiary_routing"`
	PayerBankName          *string       `json:"payer_bank_name"`
	PayerBankCountry       *string       `json:"payer_bank_country"`
	PayerAccount           *string       `json:"payer_account"`
	PayerRouting           *string       `json:"payer_routing"`
	RemittanceMemo         *string       `json:"remittance_memo"`
	RemittanceAdviceURL    *string       `json:"remittance_advice_url"`
	Lines                  []lineRequest `json:"lines"`
	ReplaceLines           *bool         `json:"replace_lines"`
}

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
}

// Seed 002 statuses.
const (
	status002Initiated  = "INITIATED"
	status002Processing = "PROCESSING"
	status002Sent       = "SENT"
	status002Settled    = "SETTLED"
	status002Returned   = "RETURNED"
	status002Failed     = "FAILED"
	status002Canceled   = "CANCELED"
	status002Paid       = "PAID"
)

var methods002 = map[string]payment.Method{
	"ACH": payment.MethodACH, "WIRE": payment.MethodWire, "SEPA": payment.MethodSEPA, "SWIFT": payment.MethodSWIFT,
	"RTP": payment.MethodRTP, "CHECK": payment.MethodCheck, "CARD": payment.MethodCard,
	"VIRTUAL_CARD": payment.MethodVirtualCard, "PAYPAL": payment.MethodPayPal, "OTHER": payment.MethodOther,
}

// timesAllowed lists, per status given on create, the lifecycle times that
// can be known at that point: a payout that is only SENT has no settled_at.
var timesAllowed = func() map[string]map[string]bool {
	set := func(fields ...string) map[string]bool {
		m := map[string]bool{}
		for _, f := range fields {
			m[f] = true
		}
		return m
	}
	sent := []string{"scheduled_at", "submitted_at", "expected_settlement_at", "sent_at", "check_mailed_at"}
	settled := append(append([]string(nil), sent...), "settled_at", "check_cleared_at")
	return map[string]map[string]bool{
		status002Initiated:  set("scheduled_at"),
		status002Processing: set("scheduled_at", "submitted_at", "expected_settlement_at"),
		status002Sent:       set(sent...),
		status002Settled:    set(settled...),
		status002Paid:       set(settled...),
		status002Returned:   set(append(settled, "returned_at")...),
		status002Failed:     set(sent...),
		status002Canceled:   set("scheduled_at", "submitted_at"),
	}
}()

// pastTimes may not lie in the future: they record what already happened.
var pastTimes = map[string]bool{"submitted_at": true, "sent_at": true, "settled_at": true, "returned_at": true,
	"check_mailed_at": true, "check_cleared_at": true}

// clockSkew is how far a past time may be ahead of our clock.
const clockSkew = 5 * time.Minute

// maxLines bounds the lines of one request.
const maxLines = 100

// bankCountries is every ISO 3166-1 alpha-2 code, from
// github.com/biter777/countries, less the withdrawn AN and YU; XK (Kosovo),
// user-assigned but used by SWIFT and the IBAN registry, stays.
var bankCountries = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range countries.All() {
		m[c.Alpha2()] = true
	}
	delete(m, "AN")
	delete(m, "YU")
	return m
}()

// payoutFields are the seed fields kept in payout_details.details, under
// the seed's names, normalized (upper-case countries, BIC and IBAN, UTC
// times).
type payoutFields struct {
	ScheduledAt            *time.Time `json:"scheduled_at,omitempty"`
	SubmittedAt            *time.Time `json:"submitted_at,omitempty"`
	SentAt                 *time.Time `json:"sent_at,omitempty"`
	ExpectedSettlementAt   *time.Time `json:"expected_settlement_at,omitempty"`
	SettledAt              *time.Time `json:"settled_at,omitempty"`
	ReturnedAt             *time.Time `json:"returned_at,omitempty"`
	PaymentReference       string     `json:"payment_reference,omitempty"`
	BankReference          string     `json:"bank_reference,omitempty"`
	ACHTraceNumber         string     `json:"ach_trace_number,omitempty"`
	SEPAEndToEndID         string     `json:"sepa_end_to_end_id,omitempty"`
	RTPTraceID             string     `json:"rtp_trace_id,omitempty"`
	CheckNumber            string     `json:"check_number,omitempty"`
	CheckMailedAt          *time.Time `json:"check_mailed_at,omitempty"`
	CheckClearedAt         *time.Time `json:"check_cleared_at,omitempty"`
	CheckStopPayment       *bool      `json:"check_stop_payment,omitempty"`
	BeneficiaryName        string     `json:"beneficiary_name,omitempty"`
	BeneficiaryBankName    string     `json:"beneficiary_bank_name,omitempty"`
	BeneficiaryBankCountry string     `json:"beneficiary_bank_country,omitempty"`
	BeneficiarySwiftBIC    string     `json:"beneficiary_swift_bic,omitempty"`
	BeneficiaryIBAN        string     `json:"beneficiary_iban,omitempty"`
	BeneficiaryAccount     string     `json:"beneficiary_account,omitempty"`
	BeneficiaryRouting     string     `json:"beneficiary_routing,omitempty"`
	PayerBankName          string     `json:"payer_bank_name,omitempty"`
	PayerBankCountry       string     `json:"payer_bank_country,omitempty"`
	PayerAccount           string     `json:"payer_account,omitempty"`
	PayerRouting           string     `json:"payer_routing,omitempty"`
	RemittanceMemo         string     `json:"remittance_memo,omitempty"`
	RemittanceAdviceURL    string     `json:"remittance_advice_url,omitempty"`
}

// validPayout is a create request that passed validation, normalized; its
// JSON form is the request fingerprint.
type validPayout struct {
	ExternalPaymentID string         `json:"external_payment_id"`
	ExternalSource    string         `json:"external_source"`
	Status            string         `json:"status"`
	Method            payment.Method `json:"method"`
	Amount            payment.Money  `json:"total_amount"`
	Fields            payoutFields   `json:"fields"`
	Lines             []validLine    `json:"lines"`
	ReplaceLines      bool           `json:"replace_lines"`
}

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

// imported reports whether the payout was made elsewhere and is only
// recorded (any status on create but INITIATED).
func (v validPayout) imported() bool { return v.Status != status002Initiated }

// live reports whether payd sends the payout through the gateway.
func (v validPayout) live() bool { return !v.imported() && v.Method.BankRail() }

// accountKey is the beneficiary account the gateway pays: the IBAN for
// SEPA (or when no account number is given), else the account number.
func (f payoutFields) accountKey(m payment.Method) string {
	if f.BeneficiaryIBAN != "" && (m == payment.MethodSEPA || f.BeneficiaryAccount == "") {
		return f.BeneficiaryIBAN
	}
	return f.BeneficiaryAccount
}

// accountField names the request field that holds accountKey.
func (f payoutFields) accountField(m payment.Method) string {
	if f.BeneficiaryIBAN != "" && (m == payment.MethodSEPA || f.BeneficiaryAccount == "") {
		return "beneficiary_iban"
	}
	return "beneficiary_account"
}

// fingerprint identifies the account the gateway pays (accountKey) for
// blocking after returns (payment.AccountFingerprint); "" when none is
// named. Without a routing number the BIC stands for the bank, so equal
// account numbers at two banks stay apart.
func (f payoutFields) fingerprint(m payment.Method) string {
	if f.accountField(m) == "beneficiary_iban" {
		return payment.AccountFingerprint("", "", f.BeneficiaryIBAN)
	}
	if f.BeneficiaryAccount == "" {
		return ""
	}
	routing := f.BeneficiaryRouting
	if routing == "" {
		routing = f.BeneficiarySwiftBIC
	}
	return payment.AccountFingerprint(routing, f.BeneficiaryAccount, "")
}

// valid checks a create request at now and returns one error code per bad
// field.
func (req createPayoutRequest) valid(now time.Time, maxAmount int64) (validPayout, map[string]string) {
	bad := map[string]string{}
	v := validPayout{ExternalSource: "UNKNOWN", Status: status002Initiated, ReplaceLines: true}

	v.ExternalPaymentID = str(req.ExternalPaymentID)
	if code := checkText(req.ExternalPaymentID, true, 255); code != "" {
		bad["external_payment_id"] = "external_payment_id_" + code
	}
	if req.ExternalSource != nil && *req.ExternalSource != "" {
		v.ExternalSource = *req.ExternalSource
		if code := checkText(req.ExternalSource, false, 100); code != "" {
			bad["external_source"] = "external_source_" + code
		}
	}
	if req.Status != nil && *req.Status != "" {
		v.Status = *req.Status
		if timesAllowed[v.Status] == nil {
			bad["status"] = "status_invalid"
		}
	}
	m, ok := methods002[str(req.Method)]
	switch {
	case str(req.Method) == "":
		bad["method"] = "method_required"
	case !ok:
		bad["method"] = "method_invalid"
	}
	v.Method = m

	cur := strings.ToUpper(str(req.Currency))
	switch {
	case cur == "":
		bad["currency"] = "currency_required"
	case !isUpperAlpha3(cur):
		bad["currency"] = "currency_invalid"
	case !payment.KnownCurrency(cur):
		bad["currency"] = "currency_unknown"
	case (m == payment.MethodACH || m == payment.MethodRTP) && cur != "USD",
		m == payment.MethodSEPA && cur != "EUR":
		bad["currency"] = "currency_not_supported_for_method"
	}
	curOK := cur != "" && isUpperAlpha3(cur) && payment.KnownCurrency(cur)
	switch {
	case curOK:
		if minor, code := parseAmount(req.TotalAmount, cur, maxAmount, false); code != "" {
			bad["total_amount"] = "total_" + code
		} else {
			v.Amount = payment.Money{Minor: minor, Currency: cur}
		}
	case !req.TotalAmount.Set || req.TotalAmount.IsNul:
		bad["total_amount"] = "total_amount_required"
	}

	f := &v.Fields
	f.checkTimes(req, v.Status, now, bad)
	f.checkReferences(req, m, v.Status, bad)
	f.checkParties(req, m, bad)
	if ok && !v.imported() && m.BankRail() {
		f.checkRequired(m, bad)
	}

	if req.Lines != nil {
		lines, sum := checkLines(req.Lines, v.Amount.Currency, maxAmount, bad)
		v.Lines = lines
		if _, amountBad := bad["total_amount"]; !amountBad && curOK && sum > v.Amount.Minor {
			bad["lines"] = "lines_exceed_total_amount"
		}
	}
	if req.ReplaceLines != nil {
		v.ReplaceLines = *req.ReplaceLines
	}
	return v, bad
}

// checkTimes parses every lifecycle time, refuses one the status cannot
// know yet or one in the future that records the past, and checks their
// order.
func (f *payoutFields) checkTimes(req createPayoutRequest, status string, now time.Time, bad map[string]string) {
	allowed := timesAllowed[status]
	parse := func(name string, p *string, into **time.Time) {
		t, code := parseTime(p)
		switch {
		case code != "":
			bad[name] = name + "_" + code
		case t == nil:
		case allowed != nil && !allowed[name]:
			bad[name] = name + "_not_allowed_for_status"
		case pastTimes[name] && t.After(now.Add(clockSkew)):
			bad[name] = name + "_in_future"
		case name == "scheduled_at" && t.After(now.AddDate(1, 0, 0)):
			bad[name] = "scheduled_at_too_far"
		default:
			*into = t
		}
	}
	parse("scheduled_at", req.ScheduledAt, &f.ScheduledAt)
	parse("submitted_at", req.SubmittedAt, &f.SubmittedAt)
	parse("sent_at", req.SentAt, &f.SentAt)
	parse("expected_settlement_at", req.ExpectedSettlementAt, &f.ExpectedSettlementAt)
	parse("settled_at", req.SettledAt, &f.SettledAt)
	parse("returned_at", req.ReturnedAt, &f.ReturnedAt)
	parse("check_mailed_at", req.CheckMailedAt, &f.CheckMailedAt)
	parse("check_cleared_at", req.CheckClearedAt, &f.CheckClearedAt)
	// later times may not precede earlier ones
	order := []struct {
		later, earlier   string
		laterT, earlierT *time.Time
	}{
		{"sent_at", "submitted_at", f.SentAt, f.SubmittedAt},
		{"expected_settlement_at", "sent_at", f.ExpectedSettlementAt, f.SentAt},
		{"settled_at", "sent_at", f.SettledAt, f.SentAt},
		{"returned_at", "settled_at", f.ReturnedAt, f.SettledAt},
		{"returned_at", "sent_at", f.ReturnedAt, f.SentAt},
		{"check_cleared_at", "check_mailed_at", f.CheckClearedAt, f.CheckMailedAt},
	}
	for _, o := range order {
		if o.laterT != nil && o.earlierT != nil && o.laterT.Before(*o.earlierT) {
			if _, done := bad[o.later]; !done {
				bad[o.later] = o.later + "_before_" + o.earlier
			}
		}
	}
}

// parseTime reads an RFC 3339 date-time (ISO 8601 with an offset). It
// returns nil for absent or null.
func parseTime(p *string) (*time.Time, string) {
	if p == nil || *p == "" {
		return nil, ""
	}
	if len(*p) > 40 {
		return nil, "invalid"
	}
	t, err := time.Parse(time.RFC3339Nano, *p)
	if err != nil || t.Year() < 1970 {
		return nil, "invalid"
	}
	t = t.UTC()
	return &t, ""
}

// checkReferences checks the rail references: each belongs to one method
// and has that rail's format.
func (f *payoutFields) checkReferences(req createPayoutRequest, m payment.Method, status string, bad map[string]string) {
	text := func(name string, p *string, max int, into *string) bool {
		if code := checkText(p, false, max); code != "" {
			bad[name] = name + "_" + code
			return false
		}
		*into = str(p)
		return *into != ""
	}
	text("payment_reference", req.PaymentReference, 140, &f.PaymentReference)
	text("bank_reference", req.BankReference, 140, &f.BankReference)
	// onlyFor refuses a reference of another rail; it reports whether the
	// value may be checked further.
	onlyFor := func(name string, given bool, rail payment.Method) bool {
		if given && m != "" && m != rail {
			bad[name] = name + "_not_allowed_for_method"
			return false
		}
		return given
	}
	if onlyFor("ach_trace_number", text("ach_trace_number", req.ACHTraceNumber, 15, &f.ACHTraceNumber), payment.MethodACH) &&
		(len(f.ACHTraceNumber) != 15 || !allDigits(f.ACHTraceNumber)) {
		bad["ach_trace_number"] = "ach_trace_number_invalid"
	}
	if onlyFor("sepa_end_to_end_id", text("sepa_end_to_end_id", req.SEPAEndToEndID, 35, &f.SEPAEndToEndID), payment.MethodSEPA) &&
		!sepaID(f.SEPAEndToEndID) {
		bad["sepa_end_to_end_id"] = "sepa_end_to_end_id_invalid"
	}
	if onlyFor("rtp_trace_id", text("rtp_trace_id", req.RTPTraceID, 35, &f.RTPTraceID), payment.MethodRTP) &&
		!printableID(f.RTPTraceID) {
		bad["rtp_trace_id"] = "rtp_trace_id_invalid"
	}
	if onlyFor("check_number", text("check_number", req.CheckNumber, 15, &f.CheckNumber), payment.MethodCheck) &&
		!allDigits(f.CheckNumber) {
		bad["check_number"] = "check_number_invalid"
	}
	onlyFor("check_mailed_at", f.CheckMailedAt != nil, payment.MethodCheck)
	onlyFor("check_cleared_at", f.CheckClearedAt != nil, payment.MethodCheck)
	if onlyFor("check_stop_payment", req.CheckStopPayment != nil, payment.MethodCheck) {
		f.CheckStopPayment = req.CheckStopPayment
		// a stopped check is never paid: only an outcome that paid nothing
		// can carry a stop payment
		if *req.CheckStopPayment && status != status002Canceled && status != status002Failed && status != status002Returned &&
			timesAllowed[status] != nil {
			bad["check_stop_payment"] = "check_stop_payment_not_allowed_for_status"
			f.CheckStopPayment = nil
		}
	}
	if _, refused := bad["check_mailed_at"]; refused {
		f.CheckMailedAt = nil
	}
	if _, refused := bad["check_cleared_at"]; refused {
		f.CheckClearedAt = nil
	}
}

// checkParties checks the beneficiary and payer: names, countries, BIC,
// IBAN, routing and account numbers.
func (f *payoutFields) checkParties(req createPayoutRequest, m payment.Method, bad map[string]string) {
	text := func(name string, p *string, max int, into *string) {
		if code := checkText(p, false, max); code != "" {
			bad[name] = name + "_" + code
			return
		}
		*into = str(p)
	}
	text("beneficiary_name", req.BeneficiaryName, 140, &f.BeneficiaryName)
	text("beneficiary_bank_name", req.BeneficiaryBankName, 140, &f.BeneficiaryBankName)
	text("payer_bank_name", req.PayerBankName, 140, &f.PayerBankName)
	text("remittance_memo", req.RemittanceMemo, 140, &f.RemittanceMemo)
	if u := str(req.RemittanceAdviceURL); u != "" {
		if !adviceURL(u) {
			bad["remittance_advice_url"] = "remittance_advice_url_invalid"
		} else {
			f.RemittanceAdviceURL = u
		}
	}

	f.BeneficiaryBankCountry = country("beneficiary_bank_country", req.BeneficiaryBankCountry, bad)
	f.PayerBankCountry = country("payer_bank_country", req.PayerBankCountry, bad)
	if (m == payment.MethodACH || m == payment.MethodRTP) && f.BeneficiaryBankCountry != "" && f.BeneficiaryBankCountry != "US" {
		bad["beneficiary_bank_country"] = "beneficiary_bank_country_not_supported_for_method"
	}

	if bic := strings.ToUpper(strings.TrimSpace(str(req.BeneficiarySwiftBIC))); bic != "" {
		switch code := payment.CheckBIC(bic); {
		case code != "":
			bad["beneficiary_swift_bic"] = "beneficiary_swift_bic_" + code
		case !bankCountries[bic[4:6]]:
			bad["beneficiary_swift_bic"] = "beneficiary_swift_bic_country_unknown"
		case f.BeneficiaryBankCountry != "" && bic[4:6] != f.BeneficiaryBankCountry:
			bad["beneficiary_swift_bic"] = "beneficiary_swift_bic_country_mismatch"
		default:
			f.BeneficiarySwiftBIC = bic
		}
	}
	if raw := str(req.BeneficiaryIBAN); raw != "" {
		iban := payment.NormalizeIBAN(raw)
		switch code := payment.CheckIBAN(iban); {
		case len(raw) > 42:
			bad["beneficiary_iban"] = "beneficiary_iban_invalid"
		case code != "":
			bad["beneficiary_iban"] = "beneficiary_iban_" + code
		case f.BeneficiaryBankCountry != "" && iban[:2] != f.BeneficiaryBankCountry:
			bad["beneficiary_iban"] = "beneficiary_iban_country_mismatch"
		default:
			f.BeneficiaryIBAN = iban
		}
	}
	// US rails and US banks use ABA routing numbers and numeric accounts.
	usRail := m == payment.MethodACH || m == payment.MethodRTP || m == payment.MethodWire
	f.BeneficiaryRouting = routing("beneficiary_routing", req.BeneficiaryRouting,
		f.BeneficiaryBankCountry == "US" || (f.BeneficiaryBankCountry == "" && usRail), bad)
	f.PayerRouting = routing("payer_routing", req.PayerRouting,
		f.PayerBankCountry == "US" || (f.PayerBankCountry == "" && usRail), bad)
	f.BeneficiaryAccount = account("beneficiary_account", req.BeneficiaryAccount,
		f.BeneficiaryBankCountry == "US" || (f.BeneficiaryBankCountry == "" && usRail), bad)
	f.PayerAccount = account("payer_account", req.PayerAccount,
		f.PayerBankCountry == "US" || (f.PayerBankCountry == "" && usRail), bad)
}

// checkRequired names what a bank needs to send a payout on rail m.
func (f *payoutFields) checkRequired(m payment.Method, bad map[string]string) {
	need := func(name, value string) {
		if _, done := bad[name]; !done && value == "" {
			bad[name] = name + "_required"
		}
	}
	need("beneficiary_name", f.BeneficiaryName)
	switch m {
	case payment.MethodACH, payment.MethodRTP:
		need("beneficiary_account", f.BeneficiaryAccount)
		need("beneficiary_routing", f.BeneficiaryRouting)
	case payment.MethodWire:
		need("beneficiary_account", f.BeneficiaryAccount+f.BeneficiaryIBAN)
		need("beneficiary_routing", f.BeneficiaryRouting+f.BeneficiarySwiftBIC)
	case payment.MethodSEPA:
		need("beneficiary_iban", f.BeneficiaryIBAN)
	case payment.MethodSWIFT:
		need("beneficiary_swift_bic", f.BeneficiarySwiftBIC)
		need("beneficiary_account", f.BeneficiaryAccount+f.BeneficiaryIBAN)
	case payment.MethodCheck:
		// the payee's account: the bank matches the deposited check to it
		// (and the sandbox decides the outcome by it)
		need("beneficiary_account", f.BeneficiaryAccount)
	}
}

// country validates an ISO 3166-1 alpha-2 code (any case, stored upper).
func country(name string, p *string, bad map[string]string) string {
	c := strings.ToUpper(str(p))
	switch {
	case c == "":
		return ""
	case len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z':
		bad[name] = name + "_invalid"
	case !bankCountries[c]:
		bad[name] = name + "_unknown"
	default:
		return c
	}
	return ""
}

// routing validates a routing number: an ABA number with its checksum in
// the US, else up to 34 letters and digits (sort codes, transit numbers).
func routing(name string, p *string, us bool, bad map[string]string) string {
	r := str(p)
	if r == "" {
		return ""
	}
	if us {
		if code := payment.CheckABA(r); code != "" {
			bad[name] = name + "_" + code
			return ""
		}
		return r
	}
	if len(r) > 34 || !alnumID(r) {
		bad[name] = name + "_invalid"
		return ""
	}
	return r
}

// account validates an account number: 4 to 17 digits in the US, else up
// to 34 letters and digits (ISO 13616's limit).
func account(name string, p *string, us bool, bad map[string]string) string {
	a := str(p)
	switch {
	case a == "":
		return ""
	case us && (len(a) < 4 || len(a) > 17 || !allDigits(a)):
		bad[name] = name + "_invalid"
	case len(a) > 34 || !alnumID(a):
		bad[name] = name + "_invalid"
	default:
		return a
	}
	return ""
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
		switch id, ok := invoiceID(tok); {
		case tok == "":
			bad[at("invoice_token")] = "invoice_token_required"
		case !ok:
			bad[at("invoice_token")] = "invoice_token_invalid"
		default:
			v.InvoiceID = id
		}
		cur := payoutCur
		if c := str(l.AppliedCurrency); c != "" {
			cur = strings.ToUpper(c)
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
			v.FXRate = rateText(fx)
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
			v.PaymentAmount = convert(v.AppliedAmount, aexp, exp, rate)
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
	if s := str(c); s != "" {
		cur = strings.ToUpper(s)
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

// parseRate reads fx_rate_line: a positive decimal with at most 12 digits
// on each side of the point (the column is numeric(24,12)), as a JSON
// number or a string. nil when absent.
func parseRate(d decimal) (*big.Rat, string) {
	switch {
	case !d.Set || d.IsNul:
		return nil, ""
	case d.Kind != 'n' && d.Kind != 's':
		return nil, "invalid_type"
	}
	intg, frac, hasPoint := strings.Cut(d.Raw, ".")
	if intg == "" || len(intg) > 12 || !allDigits(intg) || (len(intg) > 1 && intg[0] == '0') ||
		(hasPoint && (frac == "" || len(frac) > 12 || !allDigits(frac))) {
		return nil, "invalid"
	}
	r, ok := new(big.Rat).SetString(d.Raw)
	if !ok {
		return nil, "invalid"
	}
	if r.Sign() <= 0 {
		return nil, "must_be_positive"
	}
	return r, ""
}

// rateText writes a rate as the shortest exact decimal (it has at most 12
// decimals by parseRate).
func rateText(r *big.Rat) string {
	s := strings.TrimRight(r.FloatString(12), "0")
	return strings.TrimSuffix(s, ".")
}

// convert turns minor units of one currency (exponent fromExp) into minor
// units of another (toExp) at rate units of the first per unit of the
// second, rounding half up, exactly (math/big). A result past int64 is
// math.MaxInt64, which every amount limit refuses as too large.
func convert(minor int64, fromExp, toExp int, rate *big.Rat) int64 {
	q := new(big.Rat).SetInt64(minor)
	q.Quo(q, rate)
	q.Mul(q, new(big.Rat).SetFrac(pow10(toExp), pow10(fromExp)))
	// round half up: floor(q + 1/2)
	q.Add(q, big.NewRat(1, 2))
	n := new(big.Int).Quo(q.Num(), q.Denom())
	if !n.IsInt64() {
		return math.MaxInt64 // not -1: that read as "too small"
	}
	return n.Int64()
}

func pow10(n int) *big.Int { return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil) }

// invoiceID reads an invoice_token: the invoice id (inv_ and 32 hex
// digits) or the UUID it is made of, in its hyphenated form as the seed
// shows it or in its 32-digit simple form.
func invoiceID(tok string) (string, bool) {
	h, ok := strings.CutPrefix(tok, payment.PrefixInvoice)
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
	return payment.PrefixInvoice + h, true
}

// invoiceToken is the UUID form of an invoice id, as seed 002 shows it.
func invoiceToken(id string) string {
	h, ok := strings.CutPrefix(id, payment.PrefixInvoice)
	if !ok || len(h) != 32 {
		return id
	}
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func alnumID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return s != ""
}

// sepaID checks a SEPA identifier: the SEPA character set (Latin letters,
// digits, / - ? : ( ) . , ' + and space), never starting or ending with '/'
// and never containing "//".
func sepaID(s string) bool {
	if s == "" || s[0] == '/' || s[len(s)-1] == '/' || strings.Contains(s, "//") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || strings.IndexByte("/-?:().,'+ ", c) >= 0) {
			return false
		}
	}
	return true
}

// printableID is visible ASCII without spaces.
func printableID(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}

// adviceURL accepts an absolute http(s) URL of at most 2048 characters.
func adviceURL(s string) bool {
	if len(s) > 2048 || !printableID(s) {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}
