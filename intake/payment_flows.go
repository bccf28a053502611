package intake

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// Payment flows (seed 000): settle one invoice through a plan of batches,
// payins from its payers then payouts to its payees once the payins have
// settled. The create records the flow and runs its first recompute in the
// same transaction (the plan of version 1 and its payins, PENDING), so the
// 201 shows the plan; the payins' create steps are enqueued after commit.
// Every later plan is the flow:recompute task's.

type flowInvoiceRequest struct {
	ID         *string `json:"id"`
	ExternalID *string `json:"external_id"`
}

type createFlowRequest struct {
	ExternalID *string             `json:"external_id"`
	Invoice    *flowInvoiceRequest `json:"invoice"`
	Type       *string             `json:"type"`
}

// validFlow is a create request that passed validation; its JSON form is
// the request fingerprint.
type validFlow struct {
	ExternalID        string `json:"external_id"`
	InvoiceID         string `json:"invoice_id,omitempty"`
	InvoiceExternalID string `json:"invoice_external_id,omitempty"`
	Type              string `json:"type"`
}

func (req createFlowRequest) valid(limits) (validFlow, map[string]string) {
	bad := map[string]string{}
	v := validFlow{ExternalID: str(req.ExternalID), Type: str(req.Type)}
	if code := checkText(req.ExternalID, true, 255); code != "" {
		bad["external_id"] = "external_id_" + code
	}
	switch {
	case req.Invoice == nil:
		bad["invoice"] = "invoice_required"
	case req.Invoice.ID != nil && req.Invoice.ExternalID != nil:
		bad["invoice"] = "invoice_id_and_external_id"
	case req.Invoice.ID != nil:
		v.InvoiceID = str(req.Invoice.ID)
		if code := checkText(req.Invoice.ID, true, 100); code != "" {
			bad["invoice.id"] = "invoice_id_" + code
		}
	case req.Invoice.ExternalID != nil:
		v.InvoiceExternalID = str(req.Invoice.ExternalID)
		if code := checkText(req.Invoice.ExternalID, true, 255); code != "" {
			bad["invoice.external_id"] = "invoice_external_id_" + code
		}
	default:
		bad["invoice"] = "invoice_required"
	}
	switch {
	case v.Type == "":
		bad["type"] = "type_required"
	case v.Type != payment.FlowTypeSingleInvoice:
		bad["type"] = "type_unsupported"
	}
	return v, bad
}

// flowNeeds checks, under the invoice's row lock, that the flow can run:
// the invoice can still be paid and has no payment under way, and every
// payer has a payin method and every payee a payout account its currency's
// rail carries. Each missing detail is one field, named by the user's
// external id: users.<external_id>.payin_method.
func flowNeeds(inv payment.Invoice) error {
	switch {
	case inv.Status == "VOID":
		return validation(map[string]string{"invoice": "invoice_void"})
	case inv.Status == "PAID":
		return validation(map[string]string{"invoice": "invoice_paid"})
	case inv.AmountReserved != inv.AmountPaid:
		return validation(map[string]string{"invoice": "invoice_payments_in_flight"})
	}
	bad := map[string]string{}
	payers := inv.PayersWithShares()
	if len(payers) == 0 {
		bad["invoice.payers"] = "invoice_payers_required"
	}
	for _, p := range payers {
		field := "users." + p.User.ExternalID + ".payin_method"
		switch m := p.User.PayinMethod; {
		case m == nil:
			bad[field] = "payin_method_required"
		case m.Type.RailCurrency() != "" && m.Type.RailCurrency() != inv.Currency:
			bad[field] = "payin_method_currency_not_supported"
		}
	}
	for _, p := range inv.Payees {
		field := "users." + p.User.ExternalID + ".payout_account"
		switch a := p.User.PayoutAccount; {
		case a == nil:
			bad[field] = "payout_account_required"
		case a.Method.RailCurrency() != "" && a.Method.RailCurrency() != inv.Currency:
			bad[field] = "payout_account_currency_not_supported"
		}
	}
	if len(bad) > 0 {
		return validation(bad)
	}
	return nil
}

