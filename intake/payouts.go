package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// Payouts over bank rails (seed 002's surface). A payout is a payments row of
// surface "payouts" (ids pay_…), run by the same jobs as every payment; the
// seed's extra fields live in payout_details. Its status vocabulary is in
// payout_status.go, its validation in payout_request.go and
// payout_lines.go, its answer in payout_response.go.

// handleCreatePayout records a payout, then enqueues its next step. A
// payout made elsewhere (a status other than INITIATED) is walked to that
// status in the create's transaction, so the answer shows it. The
// external_payment_id is the business key from the source: the same request
// again answers 200 with the existing payout (a replay); a later push of it
// is synced (syncPayout): 200 with the payout as it now is, or 422
// payout_conflict_<what> when the push contradicts the record.
func (s *Server) handleCreatePayout(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/payouts"
	p := principal(r.Context())
	v, err := decodeValid(s, w, r, &createPayoutRequest{})
	if err != nil {
		return err
	}
	fp := fingerprint(route, v)
	details, err := json.Marshal(v.Fields)
	if err != nil {
		return err
	}
	beneficiary := v.Fields.beneficiary()
	np := store.NewPayout{
		Payment: store.NewPayment{TenantID: p.TenantID, Amount: v.Amount, Method: v.Method,
			PaymentMethodID: beneficiary.AccountKey(v.Method), DestinationType: "BANK_ACCOUNT", Fingerprint: fp,
			ProcessPayment: v.live(), TrackAttempts: true, Actor: p.KeyID},
		ExternalPaymentID: v.ExternalPaymentID, ExternalSource: v.ExternalSource,
		AccountFingerprint: beneficiary.AccountFingerprint(v.Method), Details: details, Lines: paymentLines(v.Lines),
		SentAt: v.Fields.SentAt, ExpectedSettlementAt: v.Fields.ExpectedSettlementAt,
		SettledAt: v.Fields.SettledAt, ReturnedAt: v.Fields.ReturnedAt,
	}
	if !v.Method.BankRail() {
		np.Payment.PaymentMethodID, np.Payment.DestinationType = "", ""
	}
	if v.Status.Imported() {
		np.ImportedStatus = string(v.Status)
		if (v.Status == payment.PayoutPaid || v.Status == payment.PayoutSettled) && np.SettledAt == nil {
			np.SettledAt = &v.at // the seed: PAID or SETTLED without settled_at is settled now
		}
	}
	created := false
	var follow *followUp // the step the row now waits for, enqueued after commit
	rw := &replayWriter{ResponseWriter: w}
	return s.idempotent(rw, r, route, fp, func(ctx context.Context, tx *store.Store) (int, any, error) {
		if err := checkInvoices(ctx, tx, p.TenantID, v.Lines); err != nil {
			return 0, nil, err
		}
		pay, err := tx.InsertPayout(ctx, np)
		var exists *payment.PayoutExistsError
		switch {
		case errors.As(err, &exists):
			if string(exists.Fingerprint) != string(fp) {
				// a later push of the same payment: sync it
				po, last, seq, err := syncPayout(ctx, tx, v, fp, exists.PaymentID, p.KeyID, p.TenantID)
				if err != nil {
					return 0, nil, err
				}
				follow = &followUp{step: last.NextStep, at: last.NextStepAt, seq: seq}
				return http.StatusOK, toPayoutResponse(po), nil
			}
			po, err := tx.GetPayout(ctx, p.TenantID, exists.PaymentID)
			if err != nil {
				return 0, nil, err
			}
			rw.replayed = true
			s.metrics.IdempotentReplays.WithLabelValues(route).Inc()
			return http.StatusOK, toPayoutResponse(po), nil
		case errors.Is(err, payment.ErrAccountBlocked):
			field := v.Fields.accountField(v.Method)
			return 0, nil, validation(map[string]string{field: "beneficiary_account_blocked"})
		case err != nil:
			return 0, nil, linesError(err, v.Lines)
		}
		po, err := tx.GetPayout(ctx, p.TenantID, pay.ID)
		if err != nil {
			return 0, nil, err
		}
		created = true
		follow = &followUp{step: po.Payment.NextStep, seq: po.Payment.StepSeq}
		if po.Payment.NextStepAt != nil {
			follow.at = *po.Payment.NextStepAt
		}
		return http.StatusCreated, toPayoutResponse(po), nil
	}, func(ctx context.Context, resp any) {
		pr := resp.(payoutResponse)
		if created {
			s.metrics.PaymentsCreated.WithLabelValues(pr.Method, store.SurfacePayouts).Inc()
		}
		if follow != nil && follow.step != payment.StepNone {
			s.enqueueStepAt(ctx, follow.step, pr.ID, follow.seq, follow.at)
		}
	})
}

