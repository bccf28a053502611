package payment

import (
	"reflect"
	"testing"
)

// TestRailRules: which currency and banks each rail takes, which
// references belong to which rail and their formats, and the account and
// routing numbers of US and other banks.
func TestRailRules(t *testing.T) {
	t.Parallel()
	for m, want := range map[Method]string{MethodACH: "USD", MethodRTP: "USD", MethodSEPA: "EUR", MethodWire: "",
		MethodSWIFT: "", MethodCheck: "", MethodCard: ""} {
		if got := m.RailCurrency(); got != want {
			t.Errorf("%s carries %q, want %q", m, got, want)
		}
		if got := m.USOnly(); got != (want == "USD") {
			t.Errorf("%s US only: %v", m, got)
		}
	}
	for _, c := range []struct {
		country string
		m       Method
		want    bool
	}{{"US", MethodSWIFT, true}, {"", MethodACH, true}, {"", MethodRTP, true}, {"", MethodWire, true},
		{"", MethodSEPA, false}, {"", MethodCheck, false}, {"GB", MethodWire, false}} {
		if got := USBank(c.country, c.m); got != c.want {
			t.Errorf("USBank(%q, %s) = %v", c.country, c.m, got)
		}
	}
	refs := []struct {
		r      RailReference
		rail   Method
		max    int
		good   []string
		refuse []string
	}{
		{ACHTraceNumber, MethodACH, 15, []string{"021000021234567"}, []string{"02100002123456", "02100002123456x", ""}},
		{SEPAEndToEndID, MethodSEPA, 35, []string{"E2E/1", "a-b?c:(d).e,f'g+ h"}, []string{"/E2E", "E2E/", "E//2", "E2E_1", "é"}},
		{RTPTraceID, MethodRTP, 35, []string{"rtp-1_X"}, []string{"rtp 1", "rtp\x7f", ""}},
		{CheckNumber, MethodCheck, 15, []string{"77"}, []string{"7a", ""}},
		{"unknown", "", 0, nil, []string{"x"}},
	}
	for _, c := range refs {
		if c.r.Rail() != c.rail || c.r.MaxLen() != c.max {
			t.Errorf("%s: rail %s max %d", c.r, c.r.Rail(), c.r.MaxLen())
		}
		for _, s := range c.good {
			if !c.r.Valid(s) {
				t.Errorf("%s refuses %q", c.r, s)
			}
		}
		for _, s := range c.refuse {
			if c.r.Valid(s) {
				t.Errorf("%s accepts %q", c.r, s)
			}
		}
	}
	for _, c := range []struct {
		a    string
		us   bool
		want bool
	}{{"1234", true, true}, {"123", true, false}, {"123456789012345678", true, false}, {"12AB", true, false},
		{"GB12AB", false, true}, {"1234567890123456789012345678901234", false, true},
		{"12345678901234567890123456789012345", false, false}, {"12-34", false, false}, {"", false, false}} {
		if got := ValidAccountNumber(c.a, c.us); got != c.want {
			t.Errorf("ValidAccountNumber(%q, us %v) = %v", c.a, c.us, got)
		}
	}
	for _, c := range []struct {
		r    string
		us   bool
		want string
	}{{"021000021", true, ""}, {"021000022", true, "checksum_failed"}, {"40-30-20", true, "invalid"},
		{"403020", false, ""}, {"40-30-20", false, "invalid"}} {
		if got := CheckRouting(c.r, c.us); got != c.want {
			t.Errorf("CheckRouting(%q, us %v) = %q, want %q", c.r, c.us, got, c.want)
		}
	}
}

// TestBeneficiaryAccount: the account the gateway pays (and that a return
// blocks) is the IBAN on SEPA or when no account number is given, else the
// account number at its routing number, or at its BIC when there is none.
func TestBeneficiaryAccount(t *testing.T) {
	t.Parallel()
	iban := "DE89370400440532013000"
	both := Beneficiary{IBAN: iban, Account: "123456789", Routing: "021000021"}
	cases := []struct {
		b    Beneficiary
		m    Method
		key  string
		fp   string
		iban bool
	}{
		{both, MethodSEPA, iban, AccountFingerprint("", "", iban), true},
		{both, MethodWire, "123456789", AccountFingerprint("021000021", "123456789", ""), false},
		{Beneficiary{IBAN: iban}, MethodSWIFT, iban, AccountFingerprint("", "", iban), true},
		{Beneficiary{Account: "123", SwiftBIC: "DEUTDEFF"}, MethodSWIFT, "123", AccountFingerprint("DEUTDEFF", "123", ""), false},
		{Beneficiary{Name: "Ada"}, MethodCheck, "", "", false},
	}
	for _, c := range cases {
		if got := c.b.AccountKey(c.m); got != c.key {
			t.Errorf("%+v on %s pays %q, want %q", c.b, c.m, got, c.key)
		}
		if got := c.b.AccountFingerprint(c.m); got != c.fp {
			t.Errorf("%+v on %s fingerprint %q, want %q", c.b, c.m, got, c.fp)
		}
		if got := c.b.PaysIBAN(c.m); got != c.iban {
			t.Errorf("%+v on %s pays the IBAN: %v", c.b, c.m, got)
		}
	}
}

// TestBeneficiaryMissing: what each rail needs to send a payout.
func TestBeneficiaryMissing(t *testing.T) {
	t.Parallel()
	none := Beneficiary{}
	cases := map[Method][]string{
		MethodACH:   {"beneficiary_name", "beneficiary_account", "beneficiary_routing"},
		MethodRTP:   {"beneficiary_name", "beneficiary_account", "beneficiary_routing"},
		MethodWire:  {"beneficiary_name", "beneficiary_account", "beneficiary_routing"},
		MethodSEPA:  {"beneficiary_name", "beneficiary_iban"},
		MethodSWIFT: {"beneficiary_name", "beneficiary_swift_bic", "beneficiary_account"},
		MethodCheck: {"beneficiary_name", "beneficiary_account"},
		MethodCard:  {"beneficiary_name"},
	}
	for m, want := range cases {
		if got := none.Missing(m); !reflect.DeepEqual(got, want) {
			t.Errorf("%s needs %v, want %v", m, got, want)
		}
	}
	wire := Beneficiary{Name: "Ada", IBAN: "DE89370400440532013000", SwiftBIC: "DEUTDEFF"}
	if got := wire.Missing(MethodWire); got != nil {
		t.Errorf("a wire to an IBAN at a BIC lacks %v", got)
	}
	if got := wire.Missing(MethodACH); !reflect.DeepEqual(got, []string{"beneficiary_account", "beneficiary_routing"}) {
		t.Errorf("ACH to an IBAN lacks %v", got)
	}
}