// handleCreateFlow records a flow for an invoice. external_id is the
// business key, forever: the same body again answers 200 with the flow as
// it is now (Idempotent-Replayed: true), another body is a 422.
func (s *Server) handleCreateFlow(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/payment-flows"
	p := principal(r.Context())
	v, err := decodeValid(s, w, r, &createFlowRequest{})
	if err != nil {
		return err
	}
	fp := fingerprint(route, v)
	var created []payment.Payment
	var flowID string
	rw := &replayWriter{ResponseWriter: w}
	return s.idempotent(rw, r, route, fp, func(ctx context.Context, tx *store.Store) (int, any, error) {
		created = nil
		nf := store.NewFlow{TenantID: p.TenantID, ExternalID: v.ExternalID, InvoiceRef: v.InvoiceID, Type: v.Type,
			Fingerprint: fp, Actor: p.KeyID, Check: flowNeeds}
		if v.InvoiceID == "" {
			nf.InvoiceRef, nf.ByExternal = v.InvoiceExternalID, true
		}
		f, err := tx.CreateFlow(ctx, nf)
		var exists *store.FlowExistsError
		switch {
		case errors.As(err, &exists):
			if string(exists.Flow.Fingerprint) != string(fp) {
				return 0, nil, errKeyReused
			}
			rw.replayed = true
			s.metrics.IdempotentReplays.WithLabelValues(route).Inc()
			return http.StatusOK, toFlowEnvelope(exists.Flow), nil
		case errors.Is(err, store.ErrInvoiceHasFlow):
			return 0, nil, errf(http.StatusConflict, typeConflict, "invoice_has_active_flow",
				"the invoice has a payment flow under way; cancel it first")
		case errors.Is(err, payment.ErrNotFound):
			field := "invoice.id"
			if nf.ByExternal {
				field = "invoice.external_id"
			}
			return 0, nil, validation(map[string]string{field: "invoice_not_found"})
		case err != nil:
			return 0, nil, err
		}
		res, err := tx.RecomputeFlow(ctx, f.ID, f.StepSeq, p.KeyID)
		if err != nil {
			return 0, nil, err
		}
		created, flowID = res.Created, f.ID
		f.Status, f.BlockedReason, f.PlanVersion, f.Plan = res.Flow.Status, res.Flow.BlockedReason, res.Flow.PlanVersion, res.Flow.Plan
		return http.StatusCreated, toFlowEnvelope(f), nil
	}, func(ctx context.Context, _ any) {
		if flowID == "" {
			return
		}
		s.metrics.FlowsCreated.Inc()
		for _, pay := range created {
			s.metrics.FlowPaymentsCreated.WithLabelValues(pay.Metadata["payment_flow_batch"]).Inc()
			s.metrics.PaymentsCreated.WithLabelValues(string(pay.Method), pay.Surface).Inc()
			s.enqueueStep(ctx, payment.StepCreate, pay.ID, pay.StepSeq)
		}
	})
}

func (s *Server) handleGetFlow(w http.ResponseWriter, r *http.Request) error {
	f, err := s.store.GetFlow(r.Context(), principal(r.Context()).TenantID, r.PathValue("id"))
	return writeOne(w, f, err, toFlowEnvelope)
}

// flowStatuses are the status filter's values.
var flowStatuses = map[string]bool{"pending": true, "processing": true, "settled": true, "failed": true, "canceled": true}

func (s *Server) handleListFlows(w http.ResponseWriter, r *http.Request) error {
	p := principal(r.Context())
	q := parseListQuery(r)
	f := store.FlowFilter{TenantID: p.TenantID, Limit: q.limit, StartingAfter: q.after}
	if st := q.Get("status"); st != "" {
		if !flowStatuses[st] {
			q.bad["status"] = "status_invalid"
		}
		f.Status = st
	}
	if inv := q.Get("invoice"); inv != "" {
		if !validID(inv) {
			q.bad["invoice"] = "invoice_invalid"
		}
		f.InvoiceID = inv
	}
	return writeList(w, r, q, func(ctx context.Context, id string) (bool, error) {
		return s.store.FlowExists(ctx, p.TenantID, id)
	}, func(ctx context.Context) ([]payment.Flow, bool, error) {
		return s.store.ListFlows(ctx, f)
	}, toFlowResponse)
}

// handleFlowPlans answers every plan version of a flow, oldest first.
func (s *Server) handleFlowPlans(w http.ResponseWriter, r *http.Request) error {
	tenant := principal(r.Context()).TenantID
	id := r.PathValue("id")
	if _, err := s.store.GetFlow(r.Context(), tenant, id); err != nil {
		return err
	}
	plans, err := s.store.FlowPlans(r.Context(), tenant, id)
	if err != nil {
		return err
	}
	out := make([]planResponse, len(plans))
	for i, pl := range plans {
		out[i] = toPlanResponse(pl)
	}
	writeJSON(w, http.StatusOK, struct {
		Data []planResponse `json:"data"`
	}{out})
	return nil
}

// handleCancelFlow stops a flow's batches that have not started. Payments
// under way finish; money they collected stays accounted in the plan.
func (s *Server) handleCancelFlow(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/payment-flows/{id}/cancel"
	p := principal(r.Context())
	id := r.PathValue("id")
	var seq int
	return s.idempotent(w, r, route, fingerprint(route, id), func(ctx context.Context, tx *store.Store) (int, any, error) {
		f, sq, err := tx.CancelFlow(ctx, p.TenantID, id, p.KeyID)
		if errors.Is(err, payment.ErrConflict) && f.ID != "" {
			return 0, nil, errf(http.StatusConflict, typeConflict, "flow_not_cancelable",
				"the payment flow is "+string(f.Status)+"; only a pending or processing flow can be canceled")
		}
		if err != nil {
			return 0, nil, err
		}
		seq = sq
		return http.StatusOK, toFlowEnvelope(f), nil
	}, func(ctx context.Context, _ any) {
		if seq > 0 {
			s.metrics.FlowTransitions.WithLabelValues(string(payment.FlowCanceled)).Inc()
			s.enqueueFlow(ctx, id, seq)
		}
	})
}

