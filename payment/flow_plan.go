package payment

import (
	"math"
	"slices"
	"sort"
)

// The payment-flow planner (seed 000, single_invoice_settlement): PlanFlow
// turns what the flow has done so far (FlowInput, read from Postgres) into
// its plan. It is a pure function: no clock (the time is in.Now), no I/O, no
// randomness, no floating point; the same input always gives the same plan,
// and no input makes it panic.
//
// The plan has two batches:
//
//   - "payins" (depends on nothing): one payin per payer for its share of
//     what the flow must collect, Due = AmountDue − PaidOutside, split among
//     the payers in proportion to their FlowParty.Amount by largest
//     remainder (Allocate). When the payers' amounts add up to Due, as they
//     do when nothing was paid outside the flow, every payer's share is its
//     amount exactly. A payer whose share comes out zero gets no payin.
//   - "payouts" (depends on payins): one payout per payee for its
//     FlowParty.Amount, made only once the payins batch has settled. What
//     the payees do not get, AmountDue − Σ payees, is the platform's
//     (PlatformRemainder).
//
// Every payment of every batch is listed from the start, those not yet
// created with PaymentID "" and status "pending": what the flow:recompute
// task creates is Plan.ToCreate.
//
// Generations and history. A user's payments in a batch are numbered by
// Generation: 1 for the first, 2 for the replacement of a failed first one,
// and so on. The plan lists every generation, oldest first, so a failed
// payin stays visible next to its replacement; only the latest generation of
// each user counts for the batch's status (an earlier generation is by
// construction FAILED or CANCELED, or it would not have been replaced).
// Money counts every generation: a payment's money is real whichever
// generation it is.
//
// Failures:
//
//   - a payer's latest payin FAILED or CANCELED: when the payer's MethodID
//     now differs from the one that payin used (and is not empty), the plan
//     holds a replacement, generation+1, pending; otherwise the payins batch
//     is blocked (BlockedPayinFailed) and the flow failed until the payer's
//     method changes;
//   - a payin returned (or refunded in full) before any payout was created:
//     payins blocked (BlockedPayinReturned), flow failed; no replacement;
//   - a payin returned once payouts were created: payins blocked and flow
//     failed with BlockedPayinReturnedAfterPayout (which wins over the
//     batch's other reasons); Shortfall is the amount of the returned payins
//     (money that went, or is going, out without having come in); the
//     payouts keep their real statuses;
//   - a payout FAILED, RETURNED (or CANCELED, which would otherwise stall the
//     flow forever): payouts failed (BlockedPayoutFailed), flow failed;
//     payouts are never replaced automatically;
//   - Due > 0 and no payer with a positive amount: payins blocked
//     (BlockedNoPayers), flow failed — nobody could collect the money.
//
// Stopping. A canceled flow (in.Canceled) or a voided invoice
// (in.InvoiceVoid) creates nothing more: the payments not yet created are
// listed as "canceled", and a batch none of whose payments was ever created
// is "canceled". Payments in flight keep their statuses and their money is
// counted as it lands. A canceled flow is "canceled" at once, even while
// payments are still in flight (the decision to stop is what the status
// shows; Collected and PaidOut show where the money is, and the recompute
// keeps updating them); it keeps the BlockedReason it had, if any (a
// shortfall stays visible). A voided invoice makes the flow "failed" with
// BlockedInvoiceVoid, unless a batch already has a reason of its own, which
// stays the flow's. Neither undoes a flow that had already settled: a
// settled flow stays settled.
//
// The flow's status: settled when both batches are; else canceled when
// in.Canceled; else failed when the invoice is void or a batch has a reason
// (BlockedReason: the payins' reason, else the payouts', else
// BlockedInvoiceVoid); else processing once any payment exists; else
// pending.
//
// Odd input is planned, not refused: Due is never negative (more paid
// outside than due collects nothing); parties listed twice with the same
// UserID are one party with the sum of their amounts, at the first one's
// place; a payee whose amount is not positive gets no payout; payments of
// users who are not parties of their batch are listed after the parties'
// (by user id) and counted in the money, but do not decide the batch's
// status except by being in flight when the flow stopped; amounts are added
// with saturation, so nothing wraps around.

