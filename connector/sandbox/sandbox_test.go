package sandbox

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// TestMagicValues runs one table of magic values against both transports.
func TestMagicValues(t *testing.T) {
	t.Parallel()
	type want struct {
		status  connector.ResultStatus
		class   payment.FailureClass
		code    string
		ledger  int // entries for the payment after the call
		inquire connector.ResultStatus
	}
	type wantErr struct {
		class          payment.FailureClass
		code, codeHTTP string
		maybeProcessed bool
	}
	tests := []struct {
		name    string
		req     connector.ChargeRequest
		want    want
		wantErr *wantErr
		// then continues the scenario after the first call.
		then func(t *testing.T, e *env, req connector.ChargeRequest, res connector.Result)
	}{
		{
			name: "visa succeeds",
			req:  card("pay_visa", 1, CardVisa),
			want: want{status: connector.StatusSucceeded, ledger: 1, inquire: connector.StatusSucceeded},
		},
		{
			name: "any other card token succeeds",
			req:  card("pay_other", 1, "pm_card_mastercard"),
			want: want{status: connector.StatusSucceeded, ledger: 1, inquire: connector.StatusSucceeded},
		},
		{
			name: "declined",
			req:  card("pay_declined", 1, CardDeclined),
			want: want{status: connector.StatusDeclined, class: payment.FailureHardDecline, code: "card_declined",
				inquire: connector.StatusDeclined},
		},
		{
			name: "insufficient funds",
			req:  card("pay_nsf", 1, CardInsufficientFunds),
			want: want{status: connector.StatusDeclined, class: payment.FailureSoftDecline, code: "insufficient_funds",
				inquire: connector.StatusDeclined},
		},
		{
			name: "3ds then succeed",
			req:  card("pay_3ds_ok", 1, Card3DS),
			want: want{status: connector.StatusRequiresAction, inquire: connector.StatusRequiresAction},
			then: func(t *testing.T, e *env, req connector.ChargeRequest, res connector.Result) {
				wantURL := strings.TrimRight(e.sb.cfg.PublicURL, "/") + "/challenge/" + res.Reference
				if res.ActionURL != wantURL {
					t.Errorf("ActionURL = %q, want %q", res.ActionURL, wantURL)
				}
				if err := e.complete(res.Reference, true); err != nil {
					t.Fatalf("CompleteAction: %v", err)
				}
				got := must(t)(e.gw.Inquire(context.Background(), req.IdempotencyKey))
				if diff := cmp.Diff(connector.Result{Status: connector.StatusSucceeded, Reference: res.Reference}, got); diff != "" {
					t.Errorf("Inquire after challenge (-want +got):\n%s", diff)
				}
				if n := e.sb.ChargesFor(req.PaymentID); n != 1 {
					t.Errorf("ChargesFor = %d, want 1", n)
				}
				// Completing again with the same outcome changes nothing.
				if err := e.complete(res.Reference, true); err != nil {
					t.Errorf("second CompleteAction: %v", err)
				}
				if err := e.complete(res.Reference, false); !errors.Is(err, payment.ErrInvalidState) {
					t.Errorf("conflicting CompleteAction = %v, want ErrInvalidState", err)
				}
				if n := e.sb.ChargesFor(req.PaymentID); n != 1 {
					t.Errorf("ChargesFor after repeats = %d, want 1", n)
				}
			},
		},
		{
			name: "3ds then fail",
			req:  card("pay_3ds_fail", 1, Card3DS),
			want: want{status: connector.StatusRequiresAction, inquire: connector.StatusRequiresAction},
			then: func(t *testing.T, e *env, req connector.ChargeRequest, res connector.Result) {
				if err := e.complete(res.Reference, false); err != nil {
					t.Fatalf("CompleteAction: %v", err)
				}
				got := must(t)(e.gw.Inquire(context.Background(), req.IdempotencyKey))
				if got.Status != connector.StatusDeclined || got.FailureClass != payment.FailureHardDecline ||
					got.Code != "authentication_failed" {
					t.Errorf("Inquire after failed challenge = %+v", got)
				}
				if n := e.sb.ChargesFor(req.PaymentID); n != 0 {
					t.Errorf("ChargesFor = %d, want 0", n)
				}
				if err := e.complete("ch_nope", true); !errors.Is(err, payment.ErrNotFound) {
					t.Errorf("CompleteAction(unknown) = %v, want ErrNotFound", err)
				}
			},
		},
		{
			name:    "flaky fails twice per payment, then succeeds",
			req:     card("pay_flaky", 1, CardFlaky),
			wantErr: &wantErr{class: payment.FailureTransient, code: "gateway_503", codeHTTP: "gateway_503", maybeProcessed: true},
			want:    want{inquire: connector.StatusNotFound},
			then: func(t *testing.T, e *env, req connector.ChargeRequest, _ connector.Result) {
				ctx := context.Background()
				// The inquiry fenced attempt 1; attempt 2 is a new key, and
				// still fails: tries are counted per payment.
				_, err := e.gw.Charge(ctx, card(req.PaymentID, 2, CardFlaky))
				if ge := gatewayError(t, err); ge.Code != "gateway_503" || !ge.MaybeProcessed {
					t.Fatalf("second try = %v, want gateway_503", ge)
				}
				res := must(t)(e.gw.Charge(ctx, card(req.PaymentID, 3, CardFlaky)))
				if res.Status != connector.StatusSucceeded {
					t.Fatalf("third try = %+v, want succeeded", res)
				}
				if n := e.sb.ChargesFor(req.PaymentID); n != 1 {
					t.Errorf("ChargesFor = %d, want 1", n)
				}
			},
		},
		{
			name:    "timeout after charge",
			req:     card("pay_lost", 1, CardTimeoutAfterCharge),
			wantErr: &wantErr{class: payment.FailureUnknown, code: "timeout", codeHTTP: "connection_lost", maybeProcessed: true},
			want:    want{ledger: 1, inquire: connector.StatusSucceeded},
			then: func(t *testing.T, e *env, req connector.ChargeRequest, _ connector.Result) {
				// A replay answers with the stored outcome and charges nothing.
				res := must(t)(e.gw.Charge(context.Background(), req))
				if res.Status != connector.StatusSucceeded {
					t.Errorf("replay = %+v, want succeeded", res)
				}
				if n := e.sb.ChargesFor(req.PaymentID); n != 1 {
					t.Errorf("ChargesFor = %d, want 1", n)
				}
			},
		},
		{
			name: "bank 123456789 is sent, then settles",
			req:  bank("pay_ach", 1, payment.MethodACH, BankAccountSettles),
			want: want{status: connector.StatusSent, ledger: 1, inquire: connector.StatusSent},
			then: func(t *testing.T, e *env, req connector.ChargeRequest, res connector.Result) {
				checkSettles(t, e, res, "")
			},
		},
		{
			name: "bank ba_123456789 on another rail",
			req:  bank("pay_wire", 1, payment.MethodWire, "ba_"+BankAccountSettles),
			want: want{status: connector.StatusSent, ledger: 1, inquire: connector.StatusSent},
			then: func(t *testing.T, e *env, req connector.ChargeRequest, res connector.Result) {
				checkSettles(t, e, res, "")
			},
		},
		{
			name: "bank 10001 settles, then is returned R01",
			req:  bank("pay_r01", 1, payment.MethodACH, BankAccountReturnedR01),
			want: want{status: connector.StatusSent, ledger: 1, inquire: connector.StatusSent},
			then: func(t *testing.T, e *env, req connector.ChargeRequest, res connector.Result) {
				checkSettles(t, e, res, "R01")
			},
		},
		{
			name: "bank ba_10029 is returned R29",
			req:  bank("pay_r29", 1, payment.MethodSEPA, "ba_10029"),
			want: want{status: connector.StatusSent, ledger: 1, inquire: connector.StatusSent},
			then: func(t *testing.T, e *env, req connector.ChargeRequest, res connector.Result) {
				checkSettles(t, e, res, "R29")
			},
		},
		{
			name: "bank 11111111… fails at submission",
			req:  bank("pay_badacct", 1, payment.MethodACH, "111111119876"),
			want: want{status: connector.StatusDeclined, class: payment.FailureHardDecline, code: "account_invalid",
				inquire: connector.StatusDeclined},
		},
		{
			name: "bank ba_11111111… fails at submission",
			req:  bank("pay_badacct2", 1, payment.MethodACH, "ba_"+BankAccountInvalid),
			want: want{status: connector.StatusDeclined, class: payment.FailureHardDecline, code: "account_invalid",
				inquire: connector.StatusDeclined},
		},
		{
			name: "any other bank account is sent, then settles",
			req:  bank("pay_other_acct", 1, payment.MethodRTP, "987654321"),
			want: want{status: connector.StatusSent, ledger: 1, inquire: connector.StatusSent},
			then: func(t *testing.T, e *env, req connector.ChargeRequest, res connector.Result) {
				checkSettles(t, e, res, "")
			},
		},
		{
			name: "a SEPA IBAN is judged by its national digits: sent, then settles",
			req:  bank("pay_iban", 1, payment.MethodSEPA, "DE89370400440532013000"),
			want: want{status: connector.StatusSent, ledger: 1, inquire: connector.StatusSent},
			then: func(t *testing.T, e *env, req connector.ChargeRequest, res connector.Result) {
				checkSettles(t, e, res, "")
			},
		},
		{
			name: "an IBAN whose national digits start 11111111 fails at submission",
			req:  bank("pay_iban_bad", 1, payment.MethodSEPA, "DE75111111110000000000"),
			want: want{status: connector.StatusDeclined, class: payment.FailureHardDecline, code: "account_invalid",
				inquire: connector.StatusDeclined},
		},
		{
			name: "a card token on a bank rail is not an account",
			req:  bank("pay_ach_card", 1, payment.MethodACH, CardVisa),
			want: want{status: connector.StatusDeclined, class: payment.FailureHardDecline, code: "account_invalid",
				inquire: connector.StatusDeclined},
		},
	}
	for _, tr := range transports {
		for _, tt := range tests {
			t.Run(tr.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				e := tr.new(t, Config{})
				ctx := context.Background()
				res, err := e.gw.Charge(ctx, tt.req)
				if tt.wantErr != nil {
					ge := gatewayError(t, err)
					code := tt.wantErr.code
					if e.http {
						code = tt.wantErr.codeHTTP
					}
					if ge.Class != tt.wantErr.class || ge.Code != code || ge.MaybeProcessed != tt.wantErr.maybeProcessed {
						t.Fatalf("Charge error = %v, want class %s code %s maybe processed %t",
							ge, tt.wantErr.class, code, tt.wantErr.maybeProcessed)
					}
				} else {
					res = must(t)(res, err)
					if res.Status != tt.want.status || res.FailureClass != tt.want.class || res.Code != tt.want.code {
						t.Fatalf("Charge = %+v, want status %s class %q code %q", res, tt.want.status, tt.want.class, tt.want.code)
					}
					if !chargeRefRE.MatchString(res.Reference) {
						t.Errorf("Reference = %q, want ch_ and 32 hex digits", res.Reference)
					}
				}
				if n := e.sb.ChargesFor(tt.req.PaymentID); n != tt.want.ledger {
					t.Errorf("ChargesFor = %d, want %d", n, tt.want.ledger)
				}
				inq := must(t)(e.gw.Inquire(ctx, tt.req.IdempotencyKey))
				if inq.Status != tt.want.inquire {
					t.Errorf("Inquire = %+v, want status %s", inq, tt.want.inquire)
				}
				if tt.wantErr == nil {
					// Inquire answers with exactly what Charge answered.
					if diff := cmp.Diff(res, inq); diff != "" {
						t.Errorf("Inquire differs from Charge (-charge +inquire):\n%s", diff)
					}
				}
				if tt.then != nil {
					tt.then(t, e, tt.req, res)
				}
			})
		}
	}
}

