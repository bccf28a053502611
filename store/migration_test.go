package store_test

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/store"
)

// migratedTo is a fresh database (its owner's and app role's URLs) with the
// migrations up to version applied, a pool on it as the owner, and the
// migrations' provider to apply the rest.
func migratedTo(t *testing.T, version int64) (owner, app string, db *sql.DB, p *goose.Provider) {
	t.Helper()
	owner, app = testenv.PostgresURLs(t)
	db, err := sql.Open("postgres", owner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if p, err = goose.NewProvider(goose.DialectPostgres, db, os.DirFS("migrations")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(context.Background(), version); err != nil {
		t.Fatal(err)
	}
	return owner, app, db, p
}

// TestMigrationNotificationSweep: migration 00010 on a database the
// previous release wrote. A notification recorded but not acted on is due
// for the sweeper from its receipt, at sequence 1 (its task, if queued,
// keeps its ID); one already processed is never claimed. And while the new
// release rolls out, the previous release's own statements (an insert
// without next_at, its finish) still work on the new schema.
func TestMigrationNotificationSweep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, app, db, _ := migratedTo(t, 9)
	// the previous release's insert and finish (store/notification.go before 00010)
	insert := `INSERT INTO gateway_notifications (gateway, notification_id, type, idempotency_key, gateway_reference,
			occurred_at, received_at) VALUES ('sandbox', $1, 'charge.succeeded', 'pay_x:1', '', $2, $2)`
	finish := `UPDATE gateway_notifications SET processed_at = now(), outcome = 'unknown_payment'
		WHERE gateway = 'sandbox' AND notification_id = $1 AND processed_at IS NULL`
	received := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	for _, id := range []string{"evt_waiting", "evt_done"} {
		if _, err := db.ExecContext(ctx, insert, id, received); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, finish, "evt_done"); err != nil {
		t.Fatal(err)
	}

	if err := store.Migrate(ctx, owner, testenv.AppRole); err != nil {
		t.Fatal(err)
	}
	var nextAt time.Time
	if err := db.QueryRowContext(ctx, `SELECT next_at FROM gateway_notifications WHERE notification_id = 'evt_waiting'`).Scan(&nextAt); err != nil {
		t.Fatal(err)
	}
	if !nextAt.Equal(received) {
		t.Errorf("waiting notification due at %v, want its receipt %v", nextAt, received)
	}
	st, err := store.Open(ctx, store.Config{URL: app}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n, err := st.GetNotification(ctx, "sandbox", "evt_waiting")
	if err != nil || n.Seq != 1 || n.ProcessedAt != nil {
		t.Fatalf("waiting notification after the migration: %+v %v", n, err)
	}
	due, err := st.ClaimDue(ctx, store.AllDueBefore(time.Now()), time.Minute, 10)
	if err != nil || len(due) != 1 || due[0].Notification.ID != "evt_waiting" || due[0].Seq != 1 || due[0].Swept {
		t.Fatalf("claimed %+v %v, want evt_waiting at sequence 1", due, err)
	}
	// the previous release, still running somewhere: its rows work too
	if _, err := db.ExecContext(ctx, insert, "evt_old_release", time.Now().UTC()); err != nil {
		t.Fatalf("previous release's insert: %v", err)
	}
	if _, err := db.ExecContext(ctx, finish, "evt_old_release"); err != nil {
		t.Fatalf("previous release's finish: %v", err)
	}
	if _, err := db.ExecContext(ctx, insert, "evt_old_release_2", time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	due, err = st.ClaimDue(ctx, store.AllDueBefore(time.Now().Add(time.Second)), time.Minute, 10)
	if err != nil || len(due) != 1 || due[0].Notification.ID != "evt_old_release_2" || due[0].Seq != 1 {
		t.Fatalf("claimed %+v %v, want evt_old_release_2 (recorded by the previous release, not processed)", due, err)
	}
}

// TestMigrationListIndexDoesNotBlockWrites: migration 00022 builds its index
// CONCURRENTLY, so upgrading a busy deployment does not stop its writes.
// A transaction that has written to payments is open when the migration
// starts; the build waits for it, and meanwhile a new write to payments
// still goes through at once (a plain CREATE INDEX would queue it behind
// its SHARE lock until the old transaction ended). Then the index is valid.
func TestMigrationListIndexDoesNotBlockWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, _, db, p := migratedTo(t, 21)
	const write = `UPDATE payments SET updated_at = updated_at WHERE id = 'pay_none'`
	old, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Rollback()
	if _, err := old.ExecContext(ctx, write); err != nil {
		t.Fatal(err)
	}
	migrated := make(chan error, 1)
	go func() {
		_, err := p.UpTo(ctx, 22)
		migrated <- err
	}()
	// until the build waits for the old transaction
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting bool
		if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE 'CREATE INDEX%' AND wait_event_type = 'Lock')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case err := <-migrated:
			t.Fatalf("the migration ended (%v) while a transaction that wrote to payments was open", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the index build never waited for the open transaction")
		}
		time.Sleep(20 * time.Millisecond)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = db.ExecContext(wctx, write)
	cancel()
	if err != nil {
		t.Fatalf("a write to payments during the index build: %v (blocked behind the migration)", err)
	}
	if err := old.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-migrated; err != nil {
		t.Fatal(err)
	}
	var valid bool
	if err := db.QueryRowContext(ctx, `SELECT indisvalid FROM pg_index WHERE indexrelid = 'payments_tenant_surface_list'::regclass`).Scan(&valid); err != nil || !valid {
		t.Fatalf("index valid %v, %v", valid, err)
	}
}