// BlockedNoPayers: Due is positive but no payer has a positive amount, so
// no payin can collect it (an addition to the reasons of flow.go).
const BlockedNoPayers = "no_payers"

// FlowPaymentStatus maps a payment's canonical status to its plan status
// (seed 000's lower-case vocabulary); settled says whether the money has
// arrived (FlowPayment.Settled). A SUCCEEDED (or PARTIALLY_REFUNDED) payment
// whose money has not arrived yet, such as a bank payment still on its way,
// is "processing". A status that is not canonical maps to "processing": the
// planner does not count what it does not understand as done.
func FlowPaymentStatus(s Status, settled bool) string {
	switch s {
	case StatusPending:
		return PlanPaymentPending
	case StatusProcessing, StatusRequiresAction, StatusSent, StatusRequiresReview:
		return PlanPaymentProcessing
	case StatusSucceeded, StatusPartiallyRefunded:
		if settled {
			return PlanPaymentSettled
		}
		return PlanPaymentProcessing
	case StatusReturned, StatusRefunded:
		return PlanPaymentReturned
	case StatusFailed:
		return PlanPaymentFailed
	case StatusCanceled:
		return PlanPaymentCanceled
	}
	return PlanPaymentProcessing
}

// planStatus is a created payment's plan status: returned as soon as
// ReturnedAt is set, whatever the status says, else FlowPaymentStatus.
func planStatus(p FlowPayment) string {
	if p.ReturnedAt != nil {
		return PlanPaymentReturned
	}
	return FlowPaymentStatus(p.Status, p.Settled)
}

