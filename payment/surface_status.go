package payment

// How each API surface names the canonical statuses: one table per surface,
// here in the domain package so that intake (what a merchant sees) and the
// operator commands (what an operator may type: `payd payments list
// --status`) read the same table. docs/surfaces.md shows both tables.

// paymentsStatusNames maps the canonical status to seed 001's vocabulary
// (PENDING, PROCESSING, SUCCEEDED, FAILED, REFUNDED, PARTIALLY_REFUNDED).
// Statuses the seed has no word for map to the nearest one a merchant should
// act on: a bank payment on the rail or awaiting review is still PROCESSING;
// canceled and returned payments did not pay (FAILED, with error_message
// saying why).
var paymentsStatusNames = map[Status]string{
	StatusPending:           "PENDING",
	StatusProcessing:        "PROCESSING",
	StatusRequiresAction:    "PROCESSING",
	StatusSent:              "PROCESSING",
	StatusRequiresReview:    "PROCESSING",
	StatusSucceeded:         "SUCCEEDED",
	StatusPartiallyRefunded: "PARTIALLY_REFUNDED",
	StatusRefunded:          "REFUNDED",
	StatusReturned:          "FAILED",
	StatusFailed:            "FAILED",
	StatusCanceled:          "FAILED",
}

// PaymentsStatusName is the seed-001 payment_status of a canonical status
// ("" for a status that is not canonical).
func PaymentsStatusName(s Status) string { return paymentsStatusNames[s] }

// PaymentsStatusesNamed inverts the seed-001 table for list filters: the
// canonical statuses shown as name, in lifecycle order (none for a word
// the seed does not have).
func PaymentsStatusesNamed(name string) []Status {
	var out []Status
	for _, s := range Statuses {
		if paymentsStatusNames[s] == name {
			out = append(out, s)
		}
	}
	return out
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
	canonical  Status
	rail, paid PayoutStatus
}{
	{StatusPending, PayoutInitiated, PayoutInitiated},
	{StatusProcessing, PayoutProcessing, PayoutProcessing},
	{StatusRequiresAction, PayoutProcessing, PayoutProcessing},
	{StatusRequiresReview, PayoutProcessing, PayoutProcessing},
	{StatusSent, PayoutSent, PayoutSent},
	{StatusSucceeded, PayoutSettled, PayoutPaid},
	{StatusPartiallyRefunded, PayoutSettled, PayoutPaid},
	{StatusRefunded, PayoutReturned, PayoutReturned},
	{StatusReturned, PayoutReturned, PayoutReturned},
	{StatusFailed, PayoutFailed, PayoutFailed},
	{StatusCanceled, PayoutCanceled, PayoutCanceled},
}

// RecordedAsPaid reports whether a payout of method m, created with status
// importedStatus ("" when payd sends it), shows PAID rather than SETTLED.
func RecordedAsPaid(m Method, importedStatus string) bool {
	return PayoutStatus(importedStatus) == PayoutPaid || !m.BankRail()
}

// PayoutStatusName maps a payout's canonical status to seed 002's
// vocabulary (the canonical status itself if it is not in the table).
func PayoutStatusName(st Status, m Method, importedStatus string) string {
	for _, row := range payoutStatusNames {
		if row.canonical == st {
			if RecordedAsPaid(m, importedStatus) {
				return string(row.paid)
			}
			return string(row.rail)
		}
	}
	return string(st)
}

// PayoutStatusesNamed inverts the seed-002 table for list filters: the
// canonical statuses shown as name, and whether only paid (true) or only
// rail-settled (false) payouts show it (nil: either).
func PayoutStatusesNamed(name string) ([]Status, *bool) {
	var out []Status
	inRail, inPaid := false, false
	v := PayoutStatus(name)
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
