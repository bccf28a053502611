package bench

// -flows: payment flows (seed 000, docs/flows.md) beside the run's card
// payments. Once the card payments (and -sessions) are final, the same payd
// gets the users of -flows flows (per flow -flow-payers payers, each with a
// CARD payin method pm_card_visa, and -flow-payees payees with an ACH payout
// account, shared by every flow), one invoice per flow naming them (payers'
// shares summing to amount_due, payees 80 % of it: the platform keeps the
// rest), then POST /v1/payment-flows for each invoice by -flow-c clients,
// closed loop. Every flow is then read back (GET /v1/payment-flows/{id})
// until it is final; it must be settled, its invoice PAID, its payins sum to
// amount_due, its payouts and the platform's remainder too, with exactly
// one sandbox charge of its amount per payment. Flows settled/s, the time
// to settled and, from the spawned payd's /metrics, what each flow:recompute
// cost, go into the report (docs/BENCHMARKS.md "Payment flows").

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/payment"
)

// flowDue is every bench flow's invoice amount_due, in USD minor units.
const flowDue = 10000

// flowPayeeShare is the part of amount_due the payees get, in percent.
const flowPayeeShare = 80

// flowRun is one flow the bench created.
type flowRun struct {
	start     time.Time     // first try of the flow's create
	create    time.Duration // latency of the create that was accepted
	invoiceID string
	flowID    string
	tries     int
	failure   string // why it was not created: "invoice 422", "create network", …
	final     flowView
}

// flowView is a flow as GET /v1/payment-flows/{id} shows it, amounts in
// minor units.
type flowView struct {
	Status    string
	Modified  time.Time
	Version   int
	Due       int64
	Collected int64
	PaidOut   int64
	Remainder int64
	Shortfall int64
	Payments  []flowPaymentView
	Invoice   string // the invoice's status, read once the flow is final
	Err       string // why it could not be read
}

type flowPaymentView struct {
	ID, Direction, Status string
	Amount                int64
}

// recomputeFigures is what payd's flow:recompute metrics moved by during
// the flows phase.
type recomputeFigures struct {
	Source string `json:"source"`
	// Outcomes counts recomputes by outcome (changed, unchanged, stale,
	// error); PerFlow is each ÷ flows settled.
	Outcomes map[string]float64 `json:"outcomes"`
	PerFlow  map[string]float64 `json:"per_flow"`
	// Timed is the histogram's count (changed and unchanged runs: stale
	// ones return before the plan and are not timed); its quantiles are
	// interpolated within buckets (0.001 to 1 s), as Prometheus's
	// histogram_quantile does.
	Timed  float64 `json:"timed"`
	P50    float64 `json:"p50_ms"`
	P99    float64 `json:"p99_ms"`
	MeanMs float64 `json:"mean_ms"` // sum ÷ count: one recompute's transaction, all its round trips to Postgres
	// P99Capped: the p99 fell in the +Inf bucket; P99 is then the largest
	// finite bound (1 s), a floor.
	P99Capped bool   `json:"p99_capped,omitempty"`
	Error     string `json:"error,omitempty"`
}

// flowReport is the -flows part of a run.
type flowReport struct {
	N            int            `json:"n"`
	Payers       int            `json:"payers_per_flow"`
	Payees       int            `json:"payees_per_flow"`
	Concurrency  int            `json:"concurrency"`
	Created      int            `json:"created"`
	Failures     map[string]int `json:"failures,omitempty"`
	Retries      int            `json:"retries"`
	Settled      int            `json:"settled"`
	Statuses     map[string]int `json:"statuses"`
	Seconds      float64        `json:"seconds"` // first flow create → last settled
	PerSecond    float64        `json:"settled_per_second"`
	SetupSeconds float64        `json:"setup_seconds"` // users and invoices, before the first flow create
	// PaymentsPerSecond is the flows' payments (payins and payouts)
	// settled per second over the same span.
	PaymentsPerSecond float64 `json:"payments_settled_per_second"`
	CreateLatency     dist    `json:"create_latency"`
	TimeToSettled     dist    `json:"time_to_settled"` // first create try → the flow's modified once settled
	Recompute         *recomputeFigures
	Charges           int      `json:"charges"`
	DoubleCharged     []string `json:"double_charged"`
	Missing           []string `json:"missing"`      // a settled payment without a charge
	WrongAmount       []string `json:"wrong_amount"` // a charge of another amount or currency
	Wrong             []string `json:"wrong"`        // flows whose money or invoice is not right
	// Tasks and CPU per settled flow over the flows phase (--spawn).
	TasksPerFlow float64 `json:"tasks_per_flow,omitempty"`
	PaydCPUMs    float64 `json:"payd_cpu_ms_per_flow,omitempty"`
	MachineCPUMs float64 `json:"machine_cpu_ms_per_flow,omitempty"`

	first, last time.Time
}

