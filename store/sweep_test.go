package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// TestClaimDuePerStepCutoff: each payment step is claimed against its own
// cutoff (the sweeper's grace plus its queue's backlog): a payment waiting
// on a step is claimed when that step's cutoff is past its due time,
// whatever the other steps' cutoffs, and not when its step has no cutoff.
// It runs over every step the sweeper knows (store.DueSteps), so a step
// added there is covered.
func TestClaimDuePerStepCutoff(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	ctx := context.Background()
	due := time.Now().Add(-time.Minute)
	byStep := map[payment.Step]string{}
	for _, step := range store.DueSteps() {
		if step == store.StepRefund || step == store.StepNotification || step == store.StepSession || step == store.StepFlow || step == store.StepDelivery {
			continue // not a payment step (TestClaimDueSessions for sessions; flows: intake's TestFlowRedisFlushAllStillSettles)
		}
		p := newPayment(t, st, tn, 100)
		if _, err := st.DB().Exec(`UPDATE payments SET next_step = $2, next_step_at = $3 WHERE id = $1`, p.ID, string(step), due); err != nil {
			t.Fatalf("schedule %s: %v", step, err)
		}
		byStep[step] = p.ID
	}
	if len(byStep) < 4 {
		t.Fatalf("payment steps %v", byStep)
	}
	early, late := due.Add(-time.Second), due.Add(time.Second)
	claim := func(before store.DueBefore) []store.Due {
		t.Helper()
		// every payment due again at its time (a claim pushed it out)
		if _, err := st.DB().Exec(`UPDATE payments SET next_step_at = $2, swept = false WHERE tenant_id = $1`, tn.ID, due); err != nil {
			t.Fatal(err)
		}
		got, err := st.ClaimDue(ctx, before, time.Hour, 100)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for step, id := range byStep {
		// every other step's cutoff past its due time, this one's before it
		before := store.AllDueBefore(late)
		before[step] = early
		got := claim(before)
		if len(got) != len(byStep)-1 {
			t.Errorf("%s before its cutoff, the others past theirs: claimed %d, want %d", step, len(got), len(byStep)-1)
		}
		for _, d := range got {
			if d.PaymentID == id {
				t.Errorf("%s claimed before its cutoff", step)
			}
		}
		delete(before, step)
		for _, d := range claim(before) {
			if d.PaymentID == id {
				t.Errorf("%s claimed without a cutoff", step)
			}
		}
		if got := claim(store.DueBefore{step: late}); len(got) != 1 || got[0].PaymentID != id || got[0].Step != step {
			t.Errorf("%s alone past its cutoff: claimed %+v", step, got)
		}
	}
}