func (s *Server) handleGetPayout(w http.ResponseWriter, r *http.Request) error {
	po, err := s.store.GetPayout(r.Context(), principal(r.Context()).TenantID, r.PathValue("id"))
	return writeOne(w, po, err, toPayoutResponse)
}

// handleListPayouts lists payouts newest first, optionally by status (seed
// 002 vocabulary) or external_payment_id.
func (s *Server) handleListPayouts(w http.ResponseWriter, r *http.Request) error {
	p := principal(r.Context())
	q := parseListQuery(r)
	f := store.PayoutFilter{TenantID: p.TenantID, Limit: q.limit, StartingAfter: q.after}
	if st := q.Get("status"); st != "" {
		if f.Statuses, f.Paid = payment.PayoutStatusesNamed(st); len(f.Statuses) == 0 {
			q.bad["status"] = "status_invalid"
		}
	}
	if ext := q.Get("external_payment_id"); ext != "" {
		if code := checkText(&ext, false, 255); code != "" {
			q.bad["external_payment_id"] = "external_payment_id_" + code
		}
		f.ExternalPaymentID = ext
	}
	return writeList(w, r, q, func(ctx context.Context, id string) (bool, error) {
		_, err := s.store.GetPayout(ctx, p.TenantID, id)
		if errors.Is(err, payment.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}, func(ctx context.Context) ([]payment.Payout, bool, error) {
		return s.store.ListPayouts(ctx, f)
	}, toPayoutResponse)
}

// handleReplacePayoutLines applies lines to a payout: replace_lines true
// (the default) takes back every earlier application first, false adds to
// them. Reservations happen under each invoice's row lock, so no invoice is
// ever over-applied, and the payout's lines never exceed its amount.
func (s *Server) handleReplacePayoutLines(w http.ResponseWriter, r *http.Request) error {
	const route = "PUT /v1/payouts/{id}/lines"
	p := principal(r.Context())
	id := r.PathValue("id")
	po, err := s.store.GetPayout(r.Context(), p.TenantID, id)
	if err != nil {
		return err
	}
	v, err := decodeValid(s, w, r, &replaceLinesRequest{payout: po.Payment.Amount})
	if err != nil {
		return err
	}
	fp := fingerprint(route, []any{id, v.Lines, v.Replace})
	return s.idempotent(w, r, route, fp, func(ctx context.Context, tx *store.Store) (int, any, error) {
		if err := checkInvoices(ctx, tx, p.TenantID, v.Lines); err != nil {
			return 0, nil, err
		}
		if err := tx.ApplyLines(ctx, id, paymentLines(v.Lines), v.Replace); err != nil {
			return 0, nil, linesError(err, v.Lines)
		}
		po, err := tx.GetPayout(ctx, p.TenantID, id)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, toPayoutResponse(po), nil
	}, nil)
}

// handleCancelPayout cancels a payout that has not gone to the bank yet:
// INITIATED (canonical PENDING, including one scheduled for later). Once
// PROCESSING an attempt may be at the gateway; once SENT the rail has it.
func (s *Server) handleCancelPayout(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/payouts/{id}/cancel"
	p := principal(r.Context())
	id := r.PathValue("id")
	if _, err := s.store.GetPayout(r.Context(), p.TenantID, id); err != nil {
		return err
	}
	return s.idempotent(w, r, route, fingerprint(route, id), func(ctx context.Context, tx *store.Store) (int, any, error) {
		po, err := tx.GetPayout(ctx, p.TenantID, id)
		if err != nil {
			return 0, nil, err
		}
		pay := po.Payment
		notCancelable := errf(http.StatusConflict, typeConflict, "payout_not_cancelable",
			fmt.Sprintf("a payout that is %s can no longer be canceled; only an INITIATED payout can",
				payment.PayoutStatusName(pay.Status, pay.Method, po.Details.ImportedStatus)))
		// only before anything reached the rail: a payout never awaits a
		// customer action, and one that did would have to be voided first
		if pay.Status != payment.StatusPending {
			return 0, nil, notCancelable
		}
		if _, err := tx.Apply(ctx, store.Change{PaymentID: id, From: pay.Status, To: payment.StatusCanceled, AnySeq: true,
			Reason: "canceled by the merchant", Actor: p.KeyID, ErrorCode: "canceled", ErrorMessage: "payout canceled"}); err != nil {
			if errors.Is(err, payment.ErrStale) {
				return 0, nil, notCancelable
			}
			return 0, nil, err
		}
		po, err = tx.GetPayout(ctx, p.TenantID, id)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, toPayoutResponse(po), nil
	}, nil)
}
