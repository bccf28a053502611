package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// BenchmarkFlowRecompute measures one store.RecomputeFlow, the transaction
// of a flow:recompute task, on real Postgres and without HTTP or asynq:
//
//   - payees=1: a two-party flow (one payer, one payee); payees=100: two
//     payers and 100 payees;
//   - unchanged: the flow's payins settled and its payouts created, the
//     recompute finds nothing to do (the most frequent run: every
//     transition of a payment of the flow asks for one);
//   - payouts: the flow's payins just settled, the recompute creates every
//     payout (one payment, its payout details and its flow row per payee)
//     and stores the new plan version;
//   - others=0: the flow is alone; others=10000: the database also holds
//     10,000 settled two-party flows (invoices, payers, payees, payments,
//     applications, payout details, plans, events), to show that the cost
//     does not grow with the flows around it.
//
// Every iteration is timed alone; p50-ms and p99-ms are its percentiles
// (docs/BENCHMARKS.md "Payment flows"). The target is a 100-payee
// recompute's p99 ≤ 50 ms on an idle system. Run it without -race for
// figures:
//
//	source "$(scripts/services.sh up)"
//	go test ./store -run XXX -bench FlowRecompute -benchtime 200x
func BenchmarkFlowRecompute(b *testing.B) {
	for _, others := range []int{0, 10000} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) {
			fb := openFlowBench(b)
			if others > 0 {
				fb.seedOthers(b, others)
			}
			for _, payees := range []int{1, 100} {
				payers := 1
				if payees > 1 {
					payers = 2
				}
				fb.parties(b, payers, payees)
				b.Run(fmt.Sprintf("payees=%d/unchanged", payees), func(b *testing.B) {
					id := fb.readyFlow(b)
					res, err := fb.st.RecomputeFlow(context.Background(), id, fb.step(b, id), "bench") // creates the payouts
					if err != nil || len(res.Created) != payees {
						b.Fatalf("first recompute: %d created, %v", len(res.Created), err)
					}
					seq := fb.step(b, id)
					fb.time(b, func(int) {
						res, err := fb.st.RecomputeFlow(context.Background(), id, seq, "bench")
						if err != nil || res.Outcome != store.RecomputeUnchanged {
							b.Fatalf("recompute: %s, %v; want unchanged", res.Outcome, err)
						}
					}, nil)
				})
				b.Run(fmt.Sprintf("payees=%d/payouts", payees), func(b *testing.B) {
					ids := make([]string, b.N)
					seqs := make([]int, b.N)
					fb.time(b, func(i int) {
						res, err := fb.st.RecomputeFlow(context.Background(), ids[i], seqs[i], "bench")
						if err != nil || res.Outcome != store.RecomputeChanged || len(res.Created) != payees {
							b.Fatalf("recompute: %s, %d created, %v; want changed with %d payouts", res.Outcome, len(res.Created), err, payees)
						}
					}, func(i int) {
						ids[i] = fb.readyFlow(b)
						seqs[i] = fb.step(b, ids[i])
					})
				})
			}
		})
	}
}

// flowBench is one benchmark database: the store as payd's app role, the
// owner's connection for what the bench does behind payd's back (settling
// payments, seeding), and the parties of the flows to come.
type flowBench struct {
	st     *store.Store
	owner  *sql.DB
	tenant payment.Tenant
	payers []store.NewPayee
	payees []store.NewPayee
	n      int
}

