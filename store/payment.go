package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

// Reading payments: the row, its columns and conversion, and the queries
// that load, list and lock payments.

const paymentColumns = `p.id, p.tenant_id, p.surface, p.amount, p.currency, p.method, p.payment_method_id,
	p.destination_type, p.destination_id, COALESCE(p.invoice_id, '') AS invoice_id,
	COALESCE(i.invoice_number, '') AS invoice_number, COALESCE(p.idempotency_key, '') AS idempotency_key,
	p.process_payment, p.track_attempts, p.status, COALESCE(p.next_step, '') AS next_step, p.next_step_at,
	p.step_seq, p.attempt_count, p.refunded_amount, p.refund_pending_amount, p.gateway_reference,
	p.error_code, p.error_message, p.return_code, p.action_url, p.metadata, p.created_by, p.updated_by,
	p.created_at, p.updated_at, p.succeeded_at, p.failed_at, p.refunded_at, p.canceled_at, p.sent_at,
	p.expected_settlement_at, p.settled_at, p.returned_at, p.return_watch_until, p.cancel_requested_at,
	COALESCE(p.session_id, '') AS session_id, COALESCE(p.flow_id, '') AS flow_id,
	COALESCE(p.gateway, '') AS gateway, p.options, p.deleted_at`

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
	CancelRequestedAt    sql.NullTime `db:"cancel_requested_at"`
	SessionID            string       `db:"session_id"`
	FlowID               string       `db:"flow_id"`
	Gateway              string       `db:"gateway"`
	Options              []byte       `db:"options"`
	DeletedAt            sql.NullTime `db:"deleted_at"`
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
		CancelRequestedAt: tp(r.CancelRequestedAt), SessionID: r.SessionID, FlowID: r.FlowID,
		Gateway: r.Gateway, DeletedAt: tp(r.DeletedAt),
	}
	if len(r.Options) > 0 {
		_ = json.Unmarshal(r.Options, &p.Options)
	}
	if len(r.Metadata) > 0 {
		_ = json.Unmarshal(r.Metadata, &p.Metadata)
	}
	return p
}

// paymentByID reads one payment by its id alone; the caller checks its
// tenant (ownedBy).
const paymentByID = `SELECT ` + paymentColumns + paymentFrom + ` WHERE p.id = $1`

// GetPayment loads one payment of a tenant with its attempts. Another
// tenant's payment is payment.ErrNotFound. An empty tenantID loads any
// tenant's payment (workers).
func (s *Store) GetPayment(ctx context.Context, tenantID, id string) (payment.Payment, error) {
	var r paymentRow
	err := s.q.QueryRowxContext(ctx, paymentByID, id).StructScan(&r)
	if err == nil && !ownedBy(tenantID, r.TenantID) {
		err = sql.ErrNoRows
	}
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
	err := s.q.QueryRowxContext(ctx, paymentByID, id).StructScan(&r)
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
	err := s.q.QueryRowxContext(ctx, `SELECT COALESCE((SELECT tenant_id = $2 FROM payments WHERE id = $1), false)`, id, tenantID).Scan(&ok)
	return ok, translate(err)
}

// PaymentState is a payment's status and when it entered it.
type PaymentState struct {
	Status payment.Status
	Since  time.Time // created_at of the audit row that moved it into Status
}

// PaymentStatuses reads the status of many payments at once (any tenant),
// by primary key only: the cheap poll of a load driver.
func (s *Store) PaymentStatuses(ctx context.Context, ids []string) (map[string]payment.Status, error) {
	var rows []struct {
		ID     string `db:"id"`
		Status string `db:"status"`
	}
	if err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT id, status FROM payments WHERE id = ANY($1)`, pq.Array(ids)); err != nil {
		return nil, translate(fmt.Errorf("payment statuses: %w", err))
	}
	out := make(map[string]payment.Status, len(rows))
	for _, r := range rows {
		out[r.ID] = payment.Status(r.Status)
	}
	return out, nil
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