// flowFinal: a flow in this status moves no more in a bench run.
func flowFinal(st string) bool {
	return st == string(payment.FlowSettled) || st == string(payment.FlowFailed) || st == string(payment.FlowCanceled)
}

// split divides total into n parts that sum to it, the first ones a minor
// unit larger when it does not divide.
func split(total int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = total / int64(n)
		if int64(i) < total%int64(n) {
			out[i]++
		}
	}
	return out
}

func payerExt(runID string, flow, j int) string {
	return fmt.Sprintf("bench-%s-f%d-payer%d", runID, flow, j)
}
func payeeExt(runID string, j int) string { return fmt.Sprintf("bench-%s-payee%d", runID, j) }

// userSpecs are the users of the flows phase: every flow's payers, with a
// card that succeeds, then the payees every flow shares, with an ACH
// account the sandbox settles.
func userSpecs(o Options, runID string) []map[string]any {
	var out []map[string]any
	for i := range o.flows {
		for j := range o.flowPayers {
			out = append(out, map[string]any{"external_id": payerExt(runID, i, j), "name": fmt.Sprintf("Payer %d of flow %d", j, i),
				"payin_method": map[string]any{"payment_method_type": "CARD", "payment_method_id": sandbox.CardVisa}})
		}
	}
	for j := range o.flowPayees {
		name := fmt.Sprintf("Payee %d", j)
		out = append(out, map[string]any{"external_id": payeeExt(runID, j), "name": name,
			"payout_account": map[string]any{"method": "ACH", "beneficiary_name": name,
				"beneficiary_account": sandbox.BankAccountSettles, "beneficiary_routing": "021000021",
				"beneficiary_bank_country": "US"}})
	}
	return out
}

// flowInvoiceSpec is flow i's invoice: its payers' shares sum to flowDue,
// its payees' to flowPayeeShare % of it.
func flowInvoiceSpec(o Options, runID string, i int) map[string]any {
	var payers, payees []map[string]any
	for j, a := range split(flowDue, o.flowPayers) {
		payers = append(payers, map[string]any{"external_id": payerExt(runID, i, j), "amount": payment.FormatMajor(a, "USD")})
	}
	for j, a := range split(flowDue*flowPayeeShare/100, o.flowPayees) {
		payees = append(payees, map[string]any{"external_id": payeeExt(runID, j), "amount": payment.FormatMajor(a, "USD")})
	}
	return map[string]any{"external_id": fmt.Sprintf("bench-%s-finv%d", runID, i), "currency": "USD",
		"amount_due": payment.FormatMajor(flowDue, "USD"), "payers": payers, "payees": payees}
}