// PlanFlow computes the plan of a single-invoice settlement flow from what
// it has done so far. See the comment at the top of this file for the rules.
// Version is left zero (the store sets it) and GeneratedAt is in.Now.
func PlanFlow(in FlowInput) Plan {
	plan := Plan{
		GeneratedAt:       in.Now,
		InvoiceID:         in.InvoiceID,
		Due:               max(subSat(in.AmountDue, in.PaidOutside), 0),
		PlatformRemainder: in.AmountDue,
	}
	stopped := in.Canceled || in.InvoiceVoid
	payers, payees := mergeParties(in.Payers), mergeParties(in.Payees)
	byUser := map[string][]FlowPayment{} // batch + "\x00" + user → that user's payments, oldest generation first
	payoutsExist := false
	for _, p := range in.Payments {
		if p.Batch != BatchPayins && p.Batch != BatchPayouts {
			continue // not a payment of this plan
		}
		k := p.Batch + "\x00" + p.UserID
		byUser[k] = append(byUser[k], p)
		payoutsExist = payoutsExist || p.Batch == BatchPayouts
	}
	for _, ps := range byUser {
		sortGenerations(ps)
	}

	// Payins: the payers' shares of Due.
	shares, ok := payinShares(plan.Due, payers)
	payins := PlanBatch{ID: BatchPayins, Label: "Payins", DependsOn: []string{}, Payments: []PlanPayment{}}
	if !ok {
		payins.BlockedReason = BlockedNoPayers
	}
	var payinsLatest []string // the plan statuses of the payers' latest payins
	for i, payer := range payers {
		history := byUser[BatchPayins+"\x00"+payer.UserID]
		delete(byUser, BatchPayins+"\x00"+payer.UserID)
		payins.Payments = appendHistory(payins.Payments, history, payer, in.Currency, DirectionPayin)
		if len(history) == 0 {
			if shares[i] > 0 {
				payins.Payments = append(payins.Payments, planned(payer, shares[i], 1, in.Currency, DirectionPayin))
				payinsLatest = append(payinsLatest, PlanPaymentPending)
			}
			continue
		}
		last := history[len(history)-1]
		st := planStatus(last)
		switch st {
		case PlanPaymentFailed, PlanPaymentCanceled:
			if shares[i] <= 0 {
				continue // the payer owes nothing now: nothing to replace
			}
			if payer.MethodID != "" && payer.MethodID != last.MethodID {
				// The payer has a new method: try again with it.
				payins.Payments = append(payins.Payments, planned(payer, shares[i], last.Generation+1, in.Currency, DirectionPayin))
				st = PlanPaymentPending
			} else {
				block(&payins, BlockedPayinFailed)
			}
		case PlanPaymentReturned:
			if payoutsExist {
				// Money is missing: this reason wins over any other.
				payins.BlockedReason = BlockedPayinReturnedAfterPayout
			} else {
				block(&payins, BlockedPayinReturned)
			}
		}
		payinsLatest = append(payinsLatest, st)
	}
	// Payments of users who are not (or no longer) payers: listed so that
	// their money is visible, but they do not hold the batch up.
	payins.Payments = appendStrays(payins.Payments, byUser, BatchPayins, in.Currency, DirectionPayin)
	payins.Status = batchStatus(payins, payinsLatest, true, stopped)

	// Payouts: each payee's amount, once the payins have settled.
	payouts := PlanBatch{ID: BatchPayouts, Label: "Payouts", DependsOn: []string{BatchPayins}, Payments: []PlanPayment{}}
	var payoutsLatest []string
	for _, payee := range payees {
		plan.PlatformRemainder = subSat(plan.PlatformRemainder, payee.Amount)
		history := byUser[BatchPayouts+"\x00"+payee.UserID]
		delete(byUser, BatchPayouts+"\x00"+payee.UserID)
		payouts.Payments = appendHistory(payouts.Payments, history, payee, in.Currency, DirectionPayout)
		if len(history) == 0 {
			if payee.Amount <= 0 {
				continue // nothing to pay (the API refuses such payees anyway)
			}
			payouts.Payments = append(payouts.Payments, planned(payee, payee.Amount, 1, in.Currency, DirectionPayout))
			payoutsLatest = append(payoutsLatest, PlanPaymentPending)
			continue
		}
		st := planStatus(history[len(history)-1])
		if st == PlanPaymentFailed || st == PlanPaymentReturned || st == PlanPaymentCanceled {
			payouts.Status = BatchFailed
			payouts.BlockedReason = first(payouts.BlockedReason, BlockedPayoutFailed)
		}
		payoutsLatest = append(payoutsLatest, st)
	}
	payouts.Payments = appendStrays(payouts.Payments, byUser, BatchPayouts, in.Currency, DirectionPayout)
	payouts.Status = batchStatus(payouts, payoutsLatest, payins.Status == BatchSettled, stopped)

	// A flow that creates nothing more lists what it will not create as
	// canceled.
	if stopped {
		for _, b := range []*PlanBatch{&payins, &payouts} {
			for i := range b.Payments {
				if b.Payments[i].PaymentID == "" {
					b.Payments[i].Status = PlanPaymentCanceled
				}
			}
		}
	}
	plan.Batches = []PlanBatch{payins, payouts}

	// Money: every generation of every payment counts.
	for _, p := range in.Payments {
		switch st := planStatus(p); {
		case p.Batch == BatchPayins && st == PlanPaymentSettled:
			plan.Collected = addSat(plan.Collected, p.Amount)
		case p.Batch == BatchPayins && st == PlanPaymentReturned && payoutsExist:
			plan.Shortfall = addSat(plan.Shortfall, p.Amount)
		case p.Batch == BatchPayouts && st == PlanPaymentSettled:
			plan.PaidOut = addSat(plan.PaidOut, p.Amount)
		}
	}

	// The flow's status: settled wins (nothing undoes it), then canceled,
	// then failed (the first batch's reason, else the voided invoice), then
	// processing as soon as a payment exists.
	plan.BlockedReason = first(payins.BlockedReason, payouts.BlockedReason)
	switch {
	case payins.Status == BatchSettled && payouts.Status == BatchSettled:
		plan.Status = FlowSettled
		plan.BlockedReason = ""
	case in.Canceled:
		plan.Status = FlowCanceled
	case in.InvoiceVoid:
		plan.Status = FlowFailed
		plan.BlockedReason = first(plan.BlockedReason, BlockedInvoiceVoid)
	case plan.BlockedReason != "":
		plan.Status = FlowFailed
	case anyCreated(payins) || anyCreated(payouts):
		plan.Status = FlowProcessing
	default:
		plan.Status = FlowPending
	}
	return plan
}

