package main

// payd bench: a load driver and benchmark harness (docs/BENCHMARKS.md).
//
// It creates invoices big enough for the run and posts seed-001 payments
// against them — a mix of payment methods and outcomes (-mix), at full speed
// (-n, -c) or at a target rate (-rate, -duration) — to a running payd
// (-addr, -key) or to payd processes it starts (--spawn), waits until every
// accepted payment is final, and checks correctness whatever the speed:
// nothing lost, every payment in its expected status, exactly one sandbox
// charge per charged payment (invariants I1 and I2). A failed check fails
// the run.
//
// With --spawn it also measures what payd costs (CPU seconds and peak RSS of
// each payd process, asynq tasks per payment, Redis bytes per queued task),
// baselines on the same Postgres and Redis (raw durable inserts, raw asynq
// no-op tasks), a database already holding -seed-payments rows, and the
// drain of a -backlog posted while no worker runs.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

type benchOptions struct {
	addr, key   string
	n, c        int
	rate        float64       // open loop: requests per second; 0: closed loop at -c
	duration    time.Duration // with -rate
	invoices    int           // the payments are spread over this many invoices
	method, pm  string
	expect      string // canonical status every payment must end in; empty: from the payment method
	mix         string
	timeout     time.Duration
	spawn       bool
	paydBin     string
	sandboxURL  string // addr mode: where the sandbox ledger is read
	jsonPath    string
	chartPath   string
	replot      string // draw -chart from this -json report, run nothing
	logPath     string // spawn mode: payd's own logs
	pollEvery   time.Duration
	requestTime time.Duration

	baselines     bool
	baselineTime  time.Duration // raw inserts run this long
	baselineTasks int           // raw asynq no-op tasks
	memTasks      int           // payd tasks enqueued to measure Redis memory
	seedPayments  int
	backlog       int
}

