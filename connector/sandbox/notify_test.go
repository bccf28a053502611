package sandbox

import (
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

// TestNotificationsOverHTTP: a card charge and a bank payment that settles
// and is then returned push three signed notifications; held, copied three
// times and flushed over HTTP (POST /notifications/flush, as with `payd
// sandbox`), they arrive newest first: the return before the settlement.
func TestNotificationsOverHTTP(t *testing.T) {
	t.Parallel()
	const secret = "sandbox-secret"
	var mu sync.Mutex
	var got []connector.Notification
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := connector.VerifyNotification(r.Header.Get(connector.NotificationSignatureHeader), body,
			[][]byte{[]byte(secret)}, time.Now(), time.Minute); err != nil {
			t.Errorf("signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var n connector.Notification
		if err := json.Unmarshal(body, &n); err != nil {
			t.Errorf("body %s: %v", body, err)
		}
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer recv.Close()
	sb := New(Config{SettleDelay: 50 * time.Millisecond, ReturnDelay: 50 * time.Millisecond,
		Notify: NotifyConfig{URL: recv.URL, Secret: secret, Copies: 3, Order: NotifyReversed, Hold: true}})
	defer sb.Close()
	srv := httptest.NewServer(sb.Handler())
	defer srv.Close()
	gw := NewClient(srv.URL, nil)
	ctx := context.Background()
	usd := payment.Money{Minor: 100, Currency: "USD"}
	card, err := gw.Charge(ctx, connector.ChargeRequest{IdempotencyKey: "pay_c:1", PaymentID: "pay_c", Amount: usd,
		Method: payment.MethodCard, PaymentMethodID: CardVisa})
	if err != nil {
		t.Fatal(err)
	}
	bank, err := gw.Charge(ctx, connector.ChargeRequest{IdempotencyKey: "pay_b:1", PaymentID: "pay_b", Amount: usd,
		Method: payment.MethodACH, PaymentMethodID: "ba_10001"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond) // settled and returned
	mu.Lock()
	if len(got) != 0 {
		t.Fatalf("held notifications were delivered: %+v", got)
	}
	mu.Unlock()
	resp, err := http.Post(srv.URL+"/notifications/flush", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var fl struct{ Flushed int }
	_ = json.NewDecoder(resp.Body).Decode(&fl)
	resp.Body.Close()
	if fl.Flushed != 3 {
		t.Fatalf("flushed %d, want 3", fl.Flushed)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 9 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []struct{ typ, key, ref string }{
		{connector.NotifyPaymentReturned, "pay_b:1", bank.Reference},
		{connector.NotifyPaymentSettled, "pay_b:1", bank.Reference},
		{connector.NotifyChargeSucceeded, "pay_c:1", card.Reference},
	}
	if len(got) != 9 {
		t.Fatalf("got %d notifications, want 9: %+v", len(got), got)
	}
	for i, n := range got {
		w := want[i/3]
		if n.Type != w.typ || n.IdempotencyKey != w.key || n.GatewayReference != w.ref || n.ID != got[i/3*3].ID || n.ID == "" {
			t.Errorf("#%d: %+v, want %+v (copies share an id)", i, n, w)
		}
	}
	if got[0].ID == got[3].ID || got[3].ID == got[6].ID {
		t.Error("distinct notifications share an id")
	}
}
