package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

const paymentColumns = `p.id, p.tenant_id, p.surface, p.amount, p.currency, p.method, p.payment_method_id,
	p.destination_type, p.destination_id, COALESCE(p.invoice_id, '') AS invoice_id,
	COALESCE(i.invoice_number, '') AS invoice_number, COALESCE(p.idempotency_key, '') AS idempotency_key,
	p.process_payment, p.track_attempts, p.status, COALESCE(p.next_step, '') AS next_step, p.next_step_at,
	p.step_seq, p.attempt_count, p.refunded_amount, p.refund_pending_amount, p.gateway_reference,
	p.error_code, p.error_message, p.return_code, p.action_url, p.metadata, p.created_by, p.updated_by,
	p.created_at, p.updated_at, p.succeeded_at, p.failed_at, p.refunded_at, p.canceled_at, p.sent_at,
	p.expected_settlement_at, p.settled_at, p.returned_at, p.return_watch_until`

const paymentFrom = ` FROM payments p LEFT JOIN invoices i ON i.id = p.invoice_id `

type paymentRow struct {
	ID                   string       `db:"id"`
	TenantID             string       `db:"tenant_id"`
	Surface              string       `db:"surface"`
	Amount               int64        `db:"amount"`
	Currency             string       `db:"currency"`
	Method               string       `db:"method"`
	PaymentMethodID      string       `db:"payment_method_id"`
	DestinationType      string       `db:"destination_type"`
	DestinationID        string       `db:"destination_id"`
	InvoiceID            string       `db:"invoice_id"`
	InvoiceNumber        string       `db:"invoice_number"`
	IdempotencyKey       string       `db:"idempotency_key"`
	ProcessPayment       bool         `db:"process_payment"`
	TrackAttempts        bool         `db:"track_attempts"`
	Status               string       `db:"status"`
	NextStep             string       `db:"next_step"`
	NextStepAt           sql.NullTime `db:"next_step_at"`
	StepSeq              int          `db:"step_seq"`
	AttemptCount         int          `db:"attempt_count"`
	RefundedAmount       int64        `db:"refunded_amount"`
	RefundPendingAmount  int64        `db:"refund_pending_amount"`
	GatewayReference     string       `db:"gateway_reference"`
	ErrorCode            string       `db:"error_code"`
	ErrorMessage         string       `db:"error_message"`
	ReturnCode           string       `db:"return_code"`
	ActionURL            string       `db:"action_url"`
	Metadata             []byte       `db:"metadata"`
	CreatedBy            string       `db:"created_by"`
	UpdatedBy            string       `db:"updated_by"`
	CreatedAt            time.Time    `db:"created_at"`
	UpdatedAt            time.Time    `db:"updated_at"`
	SucceededAt          sql.NullTime `db:"succeeded_at"`
	FailedAt             sql.NullTime `db:"failed_at"`
	RefundedAt           sql.NullTime `db:"refunded_at"`
	CanceledAt           sql.NullTime `db:"canceled_at"`
	SentAt               sql.NullTime `db:"sent_at"`
	ExpectedSettlementAt sql.NullTime `db:"expected_settlement_at"`
	SettledAt            sql.NullTime `db:"settled_at"`
	ReturnedAt           sql.NullTime `db:"returned_at"`
	ReturnWatchUntil     sql.NullTime `db:"return_watch_until"`
}

