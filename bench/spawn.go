package bench

// --spawn: the bench prepares the database, measures the baselines, starts
// payd as child processes (process.go), runs the load against them, and
// adds what the processes, asynq and the baselines say to the report.

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/store"
)

// spawnDefaults are the settings a spawned payd gets unless the environment
// sets them. Bank payments settle (and are returned) in seconds, and
// retries wait milliseconds: a bench waits for every payment to be final.
// The tenant's rate limit (2000/s by default) is raised out of the way,
// still applied: the bench measures what payd can take, and its limiter's
// cost with it.
var spawnDefaults = map[string]string{"PAYD_SANDBOX_SETTLE_DELAY": "1s", "PAYD_SANDBOX_RETURN_DELAY": "2s",
	"PAYD_SETTLE_POLL": "1s", "PAYD_RETRY_UNIT": "50ms", "PAYD_RATE_LIMIT": "1000000", "PAYD_RATE_BURST": "1000000"}

// runSpawned runs the load against payd processes it starts and returns
// the report with payd's costs, the baselines and their ratios.
func runSpawned(ctx context.Context, cfg Config, o Options, p plan, hc *http.Client, runID string, stdout io.Writer) (*Report, error) {
	progress := func(format string, args ...any) {
		fmt.Fprintf(stdout, "bench: "+format+"\n", args...)
	}
	bin := o.paydBin
	if bin == "" {
		bin = cfg.PaydBin
	}
	if bin == "" {
		return nil, fmt.Errorf("bench: no payd executable next to paydbench or on PATH; pass -payd PATH: %w", ErrUsage)
	}
	var logw *os.File
	if o.logPath != "" {
		f, err := os.OpenFile(o.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("bench: -log: %w", err)
		}
		defer f.Close()
		logw = f
	}
	cl, err := newCluster(ctx, cfg, bin, logw)
	if err != nil {
		return nil, err
	}
	if o.webhooks {
		cl.enableWebhooks()
	}
	// The payd under test migrates its own schema, as its owner.
	if err := cl.migrate(ctx); err != nil {
		return nil, err
	}
	// The bench's own connections are the owner's (Config.OwnerDatabaseURL).
	db, err := sql.Open("postgres", cfg.OwnerDatabaseURL) // the driver store registers
	if err != nil {
		return nil, fmt.Errorf("bench: open postgres: %w", err)
	}
	defer db.Close()
	st, err := store.Open(ctx, store.Config{URL: cfg.OwnerDatabaseURL, MaxOpenConns: 8, MaxIdleConns: 8}, nil)
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
	mach := machineInfo(ctx, cfg, db)
	seed, err := seedRun(ctx, db, st, o, progress)
	if err != nil {
		return nil, err
	}
	mach.ExistingRows, _ = tableRows(ctx, db)
	base := measureBaselines(ctx, cfg, o, runID, progress)

	t, bl, err := cl.startPayd(o, hc, secret)
	if err != nil {
		return nil, errors.Join(err, cl.stop())
	}
	t.observe = newDBObserver(st)
	insp := asynq.NewInspector(redisConnOpt(cfg))
	defer insp.Close()
	// Wait for the children before sampling them: the samples bracket the run.
	if err := waitReady(ctx, hc, t.base); err != nil {
		return nil, errors.Join(err, cl.stop())
	}
	cl.sampleBefore()
	machineBefore, merr := machineCPU()
	var machinePayments, paydPayments float64 // CPU seconds of the card payments' phase (-sessions)
	procBefore, perr := processedTotals(insp)
	var procAfterPayments map[string]int // with -sessions: the counters when the sessions phase began
	queuedAfterPayments := -1
	var backlogErr error
	var postedAt, workerStart time.Time
	// phase marks the end of the card payments' tasks and CPU (once: at the
	// first of -sessions and -flows) and of the phase before, and returns
	// what this phase cost per unit: asynq tasks, payd CPU ms and machine
	// CPU ms, up to the start of the next phase or the call.
	var endPrev func()
	phase := func() func(n int) (tasks, paydMs, machineMs float64) {
		if endPrev != nil {
			endPrev()
		}
		procMid, perr := processedTotals(insp)
		if perr == nil && procAfterPayments == nil {
			procAfterPayments = procMid
			queuedAfterPayments = queuedTasks(insp)
		}
		machineMid, merr2 := machineCPU()
		paydMid := cl.cpuSeconds()
		if machinePayments == 0 && paydPayments == 0 {
			if merr == nil && merr2 == nil {
				machinePayments = machineMid - machineBefore
			}
			paydPayments = paydMid - cl.cpuBefore()
		}
		var procEnd map[string]int
		var perrEnd, merrEnd error
		var paydEnd, machineEnd float64
		ended := false
		end := func() {
			if !ended {
				ended = true
				procEnd, perrEnd = processedTotals(insp)
				paydEnd = cl.cpuSeconds()
				machineEnd, merrEnd = machineCPU()
			}
		}
		endPrev = end
		return func(n int) (tasks, paydMs, machineMs float64) {
			end()
			if n == 0 {
				return 0, 0, 0
			}
			if perrEnd == nil && perr == nil {
				tasks = float64(taskCounts(procMid, procEnd, n, 0).Total) / float64(n)
			}
			paydMs = 1000 * (paydEnd - paydMid) / float64(n)
			if merrEnd == nil && merr2 == nil {
				machineMs = 1000 * (machineEnd - machineMid) / float64(n)
			}
			return tasks, paydMs, machineMs
		}
	}
	h := hooks{finished: cl.sampleAfter, sessions: func() func(*sessionReport) {
		cost := phase()
		return func(sr *sessionReport) {
			sr.TasksPerSession, sr.PaydCPUMs, sr.MachineCPUMs = cost(sr.Completed)
		}
	}, flows: func() func(*flowReport) {
		cost := phase()
		return func(fr *flowReport) {
			fr.TasksPerFlow, fr.PaydCPUMs, fr.MachineCPUMs = cost(fr.Settled)
		}
	}, posted: func() {
		postedAt = time.Now()
		if bl == nil {
			return
		}
		bl.QueuedBefore = queuedTasks(insp)
		progress("backlog of %d posted; starting payd worker and payd scheduler", o.backlog)
		workerStart = time.Now()
		backlogErr = cl.startWorkers()
	}}
	rep, runErr := runLoad(ctx, o, p, t, hc, runID, &h)
	procAfter, perr2 := processedTotals(insp)
	if procAfterPayments != nil {
		procAfter = procAfterPayments
	}
	stopErr := cl.stop()
	if rep == nil {
		return nil, errors.Join(runErr, backlogErr, stopErr)
	}
	rep.Mode, rep.Machine, rep.Seed, rep.Baselines, rep.Backlog = "spawn", mach, seed, base, bl
	if bl != nil {
		rep.Mode = "spawn-backlog"
	}
	rep.Processes = cl.figures(rep.Intake.Accepted)
	if perr == nil && perr2 == nil {
		queued := queuedTasks(insp)
		if queuedAfterPayments >= 0 {
			queued = queuedAfterPayments
		}
		rep.Tasks = taskCounts(procBefore, procAfter, rep.Final.Final, queued)
	}
	if s := rep.Sessions; s != nil && rep.Final.Final > 0 {
		s.CardPaydCPUMs = 1000 * paydPayments / float64(rep.Final.Final)
		s.CardMachineCPUMs = 1000 * machinePayments / float64(rep.Final.Final)
	}
	if bl != nil && !workerStart.IsZero() {
		bl.PostSeconds = postedAt.Sub(rep.first).Seconds()
		if rep.lastFinal.After(workerStart) {
			bl.DrainSeconds = rep.lastFinal.Sub(workerStart).Seconds()
			bl.DrainPerSecond = float64(rep.Final.Final) / bl.DrainSeconds
		}
	}
	rep.Ratios = ratiosOf(rep, base)
	return rep, errors.Join(runErr, backlogErr, stopErr)
}