// enqueueFlow enqueues a flow's recompute step after commit; the sweeper
// recovers a lost one.
func (s *Server) enqueueFlow(ctx context.Context, id string, seq int) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	res := "ok"
	if err := s.enqueue.FlowRecompute(ctx, id, seq); err != nil {
		res = "error"
		s.log.WarnContext(ctx, "enqueue failed; the sweeper will enqueue it", "flow_id", id, "step", "flow", "err", err)
	}
	s.metrics.Enqueues.WithLabelValues("flow", res).Inc()
}

// The wire shape of seed 000: {"data": flow}; statuses lower case; plan
// amounts strings of minor units. payd adds blocked_reason (flow and
// batch) and the plan's money summary (amounts, also strings of minor
// units); the seed's fields are all there, with the seed's types.

type flowEnvelope struct {
	Data flowResponse `json:"data"`
}

type flowInvoiceResponse struct {
	ID         string  `json:"id"`
	ExternalID *string `json:"external_id"`
}

type flowResponse struct {
	ID            string              `json:"id"`
	Created       string              `json:"created"`
	ExternalID    string              `json:"external_id"`
	Invoice       flowInvoiceResponse `json:"invoice"`
	Modified      string              `json:"modified"`
	PaymentPlan   planResponse        `json:"payment_plan"`
	Status        string              `json:"status"`
	BlockedReason *string             `json:"blocked_reason"`
	Type          string              `json:"type"`
}

type planResponse struct {
	Batches     []batchResponse `json:"batches"`
	GeneratedAt string          `json:"generated_at"`
	InvoiceID   string          `json:"invoice_id"`
	Version     int             `json:"version"`
	Amounts     planAmounts     `json:"amounts"`
}

// planAmounts is the plan's money, in minor units of the invoice's
// currency: due (what the payins collect), collected, paid_out,
// platform_remainder (the invoice less its payees: the platform's fee) and
// shortfall (paid out but not collected: a payin returned after payouts).
type planAmounts struct {
	Due               string `json:"due"`
	Collected         string `json:"collected"`
	PaidOut           string `json:"paid_out"`
	PlatformRemainder string `json:"platform_remainder"`
	Shortfall         string `json:"shortfall"`
}

type batchResponse struct {
	BatchID       string            `json:"batch_id"`
	DependsOn     []string          `json:"depends_on"`
	Label         string            `json:"label"`
	Payments      []planPaymentResp `json:"payments"`
	Status        string            `json:"status"`
	BlockedReason *string           `json:"blocked_reason"`
}

type planPaymentResp struct {
	Amount    string           `json:"amount"`
	Currency  string           `json:"currency"`
	Direction string           `json:"direction"`
	PaymentID string           `json:"payment_id"`
	Status    string           `json:"status"`
	User      planUserResponse `json:"user"`
}

type planUserResponse struct {
	ID         string `json:"id"`
	ExternalID string `json:"external_id"`
}

func toFlowEnvelope(f payment.Flow) flowEnvelope { return flowEnvelope{Data: toFlowResponse(f)} }

func toFlowResponse(f payment.Flow) flowResponse {
	out := flowResponse{ID: f.ID, Created: ts(f.CreatedAt), ExternalID: f.ExternalID,
		Invoice: flowInvoiceResponse{ID: f.InvoiceID, ExternalID: strp(f.InvoiceExtID)}, Modified: ts(f.UpdatedAt),
		Status: string(f.Status), BlockedReason: strp(f.BlockedReason), Type: f.Type}
	if f.Plan != nil {
		out.PaymentPlan = toPlanResponse(*f.Plan)
	} else {
		out.PaymentPlan = planResponse{Batches: []batchResponse{}, InvoiceID: f.InvoiceID}
	}
	return out
}

func minor(n int64) string { return strconv.FormatInt(n, 10) }

func toPlanResponse(p payment.Plan) planResponse {
	out := planResponse{Batches: make([]batchResponse, 0, len(p.Batches)), GeneratedAt: ts(p.GeneratedAt),
		InvoiceID: p.InvoiceID, Version: p.Version,
		Amounts: planAmounts{Due: minor(p.Due), Collected: minor(p.Collected), PaidOut: minor(p.PaidOut),
			PlatformRemainder: minor(p.PlatformRemainder), Shortfall: minor(p.Shortfall)}}
	for _, b := range p.Batches {
		br := batchResponse{BatchID: b.ID, DependsOn: append([]string{}, b.DependsOn...), Label: b.Label,
			Payments: make([]planPaymentResp, 0, len(b.Payments)), Status: b.Status, BlockedReason: strp(b.BlockedReason)}
		sort.Strings(br.DependsOn)
		for _, pp := range b.Payments {
			br.Payments = append(br.Payments, planPaymentResp{Amount: minor(pp.Amount), Currency: pp.Currency,
				Direction: pp.Direction, PaymentID: pp.PaymentID, Status: pp.Status,
				User: planUserResponse{ID: pp.UserID, ExternalID: pp.UserExternalID}})
		}
		out.Batches = append(out.Batches, br)
	}
	return out
}
