package bench

// The figures of a run, the checks that fail it, and the text report.

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/payment"
)

// Report is every figure of a run; -json writes it as is, and -replot reads
// it back.
type Report struct {
	Mode        string        `json:"mode"` // spawn, spawn-backlog or addr
	Addr        string        `json:"addr"`
	Mix         []scenario    `json:"mix"`
	Amounts     string        `json:"amounts"` // -amounts
	N           int           `json:"n"`
	Concurrency int           `json:"concurrency"`         // closed loop; 0 in open loop
	Rate        float64       `json:"target_rate"`         // open loop: requests per second asked for; 0 in closed loop
	Started     string        `json:"started"`             //
	Invoices    []string      `json:"invoices"`            // ids of the invoices the payments pay
	Machine     machine       `json:"machine"`             //
	Seed        *seedInfo     `json:"seed,omitempty"`      // -seed-payments
	Backlog     *backlog      `json:"backlog,omitempty"`   // -backlog
	Baselines   *baselines    `json:"baselines,omitempty"` // --spawn -baselines
	Ratios      ratios        `json:"ratios"`
	Processes   []procFigures `json:"processes,omitempty"` // --spawn: each payd process
	Tasks       *taskCount    `json:"tasks,omitempty"`     // --spawn: asynq tasks the run cost

	Intake struct {
		Accepted    int            `json:"accepted"`
		Rejected    int            `json:"rejected"` // never got a 2xx
		Retries     int            `json:"retries"`  // extra tries after 409/429/5xx/network errors
		Replayed    int            `json:"replayed"` // answered with Idempotent-Replayed
		Seconds     float64        `json:"seconds"`
		PerSecond   float64        `json:"accepted_per_second"`
		Latency     dist           `json:"latency"`
		RejectCodes map[string]int `json:"reject_codes,omitempty"` // HTTP status or "network" → count
		// LateStarts counts open-loop requests sent more than 10 ms after
		// their slot (the load generator fell behind).
		LateStarts int `json:"late_starts,omitempty"`
	} `json:"intake"`

	Final struct {
		Final       int            `json:"final"`
		NotFinal    int            `json:"not_final"`
		Seconds     float64        `json:"seconds"` // first request start → last terminal event
		PerSecond   float64        `json:"completed_per_second"`
		TimeToFinal dist           `json:"time_to_final"`
		Statuses    map[string]int `json:"statuses"`
		// NotFinalStatuses counts where the payments that did not finish
		// were left ("unseen": not found at all).
		NotFinalStatuses map[string]int `json:"not_final_statuses,omitempty"`
	} `json:"final"`

	Classes    []classReport    `json:"classes"`
	Currencies []currencyReport `json:"currencies"`

	Ledger struct {
		Source        string   `json:"source"` // in-process, remote URL, or "" when unavailable
		Unavailable   string   `json:"unavailable,omitempty"`
		Charges       int      `json:"charges"` // entries for the bench's payments
		DoubleCharged []string `json:"double_charged"`
		Missing       []string `json:"missing"`    // charged payments with no entry
		Unexpected    []string `json:"unexpected"` // entries for payments that should not have one
		// WrongAmount are payments charged another amount or currency than
		// they were posted with.
		WrongAmount []string `json:"wrong_amount"`
	} `json:"ledger"`

	// Sessions is the -sessions phase: payment sessions created and
	// submitted after the card payments, on the same payd.
	Sessions *sessionReport `json:"sessions,omitempty"`
	// Flows is the -flows phase: payment flows created after the card
	// payments (and sessions), on the same payd.
	Flows *flowReport `json:"flows,omitempty"`
	// Webhooks is the -webhooks phases: card payments again with an
	// endpoint on *, then at half the rate (webhook.go).
	Webhooks *webhookReport `json:"webhooks,omitempty"`

	Series []seriesPoint `json:"series"`
	Checks []check       `json:"checks"`
	Pass   bool          `json:"pass"`

	first, lastFinal time.Time // first request sent, last payment final
	// money is the run's -currencies and -amounts in words, "" for a run
	// in USD of small amounts: the text report then shows no figures per
	// currency, as before those flags existed.
	money string
}