// batchStatus is a batch's status from the plan statuses of its users'
// latest payments (latest) and whether the batches it depends on have
// settled (ready), the first that applies of:
//
//   - settled: every latest payment settled (or there is none to make: Due
//     0, no payees), nothing blocks the batch, and it could start;
//   - in a stopped flow (canceled, invoice void): processing while one of its
//     payments is in flight, else canceled;
//   - the status the caller set (failed, for a failed payout);
//   - blocked, when the batch has a reason;
//   - processing once a payment of the batch exists (of any generation);
//   - pending.
func batchStatus(b PlanBatch, latest []string, ready, stopped bool) string {
	all, inFlight := true, false
	for _, st := range latest {
		all = all && st == PlanPaymentSettled
		inFlight = inFlight || st == PlanPaymentProcessing
	}
	for _, p := range b.Payments {
		// A stray payment (of a user who is not a party) in flight keeps a
		// stopped batch processing too.
		inFlight = inFlight || (p.PaymentID != "" && p.Status == PlanPaymentProcessing)
	}
	created := anyCreated(b)
	switch {
	case all && ready && b.BlockedReason == "":
		// Every latest payment settled (or there is none to make: Due 0,
		// no payees) and the batch could start.
		return BatchSettled
	case stopped:
		if inFlight {
			return BatchProcessing
		}
		return BatchCanceled
	case b.Status != "":
		return b.Status // failed, set by the caller
	case b.BlockedReason != "":
		return BatchBlocked
	case created:
		return BatchProcessing
	}
	return BatchPending
}

// payinShares splits due among the payers in proportion to their amounts
// (largest remainder, Allocate). A negative amount weighs as zero. ok is
// false when due is positive and no payer has a positive amount; the shares
// are then all zero. If the amounts sum past 2^64 (impossible with amounts
// of at most 1e14 and fewer than 184,467 payers), due is split equally
// among the payers with a positive amount instead, so the planner still
// never fails.
func payinShares(due int64, payers []FlowParty) (shares []int64, ok bool) {
	shares = make([]int64, len(payers))
	weights := make([]int64, len(payers))
	positive := false
	for i, p := range payers {
		weights[i] = max(p.Amount, 0)
		positive = positive || weights[i] > 0
	}
	if due <= 0 {
		return shares, true
	}
	if !positive {
		return shares, false
	}
	parts, err := Allocate(due, weights)
	if err != nil {
		for i := range weights {
			weights[i] = min(weights[i], 1)
		}
		if parts, err = Allocate(due, weights); err != nil {
			return shares, false // not reachable: the weights are 0 or 1, one of them 1
		}
	}
	return parts, true
}

// mergeParties merges the parties that have the same UserID into the first
// of them, adding up their amounts: a user has one payment line per batch.
func mergeParties(parties []FlowParty) []FlowParty {
	out := make([]FlowParty, 0, len(parties))
	at := map[string]int{}
	for _, p := range parties {
		if i, seen := at[p.UserID]; seen {
			out[i].Amount = addSat(out[i].Amount, p.Amount)
			continue
		}
		at[p.UserID] = len(out)
		out = append(out, p)
	}
	return out
}

// sortGenerations orders one user's payments oldest first: by generation,
// then creation time, then payment id, so the last is the latest even if
// the store ever gave two payments the same generation.
func sortGenerations(ps []FlowPayment) {
	sort.SliceStable(ps, func(a, b int) bool {
		x, y := ps[a], ps[b]
		if x.Generation != y.Generation {
			return x.Generation < y.Generation
		}
		if !x.CreatedAt.Equal(y.CreatedAt) {
			return x.CreatedAt.Before(y.CreatedAt)
		}
		return x.PaymentID < y.PaymentID
	})
}

// appendHistory appends a user's created payments to a batch's list.
func appendHistory(list []PlanPayment, history []FlowPayment, party FlowParty, currency, direction string) []PlanPayment {
	for _, p := range history {
		list = append(list, PlanPayment{
			Amount:         p.Amount,
			Currency:       currency,
			Direction:      direction,
			PaymentID:      p.PaymentID,
			Status:         planStatus(p),
			UserID:         p.UserID,
			UserExternalID: party.UserExternalID,
			Generation:     p.Generation,
		})
	}
	return list
}

