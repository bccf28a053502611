package sandbox

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// TestCardUnknown: pm_card_unknown charges, and nothing about its key is
// answered (a timeout in-process, a connection closed unanswered over HTTP)
// until Faults.AnswerUnknown, after which the truth is told: charged once.
func TestCardUnknown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			e := tr.new(t, Config{})
			req := card("pay_unknown", 1, CardUnknown)
			other := card("pay_unknown_visa", 1, CardVisa) // an ordinary key beside it
			silent := func(when string) {
				t.Helper()
				_, err := e.gw.Charge(ctx, req)
				e.checkGatewayError(t, when+": Charge", err, payment.FailureUnknown, "timeout", "connection_lost", true)
				for range 3 {
					_, err = e.gw.Inquire(ctx, req.IdempotencyKey)
					e.checkGatewayError(t, when+": Inquire", err, payment.FailureUnknown, "timeout", "connection_lost", true)
					_, err = e.gw.Void(ctx, req.IdempotencyKey)
					e.checkGatewayError(t, when+": Void", err, payment.FailureUnknown, "timeout", "connection_lost", true)
				}
			}
			silent("first")
			if n := e.sb.ChargesFor(req.PaymentID); n != 1 {
				t.Fatalf("ChargesFor = %d, want 1: the charge booked before the answer was lost", n)
			}
			// the gateway's records know of it all along (reconciliation finds it)
			page, err := e.gw.List(ctx, connector.ListQuery{})
			if err != nil {
				t.Fatal(err)
			}
			ref := e.sb.Ledger()[0].Reference
			if len(page.Entries) != 1 || page.Entries[0].IdempotencyKey != req.IdempotencyKey || page.Entries[0].Reference != ref ||
				page.Entries[0].Status != connector.StatusSucceeded {
				t.Errorf("List = %+v, want the pm_card_unknown charge", page.Entries)
			}
			// other keys are answered as usual
			if got := must(t)(e.gw.Charge(ctx, other)); got.Status != connector.StatusSucceeded {
				t.Errorf("Charge of another key = %+v", got)
			}

			e.setFaults(t, Faults{AnswerUnknown: true})
			want := connector.Result{Status: connector.StatusSucceeded, Reference: ref}
			if diff := cmp.Diff(want, must(t)(e.gw.Inquire(ctx, req.IdempotencyKey))); diff != "" {
				t.Errorf("Inquire with AnswerUnknown (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, must(t)(e.gw.Void(ctx, req.IdempotencyKey))); diff != "" {
				t.Errorf("Void with AnswerUnknown (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, must(t)(e.gw.Charge(ctx, req))); diff != "" {
				t.Errorf("Charge replay with AnswerUnknown (-want +got):\n%s", diff)
			}

			// AnswerUnknown is a switch, not a one-off: off again, silent again
			e.setFaults(t, Faults{})
			silent("after AnswerUnknown is cleared")
			if n := e.sb.ChargesFor(req.PaymentID); n != 1 {
				t.Errorf("ChargesFor = %d, want 1", n)
			}
		})
	}
}

// With AnswerUnknown already set when it is charged, pm_card_unknown still
// loses the charge's own answer (the response is lost either way), but the
// first inquiry finds it.
func TestCardUnknownAnsweredFromTheStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			e := tr.new(t, Config{})
			e.setFaults(t, Faults{AnswerUnknown: true})
			req := card("pay_unknown_answered", 1, CardUnknown)
			_, err := e.gw.Charge(ctx, req)
			e.checkGatewayError(t, "Charge", err, payment.FailureUnknown, "timeout", "connection_lost", true)
			if got := must(t)(e.gw.Inquire(ctx, req.IdempotencyKey)); got.Status != connector.StatusSucceeded {
				t.Errorf("Inquire = %+v, want succeeded", got)
			}
		})
	}
}