// runFlows is the flows phase: users, invoices, then the flows at
// -flow-c, awaited until each is final, then every invoice read.
func runFlows(ctx context.Context, o Options, t *target, hc *http.Client, runID string) ([]flowRun, float64, error) {
	setup := time.Now()
	users := userSpecs(o, runID)
	if err := parallel(ctx, len(users), o.flowC, func(i int) error {
		ext := users[i]["external_id"].(string)
		if _, data, _, _, failure := postJSON(ctx, hc, t, "/v1/users", ext, users[i]); failure != "" {
			return fmt.Errorf("bench: create user %s: %s %s", ext, failure, strings.TrimSpace(string(data)))
		}
		return nil
	}); err != nil {
		return nil, 0, err
	}
	runs := make([]flowRun, o.flows)
	_ = parallel(ctx, o.flows, o.flowC, func(i int) error {
		spec := flowInvoiceSpec(o, runID, i)
		_, data, _, tries, failure := postJSON(ctx, hc, t, "/v1/invoices", spec["external_id"].(string), spec)
		runs[i].tries += tries
		var inv struct {
			ID string `json:"id"`
		}
		switch {
		case failure != "":
			runs[i].failure = "invoice " + failure
		case json.Unmarshal(data, &inv) != nil || !validID(inv.ID):
			runs[i].failure = "invoice without an id"
		default:
			runs[i].invoiceID = inv.ID
		}
		return nil
	})
	setupSeconds := time.Since(setup).Seconds()
	_ = parallel(ctx, o.flows, o.flowC, func(i int) error {
		r := &runs[i]
		if r.invoiceID == "" {
			return nil
		}
		r.start = time.Now()
		key := fmt.Sprintf("bench-%s-flow%d", runID, i)
		code, data, lat, tries, failure := postJSON(ctx, hc, t, "/v1/payment-flows", key, map[string]any{"external_id": key,
			"invoice": map[string]any{"id": r.invoiceID}, "type": payment.FlowTypeSingleInvoice})
		r.tries += tries
		if failure != "" {
			r.failure = "create " + failure
			return nil
		}
		var f struct {
			Data struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if json.Unmarshal(data, &f) != nil || !validID(f.Data.ID) {
			r.failure = "create " + strconv.Itoa(code) + " without an id"
			return nil
		}
		r.flowID, r.create = f.Data.ID, lat
		return nil
	})
	for i := range runs {
		if runs[i].invoiceID == "" && runs[i].failure == "" || runs[i].flowID == "" && runs[i].failure == "" {
			runs[i].failure = "not sent"
		}
	}
	err := awaitFlows(ctx, hc, t, runs, o.flowC, o.pollEvery)
	_ = parallel(context.WithoutCancel(ctx), len(runs), o.flowC, func(i int) error {
		if runs[i].flowID != "" {
			runs[i].final.Invoice = invoiceStatus(ctx, hc, t, runs[i].invoiceID)
		}
		return nil
	})
	return runs, setupSeconds, err
}

// awaitFlows reads every created flow until it is final or ctx ends,
// keeping the bench's polling small beside payd's work (as await does).
func awaitFlows(ctx context.Context, hc *http.Client, t *target, runs []flowRun, c int, every time.Duration) error {
	var pending []int
	for i := range runs {
		if runs[i].flowID != "" {
			pending = append(pending, i)
		}
	}
	for len(pending) > 0 {
		began := time.Now()
		_ = parallel(ctx, len(pending), c, func(k int) error {
			r := &runs[pending[k]]
			r.final = getFlow(ctx, hc, t, r.flowID)
			return nil
		})
		pending = slices.DeleteFunc(pending, func(i int) bool { return flowFinal(runs[i].final.Status) })
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(max(every, 3*time.Since(began))):
		}
	}
	return nil
}

// getFlow reads a flow; a failed read says why in Err.
func getFlow(ctx context.Context, hc *http.Client, t *target, id string) flowView {
	var v flowView
	var body struct {
		Data struct {
			Modified string `json:"modified"`
			Status   string `json:"status"`
			Plan     struct {
				Version int `json:"version"`
				Amounts struct {
					Due               string `json:"due"`
					Collected         string `json:"collected"`
					PaidOut           string `json:"paid_out"`
					PlatformRemainder string `json:"platform_remainder"`
					Shortfall         string `json:"shortfall"`
				} `json:"amounts"`
				Batches []struct {
					Payments []struct {
						Amount, Currency, Direction, Status string
						PaymentID                           string `json:"payment_id"`
					} `json:"payments"`
				} `json:"batches"`
			} `json:"payment_plan"`
		} `json:"data"`
	}
	if err := getJSON(ctx, hc, t, "/v1/payment-flows/"+id, &body); err != nil {
		v.Err = err.Error()
		return v
	}
	d := body.Data
	v.Status, v.Version = d.Status, d.Plan.Version
	v.Modified, _ = time.Parse(time.RFC3339Nano, d.Modified)
	a := d.Plan.Amounts
	num := func(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }
	v.Due, v.Collected, v.PaidOut, v.Remainder, v.Shortfall = num(a.Due), num(a.Collected), num(a.PaidOut),
		num(a.PlatformRemainder), num(a.Shortfall)
	for _, b := range d.Plan.Batches {
		for _, p := range b.Payments {
			v.Payments = append(v.Payments, flowPaymentView{ID: p.PaymentID, Direction: p.Direction, Status: p.Status,
				Amount: num(p.Amount)})
		}
	}
	return v
}

