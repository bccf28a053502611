package bench

// Seeding: a fast COPY of finished payments, so that per-payment cost can
// be compared on an empty database and on one that already holds a million
// rows; and the row counts and server version the report shows. The SQL is
// the bench's own, through database/sql with the "postgres" driver (lib/pq)
// that store registers: its COPY protocol and the tables payd's migrations
// made. Nothing here runs in payd.

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/payd/payd/payment"
)

// seedConfig says how many finished payments to write, for whom and when.
type seedConfig struct {
	TenantID string
	N        int
	// From and To bound the payments' created_at, spread evenly.
	From, To time.Time
	// PerInvoice payments pay one seeded invoice (which ends PAID).
	PerInvoice int
}

// seedResult counts the rows written.
type seedResult struct {
	Payments     int     `json:"payments"`
	Attempts     int     `json:"attempts"`
	Events       int     `json:"events"`
	Invoices     int     `json:"invoices"`
	Applications int     `json:"applications"`
	CopySeconds  float64 `json:"copy_seconds"`
	// AnalyzeSeconds is the VACUUM (ANALYZE) after the copy: the planner
	// sees the table sizes the run is about, and autovacuum does not pick
	// the fresh rows up in the middle of the measured run.
	AnalyzeSeconds float64 `json:"vacuum_analyze_seconds"`
}

// seedPayments writes cfg.N SUCCEEDED card payments as payd itself would
// have left them — each with its invoice application, one SUCCEEDED attempt
// and its three audit rows (created, PENDING → PROCESSING → SUCCEEDED) —
// with COPY in one transaction, then VACUUMs and ANALYZEs the tables. It is for
// benchmarks: the rows are consistent with every constraint (invoices end
// PAID with exactly their payments applied), but no gateway ever saw them.
func seedPayments(ctx context.Context, db *sql.DB, cfg seedConfig) (seedResult, error) {
	var res seedResult
	if cfg.N <= 0 {
		return res, nil
	}
	if cfg.PerInvoice <= 0 {
		cfg.PerInvoice = 1000
	}
	if !cfg.To.After(cfg.From) {
		return res, fmt.Errorf("seed payments: To must be after From")
	}
	const amount = smallAmount
	began := time.Now()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	span := cfg.To.Sub(cfg.From)
	at := func(i int) time.Time {
		return cfg.From.Add(time.Duration(float64(span) * float64(i) / float64(cfg.N))).UTC().Truncate(time.Microsecond)
	}

	// Invoices first: payments reference them.
	nInv := (cfg.N + cfg.PerInvoice - 1) / cfg.PerInvoice
	invIDs := make([]string, nInv)
	batch := randomID()[:8]
	err = copyRows(ctx, tx, "invoices", []string{"id", "tenant_id", "external_id", "invoice_number", "currency",
		"amount_due", "amount_reserved", "amount_paid", "created_at"}, nInv, func(j int) []any {
		first := j * cfg.PerInvoice
		count := int64(min(cfg.PerInvoice, cfg.N-first))
		t := at(first)
		invIDs[j] = idAt(payment.PrefixInvoice, t)
		return []any{invIDs[j], cfg.TenantID, fmt.Sprintf("seed-%s-%d", batch, j), fmt.Sprintf("SEED-%s-%07d", batch, j), "USD",
			count * amount, count * amount, count * amount, t.Add(-time.Hour)}
	})
	if err != nil {
		return res, err
	}
	res.Invoices = nInv

	// Payments, then their applications, attempts and events, in that order.
	pays := make([]string, cfg.N)
	err = copyRows(ctx, tx, "payments", []string{"id", "tenant_id", "surface", "amount", "currency", "method",
		"payment_method_id", "destination_type", "destination_id", "invoice_id", "process_payment", "track_attempts",
		"status", "step_seq", "attempt_count", "gateway_reference", "metadata", "created_by", "updated_by",
		"created_at", "updated_at", "succeeded_at"}, cfg.N, func(i int) []any {
		t := at(i)
		pays[i] = idAt(payment.PrefixPayment, t)
		inv := invIDs[i/cfg.PerInvoice]
		done := t.Add(300 * time.Millisecond)
		return []any{pays[i], cfg.TenantID, "payments", amount, "USD", "CARD", "pm_card_visa", "INVOICE", inv, inv,
			true, true, "SUCCEEDED", 3, 1, "ch_" + pays[i][4:], "{}", "key_seed", "worker", t, done, done}
	})
	if err != nil {
		return res, err
	}
	res.Payments = cfg.N
	err = copyRows(ctx, tx, "payment_applications", []string{"id", "tenant_id", "payment_id", "invoice_id",
		"applied_amount", "payment_amount", "applied_currency", "state", "created_at"}, cfg.N, func(i int) []any {
		t := at(i)
		return []any{idAt(payment.PrefixLine, t), cfg.TenantID, pays[i], invIDs[i/cfg.PerInvoice], amount, amount, "USD", "applied", t}
	})
	if err != nil {
		return res, err
	}
	res.Applications = cfg.N
	err = copyRows(ctx, tx, "payment_attempts", []string{"id", "payment_id", "tenant_id", "attempt_number", "status",
		"idempotency_key", "gateway_reference", "started_at", "finished_at", "created_by", "updated_at"}, cfg.N, func(i int) []any {
		t := at(i)
		start, end := t.Add(100*time.Millisecond), t.Add(300*time.Millisecond)
		return []any{idAt(payment.PrefixAttempt, start), pays[i], cfg.TenantID, 1, "SUCCEEDED", pays[i] + ":1",
			"ch_" + pays[i][4:], start, end, "worker", end}
	})
	if err != nil {
		return res, err
	}
	res.Attempts = cfg.N
	err = copyRows(ctx, tx, "payment_events", []string{"payment_id", "tenant_id", "from_status", "to_status", "reason",
		"attempt_number", "actor", "created_at"}, 3*cfg.N, func(k int) []any {
		i := k / 3
		t := at(i)
		switch k % 3 {
		case 0:
			return []any{pays[i], cfg.TenantID, nil, "PENDING", "created", 0, "key_seed", t}
		case 1:
			return []any{pays[i], cfg.TenantID, "PENDING", "PROCESSING", "attempt started", 1, "worker", t.Add(100 * time.Millisecond)}
		}
		return []any{pays[i], cfg.TenantID, "PROCESSING", "SUCCEEDED", "gateway succeeded", 1, "worker", t.Add(300 * time.Millisecond)}
	})
	if err != nil {
		return res, err
	}
	res.Events = 3 * cfg.N
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("commit seed: %w", err)
	}
	res.CopySeconds = time.Since(began).Seconds()
	began = time.Now()
	if _, err := db.ExecContext(ctx, `VACUUM (ANALYZE) invoices, payments, payment_applications, payment_attempts, payment_events`); err != nil {
		return res, fmt.Errorf("vacuum analyze: %w", err)
	}
	res.AnalyzeSeconds = time.Since(began).Seconds()
	return res, nil
}