func tp(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

func (r paymentRow) toPayment() payment.Payment {
	p := payment.Payment{
		ID: r.ID, TenantID: r.TenantID, Surface: r.Surface,
		Amount:          payment.Money{Minor: r.Amount, Currency: r.Currency},
		Method:          payment.Method(r.Method),
		PaymentMethodID: r.PaymentMethodID, DestinationType: r.DestinationType, DestinationID: r.DestinationID,
		InvoiceID: r.InvoiceID, InvoiceNumber: r.InvoiceNumber, IdempotencyKey: r.IdempotencyKey,
		ProcessPayment: r.ProcessPayment, TrackAttempts: r.TrackAttempts,
		Status: payment.Status(r.Status), NextStep: payment.Step(r.NextStep), NextStepAt: tp(r.NextStepAt),
		StepSeq: r.StepSeq, AttemptCount: r.AttemptCount,
		RefundedAmount: r.RefundedAmount, RefundPendingAmount: r.RefundPendingAmount,
		GatewayReference: r.GatewayReference, ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage,
		ReturnCode: r.ReturnCode, ActionURL: r.ActionURL, CreatedBy: r.CreatedBy, UpdatedBy: r.UpdatedBy,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		SucceededAt: tp(r.SucceededAt), FailedAt: tp(r.FailedAt), RefundedAt: tp(r.RefundedAt),
		CanceledAt: tp(r.CanceledAt), SentAt: tp(r.SentAt), ExpectedSettlementAt: tp(r.ExpectedSettlementAt),
		SettledAt: tp(r.SettledAt), ReturnedAt: tp(r.ReturnedAt), ReturnWatchUntil: tp(r.ReturnWatchUntil),
	}
	if len(r.Metadata) > 0 {
		_ = json.Unmarshal(r.Metadata, &p.Metadata)
	}
	return p
}

// NewPayment is what intake records for a new payment.
type NewPayment struct {
	TenantID        string
	Surface         string
	Amount          payment.Money
	Method          payment.Method
	PaymentMethodID string
	DestinationType string
	DestinationID   string
	InvoiceID       string
	IdempotencyKey  string // business key from the body; empty for none
	Fingerprint     []byte
	ProcessPayment  bool
	TrackAttempts   bool
	Metadata        map[string]string
	Actor           string
}

// InsertPayment records a new PENDING payment whose next step is create, with
// its creation audit row. It returns the row as stored.
func (s *Store) InsertPayment(ctx context.Context, np NewPayment) (payment.Payment, error) {
	id := NewID(payment.PrefixPayment)
	now := s.now()
	meta, err := json.Marshal(nonNil(np.Metadata))
	if err != nil {
		return payment.Payment{}, fmt.Errorf("encode metadata: %w", err)
	}
	var invoiceID any
	if np.InvoiceID != "" {
		invoiceID = np.InvoiceID
	}
	var key any
	if np.IdempotencyKey != "" {
		key = np.IdempotencyKey
	}
	// One statement: the row, its creation audit row, and the row as stored
	// (with the invoice number) for the response.
	var r paymentRow
	err = s.q.QueryRowxContext(ctx, `
		WITH p AS (
			INSERT INTO payments (id, tenant_id, surface, amount, currency, method, payment_method_id,
				destination_type, destination_id, invoice_id, idempotency_key, request_fingerprint,
				process_payment, track_attempts, status, next_step, next_step_at, step_seq, metadata,
				created_by, updated_by, created_at, updated_at)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,'PENDING','create',$15,1,$16,$17,$17,$15,$15)
			RETURNING *),
		e AS (
			INSERT INTO payment_events (payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at)
			SELECT id, tenant_id, NULL, 'PENDING', 'created', 0, created_by, created_at FROM p)
		SELECT `+paymentColumns+` FROM p LEFT JOIN invoices i ON i.id = p.invoice_id`,
		id, np.TenantID, np.Surface, np.Amount.Minor, np.Amount.Currency, string(np.Method), np.PaymentMethodID,
		np.DestinationType, np.DestinationID, invoiceID, key, np.Fingerprint,
		np.ProcessPayment, np.TrackAttempts, now, meta, np.Actor).StructScan(&r)
	if err != nil {
		return payment.Payment{}, translate(fmt.Errorf("insert payment: %w", err))
	}
	return r.toPayment(), nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// GetPayment loads one payment of a tenant with its attempts. Another
// tenant's payment is payment.ErrNotFound. An empty tenantID loads any
// tenant's payment (workers).
func (s *Store) GetPayment(ctx context.Context, tenantID, id string) (payment.Payment, error) {
	var r paymentRow
	err := s.q.QueryRowxContext(ctx, `SELECT `+paymentColumns+paymentFrom+`
		WHERE p.id = $1 AND ($2 = '' OR p.tenant_id = $2)`, id, tenantID).StructScan(&r)
	if err != nil {
		return payment.Payment{}, translate(fmt.Errorf("load payment %s: %w", id, err))
	}
	p := r.toPayment()
	atts, err := s.attempts(ctx, []string{id})
	if err != nil {
		return p, err
	}
	p.Attempts = atts[id]
	return p, nil
}

// PaymentHead loads one payment of any tenant without its attempts: for
// workers whose step does not read them.
func (s *Store) PaymentHead(ctx context.Context, id string) (payment.Payment, error) {
	var r paymentRow
	err := s.q.QueryRowxContext(ctx, `SELECT `+paymentColumns+paymentFrom+` WHERE p.id = $1`, id).StructScan(&r)
	if err != nil {
		return payment.Payment{}, translate(fmt.Errorf("load payment %s: %w", id, err))
	}
	return r.toPayment(), nil
}

// PaymentByKey returns the tenant's payment with a business
// idempotency key, and the fingerprint of the request that created it.
func (s *Store) PaymentByKey(ctx context.Context, tenantID, key string) (payment.Payment, []byte, error) {
	var id string
	var fp []byte
	err := s.q.QueryRowxContext(ctx, `SELECT id, request_fingerprint FROM payments WHERE tenant_id = $1 AND idempotency_key = $2`,
		tenantID, key).Scan(&id, &fp)
	if err != nil {
		return payment.Payment{}, nil, translate(fmt.Errorf("payment by key: %w", err))
	}
	p, err := s.GetPayment(ctx, tenantID, id)
	return p, fp, err
}

// ListFilter selects a page of payments, newest first.
type ListFilter struct {
	TenantID      string
	Surface       string
	Statuses      []payment.Status // any of; empty for all
	Limit         int
	StartingAfter string // a payment id; the page starts after it
}

// ListPayments returns up to Limit payments and whether more follow.
func (s *Store) ListPayments(ctx context.Context, f ListFilter) ([]payment.Payment, bool, error) {
	args := []any{f.TenantID, f.Limit + 1}
	where := []string{"p.tenant_id = $1"}
	if f.Surface != "" {
		args = append(args, f.Surface)
		where = append(where, fmt.Sprintf("p.surface = $%d", len(args)))
	}
	if len(f.Statuses) > 0 {
		ss := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			ss[i] = string(st)
		}
		args = append(args, pq.Array(ss))
		where = append(where, fmt.Sprintf("p.status = ANY($%d)", len(args)))
	}
	if f.StartingAfter != "" {
		args = append(args, f.StartingAfter)
		n := len(args)
		where = append(where, fmt.Sprintf(`(p.created_at, p.id) < (SELECT created_at, id FROM payments WHERE id = $%d AND tenant_id = $1)`, n))
	}
	q := `SELECT ` + paymentColumns + paymentFrom + ` WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY p.created_at DESC, p.id DESC LIMIT $2`
	return s.pagePayments(ctx, "list payments", f.Limit, q, args...)
}

// pagePayments runs a list query that asks for limit+1 rows, and returns
// up to limit payments with their attempts and whether more follow.
func (s *Store) pagePayments(ctx context.Context, what string, limit int, q string, args ...any) ([]payment.Payment, bool, error) {
	var rows []paymentRow
	if err := sqlx.SelectContext(ctx, s.q, &rows, q, args...); err != nil {
		return nil, false, translate(fmt.Errorf("%s: %w", what, err))
	}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	out := make([]payment.Payment, len(rows))
	ids := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.toPayment()
		ids[i] = r.ID
	}
	atts, err := s.attempts(ctx, ids)
	if err != nil {
		return nil, false, err
	}
	for i := range out {
		out[i].Attempts = atts[out[i].ID]
	}
	return out, more, nil
}