// getJSON GETs path and decodes a 200's body into v.
func getJSON(ctx context.Context, hc *http.Client, t *target, path string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.base+path, nil)
	req.Header.Set("x-api-key", t.key)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// invoiceStatus reads an invoice's status (GET /v1/invoices/{id}).
func invoiceStatus(ctx context.Context, hc *http.Client, t *target, id string) string {
	var v struct {
		Status string `json:"status"`
	}
	if err := getJSON(ctx, hc, t, "/v1/invoices/"+id, &v); err != nil {
		return "unread"
	}
	return v.Status
}

// fillFlows computes the flows' figures and their check: every flow
// settled, its invoice PAID, payins summing to amount_due and payouts plus
// the platform's remainder too, exactly one sandbox charge of its amount in
// USD per payment of the plan.
func fillFlows(rep *Report, o Options, runs []flowRun, setupSeconds float64, rc *recomputeFigures,
	ledger []sandbox.Charge, ledgerErr error) {
	fr := &flowReport{N: o.flows, Payers: o.flowPayers, Payees: o.flowPayees, Concurrency: o.flowC, Statuses: map[string]int{},
		SetupSeconds: setupSeconds, Recompute: rc, DoubleCharged: []string{}, Missing: []string{}, WrongAmount: []string{},
		Wrong: []string{}}
	rep.Flows = fr
	charges := map[string][]sandbox.Charge{}
	for _, c := range ledger {
		charges[c.PaymentID] = append(charges[c.PaymentID], c)
	}
	var created, ttf []time.Duration
	var notSettled []string
	payments := 0
	for _, r := range runs {
		fr.Retries += max(r.tries-2, 0)
		if r.failure != "" {
			if fr.Failures == nil {
				fr.Failures = map[string]int{}
			}
			fr.Failures[r.failure]++
			continue
		}
		fr.Created++
		created = append(created, r.create)
		if fr.first.IsZero() || r.start.Before(fr.first) {
			fr.first = r.start
		}
		v := r.final
		st := v.Status
		if st == "" {
			st = "unread"
		}
		fr.Statuses[st]++
		var payins, payouts int64
		var nIn, nOut int
		for _, p := range v.Payments {
			chs := charges[p.ID]
			fr.Charges += len(chs)
			for _, c := range chs {
				if c.Amount != p.Amount || c.Currency != "USD" {
					fr.WrongAmount = append(fr.WrongAmount, p.ID)
					break
				}
			}
			switch {
			case len(chs) > 1:
				fr.DoubleCharged = append(fr.DoubleCharged, p.ID)
			case ledgerErr == nil && p.Status == string(payment.FlowSettled) && len(chs) == 0:
				fr.Missing = append(fr.Missing, p.ID)
			}
			if p.Status != string(payment.FlowSettled) {
				continue
			}
			if p.Direction == payment.DirectionPayout {
				payouts += p.Amount
				nOut++
			} else {
				payins += p.Amount
				nIn++
			}
		}
		if st != string(payment.FlowSettled) {
			notSettled = append(notSettled, r.flowID+" "+st)
			continue
		}
		var wrong []string
		if r.final.Invoice != "PAID" {
			wrong = append(wrong, "invoice "+r.final.Invoice)
		}
		if payins != flowDue || v.Collected != flowDue || v.Due != flowDue || nIn != o.flowPayers {
			wrong = append(wrong, fmt.Sprintf("%d payins of %d, collected %d, due %d", nIn, payins, v.Collected, v.Due))
		}
		if payouts+v.Remainder != flowDue || v.PaidOut != payouts || nOut != o.flowPayees || v.Shortfall != 0 {
			wrong = append(wrong, fmt.Sprintf("%d payouts of %d + remainder %d (paid_out %d, shortfall %d)", nOut, payouts,
				v.Remainder, v.PaidOut, v.Shortfall))
		}
		if len(wrong) > 0 {
			fr.Wrong = append(fr.Wrong, r.flowID+": "+strings.Join(wrong, "; "))
			continue
		}
		fr.Settled++
		payments += nIn + nOut
		ttf = append(ttf, v.Modified.Sub(r.start))
		if v.Modified.After(fr.last) {
			fr.last = v.Modified
		}
	}
	fr.CreateLatency, fr.TimeToSettled = distOf(created), distOf(ttf)
	if fr.Settled > 0 {
		fr.Seconds = fr.last.Sub(fr.first).Seconds()
		if fr.Seconds > 0 {
			fr.PerSecond = float64(fr.Settled) / fr.Seconds
			fr.PaymentsPerSecond = float64(payments) / fr.Seconds
		}
	}
	if rc != nil && fr.Settled > 0 {
		rc.PerFlow = map[string]float64{}
		for k, n := range rc.Outcomes {
			rc.PerFlow[k] = n / float64(fr.Settled)
		}
	}
	ok := fr.Settled == fr.N && len(fr.DoubleCharged)+len(fr.Missing)+len(fr.WrongAmount)+len(fr.Wrong) == 0
	ledgerNote := fmt.Sprintf("%d charges: %d double-charged%s, %d settled without a charge%s, %d of another amount or currency%s",
		fr.Charges, len(fr.DoubleCharged), examples(fr.DoubleCharged), len(fr.Missing), examples(fr.Missing),
		len(fr.WrongAmount), examples(fr.WrongAmount))
	if ledgerErr != nil {
		ledgerNote = "sandbox ledger unavailable"
	}
	res := "PASS"
	if !ok {
		res = "FAIL"
		rep.Pass = false
	}
	rep.Checks = append(rep.Checks, check{Name: "flows", Result: res,
		Detail: fmt.Sprintf("%d/%d flows settled with invoice PAID, payins = amount due, payouts + platform remainder = amount due%s%s; "+
			"%d wrong%s; %s", fr.Settled, fr.N, counts(" (not created: ", fr.Failures, ")"), examples(notSettled),
			len(fr.Wrong), examples(fr.Wrong), ledgerNote)})
}