// copyRows streams n rows from row(i) into table with COPY.
func copyRows(ctx context.Context, tx *sql.Tx, table string, cols []string, n int, row func(int) []any) error {
	// lib/pq turns a prepared "COPY … FROM STDIN" into the COPY protocol.
	stmt, err := tx.PrepareContext(ctx, "COPY "+table+" ("+strings.Join(cols, ", ")+") FROM STDIN")
	if err != nil {
		return fmt.Errorf("copy %s: %w", table, err)
	}
	defer stmt.Close()
	for i := range n {
		if _, err := stmt.ExecContext(ctx, row(i)...); err != nil {
			return fmt.Errorf("copy %s row %d: %w", table, i, err)
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return fmt.Errorf("copy %s: %w", table, err)
	}
	return nil
}

// idAt is NewID for a row created at t: the UUIDv7 carries t's millisecond,
// so seeded IDs sort like the ones payd would have handed out then.
func idAt(prefix string, t time.Time) string {
	u := uuid.Must(uuid.NewV7())
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	copy(u[0:6], ms[2:8])
	return prefix + strings.ReplaceAll(u.String(), "-", "")
}

// tableRows counts the rows of payd's payment tables, for reports.
func tableRows(ctx context.Context, db *sql.DB) (map[string]int64, error) {
	out := map[string]int64{}
	for _, t := range []string{"payments", "payment_events", "payment_attempts", "payment_applications", "invoices"} {
		var n int64
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+t).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", t, err)
		}
		out[t] = n
	}
	return out, nil
}

// serverVersion is Postgres's version string, for reports.
func serverVersion(ctx context.Context, db *sql.DB) (string, error) {
	var v string
	err := db.QueryRowContext(ctx, `SHOW server_version`).Scan(&v)
	return v, err
}