// PaymentExists reports whether a payment id exists for the tenant.
func (s *Store) PaymentExists(ctx context.Context, tenantID, id string) (bool, error) {
	var ok bool
	err := s.q.QueryRowxContext(ctx, `SELECT EXISTS (SELECT 1 FROM payments WHERE id = $1 AND tenant_id = $2)`, id, tenantID).Scan(&ok)
	return ok, translate(err)
}

// Events returns a payment's audit trail, oldest first.
func (s *Store) Events(ctx context.Context, tenantID, paymentID string) ([]payment.Event, error) {
	var rows []struct {
		ID            int64          `db:"id"`
		PaymentID     string         `db:"payment_id"`
		TenantID      string         `db:"tenant_id"`
		From          sql.NullString `db:"from_status"`
		To            string         `db:"to_status"`
		Reason        string         `db:"reason"`
		AttemptNumber int            `db:"attempt_number"`
		Actor         string         `db:"actor"`
		CreatedAt     time.Time      `db:"created_at"`
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `
		SELECT id, payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at
		FROM payment_events WHERE payment_id = $1 AND tenant_id = $2 ORDER BY id`, paymentID, tenantID)
	if err != nil {
		return nil, translate(fmt.Errorf("load events of %s: %w", paymentID, err))
	}
	out := make([]payment.Event, len(rows))
	for i, r := range rows {
		out[i] = payment.Event{ID: r.ID, PaymentID: r.PaymentID, TenantID: r.TenantID, From: payment.Status(r.From.String),
			To: payment.Status(r.To), Reason: r.Reason, AttemptNumber: r.AttemptNumber, Actor: r.Actor, CreatedAt: r.CreatedAt.UTC()}
	}
	return out, nil
}

