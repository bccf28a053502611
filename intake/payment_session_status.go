package intake

import (
	"net/http"

	"github.com/payd/payd/payment"
)

// submitOutcome is how a submit answers for its payment's canonical
// status: the HTTP status (201 finished, 202 the customer must act or the
// outcome is pending), the seed's payment status word, and for a 202 the
// action (redirect: the 3-D Secure challenge; poll: ask again).
type submitOutcome struct {
	code   int
	status string
	action string // "" for a 201
}

// sessionSubmitOutcomes maps every canonical status to the submit's
// answer (seed 003). A card verification (amount 0) that succeeded says
// "Card Verified" instead of "Captured". A bank payment SENT on its rail
// is pending (it settles later), though its session is COMPLETED: the
// money is on its way and the session takes no more submits. Statuses a
// payment cannot have while its submit waits (refunds, returns) are
// answered for a replay as what they followed.
var sessionSubmitOutcomes = map[payment.Status]submitOutcome{
	payment.StatusPending:           {http.StatusAccepted, "Pending", "poll"},
	payment.StatusProcessing:        {http.StatusAccepted, "Pending", "poll"},
	payment.StatusRequiresReview:    {http.StatusAccepted, "Pending", "poll"},
	payment.StatusSent:              {http.StatusAccepted, "Pending", "poll"},
	payment.StatusRequiresAction:    {http.StatusAccepted, "Pending", "redirect"},
	payment.StatusSucceeded:         {http.StatusCreated, "Captured", ""},
	payment.StatusPartiallyRefunded: {http.StatusCreated, "Captured", ""},
	payment.StatusRefunded:          {http.StatusCreated, "Captured", ""},
	payment.StatusFailed:            {http.StatusCreated, "Declined", ""},
	payment.StatusCanceled:          {http.StatusCreated, "Declined", ""},
	payment.StatusReturned:          {http.StatusCreated, "Declined", ""},
}
