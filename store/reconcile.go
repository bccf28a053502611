package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

// Finding kinds: what reconciliation found in the gateway's ledger that
// payd's records do not say, or the other way round.
const (
	// a charge for a payment payd holds as not charged (canceled, failed):
	// refunded automatically (RecordLateCharge)
	FindingChargeAfterClose = "charge_after_close"
	// a charge for a payment in review: the review is resolved as succeeded
	FindingChargeForReview = "charge_for_review"
	// a charge under a key no attempt of payd has
	FindingUnknownCharge = "unknown_charge"
	// a charge under the key of an attempt payd holds as not charged, while
	// another attempt of the payment charged: the customer paid twice
	FindingExtraCharge = "extra_charge"
	// a charge whose amount or currency is not its payment's
	FindingAmountMismatch = "amount_mismatch"
	// an attempt payd records as charged that the gateway has no charge for
	FindingAttemptWithoutCharge = "attempt_without_charge"
	// a refund payd did not ask for
	FindingUnknownRefund = "unknown_refund"
	// a refund whose amount or currency is not what payd asked for
	FindingRefundMismatch = "refund_mismatch"
	// a refund the gateway made that payd records as failed
	FindingRefundUnrecorded = "refund_unrecorded"
)

// FindingKinds lists every kind, for gauges that show each one.
var FindingKinds = []string{FindingChargeAfterClose, FindingChargeForReview, FindingUnknownCharge, FindingExtraCharge,
	FindingAmountMismatch, FindingAttemptWithoutCharge, FindingUnknownRefund, FindingRefundMismatch, FindingRefundUnrecorded}

// Finding statuses.
const (
	FindingOpen     = "open"     // for an operator
	FindingActed    = "acted"    // payd acted on it (Action, ActionRef)
	FindingResolved = "resolved" // an operator closed it
)

// Finding is one difference between the gateway's ledger and payd's records.
type Finding struct {
	ID         int64      `db:"id" json:"id"`
	Gateway    string     `db:"gateway" json:"gateway"`
	Kind       string     `db:"kind" json:"kind"`
	Reference  string     `db:"reference" json:"reference"`
	PaymentID  string     `db:"payment_id" json:"payment_id"`
	TenantID   string     `db:"tenant_id" json:"tenant_id"`
	Amount     int64      `db:"amount" json:"amount"`
	Currency   string     `db:"currency" json:"currency"`
	Detail     string     `db:"detail" json:"detail"`
	Action     string     `db:"action" json:"action"`
	ActionRef  string     `db:"action_ref" json:"action_ref"`
	Status     string     `db:"status" json:"status"`
	FirstSeen  time.Time  `db:"first_seen_at" json:"first_seen_at"`
	LastSeen   time.Time  `db:"last_seen_at" json:"last_seen_at"`
	SeenCount  int        `db:"seen_count" json:"seen_count"`
	ResolvedAt *time.Time `db:"resolved_at" json:"resolved_at,omitempty"`
	ResolvedBy string     `db:"resolved_by" json:"resolved_by,omitempty"`
}

const findingColumns = `id, gateway, kind, reference, payment_id, tenant_id, amount, currency, detail, action, action_ref,
	status, first_seen_at, last_seen_at, seen_count, resolved_at, resolved_by`

// RecordFinding stores a finding, or notes that it was seen again (one row
// per gateway, kind and reference). An action given is kept, and moves an
// open finding to acted. fresh says the finding is new.
func (s *Store) RecordFinding(ctx context.Context, f Finding) (stored Finding, fresh bool, err error) {
	now := s.now()
	status := FindingOpen
	if f.Action != "" {
		status = FindingActed
	}
	var row struct {
		Finding
		Fresh bool `db:"fresh"`
	}
	err = s.q.QueryRowxContext(ctx, `
		INSERT INTO reconciliation_findings AS f (gateway, kind, reference, payment_id, tenant_id, amount, currency, detail,
			action, action_ref, status, first_seen_at, last_seen_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$12)
		ON CONFLICT (gateway, kind, reference) DO UPDATE SET last_seen_at = excluded.last_seen_at,
			seen_count = f.seen_count + 1,
			action = CASE WHEN excluded.action <> '' THEN excluded.action ELSE f.action END,
			action_ref = CASE WHEN excluded.action_ref <> '' THEN excluded.action_ref ELSE f.action_ref END,
			status = CASE WHEN f.status = 'open' AND excluded.action <> '' THEN 'acted' ELSE f.status END
		RETURNING `+findingColumns+`, (xmax = 0) AS fresh`,
		f.Gateway, f.Kind, f.Reference, f.PaymentID, f.TenantID, f.Amount, f.Currency, truncate(f.Detail, 1000),
		f.Action, f.ActionRef, status, now).StructScan(&row)
	if err != nil {
		return Finding{}, false, translate(fmt.Errorf("record finding %s %s: %w", f.Kind, f.Reference, err))
	}
	row.Finding.FirstSeen, row.Finding.LastSeen = row.Finding.FirstSeen.UTC(), row.Finding.LastSeen.UTC()
	return row.Finding, row.Fresh, nil
}

