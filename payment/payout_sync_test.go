package payment

import (
	"fmt"
	"testing"
)

// TestPayoutPath: every walk a push can ask for, and every step of each
// walk allowed by the lifecycle table.
func TestPayoutPath(t *testing.T) {
	t.Parallel()
	P, R, S, OK, RET, F, C := StatusPending, StatusProcessing, StatusSent, StatusSucceeded, StatusReturned, StatusFailed, StatusCanceled
	cases := []struct {
		from, to      Status
		sent, settled bool
		want          []Status
		ok            bool
	}{
		{P, P, false, false, nil, true},
		{P, R, false, false, []Status{R}, true},
		{P, S, false, false, []Status{R, S}, true},
		{P, OK, false, false, []Status{R, OK}, true},
		{P, OK, true, true, []Status{R, S, OK}, true},
		{P, RET, false, false, []Status{R, OK, RET}, true},
		{P, RET, true, false, []Status{R, S, RET}, true},
		{P, RET, true, true, []Status{R, S, OK, RET}, true},
		{P, F, false, false, []Status{R, F}, true},
		{P, F, true, false, []Status{R, S, F}, true},
		{P, C, false, false, []Status{C}, true},
		{S, OK, true, false, []Status{OK}, true},
		{S, RET, true, false, []Status{RET}, true},
		{S, F, true, false, []Status{F}, true},
		{OK, RET, true, true, []Status{RET}, true},
		{R, S, false, false, []Status{S}, true},
		// backwards or sideways
		{S, P, false, false, nil, false},
		{S, R, false, false, nil, false},
		{OK, S, true, true, nil, false},
		{OK, F, true, true, nil, false},
		{OK, P, false, false, nil, false},
		{RET, OK, false, false, nil, false},
		{F, OK, false, false, nil, false},
		{C, R, false, false, nil, false},
		{R, C, false, false, nil, false},
		{StatusRequiresReview, OK, false, false, nil, false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s→%s sent=%v settled=%v", c.from, c.to, c.sent, c.settled), func(t *testing.T) {
			got, ok := PayoutPath(c.from, c.to, c.sent, c.settled)
			if ok != c.ok || fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got %v %v, want %v %v", got, ok, c.want, c.ok)
			}
			prev := c.from
			for _, s := range got {
				if !CanTransition(prev, s) {
					t.Errorf("step %s→%s is not in the lifecycle", prev, s)
				}
				prev = s
			}
		})
	}
	for _, s := range []PayoutStatus{PayoutInitiated, PayoutProcessing, PayoutSent, PayoutSettled, PayoutPaid,
		PayoutReturned, PayoutFailed, PayoutCanceled} {
		if !s.Canonical().Valid() {
			t.Errorf("%s has no canonical status", s)
		}
	}
}
