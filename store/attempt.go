package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

type attemptRow struct {
	ID               string       `db:"id"`
	PaymentID        string       `db:"payment_id"`
	TenantID         string       `db:"tenant_id"`
	Number           int          `db:"attempt_number"`
	Status           string       `db:"status"`
	IdempotencyKey   string       `db:"idempotency_key"`
	FailureClass     string       `db:"failure_class"`
	ErrorCode        string       `db:"error_code"`
	ErrorMessage     string       `db:"error_message"`
	GatewayReference string       `db:"gateway_reference"`
	InquiryCount     int          `db:"inquiry_count"`
	NextRetryAt      sql.NullTime `db:"next_retry_at"`
	StartedAt        time.Time    `db:"started_at"`
	FinishedAt       sql.NullTime `db:"finished_at"`
	CreatedBy        string       `db:"created_by"`
	UpdatedAt        time.Time    `db:"updated_at"`
}

const attemptColumns = `id, payment_id, tenant_id, attempt_number, status, idempotency_key, failure_class,
	error_code, error_message, gateway_reference, inquiry_count, next_retry_at, started_at, finished_at,
	created_by, updated_at`

func (r attemptRow) toAttempt() payment.Attempt {
	return payment.Attempt{
		ID: r.ID, PaymentID: r.PaymentID, TenantID: r.TenantID, Number: r.Number,
		Status: payment.AttemptStatus(r.Status), IdempotencyKey: r.IdempotencyKey,
		FailureClass: payment.FailureClass(r.FailureClass), ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage,
		GatewayReference: r.GatewayReference, InquiryCount: r.InquiryCount, NextRetryAt: tp(r.NextRetryAt),
		StartedAt: r.StartedAt.UTC(), FinishedAt: tp(r.FinishedAt), CreatedBy: r.CreatedBy, UpdatedAt: r.UpdatedAt.UTC(),
	}
}

