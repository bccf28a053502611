package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

// Changing payments: the guarded update (Change, Apply, ApplyWith) and the
// batched statement that records a decision for many payments at once (Record).

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
	// Audit writes an audit row even when From == To: a further partial
	// refund, or a note (payment/state.go) with Reason.
	Audit                bool
	ExpectedSettlementAt *time.Time
	ReturnWatchUntil     *time.Time
	SettledAt            *time.Time
	RefundedDelta        int64 // moved from refund_pending to refunded
	RefundReleased       int64 // released from refund_pending (failed refund)
}

// Apply runs a Change and returns the new step sequence. payment.ErrStale
// means the row had moved on: the caller's task is out of date. It runs in
// one transaction (the caller's, if any): the guarded update with its audit
// row in one statement, then the invoice lines the transition moves.
func (s *Store) Apply(ctx context.Context, c Change) (int, error) {
	return s.ApplyWith(ctx, nil, c)
}

// ApplyWith is Apply that also records attempt's outcome, guarded with the
// change: neither applies unless the payment is still in the observed state
// and the attempt is still unfinished (STARTED or UNKNOWN).
func (s *Store) ApplyWith(ctx context.Context, attempt *AttemptResult, c Change) (int, error) {
	if err := checkChange(c); err != nil {
		return 0, err
	}
	var seq int
	err := s.InTx(ctx, func(tx *Store) error {
		res, err := one(ctx, tx, tx.records, (*Store).applyRows, applyReq{c: c, attempt: attempt})
		if err != nil {
			return translate(fmt.Errorf("apply %s→%s to %s: %w", c.From, c.To, c.PaymentID, err))
		}
		if !res.ok {
			return fmt.Errorf("apply %s→%s to %s: %w", c.From, c.To, c.PaymentID, payment.ErrStale)
		}
		seq = res.seq
		// In its own statement, after the update: this statement's snapshot
		// sees every line committed before the payment's row lock was ours.
		if c.From != c.To || c.RefundedDelta > 0 {
			return tx.settleLines(ctx, c)
		}
		return nil
	})
	return seq, err
}

// Record is ApplyWith for a payment of the seed-001 surface (not a
// payout), run outside any transaction: concurrent records share one
// statement (group) that also moves the payment's invoice lines. That is
// safe because such a payment's lines never change but with a status
// change of the payment itself, under its row lock: a record whose guard
// still holds after waiting for that lock saw the lines as they are.
// (A payout's lines may be replaced by PUT /v1/payouts/{id}/lines at any
// time, without a transition; payouts use ApplyWith.)
func (s *Store) Record(ctx context.Context, attempt *AttemptResult, c Change) (int, error) {
	if err := checkChange(c); err != nil {
		return 0, err
	}
	if s.tx != nil || c.RefundedDelta > 0 || c.RefundReleased > 0 {
		return s.ApplyWith(ctx, attempt, c)
	}
	res, err := s.records.do(ctx, applyReq{c: c, attempt: attempt, lines: linesOf(c)})
	if err != nil {
		return 0, translate(fmt.Errorf("record %s→%s to %s: %w", c.From, c.To, c.PaymentID, err))
	}
	if !res.ok {
		return 0, fmt.Errorf("record %s→%s to %s: %w", c.From, c.To, c.PaymentID, payment.ErrStale)
	}
	return res.seq, nil
}

func checkChange(c Change) error {
	if c.From != c.To {
		if _, err := payment.Next(c.From, c.To); err != nil {
			return err
		}
	}
	if !c.From.Valid() {
		return &payment.TransitionError{From: c.From, To: c.To}
	}
	return nil
}

// linesOf is what a transition does to the payment's invoice lines when
// the statement moves them (Record): count them as paid, or give them back.
// Refunds release part of them in Go (releaseRefunded).
func linesOf(c Change) string {
	switch {
	case c.From == c.To:
		return ""
	case c.To == payment.StatusSucceeded:
		return "apply"
	case c.To == payment.StatusFailed, c.To == payment.StatusCanceled, c.To == payment.StatusReturned:
		return "release"
	}
	return ""
}

// blocksAccount: a return that closes the beneficiary account to payouts.
func (c Change) blocksAccount() bool {
	return c.To == payment.StatusReturned && payment.ReturnBlocksAccount(c.ReturnCode)
}

type applyReq struct {
	c       Change
	attempt *AttemptResult
	// lines is what the statement itself does to the payment's invoice
	// lines: "" (nothing: the caller settles them), "apply" or "release".
	lines string
}