// FindingFilter selects findings, newest first.
type FindingFilter struct {
	Status string // empty for every status
	Kind   string
	Since  time.Time // first seen at or after
	Limit  int
}

// Findings lists reconciliation findings.
func (s *Store) Findings(ctx context.Context, f FindingFilter) ([]Finding, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var rows []Finding
	err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT `+findingColumns+` FROM reconciliation_findings
		WHERE ($1 = '' OR status = $1) AND ($2 = '' OR kind = $2) AND first_seen_at >= $3
		ORDER BY first_seen_at DESC, id DESC LIMIT $4`, f.Status, f.Kind, f.Since.UTC(), f.Limit)
	if err != nil {
		return nil, translate(fmt.Errorf("list findings: %w", err))
	}
	for i := range rows {
		rows[i].FirstSeen, rows[i].LastSeen = rows[i].FirstSeen.UTC(), rows[i].LastSeen.UTC()
	}
	return rows, nil
}

// ResolveFinding closes an open or acted finding on an operator's word.
func (s *Store) ResolveFinding(ctx context.Context, id int64, by string) error {
	res, err := s.q.ExecContext(ctx, `UPDATE reconciliation_findings SET status = 'resolved', resolved_at = $2, resolved_by = $3
		WHERE id = $1 AND status <> 'resolved'`, id, s.now(), by)
	if err != nil {
		return translate(fmt.Errorf("resolve finding %d: %w", id, err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("finding %d: %w", id, payment.ErrNotFound)
	}
	return nil
}

// CountFindings counts findings by kind in a status (the open findings
// gauge).
func (s *Store) CountFindings(ctx context.Context, status string) (map[string]int, error) {
	var rows []struct {
		Kind string `db:"kind"`
		N    int    `db:"n"`
	}
	if err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT kind, count(*) AS n FROM reconciliation_findings
		WHERE status = $1 GROUP BY kind`, status); err != nil {
		return nil, translate(fmt.Errorf("count findings: %w", err))
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.Kind] = r.N
	}
	return out, nil
}

// ReconcileRun is one pass of reconciliation over a window of the
// gateway's ledger.
type ReconcileRun struct {
	ID       int64
	Gateway  string
	From, To time.Time
	Actor    string
}

// ReconcileReport is what one reconciliation run found.
type ReconcileReport struct {
	Run      ReconcileRun
	Charges  int       // gateway charges compared
	Refunds  int       // gateway refunds compared
	Findings []Finding // found, or seen again, in this run
	New      int       // of which new
}

// StartReconcileRun records that a run over [from, to) began.
func (s *Store) StartReconcileRun(ctx context.Context, gateway string, from, to time.Time, actor string) (ReconcileRun, error) {
	r := ReconcileRun{Gateway: gateway, From: from.UTC(), To: to.UTC(), Actor: actor}
	err := s.q.QueryRowxContext(ctx, `INSERT INTO reconciliation_runs (gateway, window_from, window_to, started_at, actor)
		VALUES ($1,$2,$3,$4,$5) RETURNING id`, gateway, r.From, r.To, s.now(), actor).Scan(&r.ID)
	return r, translate(err)
}

// FinishReconcileRun records a run's totals.
func (s *Store) FinishReconcileRun(ctx context.Context, id int64, charges, refunds, findings int) error {
	_, err := s.q.ExecContext(ctx, `UPDATE reconciliation_runs SET finished_at = $2, charges = $3, refunds = $4, findings = $5
		WHERE id = $1`, id, s.now(), charges, refunds, findings)
	return translate(err)
}

