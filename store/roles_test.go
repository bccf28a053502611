package store_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/lib/pq"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/store"
)

// TestAppRoleHasNoDDLRights: connected as the app role, every schema change
// is refused with SQLSTATE 42501 (insufficient_privilege), and so is any
// write to the migration history, while payd's own operations succeed.
func TestAppRoleHasNoDDLRights(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, app := testenv.PostgresURLs(t)
	if err := store.Migrate(ctx, owner, testenv.AppRole); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("postgres", app)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var user string
	if err := db.QueryRowContext(ctx, `SELECT current_user`).Scan(&user); err != nil || user != testenv.AppRole {
		t.Fatalf("connected as %q (%v), want %s", user, err, testenv.AppRole)
	}
	for _, q := range []string{
		`CREATE TABLE evil (id int)`,
		`CREATE TABLE public.evil (id int)`,
		`CREATE INDEX evil_idx ON payments (amount)`,
		`ALTER TABLE payments ADD COLUMN evil int`,
		`ALTER TABLE payments DROP CONSTRAINT payments_pkey`,
		`ALTER TABLE invoices DISABLE TRIGGER ALL`,
		`DROP TABLE payments`,
		`DROP TABLE payment_events`,
		`TRUNCATE payments CASCADE`,
		`TRUNCATE tenants CASCADE`,
		`CREATE SCHEMA evil`,
		`INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, true)`,
		`DELETE FROM goose_db_version`,
		`UPDATE goose_db_version SET is_applied = false`,
	} {
		_, err := db.ExecContext(ctx, q)
		var pqe *pq.Error
		if !errors.As(err, &pqe) || pqe.Code != "42501" {
			t.Errorf("%s as %s: got %v, want SQLSTATE 42501", q, testenv.AppRole, err)
		}
	}
	// What payd does at run time works as the app role.
	st, err := store.Open(ctx, store.Config{URL: app, MaxOpenConns: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tn, err := st.CreateTenant(ctx, "roles")
	if err != nil {
		t.Fatalf("create tenant as app role: %v", err)
	}
	if _, _, err := st.CreateAPIKey(ctx, tn.ID); err != nil {
		t.Fatalf("create key as app role: %v", err)
	}
	if _, err := st.CreateInvoice(ctx, store.NewInvoice{TenantID: tn.ID, ExternalID: "inv_roles", Currency: "USD", AmountDue: 100}); err != nil {
		t.Fatalf("create invoice as app role: %v", err)
	}
	if _, err := st.GetInvoice(ctx, tn.ID, "inv_roles"); err != nil {
		t.Fatalf("read invoice as app role: %v", err)
	}
	// payment_events' bigserial: INSERT uses the sequence (USAGE granted)
	if _, err := db.ExecContext(ctx, `SELECT nextval(pg_get_serial_sequence('payment_events', 'id'))`); err != nil {
		t.Errorf("sequence as app role: %v", err)
	}
	// the app role owns nothing
	var owned int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
		WHERE r.rolname = current_user`).Scan(&owned); err != nil || owned != 0 {
		t.Errorf("app role owns %d relations (%v)", owned, err)
	}
}

// TestMigrateAsAppRoleFails: migrations run as the app role are refused up
// front with ErrNotOwner and a message that names the fix, on a migrated
// database and on a fresh one; as the owner they are idempotent.
func TestMigrateAsAppRoleFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, app := testenv.PostgresURLs(t)
	fresh := testenv.AppURL(t, testenv.PostgresURL(t))
	if err := store.Migrate(ctx, fresh); !errors.Is(err, store.ErrNotOwner) || !strings.Contains(err.Error(), "PAYD_MIGRATE_DATABASE_URL") {
		t.Errorf("migrate a fresh database as app role: %v, want ErrNotOwner naming PAYD_MIGRATE_DATABASE_URL", err)
	}
	for i := 0; i < 2; i++ {
		if err := store.Migrate(ctx, owner, testenv.AppRole); err != nil {
			t.Fatalf("migrate as owner (run %d): %v", i+1, err)
		}
	}
	err := store.Migrate(ctx, app)
	if !errors.Is(err, store.ErrNotOwner) || !strings.Contains(err.Error(), `role "`+testenv.AppRole+`"`) {
		t.Errorf("migrate as app role on a migrated database: %v, want ErrNotOwner naming the role", err)
	}
	if err := store.Migrate(ctx, owner, "payd_no_such_role"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("grant to a missing role: %v, want 'does not exist'", err)
	}
}
