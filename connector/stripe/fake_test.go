package stripe_test

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/connector/stripe"
	"github.com/payd/payd/connector/stripe/stripefake"
	"github.com/payd/payd/payment"
)

// declineRows is the decline table written out again, row by row: a row
// added to or changed in the connector's table without its row here fails.
var declineRows = []struct {
	code  string
	class payment.FailureClass
}{
	{"insufficient_funds", payment.FailureSoftDecline},
	{"card_velocity_exceeded", payment.FailureSoftDecline},
	{"withdrawal_count_limit_exceeded", payment.FailureSoftDecline},
	{"processing_error", payment.FailureTransient},
	{"issuer_not_available", payment.FailureTransient},
	{"try_again_later", payment.FailureTransient},
	{"reenter_transaction", payment.FailureTransient},
	{"approve_with_id", payment.FailureTransient},
	{"call_issuer", payment.FailureHardDecline},
	{"card_declined", payment.FailureHardDecline},
	{"generic_decline", payment.FailureHardDecline},
	{"do_not_honor", payment.FailureHardDecline},
	{"do_not_try_again", payment.FailureHardDecline},
	{"expired_card", payment.FailureHardDecline},
	{"incorrect_cvc", payment.FailureHardDecline},
	{"invalid_cvc", payment.FailureHardDecline},
	{"incorrect_number", payment.FailureHardDecline},
	{"invalid_number", payment.FailureHardDecline},
	{"invalid_expiry_month", payment.FailureHardDecline},
	{"invalid_expiry_year", payment.FailureHardDecline},
	{"lost_card", payment.FailureHardDecline},
	{"stolen_card", payment.FailureHardDecline},
	{"pickup_card", payment.FailureHardDecline},
	{"fraudulent", payment.FailureHardDecline},
	{"restricted_card", payment.FailureHardDecline},
	{"card_not_supported", payment.FailureHardDecline},
	{"currency_not_supported", payment.FailureHardDecline},
	{"transaction_not_allowed", payment.FailureHardDecline},
	{"not_permitted", payment.FailureHardDecline},
	{"authentication_required", payment.FailureHardDecline},
	{"security_violation", payment.FailureHardDecline},
	{"stop_payment_order", payment.FailureHardDecline},
	{"revocation_of_authorization", payment.FailureHardDecline},
	{"merchant_blacklist", payment.FailureHardDecline},
	{"amount_too_large", payment.FailureHardDecline},
	{"amount_too_small", payment.FailureHardDecline},
}

