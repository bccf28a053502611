package payment

import "strings"

// What a bank needs to send a payout on each rail, and the formats of the
// references and account numbers rails use.

// RailCurrency is the only currency rail m carries: USD on ACH and RTP, EUR
// on SEPA; "" when it carries any.
func (m Method) RailCurrency() string {
	switch m {
	case MethodACH, MethodRTP:
		return "USD"
	case MethodSEPA:
		return "EUR"
	}
	return ""
}

// USOnly reports whether rail m reaches US banks only (ACH, RTP).
func (m Method) USOnly() bool { return m == MethodACH || m == MethodRTP }

// USBank reports whether a bank in country (ISO 3166-1 alpha-2, "" when not
// given) reached on rail m uses ABA routing numbers and numeric account
// numbers: a US bank, or one not named on a US rail (ACH, RTP, wire).
func USBank(country string, m Method) bool {
	return country == "US" || (country == "" && (m == MethodACH || m == MethodRTP || m == MethodWire))
}

// CheckRouting checks a routing number: an ABA number with its checksum at
// a US bank (CheckABA's codes), else up to 34 letters and digits (sort
// codes, transit numbers): "invalid". "" when it is good.
func CheckRouting(r string, us bool) string {
	if us {
		return CheckABA(r)
	}
	if len(r) > 34 || !alphanumeric(r) {
		return "invalid"
	}
	return ""
}

// ValidAccountNumber reports whether a is an account number: 4 to 17
// digits at a US bank, else up to 34 letters and digits (ISO 13616's
// limit).
func ValidAccountNumber(a string, us bool) bool {
	if us && (len(a) < 4 || len(a) > 17 || !isDigits(a)) {
		return false
	}
	return len(a) <= 34 && alphanumeric(a)
}

// RailReference is a reference that identifies a payout on one rail, named
// by its field.
type RailReference string

const (
	ACHTraceNumber RailReference = "ach_trace_number"
	SEPAEndToEndID RailReference = "sepa_end_to_end_id"
	RTPTraceID     RailReference = "rtp_trace_id"
	CheckNumber    RailReference = "check_number"
)

var railReferences = map[RailReference]struct {
	rail   Method
	maxLen int // in characters
	valid  func(string) bool
}{
	ACHTraceNumber: {MethodACH, 15, func(s string) bool { return len(s) == 15 && isDigits(s) }},
	SEPAEndToEndID: {MethodSEPA, 35, sepaText},
	RTPTraceID:     {MethodRTP, 35, printableASCII},
	CheckNumber:    {MethodCheck, 15, isDigits},
}

// Rail is the only method whose payouts carry r.
func (r RailReference) Rail() Method { return railReferences[r].rail }

// MaxLen is the most characters r has.
func (r RailReference) MaxLen() int { return railReferences[r].maxLen }

// Valid reports whether s has r's format: an ACH trace number is 15
// digits, a SEPA end-to-end id is SEPA text, an RTP trace id is printable
// ASCII, a check number is digits.
func (r RailReference) Valid(s string) bool {
	v := railReferences[r].valid
	return v != nil && v(s)
}

// sepaText reports whether s is a SEPA identifier: the SEPA character set
// (Latin letters, digits, / - ? : ( ) . , ' + and space), never starting or
// ending with '/' and never containing "//".
func sepaText(s string) bool {
	if s == "" || s[0] == '/' || s[len(s)-1] == '/' || strings.Contains(s, "//") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isDigit(c) || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || strings.IndexByte("/-?:().,'+ ", c) >= 0) {
			return false
		}
	}
	return true
}

// printableASCII reports whether s is one or more visible ASCII characters
// (no spaces).
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}

func alphanumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isDigit(c) || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return s != ""
}

// Beneficiary is who a payout pays, normalized: a name and a bank account.
type Beneficiary struct {
	Name        string
	BankCountry string // ISO 3166-1 alpha-2
	SwiftBIC    string
	IBAN        string
	Account     string
	Routing     string
}

// PaysIBAN reports whether the gateway pays b's IBAN on rail m (on SEPA, or
// when no account number is given) rather than its account number.
func (b Beneficiary) PaysIBAN(m Method) bool {
	return b.IBAN != "" && (m == MethodSEPA || b.Account == "")
}

// AccountKey is the account the gateway pays: the IBAN or the account
// number (PaysIBAN).
func (b Beneficiary) AccountKey(m Method) string {
	if b.PaysIBAN(m) {
		return b.IBAN
	}
	return b.Account
}

// AccountFingerprint identifies the account the gateway pays (AccountKey)
// for blocking after returns (AccountFingerprint); "" when none is named.
// Without a routing number the BIC stands for the bank, so equal account
// numbers at two banks stay apart.
func (b Beneficiary) AccountFingerprint(m Method) string {
	if b.PaysIBAN(m) {
		return AccountFingerprint("", "", b.IBAN)
	}
	if b.Account == "" {
		return ""
	}
	routing := b.Routing
	if routing == "" {
		routing = b.SwiftBIC
	}
	return AccountFingerprint(routing, b.Account, "")
}

// Missing names, by the payout's field names, what a bank needs to send a
// payout to b on rail m and b lacks.
func (b Beneficiary) Missing(m Method) []string {
	var out []string
	need := func(field, value string) {
		if value == "" {
			out = append(out, field)
		}
	}
	need("beneficiary_name", b.Name)
	switch m {
	case MethodACH, MethodRTP:
		need("beneficiary_account", b.Account)
		need("beneficiary_routing", b.Routing)
	case MethodWire:
		need("beneficiary_account", b.Account+b.IBAN)
		need("beneficiary_routing", b.Routing+b.SwiftBIC)
	case MethodSEPA:
		need("beneficiary_iban", b.IBAN)
	case MethodSWIFT:
		need("beneficiary_swift_bic", b.SwiftBIC)
		need("beneficiary_account", b.Account+b.IBAN)
	case MethodCheck:
		// the payee's account: the bank matches the deposited check to it
		// (and the sandbox decides the outcome by it)
		need("beneficiary_account", b.Account)
	}
	return out
}
