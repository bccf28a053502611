package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

// Payment flows (seed 000): the flow rows, their plan versions and the
// recompute that turns the truth (invoice, users, the flow's payments) into
// a plan (payment.PlanFlow) and creates the payments it calls for, under the
// flow's row lock, guarded by payment_flow_payments' primary key.

// flowRow is a payment_flows row.
type flowRow struct {
	ID            string       `db:"id"`
	TenantID      string       `db:"tenant_id"`
	ExternalID    string       `db:"external_id"`
	Type          string       `db:"type"`
	InvoiceID     string       `db:"invoice_id"`
	InvoiceExtID  string       `db:"invoice_external_id"`
	Status        string       `db:"status"`
	BlockedReason string       `db:"blocked_reason"`
	PaidOutside   int64        `db:"paid_outside"`
	PlanVersion   int          `db:"plan_version"`
	Fingerprint   []byte       `db:"request_fingerprint"`
	StepSeq       int          `db:"step_seq"`
	CreatedAt     time.Time    `db:"created_at"`
	UpdatedAt     time.Time    `db:"updated_at"`
	CanceledAt    sql.NullTime `db:"canceled_at"`
	SettledAt     sql.NullTime `db:"settled_at"`
	Plan          []byte       `db:"plan"`
}

const flowColumns = `f.id, f.tenant_id, f.external_id, f.type, f.invoice_id, i.external_id AS invoice_external_id, f.status,
	f.blocked_reason, f.paid_outside, f.plan_version, f.request_fingerprint, f.step_seq, f.created_at, f.updated_at,
	f.canceled_at, f.settled_at, pl.plan`

const flowFrom = ` FROM payment_flows f JOIN invoices i ON i.id = f.invoice_id
	LEFT JOIN payment_flow_plans pl ON pl.flow_id = f.id AND pl.version = f.plan_version `

func (r flowRow) toFlow() payment.Flow {
	f := payment.Flow{ID: r.ID, TenantID: r.TenantID, ExternalID: r.ExternalID, Type: r.Type, InvoiceID: r.InvoiceID,
		InvoiceExtID: r.InvoiceExtID, Status: payment.FlowStatus(r.Status), BlockedReason: r.BlockedReason,
		PaidOutside: r.PaidOutside, PlanVersion: r.PlanVersion, Fingerprint: r.Fingerprint, StepSeq: r.StepSeq,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), CanceledAt: tp(r.CanceledAt), SettledAt: tp(r.SettledAt)}
	if len(r.Plan) > 0 {
		var p payment.Plan
		if json.Unmarshal(r.Plan, &p) == nil {
			f.Plan = &p
		}
	}
	return f
}

// NewFlow is what a tenant asks to create.
type NewFlow struct {
	TenantID    string
	ExternalID  string
	InvoiceRef  string // the invoice's id, or its external id with ByExternal
	ByExternal  bool
	Type        string
	Fingerprint []byte
	Actor       string
	// Check is called with the invoice (payers, payees and their users
	// loaded) under its row lock, before the flow is recorded: the
	// caller's validation of what the flow needs (a non-nil error aborts).
	Check func(payment.Invoice) error
}

// ErrFlowExists means a flow with the external id exists: FlowExistsError.
type FlowExistsError struct{ Flow payment.Flow }

func (e *FlowExistsError) Error() string { return "payment flow " + e.Flow.ID + " exists" }
func (e *FlowExistsError) Unwrap() error { return payment.ErrConflict }

// ErrInvoiceHasFlow: the invoice already has a flow under way.
var ErrInvoiceHasFlow = errors.New("the invoice has a payment flow under way")

