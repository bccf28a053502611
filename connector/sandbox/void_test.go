package sandbox

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// TestVoid runs every case of the Void contract against both transports.
func TestVoid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T, e *env)
	}{
		{"pending 3-D Secure is voided for good", func(t *testing.T, e *env) {
			req := card("pay_void_3ds", 1, Card3DS)
			pending := must(t)(e.gw.Charge(ctx, req))
			if pending.Status != connector.StatusRequiresAction {
				t.Fatalf("Charge = %+v, want requires_action", pending)
			}
			voided := must(t)(e.gw.Void(ctx, req.IdempotencyKey))
			if voided.Status != connector.StatusVoided || voided.Reference != pending.Reference || voided.FailureClass != "" {
				t.Fatalf("Void = %+v, want voided with reference %s", voided, pending.Reference)
			}
			// idempotent: the same answer, as often as asked
			if diff := cmp.Diff(voided, must(t)(e.gw.Void(ctx, req.IdempotencyKey))); diff != "" {
				t.Errorf("second Void (-first +second):\n%s", diff)
			}
			if diff := cmp.Diff(voided, must(t)(e.gw.Inquire(ctx, req.IdempotencyKey))); diff != "" {
				t.Errorf("Inquire after Void (-void +inquire):\n%s", diff)
			}
			// the customer can no longer complete it, either way
			for _, succeed := range []bool{true, false} {
				err := e.complete(pending.Reference, succeed)
				if !errors.Is(err, ErrAuthenticationCanceled) || !errors.Is(err, payment.ErrInvalidState) {
					t.Errorf("CompleteAction(%t) after Void = %v, want ErrAuthenticationCanceled (ErrInvalidState)", succeed, err)
				}
			}
			// and the key can no longer charge
			again := must(t)(e.gw.Charge(ctx, req))
			if again.Status != connector.StatusDeclined || again.FailureClass != payment.FailureHardDecline ||
				again.Code != "idempotency_key_voided" {
				t.Errorf("Charge after Void = %+v, want hard decline idempotency_key_voided", again)
			}
			if diff := cmp.Diff(voided, must(t)(e.gw.Inquire(ctx, req.IdempotencyKey))); diff != "" {
				t.Errorf("Inquire after all that (-void +inquire):\n%s", diff)
			}
			if n := e.sb.ChargesFor(req.PaymentID); n != 0 {
				t.Errorf("ChargesFor = %d, want 0", n)
			}
		}},
		{"3-D Secure completed before the void is charged", func(t *testing.T, e *env) {
			req := card("pay_void_done", 1, Card3DS)
			pending := must(t)(e.gw.Charge(ctx, req))
			if err := e.complete(pending.Reference, true); err != nil {
				t.Fatal(err)
			}
			got := must(t)(e.gw.Void(ctx, req.IdempotencyKey))
			if diff := cmp.Diff(connector.Result{Status: connector.StatusSucceeded, Reference: pending.Reference}, got); diff != "" {
				t.Errorf("Void after a completed challenge (-want +got):\n%s", diff)
			}
			if n := e.sb.ChargesFor(req.PaymentID); n != 1 {
				t.Errorf("ChargesFor = %d, want 1: a void never undoes a capture", n)
			}
			if err := e.complete(pending.Reference, true); err != nil {
				t.Errorf("completing again after the void: %v, want the no-op it always was", err)
			}
		}},
		{"3-D Secure failed before the void stays declined", func(t *testing.T, e *env) {
			req := card("pay_void_failed", 1, Card3DS)
			pending := must(t)(e.gw.Charge(ctx, req))
			if err := e.complete(pending.Reference, false); err != nil {
				t.Fatal(err)
			}
			got := must(t)(e.gw.Void(ctx, req.IdempotencyKey))
			if got.Status != connector.StatusDeclined || got.Code != "authentication_failed" || got.Reference != pending.Reference {
				t.Errorf("Void after a failed challenge = %+v, want declined authentication_failed", got)
			}
		}},
		{"a captured card answers succeeded with its reference", func(t *testing.T, e *env) {
			req := card("pay_void_visa", 1, CardVisa)
			charged := must(t)(e.gw.Charge(ctx, req))
			if diff := cmp.Diff(charged, must(t)(e.gw.Void(ctx, req.IdempotencyKey))); diff != "" {
				t.Errorf("Void of a capture (-charge +void):\n%s", diff)
			}
			if n := e.sb.ChargesFor(req.PaymentID); n != 1 {
				t.Errorf("ChargesFor = %d, want 1", n)
			}
		}},
		{"a declined card answers as recorded", func(t *testing.T, e *env) {
			req := card("pay_void_declined", 1, CardDeclined)
			declined := must(t)(e.gw.Charge(ctx, req))
			if diff := cmp.Diff(declined, must(t)(e.gw.Void(ctx, req.IdempotencyKey))); diff != "" {
				t.Errorf("Void of a decline (-charge +void):\n%s", diff)
			}
		}},
		{"an unknown key is fenced", func(t *testing.T, e *env) {
			req := card("pay_void_never", 1, CardVisa)
			got := must(t)(e.gw.Void(ctx, req.IdempotencyKey))
			if got.Status != connector.StatusNotFound || got.Reference != "" {
				t.Fatalf("Void of an unknown key = %+v, want not_found", got)
			}
			late := must(t)(e.gw.Charge(ctx, req))
			if late.Status != connector.StatusDeclined || late.Code != "idempotency_key_fenced" {
				t.Errorf("Charge after Void fenced the key = %+v, want declined idempotency_key_fenced", late)
			}
			if got := must(t)(e.gw.Void(ctx, req.IdempotencyKey)); got.Status != connector.StatusNotFound {
				t.Errorf("second Void = %+v, want not_found", got)
			}
			if n := e.sb.ChargesFor(req.PaymentID); n != 0 {
				t.Errorf("ChargesFor = %d, want 0", n)
			}
		}},
		{"a bank payment answers its rail status and is not stopped", func(t *testing.T, e *env) {
			req := bank("pay_void_ach", 1, payment.MethodACH, BankAccountReturnedR01)
			sent := must(t)(e.gw.Charge(ctx, req))
			if diff := cmp.Diff(sent, must(t)(e.gw.Void(ctx, req.IdempotencyKey))); diff != "" {
				t.Errorf("Void of a sent bank payment (-charge +void):\n%s", diff)
			}
			e.clock.Advance(DefaultSettleDelay)
			if got := must(t)(e.gw.Void(ctx, req.IdempotencyKey)); got.Status != connector.StatusSettled || got.Reference != sent.Reference {
				t.Errorf("Void once settled = %+v, want settled", got)
			}
			e.clock.Advance(DefaultReturnDelay)
			if got := must(t)(e.gw.Void(ctx, req.IdempotencyKey)); got.Status != connector.StatusReturned || got.Code != "R01" {
				t.Errorf("Void once returned = %+v, want returned R01", got)
			}
			if got := must(t)(e.gw.Settlement(ctx, sent.Reference)); got.Status != connector.StatusReturned {
				t.Errorf("Settlement = %+v: the voids changed the rail", got)
			}
			if n := e.sb.ChargesFor(req.PaymentID); n != 1 {
				t.Errorf("ChargesFor = %d, want 1", n)
			}
		}},
		{"a bank payment refused at submission answers declined", func(t *testing.T, e *env) {
			req := bank("pay_void_badacct", 1, payment.MethodACH, "ba_"+BankAccountInvalid)
			declined := must(t)(e.gw.Charge(ctx, req))
			if diff := cmp.Diff(declined, must(t)(e.gw.Void(ctx, req.IdempotencyKey))); diff != "" {
				t.Errorf("Void (-charge +void):\n%s", diff)
			}
		}},
		{"VoidDown refuses before processing", func(t *testing.T, e *env) {
			req := card("pay_void_down", 1, Card3DS)
			pending := must(t)(e.gw.Charge(ctx, req))
			never := card("pay_void_down_never", 1, CardVisa)
			e.setFaults(t, Faults{VoidDown: true})
			for _, key := range []string{req.IdempotencyKey, never.IdempotencyKey} {
				_, err := e.gw.Void(ctx, key)
				e.checkGatewayError(t, "Void while VoidDown", err, payment.FailureTransient, "gateway_unavailable", "gateway_unavailable", false)
			}
			// nothing was done: the challenge is still pending, the unknown key not fenced
			if got := must(t)(e.gw.Inquire(ctx, req.IdempotencyKey)); got.Status != connector.StatusRequiresAction {
				t.Errorf("Inquire after a refused Void = %+v, want requires_action", got)
			}
			// the other calls still work
			if got := must(t)(e.gw.Charge(ctx, never)); got.Status != connector.StatusSucceeded {
				t.Errorf("Charge of a key a refused Void saw = %+v, want succeeded (not fenced)", got)
			}
			e.setFaults(t, Faults{})
			if got := must(t)(e.gw.Void(ctx, req.IdempotencyKey)); got.Status != connector.StatusVoided || got.Reference != pending.Reference {
				t.Errorf("Void after the fault = %+v, want voided", got)
			}
		}},
	}
	for _, tr := range transports {
		for _, tt := range tests {
			t.Run(tr.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				tt.run(t, tr.new(t, Config{}))
			})
		}
	}
}

// TestVoidRacesTheChallenge: a void and a completion of the same challenge
// at once end in exactly one of the two outcomes, never both.
func TestVoidRacesTheChallenge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for i := range 50 {
		sb := New(Config{})
		req := card("pay_race", 1, Card3DS)
		pending := must(t)(sb.Charge(ctx, req))
		done := make(chan error, 1)
		go func() { done <- sb.CompleteAction(pending.Reference, true) }()
		voided := must(t)(sb.Void(ctx, req.IdempotencyKey))
		completeErr := <-done
		charged := sb.ChargesFor(req.PaymentID)
		switch voided.Status {
		case connector.StatusVoided:
			if !errors.Is(completeErr, ErrAuthenticationCanceled) || charged != 0 {
				t.Fatalf("#%d: voided, but CompleteAction = %v and %d charges", i, completeErr, charged)
			}
		case connector.StatusSucceeded:
			if completeErr != nil || charged != 1 {
				t.Fatalf("#%d: void answered succeeded, but CompleteAction = %v and %d charges", i, completeErr, charged)
			}
		default:
			t.Fatalf("#%d: Void = %+v", i, voided)
		}
	}
}