// checkSettles walks the injected clock through a bank payment's rail life.
func checkSettles(t *testing.T, e *env, sent connector.Result, returnCode string) {
	t.Helper()
	ctx := context.Background()
	settleAt := t0.Add(DefaultSettleDelay)
	if !sent.SettleAt.Equal(settleAt) {
		t.Fatalf("SettleAt = %v, want %v", sent.SettleAt, settleAt)
	}
	at := func(d time.Duration) connector.Result {
		t.Helper()
		e.clock.Set(t0.Add(d))
		return must(t)(e.gw.Settlement(ctx, sent.Reference))
	}
	ref := sent.Reference
	wantSent := connector.Result{Status: connector.StatusSent, Reference: ref, SettleAt: settleAt}
	wantSettled := connector.Result{Status: connector.StatusSettled, Reference: ref, SettledAt: settleAt}
	steps := []struct {
		at   time.Duration
		want connector.Result
	}{
		{0, wantSent},
		{DefaultSettleDelay - time.Nanosecond, wantSent},
		{DefaultSettleDelay, wantSettled},
		{DefaultSettleDelay + DefaultReturnDelay - time.Nanosecond, wantSettled},
	}
	returnedAt := settleAt.Add(DefaultReturnDelay)
	final := wantSettled
	if returnCode != "" {
		final = connector.Result{Status: connector.StatusReturned, Reference: ref, Code: returnCode,
			Message: "returned by the receiving bank", SettledAt: settleAt, ReturnedAt: returnedAt}
	}
	steps = append(steps, struct {
		at   time.Duration
		want connector.Result
	}{DefaultSettleDelay + DefaultReturnDelay, final}, struct {
		at   time.Duration
		want connector.Result
	}{time.Hour, final})
	for _, s := range steps {
		if diff := cmp.Diff(s.want, at(s.at)); diff != "" {
			t.Errorf("Settlement at t0+%v (-want +got):\n%s", s.at, diff)
		}
	}
	if n := e.sb.ChargesFor(e.sb.Ledger()[0].PaymentID); n != 1 {
		t.Errorf("ChargesFor = %d, want 1", n)
	}
}