// LastReconciled returns the end of the latest finished run's window for a
// gateway, or false when none finished.
func (s *Store) LastReconciled(ctx context.Context, gateway string) (time.Time, bool, error) {
	var to time.Time
	err := s.q.QueryRowxContext(ctx, `SELECT window_to FROM reconciliation_runs WHERE gateway = $1 AND finished_at IS NOT NULL
		ORDER BY window_to DESC LIMIT 1`, gateway).Scan(&to)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, translate(fmt.Errorf("last reconciled: %w", err))
	}
	return to.UTC(), true, nil
}

// ChargedAttempt is an attempt as reconciliation sees it: with its
// payment's status and amount.
type ChargedAttempt struct {
	Attempt       payment.Attempt
	PaymentStatus payment.Status
	TenantID      string
	Amount        payment.Money
	AttemptCount  int
}

const chargedAttemptQuery = `SELECT a.id, a.payment_id, a.tenant_id, a.attempt_number, a.status, a.idempotency_key,
		a.failure_class, a.error_code, a.error_message, a.gateway_reference, a.inquiry_count, a.next_retry_at,
		a.started_at, a.finished_at, a.created_by, a.updated_at,
		p.status AS payment_status, p.amount, p.currency, p.attempt_count
	FROM payment_attempts a JOIN payments p ON p.id = a.payment_id `

type chargedAttemptRow struct {
	attemptRow
	PaymentStatus string `db:"payment_status"`
	Amount        int64  `db:"amount"`
	Currency      string `db:"currency"`
	AttemptCount  int    `db:"attempt_count"`
}

func (r chargedAttemptRow) toChargedAttempt() ChargedAttempt {
	return ChargedAttempt{Attempt: r.toAttempt(), PaymentStatus: payment.Status(r.PaymentStatus), TenantID: r.TenantID,
		Amount: payment.Money{Minor: r.Amount, Currency: r.Currency}, AttemptCount: r.AttemptCount}
}

// AttemptsByKey loads the attempts with these gateway idempotency keys.
func (s *Store) AttemptsByKey(ctx context.Context, keys []string) (map[string]ChargedAttempt, error) {
	out := make(map[string]ChargedAttempt, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	var rows []chargedAttemptRow
	if err := sqlx.SelectContext(ctx, s.q, &rows, chargedAttemptQuery+`WHERE a.idempotency_key = ANY($1)`,
		pq.Array(keys)); err != nil {
		return nil, translate(fmt.Errorf("attempts by key: %w", err))
	}
	for _, r := range rows {
		out[r.IdempotencyKey] = r.toChargedAttempt()
	}
	return out, nil
}

// SucceededAttempts lists the attempts payd records as charged (or sent to
// a rail) that started in [from, to), for the other direction of
// reconciliation: a charge payd believes in that the gateway lacks.
// Payments recorded without a gateway have no attempts; a card
// verification (a session of amount 0) charges nothing and is left out.
func (s *Store) SucceededAttempts(ctx context.Context, from, to time.Time, limit int) ([]ChargedAttempt, error) {
	var rows []chargedAttemptRow
	if err := sqlx.SelectContext(ctx, s.q, &rows, chargedAttemptQuery+`
		WHERE a.status = 'SUCCEEDED' AND a.started_at >= $1 AND a.started_at < $2 AND p.amount > 0
		ORDER BY a.started_at, a.id LIMIT $3`, from.UTC(), to.UTC(), limit); err != nil {
		return nil, translate(fmt.Errorf("succeeded attempts: %w", err))
	}
	out := make([]ChargedAttempt, len(rows))
	for i, r := range rows {
		out[i] = r.toChargedAttempt()
	}
	return out, nil
}

// RefundsByID loads refunds of any tenant by id.
func (s *Store) RefundsByID(ctx context.Context, ids []string) (map[string]payment.Refund, error) {
	out := make(map[string]payment.Refund, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var rows []refundRow
	if err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT `+refundColumns+` FROM refunds WHERE id = ANY($1)`,
		pq.Array(ids)); err != nil {
		return nil, translate(fmt.Errorf("refunds by id: %w", err))
	}
	for _, r := range rows {
		out[r.ID] = r.toRefund()
	}
	return out, nil
}