// seedRun seeds -seed-payments finished payments into a tenant of their
// own (bench-seed); nil when the run seeds nothing.
func seedRun(ctx context.Context, db *sql.DB, st *store.Store, o Options, progress func(string, ...any)) (*seedInfo, error) {
	if o.seedPayments == 0 {
		return nil, nil
	}
	sten, err := st.CreateTenant(ctx, "bench-seed")
	if err != nil {
		return nil, fmt.Errorf("bench: seed tenant: %w", err)
	}
	progress("seeding %d finished payments into tenant bench-seed …", o.seedPayments)
	began := time.Now()
	now := time.Now().UTC()
	res, err := seedPayments(ctx, db, seedConfig{TenantID: sten.ID, N: o.seedPayments,
		From: now.Add(-90 * 24 * time.Hour), To: now.Add(-time.Hour), PerInvoice: 1000})
	if err != nil {
		return nil, fmt.Errorf("bench: -seed-payments: %w", err)
	}
	seed := &seedInfo{seedResult: res, Seconds: time.Since(began).Seconds(), Tenant: sten.ID}
	progress("seeded in %.1f s (copy %.1f s, vacuum analyze %.1f s)", seed.Seconds, res.CopySeconds, res.AnalyzeSeconds)
	return seed, nil
}

// measureBaselines runs the raw baselines on the run's Postgres and Redis;
// nil with -baselines=false. A baseline that fails is reported, not fatal.
func measureBaselines(ctx context.Context, cfg Config, o Options, runID string, progress func(string, ...any)) *baselines {
	if !o.baselines {
		return nil
	}
	base := &baselines{}
	progress("baseline: raw durable inserts, %d clients for %s …", o.c, o.baselineTime)
	if ib, err := benchInserts(ctx, cfg.OwnerDatabaseURL, runID, o.c, o.baselineTime); err != nil {
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
	return base
}

// taskCounts is what asynq's lifetime counters of payd's queues say the
// run cost.
func taskCounts(before, after map[string]int, final, queuedAfter int) *taskCount {
	tc := &taskCount{Before: before, After: after, QueuedAfter: queuedAfter}
	for q := range after {
		tc.Total += after[q] - before[q]
	}
	if final > 0 {
		tc.PerPayment = float64(tc.Total) / float64(final)
	}
	return tc
}

// ratiosOf puts payd's figures over the baselines (0 when not measured).
func ratiosOf(rep *Report, base *baselines) ratios {
	var r ratios
	if base == nil {
		return r
	}
	if base.Inserts != nil && base.Inserts.PerSecond > 0 {
		r.IntakeVsInserts = rep.Intake.PerSecond / base.Inserts.PerSecond
	}
	if base.Asynq != nil && base.Asynq.ProcessedPerSecond > 0 && rep.Tasks != nil {
		rate := rep.Final.PerSecond
		if rep.Backlog != nil {
			rate = rep.Backlog.DrainPerSecond
		}
		r.TasksVsAsynq = rate * rep.Tasks.PerPayment / base.Asynq.ProcessedPerSecond
	}
	return r
}

// cluster is the payd processes of a --spawn run: payd all, or for a
// backlog a sandbox and an intake first, a worker and a scheduler once
// every payment is posted.
type cluster struct {
	bin      string
	env      []string          // Config.ChildEnv
	over     map[string]string // what the bench sets for the next child
	logw     *os.File          // nil: payd's logs are discarded
	grace    time.Duration     // to stop gracefully before a kill
	w        *watcher
	children []*child
	after    []procSample // of each child, when every payment was final
}

func newCluster(ctx context.Context, cfg Config, bin string, logw *os.File) (*cluster, error) {
	addr, err := freeLoopback()
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, env: cfg.ChildEnv, logw: logw, grace: cfg.ShutdownTimeout + 5*time.Second, w: newWatcher(ctx),
		over: map[string]string{"PAYD_ADDR": addr, "PAYD_ADMIN_PASSWORD": randomID()}}
	for k, v := range spawnDefaults {
		if lookupEnv(cfg.ChildEnv, k) == "" {
			c.over[k] = v
		}
	}
	return c, nil
}

