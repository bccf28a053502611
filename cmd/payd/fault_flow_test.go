package main

// Payment flows (seed 000, issue 22) in the chaos load: a share of the
// mixed run's clients are merchants that settle an invoice through a flow
// while every fault runs. Each creates, with its own Idempotency-Keys and
// retrying through outages like every client, two payer users (a payin
// method each: pm_card_visa, pm_card_flaky or the ACH account
// ba_123456789), one or two payee users (an ACH payout account that
// settles), an invoice with those payers and payees, and the flow.
//
//	flow_card    two card payers (visa or flaky): settled
//	flow_ach     an ACH payer and a card or ACH one: settled
//	flow_cancel  two visa payers; the merchant cancels the flow within 1.5 s of its
//	             201 (POST /v1/payment-flows/{id}/cancel): canceled, or settled when it
//	             was settled before the cancel came (409 flow_not_cancelable)
//
// The flow's own payments (payins: seed-001 payments applied to the
// invoice; payouts: seed-002 payouts) carry no client key: the generic
// checks of checkInvariants hold for them as for any payment (I1, I4) but
// their outcome and money are checkFlows', on the same snapshot:
//
//   - no flow the client was told of is missing (lost);
//   - each ends as its kind says (settled; canceled for flow_cancel), or
//     degraded when a gateway fault outlasted the retries (failed with
//     payin_failed or payout_failed, the failed payment FAILED as a
//     degraded payment is: faultDegraded; or under way while one of its
//     payments waits in review); none is left under way otherwise (stuck);
//   - money is conserved per flow: settled payins (SUCCEEDED or
//     PARTIALLY_REFUNDED) never exceed what is due (amount_due −
//     paid_outside), settled payouts never exceed the payees' amounts, each
//     payment is its party's share; a settled flow collected exactly what
//     was due, paid every payee its amount (payouts + the platform's
//     remainder = amount_due), its invoice is PAID, and its plan's amounts
//     say the same; the invoice is the one the client asked for;
//   - one payment per (flow, batch, user, generation): generations 1..n,
//     every one but the last FAILED or CANCELED (replaced), and no payment
//     with a flow_id outside payment_flow_payments (or under another flow);
//   - no payout was created before every payer's payin had settled: its
//     creation (its first audit row) comes after a SUCCEEDED audit row of
//     a payin of each payer (commit timestamps where the database keeps
//     them, as the clock jumps make created_at unreliable);
//   - the sandbox's ledger holds exactly one charge, of its amount, for
//     each flow payment that took money, and none kept for a FAILED or
//     CANCELED one (a late charge refunded is not kept).

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/payment"
)

const (
	// chaosFlowShare is the share (in %) of the mixed load's clients, after
	// the sessions', that are payment flows.
	chaosFlowShare = 7
	faultFlowsPath = "/v1/payment-flows"
	// chaosFlowPatience bounds how long a flow's client waits for its flow
	// to end (payins settle, then payouts are made and settle), longer than
	// the run's outages.
	chaosFlowPatience = 3 * time.Minute
)

// chaosFlowSpec is what a flow's client asked for: the invoice's amount
// and its parties' shares, by user external id (minor units of USD).
type chaosFlowSpec struct {
	invoiceExt     string
	due            int64
	payers, payees map[string]int64
}

// chaosFlowWant is the flow statuses each kind may end in when no gateway
// fault degraded it.
var chaosFlowWant = map[string][]string{
	"flow_card": {"settled"}, "flow_ach": {"settled"}, "flow_cancel": {"canceled", "settled"},
}

// chaosFlow makes flow client key's requests: its kind from rng, two payers
// sharing an amount of $20 to $1,000, one or two payees sharing 70 to 95 %
// of it (the rest is the platform's).
func chaosFlow(rng *rand.Rand, key string) *faultClientRecord {
	card := func() [2]string {
		if rng.IntN(3) == 0 {
			return [2]string{"CARD", sandbox.CardFlaky}
		}
		return [2]string{"CARD", sandbox.CardVisa}
	}
	ach := [2]string{"ACH", "ba_" + sandbox.BankAccountSettles}
	var kind string
	var payers [][2]string
	switch x := rng.IntN(100); {
	case x < 40:
		kind, payers = "flow_card", [][2]string{card(), card()}
	case x < 75:
		second := card()
		if rng.IntN(2) == 0 {
			second = ach
		}
		kind, payers = "flow_ach", [][2]string{ach, second}
	default:
		kind, payers = "flow_cancel", [][2]string{{"CARD", sandbox.CardVisa}, {"CARD", sandbox.CardVisa}}
	}
	due := int64(2000 + rng.IntN(98000))
	first := due * int64(30+rng.IntN(41)) / 100
	shares := []int64{first, due - first}
	toPayees := due * int64(70+rng.IntN(26)) / 100
	payees := []int64{toPayees}
	if rng.IntN(2) == 0 {
		a := toPayees * int64(20+rng.IntN(61)) / 100
		payees = []int64{a, toPayees - a}
	}
	return chaosFlowRecord(key, kind, due, payers, shares, payees)
}