func TestSettlementOfUnknownReference(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			e := tr.new(t, Config{})
			ctx := context.Background()
			card := must(t)(e.gw.Charge(ctx, card("pay_card", 1, CardVisa)))
			for _, ref := range []string{"ch_999", card.Reference} {
				res := must(t)(e.gw.Settlement(ctx, ref))
				if res.Status != connector.StatusNotFound {
					t.Errorf("Settlement(%s) = %+v, want not_found", ref, res)
				}
			}
		})
	}
}

func TestReplaysNeverAddLedgerEntries(t *testing.T) {
	t.Parallel()
	reqs := []connector.ChargeRequest{
		card("pay_r_visa", 1, CardVisa),
		card("pay_r_declined", 1, CardDeclined),
		card("pay_r_nsf", 1, CardInsufficientFunds),
		card("pay_r_3ds", 1, Card3DS),
		bank("pay_r_ach", 1, payment.MethodACH, BankAccountSettles),
		bank("pay_r_bad", 1, payment.MethodACH, BankAccountInvalid),
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			e := tr.new(t, Config{})
			ctx := context.Background()
			for _, req := range reqs {
				first := must(t)(e.gw.Charge(ctx, req))
				before := len(e.sb.Ledger())
				for range 3 {
					again := must(t)(e.gw.Charge(ctx, req))
					if diff := cmp.Diff(first, again); diff != "" {
						t.Errorf("%s: replay differs (-first +replay):\n%s", req.PaymentMethodID, diff)
					}
				}
				if after := len(e.sb.Ledger()); after != before {
					t.Errorf("%s: ledger grew from %d to %d on replays", req.PaymentMethodID, before, after)
				}
			}
		})
	}
}