// enableWebhooks lets the spawned payd deliver webhooks to the bench's
// receiver on loopback (-webhooks): a sealing key of the run's own unless
// the environment gives one, plain HTTP and private addresses allowed.
func (c *cluster) enableWebhooks() {
	if lookupEnv(c.env, "PAYD_WEBHOOK_KEYS") == "" {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		c.over["PAYD_WEBHOOK_KEYS"] = "bench:" + hex.EncodeToString(key)
	}
	c.over["PAYD_WEBHOOK_ALLOW_HTTP"], c.over["PAYD_WEBHOOK_ALLOW_PRIVATE"] = "true", "true"
}

// migrate runs payd migrate, so that the schema is the one of the payd
// under test.
func (c *cluster) migrate(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, c.bin, "migrate")
	cmd.Env = childEnv(c.env, c.over)
	var out bytes.Buffer
	w := io.Writer(&out)
	if c.logw != nil {
		w = io.MultiWriter(&out, c.logw)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		tail := strings.TrimSpace(out.String())
		tail = tail[max(len(tail)-2000, 0):]
		return fmt.Errorf("bench: %s migrate: %w: %s", c.bin, err, tail)
	}
	return nil
}

// start starts `payd role` on a free admin port and watches it.
func (c *cluster) start(role string) error {
	admin, err := freeLoopback()
	if err != nil {
		return err
	}
	c.over["PAYD_ADMIN_ADDR"] = admin
	ch, err := startChild(c.bin, childEnv(c.env, c.over), c.logw, role, role)
	if err != nil {
		return err
	}
	c.children = append(c.children, ch)
	c.w.watch(ch)
	return nil
}