// chaosFlowRecord is the client record of a flow of due (USD minor units)
// whose payers (payin method type and id each) pay shares and whose payees
// are paid payees by ACH; its pre requests create the users and the
// invoice.
func chaosFlowRecord(key, kind string, due int64, payers [][2]string, shares, payees []int64) *faultClientRecord {
	spec := &chaosFlowSpec{invoiceExt: key + "-inv", due: due, payers: map[string]int64{}, payees: map[string]int64{}}
	r := &faultClientRecord{path: faultFlowsPath, key: key, kind: kind, currency: "USD", minor: due, method: "FLOW", flow: spec}
	var ps, qs []map[string]any
	var pms []string
	for i, m := range payers {
		ext := fmt.Sprintf("%s-payer-%d", key, i+1)
		spec.payers[ext] = shares[i]
		pms = append(pms, m[1])
		body, _ := json.Marshal(map[string]any{"external_id": ext,
			"payin_method": map[string]string{"payment_method_type": m[0], "payment_method_id": m[1]}})
		r.pre = append(r.pre, &faultClientRecord{path: "/v1/users", key: ext + "-user", body: body})
		ps = append(ps, map[string]any{"external_id": ext, "amount": json.Number(payment.FormatMajor(shares[i], "USD"))})
	}
	for i, amount := range payees {
		ext := fmt.Sprintf("%s-payee-%d", key, i+1)
		spec.payees[ext] = amount
		body, _ := json.Marshal(map[string]any{"external_id": ext,
			"payout_account": map[string]string{"method": "ACH", "beneficiary_name": "Chaos Payee " + ext,
				"beneficiary_account": "123456789", "beneficiary_routing": "021000021", "beneficiary_bank_country": "US"}})
		r.pre = append(r.pre, &faultClientRecord{path: "/v1/users", key: ext + "-user", body: body})
		qs = append(qs, map[string]any{"external_id": ext, "amount": json.Number(payment.FormatMajor(amount, "USD"))})
	}
	inv, _ := json.Marshal(map[string]any{"external_id": spec.invoiceExt, "currency": "USD",
		"amount_due": json.Number(payment.FormatMajor(due, "USD")), "payers": ps, "payees": qs})
	r.pre = append(r.pre, &faultClientRecord{path: "/v1/invoices", key: key + "-invoice", body: inv})
	r.pm = strings.Join(pms, "+")
	r.body, _ = json.Marshal(map[string]any{"external_id": key, "invoice": map[string]string{"external_id": spec.invoiceExt},
		"type": payment.FlowTypeSingleInvoice})
	return r
}

// flowClient is the merchant of one created flow: it cancels it (for
// flow_cancel) and waits for it to end, recording what it did in
// p.actions; the load is drained only when it returns.
func (r *chaosRun) flowClient(hc *http.Client, p *faultClientRecord) {
	var did []string
	defer func() {
		p.actions = strings.Join(did, "; ")
		r.flows.count(p.kind + ": " + p.actions)
	}()
	if p.kind == "flow_cancel" {
		time.Sleep(time.Duration(rand.IntN(1500)) * time.Millisecond)
		did = append(did, "canceled: "+r.cancelAt(hc, faultFlowsPath+"/"+p.id+"/cancel", p.key+"-cancel"))
	}
	did = append(did, "then "+r.awaitFlow(hc, p.id, time.Now().Add(chaosFlowPatience), "settled", "failed", "canceled"))
}