// appendStrays appends, by user id, the payments of a batch's users that are
// not among its parties (and takes them out of byUser).
func appendStrays(list []PlanPayment, byUser map[string][]FlowPayment, batch, currency, direction string) []PlanPayment {
	var users []string
	for k, ps := range byUser {
		if ps[0].Batch == batch {
			users = append(users, k)
		}
	}
	slices.Sort(users)
	for _, k := range users {
		list = appendHistory(list, byUser[k], FlowParty{}, currency, direction)
		delete(byUser, k)
	}
	return list
}

// planned is a payment of the plan not yet created.
func planned(party FlowParty, amount int64, generation int, currency, direction string) PlanPayment {
	return PlanPayment{
		Amount:         amount,
		Currency:       currency,
		Direction:      direction,
		Status:         PlanPaymentPending,
		UserID:         party.UserID,
		UserExternalID: party.UserExternalID,
		Generation:     generation,
	}
}

// block gives a batch its first blocked reason.
func block(b *PlanBatch, reason string) { b.BlockedReason = first(b.BlockedReason, reason) }

// first returns a if it is set, else b.
func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// anyCreated reports whether a payment of the batch exists.
func anyCreated(b PlanBatch) bool {
	return slices.ContainsFunc(b.Payments, func(p PlanPayment) bool { return p.PaymentID != "" })
}

// addSat and subSat add and subtract without wrapping around: a result past
// the int64 range sticks at its end. Amounts of at most 1e14 never get
// there; this only keeps absurd inputs from turning into plausible ones.
func addSat(a, b int64) int64 {
	s := a + b
	switch {
	case a > 0 && b > 0 && s < 0:
		return math.MaxInt64
	case a < 0 && b < 0 && s >= 0:
		return math.MinInt64
	}
	return s
}

func subSat(a, b int64) int64 {
	if b == math.MinInt64 {
		if a >= 0 {
			return math.MaxInt64
		}
		return a - b // a < 0: a − MinInt64 = a + 2^63 fits
	}
	return addSat(a, -b)
}

// ToCreate returns the payments the flow:recompute task should create now:
// those not yet created (PaymentID "") and pending, in the batches that may
// start — every batch they depend on settled, the batch itself neither
// blocked, failed, canceled nor settled — of a flow that is neither
// canceled, failed nor settled. In plan order; a payment of generation n is
// in the plan without a PaymentID only until the payment of generation n
// exists, so feeding the created payments back to PlanFlow never asks for it
// again.
func (p Plan) ToCreate() []PlanPayment {
	if p.Status == FlowCanceled || p.Status == FlowFailed || p.Status == FlowSettled {
		return nil
	}
	status := map[string]string{}
	for _, b := range p.Batches {
		status[b.ID] = b.Status
	}
	var out []PlanPayment
	for _, b := range p.Batches {
		switch b.Status {
		case BatchBlocked, BatchFailed, BatchCanceled, BatchSettled:
			continue
		}
		if b.BlockedReason != "" {
			continue
		}
		ready := true
		for _, d := range b.DependsOn {
			ready = ready && status[d] == BatchSettled
		}
		if !ready {
			continue
		}
		for _, pp := range b.Payments {
			if pp.PaymentID == "" && pp.Status == PlanPaymentPending {
				out = append(out, pp)
			}
		}
	}
	return out
}

// Equal reports whether two plans say the same thing: everything but
// Version and GeneratedAt, which change with every recompute. The recompute
// stores a new version only when the plan is not Equal to the stored one.
// A nil slice equals an empty one (a plan read back from JSON may have
// either).
func (p Plan) Equal(q Plan) bool {
	if p.InvoiceID != q.InvoiceID || p.Status != q.Status || p.BlockedReason != q.BlockedReason ||
		p.Due != q.Due || p.Collected != q.Collected || p.PaidOut != q.PaidOut ||
		p.PlatformRemainder != q.PlatformRemainder || p.Shortfall != q.Shortfall {
		return false
	}
	return slices.EqualFunc(p.Batches, q.Batches, func(a, b PlanBatch) bool {
		return a.ID == b.ID && a.Label == b.Label && a.Status == b.Status &&
			a.BlockedReason == b.BlockedReason &&
			slices.Equal(a.DependsOn, b.DependsOn) && slices.Equal(a.Payments, b.Payments)
	})
}
