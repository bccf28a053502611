package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
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

func TestFaultsRoute(t *testing.T) {
	t.Parallel()
	s := New(Config{Latency: time.Millisecond})
	srv := httptest.NewServer(s.Handler())
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
		t.Fatalf("GET /ledger beside /faults: %v %v", resp, err)
	}
	resp.Body.Close()
}

// Notification delivery changes while the sandbox runs (PUT /faults, as
// the process fault tests do on `payd sandbox`): dropped, then copied and
// reversed within a batch, and nonsense is refused.
func TestNotifyFaultsAtRuntime(t *testing.T) {
	t.Parallel()
	const secret = "runtime-secret"
	var mu sync.Mutex
	var got []connector.Notification
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := connector.VerifyNotification(r.Header.Get(connector.NotificationSignatureHeader), body,
			[][]byte{[]byte(secret)}, time.Now(), time.Minute); err != nil {
			t.Errorf("signature: %v", err)
		}
		var n connector.Notification
		_ = json.Unmarshal(body, &n)
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer recv.Close()
	sb := New(Config{Notify: NotifyConfig{URL: recv.URL, Secret: secret, Copies: 2, Order: NotifyShuffled, Batch: time.Second}})
	defer sb.Close()
	srv := httptest.NewServer(sb.Handler())
	defer srv.Close()
	if f := getFaults(t, srv.URL); f.Notify != (NotifyFaults{Copies: 2, Order: NotifyShuffled, Batch: time.Second}) {
		t.Fatalf("GET /faults notify = %+v, want NotifyConfig's delivery", f.Notify)
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	charge := func(id string) connector.Result {
		t.Helper()
		res, err := sb.Charge(context.Background(), connector.ChargeRequest{IdempotencyKey: id + ":1", PaymentID: id,
			Amount: payment.Money{Minor: 100, Currency: "USD"}, Method: payment.MethodCard, PaymentMethodID: CardVisa})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	if code := putFaults(t, srv.URL, Faults{Notify: NotifyFaults{Drop: true}}); code != http.StatusOK {
		t.Fatalf("PUT drop: %d", code)
	}
	charge("pay_dropped")
	time.Sleep(200 * time.Millisecond)
	if n := count(); n != 0 {
		t.Fatalf("%d notifications delivered while dropped", n)
	}

	if code := putFaults(t, srv.URL, Faults{Notify: NotifyFaults{Copies: 3, Order: NotifyReversed, Batch: 100 * time.Millisecond}}); code != http.StatusOK {
		t.Fatalf("PUT copies: %d", code)
	}
	first, second := charge("pay_first"), charge("pay_second")
	for end := time.Now().Add(10 * time.Second); count() < 6 && time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
	}
	time.Sleep(100 * time.Millisecond) // no seventh
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 6 {
		t.Fatalf("got %d notifications, want 6 (2 charges × 3 copies): %+v", len(got), got)
	}
	for i, n := range got {
		want := map[bool]string{true: second.Reference, false: first.Reference}[i < 3] // newest first
		if n.GatewayReference != want || n.ID != got[i/3*3].ID {
			t.Errorf("#%d: %+v, want reference %s (copies share an id)", i, n, want)
		}
	}
	for _, bad := range []Faults{{Notify: NotifyFaults{Copies: 101}}, {Notify: NotifyFaults{Copies: -1}},
		{Notify: NotifyFaults{Order: "sideways"}}, {Notify: NotifyFaults{Delay: -time.Second}}, {Notify: NotifyFaults{Batch: -1}}} {
		if code := putFaults(t, srv.URL, bad); code != http.StatusUnprocessableEntity {
			t.Errorf("PUT %+v: %d, want 422", bad.Notify, code)
		}
	}
}

func putFaults(t *testing.T, url string, f Faults) int {
	t.Helper()
	b, _ := json.Marshal(f)
	req, _ := http.NewRequest(http.MethodPut, url+"/faults", bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func getFaults(t *testing.T, url string) Faults {
	t.Helper()
	resp, err := http.Get(url + "/faults")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var f Faults
	if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
		t.Fatal(err)
	}
	return f
}
