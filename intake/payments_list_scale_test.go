package intake_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/payd/payd/intake"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/store"
)

// TestListPaymentsAtScale measures GET /v1/payments on one tenant's
// PAYD_LIST_ROWS payments (docs/BENCHMARKS.md, "Listing payments at 1M"):
// the rows are written by one INSERT … SELECT generate_series in Postgres
// (one a second back from now, every tenth FAILED, every fourth ACH), then
// VACUUM (ANALYZE); each case is PAYD_LIST_REQUESTS sequential requests
// (default 200) over loopback HTTP to intake's real handler (without the
// test harness's OpenAPI check, which would be timed too), after 10 warm-up
// requests, and its latencies' p50/p99/max are logged. It is a measurement,
// so it runs only when PAYD_LIST_ROWS asks for it; run it without -race:
//
//	source "$(bash scripts/services.sh up listbench)"
//	PAYD_LIST_ROWS=1000000 go test ./intake -run '^TestListPaymentsAtScale$' -v -count=1 -timeout 30m
//	bash scripts/services.sh down listbench
func TestListPaymentsAtScale(t *testing.T) {
	rows, _ := strconv.Atoi(os.Getenv("PAYD_LIST_ROWS"))
	if rows <= 0 {
		t.Skip("a measurement: set PAYD_LIST_ROWS (e.g. 1000000) to run it")
	}
	n := 200
	if v, _ := strconv.Atoi(os.Getenv("PAYD_LIST_REQUESTS")); v > 0 {
		n = v
	}
	ctx := context.Background()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	owner, err := store.Open(ctx, store.Config{URL: h.DBURL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	began := time.Now()
	if _, err := owner.DB().ExecContext(ctx, `
		INSERT INTO payments (id, tenant_id, surface, amount, currency, method, payment_method_id, destination_type,
			destination_id, process_payment, track_attempts, status, created_at, updated_at, succeeded_at, failed_at)
		SELECT 'pay_' || md5('list' || g), $1, 'payments', 1250, 'USD', CASE WHEN g % 4 = 0 THEN 'ACH' ELSE 'CARD' END,
			'pm_card_visa', 'INVOICE', 'inv_test', true, true, CASE WHEN g % 10 = 0 THEN 'FAILED' ELSE 'SUCCEEDED' END,
			t, t, CASE WHEN g % 10 <> 0 THEN t END, CASE WHEN g % 10 = 0 THEN t END
		FROM generate_series(1, $2) g, LATERAL (SELECT now() - make_interval(secs => g) AS t) c`, h.TenantA, rows); err != nil {
		t.Fatal(err)
	}
	seeded := time.Since(began)
	began = time.Now()
	if _, err := owner.DB().ExecContext(ctx, `VACUUM (ANALYZE) payments`); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %d payments in %s, VACUUM (ANALYZE) %s", rows, seeded.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))

	// the 49,950th newest payment (g = 49,950): the cursor at page 1,000 of 50
	deep := ""
	if err := owner.DB().QueryRowContext(ctx, `SELECT 'pay_' || md5('list' || 49950)`).Scan(&deep); err != nil {
		t.Fatal(err)
	}
	logDiscard := slog.New(slog.NewTextHandler(io.Discard, nil))
	serve := func(maxOffset int) *httptest.Server {
		srv := httptest.NewServer(intake.NewServer(intake.Deps{Store: h.Store, Enqueue: h.Enqueuer, Redis: h.Redis,
			Log: logDiscard, Config: intake.Config{ListMaxOffset: maxOffset}}))
		t.Cleanup(srv.Close)
		return srv
	}
	// the default offset cap (10,000), and one raised to 100,000 to show
	// what deeper offsets would cost
	def, deepSrv := serve(0), serve(100_000)
	get := func(srv *httptest.Server, query string) time.Duration {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/payments?"+query, nil)
		req.Header.Set("x-api-key", h.KeyA)
		t0 := time.Now()
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		el := time.Since(t0)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", query, resp.StatusCode, b)
		}
		return el
	}
	day := time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)
	t.Logf("%-62s %8s %8s %8s", "query (n="+strconv.Itoa(n)+" each)", "p50 ms", "p99 ms", "max ms")
	for _, c := range []struct {
		srv   *httptest.Server
		query string
	}{
		{def, ""},                     // the vendor's first page: limit 50, with its total
		{def, "offset=9990&limit=10"}, // page 1,000 of 10
		{def, "offset=9950"},          // the last page of 50 the default cap reaches
		{deepSrv, ""},                 // the first page again: its count reads up to 100,051 entries
		{deepSrv, "offset=49950"},     // page 1,000 of 50
		{deepSrv, "offset=99950"},     // page 2,000 of 50
		{def, "starting_after="},      // payd's cursor, first page of 20
		{def, "starting_after=&limit=50"},
		{def, "starting_after=" + deep + "&limit=50"}, // page 1,000 of 50 by cursor
		{def, "payment_status=FAILED"},                // a 10 % filter
		{def, "payment_status=FAILED&offset=9950"},
		{def, "payment_method_type=ACH&currency=USD&offset=4950"},
		{def, "start_time=" + day}, // the last day's 86,400
		{def, "start_time=" + day + "&offset=9950"},
		{def, "destination_id=inv_test"}, // a filter no index has: every row it checks is read
		{def, "destination_id=inv_none"}, // … and matches nothing: every row of the tenant is read
		{def, "payment_status=REFUNDED"}, // an indexed filter that matches nothing: every index entry
	} {
		for range 10 {
			get(c.srv, c.query)
		}
		lat := make([]time.Duration, n)
		for i := range lat {
			lat[i] = get(c.srv, c.query)
		}
		slices.Sort(lat)
		ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }
		label := c.query
		if c.srv == deepSrv {
			label += " (cap 100,000)"
		}
		t.Logf("%-62s %8s %8s %8s", label, ms(lat[n/2]), ms(lat[n*99/100]), ms(lat[n-1]))
	}
}