// classReport is one -mix class's share of the run.
type classReport struct {
	Name          string         `json:"name"`
	Expect        string         `json:"expect"`
	Accepted      int            `json:"accepted"`
	Final         int            `json:"final"`
	Wrong         int            `json:"wrong_status"`
	Statuses      map[string]int `json:"statuses"`
	Charges       int            `json:"charges"`
	DoubleCharged int            `json:"double_charged"`
	TimeToFinal   dist           `json:"time_to_final"`
}

// currencyReport is one currency's share of the run (-currencies,
// -amounts); amounts are in its minor units.
type currencyReport struct {
	Currency       string `json:"currency"`
	Accepted       int    `json:"accepted"`
	Final          int    `json:"final"`
	Wrong          int    `json:"wrong_status"`
	MinAmount      int64  `json:"min_amount"` // of the accepted payments
	MaxAmount      int64  `json:"max_amount"`
	AmountAccepted int64  `json:"amount_accepted"`
	Charges        int    `json:"charges"`
	AmountCharged  int64  `json:"amount_charged"` // the sandbox ledger's charges of the bench's payments
	WrongAmount    int    `json:"wrong_amount"`   // charges of another amount or currency than posted
	Latency        dist   `json:"latency"`        // intake
	TimeToFinal    dist   `json:"time_to_final"`
}

type machine struct {
	CPUs         int              `json:"cpus"`
	MemTotalMB   int64            `json:"mem_total_mb"`
	Postgres     string           `json:"postgres,omitempty"`
	Redis        string           `json:"redis,omitempty"`
	WorkerConc   int              `json:"worker_concurrency"`
	DBMaxConns   int              `json:"db_max_conns"`
	GoVersion    string           `json:"go"`
	ExistingRows map[string]int64 `json:"existing_rows,omitempty"` // planner estimates before the run
}

type seedInfo struct {
	seedResult
	Seconds float64 `json:"seconds"` // copy + analyze
	Tenant  string  `json:"tenant"`
}

type backlog struct {
	Payments       int     `json:"payments"`
	PostSeconds    float64 `json:"post_seconds"`
	QueuedBefore   int     `json:"queued_before_workers"` // pending tasks in payd's queues when the workers started
	DrainSeconds   float64 `json:"drain_seconds"`         // worker process start → last payment final
	DrainPerSecond float64 `json:"drain_payments_per_second"`
}

type baselines struct {
	Inserts     *insertBaseline  `json:"postgres_inserts,omitempty"`
	Asynq       *asynqBaseline   `json:"asynq,omitempty"`
	RedisMemory *redisTaskMemory `json:"redis_memory,omitempty"`
	Errors      []string         `json:"errors,omitempty"`
}

type taskCount struct {
	Before     map[string]int `json:"processed_before"`
	After      map[string]int `json:"processed_after"`
	Total      int            `json:"processed"`
	PerPayment float64        `json:"per_payment"` // processed tasks (all payd queues, retries included) per final payment
	// QueuedAfter are tasks still pending, scheduled or retrying in payd's
	// queues when every payment was final (e.g. safety-net inquiries, which
	// find nothing to do when they run): a cost not in PerPayment.
	QueuedAfter int `json:"queued_after"`
}

// ratios are payd's figures over the baselines (0 when not measured).
type ratios struct {
	// IntakeVsInserts is accepted/s ÷ raw durable inserts/s.
	IntakeVsInserts float64 `json:"intake_vs_raw_inserts"`
	// TasksVsAsynq is completed/s × tasks per payment ÷ raw asynq tasks/s.
	TasksVsAsynq float64 `json:"task_rate_vs_raw_asynq"`
}

type check struct {
	Name   string `json:"name"`
	Result string `json:"result"` // PASS, FAIL or SKIP
	Detail string `json:"detail"`
}

