package sandbox

import (
	"context"
	"fmt"
	"strings"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// Tokenization (seed 003's session_data): the sandbox accepts documented
// test values, so that a server-side integration can be tested without a
// browser, and the hosted payment page produces the same forms:
//
//	sandbox:<card>[:<nonce>]                 a sandbox card: pm_card_visa, pm_card_3ds, pm_card_declined,
//	                                         pm_card_insufficient_funds, pm_card_flaky,
//	                                         pm_card_timeout_after_charge, pm_card_unknown; nonce is
//	                                         1 to 64 of [A-Za-z0-9_-], ignored
//	sandbox:ach:<routing>:<account>          an ACH debit: routing exactly 9 digits, account 4 to 17
//	                                         digits, with the magic accounts of the bank rail
//	                                         (123456789 settles, 100XX is returned with RXX,
//	                                         11111111… fails at submission, any other settles)
//
// Anything else is connector.ErrSessionDataInvalid. The token (tok_ and
// 128 random bits) charges one payment only: the first payment that
// charges it owns it, and its attempts may repeat it. What it stands for
// stays in the sandbox.

// SessionDataPrefix starts every session_data value the sandbox accepts.
const SessionDataPrefix = "sandbox:"

// sandboxCards are the card values session_data may name.
var sandboxCards = map[string]bool{CardVisa: true, Card3DS: true, CardDeclined: true, CardInsufficientFunds: true,
	CardFlaky: true, CardTimeoutAfterCharge: true, CardUnknown: true}

// maxSessionData bounds what is parsed at all.
const maxSessionData = 1024

type tokenRecord struct {
	method    payment.Method
	pm        string // what the sandbox charges: a card value or a bank account
	paymentID string // the payment that owns it, once charged
}

// ParseSessionData reads a session_data value: the payment method id the
// sandbox charges and its method, or ok false. It never returns the value
// in an error.
func ParseSessionData(v string) (pm string, method payment.Method, ok bool) {
	if len(v) > maxSessionData {
		return "", "", false
	}
	rest, found := strings.CutPrefix(v, SessionDataPrefix)
	if !found {
		return "", "", false
	}
	parts := strings.Split(rest, ":")
	switch {
	case len(parts) == 3 && parts[0] == "ach":
		routing, account := parts[1], parts[2]
		if len(routing) != 9 || !allDigits(routing) || len(account) < 4 || len(account) > 17 || !allDigits(account) {
			return "", "", false
		}
		return account, payment.MethodACH, true
	case (len(parts) == 1 || len(parts) == 2) && sandboxCards[parts[0]]:
		if len(parts) == 2 && !validNonce(parts[1]) {
			return "", "", false
		}
		return parts[0], payment.MethodCard, true
	}
	return "", "", false
}

func validNonce(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')) {
			return false
		}
	}
	return true
}

// Tokenize implements connector.Tokenizer.
func (s *Sandbox) Tokenize(ctx context.Context, req connector.TokenizeRequest) (connector.Token, error) {
	if err := s.arrive(ctx); err != nil {
		return connector.Token{}, err
	}
	pm, method, ok := ParseSessionData(req.SessionData)
	if !ok {
		return connector.Token{}, fmt.Errorf("sandbox: tokenize: %w", connector.ErrSessionDataInvalid)
	}
	tok := newReference("tok_")
	s.mu.Lock()
	s.tokens[tok] = &tokenRecord{method: method, pm: pm}
	s.mu.Unlock()
	return connector.Token{Token: tok, Method: method, Type: strings.ToLower(string(method))}, nil
}

// resolveLocked is the payment method a charge request pays with: the one
// its token stands for (the token then belongs to its payment), or the
// request's own payment method id. ok is false for a token the sandbox
// never issued, of another method, or owned by another payment.
func (s *Sandbox) resolveLocked(req connector.ChargeRequest) (string, bool) {
	if !strings.HasPrefix(req.PaymentMethodID, "tok_") {
		return req.PaymentMethodID, true
	}
	t, ok := s.tokens[req.PaymentMethodID]
	if !ok || t.method != req.Method || (t.paymentID != "" && t.paymentID != req.PaymentID) {
		return "", false
	}
	t.paymentID = req.PaymentID
	return t.pm, true
}