func TestConcurrentChargesWithOneKey(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			e := tr.new(t, Config{Latency: time.Millisecond})
			req := card("pay_burst", 1, CardVisa)
			const n = 50
			results := make([]connector.Result, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					results[i], errs[i] = e.gw.Charge(context.Background(), req)
				})
			}
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("call %d: %v", i, errs[i])
				}
				if diff := cmp.Diff(results[0], results[i]); diff != "" {
					t.Errorf("call %d differs (-first +got):\n%s", i, diff)
				}
			}
			if got := len(e.sb.Ledger()); got != 1 {
				t.Errorf("ledger has %d entries, want 1", got)
			}
		})
	}
}

func TestInquiryFencesTheKey(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			e := tr.new(t, Config{})
			ctx := context.Background()
			req := card("pay_fence", 1, CardVisa)
			res := must(t)(e.gw.Inquire(ctx, req.IdempotencyKey))
			if res.Status != connector.StatusNotFound {
				t.Fatalf("Inquire(never seen) = %+v, want not_found", res)
			}
			res = must(t)(e.gw.Charge(ctx, req))
			if res.Status != connector.StatusDeclined || res.FailureClass != payment.FailureHardDecline ||
				res.Code != "idempotency_key_fenced" {
				t.Fatalf("Charge(fenced key) = %+v, want idempotency_key_fenced", res)
			}
			if res = must(t)(e.gw.Inquire(ctx, req.IdempotencyKey)); res.Status != connector.StatusNotFound {
				t.Errorf("Inquire after refusal = %+v, want still not_found", res)
			}
			if n := e.sb.ChargesFor(req.PaymentID); n != 0 {
				t.Errorf("ChargesFor = %d, want 0", n)
			}
			// The next attempt, with its own key, goes through.
			res = must(t)(e.gw.Charge(ctx, card("pay_fence", 2, CardVisa)))
			if res.Status != connector.StatusSucceeded {
				t.Errorf("Charge(attempt 2) = %+v, want succeeded", res)
			}
			// A key with special characters survives the URL path.
			odd := "pay odd/key:1?x=%"
			if res = must(t)(e.gw.Inquire(ctx, odd)); res.Status != connector.StatusNotFound {
				t.Errorf("Inquire(%q) = %+v, want not_found", odd, res)
			}
			e.sb.mu.Lock()
			fenced := e.sb.fenced[odd]
			e.sb.mu.Unlock()
			if !fenced {
				t.Errorf("key %q was not fenced as sent", odd)
			}
		})
	}
}