// CreateFlow records a flow (pending, its recompute due now) with its
// creation event. A flow with the external id already is a
// *FlowExistsError, whatever the body (the caller compares fingerprints);
// an invoice with a flow under way is ErrInvoiceHasFlow.
func (s *Store) CreateFlow(ctx context.Context, nf NewFlow) (payment.Flow, error) {
	var id string
	err := s.InTx(ctx, func(tx *Store) error {
		if _, err := tx.q.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 2000))`,
			"flow|"+nf.TenantID+"|"+nf.ExternalID); err != nil {
			return translate(fmt.Errorf("lock flow external id: %w", err))
		}
		var existing flowRow
		err := sqlx.GetContext(ctx, tx.q, &existing, `SELECT `+flowColumns+flowFrom+` WHERE f.tenant_id = $1 AND f.external_id = $2`,
			nf.TenantID, nf.ExternalID)
		switch {
		case err == nil:
			return &FlowExistsError{Flow: existing.toFlow()}
		case !errors.Is(err, sql.ErrNoRows):
			return translate(fmt.Errorf("flow by external id: %w", err))
		}
		var invID string
		q := `SELECT id FROM invoices WHERE tenant_id = $1 AND id = $2 FOR NO KEY UPDATE`
		if nf.ByExternal {
			q = `SELECT id FROM invoices WHERE tenant_id = $1 AND external_id = $2 FOR NO KEY UPDATE`
		}
		if err := tx.q.QueryRowxContext(ctx, q, nf.TenantID, nf.InvoiceRef).Scan(&invID); err != nil {
			return translate(fmt.Errorf("lock invoice: %w", err))
		}
		var active bool
		if err := tx.q.QueryRowxContext(ctx, `SELECT EXISTS (SELECT 1 FROM payment_flows WHERE invoice_id = $1
			AND status IN ('pending','processing'))`, invID).Scan(&active); err != nil {
			return translate(fmt.Errorf("active flow: %w", err))
		}
		if active {
			return ErrInvoiceHasFlow
		}
		inv, err := tx.GetInvoice(ctx, nf.TenantID, invID)
		if err != nil {
			return err
		}
		if nf.Check != nil {
			if err := nf.Check(inv); err != nil {
				return err
			}
		}
		now := tx.now()
		id = NewID(payment.PrefixFlow)
		_, err = tx.q.ExecContext(ctx, `
			WITH f AS (
				INSERT INTO payment_flows (id, tenant_id, external_id, type, invoice_id, status, paid_outside,
					request_fingerprint, created_by, created_at, updated_at, next_at, step_seq)
				VALUES ($1,$2,$3,$4,$5,'pending',$6,$7,$8,$9,$9,$9,1)
				ON CONFLICT (invoice_id) WHERE status IN ('pending','processing') DO NOTHING
				RETURNING id, tenant_id, created_by, created_at)
			INSERT INTO payment_flow_events (flow_id, tenant_id, from_status, to_status, reason, actor, created_at)
			SELECT id, tenant_id, NULL, 'pending', 'created', created_by, created_at FROM f`,
			id, nf.TenantID, nf.ExternalID, nf.Type, invID, inv.AmountPaid, nf.Fingerprint, nf.Actor, now)
		if err != nil {
			return translate(fmt.Errorf("insert flow: %w", err))
		}
		var ok bool
		if err := tx.q.QueryRowxContext(ctx, `SELECT EXISTS (SELECT 1 FROM payment_flows WHERE id = $1)`, id).Scan(&ok); err != nil {
			return translate(fmt.Errorf("flow inserted: %w", err))
		}
		if !ok {
			return ErrInvoiceHasFlow
		}
		return nil
	})
	if err != nil {
		return payment.Flow{}, err
	}
	return s.GetFlow(ctx, nf.TenantID, id)
}

// GetFlow loads a tenant's flow by id, with its latest plan.
func (s *Store) GetFlow(ctx context.Context, tenantID, id string) (payment.Flow, error) {
	var r flowRow
	err := sqlx.GetContext(ctx, s.q, &r, `SELECT `+flowColumns+flowFrom+` WHERE f.tenant_id = $1 AND f.id = $2`, tenantID, id)
	if err != nil {
		return payment.Flow{}, translate(fmt.Errorf("load flow: %w", err))
	}
	return r.toFlow(), nil
}

// FlowExists reports whether the tenant has a flow with this id (a list cursor).
func (s *Store) FlowExists(ctx context.Context, tenantID, id string) (bool, error) {
	var ok bool
	err := s.q.QueryRowxContext(ctx, `SELECT EXISTS (SELECT 1 FROM payment_flows WHERE tenant_id = $1 AND id = $2)`,
		tenantID, id).Scan(&ok)
	if err != nil {
		return false, translate(fmt.Errorf("flow exists: %w", err))
	}
	return ok, nil
}

// FlowFilter selects a page of a tenant's flows.
type FlowFilter struct {
	TenantID      string
	Status        string // a FlowStatus; empty for all
	InvoiceID     string // an invoice id; empty for all
	Limit         int
	StartingAfter string // a flow id; empty for the first page
}

// ListFlows returns a page of a tenant's flows, newest first, and whether
// more follow.
func (s *Store) ListFlows(ctx context.Context, f FlowFilter) ([]payment.Flow, bool, error) {
	var rows []flowRow
	err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT `+flowColumns+flowFrom+` WHERE f.tenant_id = $1
		AND ($3 = '' OR (f.created_at, f.id) < (SELECT created_at, id FROM payment_flows WHERE id = $3 AND tenant_id = $1))
		AND ($4 = '' OR f.status = $4) AND ($5 = '' OR f.invoice_id = $5)
		ORDER BY f.created_at DESC, f.id DESC LIMIT $2`, f.TenantID, f.Limit+1, f.StartingAfter, f.Status, f.InvoiceID)
	if err != nil {
		return nil, false, translate(fmt.Errorf("list flows: %w", err))
	}
	more := len(rows) > f.Limit
	if more {
		rows = rows[:f.Limit]
	}
	out := make([]payment.Flow, len(rows))
	for i, r := range rows {
		out[i] = r.toFlow()
	}
	return out, more, nil
}

