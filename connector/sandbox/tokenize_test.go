package sandbox

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// TestParseSessionData: every documented session_data form, and what is
// refused.
func TestParseSessionData(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in     string
		pm     string
		method payment.Method
	}{
		{"sandbox:pm_card_visa", CardVisa, payment.MethodCard},
		{"sandbox:pm_card_3ds", Card3DS, payment.MethodCard},
		{"sandbox:pm_card_declined", CardDeclined, payment.MethodCard},
		{"sandbox:pm_card_insufficient_funds", CardInsufficientFunds, payment.MethodCard},
		{"sandbox:pm_card_flaky", CardFlaky, payment.MethodCard},
		{"sandbox:pm_card_timeout_after_charge", CardTimeoutAfterCharge, payment.MethodCard},
		{"sandbox:pm_card_unknown", CardUnknown, payment.MethodCard},
		{"sandbox:pm_card_visa:page-Nonce_1", CardVisa, payment.MethodCard},
		{"sandbox:ach:021000021:123456789", "123456789", payment.MethodACH},
		{"sandbox:ach:021000021:10001", "10001", payment.MethodACH},
		{"sandbox:ach:021000021:1234", "1234", payment.MethodACH},
		{"sandbox:ach:021000021:12345678901234567", "12345678901234567", payment.MethodACH},
		{"sandbox:pm_card_gold", "", ""},
		{"pm_card_visa", "", ""},
		{"sandbox:", "", ""},
		{"sandbox:pm_card_visa:", "", ""},
		{"sandbox:pm_card_visa:a:b", "", ""},
		{"sandbox:pm_card_visa:" + strings.Repeat("n", 65), "", ""},
		{"sandbox:ach:02100002:123456789", "", ""},
		{"sandbox:ach:0210000211:123456789", "", ""},
		{"sandbox:ach:021000021:123", "", ""},
		{"sandbox:ach:021000021:123456789012345678", "", ""},
		{"sandbox:ach:021000021:12345678a", "", ""},
		{"sandbox:ach:021000021", "", ""},
		{"SANDBOX:pm_card_visa", "", ""},
		{"sandbox:pm_card_visa" + strings.Repeat(" ", 1024), "", ""},
	} {
		pm, m, ok := ParseSessionData(c.in)
		if ok != (c.pm != "") || pm != c.pm || m != c.method {
			t.Errorf("ParseSessionData(%.40q) = %q, %q, %v; want %q, %q", c.in, pm, m, ok, c.pm, c.method)
		}
	}
}