func TestKeyReusedForAnotherCharge(t *testing.T) {
	t.Parallel()
	e := newInProcess(t, Config{})
	ctx := context.Background()
	req := card("pay_reuse", 1, CardVisa)
	must(t)(e.gw.Charge(ctx, req))
	other := req
	other.Amount.Minor++
	res := must(t)(e.gw.Charge(ctx, other))
	if res.Status != connector.StatusDeclined || res.Code != "idempotency_key_reused" {
		t.Errorf("Charge(same key, other amount) = %+v, want idempotency_key_reused", res)
	}
	if n := len(e.sb.Ledger()); n != 1 {
		t.Errorf("ledger has %d entries, want 1", n)
	}
}

func TestChargeValidation(t *testing.T) {
	t.Parallel()
	e := newInProcess(t, Config{})
	ctx := context.Background()
	noKey := card("pay_nokey", 1, CardVisa)
	noKey.IdempotencyKey = ""
	negative := card("pay_neg", 1, CardVisa)
	negative.Amount.Minor = -1
	lower := card("pay_lower", 1, CardVisa)
	lower.Amount.Currency = "usd"
	zero := card("pay_zero", 1, CardVisa)
	zero.Amount.Minor = 0
	for _, tc := range []struct {
		req  connector.ChargeRequest
		code string
	}{
		{noKey, "idempotency_key_missing"},
		{negative, "invalid_amount"},
		{lower, "invalid_currency"},
		{zero, ""}, // a card verification
	} {
		res := must(t)(e.gw.Charge(ctx, tc.req))
		if res.Code != tc.code {
			t.Errorf("Charge(%s) = %+v, want code %q", tc.req.PaymentID, res, tc.code)
		}
	}
	// a card verification succeeds but authorizes and charges nothing: no ledger entry
	if n := len(e.sb.Ledger()); n != 0 {
		t.Errorf("ledger has %d entries, want 0 (a verification books nothing)", n)
	}
}