// TestDeclineTableRowByRow: each decline_code, as Stripe answers it (a 402
// card_error naming the PaymentIntent), is a decline of its class, with the
// PaymentIntent as reference; every row of the table is exercised.
func TestDeclineTableRowByRow(t *testing.T) {
	t.Parallel()
	f := stripefake.New(t)
	c, _ := newConnector(t, f.URL, stripe.Config{})
	var got []string
	for i, row := range declineRows {
		pm := "pm_decline_" + row.code
		f.Outcomes[pm] = stripefake.Outcome{Status: "requires_payment_method", Code: "card_declined", DeclineCode: row.code}
		req := charge("pay_decl" + string(rune('a'+i%26)) + row.code + ":1")
		req.PaymentMethodID = pm
		res, err := c.Charge(context.Background(), req)
		if err != nil {
			t.Fatalf("%s: %v", row.code, err)
		}
		if res.Status != connector.StatusDeclined || res.FailureClass != row.class || res.Code != row.code ||
			!strings.HasPrefix(res.Reference, "pi_") {
			t.Errorf("%s: %+v, want declined %s", row.code, res, row.class)
		}
		// a retrieve of the declined PaymentIntent says the same
		res2, err := c.InquireAttempt(context.Background(), connector.Attempt{IdempotencyKey: req.IdempotencyKey,
			Reference: res.Reference, Charge: req, StartedAt: time.Now()})
		if err != nil || res2.FailureClass != row.class || res2.Code != row.code {
			t.Errorf("%s inquiry: %+v, %v", row.code, res2, err)
		}
		got = append(got, row.code)
	}
	if want := stripe.DeclineCodes(); !cmp.Equal(sortedCopy(want), sortedCopy(got)) {
		t.Errorf("table rows (-want +got):\n%s", cmp.Diff(sortedCopy(want), sortedCopy(got)))
	}
	// no decline_code: the code decides; neither known: hard
	for _, tc := range []struct{ decline, code, wantCode string }{
		{"", "card_declined", "card_declined"},
		{"", "expired_card", "expired_card"},
		{"something_new", "card_declined", "card_declined"},
		{"something_new", "", "something_new"},
		{"", "", "card_declined"},
	} {
		class, code := stripe.ClassifyDecline(tc.decline, tc.code)
		if class != payment.FailureHardDecline || code != tc.wantCode {
			t.Errorf("ClassifyDecline(%q, %q) = %s %s", tc.decline, tc.code, class, code)
		}
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// TestThreeDSecureRequiresAction: requires_action with
// next_action.redirect_to_url is REQUIRES_ACTION with that URL; the
// customer completing it is found by the inquiry (by reference); a void
// before that cancels the PaymentIntent.
func TestThreeDSecureRequiresAction(t *testing.T) {
	t.Parallel()
	f := stripefake.New(t)
	f.Outcomes["pm_card_threeDSecure2Required"] = stripefake.Outcome{Status: "requires_action"}
	c, _ := newConnector(t, f.URL, stripe.Config{ReturnURL: "https://payd.example/return"})
	ctx := context.Background()
	for _, completes := range []bool{true, false} {
		key := "pay_3ds_" + map[bool]string{true: "done", false: "void"}[completes] + ":1"
		req := charge(key)
		req.PaymentMethodID = "pm_card_threeDSecure2Required"
		res, err := c.Charge(ctx, req)
		if err != nil || res.Status != connector.StatusRequiresAction ||
			!strings.HasPrefix(res.ActionURL, "https://hooks.stripe.com/3d_secure_2/") {
			t.Fatalf("charge: %+v, %v", res, err)
		}
		att := connector.Attempt{IdempotencyKey: key, Reference: res.Reference, Charge: req, StartedAt: time.Now()}
		if completes {
			f.SetStatus(res.Reference, "succeeded")
			got, err := c.InquireAttempt(ctx, att)
			if err != nil || got.Status != connector.StatusSucceeded || got.Reference != res.Reference {
				t.Fatalf("inquiry after the challenge: %+v, %v", got, err)
			}
			// a void now finds the charge: only a refund gives it back
			got, err = c.VoidAttempt(ctx, att)
			if err != nil || got.Status != connector.StatusSucceeded {
				t.Fatalf("void after the charge: %+v, %v", got, err)
			}
			continue
		}
		got, err := c.VoidAttempt(ctx, att)
		if err != nil || got.Status != connector.StatusVoided || f.Status(res.Reference) != "canceled" {
			t.Fatalf("void: %+v, %v (status %s)", got, err, f.Status(res.Reference))
		}
		// repeated: the same answer
		if got, err := c.VoidAttempt(ctx, att); err != nil || got.Status != connector.StatusVoided {
			t.Fatalf("void again: %+v, %v", got, err)
		}
		if n := f.Creates(key); n != 1 {
			t.Fatalf("%d PaymentIntents for %s", n, key)
		}
	}
}

// TestLostResponseInquiry: the create's answer (or the request itself) is
// lost; the inquiry finds the one PaymentIntent (search, or replay under
// the same key while the search lags) or, never sent, makes the one charge
// of the attempt. In no case a second PaymentIntent for the attempt.
func TestLostResponseInquiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		out       stripefake.Outcome
		searchLag bool
		want      connector.ResultStatus
		wantCalls []string // after the lost charge
	}{
		{"response lost, search finds it", stripefake.Outcome{Status: "succeeded", LoseResponse: true}, false,
			connector.StatusSucceeded, []string{"GET /v1/payment_intents/search 200"}},
		{"response lost, search lags, replay answers the original", stripefake.Outcome{Status: "succeeded", LoseResponse: true}, true,
			connector.StatusSucceeded, []string{"GET /v1/payment_intents/search 200", "POST /v1/payment_intents 200"}},
		{"declined, response lost, replay answers the decline", stripefake.Outcome{Status: "requires_payment_method",
			DeclineCode: "insufficient_funds", Code: "card_declined", LoseResponse: true}, true,
			connector.StatusDeclined, []string{"GET /v1/payment_intents/search 200", "POST /v1/payment_intents 402"}},
		{"request lost, replay charges once", stripefake.Outcome{Status: "succeeded", LoseRequest: true}, false,
			connector.StatusSucceeded, []string{"GET /v1/payment_intents/search 200", "POST /v1/payment_intents 200"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := stripefake.New(t)
			f.Outcomes["pm_x"] = tc.out
			f.SearchLag = tc.searchLag
			c, _ := newConnector(t, f.URL, stripe.Config{})
			req := charge("pay_lost:1")
			req.PaymentMethodID = "pm_x"
			_, err := c.Charge(ctx, req)
			var ge *connector.Error
			if !errors.As(err, &ge) || !ge.MaybeProcessed {
				t.Fatalf("lost charge: %v, want an unknown outcome", err)
			}
			before := len(f.CallsOf(""))
			res, err := c.InquireAttempt(ctx, connector.Attempt{IdempotencyKey: req.IdempotencyKey, Charge: req,
				StartedAt: time.Now().Add(-time.Minute)})
			if err != nil || res.Status != tc.want {
				t.Fatalf("inquiry: %+v, %v", res, err)
			}
			if diff := cmp.Diff(tc.wantCalls, f.CallsOf("")[before:]); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			// asked again: the same answer, still one PaymentIntent
			res2, err := c.InquireAttempt(ctx, connector.Attempt{IdempotencyKey: req.IdempotencyKey, Charge: req,
				StartedAt: time.Now().Add(-time.Minute)})
			if err != nil || res2.Reference != res.Reference {
				t.Fatalf("second inquiry: %+v, %v (first %s)", res2, err, res.Reference)
			}
			if n := f.Creates(req.IdempotencyKey); n != 1 {
				t.Fatalf("%d PaymentIntents for one attempt", n)
			}
		})
	}
}

