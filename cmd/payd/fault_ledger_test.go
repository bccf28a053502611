package main

// I8 and reconciliation in the process fault harness: every charge and
// refund in the gateway's ledger is accounted for by payd.
//
// At the end of every run, once the payments are final, finish
//
//  1. classifies the gateway's entries against payd's records as they stand
//     (figures only: a late charge whose notification was lost is not
//     known yet, and a payment in review still holds its charge);
//  2. runs `payd reconcile --since …` (the CLI, against the run's sandbox),
//     which records and refunds late charges and resolves reviews whose
//     charge the gateway's ledger shows, then waits for what it started;
//  3. checks I8 strictly on one snapshot of the database: a charge belongs
//     to a SUCCEEDED attempt of its payment (the payment's own charge), or
//     is a late charge of a canceled or failed payment with a succeeded
//     charge_after_cancel refund (or, still pending, a reconciliation
//     finding about it), or belongs to a payment in REQUIRES_REVIEW; every
//     gateway refund is a succeeded refund row of payd. Anything else is an
//     unaccounted charge or refund — but the charge of a payment still in
//     flight, which the engine has yet to record: a payment that stays so
//     is I2's to report (not final), not I8's.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/payment"
)

// faultQuerier is what the checks read the database through: the database
// itself, or one snapshot of it (a REPEATABLE READ transaction), so that
// every check of one pass sees the same state while payments in review keep
// their slow inquiries running.
type faultQuerier interface {
	Query(query string, args ...any) (*sql.Rows, error)
	QueryRow(query string, args ...any) *sql.Row
}

// snapshot opens a read-only REPEATABLE READ transaction: one consistent
// view of the database for a whole pass of checks. Close it with Rollback.
func (c *faultCluster) snapshot() *sql.Tx {
	c.t.Helper()
	tx, err := c.db.BeginTx(context.Background(), &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		c.t.Fatalf("snapshot: %v", err)
	}
	// the snapshot is taken at the first statement
	var one int
	if err := tx.QueryRow(`SELECT 1`).Scan(&one); err != nil {
		c.t.Fatalf("snapshot: %v", err)
	}
	return tx
}

// gatewayEntries reads every charge and refund of the gateway's ledger
// (GET /entries, all pages).
func (c *faultCluster) gatewayEntries() []connector.LedgerEntry {
	c.t.Helper()
	gw := sandbox.NewClient(c.sandboxURL, nil)
	var out []connector.LedgerEntry
	q := connector.ListQuery{Limit: connector.MaxListLimit}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		page, err := gw.List(ctx, q)
		cancel()
		if err != nil {
			c.t.Fatalf("read the gateway's entries: %v", err)
		}
		out = append(out, page.Entries...)
		if page.Next == "" {
			return out
		}
		q.Cursor = page.Next
	}
}

// faultReconcile is what the run's reconciliation (the CLI) reported.
type faultReconcile struct {
	Charges, Refunds, New int
	kinds                 map[string]int // findings of the run by kind
	took                  time.Duration
}

func (r faultReconcile) String() string {
	var ks []string
	total := 0
	for k, n := range r.kinds {
		ks = append(ks, fmt.Sprintf("%s %d", k, n))
		total += n
	}
	sort.Strings(ks)
	return fmt.Sprintf("%d charges and %d refunds compared in %s, %d findings (%d new) {%s}",
		r.Charges, r.Refunds, r.took.Round(100*time.Millisecond), total, r.New, strings.Join(ks, ", "))
}

