package intake

import (
	"net/http"
	"testing"

	"github.com/payd/payd/payment"
)

// TestSessionSubmitOutcomeTable: every canonical status has a submit
// answer; 201s carry no action and 202s one, and only a payment awaiting
// the customer redirects.
func TestSessionSubmitOutcomeTable(t *testing.T) {
	t.Parallel()
	for _, st := range payment.Statuses {
		o, ok := sessionSubmitOutcomes[st]
		switch {
		case !ok:
			t.Errorf("%s has no submit answer", st)
		case o.code == http.StatusCreated && o.action != "":
			t.Errorf("%s: a 201 with an action", st)
		case o.code == http.StatusAccepted && (o.action == "" || o.status != "Pending"):
			t.Errorf("%s: a 202 without an action: %+v", st, o)
		case (o.action == "redirect") != (st == payment.StatusRequiresAction):
			t.Errorf("%s: redirect %v", st, o)
		case o.code != http.StatusCreated && o.code != http.StatusAccepted:
			t.Errorf("%s: code %d", st, o.code)
		}
	}
	if len(sessionSubmitOutcomes) != len(payment.Statuses) {
		t.Errorf("the table has %d statuses, payment has %d", len(sessionSubmitOutcomes), len(payment.Statuses))
	}
}