func TestRefunds(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			e := tr.new(t, Config{})
			ctx := context.Background()
			ch := must(t)(e.gw.Charge(ctx, card("pay_refund", 1, CardVisa)))
			refund := func(key string, amount int64) connector.Result {
				t.Helper()
				return must(t)(e.gw.Refund(ctx, connector.RefundRequest{
					IdempotencyKey: key, PaymentID: "pay_refund", GatewayReference: ch.Reference,
					Amount: payment.Money{Minor: amount, Currency: "USD"},
				}))
			}
			first := refund("re_a", 1000)
			if first.Status != connector.StatusSucceeded || !strings.HasPrefix(first.Reference, "re_") {
				t.Fatalf("Refund = %+v, want succeeded re_<n>", first)
			}
			if diff := cmp.Diff(first, refund("re_a", 1000)); diff != "" {
				t.Errorf("refund replay differs (-first +replay):\n%s", diff)
			}
			if got := refund("re_b", 251); got.Code != "refund_exceeds_charge" || got.FailureClass != payment.FailureHardDecline {
				t.Errorf("Refund over the rest = %+v, want refund_exceeds_charge", got)
			}
			if got := refund("re_c", 250); got.Status != connector.StatusSucceeded {
				t.Errorf("Refund of the rest = %+v, want succeeded", got)
			}
			if got := refund("re_d", 1); got.Code != "refund_exceeds_charge" {
				t.Errorf("Refund past full = %+v, want refund_exceeds_charge", got)
			}
			if got := refund("re_a", 999); got.Code != "idempotency_key_reused" {
				t.Errorf("Refund reusing a key = %+v, want idempotency_key_reused", got)
			}
			ledger := e.sb.Ledger()
			if len(ledger) != 1 || ledger[0].Refunded != 1250 || ledger[0].Amount != 1250 {
				t.Errorf("ledger = %+v, want one charge of 1250 refunded 1250", ledger)
			}
			missing := must(t)(e.gw.Refund(ctx, connector.RefundRequest{
				IdempotencyKey: "re_e", PaymentID: "pay_refund", GatewayReference: "ch_404",
				Amount: payment.Money{Minor: 1, Currency: "USD"},
			}))
			if missing.Code != "charge_not_found" {
				t.Errorf("Refund of an unknown charge = %+v, want charge_not_found", missing)
			}
			declined := must(t)(e.gw.Charge(ctx, card("pay_refund_declined", 1, CardDeclined)))
			notCharged := must(t)(e.gw.Refund(ctx, connector.RefundRequest{
				IdempotencyKey: "re_f", PaymentID: "pay_refund_declined", GatewayReference: declined.Reference,
				Amount: payment.Money{Minor: 1, Currency: "USD"},
			}))
			if notCharged.Code != "charge_not_found" {
				t.Errorf("Refund of a declined charge = %+v, want charge_not_found", notCharged)
			}
		})
	}
}

func TestBankRefundWaitsForSettlement(t *testing.T) {
	t.Parallel()
	e := newInProcess(t, Config{})
	ctx := context.Background()
	sent := must(t)(e.gw.Charge(ctx, bank("pay_bank_refund", 1, payment.MethodACH, BankAccountSettles)))
	req := connector.RefundRequest{IdempotencyKey: "re_bank", PaymentID: "pay_bank_refund",
		GatewayReference: sent.Reference, Amount: payment.Money{Minor: 100, Currency: "USD"}}
	if got := must(t)(e.gw.Refund(ctx, req)); got.Code != "charge_not_settled" || got.FailureClass != payment.FailureSoftDecline {
		t.Fatalf("Refund before settlement = %+v, want soft charge_not_settled", got)
	}
	e.clock.Advance(DefaultSettleDelay)
	if got := must(t)(e.gw.Refund(ctx, req)); got.Status != connector.StatusSucceeded {
		t.Errorf("same refund after settlement = %+v, want succeeded", got)
	}

	ret := must(t)(e.gw.Charge(ctx, bank("pay_bank_ret", 1, payment.MethodACH, BankAccountReturnedR01)))
	e.clock.Advance(DefaultSettleDelay + DefaultReturnDelay)
	got := must(t)(e.gw.Refund(ctx, connector.RefundRequest{IdempotencyKey: "re_ret", PaymentID: "pay_bank_ret",
		GatewayReference: ret.Reference, Amount: payment.Money{Minor: 100, Currency: "USD"}}))
	if got.Code != "charge_returned" {
		t.Errorf("Refund of a returned payment = %+v, want charge_returned", got)
	}
}

