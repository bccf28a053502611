package bench

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// TestSeedPayments: seeded rows are what payd would have left — a final
// payment with its attempt, audit trail and invoice application — and every
// reader of payd's own sees them as such.
func TestSeedPayments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, app := testenv.PostgresURLs(t)
	if err := store.Migrate(ctx, owner, testenv.AppRole); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("postgres", owner)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := store.Open(ctx, store.Config{URL: app}, nil) // payd's reads, as the app role
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tn, err := st.CreateTenant(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	res, err := seedPayments(ctx, db, seedConfig{TenantID: tn.ID, N: 25, From: now.Add(-48 * time.Hour), To: now.Add(-time.Hour), PerInvoice: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Payments != 25 || res.Attempts != 25 || res.Events != 75 || res.Invoices != 3 || res.Applications != 25 {
		t.Errorf("seed result = %+v", res)
	}
	rows, err := tableRows(ctx, db)
	if err != nil || rows["payments"] != 25 || rows["payment_events"] != 75 || rows["invoices"] != 3 {
		t.Errorf("table rows = %v, %v", rows, err)
	}
	if v, err := serverVersion(ctx, db); err != nil || v == "" {
		t.Errorf("server version = %q, %v", v, err)
	}
	list, _, err := st.ListPayments(ctx, store.ListFilter{TenantID: tn.ID, Limit: 100})
	if err != nil || len(list) != 25 {
		t.Fatalf("list: %d payments, %v", len(list), err)
	}
	p, err := st.GetPayment(ctx, tn.ID, list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != payment.StatusSucceeded || len(p.Attempts) != 1 || p.Attempts[0].Status != payment.AttemptSucceeded ||
		p.CreatedAt.After(now) || p.CreatedAt.Before(now.Add(-49*time.Hour)) {
		t.Errorf("seeded payment = %+v", p)
	}
	states, err := st.PaymentStates(ctx, []string{p.ID})
	if err != nil || states[p.ID].Status != payment.StatusSucceeded {
		t.Errorf("states = %v, %v", states, err)
	}
}

func TestBenchInserts(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresURL(t)
	res, err := benchInserts(context.Background(), url, randomID(), 2, 200*time.Millisecond)
	if err != nil || res.Inserts <= 0 || res.PerSecond <= 0 || res.Clients != 2 || res.SynchronousCommit == "" {
		t.Errorf("benchInserts = %+v, %v", res, err)
	}
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables int
	if err := db.QueryRow(`SELECT count(*) FROM pg_tables WHERE tablename LIKE 'bench_inserts_%'`).Scan(&tables); err != nil || tables != 0 {
		t.Errorf("scratch insert tables left: %d, %v", tables, err)
	}
}