func (s *Store) attempts(ctx context.Context, paymentIDs []string) (map[string][]payment.Attempt, error) {
	out := map[string][]payment.Attempt{}
	if len(paymentIDs) == 0 {
		return out, nil
	}
	var rows []attemptRow
	err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT `+attemptColumns+` FROM payment_attempts
		WHERE payment_id = ANY($1) ORDER BY payment_id, attempt_number`, pq.Array(paymentIDs))
	if err != nil {
		return nil, translate(fmt.Errorf("load attempts: %w", err))
	}
	for _, r := range rows {
		out[r.PaymentID] = append(out[r.PaymentID], r.toAttempt())
	}
	return out, nil
}

// Claim is what ClaimSubmit returns: the payment as claimed and the attempt
// whose intent was recorded.
type Claim struct {
	Payment payment.Payment
	Attempt payment.Attempt
}

// ClaimSubmit moves a PENDING payment whose next step is submit (at step
// sequence seq) to PROCESSING and records the intent of attempt n+1 with its
// gateway idempotency key, in one transaction, before any gateway call. The
// payment's next step becomes an inquiry at inquireAt: if this worker dies
// after the gateway call, the sweeper asks the gateway instead of charging
// again. payment.ErrStale means another worker already moved it on.
func (s *Store) ClaimSubmit(ctx context.Context, paymentID string, seq int, inquireAt time.Time, actor string) (Claim, error) {
	return s.ClaimAttempt(ctx, paymentID, payment.StepSubmit, seq, inquireAt, actor)
}

// ClaimAttempt is ClaimSubmit for a payment whose next step is step: the
// create step claims the first attempt itself instead of scheduling a
// separate submit. The claimed payment's Attempts hold only the new attempt.
// On the create step only a payment that goes to a gateway is claimed
// (payment.ErrStale otherwise: payouts and payments recorded without a
// gateway take their own paths, see processor.create).
//
// Concurrent claims share one statement (group): the guarded update, the
// attempt's intent and its audit row for every claimed payment, in one
// round trip and one commit.
func (s *Store) ClaimAttempt(ctx context.Context, paymentID string, step payment.Step, seq int, inquireAt time.Time, actor string) (Claim, error) {
	req := claimReq{PaymentID: paymentID, Step: string(step), Seq: seq, InquireAt: inquireAt.UTC(),
		AttemptID: NewID(payment.PrefixAttempt), Actor: actor}
	res, err := one(ctx, s, s.claims, (*Store).claimAttempts, req)
	if err != nil {
		return Claim{}, translate(fmt.Errorf("claim %s %s: %w", step, paymentID, err))
	}
	if !res.ok {
		return Claim{}, fmt.Errorf("claim %s %s@%d: %w", step, paymentID, seq, payment.ErrStale)
	}
	return res.claim, nil
}

type claimReq struct {
	PaymentID, Step string
	Seq             int
	InquireAt       time.Time
	AttemptID       string
	Actor           string
}

type claimRes struct {
	claim Claim
	ok    bool
}

// claimAttempts runs a batch of claims as one statement. A payment named
// twice in one batch is claimed once; the other request finds it stale.
func (s *Store) claimAttempts(ctx context.Context, reqs []claimReq) ([]claimRes, error) {
	now := s.now()
	n := len(reqs)
	ids, steps, attempts, actors := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	seqs, inquire := make([]int64, n), make([]string, n)
	for i, r := range reqs {
		ids[i], steps[i], seqs[i], inquire[i], attempts[i], actors[i] = r.PaymentID, r.Step, int64(r.Seq), pgTime(r.InquireAt), r.AttemptID, r.Actor
	}
	var rows []struct {
		paymentRow
		AttemptID string `db:"claim_attempt_id"`
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `
		WITH r AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[]::timestamptz[], $5::text[], $6::text[])
				AS r(payment_id, step, seq, inquire_at, attempt_id, actor)),
		p AS (
			UPDATE payments SET status = 'PROCESSING', attempt_count = attempt_count + 1,
				next_step = 'inquire', next_step_at = r.inquire_at, step_seq = step_seq + 1, swept = false,
				updated_at = $7, updated_by = r.actor
			FROM r
			WHERE payments.id = r.payment_id AND payments.id = ANY ($1::text[])
			  AND payments.status = 'PENDING' AND payments.next_step = r.step
			  AND payments.step_seq = r.seq
			  AND (r.step <> 'create' OR (payments.surface <> 'payouts' AND payments.process_payment
			       AND payments.method NOT IN ('OFFLINE', 'CREDITS')))
			RETURNING payments.*, r.attempt_id AS claim_attempt_id, r.actor AS claim_actor),
		a AS (
			INSERT INTO payment_attempts (id, payment_id, tenant_id, attempt_number, status, idempotency_key, started_at, created_by, updated_at)
			SELECT claim_attempt_id, id, tenant_id, attempt_count, 'STARTED', id || ':' || attempt_count, $7, claim_actor, $7 FROM p),
		e AS (
			INSERT INTO payment_events (payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at)
			SELECT id, tenant_id, 'PENDING', 'PROCESSING', 'attempt started', attempt_count, claim_actor, $7 FROM p)
		SELECT `+paymentColumns+`, p.claim_attempt_id FROM p
		LEFT JOIN invoices i ON i.id = p.invoice_id AND i.id = ANY (ARRAY(SELECT invoice_id FROM p))`,
		pq.Array(ids), pq.Array(steps), pq.Array(seqs), pq.Array(inquire), pq.Array(attempts), pq.Array(actors), now)
	if err != nil {
		return nil, err
	}
	byAttempt := make(map[string]int, len(rows))
	for i, r := range rows {
		byAttempt[r.AttemptID] = i
	}
	out := make([]claimRes, n)
	for i, r := range reqs {
		j, ok := byAttempt[r.AttemptID]
		if !ok {
			continue
		}
		p := rows[j].toPayment()
		a := payment.Attempt{ID: r.AttemptID, PaymentID: p.ID, TenantID: p.TenantID, Number: p.AttemptCount,
			Status: payment.AttemptStarted, IdempotencyKey: payment.AttemptKey(p.ID, p.AttemptCount),
			StartedAt: now, UpdatedAt: now, CreatedBy: r.Actor}
		p.Attempts = []payment.Attempt{a}
		out[i] = claimRes{claim: Claim{Payment: p, Attempt: a}, ok: true}
	}
	return out, nil
}

// AttemptResult is the recorded outcome of an attempt.
type AttemptResult struct {
	AttemptID        string
	Status           payment.AttemptStatus
	FailureClass     payment.FailureClass
	ErrorCode        string
	ErrorMessage     string
	GatewayReference string
	NextRetryAt      *time.Time
	CountInquiry     bool // one more inquiry was made
}

// FinishAttempt records an attempt's outcome. It is guarded: a finished
// attempt (SUCCEEDED or FAILED) never changes again.
func (s *Store) FinishAttempt(ctx context.Context, r AttemptResult) error {
	now := s.now()
	var finished any
	if r.Status == payment.AttemptSucceeded || r.Status == payment.AttemptFailed {
		finished = now
	}
	inc := 0
	if r.CountInquiry {
		inc = 1
	}
	res, err := s.q.ExecContext(ctx, `
		UPDATE payment_attempts SET status = $2, failure_class = $3, error_code = $4, error_message = $5,
			gateway_reference = CASE WHEN $6 <> '' THEN $6 ELSE gateway_reference END,
			next_retry_at = $7, finished_at = $8, updated_at = $9, inquiry_count = inquiry_count + $10
		WHERE id = $1 AND status IN ('STARTED','UNKNOWN')`,
		r.AttemptID, string(r.Status), string(r.FailureClass), r.ErrorCode, truncate(r.ErrorMessage, 500),
		r.GatewayReference, r.NextRetryAt, finished, now, inc)
	if err != nil {
		return translate(fmt.Errorf("finish attempt %s: %w", r.AttemptID, err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("finish attempt %s: %w", r.AttemptID, payment.ErrStale)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
