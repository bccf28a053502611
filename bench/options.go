package bench

// The command line of paydbench: one flag set, parsed and checked before
// anything runs.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/payment"
)

// ErrUsage marks an error in the flags: the command line, not the run, is
// wrong.
var ErrUsage = errors.New("see usage")

// Options are a run's flags; ParseFlags is the only way to make them.
type Options struct {
	addr, key   string
	n, c        int
	rate        float64       // open loop: requests per second; 0: closed loop at -c
	duration    time.Duration // with -rate
	invoices    int           // per currency: the payments are spread over this many invoices
	method, pm  string
	expect      string // canonical status every payment must end in; empty: from the payment method
	mix         string
	currencies  []string // -currencies, in order
	amounts     string   // -amounts: small, large or mixed
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

	sessions int // payment sessions created and submitted after the card payments (session.go)
	sessionC int // their concurrent clients; 0: -c

	flows      int // payment flows created and awaited until settled after the card payments (flow.go)
	flowPayers int // payers of each flow's invoice, each paying by card
	flowPayees int // payees of each flow's invoice, each paid by ACH
	flowC      int // concurrent clients of -flows; 0: -c

	webhooks        bool          // the phases with a webhook endpoint on * (webhook.go)
	webhookDuration time.Duration // the open-loop phase at half the maximum rate
}

// Amount mixes of -amounts.
const (
	amountsSmall = "small" // every payment 1250 minor units (12.50 USD), as before -amounts existed
	amountsLarge = "large" // every payment as large as its invoice allows, up to maxAmount
	amountsMixed = "mixed" // small and large alternating
)