func openFlowBench(b *testing.B) *flowBench {
	b.Helper()
	ctx := context.Background()
	owner, app := testenv.PostgresURLs(b)
	if err := store.Migrate(ctx, owner, testenv.AppRole); err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(ctx, store.Config{URL: app, MaxOpenConns: 8}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	db, err := sql.Open("postgres", owner)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	tn, err := st.CreateTenant(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	return &flowBench{st: st, owner: db, tenant: tn}
}

// parties creates the users of the next flows: payers with a card, payees
// with an ACH account, their shares of 10,000 minor units (the payees 80 %).
func (fb *flowBench) parties(b *testing.B, payers, payees int) {
	b.Helper()
	ctx := context.Background()
	fb.payers, fb.payees = nil, nil
	for j := range payers {
		ext := fmt.Sprintf("payer-%d-of-%d", j, payers)
		if _, _, err := fb.st.CreateUser(ctx, payment.User{TenantID: fb.tenant.ID, ExternalID: ext,
			PayinMethod: &payment.PayinMethod{Type: payment.MethodCard, ID: "pm_card_visa"}}); err != nil {
			b.Fatal(err)
		}
		fb.payers = append(fb.payers, store.NewPayee{ExternalID: ext, Amount: 10000 / int64(payers)})
	}
	for j := range payees {
		ext := fmt.Sprintf("payee-%d-of-%d", j, payees)
		if _, _, err := fb.st.CreateUser(ctx, payment.User{TenantID: fb.tenant.ID, ExternalID: ext,
			PayoutAccount: &payment.PayoutAccount{Method: payment.MethodACH, BeneficiaryName: ext, BeneficiaryAccount: "123456789",
				BeneficiaryRouting: "021000021", BeneficiaryBankCountry: "US"}}); err != nil {
			b.Fatal(err)
		}
		fb.payees = append(fb.payees, store.NewPayee{ExternalID: ext, Amount: 8000 / int64(payees)})
	}
}

// readyFlow creates a flow of the current parties whose payins have
// settled: its next recompute creates the payouts.
func (fb *flowBench) readyFlow(b *testing.B) string {
	b.Helper()
	ctx := context.Background()
	fb.n++
	inv, err := fb.st.CreateInvoice(ctx, store.NewInvoice{TenantID: fb.tenant.ID, ExternalID: fmt.Sprintf("inv-%d", fb.n),
		Currency: "USD", AmountDue: 10000, Payers: fb.payers, Payees: fb.payees})
	if err != nil {
		b.Fatal(err)
	}
	f, err := fb.st.CreateFlow(ctx, store.NewFlow{TenantID: fb.tenant.ID, ExternalID: fmt.Sprintf("flow-%d", fb.n),
		InvoiceRef: inv.ID, Type: payment.FlowTypeSingleInvoice, Fingerprint: []byte("bench"), Actor: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	res, err := fb.st.RecomputeFlow(ctx, f.ID, f.StepSeq, "bench")
	if err != nil || len(res.Created) != len(fb.payers) {
		b.Fatalf("payins: %d created, %v", len(res.Created), err)
	}
	fb.settle(b, f.ID, "payins")
	return f.ID
}

// settle marks a batch's payments SUCCEEDED as the owner, as the worker
// would once the gateway said so; the trigger makes the recompute due.
func (fb *flowBench) settle(b *testing.B, flowID, batch string) {
	b.Helper()
	_, err := fb.owner.Exec(`UPDATE payments SET status = 'SUCCEEDED', next_step = NULL, next_step_at = NULL,
		succeeded_at = now(), settled_at = now(), updated_at = now()
		WHERE id IN (SELECT payment_id FROM payment_flow_payments WHERE flow_id = $1 AND batch = $2)`, flowID, batch)
	if err != nil {
		b.Fatal(err)
	}
}

func (fb *flowBench) step(b *testing.B, id string) int {
	b.Helper()
	seq, err := fb.st.FlowStep(context.Background(), id)
	if err != nil {
		b.Fatal(err)
	}
	return seq
}

// time runs op b.N times, each timed alone (prep, when given, runs before
// each op outside the timer), and reports the p50 and p99 in ms.
func (fb *flowBench) time(b *testing.B, op func(i int), prep func(i int)) {
	b.Helper()
	if prep != nil {
		for i := range b.N {
			prep(i)
		}
	}
	ds := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range b.N {
		began := time.Now()
		op(i)
		ds[i] = time.Since(began)
	}
	b.StopTimer()
	slices.Sort(ds)
	pct := func(p float64) float64 {
		i := int(p*float64(len(ds))+0.999999) - 1
		return float64(ds[min(max(i, 0), len(ds)-1)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// seedOthers fills the database with n settled two-party flows: one made
// through the store (invoice, flow, payins and payouts settled, final
// recompute), then cloned n-1 times by INSERT … SELECT generate_series as
// the owner, every id and unique key suffixed, then VACUUM ANALYZE.
func (fb *flowBench) seedOthers(b *testing.B, n int) {
	b.Helper()
	ctx := context.Background()
	began := time.Now()
	fb.parties(b, 1, 1)
	id := fb.readyFlow(b)
	for _, batch := range []string{"", "payouts"} {
		if batch != "" {
			fb.settle(b, id, batch)
		}
		if _, err := fb.st.RecomputeFlow(ctx, id, fb.step(b, id), "bench"); err != nil {
			b.Fatal(err)
		}
	}
	var inv, status string
	if err := fb.owner.QueryRow(`SELECT invoice_id, status FROM payment_flows WHERE id = $1`, id).Scan(&inv, &status); err != nil || status != "settled" {
		b.Fatalf("template flow %s: %s, %v", id, status, err)
	}
	pays := `(SELECT id FROM payments WHERE flow_id = $1)`
	for _, c := range []struct{ table, where, arg string }{
		{"invoices", "id = $1", inv},
		{"invoice_payers", "invoice_id = $1", inv},
		{"invoice_payees", "invoice_id = $1", inv},
		{"payment_flows", "id = $1", id},
		{"payments", "flow_id = $1", id},
		{"payment_applications", "payment_id IN " + pays, id},
		{"payout_details", "payment_id IN " + pays, id},
		{"payment_events", "payment_id IN " + pays, id},
		{"payment_flow_payments", "flow_id = $1", id},
		{"payment_flow_plans", "flow_id = $1", id},
		{"payment_flow_events", "flow_id = $1", id},
	} {
		if err := cloneRows(ctx, fb.owner, c.table, c.where, c.arg, n-1); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := fb.owner.Exec(`VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
	var flows, payments int
	if err := fb.owner.QueryRow(`SELECT (SELECT count(*) FROM payment_flows), (SELECT count(*) FROM payments)`).Scan(&flows, &payments); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d flows, %d payments in %.1f s", flows, payments, time.Since(began).Seconds())
}

// cloneKeys are the columns a clone suffixes: ids, references to cloned
// rows, and the keys unique per tenant.
var cloneKeys = map[string]bool{"id": true, "invoice_id": true, "flow_id": true, "payment_id": true, "external_id": true,
	"invoice_number": true, "idempotency_key": true, "external_payment_id": true, "destination_id": true}

// cloneRows copies the rows of table matching where n times, the text
// columns of cloneKeys suffixed with ~<copy>, serial columns left to
// their sequence, generated columns to their expression.
func cloneRows(ctx context.Context, db *sql.DB, table, where, arg string, n int) error {
	rows, err := db.QueryContext(ctx, `SELECT column_name, data_type, coalesce(column_default, '') FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = $1 AND is_generated = 'NEVER' ORDER BY ordinal_position`, table)
	if err != nil {
		return err
	}
	var cols, exprs []string
	for rows.Next() {
		var name, typ, def string
		if err := rows.Scan(&name, &typ, &def); err != nil {
			rows.Close()
			return err
		}
		if strings.HasPrefix(def, "nextval(") {
			continue
		}
		expr := name
		if cloneKeys[name] && typ == "text" {
			expr = name + ` || '~' || g`
		}
		cols, exprs = append(cols, name), append(exprs, expr)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	q := fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM %s, generate_series(1, %d) g WHERE %s`,
		table, strings.Join(cols, ", "), strings.Join(exprs, ", "), table, n, where)
	if _, err := db.ExecContext(ctx, q, arg); err != nil {
		return fmt.Errorf("clone %s: %w", table, err)
	}
	return nil
}