// dist is a latency distribution in milliseconds.
type dist struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// distOf uses nearest-rank percentiles; it sorts ds.
func distOf(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	slices.Sort(ds)
	rank := func(p float64) float64 {
		i := int(p*float64(len(ds))+0.999999) - 1
		return ms(ds[min(max(i, 0), len(ds)-1)])
	}
	return dist{Count: len(ds), P50: rank(0.50), P95: rank(0.95), P99: rank(0.99), Max: ms(ds[len(ds)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// fillReport computes the run's figures from what was posted (subs), what
// the observer saw (obs) and the sandbox's ledger, and runs the checks.
func fillReport(rep *Report, subs []submission, postSeconds float64, obs map[string]observation, p plan,
	ledger []sandbox.Charge, ledgerErr error, ledgerSource string) {
	t := count(rep, subs, postSeconds, obs, p)
	addChecks(rep, t, subs, obs, p, ledger, ledgerErr, ledgerSource)
	rep.Classes, rep.Currencies = t.classes, t.currencies
	rep.Pass = true
	for _, c := range rep.Checks {
		if c.Result == "FAIL" {
			rep.Pass = false
		}
	}
}

// tally is the run counted per class of -mix and per currency.
type tally struct {
	classes    []classReport
	currencies []currencyReport
	currency   map[string]int // index into currencies
	wrong      []string       // "id status" of final payments in another status than their class expects
}

// count fills the intake and end-to-end figures and the series, and
// counts the run per class and per currency.
func count(rep *Report, subs []submission, postSeconds float64, obs map[string]observation, p plan) *tally {
	t := &tally{classes: make([]classReport, len(p.classes)), currencies: make([]currencyReport, len(p.currencies)),
		currency: map[string]int{}}
	for k, c := range p.classes {
		t.classes[k] = classReport{Name: c.Name, Expect: string(c.Expect), Statuses: map[string]int{}}
	}
	for k, c := range p.currencies {
		t.currencies[k] = currencyReport{Currency: c}
		t.currency[c] = k
	}
	in, fin := &rep.Intake, &rep.Final
	in.Seconds = postSeconds
	fin.Statuses = map[string]int{}
	var lat, ttf []time.Duration
	clsTTF := make([][]time.Duration, len(p.classes))
	curLat, curTTF := make([][]time.Duration, len(p.currencies)), make([][]time.Duration, len(p.currencies))
	var first, last time.Time
	var acc, comp []timed
	for _, s := range subs {
		in.Retries += max(s.tries-1, 0)
		if !s.start.IsZero() && (first.IsZero() || s.start.Before(first)) {
			first = s.start
		}
		if s.id == "" {
			in.Rejected++
			if in.RejectCodes == nil {
				in.RejectCodes = map[string]int{}
			}
			in.RejectCodes[s.failure]++
			continue
		}
		sc, cr := p.classes[s.class], &t.classes[s.class]
		k := t.currency[s.currency]
		cur := &t.currencies[k]
		in.Accepted++
		cr.Accepted++
		cur.Accepted++
		cur.AmountAccepted += s.amount
		if cur.MinAmount == 0 || s.amount < cur.MinAmount {
			cur.MinAmount = s.amount
		}
		cur.MaxAmount = max(cur.MaxAmount, s.amount)
		if s.replayed {
			in.Replayed++
		}
		lat = append(lat, s.latency)
		curLat[k] = append(curLat[k], s.latency)
		acc = append(acc, timed{at: s.accepted, d: s.latency})
		o, ok := obs[s.id]
		if !ok || !sc.done(o.Status) {
			fin.NotFinal++
			if fin.NotFinalStatuses == nil {
				fin.NotFinalStatuses = map[string]int{}
			}
			if !ok {
				o.Status = "unseen"
			}
			fin.NotFinalStatuses[string(o.Status)]++
			continue
		}
		fin.Final++
		cr.Final++
		cur.Final++
		fin.Statuses[string(o.Status)]++
		cr.Statuses[string(o.Status)]++
		if o.Status != sc.Expect {
			t.wrong = append(t.wrong, s.id+" "+string(o.Status))
			cr.Wrong++
			cur.Wrong++
		}
		d := o.At.Sub(s.start)
		ttf = append(ttf, d)
		clsTTF[s.class] = append(clsTTF[s.class], d)
		curTTF[k] = append(curTTF[k], d)
		comp = append(comp, timed{at: o.At, d: d})
		if o.At.After(last) {
			last = o.At
		}
	}
	rep.first, rep.lastFinal = first, last
	if postSeconds > 0 {
		in.PerSecond = float64(in.Accepted) / postSeconds
	}
	in.Latency = distOf(lat)
	fin.TimeToFinal = distOf(ttf)
	if fin.Final > 0 {
		fin.Seconds = last.Sub(first).Seconds()
		if fin.Seconds > 0 {
			fin.PerSecond = float64(fin.Final) / fin.Seconds
		}
	}
	rep.Series = buildSeries(first, acc, comp)
	for k := range t.classes {
		t.classes[k].TimeToFinal = distOf(clsTTF[k])
	}
	for k := range t.currencies {
		t.currencies[k].Latency, t.currencies[k].TimeToFinal = distOf(curLat[k]), distOf(curTTF[k])
	}
	return t
}

// addChecks runs the checks that fail a run: every request accepted, every
// accepted payment final, each in the status its class expects, and the
// ledger (checkLedger).
func addChecks(rep *Report, t *tally, subs []submission, obs map[string]observation, p plan,
	ledger []sandbox.Charge, ledgerErr error, ledgerSource string) {
	add := func(name string, ok bool, detail string) {
		res := "PASS"
		if !ok {
			res = "FAIL"
		}
		rep.Checks = append(rep.Checks, check{Name: name, Result: res, Detail: detail})
	}
	in, fin := &rep.Intake, &rep.Final
	add("accepted", in.Rejected == 0, fmt.Sprintf("%d/%d requests accepted%s", in.Accepted, rep.N,
		counts(" (not accepted: ", in.RejectCodes, ")")))
	add("no lost payment", fin.NotFinal == 0, fmt.Sprintf("%d/%d accepted payments final, %d not final%s", fin.Final, in.Accepted,
		fin.NotFinal, counts(" (left in: ", fin.NotFinalStatuses, ")")))
	want := string(p.classes[0].Expect)
	if len(p.classes) > 1 {
		var parts []string
		for _, c := range t.classes {
			parts = append(parts, fmt.Sprintf("%s %d/%d %s", c.Name, c.Final-c.Wrong, c.Final, c.Expect))
		}
		want = "as expected (" + strings.Join(parts, ", ") + ")"
	}
	add("final status", len(t.wrong) == 0, fmt.Sprintf("%d/%d final payments %s%s", fin.Final-len(t.wrong), fin.Final, want,
		examples(t.wrong)))

	lg := &rep.Ledger
	lg.DoubleCharged, lg.Missing, lg.Unexpected, lg.WrongAmount = []string{}, []string{}, []string{}, []string{}
	if ledgerErr != nil {
		lg.Unavailable = ledgerErr.Error()
		rep.Checks = append(rep.Checks, check{Name: "ledger", Result: "SKIP", Detail: "sandbox ledger unavailable: " + ledgerErr.Error()})
		return
	}
	lg.Source = ledgerSource
	checkLedger(rep, t, subs, obs, p.classes, ledger)
	// A run in USD of small amounts says nothing of amounts unless one was
	// wrong, as before -currencies and -amounts.
	amounts := ""
	if len(lg.WrongAmount) > 0 || rep.money != "" {
		amounts = fmt.Sprintf(", %d charged another amount or currency%s", len(lg.WrongAmount), examples(lg.WrongAmount))
	}
	add("ledger", len(lg.DoubleCharged)+len(lg.Missing)+len(lg.Unexpected)+len(lg.WrongAmount) == 0,
		fmt.Sprintf("%d charges (%s): %d double-charged%s, %d succeeded without a charge%s, %d charged but not succeeded%s%s",
			lg.Charges, ledgerSource, len(lg.DoubleCharged), examples(lg.DoubleCharged), len(lg.Missing), examples(lg.Missing),
			len(lg.Unexpected), examples(lg.Unexpected), amounts))
}

// checkLedger compares the sandbox's charges for the bench's payments with
// their final statuses: a payment that took money (SUCCEEDED, refunded or
// returned) through the gateway has exactly one charge, a FAILED or CANCELED
// one none, and no payment ever has two (invariant I1). Every charge is of
// the amount and currency the payment was posted with. REQUIRES_REVIEW is
// left to an operator, and a payment that is not final is reported by
// another check.
func checkLedger(rep *Report, t *tally, subs []submission, obs map[string]observation, classes []scenario, ledger []sandbox.Charge) {
	charges := map[string][]sandbox.Charge{}
	for _, c := range ledger {
		charges[c.PaymentID] = append(charges[c.PaymentID], c)
	}
	lg := &rep.Ledger
	for _, s := range subs {
		if s.id == "" {
			continue
		}
		sc, cls, cur := classes[s.class], &t.classes[s.class], &t.currencies[t.currency[s.currency]]
		got := len(charges[s.id])
		lg.Charges += got
		cls.Charges += got
		cur.Charges += got
		wrongAmount := false
		for _, c := range charges[s.id] {
			cur.AmountCharged += c.Amount
			wrongAmount = wrongAmount || c.Amount != s.amount || c.Currency != s.currency
		}
		if wrongAmount {
			lg.WrongAmount = append(lg.WrongAmount, s.id)
			cur.WrongAmount++
		}
		if got > 1 {
			lg.DoubleCharged = append(lg.DoubleCharged, s.id)
			cls.DoubleCharged++
			continue
		}
		o, ok := obs[s.id]
		if !ok || !sc.done(o.Status) {
			continue
		}
		want := -1
		switch o.Status {
		case payment.StatusSucceeded, payment.StatusPartiallyRefunded, payment.StatusRefunded, payment.StatusReturned:
			want = 0
			if usesGateway(sc.Method) {
				want = 1
			}
		case payment.StatusFailed, payment.StatusCanceled:
			want = 0
		}
		switch {
		case want == 1 && got == 0:
			lg.Missing = append(lg.Missing, s.id)
		case want == 0 && got > 0:
			lg.Unexpected = append(lg.Unexpected, s.id)
		}
	}
}

// counts renders a tally as "k n, k n", sorted, between pre and post; an
// empty tally is "".
func counts(pre string, m map[string]int, post string) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(parts)
	return pre + strings.Join(parts, ", ") + post
}

func examples(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	more := ""
	if len(ids) > 3 {
		more = ", …"
	}
	return " [" + strings.Join(ids[:min(len(ids), 3)], ", ") + more + "]"
}

// printReport writes the text report. Its first line still says "payd
// bench", as it did before the bench left the payd binary, so that reports
// of either compare line by line.
func printReport(w io.Writer, r *Report) {
	var mix []string
	for _, c := range r.Mix {
		mix = append(mix, fmt.Sprintf("%s×%d (%s %s → %s)", c.Name, c.Weight, c.Method, c.PM, c.Expect))
	}
	money := ""
	if r.money != "" {
		money = "; " + r.money
	}
	fmt.Fprintf(w, "payd bench (%s %s): %d payments, %s, %d invoice(s); mix %s%s\n", r.Mode, r.Addr, r.N, loadShape(r),
		len(r.Invoices), strings.Join(mix, ", "), money)
	if m := r.Machine; m.CPUs > 0 {
		fmt.Fprintf(w, "machine: %d CPUs, %d MB; Postgres %s, Redis %s; payd worker concurrency %d, DB pool %d; existing rows %s\n",
			m.CPUs, m.MemTotalMB, m.Postgres, m.Redis, m.WorkerConc, m.DBMaxConns, countsInt64(m.ExistingRows))
	}
	if s := r.Seed; s != nil {
		fmt.Fprintf(w, "seed: %d payments, %d attempts, %d audit rows, %d invoices in %.1f s (COPY %.1f s, VACUUM ANALYZE %.1f s) = %.0f payments/s\n",
			s.Payments, s.Attempts, s.Events, s.Invoices, s.Seconds, s.CopySeconds, s.AnalyzeSeconds, float64(s.Payments)/max(s.Seconds, 1e-9))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\t\tcount\tseconds\tper second\tp50 ms\tp95 ms\tp99 ms\tmax ms\n")
	in, fin := r.Intake, r.Final
	fmt.Fprintf(tw, "intake\taccepted\t%d\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\n", in.Accepted, in.Seconds, in.PerSecond,
		in.Latency.P50, in.Latency.P95, in.Latency.P99, in.Latency.Max)
	fmt.Fprintf(tw, "end to end\tfinal\t%d\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\n", fin.Final, fin.Seconds, fin.PerSecond,
		fin.TimeToFinal.P50, fin.TimeToFinal.P95, fin.TimeToFinal.P99, fin.TimeToFinal.Max)
	if len(r.Classes) > 1 {
		for _, c := range r.Classes {
			fmt.Fprintf(tw, "  class %s\t→ %s\t%d\t\t\t%.1f\t%.1f\t%.1f\t%.1f\n", c.Name, c.Expect, c.Final,
				c.TimeToFinal.P50, c.TimeToFinal.P95, c.TimeToFinal.P99, c.TimeToFinal.Max)
		}
	}
	if r.money != "" {
		for _, c := range r.Currencies {
			fmt.Fprintf(tw, "  currency %s\taccepted\t%d\t\t\t%.1f\t%.1f\t%.1f\t%.1f\n", c.Currency, c.Accepted,
				c.Latency.P50, c.Latency.P95, c.Latency.P99, c.Latency.Max)
			fmt.Fprintf(tw, "  currency %s\tfinal\t%d\t\t\t%.1f\t%.1f\t%.1f\t%.1f\n", c.Currency, c.Final,
				c.TimeToFinal.P50, c.TimeToFinal.P95, c.TimeToFinal.P99, c.TimeToFinal.Max)
		}
	}
	tw.Flush()
	if r.money != "" {
		for _, c := range r.Currencies {
			fmt.Fprintf(w, "amounts %s: %d accepted of %s to %s, %s in all; %d wrong status; %d charges of %s in all, %d of another amount or currency\n",
				c.Currency, c.Accepted, payment.FormatMajor(c.MinAmount, c.Currency), payment.FormatMajor(c.MaxAmount, c.Currency),
				payment.FormatMajor(c.AmountAccepted, c.Currency), c.Wrong, c.Charges, payment.FormatMajor(c.AmountCharged, c.Currency),
				c.WrongAmount)
		}
	}
	fmt.Fprintf(w, "retries %d, replayed %d, rejected %d, late open-loop starts %d; final statuses: %s\n", in.Retries, in.Replayed,
		in.Rejected, in.LateStarts, counts("", fin.Statuses, ""))
	if b := r.Backlog; b != nil {
		fmt.Fprintf(w, "backlog: %d payments posted in %.2f s with no worker (%d tasks queued); drained in %.2f s = %.1f payments/s\n",
			b.Payments, b.PostSeconds, b.QueuedBefore, b.DrainSeconds, b.DrainPerSecond)
	}
	for _, p := range r.Processes {
		if p.Error != "" {
			fmt.Fprintf(w, "process payd %-9s pid %d: %s\n", p.Role, p.PID, p.Error)
			continue
		}
		fmt.Fprintf(w, "process payd %-9s pid %d: %.2f CPU s (%.2f ms per payment), peak RSS %.1f MB\n", p.Role, p.PID,
			p.CPUSeconds, p.CPUMsPerPayment, p.PeakRSSMB)
	}
	if t := r.Tasks; t != nil {
		fmt.Fprintf(w, "asynq: %d tasks processed (all payd queues, retries included) = %.2f per final payment; %d still queued at the end\n",
			t.Total, t.PerPayment, t.QueuedAfter)
	}
	if b := r.Baselines; b != nil {
		if i := b.Inserts; i != nil {
			fmt.Fprintf(w, "baseline postgres: %d clients, %d durable single-row INSERTs in %.2f s = %.0f/s (synchronous_commit %s)\n",
				i.Clients, i.Inserts, i.Seconds, i.PerSecond, i.SynchronousCommit)
		}
		if a := b.Asynq; a != nil {
			fmt.Fprintf(w, "baseline asynq: %d no-op tasks enqueued at %.0f/s, processed at concurrency %d in %.2f s = %.0f tasks/s\n",
				a.Tasks, a.EnqueuePerSecond, a.Concurrency, a.ProcessSeconds, a.ProcessedPerSecond)
		}
		if m := b.RedisMemory; m != nil {
			fmt.Fprintf(w, "redis memory: %d queued payment:submit tasks took %d bytes = %.0f bytes per task\n",
				m.Tasks, m.BytesAfter-m.BytesBefore, m.BytesPerTask)
		}
		for _, e := range b.Errors {
			fmt.Fprintf(w, "baseline error: %s\n", e)
		}
		fmt.Fprintf(w, "ratios: intake accepted/s ÷ raw inserts/s = %.3f; completed/s × tasks per payment ÷ raw asynq tasks/s = %.3f\n",
			r.Ratios.IntakeVsInserts, r.Ratios.TasksVsAsynq)
	}
	printSessions(w, r)
	printFlows(w, r)
	printWebhooks(w, r)
	fmt.Fprintln(w, "checks:")
	for _, c := range r.Checks {
		fmt.Fprintf(w, "  %-4s  %-16s %s\n", c.Result, c.Name, c.Detail)
	}
	if r.Pass {
		fmt.Fprintln(w, "RESULT PASS")
	} else {
		fmt.Fprintln(w, "RESULT FAIL")
	}
}

func countsInt64(m map[string]int64) string {
	if len(m) == 0 {
		return "unknown"
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