// FlowPlans returns every plan version of a tenant's flow, oldest first.
func (s *Store) FlowPlans(ctx context.Context, tenantID, id string) ([]payment.Plan, error) {
	var raws [][]byte
	err := sqlx.SelectContext(ctx, s.q, &raws, `SELECT pl.plan FROM payment_flow_plans pl JOIN payment_flows f ON f.id = pl.flow_id
		WHERE f.tenant_id = $1 AND f.id = $2 ORDER BY pl.version`, tenantID, id)
	if err != nil {
		return nil, translate(fmt.Errorf("load flow plans: %w", err))
	}
	out := make([]payment.Plan, len(raws))
	for i, b := range raws {
		if err := json.Unmarshal(b, &out[i]); err != nil {
			return nil, fmt.Errorf("decode plan %d of %s: %w", i+1, id, err)
		}
	}
	return out, nil
}

// FlowStep is the flow's current recompute step sequence: what the
// processor enqueues after a transition of one of its payments committed.
func (s *Store) FlowStep(ctx context.Context, id string) (int, error) {
	var seq int
	if err := s.q.QueryRowxContext(ctx, `SELECT step_seq FROM payment_flows WHERE id = $1`, id).Scan(&seq); err != nil {
		return 0, translate(fmt.Errorf("flow step: %w", err))
	}
	return seq, nil
}

