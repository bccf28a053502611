package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// A caller that gives up during ResponseDelay leaves a charge in the ledger
// that it never heard of; one that waits gets the answer.
func TestResponseDelayChargesFirst(t *testing.T) {
	t.Parallel()
	s := New(Config{})
	s.SetFaults(Faults{ResponseDelay: 300 * time.Millisecond})
	req := connector.ChargeRequest{IdempotencyKey: "pay_1:1", PaymentID: "pay_1", Amount: payment.Money{Minor: 100, Currency: "USD"},
		Method: payment.MethodCard, PaymentMethodID: CardVisa}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := s.Charge(ctx, req)
	if ge := connector.AsError(err); ge == nil || !ge.MaybeProcessed {
		t.Fatalf("Charge during ResponseDelay with a caller gone: err %v, want an unknown outcome", err)
	}
	if n := len(s.Ledger()); n != 1 {
		t.Fatalf("ledger has %d charges, want 1 (charged before the delay)", n)
	}
	s.SetFaults(Faults{})
	res, err := s.Charge(context.Background(), req)
	if err != nil || res.Status != connector.StatusSucceeded {
		t.Fatalf("retry of the same key: %+v %v", res, err)
	}
	if n := len(s.Ledger()); n != 1 {
		t.Fatalf("ledger has %d charges after the retry, want 1", n)
	}
}

// Latency before processing: a caller that gives up leaves nothing behind.
func TestLatencyFaultProcessesNothing(t *testing.T) {
	t.Parallel()
	s := New(Config{})
	s.SetFaults(Faults{Latency: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := s.Charge(ctx, connector.ChargeRequest{IdempotencyKey: "pay_1:1", PaymentID: "pay_1",
		Amount: payment.Money{Minor: 100, Currency: "USD"}, Method: payment.MethodCard, PaymentMethodID: CardVisa})
	if err == nil {
		t.Fatal("want a timeout")
	}
	if n := len(s.Ledger()); n != 0 {
		t.Fatalf("ledger has %d charges, want 0", n)
	}
}

func TestControlHandlerFaults(t *testing.T) {
	t.Parallel()
	s := New(Config{Latency: time.Millisecond})
	srv := httptest.NewServer(s.ControlHandler())
	defer srv.Close()
	put := func(f any) int {
		b, _ := json.Marshal(f)
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/faults", bytes.NewReader(b))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	want := Faults{FaultRate: 1, ResponseDelay: time.Second}
	if code := put(want); code != http.StatusOK {
		t.Fatalf("PUT /faults: %d", code)
	}
	if got := s.Faults(); got != want {
		t.Fatalf("faults %+v, want %+v", got, want)
	}
	if code := put(map[string]any{"fault_rate": 2}); code != http.StatusUnprocessableEntity {
		t.Fatalf("PUT /faults with a rate of 2: %d, want 422", code)
	}
	if _, err := s.Charge(context.Background(), connector.ChargeRequest{IdempotencyKey: "k", PaymentID: "p",
		Amount: payment.Money{Minor: 1, Currency: "USD"}, Method: payment.MethodCard, PaymentMethodID: CardVisa}); err == nil {
		t.Fatal("FaultRate 1: want a 503")
	}
	resp, err := http.Get(srv.URL + "/ledger")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /ledger through ControlHandler: %v %v", resp, err)
	}
	resp.Body.Close()
}