func TestLatencyRespectsContext(t *testing.T) {
	t.Parallel()
	e := newInProcess(t, Config{Latency: 200 * time.Millisecond})
	req := card("pay_slow", 1, CardVisa)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := e.gw.Charge(ctx, req)
	ge := gatewayError(t, err)
	if ge.Class != payment.FailureUnknown || ge.Code != "timeout" || !ge.MaybeProcessed {
		t.Fatalf("Charge with short ctx = %v, want unknown timeout maybe processed", ge)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	// The sleep came before processing: nothing was charged.
	res := must(t)(e.gw.Inquire(context.Background(), req.IdempotencyKey))
	if res.Status != connector.StatusNotFound {
		t.Errorf("Inquire = %+v, want not_found", res)
	}
	if n := len(e.sb.Ledger()); n != 0 {
		t.Errorf("ledger has %d entries, want 0", n)
	}
}

func TestFaultRate(t *testing.T) {
	t.Parallel()
	t.Run("always", func(t *testing.T) {
		t.Parallel()
		e := newInProcess(t, Config{FaultRate: 1})
		for i := range 5 {
			_, err := e.gw.Charge(context.Background(), card("pay_fault", i+1, CardVisa))
			ge := gatewayError(t, err)
			if ge.Class != payment.FailureTransient || ge.Code != "gateway_503" || !ge.MaybeProcessed {
				t.Fatalf("Charge = %v, want transient gateway_503 maybe processed", ge)
			}
		}
		if n := len(e.sb.Ledger()); n != 0 {
			t.Errorf("ledger has %d entries, want 0", n)
		}
	})
	t.Run("seeded", func(t *testing.T) {
		t.Parallel()
		run := func(seed int64) []bool {
			sb := New(Config{FaultRate: 0.5, Seed: seed})
			var faults []bool
			for i := range 64 {
				_, err := sb.Charge(context.Background(), card("pay_seeded", i+1, CardVisa))
				faults = append(faults, err != nil)
			}
			if d := sb.DoubleCharged(); len(d) != 1 {
				t.Errorf("DoubleCharged = %v, want [pay_seeded] (many attempts of one payment succeeded)", d)
			}
			return faults
		}
		a, b, c := run(42), run(42), run(7)
		if diff := cmp.Diff(a, b); diff != "" {
			t.Errorf("same seed, different faults (-a +b):\n%s", diff)
		}
		if cmp.Equal(a, c) {
			t.Errorf("seeds 42 and 7 gave the same 64 faults")
		}
		n := 0
		for _, f := range a {
			if f {
				n++
			}
		}
		if n < 16 || n > 48 {
			t.Errorf("%d faults in 64 at rate 0.5", n)
		}
	})
}

func TestDoubleChargedFindsTwoCharges(t *testing.T) {
	t.Parallel()
	sb := New(Config{})
	ctx := context.Background()
	// A caller that starts attempt 2 without fencing attempt 1 charges twice;
	// the judge must see it.
	must(t)(sb.Charge(ctx, card("pay_twice", 1, CardVisa)))
	must(t)(sb.Charge(ctx, card("pay_twice", 2, CardVisa)))
	must(t)(sb.Charge(ctx, card("pay_once", 1, CardVisa)))
	if diff := cmp.Diff([]string{"pay_twice"}, sb.DoubleCharged()); diff != "" {
		t.Errorf("DoubleCharged (-want +got):\n%s", diff)
	}
	if n := sb.ChargesFor("pay_twice"); n != 2 {
		t.Errorf("ChargesFor = %d, want 2", n)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	sb := New(Config{})
	res := must(t)(sb.Charge(context.Background(), card("pay_default", 1, Card3DS)))
	if want := DefaultPublicURL + "/challenge/" + res.Reference; res.ActionURL != want {
		t.Errorf("ActionURL = %q, want %q", res.ActionURL, want)
	}
	sent := must(t)(sb.Charge(context.Background(), bank("pay_default_ach", 1, payment.MethodACH, BankAccountSettles)))
	if d := time.Until(sent.SettleAt); d < DefaultSettleDelay-time.Second || d > DefaultSettleDelay {
		t.Errorf("SettleAt is %v away, want about %v", d, DefaultSettleDelay)
	}
	if sent.SettleAt.Location() != time.UTC {
		t.Errorf("SettleAt is in %v, want UTC", sent.SettleAt.Location())
	}
}
