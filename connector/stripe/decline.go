package stripe

import "github.com/payd/payd/payment"

// declineClasses is the one table from Stripe's decline_code (or, when a
// card error has none, its code) to payd's failure class. hard: the card
// will not pay, no new attempt; soft: it may pay later (funds, limits), a
// new attempt after the policy's delay; transient: the issuer or network
// failed, a new attempt soon. A code not in the table is hard: an unknown
// decline is not retried blindly.
var declineClasses = map[string]payment.FailureClass{
	// soft: the customer's funds or limits
	"insufficient_funds":              payment.FailureSoftDecline,
	"card_velocity_exceeded":          payment.FailureSoftDecline,
	"withdrawal_count_limit_exceeded": payment.FailureSoftDecline,
	// transient: the issuer or the network, not the card
	"processing_error":            payment.FailureTransient,
	"issuer_not_available":        payment.FailureTransient,
	"try_again_later":             payment.FailureTransient,
	"reenter_transaction":         payment.FailureTransient,
	"approve_with_id":             payment.FailureTransient,
	"call_issuer":                 payment.FailureHardDecline,
	"card_declined":               payment.FailureHardDecline,
	"generic_decline":             payment.FailureHardDecline,
	"do_not_honor":                payment.FailureHardDecline,
	"do_not_try_again":            payment.FailureHardDecline,
	"expired_card":                payment.FailureHardDecline,
	"incorrect_cvc":               payment.FailureHardDecline,
	"invalid_cvc":                 payment.FailureHardDecline,
	"incorrect_number":            payment.FailureHardDecline,
	"invalid_number":              payment.FailureHardDecline,
	"invalid_expiry_month":        payment.FailureHardDecline,
	"invalid_expiry_year":         payment.FailureHardDecline,
	"lost_card":                   payment.FailureHardDecline,
	"stolen_card":                 payment.FailureHardDecline,
	"pickup_card":                 payment.FailureHardDecline,
	"fraudulent":                  payment.FailureHardDecline,
	"restricted_card":             payment.FailureHardDecline,
	"card_not_supported":          payment.FailureHardDecline,
	"currency_not_supported":      payment.FailureHardDecline,
	"transaction_not_allowed":     payment.FailureHardDecline,
	"not_permitted":               payment.FailureHardDecline,
	"authentication_required":     payment.FailureHardDecline,
	"security_violation":          payment.FailureHardDecline,
	"stop_payment_order":          payment.FailureHardDecline,
	"revocation_of_authorization": payment.FailureHardDecline,
	"merchant_blacklist":          payment.FailureHardDecline,
	"amount_too_large":            payment.FailureHardDecline,
	"amount_too_small":            payment.FailureHardDecline,
}

// ClassifyDecline answers payd's failure class of a Stripe decline and the
// code payd records: the decline_code when Stripe gave one, else the code.
func ClassifyDecline(declineCode, code string) (payment.FailureClass, string) {
	for _, c := range []string{declineCode, code} {
		if c == "" {
			continue
		}
		if class, ok := declineClasses[c]; ok {
			return class, c
		}
	}
	if declineCode != "" {
		return payment.FailureHardDecline, declineCode
	}
	if code != "" {
		return payment.FailureHardDecline, code
	}
	return payment.FailureHardDecline, "card_declined"
}

// DeclineCodes answers every code of the decline table.
func DeclineCodes() []string {
	out := make([]string, 0, len(declineClasses))
	for c := range declineClasses {
		out = append(out, c)
	}
	return out
}
