package stripe_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/connector/stripe"
	"github.com/payd/payd/payment"
)

// recorder records every request the connector sends and the status it got.
type recorder struct {
	mu    sync.Mutex
	calls []string
	keys  []string // Idempotency-Key per call
	auths []string
	next  http.RoundTripper
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	code := 0
	if resp != nil {
		code = resp.StatusCode
	}
	r.calls = append(r.calls, fmt.Sprintf("%s %s %d", req.Method, req.URL.Path, code))
	r.keys = append(r.keys, req.Header.Get("Idempotency-Key"))
	r.auths = append(r.auths, req.Header.Get("Authorization"))
	return resp, err
}

func (r *recorder) take() ([]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, k := r.calls, r.keys
	r.calls, r.keys = nil, nil
	return c, k
}

const testKey = "sk_test_paydContract123"

func newConnector(t *testing.T, base string, cfg stripe.Config) (*stripe.Connector, *recorder) {
	t.Helper()
	rec := &recorder{next: http.DefaultTransport}
	cfg.APIKey, cfg.APIBase = testKey, base
	cfg.HTTPClient = &http.Client{Transport: rec, Timeout: 10 * time.Second}
	c, err := stripe.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

func charge(key string) connector.ChargeRequest {
	return connector.ChargeRequest{IdempotencyKey: key, PaymentID: strings.Split(key, ":")[0],
		Amount: payment.Money{Minor: 1250, Currency: "USD"}, Method: payment.MethodCard, PaymentMethodID: "pm_card_visa"}
}

// TestStripeMockContract sends every request payd makes to stripe-mock
// (Stripe's own OpenAPI validator): each is accepted (2xx) and each answer
// parses into a Result. stripe-mock is stateless, so its answers are
// fixtures (a requires_payment_method PaymentIntent, a succeeded refund):
// what payd makes of them is checked here; the outcomes themselves are
// checked against the local fake (fake_test.go).
func TestStripeMockContract(t *testing.T) {
	base := stripeMock(t)
	c, rec := newConnector(t, base, stripe.Config{ReturnURL: "https://payd.example/pay/return"})
	ctx := context.Background()
	ok := func(t *testing.T, want ...string) {
		t.Helper()
		calls, keys := rec.take()
		if len(calls) != len(want) {
			t.Fatalf("calls %v, want %v", calls, want)
		}
		for i, w := range want {
			if !strings.HasPrefix(calls[i], w+" 2") {
				t.Errorf("call %d: %s, want %s 2xx (keys %q)", i, calls[i], w, keys)
			}
		}
		t.Logf("stripe-mock: %v", calls)
	}

	t.Run("charge", func(t *testing.T) {
		res, err := c.Charge(ctx, charge("pay_contract:1"))
		if err != nil || !strings.HasPrefix(res.Reference, "pi_") {
			t.Fatalf("charge: %+v, %v", res, err)
		}
		ok(t, "POST /v1/payment_intents")
	})
	t.Run("inquire by reference", func(t *testing.T) {
		res, err := c.InquireAttempt(ctx, connector.Attempt{IdempotencyKey: "pay_contract:1", Reference: "pi_123",
			Charge: charge("pay_contract:1"), StartedAt: time.Now()})
		if err != nil || res.Reference == "" {
			t.Fatalf("inquire: %+v, %v", res, err)
		}
		ok(t, "GET /v1/payment_intents/pi_123")
	})
	t.Run("inquire by search then replay", func(t *testing.T) {
		// stripe-mock's search answers a fixture without payd's metadata:
		// not a match, so the create is replayed under the same key
		res, err := c.InquireAttempt(ctx, connector.Attempt{IdempotencyKey: "pay_contract:2",
			Charge: charge("pay_contract:2"), StartedAt: time.Now()})
		if err != nil || res.Reference == "" {
			t.Fatalf("inquire: %+v, %v", res, err)
		}
		calls, keys := rec.take()
		if len(calls) != 2 || !strings.HasPrefix(calls[0], "GET /v1/payment_intents/search 200") ||
			!strings.HasPrefix(calls[1], "POST /v1/payment_intents 200") || keys[1] != "pay_contract:2" {
			t.Fatalf("calls %v keys %q", calls, keys)
		}
		t.Logf("stripe-mock: %v", calls)
	})
	t.Run("inquire past the key's 24 h", func(t *testing.T) {
		res, err := c.InquireAttempt(ctx, connector.Attempt{IdempotencyKey: "pay_contract:3",
			Charge: charge("pay_contract:3"), StartedAt: time.Now().Add(-25 * time.Hour)})
		if err != nil || res.Status != connector.StatusNotFound {
			t.Fatalf("inquire: %+v, %v", res, err)
		}
		ok(t, "GET /v1/payment_intents/search")
	})
	t.Run("void", func(t *testing.T) {
		// the fixture is requires_payment_method, so a cancel is sent; its
		// answer (the same fixture, not canceled) is no proof of a void
		_, err := c.VoidAttempt(ctx, connector.Attempt{IdempotencyKey: "pay_contract:1", Reference: "pi_123"})
		var ge *connector.Error
		if !errors.As(err, &ge) || ge.Code != "unexpected_status" {
			t.Fatalf("void: %v", err)
		}
		calls, keys := rec.take()
		if len(calls) != 2 || !strings.HasPrefix(calls[1], "POST /v1/payment_intents/pi_123/cancel 200") ||
			keys[1] != "void:pay_contract:1" {
			t.Fatalf("calls %v keys %q", calls, keys)
		}
		t.Logf("stripe-mock: %v", calls)
	})
	t.Run("refund", func(t *testing.T) {
		res, err := c.Refund(ctx, connector.RefundRequest{IdempotencyKey: "ref_contract", PaymentID: "pay_contract",
			GatewayReference: "pi_123", Amount: payment.Money{Minor: 500, Currency: "USD"}})
		if err != nil || res.Status != connector.StatusSucceeded || !strings.HasPrefix(res.Reference, "re_") {
			t.Fatalf("refund: %+v, %v", res, err)
		}
		calls, keys := rec.take()
		if len(calls) != 1 || !strings.HasPrefix(calls[0], "POST /v1/refunds 200") || keys[0] != "ref_contract" {
			t.Fatalf("calls %v keys %q", calls, keys)
		}
		t.Logf("stripe-mock: %v", calls)
	})
	t.Run("settlement", func(t *testing.T) {
		if _, err := c.Settlement(ctx, "pi_123"); err != nil {
			t.Fatal(err)
		}
		ok(t, "GET /v1/payment_intents/pi_123")
	})
	t.Run("list", func(t *testing.T) {
		// stripe-mock's fixtures are created at 1234567890
		from := time.Unix(1234567890, 0).Add(-time.Hour)
		page, err := c.List(ctx, connector.ListQuery{From: from, To: from.Add(2 * time.Hour), Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		ok(t, "GET /v1/payment_intents", "GET /v1/refunds")
		t.Logf("entries %+v", page.Entries)
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, a := range rec.auths {
		if a != "Bearer "+testKey {
			t.Errorf("Authorization %q", a)
		}
	}
}

// TestStripeMockKeyNeverInErrors: stripe-mock (like Stripe) echoes a
// refused Authorization header in its error message; the connector's error
// carries no key, and says nothing was charged.
func TestStripeMockKeyNeverInErrors(t *testing.T) {
	base := stripeMock(t)
	const bad = "not-a-stripe-key-s3cret"
	c, err := stripe.New(stripe.Config{APIKey: bad, APIBase: base})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Charge(context.Background(), charge("pay_badkey:1"))
	var ge *connector.Error
	if !errors.As(err, &ge) || ge.MaybeProcessed || ge.Code != "authentication_error" {
		t.Fatalf("charge with a bad key: %+v, %v", res, err)
	}
	if strings.Contains(err.Error(), bad) || strings.Contains(fmt.Sprintf("%+v", res), bad) {
		t.Fatalf("the key leaked: %v", err)
	}
	if !strings.Contains(err.Error(), "[redacted]") {
		t.Logf("stripe-mock's message: %v", err)
	}
	if _, err := stripe.New(stripe.Config{}); !errors.Is(err, stripe.ErrNoAPIKey) {
		t.Fatalf("no key: %v", err)
	}
}