// TestTokenizeCharges: a token charges as what it stands for, for one
// payment only (its attempts may repeat it); an unknown token or one of
// another method is declined; a zero amount verifies a card and books
// nothing. Over HTTP, a refused value is connector.ErrSessionDataInvalid
// and the answer never echoes it.
func TestTokenizeCharges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(Config{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	cl := NewClient(srv.URL, nil).(*Client)
	for _, tz := range []connector.Tokenizer{s, cl} {
		tok, err := tz.Tokenize(ctx, connector.TokenizeRequest{SessionData: "sandbox:pm_card_declined"})
		if err != nil || !strings.HasPrefix(tok.Token, "tok_") || tok.Method != payment.MethodCard || tok.Type != "card" {
			t.Fatalf("tokenize: %+v %v", tok, err)
		}
		res, err := s.Charge(ctx, connector.ChargeRequest{IdempotencyKey: tok.Token + ":1", PaymentID: "pay_" + tok.Token,
			Amount: payment.Money{Minor: 100, Currency: "USD"}, Method: payment.MethodCard, PaymentMethodID: tok.Token})
		if err != nil || res.Status != connector.StatusDeclined || res.Code != "card_declined" {
			t.Errorf("declined token: %+v %v", res, err)
		}
		_, err = tz.Tokenize(ctx, connector.TokenizeRequest{SessionData: "sandbox:ach:021000021:99887766554433x"})
		if !errors.Is(err, connector.ErrSessionDataInvalid) || strings.Contains(err.Error(), "99887766554433") {
			t.Errorf("invalid session_data: %v", err)
		}
	}
	tok, _ := s.Tokenize(ctx, connector.TokenizeRequest{SessionData: "sandbox:pm_card_visa:n"})
	charge := func(pay, key string, amount int64, m payment.Method, pm string) connector.Result {
		res, err := s.Charge(ctx, connector.ChargeRequest{IdempotencyKey: key, PaymentID: pay,
			Amount: payment.Money{Minor: amount, Currency: "USD"}, Method: m, PaymentMethodID: pm})
		if err != nil {
			t.Fatalf("charge %s: %v", key, err)
		}
		return res
	}
	if r := charge("pay_a", "pay_a:1", 500, payment.MethodCard, tok.Token); r.Status != connector.StatusSucceeded {
		t.Fatalf("visa token: %+v", r)
	}
	if r := charge("pay_a", "pay_a:2", 500, payment.MethodCard, tok.Token); r.Status != connector.StatusSucceeded {
		t.Errorf("the same payment's next attempt: %+v", r)
	}
	if r := charge("pay_b", "pay_b:1", 500, payment.MethodCard, tok.Token); r.Code != "token_invalid" {
		t.Errorf("another payment with the token: %+v", r)
	}
	if r := charge("pay_c", "pay_c:1", 500, payment.MethodCard, "tok_never"); r.Code != "token_invalid" {
		t.Errorf("unknown token: %+v", r)
	}
	ach, _ := s.Tokenize(ctx, connector.TokenizeRequest{SessionData: "sandbox:ach:021000021:123456789"})
	if r := charge("pay_d", "pay_d:1", 500, payment.MethodCard, ach.Token); r.Code != "token_invalid" {
		t.Errorf("ACH token charged as a card: %+v", r)
	}
	if r := charge("pay_d", "pay_d:2", 500, payment.MethodACH, ach.Token); r.Status != connector.StatusSent {
		t.Errorf("ACH token: %+v", r)
	}
	ver, _ := s.Tokenize(ctx, connector.TokenizeRequest{SessionData: "sandbox:pm_card_visa"})
	if r := charge("pay_e", "pay_e:1", 0, payment.MethodCard, ver.Token); r.Status != connector.StatusSucceeded {
		t.Errorf("verification: %+v", r)
	}
	if r, err := s.Void(ctx, "pay_e:1"); err != nil || r.Status != connector.StatusVoided {
		t.Errorf("void of a verification: %+v %v", r, err)
	}
	for _, c := range s.Ledger() {
		if c.PaymentID == "pay_e" {
			t.Errorf("a verification booked %+v", c)
		}
	}
	if n := len(s.Ledger()); n != 3 { // pay_a's two attempts, pay_d, and no verification
		t.Errorf("ledger has %d entries: %+v", n, s.Ledger())
	}
}

// FuzzParseSessionData: any session_data never panics the parser; what it
// accepts is one of the documented forms, for a card the sandbox knows or
// an all-digit account of 4 to 17 digits.
func FuzzParseSessionData(f *testing.F) {
	for _, s := range []string{"sandbox:pm_card_visa", "sandbox:pm_card_3ds:n0nce", "sandbox:ach:021000021:123456789",
		"sandbox:ach::", "sandbox:", "", "sandbox:pm_card_visa:", "sandbox:ach:021000021:1234567890123456789"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		pm, m, ok := ParseSessionData(in)
		if !ok {
			if pm != "" || m != "" {
				t.Fatalf("refused %q but answered %q %q", in, pm, m)
			}
			return
		}
		if !strings.HasPrefix(in, SessionDataPrefix) || len(in) > maxSessionData {
			t.Fatalf("accepted %q", in)
		}
		switch m {
		case payment.MethodCard:
			if !sandboxCards[pm] {
				t.Fatalf("accepted card %q from %q", pm, in)
			}
		case payment.MethodACH:
			if !allDigits(pm) || len(pm) < 4 || len(pm) > 17 || !strings.HasSuffix(in, ":"+pm) {
				t.Fatalf("accepted account %q from %q", pm, in)
			}
		default:
			t.Fatalf("method %q from %q", m, in)
		}
	})
}
