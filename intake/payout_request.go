package intake

import (
	"net/url"
	"strings"
	"time"

	"github.com/biter777/countries"

	"github.com/payd/payd/payment"
)

// Validation of seed 002's PaymentCreateRequest: every field, and the rules a
// bank applies before it accepts a payout (payment's rail rules). Each
// violation is one error code on its field (docs/surfaces.md, "Errors"); a
// field breaking several rules reports the first. Lines are checked in
// payout_lines.go.

// createPayoutRequest is seed 002's PaymentCreateRequest, field by field.
// Times are strings so that a bad one is reported as such, not as a type
// error; null is the same as absent.
type createPayoutRequest struct {
	ExternalPaymentID *string `json:"external_payment_id"`
	ExternalSource    *string `json:"external_source"`
	Status            *string `json:"status"`
	Method            *string `json:"method"`
	TotalAmount       decimal `json:"total_amount"`
	Currency          *string `json:"currency"`
	payoutSharedFields
	Lines        []lineRequest `json:"lines"`
	ReplaceLines *bool         `json:"replace_lines"`
}

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
	ExternalPaymentID string               `json:"external_payment_id"`
	ExternalSource    string               `json:"external_source"`
	Status            payment.PayoutStatus `json:"status"`
	Method            payment.Method       `json:"method"`
	Amount            payment.Money        `json:"total_amount"`
	Fields            payoutFields         `json:"fields"`
	Lines             []validLine          `json:"lines"`
	ReplaceLines      bool                 `json:"replace_lines"`
	// at is when the request was checked.
	at time.Time
	// statusGiven: the request named a status (a later push without one
	// leaves the status as it is).
	statusGiven bool
}

// live reports whether payd sends the payout through the gateway.
func (v validPayout) live() bool { return !v.Status.Imported() && v.Method.BankRail() }

// beneficiary is who the payout pays.
func (f payoutFields) beneficiary() payment.Beneficiary {
	return payment.Beneficiary{Name: f.BeneficiaryName, BankCountry: f.BeneficiaryBankCountry, SwiftBIC: f.BeneficiarySwiftBIC,
		IBAN: f.BeneficiaryIBAN, Account: f.BeneficiaryAccount, Routing: f.BeneficiaryRouting}
}

// accountField names the request field that holds the account the gateway
// pays.
func (f payoutFields) accountField(m payment.Method) string {
	if f.beneficiary().PaysIBAN(m) {
		return "beneficiary_iban"
	}
	return "beneficiary_account"
}

