package store

// What `payd bench` needs from Postgres beyond payd's own queries: a raw
// durable-insert baseline on the same server, and a fast COPY seeder of
// finished payments, so that per-payment cost can be compared on an empty
// table and on one that already holds a million rows. Nothing here runs in
// payd's serving roles.

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	_ "github.com/lib/pq" // the driver whose COPY protocol copyRows uses

	"github.com/payd/payd/payment"
)

// InsertBaseline is what BenchInserts measured.
type InsertBaseline struct {
	Clients   int     `json:"clients"`
	Inserts   int64   `json:"inserts"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"inserts_per_second"`
	// SynchronousCommit is the server's setting the inserts ran under.
	SynchronousCommit string `json:"synchronous_commit"`
}

// BenchInserts runs clients connections, each inserting one row per
// autocommit statement into a scratch (logged, durable) table for d, and
// drops the table. It is the floor cost of one durable write on this server:
// no payd transaction can commit faster than this.
func BenchInserts(ctx context.Context, url string, clients int, d time.Duration) (InsertBaseline, error) {
	res := InsertBaseline{Clients: clients}
	db, err := sql.Open("postgres", url)
	if err != nil {
		return res, fmt.Errorf("open postgres: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(clients + 1)
	db.SetMaxIdleConns(clients + 1)
	table := "bench_inserts_" + randomHex(6)
	if _, err := db.ExecContext(ctx, `CREATE TABLE `+table+` (
		id bigserial PRIMARY KEY, tenant_id text NOT NULL, amount bigint NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return res, fmt.Errorf("create %s: %w", table, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = db.ExecContext(dctx, `DROP TABLE IF EXISTS `+table)
	}()
	if err := db.QueryRowContext(ctx, `SHOW synchronous_commit`).Scan(&res.SynchronousCommit); err != nil {
		return res, fmt.Errorf("show synchronous_commit: %w", err)
	}
	conns := make([]*sql.Conn, clients)
	for i := range conns {
		if conns[i], err = db.Conn(ctx); err != nil {
			return res, fmt.Errorf("connect: %w", err)
		}
		defer conns[i].Close()
	}
	var n atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	began := time.Now()
	deadline := began.Add(d)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if _, err := c.ExecContext(ctx, `INSERT INTO `+table+` (tenant_id, amount) VALUES ($1, $2)`, "ten_bench", 1250); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(began).Seconds()
	res.Inserts = n.Load()
	if res.Seconds > 0 {
		res.PerSecond = float64(res.Inserts) / res.Seconds
	}
	if firstErr != nil {
		return res, fmt.Errorf("insert into %s: %w", table, firstErr)
	}
	return res, nil
}

// SeedConfig says how many finished payments to write, for whom and when.
type SeedConfig struct {
	TenantID string
	N        int
	// From and To bound the payments' created_at, spread evenly.
	From, To time.Time
	// PerInvoice payments pay one seeded invoice (which ends PAID).
	PerInvoice int
}

// SeedResult counts the rows written.
type SeedResult struct {
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

// SeedPayments writes cfg.N SUCCEEDED card payments as payd itself would
// have left them — each with its invoice application, one SUCCEEDED attempt
// and its three audit rows (created, PENDING → PROCESSING → SUCCEEDED) —
// with COPY in one transaction, then VACUUMs and ANALYZEs the tables. It is for
// benchmarks: the rows are consistent with every constraint (invoices end
// PAID with exactly their payments applied), but no gateway ever saw them.
func (s *Store) SeedPayments(ctx context.Context, cfg SeedConfig) (SeedResult, error) {
	var res SeedResult
	if cfg.N <= 0 {
		return res, nil
	}
	if cfg.PerInvoice <= 0 {
		cfg.PerInvoice = 1000
	}
	if !cfg.To.After(cfg.From) {
		return res, fmt.Errorf("seed payments: To must be after From")
	}
	const amount = 1250
	began := time.Now()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return res, translate(fmt.Errorf("begin: %w", err))
	}
	defer tx.Rollback()
	span := cfg.To.Sub(cfg.From)
	at := func(i int) time.Time {
		return cfg.From.Add(time.Duration(float64(span) * float64(i) / float64(cfg.N))).UTC().Truncate(time.Microsecond)
	}

	// Invoices first: payments reference them.
	nInv := (cfg.N + cfg.PerInvoice - 1) / cfg.PerInvoice
	invIDs := make([]string, nInv)
	batch := randomHex(4)
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
		return res, translate(fmt.Errorf("commit seed: %w", err))
	}
	res.CopySeconds = time.Since(began).Seconds()
	began = time.Now()
	if _, err := s.db.ExecContext(ctx, `VACUUM (ANALYZE) invoices, payments, payment_applications, payment_attempts, payment_events`); err != nil {
		return res, translate(fmt.Errorf("vacuum analyze: %w", err))
	}
	res.AnalyzeSeconds = time.Since(began).Seconds()
	return res, nil
}

// copyRows streams n rows from row(i) into table with COPY.
func copyRows(ctx context.Context, tx *sql.Tx, table string, cols []string, n int, row func(int) []any) error {
	// lib/pq turns a prepared "COPY … FROM STDIN" into the COPY protocol.
	stmt, err := tx.PrepareContext(ctx, "COPY "+table+" ("+strings.Join(cols, ", ")+") FROM STDIN")
	if err != nil {
		return translate(fmt.Errorf("copy %s: %w", table, err))
	}
	defer stmt.Close()
	for i := range n {
		if _, err := stmt.ExecContext(ctx, row(i)...); err != nil {
			return translate(fmt.Errorf("copy %s row %d: %w", table, i, err))
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return translate(fmt.Errorf("copy %s: %w", table, err))
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

// TableRows counts the rows of payd's payment tables, for reports.
func (s *Store) TableRows(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	for _, t := range []string{"payments", "payment_events", "payment_attempts", "payment_applications", "invoices"} {
		var n int64
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM `+t).Scan(&n); err != nil {
			return nil, translate(fmt.Errorf("count %s: %w", t, err))
		}
		out[t] = n
	}
	return out, nil
}

// ServerVersion is Postgres's version string, for reports.
func (s *Store) ServerVersion(ctx context.Context) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SHOW server_version`).Scan(&v)
	return v, translate(err)
}