func parseBenchFlags(args []string, out io.Writer) (benchOptions, error) {
	var o benchOptions
	fs := flag.NewFlagSet("payd bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.addr, "addr", "", "base URL of a running payd, e.g. http://127.0.0.1:8080")
	fs.StringVar(&o.key, "key", "", "API key secret for -addr")
	fs.BoolVar(&o.spawn, "spawn", false, "start payd as child processes (payd all; with -backlog payd sandbox, intake, then worker and scheduler) on free loopback ports, with DATABASE_URL, REDIS_URL and the rest of the env config")
	fs.StringVar(&o.paydBin, "payd", "", "with --spawn: the payd executable to start (default: this one)")
	fs.IntVar(&o.n, "n", 2000, "payments to post (closed loop at -c)")
	fs.IntVar(&o.c, "c", 16, "concurrent requests (closed loop), and clients of the raw-insert baseline")
	fs.Float64Var(&o.rate, "rate", 0, "open loop: post at this many requests per second for -duration, whatever the answers (-n and -c are then ignored for posting)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "with -rate: how long to post")
	fs.IntVar(&o.invoices, "invoices", 1, "invoices the payments are spread over, round robin (every payment of one invoice takes its row lock)")
	fs.StringVar(&o.method, "method", "CARD", "payment_method_type (without -mix)")
	fs.StringVar(&o.pm, "pm", sandbox.CardVisa, "payment_method_id (without -mix)")
	fs.StringVar(&o.expect, "expect", "", "canonical status every payment must reach (default: what the sandbox does with -pm; without -mix)")
	fs.StringVar(&o.mix, "mix", "", "classes and weights, e.g. card=90,declined=5,ach=5; classes: "+strings.Join(mixClassNames(), ", "))
	fs.DurationVar(&o.timeout, "timeout", 120*time.Second, "bound on the whole run: seeding, baselines, posting and waiting")
	fs.StringVar(&o.sandboxURL, "sandbox", "", "with -addr: sandbox base URL whose ledger is checked: a payd sandbox's URL, or payd all's admin port with its password, http://admin:PASSWORD@HOST:8081/sandbox (default: not checked)")
	fs.StringVar(&o.jsonPath, "json", "", "write the figures (and the per-second series) as JSON to this file")
	fs.StringVar(&o.chartPath, "chart", "", "draw the per-second series as a PNG into this file")
	fs.StringVar(&o.replot, "replot", "", "draw -chart from the series of this -json report, and run nothing")
	fs.StringVar(&o.logPath, "log", "", "with --spawn: append payd's logs to this file (default: discarded)")
	fs.DurationVar(&o.pollEvery, "poll", 200*time.Millisecond, "shortest pause between looks for final payments")
	fs.DurationVar(&o.requestTime, "request-timeout", 30*time.Second, "timeout of one HTTP request")
	fs.BoolVar(&o.baselines, "baselines", true, "with --spawn: measure raw Postgres inserts/s, raw asynq tasks/s and Redis bytes per task before the run")
	fs.DurationVar(&o.baselineTime, "baseline-time", 5*time.Second, "how long the raw-insert baseline runs")
	fs.IntVar(&o.baselineTasks, "baseline-tasks", 20000, "no-op tasks of the raw asynq baseline")
	fs.IntVar(&o.memTasks, "mem-tasks", 10000, "payment:submit tasks queued (and deleted) to measure Redis memory per task")
	fs.IntVar(&o.seedPayments, "seed-payments", 0, "with --spawn: first COPY this many finished payments (with attempts, audit rows, invoices) into the database, then VACUUM (ANALYZE)")
	fs.IntVar(&o.backlog, "backlog", 0, "with --spawn: post this many payments with only intake running, then start worker and scheduler and measure the drain (replaces -n, -rate)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.backlog > 0 {
		o.n = o.backlog
	}
	if o.rate > 0 && o.backlog == 0 {
		o.n = int(math.Ceil(o.rate * o.duration.Seconds()))
	}
	if o.replot != "" {
		if o.chartPath == "" || fs.NArg() > 0 {
			return o, fmt.Errorf("bench: -replot needs -chart and nothing else: %w", errUsage)
		}
		return o, nil
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("bench: unexpected argument %q: %w", fs.Arg(0), errUsage)
	case o.spawn && (o.addr != "" || o.key != ""):
		return o, fmt.Errorf("bench: --spawn and -addr/-key exclude each other: %w", errUsage)
	case !o.spawn && (o.addr == "" || o.key == ""):
		return o, fmt.Errorf("bench: need -addr and -key, or --spawn: %w", errUsage)
	case !o.spawn && (o.seedPayments > 0 || o.backlog > 0):
		return o, fmt.Errorf("bench: -seed-payments and -backlog need --spawn: %w", errUsage)
	case o.rate < 0 || o.rate > 0 && o.duration <= 0:
		return o, fmt.Errorf("bench: -rate and -duration must be positive: %w", errUsage)
	case o.rate > 0 && o.backlog > 0:
		return o, fmt.Errorf("bench: -rate and -backlog exclude each other: %w", errUsage)
	case o.n < 1 || o.c < 1:
		return o, fmt.Errorf("bench: -n and -c must be positive: %w", errUsage)
	case o.backlog < 0 || o.seedPayments < 0:
		return o, fmt.Errorf("bench: -backlog and -seed-payments cannot be negative: %w", errUsage)
	case o.invoices < 1 || o.invoices > min(o.n, 1000):
		return o, fmt.Errorf("bench: -invoices must be 1 to min(-n, 1000): %w", errUsage)
	case int64(o.n) > math.MaxInt64/benchAmount/2:
		return o, fmt.Errorf("bench: -n too large: %w", errUsage)
	case o.timeout <= 0 || o.pollEvery <= 0 || o.requestTime <= 0:
		return o, fmt.Errorf("bench: -timeout, -poll and -request-timeout must be positive: %w", errUsage)
	case o.baselines && (o.baselineTime <= 0 || o.baselineTasks < 1 || o.memTasks < 1):
		return o, fmt.Errorf("bench: -baseline-time, -baseline-tasks and -mem-tasks must be positive: %w", errUsage)
	}
	o.addr = strings.TrimRight(o.addr, "/")
	return o, nil
}

// ---------------------------------------------------------------- scenarios

// scenario is one class of posted payments and where they must end.
type scenario struct {
	Name   string         `json:"name"`
	Weight int            `json:"weight"`
	Method payment.Method `json:"method"`
	PM     string         `json:"payment_method_id"`
	Expect payment.Status `json:"expect"`
}

// mixClasses are the classes -mix knows, by name.
var mixClasses = map[string]scenario{
	"card":         {Method: payment.MethodCard, PM: sandbox.CardVisa},
	"declined":     {Method: payment.MethodCard, PM: sandbox.CardDeclined},
	"insufficient": {Method: payment.MethodCard, PM: sandbox.CardInsufficientFunds},
	"flaky":        {Method: payment.MethodCard, PM: sandbox.CardFlaky},
	"timeout":      {Method: payment.MethodCard, PM: sandbox.CardTimeoutAfterCharge},
	"ach":          {Method: payment.MethodACH, PM: "ba_" + sandbox.BankAccountSettles},
	"ach_invalid":  {Method: payment.MethodACH, PM: "ba_" + sandbox.BankAccountInvalid},
	"ach_return":   {Method: payment.MethodACH, PM: "ba_" + sandbox.BankAccountReturnedR01},
	"offline":      {Method: payment.MethodOffline},
}

func mixClassNames() []string {
	var names []string
	for n := range mixClasses {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// scenarios is the run's mix: -mix, or the one class -method/-pm/-expect.
func scenarios(o benchOptions) ([]scenario, error) {
	if o.mix == "" {
		sc := scenario{Name: "single", Weight: 1, Method: payment.Method(o.method), PM: o.pm, Expect: payment.Status(o.expect)}
		var err error
		if sc.Expect == "" {
			if sc.Expect, err = expectedStatus(sc.Method, sc.PM); err != nil {
				return nil, err
			}
		} else if !sc.Expect.Valid() {
			return nil, fmt.Errorf("bench: -expect %q is not a canonical status", o.expect)
		}
		return []scenario{sc}, nil
	}
	var out []scenario
	seen := map[string]bool{}
	for part := range strings.SplitSeq(o.mix, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		weight, err := strconv.Atoi(w)
		sc, known := mixClasses[name]
		switch {
		case !ok || err != nil || weight < 1 || weight > 1000:
			return nil, fmt.Errorf("bench: -mix %q: want class=weight (1 to 1000): %w", part, errUsage)
		case !known:
			return nil, fmt.Errorf("bench: -mix: unknown class %q (known: %s): %w", name, strings.Join(mixClassNames(), ", "), errUsage)
		case seen[name]:
			return nil, fmt.Errorf("bench: -mix: class %q twice: %w", name, errUsage)
		}
		seen[name] = true
		sc.Name, sc.Weight = name, weight
		if sc.Expect, err = expectedStatus(sc.Method, sc.PM); err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// classOf deals payment i to a class: within every run of sum(weights)
// payments, each class gets its weight, in -mix order.
func classOf(classes []scenario, i int) int {
	total := 0
	for _, c := range classes {
		total += c.Weight
	}
	r := i % total
	for k, c := range classes {
		if r < c.Weight {
			return k
		}
		r -= c.Weight
	}
	return 0
}

// expectedStatus is the canonical status the sandbox drives a payment to
// (DESIGN.md §7), or an error for a payment method the bench cannot finish.
func expectedStatus(m payment.Method, pm string) (payment.Status, error) {
	switch {
	case m == payment.MethodOffline || m == payment.MethodCredits:
		return payment.StatusSucceeded, nil
	case m == payment.MethodCard:
		switch pm {
		case sandbox.CardDeclined, sandbox.CardInsufficientFunds:
			return payment.StatusFailed, nil
		case sandbox.Card3DS:
			return "", fmt.Errorf("bench: %s waits for a customer in a browser; pass -expect to bench it anyway", pm)
		}
		return payment.StatusSucceeded, nil
	case m.BankRail():
		acct := strings.TrimPrefix(pm, "ba_")
		switch {
		case strings.HasPrefix(acct, "11111111"):
			return payment.StatusFailed, nil
		case len(acct) == 5 && strings.HasPrefix(acct, "100"):
			return payment.StatusReturned, nil
		}
		return payment.StatusSucceeded, nil
	}
	return "", fmt.Errorf("bench: no expected outcome for method %s; pass -expect", m)
}

// done reports whether a payment in status st will not move on by itself
// towards the expected status. A final status counts, except SUCCEEDED when
// the expectation lies beyond it (a bank payment settles, then is returned).
func (s scenario) done(st payment.Status) bool {
	if st == s.Expect {
		return true
	}
	return st.Final() && !(st == payment.StatusSucceeded && payment.CanTransition(st, s.Expect))
}

// usesGateway reports whether payments of this method are charged through
// the gateway, and so appear in the sandbox ledger.
func usesGateway(m payment.Method) bool { return m == payment.MethodCard || m.BankRail() }

// ---------------------------------------------------------------- report

// benchReport is every figure of a run; -json writes it as is.
type benchReport struct {
	Mode        string        `json:"mode"` // spawn, spawn-backlog or addr
	Addr        string        `json:"addr"`
	Mix         []scenario    `json:"mix"`
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

	Classes []classReport `json:"classes"`

	Ledger struct {
		Source        string   `json:"source"` // in-process, remote URL, or "" when unavailable
		Unavailable   string   `json:"unavailable,omitempty"`
		Charges       int      `json:"charges"` // entries for the bench's payments
		DoubleCharged []string `json:"double_charged"`
		Missing       []string `json:"missing"`    // charged payments with no entry
		Unexpected    []string `json:"unexpected"` // entries for payments that should not have one
	} `json:"ledger"`

	Series []seriesPoint `json:"series"`
	Checks []check       `json:"checks"`
	Pass   bool          `json:"pass"`

	first, lastFinal time.Time // first request sent, last payment final
}

func (r *benchReport) startTime() time.Time { return r.first }

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
	store.SeedResult
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
	Inserts     *store.InsertBaseline `json:"postgres_inserts,omitempty"`
	Asynq       *asynqBaseline        `json:"asynq,omitempty"`
	RedisMemory *redisTaskMemory      `json:"redis_memory,omitempty"`
	Errors      []string              `json:"errors,omitempty"`
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

// ---------------------------------------------------------------- run

// target is the payd under load.
type target struct {
	base    string
	key     string
	observe observer
	// ledger reads the sandbox's ledger; nil when it cannot be reached.
	ledger       func(context.Context) ([]sandbox.Charge, error)
	ledgerSource string
	// ledgerRequired: the bench runs the sandbox itself (--spawn), so a
	// ledger it cannot read fails the run instead of skipping the check.
	ledgerRequired bool
	died           <-chan struct{}
	diedErr        func() error
}

func runBench(ctx context.Context, cfg config, getenv func(string) string, args []string, stdout io.Writer) error {
	o, err := parseBenchFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if o.replot != "" {
		b, err := os.ReadFile(o.replot)
		if err != nil {
			return fmt.Errorf("bench: -replot: %w", err)
		}
		var rep benchReport
		if err := json.Unmarshal(b, &rep); err != nil {
			return fmt.Errorf("bench: -replot %s: %w", o.replot, err)
		}
		return writeChart(o.chartPath, chartTitle(&rep), rep.Series)
	}
	classes, err := scenarios(o)
	if err != nil {
		return err
	}
	runID := randomID()
	hc := &http.Client{Timeout: o.requestTime, Transport: &http.Transport{
		DialContext:  (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns: 2 * o.c, MaxIdleConnsPerHost: max(2*o.c, int(o.rate)), IdleConnTimeout: 90 * time.Second}}
	defer hc.CloseIdleConnections()

	ctx, cancel := context.WithTimeoutCause(ctx, o.timeout, fmt.Errorf("-timeout %s reached", o.timeout))
	defer cancel()

	var rep *benchReport
	var runErr error
	if o.spawn {
		rep, runErr = benchSpawn(ctx, cfg, getenv, o, classes, hc, runID, stdout)
	} else {
		rep, runErr = benchRun(ctx, o, classes, remoteTarget(o, hc), hc, runID, nil)
		if rep != nil {
			rep.Mode = "addr"
		}
	}
	if rep == nil {
		return runErr
	}
	printReport(stdout, rep)
	var outErr error
	if o.jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonPath, append(b, '\n'), 0o644); err != nil {
			outErr = fmt.Errorf("bench: write -json: %w", err)
		}
	}
	if o.chartPath != "" {
		outErr = errors.Join(outErr, writeChart(o.chartPath, chartTitle(rep), rep.Series))
	}
	if !rep.Pass {
		return errors.Join(errors.New("bench: FAIL: correctness checks failed"), runErr, outErr)
	}
	return errors.Join(runErr, outErr)
}

func chartTitle(r *benchReport) string {
	seed := ""
	if r.Seed != nil {
		seed = fmt.Sprintf(", %d seeded", r.Seed.Payments)
	}
	return fmt.Sprintf("payd bench %s: %d payments, %s%s", r.Mode, r.N, loadShape(r), seed)
}

func loadShape(r *benchReport) string {
	if r.Rate > 0 {
		return fmt.Sprintf("open loop at %.0f/s", r.Rate)
	}
	if r.Backlog != nil {
		return fmt.Sprintf("backlog, posted at concurrency %d", r.Concurrency)
	}
	return fmt.Sprintf("closed loop at concurrency %d", r.Concurrency)
}

// hooks let the spawn mode act between the run's phases.
type hooks struct {
	posted   func() // after the last payment was posted (backlog: start the workers)
	finished func() // after every payment is final or the wait gave up
}

// benchRun posts, waits and checks. It returns a report whenever payments
// were posted, with an error for what cut the run short.
func benchRun(ctx context.Context, o benchOptions, classes []scenario, t *target, hc *http.Client, runID string, h *hooks) (*benchReport, error) {
	if t.died != nil {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		go func() {
			select {
			case <-t.died:
				cancel(fmt.Errorf("spawned payd stopped: %v", t.diedErr()))
			case <-ctx.Done():
			}
		}()
	}
	if err := waitReady(ctx, hc, t.base); err != nil {
		return nil, err
	}
	rep := &benchReport{Addr: t.base, Mix: classes, N: o.n, Started: time.Now().UTC().Format(time.RFC3339), Rate: o.rate}
	if o.rate == 0 {
		rep.Concurrency = o.c
	}
	// Payments need an existing invoice with room for them.
	for j := range o.invoices {
		ext, due := "bench-"+runID, o.n/o.invoices
		if o.invoices > 1 {
			ext = fmt.Sprintf("bench-%s-%d", runID, j)
		}
		if j < o.n%o.invoices {
			due++
		}
		inv, err := createInvoice(ctx, hc, t, ext, due)
		if err != nil {
			return nil, err
		}
		rep.Invoices = append(rep.Invoices, inv)
	}

	var subs []submission
	var postSeconds float64
	if o.rate > 0 {
		subs, postSeconds, rep.Intake.LateStarts = postRate(ctx, o, classes, t, hc, runID, rep.Invoices)
	} else {
		subs, postSeconds = post(ctx, o, classes, t, hc, runID, rep.Invoices)
	}
	if h != nil && h.posted != nil {
		h.posted()
	}
	var ids []string
	classOfID := map[string]int{}
	for _, s := range subs {
		if s.id != "" {
			ids = append(ids, s.id)
			classOfID[s.id] = s.class
		}
	}
	obs, waitErr := await(ctx, t.observe, ids, func(id string, st payment.Status) bool {
		return classes[classOfID[id]].done(st)
	}, o.pollEvery)
	if h != nil && h.finished != nil {
		h.finished()
	}
	var charges []sandbox.Charge
	var ledgerErr error
	if t.ledger != nil {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		charges, ledgerErr = t.ledger(lctx)
		cancel()
	} else {
		ledgerErr = errors.New("no sandbox ledger for this gateway")
	}
	fillReport(rep, subs, postSeconds, obs, classes, charges, ledgerErr, t.ledgerSource)
	if ledgerErr != nil && t.ledgerRequired {
		for i := range rep.Checks {
			if rep.Checks[i].Name == "ledger" {
				rep.Checks[i].Result = "FAIL"
			}
		}
		rep.Pass = false
	}
	if waitErr != nil {
		waitErr = fmt.Errorf("bench: waiting for final payments: %w", waitErr)
	}
	return rep, waitErr
}

// ---------------------------------------------------------------- spawn

// benchSpawn prepares the database, measures the baselines, starts payd as
// child processes, runs the bench against them and stops them.
func benchSpawn(ctx context.Context, cfg config, getenv func(string) string, o benchOptions, classes []scenario,
	hc *http.Client, runID string, stdout io.Writer) (*benchReport, error) {
	bin := o.paydBin
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("bench: own executable: %w", err)
		}
	}
	if err := cfg.migrate(ctx); err != nil {
		return nil, err
	}
	// The bench's own connection is the owner's (PAYD_MIGRATE_DATABASE_URL,
	// else DATABASE_URL): seeding ends with VACUUM (ANALYZE) and the insert
	// baseline creates and drops a scratch table, which the app role may not.
	st, err := store.Open(ctx, store.Config{URL: cfg.migrateURL(), MaxOpenConns: 8, MaxIdleConns: 8}, nil)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ten, err := st.CreateTenant(ctx, "bench-"+runID)
	var secret string
	if err == nil {
		_, secret, err = st.CreateAPIKey(ctx, ten.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("bench: tenant key: %w", err)
	}
	progress := func(format string, args ...any) {
		fmt.Fprintf(stdout, "bench: "+format+"\n", args...)
	}
	mach := machineInfo(ctx, cfg, st)

	var seed *seedInfo
	if o.seedPayments > 0 {
		sten, err := st.CreateTenant(ctx, "bench-seed")
		if err != nil {
			return nil, fmt.Errorf("bench: seed tenant: %w", err)
		}
		progress("seeding %d finished payments into tenant bench-seed …", o.seedPayments)
		began := time.Now()
		now := time.Now().UTC()
		res, err := st.SeedPayments(ctx, store.SeedConfig{TenantID: sten.ID, N: o.seedPayments,
			From: now.Add(-90 * 24 * time.Hour), To: now.Add(-time.Hour), PerInvoice: 1000})
		if err != nil {
			return nil, fmt.Errorf("bench: -seed-payments: %w", err)
		}
		seed = &seedInfo{SeedResult: res, Seconds: time.Since(began).Seconds(), Tenant: sten.ID}
		progress("seeded in %.1f s (copy %.1f s, vacuum analyze %.1f s)", seed.Seconds, res.CopySeconds, res.AnalyzeSeconds)
	}
	mach.ExistingRows, _ = st.TableRows(ctx)

	var base *baselines
	if o.baselines {
		base = &baselines{}
		progress("baseline: raw durable inserts, %d clients for %s …", o.c, o.baselineTime)
		if ib, err := store.BenchInserts(ctx, cfg.migrateURL(), o.c, o.baselineTime); err != nil {
			base.Errors = append(base.Errors, err.Error())
		} else {
			base.Inserts = &ib
		}
		progress("baseline: raw asynq, %d no-op tasks at concurrency %d …", o.baselineTasks, cfg.WorkerConcurrency)
		if ab, err := benchAsynq(ctx, cfg, runID, o.baselineTasks, o.c); err != nil {
			base.Errors = append(base.Errors, err.Error())
		} else {
			base.Asynq = &ab
		}
		progress("baseline: Redis memory of %d queued payment:submit tasks …", o.memTasks)
		if mb, err := benchRedisMemory(ctx, cfg, runID, o.memTasks, o.c); err != nil {
			base.Errors = append(base.Errors, err.Error())
		} else {
			base.RedisMemory = &mb
		}
	}

	// The children: payd all, or for a backlog a sandbox and an intake now
	// and a worker and a scheduler once every payment is posted.
	var logw *os.File
	if o.logPath != "" {
		f, err := os.OpenFile(o.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("bench: -log: %w", err)
		}
		defer f.Close()
		logw = f
	}
	addr, err := freeLoopback()
	if err != nil {
		return nil, err
	}
	over := map[string]string{"PAYD_ADDR": addr, "PAYD_ADMIN_PASSWORD": randomID()}
	// Bank payments settle (and are returned) in seconds, and retries wait
	// milliseconds, unless the environment says otherwise: a bench waits
	// for every payment to be final. The tenant's rate limit (2000/s by
	// default) is raised out of the way, still applied: the bench measures
	// what payd can take, and its limiter's cost with it.
	for k, v := range map[string]string{"PAYD_SANDBOX_SETTLE_DELAY": "1s", "PAYD_SANDBOX_RETURN_DELAY": "2s",
		"PAYD_SETTLE_POLL": "1s", "PAYD_RETRY_UNIT": "50ms", "PAYD_RATE_LIMIT": "1000000", "PAYD_RATE_BURST": "1000000"} {
		if getenv(k) == "" {
			over[k] = v
		}
	}
	var children []*child
	w := newWatcher(ctx)
	start := func(role string, args ...string) (*child, error) {
		admin, err := freeLoopback()
		if err != nil {
			return nil, err
		}
		over["PAYD_ADMIN_ADDR"] = admin
		c, err := startChild(bin, childEnv(getenv, over), logw, role, args...)
		if err == nil {
			children = append(children, c)
			w.watch(c)
		}
		return c, err
	}
	stopAll := func() error {
		var errs []error
		for _, c := range slices.Backward(children) {
			errs = append(errs, c.stop(cfg.ShutdownTimeout+5*time.Second))
		}
		return errors.Join(errs...)
	}
	t := &target{base: "http://" + addr, key: secret, observe: newDBObserver(st), died: w.died, diedErr: w.err, ledgerRequired: true}
	mode := "spawn"
	var h hooks
	var bl *backlog
	var workerStart time.Time
	var lastFinal time.Time
	insp := asynq.NewInspector(mustRedisOpt(cfg))
	defer insp.Close()
	if o.backlog == 0 {
		if _, err := start("all", "all"); err != nil {
			return nil, err
		}
		// the in-process sandbox's ledger is an operator route: on the
		// admin port of payd all, behind its basic auth
		sb := &url.URL{Scheme: "http", Host: over["PAYD_ADMIN_ADDR"], Path: "/sandbox"}
		t.ledgerSource = "payd all's in-process sandbox at " + sb.String()
		sb.User = url.UserPassword("admin", over["PAYD_ADMIN_PASSWORD"])
		t.ledger = func(ctx context.Context) ([]sandbox.Charge, error) { return readLedger(ctx, hc, sb.String()) }
	} else {
		mode = "spawn-backlog"
		sbAddr, err := freeLoopback()
		if err != nil {
			return nil, err
		}
		over["PAYD_SANDBOX_ADDR"] = sbAddr
		over["PAYD_SANDBOX_URL"] = "http://" + sbAddr
		if _, err := start("sandbox", "sandbox"); err != nil {
			return nil, err
		}
		if _, err := start("intake", "intake"); err != nil {
			return nil, errors.Join(err, stopAll())
		}
		sb := "http://" + sbAddr
		t.ledger = func(ctx context.Context) ([]sandbox.Charge, error) { return readLedger(ctx, hc, sb) }
		t.ledgerSource = "payd sandbox at " + sb
		bl = &backlog{Payments: o.backlog}
	}
	// Wait for the children before sampling them: the samples bracket the run.
	if err := waitReady(ctx, hc, t.base); err != nil {
		return nil, errors.Join(err, stopAll())
	}
	samples := func() {
		for _, c := range children {
			if c.before == (procSample{}) {
				c.before, _ = readProc(c.cmd.Process.Pid)
			}
		}
	}
	samples()
	procBefore, perr := processedTotals(insp)
	var backlogErr error
	var postedAt time.Time
	h.posted = func() {
		postedAt = time.Now()
		if bl == nil {
			return
		}
		bl.QueuedBefore = queuedTasks(insp)
		progress("backlog of %d posted; starting payd worker and payd scheduler", o.backlog)
		workerStart = time.Now()
		if _, err := start("worker", "worker"); err != nil {
			backlogErr = err
			return
		}
		if _, err := start("scheduler", "scheduler"); err != nil {
			backlogErr = err
		}
		samples()
	}
	var after []procSample
	h.finished = func() {
		for _, c := range children {
			s, err := readProc(c.cmd.Process.Pid)
			if err != nil {
				s = procSample{}
			}
			after = append(after, s)
		}
	}
	rep, runErr := benchRun(ctx, o, classes, t, hc, runID, &h)
	procAfter, perr2 := processedTotals(insp)
	stopErr := stopAll()
	if rep == nil {
		return nil, errors.Join(runErr, backlogErr, stopErr)
	}
	rep.Mode, rep.Machine, rep.Seed, rep.Baselines, rep.Backlog = mode, mach, seed, base, bl
	for i, c := range children {
		pf := procFigures{Role: c.role, PID: c.cmd.Process.Pid}
		if i < len(after) && after[i] != (procSample{}) {
			pf.CPUSeconds = after[i].CPUSeconds - c.before.CPUSeconds
			pf.PeakRSSMB = float64(after[i].PeakRSSKB) / 1024
			if rep.Intake.Accepted > 0 {
				pf.CPUMsPerPayment = 1000 * pf.CPUSeconds / float64(rep.Intake.Accepted)
			}
		} else {
			pf.Error = "not sampled (exited early)"
		}
		rep.Processes = append(rep.Processes, pf)
	}
	if perr == nil && perr2 == nil {
		tc := &taskCount{Before: procBefore, After: procAfter}
		for q := range procAfter {
			tc.Total += procAfter[q] - procBefore[q]
		}
		if rep.Final.Final > 0 {
			tc.PerPayment = float64(tc.Total) / float64(rep.Final.Final)
		}
		rep.Tasks = tc
		tc.QueuedAfter = queuedTasks(insp)
	}
	if bl != nil && !workerStart.IsZero() {
		bl.PostSeconds = postedAt.Sub(rep.startTime()).Seconds()
		lastFinal = rep.lastFinal
		if lastFinal.After(workerStart) {
			bl.DrainSeconds = lastFinal.Sub(workerStart).Seconds()
			bl.DrainPerSecond = float64(rep.Final.Final) / bl.DrainSeconds
		}
	}
	if base != nil {
		if base.Inserts != nil && base.Inserts.PerSecond > 0 {
			rep.Ratios.IntakeVsInserts = rep.Intake.PerSecond / base.Inserts.PerSecond
		}
		if base.Asynq != nil && base.Asynq.ProcessedPerSecond > 0 && rep.Tasks != nil {
			rate := rep.Final.PerSecond
			if bl != nil {
				rate = bl.DrainPerSecond
			}
			rep.Ratios.TasksVsAsynq = rate * rep.Tasks.PerPayment / base.Asynq.ProcessedPerSecond
		}
	}
	return rep, errors.Join(runErr, backlogErr, stopErr)
}

// queuedTasks counts tasks waiting in payd's queues (pending, scheduled, retry).
func queuedTasks(insp *asynq.Inspector) int {
	var n int
	for q := range jobs.Queues {
		if info, err := insp.GetQueueInfo(q); err == nil {
			n += info.Pending + info.Scheduled + info.Retry
		}
	}
	return n
}

func mustRedisOpt(cfg config) asynq.RedisConnOpt {
	opt, err := asynq.ParseRedisURI(cfg.RedisURL)
	if err != nil {
		return asynq.RedisClientOpt{Addr: "127.0.0.1:6379"} // loadConfig took it; the look-ups will then fail and say so
	}
	return opt
}

func machineInfo(ctx context.Context, cfg config, st *store.Store) machine {
	m := machine{CPUs: runtime.NumCPU(), WorkerConc: cfg.WorkerConcurrency, DBMaxConns: cfg.DBMaxConns, GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.MemTotalMB = kb / 1024
			}
		}
	}
	m.Postgres, _ = st.ServerVersion(ctx)
	m.Redis = redisVersion(ctx, cfg.RedisURL)
	return m
}

// remoteTarget is a payd someone else runs. Its ledger is read from -sandbox
// when given: the in-process sandbox's ledger is on payd's admin port behind
// its password (http://admin:PASSWORD@host:8081/sandbox), never on the public
// one, so there is no default. The password is never printed.
func remoteTarget(o benchOptions, hc *http.Client) *target {
	t := &target{base: o.addr, key: o.key, observe: apiObserver{hc: hc, base: o.addr, key: o.key, c: o.c}}
	if sb := o.sandboxURL; sb != "" {
		t.ledgerSource = sb
		if u, err := url.Parse(sb); err == nil {
			t.ledgerSource = u.Redacted()
		}
		t.ledger = func(ctx context.Context) ([]sandbox.Charge, error) { return readLedger(ctx, hc, sb) }
	}
	return t
}

// ---------------------------------------------------------------- posting

// post sends o.n payments at concurrency o.c (closed loop), payment i of
// class classOf(i) against invoice i mod len(invs), each under its own
// Idempotency-Key so that a retry after 409, 429, 5xx or a network error can
// never create a second payment.
func post(ctx context.Context, o benchOptions, classes []scenario, t *target, hc *http.Client, runID string, invs []string) ([]submission, float64) {
	subs := make([]submission, o.n)
	began := time.Now()
	_ = parallel(ctx, o.n, o.c, func(i int) error {
		subs[i] = postIndex(ctx, hc, t, classes, invs, runID, i)
		return nil
	})
	for i := range subs {
		if subs[i].start.IsZero() { // never started: the run was cut short
			subs[i] = submission{class: classOf(classes, i), start: time.Now(), failure: "not sent"}
		}
	}
	return subs, time.Since(began).Seconds()
}

func postIndex(ctx context.Context, hc *http.Client, t *target, classes []scenario, invs []string, runID string, i int) submission {
	k := classOf(classes, i)
	s := postOne(ctx, hc, t, classes[k], invs[i%len(invs)], fmt.Sprintf("bench-%s-%d", runID, i))
	s.class = k
	return s
}

// postRate sends o.n payments open loop: payment i is sent at i/o.rate
// seconds, whether or not earlier ones were answered (at most maxInFlight at
// once). It returns the submissions, the posting time and how many requests
// left more than 10 ms after their slot.
func postRate(ctx context.Context, o benchOptions, classes []scenario, t *target, hc *http.Client, runID string, invs []string) ([]submission, float64, int) {
	const maxInFlight = 4096
	subs := make([]submission, o.n)
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	var late atomic.Int64
	began := time.Now()
	for i := range o.n {
		slot := began.Add(time.Duration(float64(i) / o.rate * float64(time.Second)))
		if d := time.Until(slot); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			for j := i; j < o.n; j++ {
				subs[j] = submission{class: classOf(classes, j), start: time.Now(), failure: "not sent"}
			}
			break
		}
		sem <- struct{}{}
		if time.Since(slot) > 10*time.Millisecond {
			late.Add(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			subs[i] = postIndex(ctx, hc, t, classes, invs, runID, i)
			<-sem
		}()
	}
	wg.Wait()
	return subs, time.Since(began).Seconds(), int(late.Load())
}

// ---------------------------------------------------------------- figures and checks

func fillReport(rep *benchReport, subs []submission, postSeconds float64, obs map[string]observation, classes []scenario,
	ledger []sandbox.Charge, ledgerErr error, ledgerSource string) {
	in := &rep.Intake
	in.Seconds = postSeconds
	var lat, ttf []time.Duration
	var first, last time.Time
	fin := &rep.Final
	fin.Statuses = map[string]int{}
	cls := make([]classReport, len(classes))
	clsTTF := make([][]time.Duration, len(classes))
	for k, c := range classes {
		cls[k] = classReport{Name: c.Name, Expect: string(c.Expect), Statuses: map[string]int{}}
	}
	var wrong []string
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
		sc, cr := classes[s.class], &cls[s.class]
		in.Accepted++
		cr.Accepted++
		if s.replayed {
			in.Replayed++
		}
		lat = append(lat, s.latency)
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
		fin.Statuses[string(o.Status)]++
		cr.Statuses[string(o.Status)]++
		if o.Status != sc.Expect {
			wrong = append(wrong, s.id+" "+string(o.Status))
			cr.Wrong++
		}
		d := o.At.Sub(s.start)
		ttf = append(ttf, d)
		clsTTF[s.class] = append(clsTTF[s.class], d)
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

	add := func(name string, ok bool, detail string) {
		res := "PASS"
		if !ok {
			res = "FAIL"
		}
		rep.Checks = append(rep.Checks, check{Name: name, Result: res, Detail: detail})
	}
	add("accepted", in.Rejected == 0, fmt.Sprintf("%d/%d requests accepted%s", in.Accepted, rep.N,
		counts(" (not accepted: ", in.RejectCodes, ")")))
	add("no lost payment", fin.NotFinal == 0, fmt.Sprintf("%d/%d accepted payments final, %d not final%s", fin.Final, in.Accepted,
		fin.NotFinal, counts(" (left in: ", fin.NotFinalStatuses, ")")))
	want := string(classes[0].Expect)
	if len(classes) > 1 {
		var parts []string
		for _, c := range cls {
			parts = append(parts, fmt.Sprintf("%s %d/%d %s", c.Name, c.Final-c.Wrong, c.Final, c.Expect))
		}
		want = "as expected (" + strings.Join(parts, ", ") + ")"
	}
	add("final status", len(wrong) == 0, fmt.Sprintf("%d/%d final payments %s%s", fin.Final-len(wrong), fin.Final, want, examples(wrong)))

	lg := &rep.Ledger
	lg.DoubleCharged, lg.Missing, lg.Unexpected = []string{}, []string{}, []string{}
	if ledgerErr != nil {
		lg.Unavailable = ledgerErr.Error()
		rep.Checks = append(rep.Checks, check{Name: "ledger", Result: "SKIP", Detail: "sandbox ledger unavailable: " + ledgerErr.Error()})
	} else {
		lg.Source = ledgerSource
		checkLedger(rep, subs, obs, classes, cls, ledger)
		add("ledger", len(lg.DoubleCharged)+len(lg.Missing)+len(lg.Unexpected) == 0,
			fmt.Sprintf("%d charges (%s): %d double-charged%s, %d succeeded without a charge%s, %d charged but not succeeded%s",
				lg.Charges, ledgerSource, len(lg.DoubleCharged), examples(lg.DoubleCharged), len(lg.Missing), examples(lg.Missing),
				len(lg.Unexpected), examples(lg.Unexpected)))
	}
	for k := range cls {
		cls[k].TimeToFinal = distOf(clsTTF[k])
	}
	rep.Classes = cls
	rep.Pass = true
	for _, c := range rep.Checks {
		if c.Result == "FAIL" {
			rep.Pass = false
		}
	}
}

// checkLedger compares the sandbox's charges for the bench's payments with
// their final statuses: a payment that took money (SUCCEEDED, refunded or
// returned) through the gateway has exactly one charge, a FAILED or CANCELED
// one none, and no payment ever has two (invariant I1). REQUIRES_REVIEW is
// left to an operator, and a payment that is not final is reported by
// another check.
func checkLedger(rep *benchReport, subs []submission, obs map[string]observation, classes []scenario, cls []classReport, ledger []sandbox.Charge) {
	n := map[string]int{}
	for _, c := range ledger {
		n[c.PaymentID]++
	}
	lg := &rep.Ledger
	for _, s := range subs {
		if s.id == "" {
			continue
		}
		sc := classes[s.class]
		got := n[s.id]
		lg.Charges += got
		cls[s.class].Charges += got
		if got > 1 {
			lg.DoubleCharged = append(lg.DoubleCharged, s.id)
			cls[s.class].DoubleCharged++
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

func printReport(w io.Writer, r *benchReport) {
	var mix []string
	for _, c := range r.Mix {
		mix = append(mix, fmt.Sprintf("%s×%d (%s %s → %s)", c.Name, c.Weight, c.Method, c.PM, c.Expect))
	}
	fmt.Fprintf(w, "payd bench (%s %s): %d payments, %s, %d invoice(s); mix %s\n", r.Mode, r.Addr, r.N, loadShape(r),
		len(r.Invoices), strings.Join(mix, ", "))
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
	tw.Flush()
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

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
