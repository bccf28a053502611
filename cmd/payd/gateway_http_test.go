package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/payment"
)

// TestGatewayClientKeepsConnections: a worker's concurrent charges to a
// gateway across the network (here the standalone sandbox, PAYD_SANDBOX_URL)
// reuse their connections from one round of calls to the next. With Go's
// default transport (2 idle connections per host) each round of 32
// concurrent calls would dial about 30 new connections.
func TestGatewayClientKeepsConnections(t *testing.T) {
	t.Parallel()
	var dials atomic.Int64
	srv := httptest.NewUnstartedServer(http.StripPrefix("/sandbox", sandbox.New(sandbox.Config{}).Handler()))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	cfg, err := loadConfig(func(k string) string {
		return map[string]string{"PAYD_SANDBOX_URL": srv.URL + "/sandbox", "PAYD_WORKER_CONCURRENCY": "32"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateways[cfg.Gateway](cfg, &deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := gw.(*sandbox.Client); !ok {
		t.Fatalf("PAYD_SANDBOX_URL gateway is %T, want the HTTP client", gw)
	}
	const rounds, calls = 4, 32
	for r := range rounds {
		var wg sync.WaitGroup
		for i := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("pay_conn%d_%d", r, i)
				res, err := gw.Charge(context.Background(), connector.ChargeRequest{IdempotencyKey: id + ":1", PaymentID: id,
					Amount: payment.Money{Minor: 100, Currency: "USD"}, Method: payment.MethodCard, PaymentMethodID: "pm_card_visa"})
				if err != nil || res.Status != connector.StatusSucceeded {
					t.Errorf("charge %s: %+v, %v", id, res, err)
				}
			}()
		}
		wg.Wait()
	}
	if n := dials.Load(); n > calls+calls/4 {
		t.Errorf("%d rounds of %d concurrent charges dialed %d connections, want at most %d (one per concurrent call)",
			rounds, calls, n, calls+calls/4)
	}
}
