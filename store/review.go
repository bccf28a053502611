package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/payd/payd/payment"
)

// InReview is a payment in REQUIRES_REVIEW with its attempts and when it
// entered review.
type InReview struct {
	payment.Payment
	Since time.Time
}

// ReviewPayments lists payments in REQUIRES_REVIEW of every tenant, longest
// in review first, with their attempts (each attempt's error code and
// message hold the last answer an inquiry got).
func (s *Store) ReviewPayments(ctx context.Context, limit int) ([]InReview, error) {
	if limit <= 0 {
		limit = 100
	}
	pays, _, err := s.pagePayments(ctx, "list payments in review", limit, `SELECT `+paymentColumns+paymentFrom+`
		WHERE p.status = 'REQUIRES_REVIEW' ORDER BY p.updated_at, p.id LIMIT $1`, limit+1)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(pays))
	for i, p := range pays {
		ids[i] = p.ID
	}
	states, err := s.PaymentStates(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]InReview, len(pays))
	for i, p := range pays {
		out[i] = InReview{Payment: p, Since: states[p.ID].Since}
	}
	return out, nil
}

// ReviewAge is one bucket of the review gauge.
type ReviewAge struct {
	Label string        // bounded: under_1h, 1h_to_24h, over_24h
	Min   time.Duration // in review for at least Min …
}

// ReviewAges are the gauge's buckets, youngest first.
var ReviewAges = []ReviewAge{{"under_1h", 0}, {"1h_to_24h", time.Hour}, {"over_24h", 24 * time.Hour}}

// CountReview counts the payments in REQUIRES_REVIEW by how long they have
// been there (ReviewAges), every bucket present.
func (s *Store) CountReview(ctx context.Context) (map[string]int, error) {
	now := s.now()
	var rows []struct {
		Since time.Time `db:"since"`
	}
	// the partial index payments_in_review keeps this to the review rows
	if err := sqlx.SelectContext(ctx, s.q, &rows, `
		SELECT COALESCE((SELECT max(e.created_at) FROM payment_events e
			WHERE e.payment_id = p.id AND e.to_status = 'REQUIRES_REVIEW' AND e.from_status <> 'REQUIRES_REVIEW'), p.updated_at) AS since
		FROM payments p WHERE p.status = 'REQUIRES_REVIEW'`); err != nil {
		return nil, translate(fmt.Errorf("count review: %w", err))
	}
	out := make(map[string]int, len(ReviewAges))
	for _, a := range ReviewAges {
		out[a.Label] = 0
	}
	for _, r := range rows {
		age := now.Sub(r.Since)
		label := ReviewAges[0].Label
		for _, a := range ReviewAges {
			if age >= a.Min {
				label = a.Label
			}
		}
		out[label]++
	}
	return out, nil
}

// Resolution is an operator's (or reconciliation's) decision about a
// payment in review.
type Resolution struct {
	PaymentID string
	To        payment.Status // SUCCEEDED or FAILED
	Attempt   payment.Attempt
	// GatewayReference of the charge, when it succeeded and is known.
	GatewayReference string
	Actor            string // operator:<name>, or reconcile
	Reason           string // the audit row's reason: who, why, what the gateway said
}

// ResolveReview moves a payment out of REQUIRES_REVIEW, guarded on it still
// being there, with its attempt's outcome and an audit row naming the
// actor and reason; the invoice lines move with it (applied on SUCCEEDED,
// released on FAILED) and its slow inquiries stop. payment.ErrStale means
// it left review meanwhile.
func (s *Store) ResolveReview(ctx context.Context, r Resolution) error {
	if r.To != payment.StatusSucceeded && r.To != payment.StatusFailed {
		return &payment.TransitionError{From: payment.StatusRequiresReview, To: r.To}
	}
	att := &AttemptResult{AttemptID: r.Attempt.ID, Status: payment.AttemptSucceeded, GatewayReference: r.GatewayReference,
		ErrorCode: "resolved", ErrorMessage: r.Reason}
	c := Change{PaymentID: r.PaymentID, From: payment.StatusRequiresReview, To: r.To, AnySeq: true,
		Attempt: r.Attempt.Number, Actor: r.Actor, Reason: r.Reason, GatewayReference: r.GatewayReference}
	if r.To == payment.StatusFailed {
		att.Status, att.FailureClass = payment.AttemptFailed, payment.FailureUnknown
		c.ErrorCode, c.ErrorMessage = "resolved_failed", r.Reason
	}
	if r.Attempt.ID == "" {
		att = nil
	}
	_, err := s.ApplyWith(ctx, att, c)
	return err
}