// printFlows writes the flows' lines of the text report.
func printFlows(w io.Writer, r *Report) {
	f := r.Flows
	if f == nil {
		return
	}
	fmt.Fprintf(w, "flows: %d flows (%d payers by card, %d payees by ACH each) at concurrency %d: %d settled in %.2f s = %.1f flows/s "+
		"(%.1f flow payments settled/s); users and invoices took %.2f s before\n",
		f.N, f.Payers, f.Payees, f.Concurrency, f.Settled, f.Seconds, f.PerSecond, f.PaymentsPerSecond, f.SetupSeconds)
	fmt.Fprintf(w, "flows: create p50/p95/p99/max %.1f/%.1f/%.1f/%.1f ms, time to settled %.1f/%.1f/%.1f/%.1f ms; statuses %s; retries %d",
		f.CreateLatency.P50, f.CreateLatency.P95, f.CreateLatency.P99, f.CreateLatency.Max,
		f.TimeToSettled.P50, f.TimeToSettled.P95, f.TimeToSettled.P99, f.TimeToSettled.Max, counts("", f.Statuses, ""), f.Retries)
	if f.TasksPerFlow > 0 {
		fmt.Fprintf(w, "; %.2f asynq tasks per flow", f.TasksPerFlow)
	}
	fmt.Fprintln(w)
	if rc := f.Recompute; rc != nil {
		if rc.Error != "" {
			fmt.Fprintf(w, "flows: recompute figures unavailable: %s\n", rc.Error)
		} else {
			var per []string
			for _, k := range slices.Sorted(maps.Keys(rc.PerFlow)) {
				per = append(per, fmt.Sprintf("%s %.2f", k, rc.PerFlow[k]))
			}
			capped := ""
			if rc.P99Capped {
				capped = "≥ "
			}
			fmt.Fprintf(w, "flows: flow:recompute (payd's histogram, %s): %.0f timed, p50 %.2f ms, p99 %s%.2f ms, mean transaction %.2f ms; per flow %s\n",
				rc.Source, rc.Timed, rc.P50, capped, rc.P99, rc.MeanMs, strings.Join(per, ", "))
		}
	}
	if f.MachineCPUMs > 0 {
		fmt.Fprintf(w, "flows: CPU per settled flow %.2f ms payd, %.2f ms machine\n", f.PaydCPUMs, f.MachineCPUMs)
	}
}