type applyRes struct {
	seq int
	ok  bool
}

// applyRows runs a batch of guarded changes as one statement: for each
// row whose payment is still in the observed state (and whose attempt, if
// any, is unfinished), the update, the attempt's outcome, the audit row
// and, with lines set, the invoice lines and balances. Invoices are locked
// in id order, as everywhere, so concurrent statements never deadlock on
// them.
func (s *Store) applyRows(ctx context.Context, reqs []applyReq) ([]applyRes, error) {
	now := s.now()
	n := len(reqs)
	var (
		ids, to, from, step, stepAt, actor, gref, ecode, emsg, rcode, aurl = strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n)
		expSettle, watch, settled, reason, lines                           = strs(n), strs(n), strs(n), strs(n), strs(n)
		attID, attStatus, attClass, attCode, attMsg, attRef, attRetry      = strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n)
		seqs, attempt, refunded, released                                  = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		anySeq, keep, audit, block, attInq                                 = make([]bool, n), make([]bool, n), make([]bool, n), make([]bool, n), make([]bool, n)
	)
	for i, r := range reqs {
		c := r.c
		ids[i], to[i], from[i], seqs[i], anySeq[i], keep[i] = c.PaymentID, string(c.To), string(c.From), int64(c.Seq), c.AnySeq, c.KeepSchedule
		if c.NextStep != payment.StepNone {
			step[i], stepAt[i] = string(c.NextStep), pgTime(c.NextStepAt)
		}
		actor[i], gref[i], ecode[i], emsg[i], rcode[i], aurl[i] = c.Actor, c.GatewayReference, c.ErrorCode, c.ErrorMessage, c.ReturnCode, c.ActionURL
		expSettle[i], watch[i], settled[i] = pgTimeP(c.ExpectedSettlementAt), pgTimeP(c.ReturnWatchUntil), pgTimeP(c.SettledAt)
		audit[i], reason[i], attempt[i] = c.From != c.To || c.Audit, c.Reason, int64(c.Attempt)
		if unauditedSucceeded && c.To == payment.StatusSucceeded {
			audit[i] = false // the I4 negative test's broken build only (audit_broken.go)
		}
		refunded[i], released[i] = c.RefundedDelta, c.RefundReleased
		lines[i] = r.lines
		block[i] = r.lines != "" && c.blocksAccount()
		if a := r.attempt; a != nil {
			attID[i], attStatus[i], attClass[i], attCode[i] = a.AttemptID, string(a.Status), string(a.FailureClass), a.ErrorCode
			attMsg[i], attRef[i], attRetry[i], attInq[i] = truncate(a.ErrorMessage, 500), a.GatewayReference, pgTimeP(a.NextRetryAt), a.CountInquiry
		}
	}
	var rows []struct {
		Ord int64 `db:"ord"`
		Seq int   `db:"step_seq"`
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `
		WITH r AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::bool[], $6::bool[], $7::text[], $8::text[],
				$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[],
				$18::int8[], $19::int8[], $20::bool[], $21::text[], $22::int8[], $23::text[], $24::bool[],
				$25::text[], $26::text[], $27::text[], $28::text[], $29::text[], $30::text[], $31::text[], $32::bool[])
			WITH ORDINALITY AS r(payment_id, to_status, from_status, seq, any_seq, keep, next_step, next_step_at,
				actor, gref, ecode, emsg, rcode, aurl, exp_settle, watch, settled,
				refunded, released, audit, reason, attempt, lines, block,
				att_id, att_status, att_class, att_code, att_msg, att_ref, att_retry, att_inq, ord)),
		u AS (
			UPDATE payments p SET
				status = r.to_status,
				next_step = CASE WHEN r.keep THEN p.next_step ELSE NULLIF(r.next_step, '') END,
				next_step_at = CASE WHEN r.keep THEN p.next_step_at ELSE NULLIF(r.next_step_at, '')::timestamptz END,
				step_seq = CASE WHEN r.keep THEN p.step_seq ELSE p.step_seq + 1 END,
				swept = CASE WHEN r.keep THEN p.swept ELSE false END,
				updated_at = $33, updated_by = r.actor,
				gateway_reference = CASE WHEN r.gref <> '' THEN r.gref ELSE p.gateway_reference END,
				error_code = CASE WHEN r.ecode <> '' THEN r.ecode ELSE p.error_code END,
				error_message = CASE WHEN r.emsg <> '' THEN r.emsg ELSE p.error_message END,
				return_code = CASE WHEN r.rcode <> '' THEN r.rcode ELSE p.return_code END,
				action_url = CASE WHEN r.aurl <> '' THEN r.aurl WHEN r.to_status <> 'REQUIRES_ACTION' THEN '' ELSE p.action_url END,
				expected_settlement_at = COALESCE(NULLIF(r.exp_settle, '')::timestamptz, p.expected_settlement_at),
				return_watch_until = COALESCE(NULLIF(r.watch, '')::timestamptz, p.return_watch_until),
				settled_at = COALESCE(p.settled_at, NULLIF(r.settled, '')::timestamptz),
				refunded_amount = p.refunded_amount + r.refunded,
				refund_pending_amount = p.refund_pending_amount - r.refunded - r.released,
				succeeded_at = CASE WHEN r.to_status = 'SUCCEEDED' THEN COALESCE(p.succeeded_at, $33) ELSE p.succeeded_at END,
				failed_at    = CASE WHEN r.to_status = 'FAILED' THEN COALESCE(p.failed_at, $33) ELSE p.failed_at END,
				canceled_at  = CASE WHEN r.to_status = 'CANCELED' THEN COALESCE(p.canceled_at, $33) ELSE p.canceled_at END,
				sent_at      = CASE WHEN r.to_status = 'SENT' THEN COALESCE(p.sent_at, $33) ELSE p.sent_at END,
				returned_at  = CASE WHEN r.to_status = 'RETURNED' THEN COALESCE(p.returned_at, $33) ELSE p.returned_at END,
				refunded_at  = CASE WHEN r.to_status IN ('REFUNDED','PARTIALLY_REFUNDED') AND r.refunded > 0 THEN $33 ELSE p.refunded_at END
			FROM r
			WHERE p.id = r.payment_id AND p.id = ANY ($1::text[])
			  AND p.status = r.from_status AND (r.any_seq OR p.step_seq = r.seq)
			  AND (r.lines = '' OR p.surface <> 'payouts')
			  AND (r.att_id = '' OR EXISTS (SELECT 1 FROM payment_attempts a
			       WHERE a.id = r.att_id AND a.id = ANY ($25::text[]) AND a.payment_id = p.id AND a.status IN ('STARTED', 'UNKNOWN')))
			RETURNING r.*, p.step_seq, p.tenant_id, p.session_id, p.error_code AS p_ecode, p.error_message AS p_emsg),
		ss AS (
			-- a session follows its latest payment's terminal transitions, in this statement
			UPDATE payment_sessions ps SET
				status = CASE WHEN u.to_status IN ('SUCCEEDED', 'SENT') THEN 'COMPLETED' ELSE 'FAILED' END,
				completed_at = CASE WHEN u.to_status IN ('SUCCEEDED', 'SENT') THEN $33 ELSE ps.completed_at END,
				next_at = CASE WHEN u.to_status IN ('SUCCEEDED', 'SENT') THEN NULL ELSE ps.expires_on END,
				step_seq = ps.step_seq + 1, swept = false, updated_at = $33,
				last_error_code = CASE WHEN u.to_status IN ('SUCCEEDED', 'SENT') THEN '' ELSE u.p_ecode END,
				last_error_msg = CASE WHEN u.to_status IN ('SUCCEEDED', 'SENT') THEN '' ELSE u.p_emsg END
			FROM u
			WHERE u.session_id IS NOT NULL AND ps.id = u.session_id AND ps.payment_id = u.payment_id
			  AND ps.status = 'PROCESSING' AND u.from_status <> u.to_status
			  AND u.to_status IN ('SUCCEEDED', 'SENT', 'FAILED', 'CANCELED')
			RETURNING ps.id, ps.tenant_id, ps.status, u.payment_id, u.to_status, u.actor),
		se AS (
			INSERT INTO payment_session_events (session_id, tenant_id, payment_id, from_status, to_status, reason, actor, created_at)
			SELECT id, tenant_id, payment_id, 'PROCESSING', status, 'payment ' || to_status, actor, $33 FROM ss),
		f AS (
			UPDATE payment_attempts a SET status = u.att_status, failure_class = u.att_class, error_code = u.att_code,
				error_message = u.att_msg,
				gateway_reference = CASE WHEN u.att_ref <> '' THEN u.att_ref ELSE a.gateway_reference END,
				next_retry_at = NULLIF(u.att_retry, '')::timestamptz,
				finished_at = CASE WHEN u.att_status IN ('SUCCEEDED', 'FAILED') THEN $33 END,
				updated_at = $33, inquiry_count = a.inquiry_count + CASE WHEN u.att_inq THEN 1 ELSE 0 END
			FROM u WHERE u.att_id <> '' AND a.id = u.att_id AND a.id = ANY ($25::text[]) AND a.status IN ('STARTED', 'UNKNOWN')),
		e AS (
			INSERT INTO payment_events (payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at)
			SELECT payment_id, tenant_id, from_status, to_status, reason, attempt, actor, $33 FROM u WHERE audit ORDER BY ord),
		la AS (
			UPDATE payment_applications pa SET state = 'applied'
			FROM u WHERE u.lines = 'apply' AND pa.payment_id = u.payment_id AND pa.payment_id = ANY ($1::text[])
			  AND pa.state = 'reserved'
			RETURNING pa.invoice_id, 0::int8 AS reserved, pa.applied_amount - pa.released_amount AS paid),
		lr AS (
			UPDATE payment_applications pa SET state = 'released', released_amount = pa.applied_amount
			FROM (SELECT x.id, x.applied_amount - x.released_amount AS left_amount, x.state AS old_state
			      FROM payment_applications x JOIN u ON u.lines = 'release' AND x.payment_id = u.payment_id
			      WHERE x.payment_id = ANY ($1::text[]) AND x.state <> 'released' AND x.applied_amount > x.released_amount) o
			WHERE pa.id = o.id AND pa.payment_id = ANY ($1::text[])
			RETURNING pa.invoice_id, -o.left_amount AS reserved, CASE WHEN o.old_state = 'applied' THEN -o.left_amount ELSE 0 END AS paid),
		d AS (
			SELECT invoice_id, sum(reserved)::int8 AS reserved, sum(paid)::int8 AS paid
			FROM (SELECT * FROM la UNION ALL SELECT * FROM lr) m GROUP BY invoice_id),
		li AS (
			SELECT i.id FROM d JOIN invoices i ON i.id = d.invoice_id
			WHERE i.id = ANY (ARRAY(SELECT invoice_id FROM d)) ORDER BY i.id FOR NO KEY UPDATE OF i),
		iv AS (
			UPDATE invoices i SET amount_reserved = i.amount_reserved + d.reserved, amount_paid = i.amount_paid + d.paid
			FROM d JOIN li ON li.id = d.invoice_id
			WHERE i.id = d.invoice_id AND i.id = ANY (ARRAY(SELECT invoice_id FROM d))),
		b AS (
			INSERT INTO blocked_accounts (tenant_id, account_fingerprint, return_code, payment_id, created_at)
			SELECT pd.tenant_id, pd.account_fingerprint, u.rcode, pd.payment_id, $33
			FROM payout_details pd JOIN u ON u.block AND pd.payment_id = u.payment_id AND pd.payment_id = ANY ($1::text[])
			ON CONFLICT DO NOTHING),
		nt AS (
			-- wakes the submits waiting for these session payments (PaymentWaits), at commit
			SELECT pg_notify('`+SessionPaymentChannel+`', string_agg(payment_id, ',')) FROM u
			WHERE session_id IS NOT NULL AND from_status <> to_status
			  AND to_status IN ('SUCCEEDED', 'FAILED', 'CANCELED', 'REQUIRES_ACTION', 'SENT')
			HAVING count(*) > 0)
		SELECT ord, step_seq FROM u WHERE (SELECT count(*) FROM nt) >= 0`,
		pq.Array(ids), pq.Array(to), pq.Array(from), pq.Array(seqs), pq.Array(anySeq), pq.Array(keep), pq.Array(step), pq.Array(stepAt),
		pq.Array(actor), pq.Array(gref), pq.Array(ecode), pq.Array(emsg), pq.Array(rcode), pq.Array(aurl),
		pq.Array(expSettle), pq.Array(watch), pq.Array(settled),
		pq.Array(refunded), pq.Array(released), pq.Array(audit), pq.Array(reason), pq.Array(attempt), pq.Array(lines), pq.Array(block),
		pq.Array(attID), pq.Array(attStatus), pq.Array(attClass), pq.Array(attCode), pq.Array(attMsg), pq.Array(attRef), pq.Array(attRetry),
		pq.Array(attInq), now)
	if err != nil {
		return nil, err
	}
	out := make([]applyRes, n)
	for _, r := range rows {
		out[r.Ord-1] = applyRes{seq: r.Seq, ok: true}
	}
	return out, nil
}

func strs(n int) []string { return make([]string, n) }