// awaitFlow polls GET /v1/payment-flows/{id} until its status is one of
// want or the deadline passes, and returns the last status seen.
func (r *chaosRun) awaitFlow(hc *http.Client, id string, deadline time.Time, want ...string) string {
	seen := "unread"
	wait := 250 * time.Millisecond
	for ; time.Now().Before(deadline); time.Sleep(wait) {
		wait = 250 * time.Millisecond
		req, _ := http.NewRequest(http.MethodGet, r.c.intakeURL+faultFlowsPath+"/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+r.c.apiKey)
		resp, err := hc.Do(req)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if d, ok := faultRetryAfter(resp.Header); ok && resp.StatusCode == http.StatusTooManyRequests {
			wait = min(max(d, wait), 2*time.Second)
			continue
		}
		var v struct {
			Data struct {
				Status  string `json:"status"`
				Blocked string `json:"blocked_reason"`
			} `json:"data"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &v) != nil {
			continue
		}
		seen = v.Data.Status
		if v.Data.Blocked != "" {
			seen += " (" + v.Data.Blocked + ")"
		}
		if slices.Contains(want, v.Data.Status) {
			return seen
		}
	}
	return seen + " at its deadline"
}

// faultFlowFigures are the flows' share of a run's figures.
type faultFlowFigures struct {
	flows, unacknowledged, lost, wrong, stuck, degraded, review int
	money, generations, outside, early, ledger                  int // flows (payments) violating each property
	payins, payouts, payinsSettled, payoutsSettled              int
	collected, paidOut, remainder                               int64 // of the settled flows, minor units (USD)
	statuses                                                    map[string]int
}

func (f faultFlowFigures) String() string {
	if f.flows == 0 {
		return "none"
	}
	return fmt.Sprintf("%d flows (%d payins, %d settled; %d payouts, %d settled), lost %d, wrong outcome %d, stuck %d, "+
		"degraded %d (of which under way with a payment in review %d), money not conserved %d, second live payment of a plan payment %d, "+
		"payments outside payment_flow_payments %d, payouts before their payins settled %d, ledger disagreements %d, unacknowledged %d; "+
		"settled flows collected %s, paid out %s, platform remainder %s USD; statuses %v",
		f.flows, f.payins, f.payinsSettled, f.payouts, f.payoutsSettled, f.lost, f.wrong, f.stuck, f.degraded, f.review,
		f.money, f.generations, f.outside, f.early, f.ledger, f.unacknowledged,
		payment.FormatMajor(f.collected, "USD"), payment.FormatMajor(f.paidOut, "USD"), payment.FormatMajor(f.remainder, "USD"), f.statuses)
}

// waitFlows polls until every payment is final and no flow has a
// recompute due (a recompute after the payins' last transition creates
// the payouts, which must end too), or the deadline.
func (c *faultCluster) waitFlows(deadline time.Time) bool {
	for {
		if _, ok := c.waitQuiescent(deadline); !ok {
			return false
		}
		var due int
		if err := c.db.QueryRow(`SELECT count(*) FROM payment_flows WHERE next_at IS NOT NULL`).Scan(&due); err != nil {
			c.chk.Fatalf("count flows due: %v", err)
		}
		if due == 0 {
			var open int
			if err := c.db.QueryRow(`SELECT count(*) FROM payments WHERE NOT (` + faultFinalSQL + `)`).Scan(&open); err != nil {
				c.chk.Fatalf("count open payments: %v", err)
			}
			if open == 0 {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// faultFlowSettled: a flow payment's money has arrived (store.flowSettled).
func faultFlowSettled(status string) bool {
	return status == "SUCCEEDED" || status == "PARTIALLY_REFUNDED"
}

// checkFlows checks the flows of the load (l) on the snapshot q and the
// gateway's ledger; lateRefund holds the late-charge refunds by
// payment|charge reference.
func checkFlows(t faultT, q faultQuerier, ledger []sandbox.Charge, l *faultLoad, lateRefund map[string]string) faultFlowFigures {
	t.Helper()
	f := faultFlowFigures{statuses: map[string]int{}}
	type flowRow struct {
		id, ext, status, blocked, invoice, invoiceExt, invoiceStatus string
		paidOutside, due, paid                                       int64
		planDue, planCollected, planPaidOut, planRemainder           int64
		recomputeDue                                                 bool
	}
	flows := map[string]*flowRow{}
	rows, err := q.Query(`SELECT f.id, f.external_id, f.status, f.blocked_reason, f.paid_outside, i.id, i.external_id, i.status,
			i.amount_due, i.amount_paid,
			COALESCE((pl.plan->>'Due')::int8, -1), COALESCE((pl.plan->>'Collected')::int8, -1),
			COALESCE((pl.plan->>'PaidOut')::int8, -1), COALESCE((pl.plan->>'PlatformRemainder')::int8, -1),
			f.next_at IS NOT NULL
		FROM payment_flows f JOIN invoices i ON i.id = f.invoice_id
		LEFT JOIN payment_flow_plans pl ON pl.flow_id = f.id AND pl.version = f.plan_version`)
	if err != nil {
		t.Fatalf("load flows: %v", err)
	}
	for rows.Next() {
		r := &flowRow{}
		if err := rows.Scan(&r.id, &r.ext, &r.status, &r.blocked, &r.paidOutside, &r.invoice, &r.invoiceExt, &r.invoiceStatus,
			&r.due, &r.paid, &r.planDue, &r.planCollected, &r.planPaidOut, &r.planRemainder, &r.recomputeDue); err != nil {
			t.Fatalf("scan flow: %v", err)
		}
		flows[r.id] = r
	}
	rows.Close()

	// the invoices' parties: payers' and payees' shares by user
	type party struct {
		user, ext string
		amount    int64
	}
	payersOf, payeesOf := map[string][]party{}, map[string][]party{}
	rows, err = q.Query(`SELECT 'payer', x.invoice_id, x.user_id, u.external_id, x.amount FROM invoice_payers x JOIN users u ON u.id = x.user_id
		UNION ALL SELECT 'payee', x.invoice_id, x.user_id, u.external_id, x.amount FROM invoice_payees x JOIN users u ON u.id = x.user_id
			WHERE x.invoice_id IN (SELECT invoice_id FROM payment_flows)`)
	if err != nil {
		t.Fatalf("load flow parties: %v", err)
	}
	for rows.Next() {
		var side, inv string
		var p party
		if err := rows.Scan(&side, &inv, &p.user, &p.ext, &p.amount); err != nil {
			t.Fatalf("scan flow party: %v", err)
		}
		if side == "payer" {
			payersOf[inv] = append(payersOf[inv], p)
		} else {
			payeesOf[inv] = append(payeesOf[inv], p)
		}
	}
	rows.Close()

	// the flows' payments, with when each was created and first settled:
	// by commit time where the database keeps it (a jumped clock wrote
	// created_at), else by the audit rows' created_at
	at := "e.created_at"
	if faultCommitTS(q) {
		at = "COALESCE(pg_xact_commit_timestamp(e.xmin), e.created_at)"
	}
	paysOf := map[string][]*faultFlowPay{}
	inTable := map[string]bool{}
	rows, err = q.Query(`WITH ev AS (
			SELECT e.payment_id, min(` + at + `) FILTER (WHERE e.from_status IS NULL) AS created,
				min(` + at + `) FILTER (WHERE e.to_status = 'SUCCEEDED' AND e.from_status IS DISTINCT FROM 'SUCCEEDED') AS succeeded
			FROM payment_events e JOIN payment_flow_payments fp ON fp.payment_id = e.payment_id GROUP BY e.payment_id)
		SELECT fp.flow_id, fp.batch, fp.user_id, fp.generation, p.id, p.status, p.amount, COALESCE(p.flow_id, ''), ev.created, ev.succeeded
		FROM payment_flow_payments fp JOIN payments p ON p.id = fp.payment_id LEFT JOIN ev ON ev.payment_id = p.id
		ORDER BY fp.flow_id, fp.batch, fp.user_id, fp.generation`)
	if err != nil {
		t.Fatalf("load flow payments: %v", err)
	}
	for rows.Next() {
		p := &faultFlowPay{}
		if err := rows.Scan(&p.flow, &p.batch, &p.user, &p.generation, &p.id, &p.status, &p.amount, &p.rowFlow,
			&p.created, &p.succeeded); err != nil {
			t.Fatalf("scan flow payment: %v", err)
		}
		paysOf[p.flow] = append(paysOf[p.flow], p)
		inTable[p.id] = true
	}
	rows.Close()
	var outside []string
	rows, err = q.Query(`SELECT p.id || ' ' || p.status || ' amount ' || p.amount || ' has flow_id ' || p.flow_id ||
			' but is not one of its payment_flow_payments'
		FROM payments p WHERE p.flow_id IS NOT NULL
			AND NOT EXISTS (SELECT 1 FROM payment_flow_payments fp WHERE fp.payment_id = p.id AND fp.flow_id = p.flow_id)`)
	if err != nil {
		t.Fatalf("load payments outside their flows: %v", err)
	}
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		outside = append(outside, s)
	}
	rows.Close()
	atts := map[string][]faultAttempt{}
	rows, err = q.Query(`SELECT a.payment_id, a.attempt_number, a.status, a.idempotency_key, a.failure_class, a.error_code, a.inquiry_count
		FROM payment_attempts a JOIN payment_flow_payments fp ON fp.payment_id = a.payment_id ORDER BY a.payment_id, a.attempt_number`)
	if err != nil {
		t.Fatalf("load flow attempts: %v", err)
	}
	for rows.Next() {
		var pid string
		var a faultAttempt
		if err := rows.Scan(&pid, &a.n, &a.status, &a.key, &a.class, &a.code, &a.inquiries); err != nil {
			t.Fatalf("scan flow attempt: %v", err)
		}
		atts[pid] = append(atts[pid], a)
	}
	rows.Close()
	// the charges each flow payment keeps (a late charge refunded is given back)
	kept := map[string][]sandbox.Charge{}
	for _, ch := range ledger {
		if inTable[ch.PaymentID] && lateRefund[ch.PaymentID+"|"+ch.Reference] != string(payment.RefundSucceeded) {
			kept[ch.PaymentID] = append(kept[ch.PaymentID], ch)
		}
	}

	told := map[string]*faultClientRecord{}
	var lost []string
	for _, r := range l.recs {
		if r.path != faultFlowsPath || r.id == "" {
			continue
		}
		told[r.id] = r
		if flows[r.id] == nil {
			lost = append(lost, fmt.Sprintf("key %s got %d with flow %s, which does not exist", r.key, r.code, r.id))
		}
	}
	var money, generations, early, ledgerBad, wrong, stuck []string
	ids := make([]string, 0, len(flows))
	for id := range flows {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fl := flows[id]
		f.flows++
		r := told[id]
		if r == nil {
			f.unacknowledged++
			f.statuses[fl.status+" (unacknowledged)"]++
		} else {
			f.statuses[fl.status]++
		}
		pays := paysOf[id]
		share := map[string]int64{}
		var payeeSum int64
		for _, p := range payersOf[fl.invoice] {
			share["payins|"+p.user] = p.amount
		}
		for _, p := range payeesOf[fl.invoice] {
			share["payouts|"+p.user] = p.amount
			payeeSum += p.amount
		}
		due := fl.due - fl.paidOutside

		// one live payment per plan payment; the ledger; the money
		var badMoney []string
		var payinsSettled, payoutsSettled int64
		byParty := map[string][]*faultFlowPay{}
		inReview, failedOK, failedBad := false, false, []string{}
		for _, p := range pays {
			byParty[p.batch+"|"+p.user] = append(byParty[p.batch+"|"+p.user], p)
			if p.batch == payment.BatchPayins {
				f.payins++
			} else {
				f.payouts++
			}
			if faultFlowSettled(p.status) {
				if p.batch == payment.BatchPayins {
					f.payinsSettled++
					payinsSettled += p.amount
				} else {
					f.payoutsSettled++
					payoutsSettled += p.amount
				}
			}
			if p.rowFlow != id {
				badMoney = append(badMoney, fmt.Sprintf("payment %s of its payment_flow_payments has flow_id %q", p.id, p.rowFlow))
			}
			if want, ok := share[p.batch+"|"+p.user]; !ok || (fl.paidOutside == 0 && p.amount != want) {
				badMoney = append(badMoney, fmt.Sprintf("%s %s of user %s is %d, the party's share %d (a party: %v)", p.batch, p.id, p.user, p.amount, want, ok))
			}
			chs := kept[p.id]
			switch p.status {
			case "SUCCEEDED", "PARTIALLY_REFUNDED", "REFUNDED", "RETURNED":
				if len(chs) != 1 || chs[0].Amount != p.amount {
					ledgerBad = append(ledgerBad, fmt.Sprintf("flow %s %s %s %s amount %d keeps ledger charges %+v, want one of its amount",
						id, p.batch, p.id, p.status, p.amount, chs))
				}
			case "FAILED", "CANCELED":
				if len(chs) != 0 {
					ledgerBad = append(ledgerBad, fmt.Sprintf("flow %s %s %s is %s but keeps ledger charges %+v", id, p.batch, p.id, p.status, chs))
				}
			default:
				if len(chs) > 1 {
					ledgerBad = append(ledgerBad, fmt.Sprintf("flow %s %s %s is %s with %d ledger charges", id, p.batch, p.id, p.status, len(chs)))
				}
			}
			switch p.status {
			case "REQUIRES_REVIEW":
				inReview = true
			case "FAILED", "CANCELED":
				if l.spec.degradedOK && faultDegraded(p.status, len(chs), atts[p.id]) {
					failedOK = true
				} else {
					failedBad = append(failedBad, fmt.Sprintf("%s %s %s (attempts %+v)", p.batch, p.id, p.status, atts[p.id]))
				}
			}
		}
		for party, ps := range byParty {
			for i, p := range ps {
				if p.generation != i+1 || (i < len(ps)-1 && p.status != "FAILED" && p.status != "CANCELED") {
					var what []string
					for _, q := range ps {
						what = append(what, fmt.Sprintf("gen %d %s %s", q.generation, q.id, q.status))
					}
					generations = append(generations, fmt.Sprintf("flow %s %s: %s", id, party, strings.Join(what, ", ")))
					break
				}
			}
		}
		// payouts only after every payer's payin settled
		for _, p := range pays {
			if p.batch != payment.BatchPayouts {
				continue
			}
			for _, payer := range payersOf[fl.invoice] {
				ok := false
				for _, in := range byParty["payins|"+payer.user] {
					ok = ok || (in.succeeded.Valid && p.created.Valid && !in.succeeded.Time.After(p.created.Time))
				}
				if !ok {
					var ins []string
					for _, in := range byParty["payins|"+payer.user] {
						ins = append(ins, fmt.Sprintf("%s %s succeeded at %v", in.id, in.status, in.succeeded.Time.Format(time.RFC3339Nano)))
					}
					early = append(early, fmt.Sprintf("flow %s: payout %s created at %s before payer %s's payin settled (%s)",
						id, p.id, p.created.Time.Format(time.RFC3339Nano), payer.ext, strings.Join(ins, ", ")))
				}
			}
		}
		if payinsSettled > due {
			badMoney = append(badMoney, fmt.Sprintf("settled payins %d > due %d", payinsSettled, due))
		}
		if payoutsSettled > payeeSum {
			badMoney = append(badMoney, fmt.Sprintf("settled payouts %d > the payees' %d", payoutsSettled, payeeSum))
		}
		if r != nil && r.flow != nil {
			spec := r.flow
			var payers, payees int64
			for _, p := range payersOf[fl.invoice] {
				payers += p.amount
			}
			for _, a := range spec.payees {
				payees += a
			}
			if fl.invoiceExt != spec.invoiceExt || fl.due != spec.due || payeeSum != payees || payers != spec.due {
				badMoney = append(badMoney, fmt.Sprintf("invoice %s due %d payers %d payees %d; the client asked for %s due %d payees %d",
					fl.invoiceExt, fl.due, payers, payeeSum, spec.invoiceExt, spec.due, payees))
			}
		}
		if fl.status == "settled" {
			remainder := fl.due - payeeSum
			if payinsSettled != due {
				badMoney = append(badMoney, fmt.Sprintf("settled, its settled payins %d ≠ due %d (amount_due %d − paid_outside %d)",
					payinsSettled, due, fl.due, fl.paidOutside))
			}
			if payoutsSettled+remainder != fl.due {
				badMoney = append(badMoney, fmt.Sprintf("settled, its settled payouts %d + platform remainder %d ≠ amount_due %d",
					payoutsSettled, remainder, fl.due))
			}
			for _, p := range payeesOf[fl.invoice] {
				var got int64
				for _, out := range byParty["payouts|"+p.user] {
					if faultFlowSettled(out.status) {
						got += out.amount
					}
				}
				if got != p.amount {
					badMoney = append(badMoney, fmt.Sprintf("settled, payee %s got %d of its %d", p.ext, got, p.amount))
				}
			}
			if fl.invoiceStatus != "PAID" || fl.paid != fl.due {
				badMoney = append(badMoney, fmt.Sprintf("settled, its invoice %s is %s paid %d of %d", fl.invoice, fl.invoiceStatus, fl.paid, fl.due))
			}
			f.collected += payinsSettled
			f.paidOut += payoutsSettled
			f.remainder += remainder
		}
		if !fl.recomputeDue && fl.planDue >= 0 && (fl.planDue != due || fl.planCollected != payinsSettled ||
			fl.planPaidOut != payoutsSettled || fl.planRemainder != fl.due-payeeSum) {
			badMoney = append(badMoney, fmt.Sprintf("its plan says due %d collected %d paid out %d remainder %d; the payments: due %d collected %d paid out %d remainder %d",
				fl.planDue, fl.planCollected, fl.planPaidOut, fl.planRemainder, due, payinsSettled, payoutsSettled, fl.due-payeeSum))
		}
		if len(badMoney) > 0 {
			money = append(money, fmt.Sprintf("flow %s (%s): %s", id, faultKindOf(r), strings.Join(badMoney, "; ")))
		}

		// the outcome
		what := ""
		if r != nil && r.actions != "" {
			what = "; the client " + r.actions
		}
		under := fl.status == "pending" || fl.status == "processing"
		switch {
		case under && inReview && l.spec.degradedOK && !fl.recomputeDue:
			f.review++
			f.degraded++
		case under || fl.recomputeDue:
			stuck = append(stuck, fmt.Sprintf("flow %s (%s) is %s with a recompute due %v; payments %s%s", id, faultKindOf(r), fl.status,
				fl.recomputeDue, faultFlowPays(pays), what))
		case r == nil:
			// created, the client never told: its key still names it
		case slices.Contains(chaosFlowWant[r.kind], fl.status) && (fl.status != "canceled" || len(failedBad) == 0):
		case fl.status == "failed" && failedOK && len(failedBad) == 0 &&
			(fl.blocked == payment.BlockedPayinFailed || fl.blocked == payment.BlockedPayoutFailed):
			f.degraded++ // a gateway fault outlasted the retries: FAILED, never charged
		default:
			wrong = append(wrong, fmt.Sprintf("flow %s (%s) ended %s (%s), want %s; failed payments %v; payments %s%s", id, r.kind,
				fl.status, fl.blocked, strings.Join(chaosFlowWant[r.kind], " or "), failedBad, faultFlowPays(pays), what))
		}
	}
	f.lost, f.wrong, f.stuck, f.money, f.generations = len(lost), len(wrong), len(stuck), len(money), len(generations)
	f.outside, f.early, f.ledger = len(outside), len(early), len(ledgerBad)
	reportViolations(t, "flows: flow the client was told of missing", lost)
	reportViolations(t, "flows: outcome", wrong)
	reportViolations(t, "flows: left under way", stuck)
	reportViolations(t, "flows: money not conserved", money)
	reportViolations(t, "flows: a plan payment has a second live payment", generations)
	reportViolations(t, "flows: payment of a flow outside payment_flow_payments", outside)
	reportViolations(t, "flows: payout created before its payins settled", early)
	reportViolations(t, "flows: ledger and flow payment disagree", ledgerBad)
	return f
}

// faultFlowPay is one of a flow's payments, as checkFlows reads it: its
// payment_flow_payments row, its payments row (rowFlow: its flow_id), and
// when it was created and first SUCCEEDED by its audit rows.
type faultFlowPay struct {
	id, flow, batch, user, status, rowFlow string
	generation                             int
	amount                                 int64
	created, succeeded                     sql.NullTime
}

// faultFlowPays lists a flow's payments for a message.
func faultFlowPays(pays []*faultFlowPay) string {
	var out []string
	for _, p := range pays {
		out = append(out, fmt.Sprintf("%s %s gen %d %s %d", p.batch, p.id, p.generation, p.status, p.amount))
	}
	return "[" + strings.Join(out, ", ") + "]"
}

// TestFaultCheckerCatchesFlows proves checkFlows can fail: on a real
// cluster, three flows settled through the API pass it; then an invoice
// whose amount no longer matches what its flow collected and paid out, a
// payment (made outside the flow) given a flow's flow_id, a payin whose
// SUCCEEDED audit row is gone (so its payout was made before it settled,
// as far as the audit shows), a second ledger charge for a flow's payin,
// and a client told of a flow that does not exist must each be found,
// under its own heading, and nothing else.
func TestFaultCheckerCatchesFlows(t *testing.T) {
	bin := buildFaultPayd(t)
	c := startFaultCluster(t, bin)
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	l := &faultLoad{statusCounts: map[int]int{}}
	run := fmt.Sprint(time.Now().UnixNano())
	visa := [2]string{"CARD", sandbox.CardVisa}
	ach := [2]string{"ACH", "ba_" + sandbox.BankAccountSettles}
	var recs []*faultClientRecord
	for i, payers := range [][][2]string{{visa, visa}, {visa, ach}, {ach, visa}} {
		r := chaosFlowRecord(fmt.Sprintf("neg-flow-%s-%d", run, i), "flow_card", 10000, payers, []int64{6000, 4000}, []int64{5000, 2550})
		if c.createPre(hc, l, r) {
			t.Fatalf("flow %d: %s", i, r.lastErr)
		}
		c.create(hc, l, r)
		if r.id == "" {
			t.Fatalf("create flow %d: %s", i, r.lastErr)
		}
		l.recs = append(l.recs, r)
		recs = append(recs, r)
	}
	// a payment of its own, paying a shared invoice, to be given a flow's id
	body, _ := json.Marshal(map[string]any{"amount": "12.34", "currency": "USD", "destination_id": faultInvoiceExt("USD", 0),
		"destination_type": "INVOICE", "payment_method_type": "CARD", "payment_method_id": sandbox.CardVisa})
	other := &faultClientRecord{key: "neg-flow-other-" + run, body: body}
	c.create(hc, l, other)
	if other.id == "" {
		t.Fatalf("create payment: %s", other.lastErr)
	}
	for end := time.Now().Add(90 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		var done int
		if err := c.db.QueryRow(`SELECT count(*) FROM payment_flows WHERE id IN ($1, $2, $3) AND status = 'settled' AND next_at IS NULL`,
			recs[0].id, recs[1].id, recs[2].id).Scan(&done); err != nil {
			t.Fatal(err)
		}
		var paid int
		if err := c.db.QueryRow(`SELECT count(*) FROM payments WHERE id = $1 AND status = 'SUCCEEDED' AND next_step IS NULL`, other.id).Scan(&paid); err != nil {
			t.Fatal(err)
		}
		if done == 3 && paid == 1 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("flows not settled after 90 s (%d of 3; the payment succeeded: %d)", done, paid)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ledger, err := sandbox.NewClient(c.sandboxURL, nil).(*sandbox.Client).Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ok := &faultRecorder{t: t}
	if f := checkFlows(ok, c.db, ledger, l, nil); len(ok.findings) > 0 || f.flows != 3 || f.statuses["settled"] != 3 ||
		f.payinsSettled != 6 || f.payoutsSettled != 6 || f.collected != 30000 || f.paidOut != 22650 || f.remainder != 7350 {
		t.Fatalf("the flows as payd left them: figures %s, findings %q; want 3 settled flows, 6 payins and 6 payouts settled, "+
			"$300.00 collected, $226.50 paid out, $73.50 remainder, no finding", f, ok.findings)
	}

	// now break each property
	var payin string
	if err := c.db.QueryRow(`SELECT payment_id FROM payment_flow_payments WHERE flow_id = $1 AND batch = 'payins' ORDER BY payment_id LIMIT 1`,
		recs[1].id).Scan(&payin); err != nil {
		t.Fatal(err)
	}
	var again sandbox.Charge
	for _, ch := range ledger {
		if ch.PaymentID == payin {
			again = ch
		}
	}
	again.Reference += "-again"
	broken := append(append([]sandbox.Charge{}, ledger...), again)
	for _, q := range []string{
		// flow 0: its invoice is due $1 more than the flow collected and paid out
		`UPDATE invoices SET amount_due = amount_due + 100 WHERE id = (SELECT invoice_id FROM payment_flows WHERE id = '` + recs[0].id + `')`,
		// flow 1: a payment the flow never made carries its id
		`UPDATE payments SET flow_id = '` + recs[1].id + `' WHERE id = '` + other.id + `'`,
		// flow 2: a payin's SUCCEEDED audit row is gone
		`DELETE FROM payment_events WHERE to_status = 'SUCCEEDED' AND payment_id = (SELECT payment_id FROM payment_flow_payments
			WHERE flow_id = '` + recs[2].id + `' AND batch = 'payins' ORDER BY payment_id LIMIT 1)`,
	} {
		if _, err := c.db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	l.recs = append(l.recs, &faultClientRecord{path: faultFlowsPath, key: "neg-flow-lost", kind: "flow_card", id: "pf_0000000000000000000000000000000", code: 201})
	rec := &faultRecorder{t: t}
	f := checkFlows(rec, c.db, broken, l, nil)
	for _, want := range []string{
		"flows: flow the client was told of missing: 1 violation",
		"flows: money not conserved: 1 violation",
		"flows: payment of a flow outside payment_flow_payments: 1 violation",
		"flows: payout created before its payins settled: 2 violation", // each of the payin's payee's payouts
		"flows: ledger and flow payment disagree: 1 violation",
	} {
		if !rec.found(want) {
			t.Errorf("checkFlows missed %q; findings:\n%s", want, strings.Join(rec.findings, "\n"))
		}
	}
	if len(rec.findings) != 5 || f.lost != 1 || f.money != 1 || f.outside != 1 || f.early != 2 || f.ledger != 1 {
		t.Errorf("figures %s, %d findings; want lost, money, outside and ledger 1 each, early 2, 5 findings:\n%s",
			f, len(rec.findings), strings.Join(rec.findings, "\n"))
	}
}