// Reading payd's /metrics (Prometheus text format): only the two
// flow:recompute series are parsed.

const (
	metricRecomputes = "payd_payment_flow_recomputes_total"
	metricRecompute  = "payd_payment_flow_recompute_duration_seconds"
)

// recomputeMetrics are the flow:recompute series at one moment.
type recomputeMetrics struct {
	outcomes map[string]float64
	buckets  map[float64]float64 // upper bound → cumulative count (+Inf included)
	sum      float64
	count    float64
}

// parseRecomputeMetrics reads the flow:recompute series of a /metrics
// answer.
func parseRecomputeMetrics(r io.Reader) (recomputeMetrics, error) {
	m := recomputeMetrics{outcomes: map[string]float64{}, buckets: map[float64]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "payd_payment_flow_recompute") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		val, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name, labels := line[:sp], ""
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name, labels = name[:i], name[i:]
		}
		label := func(k string) string {
			_, rest, ok := strings.Cut(labels, k+`="`)
			if !ok {
				return ""
			}
			v, _, _ := strings.Cut(rest, `"`)
			return v
		}
		switch name {
		case metricRecomputes:
			m.outcomes[label("outcome")] = val
		case metricRecompute + "_bucket":
			le, err := strconv.ParseFloat(label("le"), 64) // "+Inf" parses as +Inf
			if err == nil {
				m.buckets[le] = val
			}
		case metricRecompute + "_sum":
			m.sum = val
		case metricRecompute + "_count":
			m.count = val
		}
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if len(m.buckets) == 0 {
		return m, fmt.Errorf("no %s histogram in /metrics", metricRecompute)
	}
	return m, nil
}

// recomputeDelta is what the series moved by from before to after.
func recomputeDelta(before, after recomputeMetrics, source string) *recomputeFigures {
	rc := &recomputeFigures{Source: source, Outcomes: map[string]float64{}}
	for k, v := range after.outcomes {
		if d := v - before.outcomes[k]; d > 0 {
			rc.Outcomes[k] = d
		}
	}
	rc.Timed = after.count - before.count
	if rc.Timed > 0 {
		rc.MeanMs = 1000 * (after.sum - before.sum) / rc.Timed
	}
	bounds := slices.Sorted(maps.Keys(after.buckets))
	cum := make([]float64, len(bounds))
	for i, b := range bounds {
		cum[i] = after.buckets[b] - before.buckets[b]
	}
	rc.P50, rc.P99 = 1000*bucketQuantile(0.50, bounds, cum), 1000*bucketQuantile(0.99, bounds, cum)
	if n := len(cum); n > 1 && math.IsInf(bounds[n-1], 1) && cum[n-2] < 0.99*cum[n-1] {
		rc.P99Capped = true
	}
	return rc
}

// bucketQuantile is Prometheus's histogram_quantile: linear within the
// bucket the rank falls in (from 0 for the first); a rank in the +Inf
// bucket answers the largest finite bound.
func bucketQuantile(q float64, bounds, cum []float64) float64 {
	if len(cum) == 0 || cum[len(cum)-1] == 0 {
		return 0
	}
	rank := q * cum[len(cum)-1]
	for i, c := range cum {
		if c < rank {
			continue
		}
		if math.IsInf(bounds[i], 1) {
			if i == 0 {
				return 0
			}
			return bounds[i-1]
		}
		lo, below := 0.0, 0.0
		if i > 0 {
			lo, below = bounds[i-1], cum[i-1]
		}
		if c == below {
			return bounds[i]
		}
		return lo + (bounds[i]-lo)*(rank-below)/(c-below)
	}
	return bounds[len(bounds)-1]
}

// readRecomputeMetrics GETs a /metrics URL (with its basic auth in the
// URL's user info) and parses it.
func readRecomputeMetrics(ctx context.Context, hc *http.Client, url string) (recomputeMetrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return recomputeMetrics{}, fmt.Errorf("metrics: the URL does not parse")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return recomputeMetrics{}, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return recomputeMetrics{}, fmt.Errorf("metrics: GET %s: %s", req.URL.Redacted(), resp.Status)
	}
	return parseRecomputeMetrics(resp.Body)
}
