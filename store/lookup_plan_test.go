package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// TestLookupsByIDUsePrimaryKey: a read of one session or payment by id is
// one primary-key probe even when the statistics predate the tenant's rows.
// The statistics are taken while another tenant holds every row; then a new
// tenant makes 500 sessions and payments, and autovacuum is off, so the
// planner believes the new tenant holds none. A lookup that also says
// "tenant_id = $2" is then planned on the tenant_id-leading index and walks
// all 500 of the tenant's entries to find one row (the test checks that it
// still would, so the setup is known to reproduce the hazard); the store's
// lookups say only "id = $1" and check the tenant in Go (store.ownedBy).
func TestLookupsByIDUsePrimaryKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, app := testenv.PostgresURLs(t)
	if err := store.Migrate(ctx, owner, testenv.AppRole); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Config{URL: app, MaxOpenConns: 16}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	odb, err := sqlx.Open("postgres", owner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { odb.Close() })
	for _, tbl := range []string{"payment_sessions", "payments"} {
		if _, err := odb.ExecContext(ctx, `ALTER TABLE `+tbl+` SET (autovacuum_enabled = false)`); err != nil {
			t.Fatal(err)
		}
	}

	fill := func(tenant payment.Tenant, n int) (sessionID, paymentID string) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i := range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				s, _, err := st.CreateSession(ctx, store.NewSession{TenantID: tenant.ID, Amount: payment.Money{Minor: 500, Currency: "USD"},
					Locale: "en-GB", SuccessURL: "https://a/ok", FailureURL: "https://a/no", EnabledMethods: []string{"card"},
					ExpiresOn: time.Now().Add(time.Hour), RetryLimit: 1, Actor: "test"})
				if err != nil {
					t.Error(err)
					return
				}
				p, err := st.InsertPayment(ctx, store.NewPayment{TenantID: tenant.ID, Surface: "payments",
					Amount: payment.Money{Minor: int64(i + 1), Currency: "USD"}, Method: payment.MethodCard,
					PaymentMethodID: "pm_card_visa", ProcessPayment: true, TrackAttempts: true, Actor: "test"})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				sessionID, paymentID = s.ID, p.ID
				mu.Unlock()
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		return sessionID, paymentID
	}
	old, err := st.CreateTenant(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	fill(old, 100)
	if _, err := odb.ExecContext(ctx, `ANALYZE payment_sessions, payments`); err != nil {
		t.Fatal(err)
	}
	tn, err := st.CreateTenant(ctx, "new")
	if err != nil {
		t.Fatal(err)
	}
	sid, pid := fill(tn, 500)

	// indexes names every index a plan of query (with args) scans.
	indexes := func(query string, args ...any) []string {
		t.Helper()
		var plan []byte
		if err := odb.QueryRowContext(ctx, `EXPLAIN (FORMAT JSON) `+query, args...).Scan(&plan); err != nil {
			t.Fatalf("explain %s: %v", query, err)
		}
		var out []string
		var walk func(v any)
		walk = func(v any) {
			switch x := v.(type) {
			case map[string]any:
				if n, ok := x["Index Name"].(string); ok {
					out = append(out, n)
				}
				for _, c := range x {
					walk(c)
				}
			case []any:
				for _, c := range x {
					walk(c)
				}
			}
		}
		var doc any
		if err := json.Unmarshal(plan, &doc); err != nil {
			t.Fatal(err)
		}
		walk(doc)
		return out
	}
	for _, c := range []struct {
		name, query, id, pkey, tenantIndex string
	}{
		{"session", store.SessionByID, sid, "payment_sessions_pkey", "payment_sessions_tenant"},
		{"payment", store.PaymentByID, pid, "payments_pkey", "payments_tenant"},
	} {
		got := indexes(c.query, c.id)
		if len(got) == 0 || got[0] != c.pkey {
			t.Errorf("%s by id: plan scans %v, want %s alone", c.name, got, c.pkey)
		}
		alias := ""
		if strings.Contains(c.query, " p ") {
			alias = "p."
		}
		// the hazard the lookups avoid, under these statistics
		hazard := indexes(c.query+fmt.Sprintf(" AND %stenant_id = $2", alias), c.id, tn.ID)
		if len(hazard) == 0 || !strings.HasPrefix(hazard[0], c.tenantIndex) {
			t.Errorf("%s by id and tenant: plan scans %v; the setup no longer reproduces the tenant-index plan", c.name, hazard)
		}
		// and the tenant check still refuses another tenant's row
		var err error
		if c.name == "session" {
			_, err = st.GetSession(ctx, old.ID, c.id)
		} else {
			_, err = st.GetPayment(ctx, old.ID, c.id)
		}
		if !errors.Is(err, payment.ErrNotFound) {
			t.Errorf("%s of another tenant: %v, want not found", c.name, err)
		}
	}
}