// TestInquiryAfterTheKeyWindow: no replay past the replay window; between
// it and the key's 24 h, "not found" is an unknown outcome; after them it
// is StatusNotFound. A void never creates a PaymentIntent.
func TestInquiryAfterTheKeyWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := stripefake.New(t)
	c, _ := newConnector(t, f.URL, stripe.Config{})
	req := charge("pay_old:1")
	for _, tc := range []struct {
		age      time.Duration
		wantErr  bool
		wantStat connector.ResultStatus
	}{
		{23*time.Hour + 30*time.Minute, true, ""},
		{25 * time.Hour, false, connector.StatusNotFound},
	} {
		att := connector.Attempt{IdempotencyKey: req.IdempotencyKey, Charge: req, StartedAt: time.Now().Add(-tc.age)}
		res, err := c.InquireAttempt(ctx, att)
		var ge *connector.Error
		if tc.wantErr != errors.As(err, &ge) || (!tc.wantErr && res.Status != tc.wantStat) {
			t.Errorf("age %s: %+v, %v", tc.age, res, err)
		}
		vres, verr := c.VoidAttempt(ctx, att)
		if tc.wantErr != errors.As(verr, &ge) || (!tc.wantErr && vres.Status != tc.wantStat) {
			t.Errorf("void at age %s: %+v, %v", tc.age, vres, verr)
		}
	}
	// a void of a recent attempt with no PaymentIntent: unknown, nothing created
	_, err := c.VoidAttempt(ctx, connector.Attempt{IdempotencyKey: "pay_new:1", Charge: charge("pay_new:1"), StartedAt: time.Now()})
	if ge := (*connector.Error)(nil); !errors.As(err, &ge) || !ge.MaybeProcessed {
		t.Errorf("void of an unseen recent attempt: %v", err)
	}
	if n := len(f.CallsOf("POST /v1/payment_intents ")); n != 0 {
		t.Fatalf("%d creates", n)
	}
	if calls := f.CallsOf("POST"); len(calls) != 0 {
		t.Fatalf("posts %v", calls)
	}
	caps := c.Capabilities()
	if caps.FencesKeys || caps.KeyWindow != 24*time.Hour {
		t.Fatalf("capabilities %+v", caps)
	}
	now := time.Now()
	if connector.NotFoundFinal(caps, now.Add(-23*time.Hour), now) || !connector.NotFoundFinal(caps, now.Add(-24*time.Hour), now) ||
		connector.NotFoundFinal(caps, time.Time{}, now) {
		t.Fatal("NotFoundFinal")
	}
}