func (s *Store) insertEvent(ctx context.Context, e payment.Event) error {
	var from any
	if e.From != "" {
		from = string(e.From)
	}
	_, err := s.q.ExecContext(ctx, `
		INSERT INTO payment_events (payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
		e.PaymentID, e.TenantID, from, string(e.To), e.Reason, e.AttemptNumber, e.Actor, e.CreatedAt)
	return translate(err)
}

// Change is one guarded update of a payment: it applies only while the row is
// still in the observed state (status, and step sequence unless AnySeq), and
// writes an audit row when the status changes. Every field it sets is listed.
type Change struct {
	PaymentID string
	From      payment.Status
	To        payment.Status
	Seq       int  // observed step_seq
	AnySeq    bool // guard on status only (refunds, cancels)
	// KeepSchedule leaves next_step, next_step_at and step_seq as they are.
	KeepSchedule bool
	// The schedule after the change. StepNone clears it.
	NextStep   payment.Step
	NextStepAt time.Time

	Reason  string
	Attempt int
	Actor   string

	GatewayReference string // set when not empty
	ErrorCode        string // set when not empty
	ErrorMessage     string // set when not empty
	ReturnCode       string // set when not empty
	ActionURL        string // set when not empty; cleared when the status leaves REQUIRES_ACTION
	// Audit writes an audit row even when From == To (a further partial
	// refund); the pair must still be in the lifecycle table.
	Audit                bool
	ExpectedSettlementAt *time.Time
	ReturnWatchUntil     *time.Time
	SettledAt            *time.Time
	RefundedDelta        int64 // moved from refund_pending to refunded
	RefundReleased       int64 // released from refund_pending (failed refund)
}

// Apply runs a Change and returns the new step sequence. payment.ErrStale
// means the row had moved on: the caller's task is out of date.
func (s *Store) Apply(ctx context.Context, c Change) (int, error) {
	if c.From != c.To || c.Audit {
		if _, err := payment.Next(c.From, c.To); err != nil {
			return 0, err
		}
	}
	now := s.now()
	var step, stepAt any
	if c.NextStep != payment.StepNone {
		step, stepAt = string(c.NextStep), c.NextStepAt.UTC()
	}
	var seq int
	var tenant string
	audit := c.From != c.To || c.Audit
	err := s.InTx(ctx, func(tx *Store) error {
		// The guarded update and, when the status changes, its audit row, in
		// one statement: the audit row exists exactly when the update applied.
		err := tx.q.QueryRowxContext(ctx, `
			WITH u AS (
			UPDATE payments SET
				status = $2,
				next_step = CASE WHEN $19 THEN next_step ELSE $3 END,
				next_step_at = CASE WHEN $19 THEN next_step_at ELSE $4 END,
				step_seq = CASE WHEN $19 THEN step_seq ELSE step_seq + 1 END,
				swept = CASE WHEN $19 THEN swept ELSE false END,
				updated_at = $5, updated_by = $6,
				gateway_reference = CASE WHEN $7 <> '' THEN $7 ELSE gateway_reference END,
				error_code = CASE WHEN $8 <> '' THEN $8 ELSE error_code END,
				error_message = CASE WHEN $9 <> '' THEN $9 ELSE error_message END,
				return_code = CASE WHEN $10 <> '' THEN $10 ELSE return_code END,
				action_url = CASE WHEN $20 <> '' THEN $20 WHEN $2 <> 'REQUIRES_ACTION' THEN '' ELSE action_url END,
				expected_settlement_at = COALESCE($11, expected_settlement_at),
				return_watch_until = COALESCE($12, return_watch_until),
				settled_at = COALESCE(settled_at, $13),
				refunded_amount = refunded_amount + $14,
				refund_pending_amount = refund_pending_amount - $14 - $15,
				succeeded_at = CASE WHEN $2 = 'SUCCEEDED' THEN COALESCE(succeeded_at, $5) ELSE succeeded_at END,
				failed_at    = CASE WHEN $2 = 'FAILED' THEN COALESCE(failed_at, $5) ELSE failed_at END,
				canceled_at  = CASE WHEN $2 = 'CANCELED' THEN COALESCE(canceled_at, $5) ELSE canceled_at END,
				sent_at      = CASE WHEN $2 = 'SENT' THEN COALESCE(sent_at, $5) ELSE sent_at END,
				returned_at  = CASE WHEN $2 = 'RETURNED' THEN COALESCE(returned_at, $5) ELSE returned_at END,
				refunded_at  = CASE WHEN $2 IN ('REFUNDED','PARTIALLY_REFUNDED') AND $14 > 0 THEN $5 ELSE refunded_at END
			WHERE id = $1 AND status = $16 AND ($17 OR step_seq = $18)
			RETURNING step_seq, tenant_id),
			e AS (
				INSERT INTO payment_events (payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at)
				SELECT $1, tenant_id, $16, $2, $22, $23, $6, $5 FROM u WHERE $21)
			SELECT step_seq, tenant_id FROM u`,
			c.PaymentID, string(c.To), step, stepAt, now, c.Actor,
			c.GatewayReference, c.ErrorCode, c.ErrorMessage, c.ReturnCode,
			c.ExpectedSettlementAt, c.ReturnWatchUntil, c.SettledAt, c.RefundedDelta, c.RefundReleased,
			string(c.From), c.AnySeq, c.Seq, c.KeepSchedule, c.ActionURL,
			audit, c.Reason, c.Attempt).Scan(&seq, &tenant)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("apply %s→%s to %s: %w", c.From, c.To, c.PaymentID, payment.ErrStale)
		}
		if err != nil {
			return translate(fmt.Errorf("apply %s→%s to %s: %w", c.From, c.To, c.PaymentID, err))
		}
		if c.From != c.To || c.RefundedDelta > 0 {
			return tx.settleLines(ctx, c)
		}
		return nil
	})
	return seq, err
}

// PaymentState is a payment's status and when it entered it.
type PaymentState struct {
	Status payment.Status
	Since  time.Time // created_at of the audit row that moved it into Status
}

// PaymentStates reads the status of many payments at once (any tenant), for
// load drivers and checkers.
func (s *Store) PaymentStates(ctx context.Context, ids []string) (map[string]PaymentState, error) {
	var rows []struct {
		ID     string    `db:"id"`
		Status string    `db:"status"`
		Since  time.Time `db:"since"`
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `
		SELECT p.id, p.status, COALESCE((SELECT max(e.created_at) FROM payment_events e
			WHERE e.payment_id = p.id AND e.to_status = p.status), p.updated_at) AS since
		FROM payments p WHERE p.id = ANY($1)`, pq.Array(ids))
	if err != nil {
		return nil, translate(fmt.Errorf("payment states: %w", err))
	}
	out := make(map[string]PaymentState, len(rows))
	for _, r := range rows {
		out[r.ID] = PaymentState{Status: payment.Status(r.Status), Since: r.Since.UTC()}
	}
	return out, nil
}

// LockPayment loads a payment and locks its row until the transaction ends,
// for decisions that depend on its current amounts (refunds).
func (s *Store) LockPayment(ctx context.Context, id string) (payment.Payment, error) {
	var r paymentRow
	err := s.q.QueryRowxContext(ctx, `SELECT `+paymentColumns+paymentFrom+` WHERE p.id = $1 FOR UPDATE OF p`, id).StructScan(&r)
	if err != nil {
		return payment.Payment{}, translate(fmt.Errorf("lock payment %s: %w", id, err))
	}
	return r.toPayment(), nil
}