// valid checks a create request now and returns one error code per bad
// field.
func (req createPayoutRequest) valid(lim limits) (validPayout, map[string]string) {
	bad := map[string]string{}
	v := validPayout{ExternalSource: "UNKNOWN", Status: payment.PayoutInitiated, ReplaceLines: true, at: lim.now()}

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
		v.Status, v.statusGiven = payment.PayoutStatus(*req.Status), true
		if !v.Status.Known() {
			bad["status"] = "status_invalid"
		}
	}
	m, methodCode := oneOf("method", req.Method, payoutMethods)
	if methodCode != "" {
		bad["method"] = methodCode
	}
	v.Method = m

	cur := currencyCode(req.Currency)
	curCode := checkCurrency(cur)
	switch {
	case curCode != "":
		bad["currency"] = curCode
	case m.RailCurrency() != "" && cur != m.RailCurrency():
		bad["currency"] = "currency_not_supported_for_method"
	}
	curOK := curCode == ""
	switch {
	case curOK:
		if minor, code := parseAmount(req.TotalAmount, cur, lim.maxAmount, false); code != "" {
			bad["total_amount"] = "total_" + code
		} else {
			v.Amount = payment.Money{Minor: minor, Currency: cur}
		}
	case req.TotalAmount.absent():
		bad["total_amount"] = "total_amount_required"
	}

	f := &v.Fields
	f.checkTimes(req, v.Status, v.at, bad)
	f.checkReferences(req, m, v.Status, bad)
	f.checkParties(req, m, bad)
	if methodCode == "" && !v.Status.Imported() && m.BankRail() {
		f.checkRequired(m, bad)
	}

	if req.Lines != nil {
		lines, sum := checkLines(req.Lines, v.Amount.Currency, lim.maxAmount, bad)
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
func (f *payoutFields) checkTimes(req createPayoutRequest, status payment.PayoutStatus, now time.Time, bad map[string]string) {
	given := map[payment.PayoutTime]time.Time{}
	parse := func(k payment.PayoutTime, p *string, into **time.Time) {
		name := string(k)
		t, code := parseTime(p)
		if code == "" && t != nil {
			code = status.CheckTime(k, *t, now)
		}
		switch {
		case code != "":
			bad[name] = name + "_" + code
		case t != nil:
			*into = t
			given[k] = *t
		}
	}
	parse(payment.PayoutScheduledAt, req.ScheduledAt, &f.ScheduledAt)
	parse(payment.PayoutSubmittedAt, req.SubmittedAt, &f.SubmittedAt)
	parse(payment.PayoutSentAt, req.SentAt, &f.SentAt)
	parse(payment.PayoutExpectedSettlementAt, req.ExpectedSettlementAt, &f.ExpectedSettlementAt)
	parse(payment.PayoutSettledAt, req.SettledAt, &f.SettledAt)
	parse(payment.PayoutReturnedAt, req.ReturnedAt, &f.ReturnedAt)
	parse(payment.PayoutCheckMailedAt, req.CheckMailedAt, &f.CheckMailedAt)
	parse(payment.PayoutCheckClearedAt, req.CheckClearedAt, &f.CheckClearedAt)
	for later, earlier := range payment.PayoutTimesOutOfOrder(given) {
		if _, done := bad[string(later)]; !done {
			bad[string(later)] = string(later) + "_before_" + string(earlier)
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
func (f *payoutFields) checkReferences(req createPayoutRequest, m payment.Method, status payment.PayoutStatus, bad map[string]string) {
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
	for _, ref := range []struct {
		r    payment.RailReference
		p    *string
		into *string
	}{
		{payment.ACHTraceNumber, req.ACHTraceNumber, &f.ACHTraceNumber},
		{payment.SEPAEndToEndID, req.SEPAEndToEndID, &f.SEPAEndToEndID},
		{payment.RTPTraceID, req.RTPTraceID, &f.RTPTraceID},
		{payment.CheckNumber, req.CheckNumber, &f.CheckNumber},
	} {
		name := string(ref.r)
		if onlyFor(name, text(name, ref.p, ref.r.MaxLen(), ref.into), ref.r.Rail()) && !ref.r.Valid(*ref.into) {
			bad[name] = name + "_invalid"
		}
	}
	onlyFor("check_mailed_at", f.CheckMailedAt != nil, payment.MethodCheck)
	onlyFor("check_cleared_at", f.CheckClearedAt != nil, payment.MethodCheck)
	if onlyFor("check_stop_payment", req.CheckStopPayment != nil, payment.MethodCheck) {
		f.CheckStopPayment = req.CheckStopPayment
		// a stopped check is never paid: only an outcome that paid nothing
		// can carry a stop payment
		if *req.CheckStopPayment && !status.AllowsStopPayment() {
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
	if m.USOnly() && f.BeneficiaryBankCountry != "" && f.BeneficiaryBankCountry != "US" {
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
	beneficiaryUS := payment.USBank(f.BeneficiaryBankCountry, m)
	payerUS := payment.USBank(f.PayerBankCountry, m)
	f.BeneficiaryRouting = routing("beneficiary_routing", req.BeneficiaryRouting, beneficiaryUS, bad)
	f.PayerRouting = routing("payer_routing", req.PayerRouting, payerUS, bad)
	f.BeneficiaryAccount = account("beneficiary_account", req.BeneficiaryAccount, beneficiaryUS, bad)
	f.PayerAccount = account("payer_account", req.PayerAccount, payerUS, bad)
}

// checkRequired names what a bank needs to send a payout on rail m.
func (f *payoutFields) checkRequired(m payment.Method, bad map[string]string) {
	for _, name := range f.beneficiary().Missing(m) {
		if _, done := bad[name]; !done {
			bad[name] = name + "_required"
		}
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

// routing validates a routing number (payment.CheckRouting).
func routing(name string, p *string, us bool, bad map[string]string) string {
	r := str(p)
	if r == "" {
		return ""
	}
	if code := payment.CheckRouting(r, us); code != "" {
		bad[name] = name + "_" + code
		return ""
	}
	return r
}

// account validates an account number (payment.ValidAccountNumber).
func account(name string, p *string, us bool, bad map[string]string) string {
	a := str(p)
	if a != "" && !payment.ValidAccountNumber(a, us) {
		bad[name] = name + "_invalid"
		return ""
	}
	return a
}

// adviceURL accepts an absolute http(s) URL of at most 2048 characters.
func adviceURL(s string) bool {
	if len(s) > 2048 || !printable(s) {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}