// TestRefundIdempotentAndListed: a refund under its own key, repeated,
// is one refund; the charge and the refund are listed for their window.
func TestRefundIdempotentAndListed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := stripefake.New(t)
	c, _ := newConnector(t, f.URL, stripe.Config{})
	res, err := c.Charge(ctx, charge("pay_ref:1"))
	if err != nil || res.Status != connector.StatusSucceeded {
		t.Fatalf("charge: %+v, %v", res, err)
	}
	rr := connector.RefundRequest{IdempotencyKey: "ref_1", PaymentID: "pay_ref", GatewayReference: res.Reference,
		Amount: payment.Money{Minor: 250, Currency: "USD"}}
	r1, err1 := c.Refund(ctx, rr)
	r2, err2 := c.Refund(ctx, rr)
	if err1 != nil || err2 != nil || r1.Reference != r2.Reference || r1.Status != connector.StatusSucceeded {
		t.Fatalf("refunds: %+v %v, %+v %v", r1, err1, r2, err2)
	}
	page, err := c.List(ctx, connector.ListQuery{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour), Limit: 1})
	if err != nil || len(page.Entries) != 1 || page.Next == "" {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	e := page.Entries[0]
	if e.Kind != connector.EntryCharge || e.IdempotencyKey != "pay_ref:1" || e.PaymentID != "pay_ref" || e.Amount.Minor != 1250 {
		t.Fatalf("charge entry %+v", e)
	}
	page, err = c.List(ctx, connector.ListQuery{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour),
		Limit: 1, Cursor: page.Next})
	if err != nil || len(page.Entries) != 1 || page.Next != "" {
		t.Fatalf("second page: %+v, %v", page, err)
	}
	if e := page.Entries[0]; e.Kind != connector.EntryRefund || e.IdempotencyKey != "ref_1" || e.ChargeReference != res.Reference ||
		e.Reference != r1.Reference {
		t.Fatalf("refund entry %+v", e)
	}
	st, err := c.Settlement(ctx, res.Reference)
	if err != nil || st.Status != connector.StatusSettled {
		t.Fatalf("settlement %+v, %v", st, err)
	}
}

// TestReferenceOfAnotherAttempt: a reference whose PaymentIntent names
// another attempt key answers nothing for this attempt: the search does.
func TestReferenceOfAnotherAttempt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := stripefake.New(t)
	f.Outcomes["pm_no"] = stripefake.Outcome{Status: "requires_payment_method", Code: "card_declined", DeclineCode: "do_not_honor"}
	c, _ := newConnector(t, f.URL, stripe.Config{})
	first := charge("pay_two:1")
	first.PaymentMethodID = "pm_no"
	r1, err := c.Charge(ctx, first)
	if err != nil || r1.Status != connector.StatusDeclined {
		t.Fatalf("attempt 1: %+v, %v", r1, err)
	}
	second := charge("pay_two:2")
	res, err := c.InquireAttempt(ctx, connector.Attempt{IdempotencyKey: second.IdempotencyKey, Reference: r1.Reference,
		Charge: second, StartedAt: time.Now()})
	if err != nil || res.Reference == r1.Reference || res.Status != connector.StatusSucceeded {
		t.Fatalf("attempt 2 answered by attempt 1's PaymentIntent: %+v, %v", res, err)
	}
	if f.Creates("pay_two:2") != 1 {
		t.Fatalf("%d PaymentIntents for attempt 2", f.Creates("pay_two:2"))
	}
}
