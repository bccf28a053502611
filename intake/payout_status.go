package intake

import "github.com/payd/payd/payment"

// payoutMethods are the method values of a payout.
var payoutMethods = map[string]payment.Method{
	"ACH": payment.MethodACH, "WIRE": payment.MethodWire, "SEPA": payment.MethodSEPA, "SWIFT": payment.MethodSWIFT,
	"RTP": payment.MethodRTP, "CHECK": payment.MethodCheck, "CARD": payment.MethodCard,
	"VIRTUAL_CARD": payment.MethodVirtualCard, "PAYPAL": payment.MethodPayPal, "OTHER": payment.MethodOther,
}

// payoutStatusNames is the one canonical → seed 002 status table. A succeeded
// payout shows SETTLED when it settled on a bank rail, and PAID when it was
// recorded as paid: imported as PAID, or on a method that is not a bank rail
// (CARD, VIRTUAL_CARD, PAYPAL, OTHER: no rail settles them). A payout awaiting
// a customer action or an operator's review is still PROCESSING; refunds are
// not a payout operation, but a payout refunded through another surface
// shows what happened to its money: partly refunded is still settled (paid),
// fully refunded came back like a return.
var payoutStatusNames = []struct {
	canonical  payment.Status
	rail, paid payment.PayoutStatus
}{
	{payment.StatusPending, payment.PayoutInitiated, payment.PayoutInitiated},
	{payment.StatusProcessing, payment.PayoutProcessing, payment.PayoutProcessing},
	{payment.StatusRequiresAction, payment.PayoutProcessing, payment.PayoutProcessing},
	{payment.StatusRequiresReview, payment.PayoutProcessing, payment.PayoutProcessing},
	{payment.StatusSent, payment.PayoutSent, payment.PayoutSent},
	{payment.StatusSucceeded, payment.PayoutSettled, payment.PayoutPaid},
	{payment.StatusPartiallyRefunded, payment.PayoutSettled, payment.PayoutPaid},
	{payment.StatusRefunded, payment.PayoutReturned, payment.PayoutReturned},
	{payment.StatusReturned, payment.PayoutReturned, payment.PayoutReturned},
	{payment.StatusFailed, payment.PayoutFailed, payment.PayoutFailed},
	{payment.StatusCanceled, payment.PayoutCanceled, payment.PayoutCanceled},
}

// recordedAsPaid reports whether a payout shows PAID rather than SETTLED.
func recordedAsPaid(m payment.Method, importedStatus string) bool {
	return payment.PayoutStatus(importedStatus) == payment.PayoutPaid || !m.BankRail()
}

// payoutStatus maps a payout's canonical status to seed 002's vocabulary.
func payoutStatus(st payment.Status, m payment.Method, importedStatus string) string {
	for _, row := range payoutStatusNames {
		if row.canonical == st {
			if recordedAsPaid(m, importedStatus) {
				return string(row.paid)
			}
			return string(row.rail)
		}
	}
	return string(st)
}

// payoutStatusesNamed inverts the table for list filters: the canonical
// statuses shown as name, and whether only paid (true) or only rail-settled
// (false) payouts show it (nil: either).
func payoutStatusesNamed(name string) ([]payment.Status, *bool) {
	var out []payment.Status
	inRail, inPaid := false, false
	v := payment.PayoutStatus(name)
	for _, row := range payoutStatusNames {
		if row.rail == v || row.paid == v {
			out = append(out, row.canonical)
		}
		inRail = inRail || row.rail == v
		inPaid = inPaid || row.paid == v
	}
	switch {
	case inRail && !inPaid:
		f := false
		return out, &f
	case inPaid && !inRail:
		t := true
		return out, &t
	}
	return out, nil
}