// CancelFlow cancels a tenant's flow that is pending or processing: its
// batches not yet started never start; payments under way finish and stay
// accounted in the plan. It returns the flow and the recompute step to
// enqueue; a flow already finished is payment.ErrConflict (with the flow).
func (s *Store) CancelFlow(ctx context.Context, tenantID, id, actor string) (payment.Flow, int, error) {
	var seq int
	var from string
	err := s.InTx(ctx, func(tx *Store) error {
		if err := tx.q.QueryRowxContext(ctx, `SELECT status FROM payment_flows WHERE tenant_id = $1 AND id = $2 FOR UPDATE`,
			tenantID, id).Scan(&from); err != nil {
			return translate(fmt.Errorf("lock flow: %w", err))
		}
		if from != string(payment.FlowPending) && from != string(payment.FlowProcessing) {
			return fmt.Errorf("flow %s is %s: %w", id, from, payment.ErrConflict)
		}
		now := tx.now()
		err := tx.q.QueryRowxContext(ctx, `
			WITH f AS (
				UPDATE payment_flows SET status = 'canceled', canceled_at = $2, updated_at = $2, next_at = $2,
					step_seq = step_seq + 1, swept = false
				WHERE id = $1 RETURNING id, tenant_id, step_seq),
			e AS (
				INSERT INTO payment_flow_events (flow_id, tenant_id, from_status, to_status, reason, actor, created_at)
				SELECT id, tenant_id, $3, 'canceled', 'canceled', $4, $2 FROM f)
			SELECT step_seq FROM f`, id, now, from, actor).Scan(&seq)
		if err != nil {
			return translate(fmt.Errorf("cancel flow: %w", err))
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, payment.ErrConflict) {
			f, gerr := s.GetFlow(ctx, tenantID, id)
			if gerr == nil {
				return f, 0, err
			}
		}
		return payment.Flow{}, 0, err
	}
	f, err := s.GetFlow(ctx, tenantID, id)
	return f, seq, err
}

// RecomputeOutcome says what a recompute did (the metric's label).
type RecomputeOutcome string

const (
	RecomputeChanged   RecomputeOutcome = "changed"   // a new plan version was stored
	RecomputeUnchanged RecomputeOutcome = "unchanged" // the plan was the same
	RecomputeStale     RecomputeOutcome = "stale"     // a later step sequence is due: that task recomputes
)

// RecomputeResult is what a recompute did.
type RecomputeResult struct {
	Outcome RecomputeOutcome
	Flow    payment.Flow
	From    payment.FlowStatus // the status before
	Created []payment.Payment  // payments created, each to enqueue (its create step, sequence 1)
}

// RecomputeFlow rebuilds a flow's plan from the truth and creates the
// payments of every batch whose dependencies have settled, in one
// transaction under the flow's row lock (no gateway call: the payments are
// PENDING rows whose create step the caller enqueues after commit). A task
// whose step sequence is older than the row's is stale and does nothing.
// Each plan payment is created at most once: payment_flow_payments' primary
// key (flow, batch, user, generation) refuses a second, whatever number of
// recomputes run at once or again. A new plan version is stored only when
// the plan changed.
func (s *Store) RecomputeFlow(ctx context.Context, flowID string, seq int, actor string) (RecomputeResult, error) {
	var res RecomputeResult
	if s.tx == nil {
		// a task older than the flow's step is stale: told without taking
		// the flow's lock, so a burst of transitions (a 100-payee flow's
		// payouts) does not queue its stale recomputes behind the live one
		var cur int
		if err := s.q.QueryRowxContext(ctx, `SELECT step_seq FROM payment_flows WHERE id = $1`, flowID).Scan(&cur); err != nil {
			return res, translate(fmt.Errorf("flow step: %w", err))
		}
		if seq < cur {
			return RecomputeResult{Outcome: RecomputeStale}, nil
		}
	}
	err := s.InTx(ctx, func(tx *Store) error {
		res = RecomputeResult{}
		var r flowRow
		err := sqlx.GetContext(ctx, tx.q, &r, `SELECT `+flowColumns+flowFrom+` WHERE f.id = $1 FOR UPDATE OF f`, flowID)
		if err != nil {
			return translate(fmt.Errorf("lock flow: %w", err))
		}
		flow := r.toFlow()
		res.Flow, res.From = flow, flow.Status
		if seq < r.StepSeq {
			res.Outcome = RecomputeStale
			return nil
		}
		inv, err := tx.GetInvoice(ctx, flow.TenantID, flow.InvoiceID)
		if err != nil {
			return err
		}
		in, users, err := tx.flowInput(ctx, flow, inv)
		if err != nil {
			return err
		}
		plan := payment.PlanFlow(in)
		var payouts []payment.PlanPayment
		for _, pp := range plan.ToCreate() {
			if pp.Direction == payment.DirectionPayout {
				payouts = append(payouts, pp)
				continue
			}
			pay, methodID, err := tx.createFlowPayin(ctx, flow, inv, users[pp.UserID], pp, actor)
			if err != nil {
				return err
			}
			res.Created = append(res.Created, pay)
			in.Payments = append(in.Payments, payment.FlowPayment{PaymentID: pay.ID, Batch: batchOf(pp.Direction),
				UserID: pp.UserID, Generation: pp.Generation, Amount: pp.Amount, MethodID: methodID,
				Status: pay.Status, CreatedAt: pay.CreatedAt})
		}
		if len(payouts) > 0 {
			created, fps, err := tx.createFlowPayouts(ctx, flow, users, payouts, actor)
			if err != nil {
				return err
			}
			res.Created = append(res.Created, created...)
			in.Payments = append(in.Payments, fps...)
		}
		if len(res.Created) > 0 {
			plan = payment.PlanFlow(in)
		}
		now := tx.now()
		changed := flow.Plan == nil || !plan.Equal(*flow.Plan)
		version := flow.PlanVersion
		if changed {
			version++
			plan.Version, plan.GeneratedAt = version, now
			b, err := json.Marshal(plan)
			if err != nil {
				return fmt.Errorf("encode plan: %w", err)
			}
			if _, err := tx.q.ExecContext(ctx, `INSERT INTO payment_flow_plans (flow_id, version, status, plan, generated_at)
				VALUES ($1,$2,$3,$4,$5)`, flowID, version, string(plan.Status), b, now); err != nil {
				return translate(fmt.Errorf("insert plan: %w", err))
			}
			res.Outcome = RecomputeChanged
		} else {
			res.Outcome = RecomputeUnchanged
		}
		status := plan.Status
		if flow.Status == payment.FlowCanceled {
			status = payment.FlowCanceled // the merchant's cancel stands, whatever the plan says
		}
		var settled any
		if status == payment.FlowSettled {
			settled = now
		}
		err = tx.q.QueryRowxContext(ctx, `
			WITH f AS (
				UPDATE payment_flows SET status = $2, blocked_reason = $3, plan_version = $4,
					settled_at = COALESCE(settled_at, $5), updated_at = CASE WHEN $9 THEN $6 ELSE updated_at END,
					next_at = CASE WHEN step_seq = $7 THEN NULL ELSE next_at END
				WHERE id = $1 RETURNING id, tenant_id, step_seq),
			e AS (
				INSERT INTO payment_flow_events (flow_id, tenant_id, from_status, to_status, reason, actor, created_at)
				SELECT id, tenant_id, $8, $2, CASE WHEN $3 = '' THEN 'plan' ELSE $3 END, $10, $6 FROM f
				WHERE $8 <> $2 OR ($2 = 'failed' AND $11 <> $3))
			SELECT step_seq FROM f`, flowID, string(status), plan.BlockedReason, version, settled, now, r.StepSeq,
			string(flow.Status), changed || status != flow.Status, actor, flow.BlockedReason).Scan(&res.Flow.StepSeq)
		if err != nil {
			return translate(fmt.Errorf("update flow: %w", err))
		}
		res.Flow.Status, res.Flow.BlockedReason, res.Flow.PlanVersion = status, plan.BlockedReason, version
		res.Flow.Plan = &plan
		return nil
	})
	return res, err
}

func batchOf(direction string) string {
	if direction == payment.DirectionPayout {
		return payment.BatchPayouts
	}
	return payment.BatchPayins
}

// flowInput loads what the planner reads: the parties with their current
// methods, and the flow's payments with their statuses.
func (s *Store) flowInput(ctx context.Context, flow payment.Flow, inv payment.Invoice) (payment.FlowInput, map[string]payment.User, error) {
	in := payment.FlowInput{InvoiceID: inv.ID, Currency: inv.Currency, AmountDue: inv.AmountDue, PaidOutside: flow.PaidOutside,
		InvoiceVoid: inv.Status == "VOID", Canceled: flow.Status == payment.FlowCanceled, Now: s.now()}
	users := map[string]payment.User{}
	for _, p := range inv.PayersWithShares() {
		users[p.User.ID] = p.User
		in.Payers = append(in.Payers, payment.FlowParty{UserID: p.User.ID, UserExternalID: p.User.ExternalID, Amount: p.Amount,
			MethodID: payinMethodID(p.User)})
	}
	for _, p := range inv.Payees {
		users[p.User.ID] = p.User
		in.Payees = append(in.Payees, payment.FlowParty{UserID: p.User.ID, UserExternalID: p.User.ExternalID, Amount: p.Amount,
			MethodID: payoutMethodID(p.User)})
	}
	var rows []struct {
		PaymentID  string       `db:"payment_id"`
		Batch      string       `db:"batch"`
		UserID     string       `db:"user_id"`
		Generation int          `db:"generation"`
		MethodID   string       `db:"method_id"`
		Amount     int64        `db:"amount"`
		Status     string       `db:"status"`
		SettledAt  sql.NullTime `db:"settled_at"`
		ReturnedAt sql.NullTime `db:"returned_at"`
		RefundedAt sql.NullTime `db:"refunded_at"`
		CreatedAt  time.Time    `db:"created_at"`
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `
		SELECT fp.payment_id, fp.batch, fp.user_id, fp.generation, fp.method_id, p.amount, p.status, p.settled_at,
			p.returned_at, p.refunded_at, p.created_at
		FROM payment_flow_payments fp JOIN payments p ON p.id = fp.payment_id
		WHERE fp.flow_id = $1 ORDER BY fp.batch, fp.user_id, fp.generation`, flow.ID)
	if err != nil {
		return in, nil, translate(fmt.Errorf("load flow payments: %w", err))
	}
	for _, r := range rows {
		st := payment.Status(r.Status)
		fp := payment.FlowPayment{PaymentID: r.PaymentID, Batch: r.Batch, UserID: r.UserID, Generation: r.Generation,
			Amount: r.Amount, MethodID: r.MethodID, Status: st, Settled: flowSettled(st), CreatedAt: r.CreatedAt.UTC()}
		switch st {
		case payment.StatusReturned:
			fp.ReturnedAt = tp(r.ReturnedAt)
		case payment.StatusRefunded:
			fp.ReturnedAt = tp(r.RefundedAt)
		}
		if (st == payment.StatusReturned || st == payment.StatusRefunded) && fp.ReturnedAt == nil {
			t := r.CreatedAt.UTC()
			fp.ReturnedAt = &t
		}
		in.Payments = append(in.Payments, fp)
	}
	return in, users, nil
}

// flowSettled: the money of a payment in this status has arrived. A bank
// payment reaches SUCCEEDED only once settled (SENT before), a card payment
// is settled when it succeeds.
func flowSettled(st payment.Status) bool {
	return st == payment.StatusSucceeded || st == payment.StatusPartiallyRefunded
}

// payinMethodID names a user's payin method ("" for none): a new one after
// a failed payin lets the plan try again.
func payinMethodID(u payment.User) string {
	if u.PayinMethod == nil {
		return ""
	}
	return string(u.PayinMethod.Type) + ":" + u.PayinMethod.ID
}

// payoutMethodID names a user's payout account by rail and account
// fingerprint ("" for none).
func payoutMethodID(u payment.User) string {
	if u.PayoutAccount == nil {
		return ""
	}
	a := u.PayoutAccount
	return string(a.Method) + ":" + a.Beneficiary().AccountFingerprint(a.Method)
}

// flowPaymentMeta is the metadata of a payment a flow creates.
func flowPaymentMeta(flowID, batch string, generation int) map[string]string {
	return map[string]string{"payment_flow_id": flowID, "payment_flow_batch": batch,
		"payment_flow_generation": strconv.Itoa(generation)}
}

// createFlowPayin records one payin of a plan: a seed-001 payment applied
// to the invoice, reserving its amount, PENDING with its create step due
// now, and its payment_flow_payments row. (A batch's payouts are recorded
// together: createFlowPayouts.)
func (s *Store) createFlowPayin(ctx context.Context, flow payment.Flow, inv payment.Invoice, u payment.User,
	pp payment.PlanPayment, actor string) (payment.Payment, string, error) {
	m := u.PayinMethod
	if m == nil {
		return payment.Payment{}, "", fmt.Errorf("flow %s: payer %s has no payin method: %w", flow.ID, u.ID, payment.ErrConflict)
	}
	methodID := payinMethodID(u)
	pay, err := s.InsertPayment(ctx, NewPayment{TenantID: flow.TenantID, Surface: SurfacePayments,
		Amount: payment.Money{Minor: pp.Amount, Currency: pp.Currency}, Method: m.Type, PaymentMethodID: m.ID,
		DestinationType: "INVOICE", DestinationID: inv.ID, InvoiceID: inv.ID, ProcessPayment: true, TrackAttempts: true,
		Metadata: flowPaymentMeta(flow.ID, payment.BatchPayins, pp.Generation), Actor: actor})
	if err != nil {
		return pay, "", err
	}
	if err := s.insertLines(ctx, pay, []payment.Line{{InvoiceID: inv.ID, AppliedAmount: pp.Amount,
		PaymentAmount: pp.Amount, AppliedCurrency: inv.Currency}}); err != nil {
		return pay, "", err
	}
	_, err = s.q.ExecContext(ctx, `
		WITH fp AS (
			INSERT INTO payment_flow_payments (flow_id, batch, user_id, generation, payment_id, method_id, created_at)
			VALUES ($1,$2,$3,$4,$5,$6,$7))
		UPDATE payments SET flow_id = $1 WHERE id = $5`,
		flow.ID, payment.BatchPayins, u.ID, pp.Generation, pay.ID, methodID, s.now())
	if err != nil {
		return pay, "", translate(fmt.Errorf("record flow payment: %w", err))
	}
	pay.FlowID = flow.ID
	return pay, methodID, nil
}

// FlowStepRef names a flow's recompute step to enqueue.
type FlowStepRef struct {
	FlowID string `db:"id"`
	Seq    int    `db:"step_seq"`
}

// UserUpdate is a PATCH of a user: nil fields stay as they are.
type UserUpdate struct {
	Name, Email   *string
	Metadata      map[string]string
	PayinMethod   *payment.PayinMethod
	PayoutAccount *payment.PayoutAccount
}

// UpdateUser changes a tenant's user. When its payin method or payout
// account changed, the recompute of every flow it takes part in that can
// still move (pending, processing, or failed on a payin while no other
// flow is under way for its invoice) is made due, and returned to enqueue:
// a failed payin is tried again with a new method.
func (s *Store) UpdateUser(ctx context.Context, tenantID, ref string, up UserUpdate) (payment.User, []FlowStepRef, error) {
	var u payment.User
	var flows []FlowStepRef
	err := s.InTx(ctx, func(tx *Store) error {
		var meta any
		if up.Metadata != nil {
			b, _ := json.Marshal(up.Metadata)
			meta = b
		}
		payin, err := jsonOrNull(up.PayinMethod)
		if err != nil {
			return err
		}
		payout, err := jsonOrNull(up.PayoutAccount)
		if err != nil {
			return err
		}
		var r userRow
		err = sqlx.GetContext(ctx, tx.q, &r, `
			UPDATE users SET name = COALESCE($3, name), email = COALESCE($4, email), metadata = COALESCE($5, metadata),
				payin_method = COALESCE($6, payin_method), payout_account = COALESCE($7, payout_account)
			WHERE id = (SELECT id FROM users WHERE tenant_id = $1 AND (id = $2 OR external_id = $2) ORDER BY (id = $2) DESC LIMIT 1)
			RETURNING `+userColumns, tenantID, ref, up.Name, up.Email, meta, payin, payout)
		if err != nil {
			return translate(fmt.Errorf("update user: %w", err))
		}
		u = r.toUser()
		if up.PayinMethod == nil && up.PayoutAccount == nil {
			return nil
		}
		err = sqlx.SelectContext(ctx, tx.q, &flows, `
			UPDATE payment_flows f SET next_at = $2, step_seq = f.step_seq + 1, swept = false
			WHERE f.tenant_id = $3 AND f.invoice_id IN (
				SELECT i.id FROM invoices i WHERE i.payer_user_id = $1
				UNION SELECT invoice_id FROM invoice_payers WHERE user_id = $1
				UNION SELECT invoice_id FROM invoice_payees WHERE user_id = $1)
			  AND (f.status IN ('pending','processing')
			       OR (f.status = 'failed' AND f.blocked_reason = 'payin_failed' AND NOT EXISTS (
			           SELECT 1 FROM payment_flows o WHERE o.invoice_id = f.invoice_id AND o.status IN ('pending','processing'))))
			RETURNING f.id, f.step_seq`, u.ID, tx.now(), tenantID)
		if err != nil {
			return translate(fmt.Errorf("flows of user: %w", err))
		}
		return nil
	})
	return u, flows, err
}

// createFlowPayouts records a batch's payouts in one statement (a
// 100-payee flow's payouts are one round trip, not a hundred): each a
// PENDING seed-002 payout to its payee's account with its create step due
// now, its creation audit row, its payout_details and its
// payment_flow_payments row (whose primary key refuses a second payout of
// the same plan payment, and payout_details' unique external id a second
// payout of the same generation). A payee account blocked after a return
// is payment.ErrAccountBlocked.
func (s *Store) createFlowPayouts(ctx context.Context, flow payment.Flow, users map[string]payment.User,
	pps []payment.PlanPayment, actor string) ([]payment.Payment, []payment.FlowPayment, error) {
	n := len(pps)
	ids, methods, pmids, exts, fps, details, userIDs, methodIDs, metas := strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n)
	amounts, gens := make([]int64, n), make([]int64, n)
	live := make([]bool, n)
	for i, pp := range pps {
		u := users[pp.UserID]
		a := u.PayoutAccount
		if a == nil {
			return nil, nil, fmt.Errorf("flow %s: payee %s has no payout account: %w", flow.ID, u.ID, payment.ErrConflict)
		}
		b := a.Beneficiary()
		d, err := json.Marshal(a)
		if err != nil {
			return nil, nil, err
		}
		m, err := json.Marshal(flowPaymentMeta(flow.ID, payment.BatchPayouts, pp.Generation))
		if err != nil {
			return nil, nil, err
		}
		ids[i], methods[i], pmids[i] = NewID(payment.PrefixPayment), string(a.Method), b.AccountKey(a.Method)
		exts[i] = flow.ID + ":payouts:" + u.ID + ":" + strconv.Itoa(pp.Generation)
		fps[i], details[i], userIDs[i], methodIDs[i], metas[i] = b.AccountFingerprint(a.Method), string(d), u.ID, payoutMethodID(u), string(m)
		amounts[i], gens[i], live[i] = pp.Amount, int64(pp.Generation), a.Method.BankRail()
	}
	var blocked bool
	if err := s.q.QueryRowxContext(ctx, `SELECT EXISTS (SELECT 1 FROM blocked_accounts WHERE tenant_id = $1
		AND account_fingerprint = ANY ($2::text[]))`, flow.TenantID, pq.Array(fps)).Scan(&blocked); err != nil {
		return nil, nil, translate(fmt.Errorf("blocked accounts: %w", err))
	}
	if blocked {
		return nil, nil, fmt.Errorf("flow %s: %w", flow.ID, payment.ErrAccountBlocked)
	}
	now := s.now()
	_, err := s.q.ExecContext(ctx, `
		WITH r AS (
			SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[],
				$8::text[], $9::int8[], $10::text[], $11::jsonb[], $12::bool[])
			AS r(id, amount, method, pmid, ext, fp, details, user_id, gen, method_id, meta, live)),
		p AS (
			INSERT INTO payments (id, tenant_id, surface, amount, currency, method, payment_method_id, destination_type,
				destination_id, process_payment, track_attempts, status, next_step, next_step_at, step_seq, metadata,
				created_by, updated_by, created_at, updated_at, flow_id)
			SELECT r.id, $13, 'payouts', r.amount, $14, r.method, r.pmid, 'BANK_ACCOUNT', '', r.live, true, 'PENDING',
				'create', $15, 1, r.meta, $16, $16, $15, $15, $17 FROM r
			RETURNING id, tenant_id, created_by, created_at),
		e AS (
			INSERT INTO payment_events (payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at)
			SELECT id, tenant_id, NULL, 'PENDING', 'created', 0, created_by, created_at FROM p),
		d AS (
			INSERT INTO payout_details (payment_id, tenant_id, external_payment_id, external_source, imported_status,
				account_fingerprint, details)
			SELECT r.id, $13, r.ext, 'payment_flow', NULL, r.fp, r.details FROM r)
		INSERT INTO payment_flow_payments (flow_id, batch, user_id, generation, payment_id, method_id, created_at)
		SELECT $17, 'payouts', r.user_id, r.gen, r.id, r.method_id, $15 FROM r`,
		pq.Array(ids), pq.Array(amounts), pq.Array(methods), pq.Array(pmids), pq.Array(exts), pq.Array(fps), pq.Array(details),
		pq.Array(userIDs), pq.Array(gens), pq.Array(methodIDs), pq.Array(metas), pq.Array(live),
		flow.TenantID, pps[0].Currency, now, actor, flow.ID)
	if err != nil {
		return nil, nil, translate(fmt.Errorf("insert flow payouts: %w", err))
	}
	pays := make([]payment.Payment, n)
	fpays := make([]payment.FlowPayment, n)
	for i, pp := range pps {
		pays[i] = payment.Payment{ID: ids[i], TenantID: flow.TenantID, Surface: SurfacePayouts,
			Amount: payment.Money{Minor: pp.Amount, Currency: pp.Currency}, Method: payment.Method(methods[i]),
			Status: payment.StatusPending, StepSeq: 1, FlowID: flow.ID, CreatedAt: now,
			Metadata: flowPaymentMeta(flow.ID, payment.BatchPayouts, pp.Generation)}
		fpays[i] = payment.FlowPayment{PaymentID: ids[i], Batch: payment.BatchPayouts, UserID: pp.UserID,
			Generation: pp.Generation, Amount: pp.Amount, MethodID: methodIDs[i], Status: payment.StatusPending, CreatedAt: now}
	}
	return pays, fpays, nil
}