// reconcile runs `payd reconcile --since <the run's age + margin> --json`
// as an operator would, with the run's environment (PAYD_SANDBOX_URL names
// its gateway), and returns its report.
func (c *faultCluster) reconcile() faultReconcile {
	c.t.Helper()
	since := max(time.Hour, time.Since(c.started)+10*time.Minute).Round(time.Minute)
	start := time.Now()
	out := c.runOnceFor(5*time.Minute, "reconcile", "reconcile", "--since", since.String(), "--json")
	var rep struct {
		Charges, Refunds, New int
		Findings              []struct {
			Kind string `json:"kind"`
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		c.t.Fatalf("payd reconcile --json printed %q: %v", out, err)
	}
	r := faultReconcile{Charges: rep.Charges, Refunds: rep.Refunds, New: rep.New, kinds: map[string]int{}, took: time.Since(start)}
	for _, f := range rep.Findings {
		r.kinds[f.Kind]++
	}
	return r
}

// waitRefunds waits until no refund is PENDING (a late charge's refund
// included), or the deadline; it says whether none is.
func (c *faultCluster) waitRefunds(deadline time.Time) bool {
	for {
		var pending int
		if err := c.db.QueryRow(`SELECT count(*) FROM refunds WHERE status = 'PENDING'`).Scan(&pending); err != nil {
			c.chk.Fatalf("count pending refunds: %v", err)
		}
		if pending == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// faultI8 is I8's accounting of the gateway's entries against payd's
// records.
type faultI8 struct {
	charges, refunds int
	// accounted charges: the payment's own charge (a SUCCEEDED attempt); a
	// late charge refunded (or its refund pending with a finding); a
	// payment in review
	bySucceeded, byLateRefunded, byLatePending, byReview int
	// charges of payments that are not final (stuck: I2 reports them)
	inFlight int
	// before reconciliation only: charges of canceled or failed payments
	// that payd has not recorded as late yet (reconciliation's to find)
	awaiting    []string
	unaccounted []string // charges
	badRefunds  []string // gateway refunds without a succeeded refund row of payd
}

func (a faultI8) String() string {
	return fmt.Sprintf("%d charges (%d the payment's own, %d late and refunded, %d late with the refund pending and a finding, %d of payments in review, %d late and not yet found, %d of payments in flight, %d unaccounted), %d refunds (%d unaccounted)",
		a.charges, a.bySucceeded, a.byLateRefunded, a.byLatePending, a.byReview, len(a.awaiting), a.inFlight, len(a.unaccounted),
		a.refunds, len(a.badRefunds))
}

// accountLedger classifies every entry of the gateway's ledger against
// payd's records (q). strict is the check after reconciliation: a charge of
// a canceled or failed payment that payd has not recorded as a late charge
// is then unaccounted; before it, it is counted as awaiting.
func accountLedger(t faultT, q faultQuerier, entries []connector.LedgerEntry, strict bool) faultI8 {
	t.Helper()
	var a faultI8
	type pay struct {
		status, ref, currency string
		amount                int64
		attempts              int
	}
	pays := map[string]*pay{}
	rows, err := q.Query(`SELECT id, status, gateway_reference, currency, amount, attempt_count FROM payments`)
	if err != nil {
		t.Fatalf("I8: load payments: %v", err)
	}
	for rows.Next() {
		var id string
		p := &pay{}
		if err := rows.Scan(&id, &p.status, &p.ref, &p.currency, &p.amount, &p.attempts); err != nil {
			t.Fatalf("I8: scan payment: %v", err)
		}
		pays[id] = p
	}
	rows.Close()
	type att struct {
		pid, status, code string
		n                 int
	}
	atts := map[string]att{}
	rows, err = q.Query(`SELECT idempotency_key, payment_id, status, error_code, attempt_number FROM payment_attempts`)
	if err != nil {
		t.Fatalf("I8: load attempts: %v", err)
	}
	for rows.Next() {
		var k string
		var x att
		if err := rows.Scan(&k, &x.pid, &x.status, &x.code, &x.n); err != nil {
			t.Fatalf("I8: scan attempt: %v", err)
		}
		atts[k] = x
	}
	rows.Close()
	type refund struct {
		pid, status, currency, reason, chargeRef string
		amount                                   int64
	}
	refunds := map[string]refund{}
	late := map[string]refund{} // payment|charge reference → its late-charge refund
	rows, err = q.Query(`SELECT id, payment_id, status, currency, reason, charge_reference, amount FROM refunds`)
	if err != nil {
		t.Fatalf("I8: load refunds: %v", err)
	}
	for rows.Next() {
		var id string
		var r refund
		if err := rows.Scan(&id, &r.pid, &r.status, &r.currency, &r.reason, &r.chargeRef, &r.amount); err != nil {
			t.Fatalf("I8: scan refund: %v", err)
		}
		refunds[id] = r
		if r.reason == payment.RefundReasonChargeAfterCancel {
			late[r.pid+"|"+r.chargeRef] = r
		}
	}
	rows.Close()
	found := map[string]bool{} // references reconciliation has a finding about
	rows, err = q.Query(`SELECT reference FROM reconciliation_findings`)
	if err != nil {
		t.Fatalf("I8: load findings: %v", err)
	}
	for rows.Next() {
		var ref string
		if err := rows.Scan(&ref); err != nil {
			t.Fatalf("I8: scan finding: %v", err)
		}
		found[ref] = true
	}
	rows.Close()

	for _, e := range entries {
		switch e.Kind {
		case connector.EntryRefund:
			a.refunds++
			r, ok := refunds[e.IdempotencyKey]
			if !ok || r.pid != e.PaymentID || r.status != string(payment.RefundSucceeded) ||
				r.amount != e.Amount.Minor || r.currency != e.Amount.Currency {
				a.badRefunds = append(a.badRefunds, fmt.Sprintf("gateway refund %s of %s (%d %s, charge %s, key %q): payd's refund row %+v (found %v)",
					e.Reference, e.PaymentID, e.Amount.Minor, e.Amount.Currency, e.ChargeReference, e.IdempotencyKey, r, ok))
			}
			continue
		case connector.EntryCharge:
		default:
			a.unaccounted = append(a.unaccounted, fmt.Sprintf("gateway entry %s of kind %q", e.Reference, e.Kind))
			continue
		}
		a.charges++
		x, okAtt := atts[e.IdempotencyKey]
		p := pays[e.PaymentID]
		what := fmt.Sprintf("charge %s of %s (%d %s, key %s, %s)", e.Reference, e.PaymentID, e.Amount.Minor, e.Amount.Currency,
			e.IdempotencyKey, e.Status)
		switch {
		case p == nil:
			a.unaccounted = append(a.unaccounted, what+": no such payment")
			continue
		case !okAtt || x.pid != e.PaymentID:
			a.unaccounted = append(a.unaccounted, what+": no attempt of the payment has its key")
			continue
		case e.Amount.Minor != p.amount || e.Amount.Currency != p.currency:
			a.unaccounted = append(a.unaccounted, fmt.Sprintf("%s: the payment is %d %s", what, p.amount, p.currency))
			continue
		}
		switch p.status {
		case "SUCCEEDED", "PARTIALLY_REFUNDED", "REFUNDED", "RETURNED", "SENT":
			// (SENT: a bank payment on the rail, recorded; it is not final,
			// which is I2's to report if it stays so)
			if x.status == string(payment.AttemptSucceeded) && p.ref == e.Reference {
				a.bySucceeded++
			} else {
				a.unaccounted = append(a.unaccounted, fmt.Sprintf("%s: the payment is %s with charge %s; this attempt (%d) is %s",
					what, p.status, p.ref, x.n, x.status))
			}
		case "CANCELED", "FAILED":
			r, ok := late[e.PaymentID+"|"+e.Reference]
			switch {
			case ok && r.status == string(payment.RefundSucceeded) && x.status == string(payment.AttemptSucceeded) &&
				x.code == payment.RefundReasonChargeAfterCancel && r.amount == e.Amount.Minor:
				a.byLateRefunded++
			case ok && r.status == string(payment.RefundPending) && found[e.Reference]:
				a.byLatePending++
			case !ok && !strict:
				a.awaiting = append(a.awaiting, what)
			default:
				a.unaccounted = append(a.unaccounted, fmt.Sprintf("%s: the payment is %s; attempt %d %s %q; late-charge refund %+v (recorded %v, finding %v)",
					what, p.status, x.n, x.status, x.code, r, ok, found[e.Reference]))
			}
		case "REQUIRES_REVIEW":
			a.byReview++
		default:
			// a payment still in flight: the engine is yet to record it,
			// and a payment that stays so is I2's (not final)
			a.inFlight++
		}
	}
	return a
}

// checkI8 reports I8's violations (after reconciliation).
func checkI8(t faultT, a faultI8) {
	t.Helper()
	reportViolations(t, "I8: unaccounted charge", a.unaccounted)
	reportViolations(t, "I8: unaccounted refund", a.badRefunds)
	reportViolations(t, "I8: late charge not recorded after reconciliation", a.awaiting)
}
