package payment

import (
	"strings"
	"testing"
)

func TestCheckIBAN(t *testing.T) {
	t.Parallel()
	cases := []struct {
		iban, want string
	}{
		{"DE89370400440532013000", ""},
		{"GB29NWBK60161331926819", ""},
		{"FR1420041010050500013M02606", ""},
		{"NL91ABNA0417164300", ""},
		{"NO9386011117947", ""},
		{"MT84MALT011000012345MTLCAST001S", ""},
		{NormalizeIBAN("de89 3704 0044 0532 0130 00"), ""},
		{"DE88370400440532013000", "checksum_failed"},
		{"DE89370400440532013001", "checksum_failed"},
		{"DE8937040044053201300", "length_invalid"},
		{"DE893704004405320130000", "length_invalid"},
		{"US12345678901234567890", "country_unsupported"},
		{"XX89370400440532013000", "country_unsupported"},
		{"D189370400440532013000", "invalid"},
		{"DEXX370400440532013000", "invalid"},
		{"DE89-70400440532013000", "invalid"},
		{"DE89", "invalid"},
		{"", "invalid"},
		{strings.Repeat("A", 35), "invalid"},
	}
	for _, c := range cases {
		if got := CheckIBAN(c.iban); got != c.want {
			t.Errorf("CheckIBAN(%q) = %q, want %q", c.iban, got, c.want)
		}
	}
	for cc, n := range ibanLengths {
		if len(cc) != 2 || !isAlpha(cc) || n < 15 || n > 34 {
			t.Errorf("ibanLengths[%q] = %d", cc, n)
		}
	}
}

func TestCheckBIC(t *testing.T) {
	t.Parallel()
	for bic, want := range map[string]string{
		"DEUTDEFF": "", "DEUTDEFF500": "", "NWBKGB2L": "", "BOFAUS3N": "", "CHASUS33XXX": "",
		"DEUTDEFF5000": "too_long", "DEUTDEF": "invalid", "DEUTDEFF50": "invalid", "DEU1DEFF": "invalid",
		"DEUTD1FF": "invalid", "deutdeff": "invalid", "DEUTDE-F": "invalid", "": "invalid",
	} {
		if got := CheckBIC(bic); got != want {
			t.Errorf("CheckBIC(%q) = %q, want %q", bic, got, want)
		}
	}
}

func TestCheckABA(t *testing.T) {
	t.Parallel()
	for rtn, want := range map[string]string{
		"021000021":  "", // JPMorgan Chase NY
		"011000015":  "", // Federal Reserve Bank of Boston
		"121000358":  "", // Bank of America CA
		"026009593":  "",
		"021000022":  "checksum_failed",
		"123456789":  "checksum_failed",
		"02100002":   "invalid",
		"0210000211": "invalid",
		"02100002a":  "invalid",
		"":           "invalid",
	} {
		if got := CheckABA(rtn); got != want {
			t.Errorf("CheckABA(%q) = %q, want %q", rtn, got, want)
		}
	}
}

func TestAccountFingerprint(t *testing.T) {
	t.Parallel()
	a := AccountFingerprint("021000021", "10002", "")
	if len(a) != 64 || a != AccountFingerprint("021000021", "10002", "") {
		t.Fatalf("fingerprint %q is not a stable hex SHA-256", a)
	}
	if a == AccountFingerprint("011000015", "10002", "") || a == AccountFingerprint("021000021", "10003", "") {
		t.Errorf("different accounts share a fingerprint")
	}
	if AccountFingerprint("x", "y", "DE89370400440532013000") != AccountFingerprint("", "", "DE89370400440532013000") {
		t.Errorf("an IBAN alone must identify the account")
	}
}

func TestReturnReason(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]string{
		"R01": "insufficient funds", "R02": "account closed", "R03": "no account or unable to locate account",
		"R04": "invalid account number", "R09": "uncollected funds", "R10": "returned by the receiving bank",
		"": "returned by the receiving bank",
	} {
		if got := ReturnReason(code); got != want {
			t.Errorf("ReturnReason(%q) = %q, want %q", code, got, want)
		}
	}
}
