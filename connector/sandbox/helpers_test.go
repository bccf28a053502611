package sandbox

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// t0 is the injected clock's start.
var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a sandbox reached through one transport.
type env struct {
	gw       connector.Gateway
	sb       *Sandbox
	clock    *fakeClock
	http     bool
	baseURL  string // http only: where Handler is mounted
	complete func(ref string, succeed bool) error
}

type transport struct {
	name string
	new  func(t *testing.T, cfg Config) *env
}

// transports runs a test against the in-process sandbox and against the same
// sandbox served on loopback, mounted under /sandbox/ as `payd sandbox` does.
var transports = []transport{
	{name: "inprocess", new: newInProcess},
	{name: "http", new: newOverHTTP},
}

func withClock(cfg Config) (Config, *fakeClock) {
	clock := &fakeClock{t: t0}
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	return cfg, clock
}

func newInProcess(t *testing.T, cfg Config) *env {
	t.Helper()
	cfg, clock := withClock(cfg)
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://sandbox.test/sandbox/"
	}
	sb := New(cfg)
	checkNoDoubleCharge(t, sb)
	return &env{gw: sb, sb: sb, clock: clock, complete: sb.CompleteAction}
}

func newOverHTTP(t *testing.T, cfg Config) *env {
	t.Helper()
	cfg, clock := withClock(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String() + "/sandbox"
	cfg.PublicURL = base
	sb := New(cfg)
	mux := http.NewServeMux()
	mux.Handle("/sandbox/", http.StripPrefix("/sandbox", sb.Handler()))
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	checkNoDoubleCharge(t, sb)
	gw := NewClient(base, srv.Client())
	return &env{gw: gw, sb: sb, clock: clock, http: true, baseURL: base,
		complete: func(ref string, succeed bool) error {
			return gw.(*Client).CompleteAction(context.Background(), ref, succeed)
		}}
}

// checkNoDoubleCharge makes invariant I1 part of every test.
func checkNoDoubleCharge(t *testing.T, sb *Sandbox) {
	t.Cleanup(func() {
		if d := sb.DoubleCharged(); len(d) != 0 {
			t.Errorf("DoubleCharged() = %v, want none (I1)", d)
		}
	})
}

func card(paymentID string, attempt int, pm string) connector.ChargeRequest {
	return connector.ChargeRequest{
		IdempotencyKey:  payment.AttemptKey(paymentID, attempt),
		PaymentID:       paymentID,
		Amount:          payment.Money{Minor: 1250, Currency: "USD"},
		Method:          payment.MethodCard,
		PaymentMethodID: pm,
	}
}

func bank(paymentID string, attempt int, method payment.Method, account string) connector.ChargeRequest {
	req := card(paymentID, attempt, account)
	req.Method = method
	return req
}

// must fails the test on a gateway error: must(t)(gw.Charge(ctx, req)).
func must(t *testing.T) func(connector.Result, error) connector.Result {
	t.Helper()
	return func(res connector.Result, err error) connector.Result {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return res
	}
}

func gatewayError(t *testing.T, err error) *connector.Error {
	t.Helper()
	var ge *connector.Error
	if !errors.As(err, &ge) {
		t.Fatalf("error = %v (%T), want *connector.Error", err, err)
	}
	return ge
}

// References carry 128 random bits (crypto/rand), in hex.
var (
	chargeRefRE = regexp.MustCompile(`^ch_[0-9a-f]{32}$`)
	refundRefRE = regexp.MustCompile(`^re_[0-9a-f]{32}$`)
)

// setFaults changes the sandbox's faults as its operator would: SetFaults
// in-process, PUT /faults over HTTP.
func (e *env) setFaults(t *testing.T, f Faults) {
	t.Helper()
	if !e.http {
		e.sb.SetFaults(f)
		return
	}
	if code := putFaults(t, e.baseURL, f); code != http.StatusOK {
		t.Fatalf("PUT /faults = %d, want 200", code)
	}
}

// checkGatewayError checks an error's class, code (codeHTTP over HTTP,
// where a lost answer is a closed connection) and MaybeProcessed.
func (e *env) checkGatewayError(t *testing.T, what string, err error, class payment.FailureClass, code, codeHTTP string, maybe bool) {
	t.Helper()
	ge := gatewayError(t, err)
	if e.http {
		code = codeHTTP
	}
	if ge.Class != class || ge.Code != code || ge.MaybeProcessed != maybe {
		t.Errorf("%s: error %v, want class %s code %s maybe processed %t", what, ge, class, code, maybe)
	}
}