// ParseFlags reads paydbench's flags. -h prints them to out and returns
// flag.ErrHelp; a bad command line is an error wrapping ErrUsage.
func ParseFlags(args []string, out io.Writer) (Options, error) {
	var o Options
	var currencies string
	fs := flag.NewFlagSet("paydbench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.addr, "addr", "", "base URL of a running payd, e.g. http://127.0.0.1:8080")
	fs.StringVar(&o.key, "key", "", "API key secret for -addr")
	fs.BoolVar(&o.spawn, "spawn", false, "start payd as child processes (payd all; with -backlog payd sandbox, intake, then worker and scheduler) on free loopback ports, with DATABASE_URL, REDIS_URL and the rest of the env config")
	fs.StringVar(&o.paydBin, "payd", "", "with --spawn: the payd executable to start (default: payd next to paydbench, else payd on PATH)")
	fs.IntVar(&o.n, "n", 2000, "payments to post (closed loop at -c)")
	fs.IntVar(&o.c, "c", 16, "concurrent requests (closed loop), and clients of the raw-insert baseline")
	fs.Float64Var(&o.rate, "rate", 0, "open loop: post at this many requests per second for -duration, whatever the answers (-n and -c are then ignored for posting)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "with -rate: how long to post")
	fs.IntVar(&o.invoices, "invoices", 1, "invoices the payments of each currency are spread over, round robin (every payment of one invoice takes its row lock)")
	fs.StringVar(&o.method, "method", "CARD", "payment_method_type (without -mix)")
	fs.StringVar(&o.pm, "pm", sandbox.CardVisa, "payment_method_id (without -mix)")
	fs.StringVar(&o.expect, "expect", "", "canonical status every payment must reach (default: what the sandbox does with -pm; without -mix)")
	fs.StringVar(&o.mix, "mix", "", "classes and weights, e.g. card=90,declined=5,ach=5; classes: "+strings.Join(mixClassNames(), ", "))
	fs.StringVar(&currencies, "currencies", "USD", "currencies the payments are dealt in, round robin, e.g. USD,JPY,BHD; each has its own invoices")
	fs.StringVar(&o.amounts, "amounts", amountsSmall, "payment amounts: small (1250 minor units), large (as large as each invoice allows, up to the API's maximum of 1e14 minor units; -invoices equal to -n gives every payment the maximum) or mixed (small and large alternating)")
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
	fs.IntVar(&o.sessions, "sessions", 0, "after the card payments are final, create this many payment sessions (seed 003) and submit each with session_data sandbox:pm_card_visa, closed loop; report sessions completed/s beside card payments completed/s")
	fs.IntVar(&o.sessionC, "session-c", 0, "concurrent clients of -sessions, each creating a session then submitting it (default: -c)")
	fs.IntVar(&o.flows, "flows", 0, "after the card payments (and -sessions) are final, create this many payment flows (seed 000), each settling an invoice of 100.00 USD: payins by card from -flow-payers payers, then ACH payouts to -flow-payees payees (80 % of it); wait until every flow is settled and report flows settled/s, time to settled and what flow:recompute cost")
	fs.IntVar(&o.flowPayers, "flow-payers", 2, "payers of each -flows invoice (1 to 100), each with a CARD payin method pm_card_visa")
	fs.IntVar(&o.flowPayees, "flow-payees", 1, "payees of each -flows invoice (1 to 100), each with an ACH payout account; the same payees for every flow")
	fs.IntVar(&o.flowC, "flow-c", 0, "concurrent clients of -flows: users, invoices, then the flow creates (default: -c)")
	fs.BoolVar(&o.webhooks, "webhooks", false, "after the card payments (and -sessions, -flows) are final, register a webhook endpoint on * at a receiver of the bench's own, post -n card payments again closed loop (card payments/s with webhooks beside without), then at half that rate open loop for -webhook-duration; report deliveries/s and event-to-delivery p50/p99 (target p99 ≤ 2 s at half the maximum rate)")
	fs.DurationVar(&o.webhookDuration, "webhook-duration", 10*time.Second, "with -webhooks: how long the open-loop phase at half the maximum rate posts")
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
			return o, fmt.Errorf("bench: -replot needs -chart and nothing else: %w", ErrUsage)
		}
		return o, nil
	}
	var err error
	if o.currencies, err = parseCurrencies(currencies); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("bench: unexpected argument %q: %w", fs.Arg(0), ErrUsage)
	case o.spawn && (o.addr != "" || o.key != ""):
		return o, fmt.Errorf("bench: --spawn and -addr/-key exclude each other: %w", ErrUsage)
	case !o.spawn && (o.addr == "" || o.key == ""):
		return o, fmt.Errorf("bench: need -addr and -key, or --spawn: %w", ErrUsage)
	case !o.spawn && (o.seedPayments > 0 || o.backlog > 0):
		return o, fmt.Errorf("bench: -seed-payments and -backlog need --spawn: %w", ErrUsage)
	case o.rate < 0 || o.rate > 0 && o.duration <= 0:
		return o, fmt.Errorf("bench: -rate and -duration must be positive: %w", ErrUsage)
	case o.rate > 0 && o.backlog > 0:
		return o, fmt.Errorf("bench: -rate and -backlog exclude each other: %w", ErrUsage)
	case o.n < 1 || o.c < 1:
		return o, fmt.Errorf("bench: -n and -c must be positive: %w", ErrUsage)
	case o.backlog < 0 || o.seedPayments < 0:
		return o, fmt.Errorf("bench: -backlog and -seed-payments cannot be negative: %w", ErrUsage)
	case o.invoices < 1 || o.invoices > min(o.n/len(o.currencies), 1000):
		return o, fmt.Errorf("bench: -invoices must be 1 to min(-n ÷ currencies, 1000): %w", ErrUsage)
	case o.amounts != amountsSmall && o.amounts != amountsLarge && o.amounts != amountsMixed:
		return o, fmt.Errorf("bench: -amounts %q: want small, large or mixed: %w", o.amounts, ErrUsage)
	case o.amounts != amountsSmall && largeAmount(o) <= smallAmount:
		return o, fmt.Errorf("bench: -n too large for -invoices: a large amount would be no larger than a small one: %w", ErrUsage)
	case o.amounts == amountsSmall && int64(perInvoice(o))*smallAmount > maxAmount:
		return o, fmt.Errorf("bench: -n too large for -invoices: an invoice would be due more than %d minor units: %w", int64(maxAmount), ErrUsage)
	case o.timeout <= 0 || o.pollEvery <= 0 || o.requestTime <= 0:
		return o, fmt.Errorf("bench: -timeout, -poll and -request-timeout must be positive: %w", ErrUsage)
	case o.sessions < 0 || o.sessionC < 0:
		return o, fmt.Errorf("bench: -sessions and -session-c cannot be negative: %w", ErrUsage)
	case o.sessions > 0 && o.backlog > 0:
		return o, fmt.Errorf("bench: -sessions and -backlog exclude each other: %w", ErrUsage)
	case o.flows < 0 || o.flowC < 0:
		return o, fmt.Errorf("bench: -flows and -flow-c cannot be negative: %w", ErrUsage)
	case o.flowPayers < 1 || o.flowPayers > 100 || o.flowPayees < 1 || o.flowPayees > 100:
		return o, fmt.Errorf("bench: -flow-payers and -flow-payees must be 1 to 100: %w", ErrUsage)
	case o.flows > 0 && o.backlog > 0:
		return o, fmt.Errorf("bench: -flows and -backlog exclude each other: %w", ErrUsage)
	case o.webhooks && (o.backlog > 0 || o.rate > 0):
		return o, fmt.Errorf("bench: -webhooks needs the closed loop (no -backlog, no -rate): %w", ErrUsage)
	case o.webhooks && o.webhookDuration <= 0:
		return o, fmt.Errorf("bench: -webhook-duration must be positive: %w", ErrUsage)
	case o.baselines && (o.baselineTime <= 0 || o.baselineTasks < 1 || o.memTasks < 1):
		return o, fmt.Errorf("bench: -baseline-time, -baseline-tasks and -mem-tasks must be positive: %w", ErrUsage)
	}
	if o.sessionC == 0 {
		o.sessionC = o.c
	}
	if o.flowC == 0 {
		o.flowC = o.c
	}
	o.addr = strings.TrimRight(o.addr, "/")
	return o, nil
}

// parseCurrencies reads -currencies: known ISO 4217 codes, each once.
func parseCurrencies(s string) ([]string, error) {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		cur := strings.TrimSpace(part)
		switch {
		case !payment.KnownCurrency(cur):
			return nil, fmt.Errorf("bench: -currencies: %q is not an ISO 4217 code payd knows (upper case, e.g. USD,JPY,BHD): %w", cur, ErrUsage)
		case slices.Contains(out, cur):
			return nil, fmt.Errorf("bench: -currencies: %s twice: %w", cur, ErrUsage)
		}
		out = append(out, cur)
	}
	return out, nil
}