// startPayd starts payd all, or for a backlog (-backlog) payd sandbox and
// payd intake, and returns the target they make, and for a backlog its
// figures to fill.
func (c *cluster) startPayd(o Options, hc *http.Client, secret string) (*target, *backlog, error) {
	t := &target{base: "http://" + c.over["PAYD_ADDR"], key: secret, died: c.w.died, diedErr: c.w.err, ledgerRequired: true}
	if o.backlog == 0 {
		if err := c.start("all"); err != nil {
			return nil, nil, err
		}
		// the in-process sandbox's ledger is an operator route: on the
		// admin port of payd all, behind its basic auth
		sb := &url.URL{Scheme: "http", Host: c.over["PAYD_ADMIN_ADDR"], Path: "/sandbox"}
		t.ledgerSource = "payd all's in-process sandbox at " + sb.String()
		sb.User = url.UserPassword("admin", c.over["PAYD_ADMIN_PASSWORD"])
		t.ledger = func(ctx context.Context) ([]sandbox.Charge, error) { return readLedger(ctx, hc, sb.String()) }
		mu := *sb
		mu.Path = "/metrics"
		t.metricsURL = mu.String()
		return t, nil, nil
	}
	sbAddr, err := freeLoopback()
	if err != nil {
		return nil, nil, err
	}
	c.over["PAYD_SANDBOX_ADDR"] = sbAddr
	c.over["PAYD_SANDBOX_URL"] = "http://" + sbAddr
	if err := c.start("sandbox"); err != nil {
		return nil, nil, err
	}
	if err := c.start("intake"); err != nil {
		return nil, nil, err
	}
	sb := "http://" + sbAddr
	t.ledger = func(ctx context.Context) ([]sandbox.Charge, error) { return readLedger(ctx, hc, sb) }
	t.ledgerSource = "payd sandbox at " + sb
	return t, &backlog{Payments: o.backlog}, nil
}

// startWorkers starts payd worker and payd scheduler (a backlog's drain).
func (c *cluster) startWorkers() error {
	if err := c.start("worker"); err != nil {
		return err
	}
	err := c.start("scheduler")
	c.sampleBefore()
	return err
}

// sampleBefore reads /proc of every child not yet sampled.
func (c *cluster) sampleBefore() {
	for _, ch := range c.children {
		if ch.before == (procSample{}) {
			ch.before, _ = readProc(ch.cmd.Process.Pid)
		}
	}
}

// sampleAfter reads /proc of every child once the run's payments are final.
func (c *cluster) sampleAfter() {
	for _, ch := range c.children {
		s, err := readProc(ch.cmd.Process.Pid)
		if err != nil {
			s = procSample{}
		}
		c.after = append(c.after, s)
	}
}

// stop stops every child, the last started first.
func (c *cluster) stop() error {
	var errs []error
	for _, ch := range slices.Backward(c.children) {
		errs = append(errs, ch.stop(c.grace))
	}
	return errors.Join(errs...)
}

// figures is what each child cost between its two samples.
func (c *cluster) figures(accepted int) []procFigures {
	var out []procFigures
	for i, ch := range c.children {
		pf := procFigures{Role: ch.role, PID: ch.cmd.Process.Pid}
		if i < len(c.after) && c.after[i] != (procSample{}) {
			pf.CPUSeconds = c.after[i].CPUSeconds - ch.before.CPUSeconds
			pf.PeakRSSMB = float64(c.after[i].PeakRSSKB) / 1024
			if accepted > 0 {
				pf.CPUMsPerPayment = 1000 * pf.CPUSeconds / float64(accepted)
			}
		} else {
			pf.Error = "not sampled (exited early)"
		}
		out = append(out, pf)
	}
	return out
}

func redisConnOpt(cfg Config) asynq.RedisConnOpt {
	conn, err := jobs.ParseRedisURL(cfg.RedisURL)
	if err != nil {
		return asynq.RedisClientOpt{Addr: "127.0.0.1:6379"} // never: Run checked REDIS_URL
	}
	return conn
}

func machineInfo(ctx context.Context, cfg Config, db *sql.DB) machine {
	m := machine{CPUs: runtime.NumCPU(), WorkerConc: cfg.WorkerConcurrency, DBMaxConns: cfg.DBMaxConns, GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.MemTotalMB = kb / 1024
			}
		}
	}
	m.Postgres, _ = serverVersion(ctx, db)
	m.Redis = redisVersion(ctx, cfg.RedisURL)
	return m
}

// cpuSeconds is the CPU time of every payd child so far; cpuBefore is
// theirs when the run began.
func (c *cluster) cpuSeconds() float64 {
	var sum float64
	for _, ch := range c.children {
		if s, err := readProc(ch.cmd.Process.Pid); err == nil {
			sum += s.CPUSeconds
		}
	}
	return sum
}

func (c *cluster) cpuBefore() float64 {
	var sum float64
	for _, ch := range c.children {
		sum += ch.before.CPUSeconds
	}
	return sum
}
