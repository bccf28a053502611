package bench

// One run, from options to report: against a payd someone else runs
// (-addr), or against payd processes the bench starts (--spawn, spawn.go).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
)

// Config is what the bench must know of the payd deployment it measures;
// cmd/paydbench fills it from the same environment payd reads.
type Config struct {
	// OwnerDatabaseURL connects as the schema's owner (payd's
	// PAYD_MIGRATE_DATABASE_URL, else DATABASE_URL): seeding ends with
	// VACUUM (ANALYZE) and the insert baseline creates and drops a scratch
	// table, which the app role may not.
	OwnerDatabaseURL string
	RedisURL         string
	// payd's own settings, so that the baselines run as payd's workers do
	// and the report says what payd ran with
	WorkerConcurrency int
	TaskCheck         time.Duration
	TaskRetention     time.Duration
	DBMaxConns        int
	ShutdownTimeout   time.Duration // a spawned payd gets this and 5 s more to stop
	// PaydBin is the payd executable --spawn starts when -payd is not given.
	PaydBin string
	// ChildEnv is the environment of every payd process --spawn starts,
	// payd's settings included; the bench adds free ports and its defaults
	// for the settings ChildEnv leaves unset (spawnDefaults).
	ChildEnv []string
}

// Run runs the bench o describes, prints its report to stdout and writes
// -json and -chart. It fails when the run's correctness checks fail, as
// well as when the run could not be made.
func Run(ctx context.Context, cfg Config, o Options, stdout io.Writer) error {
	if o.replot != "" {
		return replot(o)
	}
	classes, err := scenarios(o)
	if err != nil {
		return err
	}
	p := newPlan(o, classes)
	runID := randomID()
	hc := &http.Client{Timeout: o.requestTime, Transport: &http.Transport{
		DialContext:  (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns: 2 * o.c, MaxIdleConnsPerHost: max(2*o.c, int(o.rate)), IdleConnTimeout: 90 * time.Second}}
	defer hc.CloseIdleConnections()

	ctx, cancel := context.WithTimeoutCause(ctx, o.timeout, fmt.Errorf("-timeout %s reached", o.timeout))
	defer cancel()

	var rep *Report
	var runErr error
	if o.spawn {
		// the baselines and the queue figures connect as payd does: one
		// server, Sentinel or Cluster (jobs.ParseRedisURL)
		if _, err := jobs.ParseRedisURL(cfg.RedisURL); err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		rep, runErr = runSpawned(ctx, cfg, o, p, hc, runID, stdout)
	} else {
		rep, runErr = runLoad(ctx, o, p, remoteTarget(o, hc), hc, runID, nil)
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

// replot draws -chart from the series of the -json report -replot names.
func replot(o Options) error {
	b, err := os.ReadFile(o.replot)
	if err != nil {
		return fmt.Errorf("bench: -replot: %w", err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("bench: -replot %s: %w", o.replot, err)
	}
	return writeChart(o.chartPath, chartTitle(&rep), rep.Series)
}

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
	// metricsURL is payd's /metrics with its basic auth in the user info
	// (--spawn: payd all's admin port); empty when unknown.
	metricsURL string
	died       <-chan struct{}
	diedErr    func() error
}

// remoteTarget is a payd someone else runs. Its ledger is read from -sandbox
// when given: the in-process sandbox's ledger is on payd's admin port behind
// its password (http://admin:PASSWORD@host:8081/sandbox), never on the public
// one, so there is no default. The password is never printed.
func remoteTarget(o Options, hc *http.Client) *target {
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

// hooks let the spawn mode act between the run's phases.
type hooks struct {
	posted   func() // after the last payment was posted (backlog: start the workers)
	finished func() // after every payment is final or the wait gave up
	// sessions is called before the sessions phase (-sessions), and its
	// result after it: the spawn mode counts the phase's asynq tasks.
	sessions func() func(*sessionReport)
	// flows is called before the flows phase (-flows), and its result
	// after it, as sessions.
	flows func() func(*flowReport)
}

// runLoad creates the invoices, posts, waits and checks. It returns a
// report whenever payments were posted, with an error for what cut the run
// short.
func runLoad(ctx context.Context, o Options, p plan, t *target, hc *http.Client, runID string, h *hooks) (*Report, error) {
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
	rep := &Report{Addr: t.base, Mix: p.classes, N: o.n, Started: time.Now().UTC().Format(time.RFC3339), Rate: o.rate,
		Amounts: p.amounts}
	if p.mixed() {
		rep.money = p.describe()
	}
	if o.rate == 0 {
		rep.Concurrency = o.c
	}
	// Payments need an existing invoice with room for them: each is due
	// exactly what the plan deals it.
	dues := p.dues(o.n)
	for k, cur := range p.currencies {
		for j := range p.invoices {
			inv, err := createInvoice(ctx, hc, t, p.invoiceExternalID(runID, cur, j), cur, dues[k*p.invoices+j])
			if err != nil {
				return nil, err
			}
			rep.Invoices = append(rep.Invoices, inv)
		}
	}

	var subs []submission
	var postSeconds float64
	if o.rate > 0 {
		subs, postSeconds, rep.Intake.LateStarts = postRate(ctx, o, p, t, hc, runID, rep.Invoices)
	} else {
		subs, postSeconds = post(ctx, o, p, t, hc, runID, rep.Invoices)
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
		return p.classes[classOfID[id]].done(st)
	}, o.pollEvery)
	if h != nil && h.finished != nil {
		h.finished()
	}
	// -sessions: the same payd, once the card payments are final
	var sruns []sessionRun
	var sobs map[string]observation
	var sessErr error
	var sessionCosts func(*sessionReport)
	if o.sessions > 0 && waitErr == nil {
		if h != nil && h.sessions != nil {
			sessionCosts = h.sessions()
		}
		sruns, sobs, sessErr = runSessions(ctx, o, t, hc, runID)
	}
	// -flows: the same payd, once the payments (and sessions) are final
	var fruns []flowRun
	var flowSetup float64
	var flowErr error
	var flowCosts func(*flowReport)
	var rc *recomputeFigures
	if o.flows > 0 && waitErr == nil && sessErr == nil {
		if h != nil && h.flows != nil {
			flowCosts = h.flows()
		}
		var before recomputeMetrics
		var merr error
		if t.metricsURL == "" {
			merr = errors.New("payd's /metrics is known only with --spawn")
		} else {
			before, merr = readRecomputeMetrics(ctx, hc, t.metricsURL)
		}
		fruns, flowSetup, flowErr = runFlows(ctx, o, t, hc, runID)
		if merr == nil {
			var after recomputeMetrics
			after, merr = readRecomputeMetrics(context.WithoutCancel(ctx), hc, t.metricsURL)
			if merr == nil {
				rc = recomputeDelta(before, after, "payd all's /metrics")
			}
		}
		if merr != nil {
			rc = &recomputeFigures{Error: merr.Error()}
		}
	}
	// -webhooks: the same payd, once everything before is final; the
	// phase without webhooks is the run's own, counted here as fillReport
	// will count it
	var wr *webhookReport
	if o.webhooks && waitErr == nil && sessErr == nil && flowErr == nil {
		without := &Report{}
		fillReport(without, subs, postSeconds, obs, p, nil, errors.New("not read yet"), "")
		wr = runWebhooks(ctx, o, p, t, hc, runID, without.Final.PerSecond)
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
	fillReport(rep, subs, postSeconds, obs, p, charges, ledgerErr, t.ledgerSource)
	if o.sessions > 0 {
		fillSessions(rep, o, sruns, sobs, charges, ledgerErr)
		if sessionCosts != nil {
			sessionCosts(rep.Sessions)
		}
	}
	if o.flows > 0 && fruns != nil {
		fillFlows(rep, o, fruns, flowSetup, rc, charges, ledgerErr)
		if flowCosts != nil {
			flowCosts(rep.Flows)
		}
	}
	if wr != nil {
		rep.Webhooks = wr
		addWebhookCheck(rep, wr)
	}
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
	if sessErr != nil {
		sessErr = fmt.Errorf("bench: waiting for the sessions' payments: %w", sessErr)
	}
	if flowErr != nil {
		flowErr = fmt.Errorf("bench: the flows phase: %w", flowErr)
	}
	return rep, errors.Join(waitErr, sessErr, flowErr)
}

func chartTitle(r *Report) string {
	seed := ""
	if r.Seed != nil {
		seed = fmt.Sprintf(", %d seeded", r.Seed.Payments)
	}
	return fmt.Sprintf("payd bench %s: %d payments, %s%s", r.Mode, r.N, loadShape(r), seed)
}

func loadShape(r *Report) string {
	if r.Rate > 0 {
		return fmt.Sprintf("open loop at %.0f/s", r.Rate)
	}
	if r.Backlog != nil {
		return fmt.Sprintf("backlog, posted at concurrency %d", r.Concurrency)
	}
	return fmt.Sprintf("closed loop at concurrency %d", r.Concurrency)
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
