package main

// Process-level fault tests: the real payd binary, run as separate OS
// processes (sandbox, intake, two workers, scheduler) on a fresh PostgreSQL
// database and Redis database, driven by a bounded load of retrying clients
// while real faults are injected (Redis FLUSHDB, kill -9 of a worker or of
// intake, a gateway that charges and then loses its answer). Afterwards
// reconciliation runs (payd reconcile, the CLI), and the database and the
// sandbox ledger are checked against the invariants of docs/invariants.md:
//
//	I1 no double charge     the sandbox ledger never holds two charges for one payment; a canceled or failed one holds none, or one refunded as a late charge
//	I2 no lost payment      every 2xx-accepted payment exists and is final within a bound (REQUIRES_REVIEW is final)
//	I3 money conserved      lines ≤ amount, refunds ≤ captured and as the gateway made them, invoices never over-applied (checkMoney)
//	I4 audited transitions  payment_events chain from NULL→PENDING to the current status; notes (from = to) anywhere
//	I5 idempotency          one payment per Idempotency-Key, replays identical
//	I8 ledger accounted     every gateway charge and refund accounted for by payd (fault_ledger_test.go)
//
// Run: go test -race -count=1 -run Fault ./cmd/payd/ -v

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
)

const (
	// faultFinalBound is I2's bound: every payment must be final within it
	// of the later of the last fault and the end of the load. It is what
	// payd's own recovery needs in the worst case here: a sweep (interval
	// PAYD_SWEEP_INTERVAL after PAYD_SWEEP_GRACE), the sweep lease
	// (PAYD_SWEEP_LEASE) after which a step still due has its task
	// inspected and, if a dead worker holds it, re-armed under a fresh task
	// ID, a bank payment's settle delay and return window (3 s), and slack
	// for a 2-core machine running race-instrumented processes. It is far
	// shorter than asynq's own recovery of a dead worker's active tasks
	// (55–120 s after the crash): a step must not wait on that.
	faultFinalBound = 40 * time.Second
	// faultClientPatience is how long one client keeps retrying one
	// Idempotency-Key. It exceeds intake's 30 s in-flight key lease, which a
	// key whose request died with intake waits out.
	faultClientPatience = 60 * time.Second
)

// faultFinalSQL selects payments that have reached an outcome: nothing
// more scheduled, or in REQUIRES_REVIEW, which keeps a slow inquiry
// schedule (hours apart in production) and is final for "done" figures.
const faultFinalSQL = `((status IN ('SUCCEEDED','PARTIALLY_REFUNDED','REFUNDED','RETURNED','FAILED','CANCELED')
	AND next_step IS NULL) OR status = 'REQUIRES_REVIEW')`

func TestFault(t *testing.T) {
	bin := buildFaultPayd(t)
	// Each scenario is its own deployment on its own databases; after their
	// few seconds of load they mostly wait on recovery, so they run side
	// by side: PAYD_FAULT_PARALLEL at a time (default 4), longest first,
	// whatever go test's -parallel (which counts CPUs, not sleepers).
	scenarios := chaosScenarios(bin) // issue 5: every fault alone, then all together (fault_chaos_test.go)
	scenarios = append(scenarios,
		faultScenario{"intake_kill", func(t *testing.T) { faultIntakeKill(t, bin) }},
		faultScenario{"worker_kill", func(t *testing.T) { faultWorkerKill(t, bin) }},
		faultScenario{"redis_flush", func(t *testing.T) { faultRedisFlush(t, bin) }},
		faultScenario{"timeout_after_charge", func(t *testing.T) { faultTimeoutAfterCharge(t, bin) }},
	)
	runFaultScenarios(t, scenarios, chaosEnvInt(t, "PAYD_FAULT_PARALLEL", 4))
}

type faultScenario struct {
	name string
	run  func(t *testing.T)
}

// runFaultScenarios runs the scenarios as subtests, n at a time, in order.
func runFaultScenarios(t *testing.T, scenarios []faultScenario, n int) {
	work := make(chan faultScenario)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sc := range work {
				t.Run(sc.name, sc.run)
			}
		}()
	}
	for _, sc := range scenarios {
		work <- sc
	}
	close(work)
	wg.Wait()
}

// (a) Redis loses everything, twice, while payments are being accepted and
// processed: Postgres alone must bring every payment to a final status.
func faultRedisFlush(t *testing.T, bin string) {
	c := startFaultCluster(t, bin)
	l := c.startLoad(faultLoadSpec{n: 480, clients: 8, spread: 6 * time.Second, mix: faultMix})
	var lastFault time.Time
	for _, at := range []time.Duration{2 * time.Second, 4 * time.Second} {
		faultSleepUntil(l.start.Add(at))
		inflight := c.inFlightAttempts()
		if err := c.rdb.FlushDB(context.Background()).Err(); err != nil {
			t.Fatalf("FLUSHDB: %v", err)
		}
		lastFault = time.Now()
		t.Logf("FLUSHDB at +%s (%s) with %d attempts in flight", lastFault.Sub(l.start).Round(time.Millisecond),
			lastFault.UTC().Format("15:04:05.000"), inflight)
	}
	l.wait()
	c.finish("redis_flush", l, lastFault)
}

// (b) A worker dies by SIGKILL while attempts are in flight; a replacement
// starts a few seconds later.
func faultWorkerKill(t *testing.T, bin string) {
	c := startFaultCluster(t, bin)
	l := c.startLoad(faultLoadSpec{n: 480, clients: 8, spread: 6 * time.Second, mix: faultMix})
	faultSleepUntil(l.start.Add(2 * time.Second))
	// Kill when the workers are busy: gateway calls in flight and several
	// tasks active, so that the victim very likely dies holding some.
	inflight, active := 0, 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		if inflight, active = c.inFlightAttempts(), c.activeTasks(); inflight > 0 && active >= 8 {
			break
		}
	}
	victim := c.workers[0]
	victim.kill9(t)
	lastFault := time.Now()
	t.Logf("kill -9 %s (pid %d) at +%s with %d attempts in flight and %d tasks active", victim.name,
		victim.cmd.Process.Pid, lastFault.Sub(l.start).Round(time.Millisecond), inflight, active)
	if inflight == 0 {
		t.Errorf("no attempt was in flight when the worker was killed")
	}
	time.Sleep(3 * time.Second)
	c.startWorker("worker-3")
	t.Logf("replacement worker-3 started at +%s", time.Since(l.start).Round(time.Millisecond))
	l.wait()
	c.finish("worker_kill", l, lastFault)
}

// (c) The gateway charges, then its answer is lost (the sandbox closes the
// connection): the attempt is UNKNOWN, an inquiry must find the charge, and
// nothing may charge again.
func faultTimeoutAfterCharge(t *testing.T, bin string) {
	c := startFaultCluster(t, bin)
	mix := func(i int) (string, string) {
		if i%2 == 0 {
			return "CARD", sandbox.CardTimeoutAfterCharge
		}
		return faultMix(i)
	}
	l := c.startLoad(faultLoadSpec{n: 200, clients: 8, spread: 3 * time.Second, mix: mix})
	l.wait()
	s := c.finish("timeout_after_charge", l, l.end)
	if s.timeouts < 100 {
		t.Errorf("only %d %s payments were made, want ≥ 100", s.timeouts, sandbox.CardTimeoutAfterCharge)
	}
}

// (d) Intake dies by SIGKILL mid-load and is restarted on the same address;
// clients retry with the same Idempotency-Key.
func faultIntakeKill(t *testing.T, bin string) {
	c := startFaultCluster(t, bin)
	l := c.startLoad(faultLoadSpec{n: 400, clients: 8, spread: 6 * time.Second, mix: faultMix})
	faultSleepUntil(l.start.Add(2 * time.Second))
	c.intake.kill9(t)
	lastFault := time.Now()
	t.Logf("kill -9 intake at +%s (%d requests sent so far)", lastFault.Sub(l.start).Round(time.Millisecond), l.requests.Load())
	time.Sleep(time.Second)
	c.intake = c.start("intake-2", "intake")
	c.waitReady()
	t.Logf("intake-2 ready at +%s", time.Since(l.start).Round(time.Millisecond))
	l.wait()
	c.finish("intake_kill", l, lastFault)
}

// (e) issue 19, item 8: intake's per-tenant rate limit (here 40 requests/s,
// a burst of 40) refuses some of the load and most of the checker's replays
// with 429 rate_limited; the load's clients and the replays wait out the
// Retry-After and ask again. A 429 is no answer to a replay: every replay
// must still be identical, and the test requires that replays did meet 429s
// (else it proved nothing). Before the fix the checker counted each 429 as
// a replay that differs (666 I5 violations in a 10,000-payment run).
func TestFaultReplaysRateLimited(t *testing.T) {
	bin := buildFaultPayd(t)
	c := startFaultClusterWith(t, bin, faultOpts{env: []string{"PAYD_RATE_LIMIT=40", "PAYD_RATE_BURST=40"}})
	l := c.startLoad(faultLoadSpec{n: 100, clients: 8, spread: time.Second, mix: faultMix})
	l.wait()
	s := c.finish("replays_rate_limited", l, l.end)
	l.mu.Lock()
	limited := l.statusCounts[http.StatusTooManyRequests]
	l.mu.Unlock()
	if c.replays429.Load() == 0 {
		t.Errorf("no replay met a 429 (the load met %d): the rate limit did not bite, so this proves nothing", limited)
	}
	t.Logf("the load met %d 429s, the replays %d; %d/%d replays identical", limited, c.replays429.Load(), s.replaysOK, s.accepted)
}

// faultMix is the payment mix of a load: mostly cards that succeed, some
// declines, flaky and lost-response cards, and ACH payments that settle or
// are returned.
func faultMix(i int) (method, pm string) {
	switch i % 20 {
	case 11, 12:
		return "CARD", sandbox.CardDeclined
	case 13:
		return "CARD", sandbox.CardFlaky
	case 14, 15:
		return "CARD", sandbox.CardTimeoutAfterCharge
	case 16, 17:
		return "ACH", "ba_" + sandbox.BankAccountSettles
	case 18:
		return "ACH", "ba_" + sandbox.BankAccountReturnedR01
	}
	return "CARD", sandbox.CardVisa
}

// faultWantStatus is the final statuses each payment method id leads to,
// faults or not (a 3-D Secure payment's are its client's: what it did).
// pm_card_unknown charges and loses every answer until the sandbox's
// answer_unknown fault is set: it succeeds if the gateway answers one of
// its inquiries, else it stays in review.
var faultWantStatus = map[string][]string{
	sandbox.CardVisa:                       {"SUCCEEDED"},
	sandbox.CardDeclined:                   {"FAILED"},
	sandbox.CardInsufficientFunds:          {"FAILED"},
	sandbox.CardFlaky:                      {"SUCCEEDED"},
	sandbox.CardTimeoutAfterCharge:         {"SUCCEEDED"},
	sandbox.CardUnknown:                    {"SUCCEEDED", "REQUIRES_REVIEW"},
	"ba_" + sandbox.BankAccountSettles:     {"SUCCEEDED"},
	"ba_" + sandbox.BankAccountReturnedR01: {"RETURNED"},
}

// ---------------------------------------------------------------- binary

// buildFaultPayd builds this package once, with -race when the test binary has it
// (data races in the processes then show up in their logs), and with any extra
// build flags (the negative test's -tags).
func buildFaultPayd(t *testing.T, extra ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "payd")
	args := []string{"build", "-o", bin}
	if faultRaceEnabled() {
		args = append(args, "-race")
	}
	args = append(args, extra...)
	cmd := exec.Command("go", append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

func faultRaceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------- cluster

// faultT is what the checks (finish and below) report violations to: the
// test itself, or, in the checker's negative test, a recorder of findings.
type faultT interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// faultCluster is one payd deployment of separate processes on its own database.
type faultCluster struct {
	t          *testing.T
	chk        faultT        // where finish reports violations; t unless replaced
	finalBound time.Duration // I2's bound; faultFinalBound unless replaced
	bin        string
	dir        string
	env        []string
	sandboxURL string
	intakeURL  string
	apiKey     string
	db         *sql.DB
	rdb        redis.UniversalClient
	redisSrv   *faultRedis // private infrastructure, when faultOpts asked for it
	pg         *faultPG
	proxy      *faultProxy
	invoiceIDs []string // inv_fault_<i>'s id
	// notifySecret signs the sandbox's gateway notifications (faultOpts.notify).
	notifySecret string
	// childBin, when set, is the test binary: intake, scheduler and workers
	// run as its payd child (TestMain) with a clock file each (faultOpts.clocks).
	childBin string
	// commitTS: the database keeps commit timestamps (the private
	// PostgreSQL), so the checker times events by when they committed,
	// whatever the clock of the process that wrote them said.
	commitTS bool
	started  time.Time // when the cluster started (the reconciliation window covers it)
	// replays429 counts the 429s checkReplays met and waited out
	replays429 atomic.Int64
	procEnv    func(name string) []string // faultOpts.procEnv

	mu    sync.Mutex
	procs []*faultProc
	// intakeAhead: when intake's host clock ran ahead (from, to; to zero
	// while it still does), fault_clock_test.go
	intakeAhead [][2]time.Time
	workers     []*faultProc
	intake      *faultProc
}

// faultProc is one running payd process in its own process group.
type faultProc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done closes
}

func startFaultCluster(t *testing.T, bin string) *faultCluster {
	t.Helper()
	return startFaultClusterWith(t, bin, faultOpts{})
}

// faultOpts adds private infrastructure to a cluster, for the faults that
// break it (fault_infra_test.go).
type faultOpts struct {
	privateRedis bool // a redis-server of its own (FLUSHALL, restart, SIGSTOP)
	privatePG    bool // a PostgreSQL cluster of its own (restart -m immediate)
	gatewayProxy bool // payd reaches the sandbox through a TCP proxy (gateway down)
	// notify: the sandbox posts signed gateway notifications to intake,
	// delivered as faultNotifyEnv says (fault_notify_test.go)
	notify bool
	// clocks: intake, scheduler and workers run as payd children of the
	// test binary whose host clocks the test can jump (fault_clock_test.go)
	clocks  bool
	env     []string // extra or overriding payd environment
	workers int      // worker processes; 0 means 2
	// procEnv, when set, adds environment to one long-lived process by its
	// name ("intake", "worker-1", …): prometheus_test.go gives each its own
	// admin port
	procEnv func(name string) []string
	// redisURL, when set, is payd's REDIS_URL (a Sentinel or Cluster form,
	// redis_failover_test.go), naming servers the test started
	redisURL string
}

func startFaultClusterWith(t *testing.T, bin string, o faultOpts) *faultCluster {
	t.Helper()
	c := &faultCluster{t: t, chk: t, finalBound: faultFinalBound, bin: bin, dir: t.TempDir(), started: time.Now()}
	if keep := os.Getenv("PAYD_FAULT_LOG_DIR"); keep != "" {
		// keep the process logs for a post-mortem
		c.dir = filepath.Join(keep, strings.ReplaceAll(t.Name(), "/", "_")+"-"+strconv.FormatInt(time.Now().Unix(), 10))
		if err := os.MkdirAll(c.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("process logs in %s", c.dir)
	}
	// migrations as the owner (dbURL), payd as the app role (appURL)
	var dbURL, appURL, redisURL string
	if o.privatePG {
		c.pg = startFaultPG(t)
		dbURL = c.pg.URL()
		appURL = c.pg.appURL(testenv.AppRole)
	} else {
		dbURL, appURL = testenv.PostgresURLs(t)
	}
	switch {
	case o.redisURL != "":
		redisURL = o.redisURL
	case o.privateRedis:
		c.redisSrv = startFaultRedis(t)
		redisURL = c.redisSrv.URL()
	default:
		redisURL = testenv.RedisURL(t)
	}
	// Registered before any process starts, so it runs after they are killed.
	t.Cleanup(c.report)

	sandboxAddr, intakeAddr := faultFreeAddr(t), faultFreeAddr(t)
	c.sandboxURL, c.intakeURL = "http://"+sandboxAddr, "http://"+intakeAddr
	gatewayURL := c.sandboxURL
	if o.gatewayProxy {
		c.proxy = startFaultProxy(t, sandboxAddr)
		gatewayURL = "http://" + c.proxy.addr
	}
	c.env = []string{
		"DATABASE_URL=" + appURL, "PAYD_MIGRATE_DATABASE_URL=" + dbURL, "PAYD_APP_DB_ROLE=" + testenv.AppRole, "REDIS_URL=" + redisURL, "PAYD_LOG_LEVEL=info",
		"PAYD_ADDR=" + intakeAddr, "PAYD_ADMIN_ADDR=127.0.0.1:0", "PAYD_ADMIN_PASSWORD=",
		"PAYD_DB_MAX_CONNS=12", "PAYD_SHUTDOWN_TIMEOUT=2s",
		"PAYD_SANDBOX_ADDR=" + sandboxAddr, "PAYD_SANDBOX_URL=" + gatewayURL,
		"PAYD_SANDBOX_LATENCY=30ms", "PAYD_SANDBOX_SETTLE_DELAY=1s", "PAYD_SANDBOX_RETURN_DELAY=1s",
		"PAYD_RETRY_UNIT=20ms", "PAYD_SWEEP_INTERVAL=1s", "PAYD_SWEEP_GRACE=1s", "PAYD_SWEEP_LEASE=5s", "PAYD_GATEWAY_TIMEOUT=2s",
		"PAYD_TX_TIMEOUT=5s",
		"PAYD_SETTLE_POLL=200ms", "PAYD_RETURN_WINDOW=2s",
		// reconciliation runs once, at the end of each run, by the CLI
		// (finish), so that what it finds is the run's and not a timer's
		"PAYD_RECONCILE_INTERVAL=0",
	}
	// webhook delivery on (the mixed run registers endpoints: fault_webhook_test.go)
	c.env = append(c.env, faultWebhookEnv()...)
	if o.notify {
		c.notifySecret = "whsec_fault_" + strconv.FormatInt(time.Now().UnixNano(), 36)
		c.env = append(c.env, "PAYD_GATEWAY_NOTIFY_SECRET="+c.notifySecret,
			"PAYD_SANDBOX_NOTIFY_URL="+c.intakeURL+"/v1/gateway/notifications")
		c.env = append(c.env, faultNotifyEnv...)
	}
	if o.clocks {
		exe, err := os.Executable()
		if err != nil {
			t.Fatalf("the test binary, to run as payd with a jumping clock: %v", err)
		}
		c.childBin = exe
	}
	c.env = append(c.env, o.env...) // later entries win in exec's environment
	c.procEnv = o.procEnv

	c.start("sandbox", "sandbox")
	c.waitHTTP("sandbox", c.sandboxURL+"/ledger")
	c.runOnce("migrate", "migrate")
	out := c.runOnce("keys", "keys", "create", "--tenant", "t1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	c.apiKey = strings.TrimSpace(lines[len(lines)-1])
	if c.apiKey == "" {
		t.Fatalf("keys create printed no key:\n%s", out)
	}
	c.intake = c.start("intake", "intake")
	c.start("scheduler", "scheduler")
	if o.workers == 0 {
		o.workers = 2
	}
	for i := range o.workers {
		c.startWorker(fmt.Sprintf("worker-%d", i+1))
	}
	c.waitReady()

	db, err := sql.Open("postgres", dbURL) // lib/pq, registered by store
	if err != nil {
		t.Fatalf("open %s: %v", dbURL, err)
	}
	db.SetMaxOpenConns(4)
	t.Cleanup(func() { db.Close() })
	c.db = db
	c.commitTS = faultCommitTS(db)
	// the checks reach Redis as payd does (one server, Sentinel or Cluster)
	conn, err := jobs.ParseRedisURL(redisURL)
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
	}
	c.rdb = conn.NewClient()
	t.Cleanup(func() { c.rdb.Close() })
	c.createInvoices()
	return c
}

// faultInvoices is how many USD invoices a load's payments pay
// (destination_id inv_fault_<i mod faultInvoices>); each is due far more
// than they pay. The chaos load also pays faultInvoicesOther invoices in
// each of JPY (no decimals) and BHD (three): inv_fault_jpy_<i>,
// inv_fault_bhd_<i>.
const (
	faultInvoices      = 7
	faultInvoicesOther = 3
)

// faultInvoiceDue is what each shared invoice is due, per currency (1e8
// USD cents, 1e8 yen, 1e9 fils).
var faultInvoiceDue = map[string]string{"USD": "1000000.00", "JPY": "100000000", "BHD": "1000000.000"}

// faultInvoiceExt is the external id of shared invoice i of a currency.
func faultInvoiceExt(currency string, i int) string {
	if currency == "USD" {
		return fmt.Sprintf("inv_fault_%d", i%faultInvoices)
	}
	return fmt.Sprintf("inv_fault_%s_%d", strings.ToLower(currency), i%faultInvoicesOther)
}

// createInvoices creates the invoices the load pays, through the API.
func (c *faultCluster) createInvoices() {
	c.t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	type inv struct{ ext, currency string }
	var invs []inv
	for i := range faultInvoices {
		invs = append(invs, inv{faultInvoiceExt("USD", i), "USD"})
	}
	for _, cur := range []string{"JPY", "BHD"} {
		for i := range faultInvoicesOther {
			invs = append(invs, inv{faultInvoiceExt(cur, i), cur})
		}
	}
	for _, iv := range invs {
		ext := iv.ext
		body, _ := json.Marshal(map[string]string{"external_id": ext, "currency": iv.currency, "amount_due": faultInvoiceDue[iv.currency]})
		req, err := http.NewRequest(http.MethodPost, c.intakeURL+"/v1/invoices", bytes.NewReader(body))
		if err != nil {
			c.t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
		req.Header.Set("Idempotency-Key", "fault-invoice-"+ext)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			c.t.Fatalf("create invoice %s: %v", ext, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
			c.t.Fatalf("create invoice %s: %d %s", ext, resp.StatusCode, b)
		}
		var v struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &v); err != nil || v.ID == "" {
			c.t.Fatalf("create invoice %s: no id in %s", ext, b)
		}
		if iv.currency == "USD" {
			c.invoiceIDs = append(c.invoiceIDs, v.ID)
		}
	}
}

// payd's environment only: nothing from the developer's shell that payd reads.
func (c *faultCluster) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PAYD_") || strings.HasPrefix(kv, "DATABASE_URL=") || strings.HasPrefix(kv, "REDIS_URL=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, c.env...)
}

// start runs a long-lived payd process; t.Cleanup kills its process group.
// With faultOpts.clocks, intake, scheduler and workers are the test binary's
// payd child, each reading its host clock's offset from its clock file.
func (c *faultCluster) start(name string, args ...string) *faultProc {
	c.t.Helper()
	logPath := filepath.Join(c.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.environ()
	if c.childBin != "" && len(args) > 0 && (args[0] == "intake" || args[0] == "worker" || args[0] == "scheduler") {
		cmd = exec.Command(c.childBin, args...)
		cmd.Env = append(c.environ(), envTestChild+"=1", envTestClockFile+"="+c.clockFile(name))
	}
	if c.procEnv != nil {
		cmd.Env = append(cmd.Env, c.procEnv(name)...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		c.t.Fatalf("start %s: %v", name, err)
	}
	p := &faultProc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	c.t.Cleanup(func() { p.stop() })
	return p
}

func (c *faultCluster) startWorker(name string) *faultProc {
	p := c.start(name, "worker")
	c.mu.Lock()
	c.workers = append(c.workers, p)
	c.mu.Unlock()
	return p
}

// runOnce runs a payd command to completion and returns its stdout.
func (c *faultCluster) runOnce(name string, args ...string) string {
	c.t.Helper()
	return c.runOnceFor(60*time.Second, name, args...)
}

// runOnceFor is runOnce with a time limit.
func (c *faultCluster) runOnceFor(limit time.Duration, name string, args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.environ()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	_ = os.WriteFile(filepath.Join(c.dir, name+".log"), append(stdout.Bytes(), stderr.Bytes()...), 0o600)
	if err != nil {
		c.t.Fatalf("payd %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func (p *faultProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill9 sends SIGKILL to the process group and waits for the process to die.
func (p *faultProc) kill9(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !p.exited() {
		t.Fatalf("kill -9 %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s survived kill -9", p.name)
	}
}

func (p *faultProc) stop() {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

func (c *faultCluster) waitHTTP(name, url string) {
	c.t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not ready at %s after 30s (last error %v)", name, url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *faultCluster) waitReady() { c.t.Helper(); c.waitHTTP("intake", c.intakeURL+"/readyz") }

// inFlightAttempts counts attempts whose intent is recorded and whose outcome
// is not: gateway calls in flight (or unresolved).
func (c *faultCluster) inFlightAttempts() int {
	var n int
	_ = c.db.QueryRow(`SELECT count(*) FROM payment_attempts WHERE status = 'STARTED'`).Scan(&n)
	return n
}

// activeTasks counts the tasks asynq has handed to workers, on every queue.
func (c *faultCluster) activeTasks() int {
	n := 0
	for _, q := range []string{"critical", "default", "low"} {
		k, _ := c.rdb.LLen(context.Background(), "asynq:{"+q+"}:active").Result()
		n += int(k)
	}
	return n
}

// report runs last: on failure it prints the tail of every process log; in
// any case it fails the test on a data race or panic in a process.
func (c *faultCluster) report() {
	c.mu.Lock()
	procs := append([]*faultProc(nil), c.procs...)
	c.mu.Unlock()
	logs, _ := filepath.Glob(filepath.Join(c.dir, "*.log"))
	sort.Strings(logs)
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
			if i := bytes.Index(b, []byte(bad)); i >= 0 {
				c.t.Errorf("%s: %q in %s:\n%s", filepath.Base(path), bad, path, logExcerpt(b[i:], 60))
			}
		}
	}
	if !c.t.Failed() {
		return
	}
	for _, p := range procs {
		state := "running"
		if p.exited() {
			state = fmt.Sprintf("exited: %v", p.err)
		}
		c.t.Logf("process %s (%s)", p.name, state)
	}
	for _, path := range logs {
		b, _ := os.ReadFile(path)
		c.t.Logf("---- tail of %s ----\n%s", filepath.Base(path), logTail(b, 30))
	}
}

func logTail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 400 {
			lines[i] = l[:400] + "…"
		}
	}
	return strings.Join(lines, "\n")
}

func logExcerpt(b []byte, n int) string {
	lines := strings.SplitN(string(b), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// faultFreeAddr returns a loopback address free now, for a process the
// test starts seconds later. Its port is below the kernel's ephemeral range
// (ip_local_port_range), never one the kernel hands out meanwhile as the
// local port of a connection: a port from `listen :0` once went to one of
// the run's own client connections before intake bound it ("bind: address
// already in use", TestFault/redis_sigstop).
func faultFreeAddr(t *testing.T) string {
	t.Helper()
	lo := faultEphemeralLow()
	const floor = 10000
	for range 200 {
		port := floor + rand.IntN(lo-floor)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // taken: another
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	t.Fatalf("no free loopback port in %d..%d", floor, lo-1)
	return ""
}

// faultEphemeralLow is the first port of the kernel's ephemeral range
// (Linux's default 32768 when it cannot be read).
func faultEphemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if lo, err := strconv.Atoi(f[0]); err == nil && lo > 11000 {
				return lo
			}
		}
	}
	return 32768
}

func faultSleepUntil(at time.Time) { time.Sleep(time.Until(at)) }

// ---------------------------------------------------------------- load

type faultLoadSpec struct {
	n       int           // payments in all
	clients int           // concurrent clients
	spread  time.Duration // payment i is started at start + i·spread/n
	mix     func(i int) (method, pm string)
	// build, when set, makes payment i's request instead of mix (the chaos
	// load's seeded mix of payments and payouts).
	build func(i int, key string) *faultClientRecord
	// created, when set, is called by the client after each 2xx; drained
	// after the last client ends and before the load is done.
	created func(r *faultClientRecord)
	drained func()
	// degradedOK: the gateway is failed on purpose, so a payment may end
	// FAILED (retries exhausted, never charged) or REQUIRES_REVIEW
	// (inquiries exhausted) instead of its method's usual outcome.
	degradedOK bool
	// resend: after its 2xx each client posts its request once more with
	// the same Idempotency-Key, as a client that lost the answer would;
	// the answer must be a replay (the I5 negative test's load).
	resend bool
}

// faultClientRecord is what one client knows about one Idempotency-Key. It is
// written only by the client goroutine that owns it, and read after wait.
type faultClientRecord struct {
	path            string // route posted to; empty means /v1/payments
	refund          int64  // chaos load: refund this much (minor units) once it succeeded
	key, method, pm string
	body            []byte
	// chaos load: what kind of payment (the mix's name for it), its
	// currency and amount, the invoice the client creates first (POST
	// /v1/invoices, its body) when it pays one of its own, and the final
	// statuses it may end in, when the client's own actions (3-D Secure)
	// decide them; empty means faultWantStatus by payment method.
	kind     string
	currency string
	minor    int64
	invoice  []byte
	want     []string
	actions  string // what the client did after the 2xx and what it was answered (3-D Secure, sessions)
	// expires is a session's expires_on (fault_session_test.go), set with
	// its body by prepare just before its first try
	expires time.Time
	prepare func(r *faultClientRecord)
	// pre: the requests the client makes first, in order, each retried
	// like the record's own (a payment flow's users and invoice,
	// fault_flow_test.go); flow: what the flow's client asked for
	pre      []*faultClientRecord
	flow     *chaosFlowSpec
	tries    int
	first    time.Time // when the first try was sent
	answered time.Time // when the 2xx came
	id       string    // the payment id of the first 2xx; empty if none
	code     int       // its status
	resp     []byte    // its body
	lastErr  string    // why the last try failed
	rejected bool      // a 4xx that retrying cannot fix
	// clockRefused: a session's create refused with 422 expires_on_in_past
	// because intake's clock ran an hour ahead, or because the client's
	// retries outlasted the session's expires_on: not payd's fault
	clockRefused bool
}

type faultLoad struct {
	spec         faultLoadSpec
	start, end   time.Time
	recs         []*faultClientRecord
	requests     atomic.Int64
	retries      atomic.Int64
	netErrors    atomic.Int64
	mu           sync.Mutex
	statusCounts map[int]int
	done         chan struct{}
}

// startLoad starts the clients; wait blocks until every key got a 2xx, a
// non-retryable answer, or ran out of patience.
func (c *faultCluster) startLoad(spec faultLoadSpec) *faultLoad {
	l := &faultLoad{spec: spec, statusCounts: map[int]int{}, done: make(chan struct{})}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := 0; i < spec.n; i++ {
		key := fmt.Sprintf("fault-%s-%04d", run, i)
		if spec.build != nil {
			l.recs = append(l.recs, spec.build(i, key))
			continue
		}
		method, pm := spec.mix(i)
		body, _ := json.Marshal(map[string]any{
			"amount": fmt.Sprintf("%d.%02d", 1+i%97, i%100), "currency": "USD",
			"destination_id": fmt.Sprintf("inv_fault_%d", i%faultInvoices), "destination_type": "INVOICE",
			"payment_method_type": method, "payment_method_id": pm,
			"metadata": map[string]string{"fault_key": key},
		})
		l.recs = append(l.recs, &faultClientRecord{key: key, method: method, pm: pm, body: body})
	}
	hc := &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: spec.clients, DisableCompression: true}}
	l.start = time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range spec.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= spec.n {
					return
				}
				faultSleepUntil(l.start.Add(time.Duration(i) * spec.spread / time.Duration(spec.n)))
				r := l.recs[i]
				if r.invoice != nil {
					// the invoice this payment pays, created first, retried like the payment
					inv := &faultClientRecord{path: "/v1/invoices", key: r.key + "-invoice", body: r.invoice}
					c.create(hc, l, inv)
					if inv.id == "" {
						r.lastErr, r.rejected = "its invoice: "+inv.lastErr, inv.rejected
						continue
					}
				}
				if failed := c.createPre(hc, l, r); failed {
					continue
				}
				if r.prepare != nil {
					r.prepare(r) // its body, as of when it is sent
				}
				c.create(hc, l, r)
				if spec.resend && r.id != "" {
					c.resend(hc, l, r)
				}
				if spec.created != nil && l.recs[i].id != "" {
					spec.created(l.recs[i])
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		if spec.drained != nil {
			spec.drained()
		}
		l.end = time.Now()
		hc.CloseIdleConnections()
		close(l.done)
	}()
	return l
}

func (l *faultLoad) wait() { <-l.done }

// createPre makes r's pre requests, in order; when one gets no 2xx, r
// records why and is not sent (failed).
func (c *faultCluster) createPre(hc *http.Client, l *faultLoad, r *faultClientRecord) (failed bool) {
	for _, pre := range r.pre {
		c.create(hc, l, pre)
		if pre.id == "" {
			r.lastErr, r.rejected = "its "+pre.path+" "+pre.key+": "+pre.lastErr, pre.rejected
			return true
		}
	}
	return false
}

// resend posts an accepted request once more with its key, as a client
// that never saw the first answer would, until it is answered (the answer
// is judged with the replays, checkReplays).
func (c *faultCluster) resend(hc *http.Client, l *faultLoad, r *faultClientRecord) {
	again := &faultClientRecord{path: r.path, key: r.key, body: r.body}
	c.create(hc, l, again)
}

// create posts one payment until it gets a 2xx, like a real client: on a
// network error, a 5xx, a 409 (same key in flight) or a 429 it retries the
// same request with the same Idempotency-Key, with backoff and Retry-After.
func (c *faultCluster) create(hc *http.Client, l *faultLoad, r *faultClientRecord) {
	deadline := time.Now().Add(faultClientPatience)
	backoff := 50 * time.Millisecond
	for {
		r.tries++
		if r.first.IsZero() {
			r.first = time.Now()
		}
		sent := time.Now()
		code, body, hdr, err := c.post(hc, r.path, r.key, r.body)
		l.requests.Add(1)
		if err != nil {
			l.netErrors.Add(1)
			r.lastErr = err.Error()
		} else {
			l.mu.Lock()
			l.statusCounts[code]++
			l.mu.Unlock()
			switch {
			case code/100 == 2:
				var v struct {
					ID   string `json:"id"`
					Data struct {
						ID string `json:"id"`
					} `json:"data"` // a payment flow's {"data": flow}
				}
				jerr := json.Unmarshal(body, &v)
				if v.ID == "" {
					v.ID = v.Data.ID
				}
				if jerr != nil || v.ID == "" {
					r.lastErr, r.rejected = fmt.Sprintf("HTTP %d without an id: %s", code, body), true
					return
				}
				r.id, r.code, r.resp, r.lastErr, r.answered = v.ID, code, body, "", time.Now()
				return
			case code != http.StatusConflict && code != http.StatusTooManyRequests && code < 500:
				r.lastErr, r.rejected = fmt.Sprintf("HTTP %d: %s", code, body), true
				// refused for an expires_on that had passed: on intake's clock
				// while it ran an hour ahead, or truly, because the client's
				// tries of a short-lived session outlasted it (no try before
				// committed: a committed one would have been replayed)
				r.clockRefused = r.path == faultSessionsPath && code == http.StatusUnprocessableEntity &&
					bytes.Contains(body, []byte(`"expires_on_in_past"`)) &&
					(c.intakeAheadDuring(sent, time.Now()) || (!r.expires.IsZero() && !time.Now().Before(r.expires)))
				return
			}
			r.lastErr = fmt.Sprintf("HTTP %d: %s", code, body)
		}
		wait := backoff
		if d, ok := faultRetryAfter(hdr); ok {
			wait = min(d, 2*time.Second)
		}
		if time.Now().Add(wait).After(deadline) {
			return
		}
		l.retries.Add(1)
		time.Sleep(wait)
		backoff = min(2*backoff, time.Second)
	}
}

// faultRetryAfter is how long an answer asks a client to wait: its
// Retry-After (seconds, or an HTTP date), else its RateLimit-Reset.
func faultRetryAfter(h http.Header) (time.Duration, bool) {
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.Atoi(v); err == nil && s >= 0 {
			return time.Duration(s) * time.Second, true
		}
		if at, err := http.ParseTime(v); err == nil {
			return max(time.Until(at), 0), true
		}
	}
	if s, err := strconv.Atoi(h.Get("RateLimit-Reset")); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	return 0, false
}

func (c *faultCluster) post(hc *http.Client, path, key string, body []byte) (int, []byte, http.Header, error) {
	if path == "" {
		path = "/v1/payments"
	}
	req, err := http.NewRequest(http.MethodPost, c.intakeURL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, http.Header{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, http.Header{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, resp.Header, err
	}
	return resp.StatusCode, b, resp.Header, nil
}

// ---------------------------------------------------------------- checks

// finish waits until every payment is final (I2's bound: c.finalBound,
// normally faultFinalBound, after the later of the last fault and the end of
// the load), checks the invariants and idempotent replays, and logs the
// scenario's summary line. Violations go to c.chk.
func (c *faultCluster) finish(name string, l *faultLoad, lastFault time.Time) faultSummary {
	t := c.chk
	t.Helper()
	for _, r := range l.recs {
		if r.rejected && !r.clockRefused {
			t.Errorf("key %s (%s %s) was refused: %s", r.key, r.method, r.pm, r.lastErr)
		}
	}
	from := lastFault
	if l.end.After(from) {
		from = l.end
	}
	quiet, ok := c.waitQuiescent(from.Add(c.finalBound))
	if !ok {
		t.Errorf("I2: payments not final %s after the later of the last fault and the end of the load", c.finalBound)
	}
	// refunds (a late charge's among them) run on their own tasks
	c.waitRefunds(time.Now().Add(c.finalBound))
	lastFinal := c.lastFinal()

	// I8 as the run left it: payments in review hold their charges, and a
	// late charge whose notification was lost is not known yet
	before := accountLedger(t, c.db, c.gatewayEntries(), false)
	var reviewBefore int
	if err := c.db.QueryRow(`SELECT count(*) FROM payments WHERE status = 'REQUIRES_REVIEW'`).Scan(&reviewBefore); err != nil {
		t.Fatalf("count payments in review: %v", err)
	}
	// pm_card_unknown payments as the run left them: answered (while the
	// sandbox's answer_unknown was on) or in review
	unknownBefore := map[string]int{}
	rows, err := c.db.Query(`SELECT status, count(*) FROM payments WHERE payment_method_id = $1 GROUP BY status`, sandbox.CardUnknown)
	if err != nil {
		t.Fatalf("count pm_card_unknown payments: %v", err)
	}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			t.Fatalf("count pm_card_unknown payments: %v", err)
		}
		unknownBefore[st] = n
	}
	rows.Close()
	// then reconciliation, as an operator runs it, and what it started
	rec := c.reconcile()
	c.waitQuiescent(time.Now().Add(c.finalBound))
	if !c.waitRefunds(time.Now().Add(c.finalBound)) {
		t.Errorf("I2: refunds still PENDING %s after reconciliation", c.finalBound)
	}
	// sessions past their expiry expire (checkSessions reports those left)
	c.waitSessions(time.Now().Add(c.finalBound))
	// flows recompute after their payments' last transitions, and may
	// create payouts (checkFlows reports the flows left under way)
	c.waitFlows(time.Now().Add(c.finalBound))

	// every check on one snapshot of the database, read after the gateway's
	// ledger: nothing the checks compare moves under them
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ledger, err := sandbox.NewClient(c.sandboxURL, nil).(*sandbox.Client).Ledger(ctx)
	if err != nil {
		t.Fatalf("read the sandbox ledger: %v", err)
	}
	entries := c.gatewayEntries()
	snap := c.snapshot()
	s := checkInvariants(t, snap, ledger, l)
	s.i8 = accountLedger(t, snap, entries, true)
	checkI8(t, s.i8)
	s.money = checkMoney(t, snap, ledger)
	_ = snap.Rollback()
	s.i8Before, s.reconcile, s.reviewBefore, s.unknownBefore = before, rec, reviewBefore, unknownBefore
	s.lastFinal = lastFinal
	s.replaysOK = c.checkReplays(l)
	s.quiescedAfterLoad = quiet
	toFinal := "unbounded (some payments are not final)"
	if !s.lastFinal.IsZero() && s.final == s.payments {
		toFinal = s.lastFinal.Sub(lastFault).Round(time.Millisecond).String()
	}
	l.mu.Lock()
	codes := fmt.Sprint(l.statusCounts)
	l.mu.Unlock()
	t.Logf("SUMMARY %s: accepted=%d payments=%d final=%d lost=%d double_charged=%d unacknowledged=%d "+
		"replays_ok=%d/%d timeout_after_charge_by_inquiry=%d/%d max_time_to_final_after_last_fault=%s "+
		"quiesced_after_load=%s load=%s requests=%d retries=%d net_errors=%d http=%s statuses=%v",
		name, s.accepted, s.payments, s.final, s.lost, s.doubleCharged, s.unacknowledged,
		s.replaysOK, s.accepted, s.timeoutsByInquiry, s.timeouts, toFinal,
		quiet.Round(time.Millisecond), l.end.Sub(l.start).Round(time.Millisecond),
		l.requests.Load(), l.retries.Load(), l.netErrors.Load(), codes, s.statuses)
	t.Logf("I8 %s: at quiescence %s (%d payments in review; pm_card_unknown %v); reconciliation: %s; after it %s (%d payments in review)",
		name, s.i8Before, s.reviewBefore, s.unknownBefore, s.reconcile, s.i8, s.review)
	if s.sessions.sessions > 0 {
		t.Logf("SESSIONS %s: %s", name, s.sessions)
	}
	if s.flows.flows > 0 {
		t.Logf("FLOWS %s: %s", name, s.flows)
	}
	return s
}

// lastFinal is when a payment last changed (its row's commit time where the
// database keeps them), before reconciliation.
func (c *faultCluster) lastFinal() time.Time {
	updated := "updated_at"
	if c.commitTS {
		updated = "COALESCE(pg_xact_commit_timestamp(xmin), updated_at)"
	}
	var at sql.NullTime
	if err := c.db.QueryRow(`SELECT max(` + updated + `) FROM payments`).Scan(&at); err != nil {
		c.chk.Fatalf("last change: %v", err)
	}
	return at.Time
}

// waitQuiescent polls until every payment is final with nothing scheduled,
// and returns how long after the end of the load that was. At the deadline it
// logs the stuck rows and the state of their tasks in Redis.
func (c *faultCluster) waitQuiescent(deadline time.Time) (time.Duration, bool) {
	t := c.chk
	start := time.Now()
	slowLogged := false
	for {
		var open int
		if err := c.db.QueryRow(`SELECT count(*) FROM payments WHERE NOT (` + faultFinalSQL + `)`).Scan(&open); err != nil {
			t.Fatalf("count open payments: %v", err)
		}
		if open == 0 {
			return time.Since(start), true
		}
		if !slowLogged && time.Since(start) > 10*time.Second {
			slowLogged = true
			t.Logf("%d payments still open 10s after the load stopped; the oldest:", open)
			c.logOpen(10)
		}
		if time.Now().After(deadline) {
			t.Logf("%d payments still open at the deadline; the oldest:", open)
			c.logOpen(20)
			return time.Since(start), false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *faultCluster) logOpen(limit int) {
	rows, err := c.db.Query(`SELECT id, status, COALESCE(next_step,''), next_step_at, step_seq, payment_method_id,
		attempt_count, updated_at FROM payments WHERE NOT (`+faultFinalSQL+`) ORDER BY updated_at LIMIT $1`, limit)
	if err != nil {
		c.t.Logf("list open payments: %v", err)
		return
	}
	defer rows.Close()
	queue := map[string]string{"create": "default", "submit": "critical", "inquire": "critical", "settle": "default"}
	for rows.Next() {
		var id, status, step, pm string
		var at sql.NullTime
		var seq, attempts int
		var updated time.Time
		if err := rows.Scan(&id, &status, &step, &at, &seq, &pm, &attempts, &updated); err != nil {
			c.t.Logf("scan: %v", err)
			return
		}
		taskID := fmt.Sprintf("payment:%s:%s:%d", step, id, seq)
		st, err := c.rdb.HGet(context.Background(), "asynq:{"+queue[step]+"}:t:"+taskID, "state").Result()
		if errors.Is(err, redis.Nil) {
			st = "absent"
		}
		c.t.Logf("  %s %s next=%s at=%s seq=%d pm=%s attempts=%d updated=%s ago; task %s in Redis: %s",
			id, status, step, at.Time.Format("15:04:05.000"), seq, pm, attempts,
			time.Since(updated).Round(time.Millisecond), taskID, st)
	}
}

// faultReplayPatience is how long checkReplays keeps asking again for one
// request that intake's rate limit refuses (429).
const faultReplayPatience = 2 * time.Minute

// checkReplays sends every accepted request again with its key: each must
// be answered from the idempotency record, byte for byte as the first 2xx.
// A 429 (the tenant's rate limit: the replays are thousands of requests in
// a few seconds) is no answer to the replay: it is asked again after its
// Retry-After (or RateLimit-Reset), as a well-behaved client would.
func (c *faultCluster) checkReplays(l *faultLoad) int {
	t := c.chk
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	var ok, limited atomic.Int64
	var mu sync.Mutex
	var bad []string
	work := make(chan *faultClientRecord)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				code, body, hdr, err := c.post(hc, r.path, r.key, r.body)
				for deadline := time.Now().Add(faultReplayPatience); err == nil && code == http.StatusTooManyRequests &&
					time.Now().Before(deadline); {
					limited.Add(1)
					wait, ok := faultRetryAfter(hdr)
					if !ok {
						wait = time.Second
					}
					time.Sleep(max(wait, 50*time.Millisecond))
					code, body, hdr, err = c.post(hc, r.path, r.key, r.body)
				}
				switch {
				case err != nil:
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s: %v", r.key, err))
					mu.Unlock()
				case code != r.code || hdr.Get("Idempotent-Replayed") != "true" || !bytes.Equal(body, faultReplayable(r)):
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s: replay %d replayed=%q body %s; first answer %d %s",
						r.key, code, hdr.Get("Idempotent-Replayed"), body, r.code, r.resp))
					mu.Unlock()
				default:
					ok.Add(1)
				}
			}
		}()
	}
	for _, r := range l.recs {
		if r.id != "" {
			work <- r
		}
	}
	close(work)
	wg.Wait()
	if n := limited.Load(); n > 0 {
		c.replays429.Add(n)
		t.Logf("replays: %d answers were 429 (rate limited) and asked again after their Retry-After", n)
	}
	reportViolations(t, "I5: replay differs from the first answer", bad)
	return int(ok.Load())
}

type faultSummary struct {
	accepted, payments, final, lost, stuck, doubleCharged, unacknowledged int
	degraded                                                              int // FAILED or REQUIRES_REVIEW because a gateway fault outlasted retries
	timeouts, timeoutsByInquiry, replaysOK                                int
	review                                                                int            // payments in REQUIRES_REVIEW when checked (after reconciliation)
	reviewBefore                                                          int            // in REQUIRES_REVIEW at quiescence, before reconciliation
	unknownBefore                                                         map[string]int // pm_card_unknown payments by status, before reconciliation
	lateCharges                                                           int            // charges of canceled or failed payments, refunded
	statuses                                                              map[string]int
	lastFinal                                                             time.Time
	quiescedAfterLoad                                                     time.Duration
	// I8: the gateway's ledger at quiescence, before reconciliation
	// (figures), what reconciliation reported, and after it (checked)
	i8Before, i8 faultI8
	reconcile    faultReconcile
	money        chaosMoney // I3's figures
	sessions     faultSessionFigures
	flows        faultFlowFigures
}

// checkInvariants checks I1, I2, I4 and I5 on the database (q: one
// snapshot of it) and the sandbox ledger, given what the clients saw (l).
// It reports every violation with t.Errorf and returns the figures.
func checkInvariants(t faultT, q faultQuerier, ledger []sandbox.Charge, l *faultLoad) faultSummary {
	t.Helper()
	s := faultSummary{statuses: map[string]int{}}

	type payRow struct {
		id, status, method, pm, nextStep, ref, key string
		session                                    string // the payment session whose submit made it (checkSessions)
		flow                                       string // the payment flow whose plan made it (checkFlows)
		amount                                     int64
		updated                                    time.Time
	}
	pays := map[string]*payRow{}
	// a payment's client key: the load puts it in metadata (seed 001) or
	// makes it the payout's external_payment_id (seed 002)
	// when a payment last changed: its row's commit time if the database
	// keeps them (a process whose clock jumped wrote updated_at), else updated_at
	updated := "p.updated_at"
	if faultCommitTS(q) {
		updated = "COALESCE(pg_xact_commit_timestamp(p.xmin), p.updated_at)"
	}
	rows, err := q.Query(`SELECT p.id, p.status, p.method, p.payment_method_id, p.amount, COALESCE(p.next_step,''),
		p.gateway_reference, COALESCE(p.metadata->>'fault_key', d.external_payment_id, ''), COALESCE(p.session_id, ''), COALESCE(p.flow_id, ''), ` + updated + `
		FROM payments p LEFT JOIN payout_details d ON d.payment_id = p.id`)
	if err != nil {
		t.Fatalf("load payments: %v", err)
	}
	for rows.Next() {
		p := &payRow{}
		if err := rows.Scan(&p.id, &p.status, &p.method, &p.pm, &p.amount, &p.nextStep, &p.ref, &p.key, &p.session, &p.flow, &p.updated); err != nil {
			t.Fatalf("scan payment: %v", err)
		}
		pays[p.id] = p
	}
	rows.Close()
	s.payments = len(pays)

	atts := map[string][]faultAttempt{}
	rows, err = q.Query(`SELECT payment_id, attempt_number, status, idempotency_key, failure_class, error_code, inquiry_count
		FROM payment_attempts ORDER BY payment_id, attempt_number`)
	if err != nil {
		t.Fatalf("load attempts: %v", err)
	}
	for rows.Next() {
		var pid string
		var a faultAttempt
		if err := rows.Scan(&pid, &a.n, &a.status, &a.key, &a.class, &a.code, &a.inquiries); err != nil {
			t.Fatalf("scan attempt: %v", err)
		}
		atts[pid] = append(atts[pid], a)
	}
	rows.Close()

	// the refunds payd started for charges that landed after it held the
	// payment as not charged (late charges), by payment and charge
	lateRefund := map[string]string{}
	rows, err = q.Query(`SELECT payment_id, charge_reference, status FROM refunds WHERE reason = $1`, payment.RefundReasonChargeAfterCancel)
	if err != nil {
		t.Fatalf("load late-charge refunds: %v", err)
	}
	for rows.Next() {
		var pid, ref, status string
		if err := rows.Scan(&pid, &ref, &status); err != nil {
			t.Fatalf("scan late-charge refund: %v", err)
		}
		lateRefund[pid+"|"+ref] = status
	}
	rows.Close()

	// ---- I1: no double charge
	charges := map[string][]sandbox.Charge{}
	for _, ch := range ledger {
		charges[ch.PaymentID] = append(charges[ch.PaymentID], ch)
	}
	var double, wrongCharge, strange []string
	for pid, chs := range charges {
		if len(chs) > 1 {
			s.doubleCharged++
			double = append(double, fmt.Sprintf("%s charged %d times: %+v", pid, len(chs), chs))
		}
		if pays[pid] == nil {
			strange = append(strange, fmt.Sprintf("ledger charge for unknown payment %s: %+v", pid, chs))
		}
	}
	reportViolations(t, "I1: double charge", double)
	reportViolations(t, "I1: ledger charge without a payment", strange)
	for _, p := range pays {
		chs := charges[p.id]
		switch {
		case p.status == "FAILED" || p.status == "CANCELED":
			// never charged; or charged once after payd held it as not
			// charged (a 3-D Secure challenge completed as the cancel or
			// expiry voided it, a void that got no answer): a late charge,
			// which must have been refunded
			switch {
			case len(chs) == 1 && lateRefund[p.id+"|"+chs[0].Reference] == string(payment.RefundSucceeded):
				s.lateCharges++
			case len(chs) == 1:
				wrongCharge = append(wrongCharge, fmt.Sprintf("%s is %s (%s) but the ledger charged it and the charge was not refunded as a late charge (refund %q): %+v",
					p.id, p.status, p.pm, lateRefund[p.id+"|"+chs[0].Reference], chs))
			}
		case p.method == "OFFLINE" || p.method == "CREDITS":
			if len(chs) != 0 {
				wrongCharge = append(wrongCharge, fmt.Sprintf("%s is %s, recorded without a gateway, but the ledger charged it: %+v", p.id, p.method, chs))
			}
		case p.status == "SUCCEEDED" || p.status == "RETURNED" || p.status == "REFUNDED" || p.status == "PARTIALLY_REFUNDED":
			if len(chs) != 1 {
				wrongCharge = append(wrongCharge, fmt.Sprintf("%s %s %s has %d ledger charges, want 1", p.id, p.method, p.status, len(chs)))
				continue
			}
			ch := chs[0]
			if ch.Amount != p.amount || ch.Reference != p.ref {
				wrongCharge = append(wrongCharge, fmt.Sprintf("%s: ledger charge %d ref %s, payment %d ref %s", p.id, ch.Amount, ch.Reference, p.amount, p.ref))
			}
			charged := false
			for _, a := range atts[p.id] {
				charged = charged || (a.key == ch.Key && a.status == "SUCCEEDED")
			}
			if !charged {
				wrongCharge = append(wrongCharge, fmt.Sprintf("%s: the ledger charged key %s, no SUCCEEDED attempt has it: %+v", p.id, ch.Key, atts[p.id]))
			}
		case p.status == "REQUIRES_REVIEW":
			s.review++
			if len(chs) > 1 {
				wrongCharge = append(wrongCharge, fmt.Sprintf("%s in review with %d charges", p.id, len(chs)))
			}
		}
	}
	reportViolations(t, "I1: ledger and payment disagree", wrongCharge)

	// ---- (c): a lost gateway answer is resolved by inquiry, never by a new charge
	var timeoutBad []string
	for _, p := range pays {
		if p.pm != sandbox.CardTimeoutAfterCharge {
			continue
		}
		s.timeouts++
		byInquiry := false
		for _, a := range atts[p.id] {
			byInquiry = byInquiry || (a.status == "SUCCEEDED" && a.inquiries >= 1)
		}
		if (p.status == "SUCCEEDED" || p.status == "PARTIALLY_REFUNDED" || p.status == "REFUNDED") && len(charges[p.id]) == 1 && byInquiry {
			s.timeoutsByInquiry++
			continue
		}
		if l.spec.degradedOK && (p.status == "FAILED" || p.status == "REQUIRES_REVIEW") {
			continue // the gateway was down or failing: retries or inquiries ran out (checked below)
		}
		if p.nextStep != "" && p.status != "REQUIRES_REVIEW" && len(charges[p.id]) <= 1 {
			continue // not resolved yet, nor charged again: stuck, which is I2's to report
		}
		timeoutBad = append(timeoutBad, fmt.Sprintf("%s: %s, %d ledger charges, attempts %+v", p.id, p.status, len(charges[p.id]), atts[p.id]))
	}
	reportViolations(t, "I1: lost gateway answer not resolved by inquiry", timeoutBad)

	// ---- I2: no lost payment; nothing nobody asked for
	byKey := map[string]*faultClientRecord{}
	acceptedPayments := 0 // the keys of payments and payouts (a session's key names the session, a flow's the flow)
	for _, r := range l.recs {
		byKey[r.key] = r
		if r.id != "" {
			s.accepted++
			if r.path != faultSessionsPath && r.path != faultFlowsPath {
				acceptedPayments++
			}
		}
	}
	var missing, notFinal, orphan, wrongOutcome, otherPayment []string
	for _, r := range l.recs {
		if r.id != "" && r.path != faultSessionsPath && r.path != faultFlowsPath && pays[r.id] == nil { // checkSessions', checkFlows'
			s.lost++
			missing = append(missing, fmt.Sprintf("key %s got %d with id %s, which does not exist", r.key, r.code, r.id))
		}
		if r.id == "" && !r.rejected {
			// the client outlasts every lease in payd: giving up means
			// intake stayed unavailable for it
			t.Errorf("key %s (%s) never got a 2xx in %s (%d tries): %s", r.key, r.pm, faultClientPatience, r.tries, r.lastErr)
		}
	}
	final := map[string]bool{"SUCCEEDED": true, "PARTIALLY_REFUNDED": true, "REFUNDED": true, "RETURNED": true,
		"FAILED": true, "CANCELED": true, "REQUIRES_REVIEW": true}
	perKey := map[string][]string{}
	sessionPayments, flowPayments := 0, 0
	for _, p := range pays {
		s.statuses[p.status]++
		// REQUIRES_REVIEW is final with its slow inquiries still scheduled
		if final[p.status] && (p.nextStep == "" || p.status == "REQUIRES_REVIEW") {
			s.final++
			if p.updated.After(s.lastFinal) {
				s.lastFinal = p.updated
			}
		} else {
			s.stuck++
			notFinal = append(notFinal, fmt.Sprintf("%s (%s) is %s, next step %q", p.id, p.pm, p.status, p.nextStep))
		}
		if p.session != "" {
			// a session's payment (one per submit): its outcome, its
			// client and its money are the session's, checked by
			// checkSessions; I1 above and I4 below hold for it as for any
			sessionPayments++
			continue
		}
		if p.flow != "" {
			// made by a payment flow's plan (no client key of its own): its
			// outcome and money are the flow's, checked by checkFlows; I1
			// above and I4 below hold for it as for any
			flowPayments++
			continue
		}
		r := byKey[p.key]
		want := faultWantStatus[p.pm]
		if p.method == "OFFLINE" {
			want = []string{"SUCCEEDED"}
		}
		if r != nil && len(r.want) > 0 {
			want = r.want // what the client's own actions (3-D Secure) leave
		}
		if r != nil && r.refund > 0 && slices.Contains(want, "SUCCEEDED") {
			// refunded by the load once it succeeded; checked by checkMoney
			if p.status == "PARTIALLY_REFUNDED" || p.status == "REFUNDED" {
				want = []string{p.status}
			}
		}
		switch {
		case len(want) == 0 || slices.Contains(want, p.status):
		case l.spec.degradedOK && p.method != "OFFLINE" && faultDegraded(p.status, len(charges[p.id]), atts[p.id]):
			// a gateway fault outlasted the retry policy (FAILED, never
			// charged, last attempt transient or unknown) or the inquiry
			// schedule (REQUIRES_REVIEW): a correct outcome, counted
			s.degraded++
		default:
			what := ""
			if r != nil && r.actions != "" {
				what = "; the client " + r.actions
			}
			wrongOutcome = append(wrongOutcome, fmt.Sprintf("%s (%s %s) ended %s, want %s%s; attempts %+v",
				p.id, p.pm, faultKindOf(r), p.status, strings.Join(want, " or "), what, atts[p.id]))
		}
		perKey[p.key] = append(perKey[p.key], p.id)
		switch {
		case r == nil:
			orphan = append(orphan, fmt.Sprintf("%s has key %q, which no client used", p.id, p.key))
		case r.id == "":
			// committed, but the client never saw the answer: allowed, the
			// key still names it
			s.unacknowledged++
		case r.id != p.id:
			// a second payment for a key whose client was told of the first
			otherPayment = append(otherPayment, fmt.Sprintf("%s has key %s, whose client was told %s", p.id, p.key, r.id))
		}
	}
	reportViolations(t, "I2: accepted payment missing", missing)
	reportViolations(t, "I2: payment not final", notFinal)
	reportViolations(t, "I2: payment no client asked for", orphan)
	reportViolations(t, "unexpected outcome", wrongOutcome)
	// one payment per key used (several for one key are I5's, below)
	if want := acceptedPayments + s.unacknowledged; len(perKey) != want {
		t.Errorf("I2: payments for %d keys, want %d (accepted %d + committed-unacknowledged %d)", len(perKey), want, acceptedPayments, s.unacknowledged)
	}

	// ---- I5: one payment per Idempotency-Key, on both sides
	var dupKeys []string
	for k, ids := range perKey {
		if len(ids) > 1 {
			dupKeys = append(dupKeys, fmt.Sprintf("key %s has %d payments: %v", k, len(ids), ids))
		}
	}
	reportViolations(t, "I5: several payments for one key", dupKeys)
	reportViolations(t, "I5: payment for a key whose client was told another", otherPayment)
	var idemBad []string
	rows, err = q.Query(`SELECT key, state, COALESCE(response_body, ''::bytea) FROM idempotency_keys WHERE route IN ('POST /v1/payments', 'POST /v1/payouts')`)
	if err != nil {
		t.Fatalf("load idempotency keys: %v", err)
	}
	idemDone := 0
	for rows.Next() {
		var key, state string
		var body []byte
		if err := rows.Scan(&key, &state, &body); err != nil {
			t.Fatalf("scan idempotency key: %v", err)
		}
		var v struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(body, &v)
		r := byKey[key]
		switch {
		case state != "done":
			idemBad = append(idemBad, fmt.Sprintf("key %s still %s", key, state))
		case pays[v.ID] == nil:
			idemBad = append(idemBad, fmt.Sprintf("key %s stores payment %q, which does not exist", key, v.ID))
		case r == nil || pays[v.ID].key != key:
			idemBad = append(idemBad, fmt.Sprintf("key %s stores payment %s of key %s", key, v.ID, pays[v.ID].key))
		case r.id != "" && r.id != v.ID:
			idemBad = append(idemBad, fmt.Sprintf("key %s stores %s, its client was told %s", key, v.ID, r.id))
		default:
			idemDone++
		}
	}
	rows.Close()
	reportViolations(t, "I5: idempotency record", idemBad)
	if idemDone != s.payments-sessionPayments-flowPayments {
		t.Errorf("I5: %d completed idempotency records for %d payments (and %d of sessions, %d of flows, whose records are the sessions' and flows')",
			idemDone, s.payments-sessionPayments-flowPayments, sessionPayments, flowPayments)
	}

	// ---- I4: every status change audited, in an unbroken allowed chain;
	// notes (from = to: a cancel requested, a late charge refunded) are
	// allowed in every status, in the status the payment is in
	type ev struct {
		from sql.NullString
		to   string
	}
	evs := map[string][]ev{}
	rows, err = q.Query(`SELECT payment_id, from_status, to_status FROM payment_events ORDER BY payment_id, id`)
	if err != nil {
		t.Fatalf("load events: %v", err)
	}
	for rows.Next() {
		var pid string
		var e ev
		if err := rows.Scan(&pid, &e.from, &e.to); err != nil {
			t.Fatalf("scan event: %v", err)
		}
		evs[pid] = append(evs[pid], e)
	}
	rows.Close()
	var chainBad []string
	for _, p := range pays {
		es := evs[p.id]
		if len(es) == 0 || es[0].from.Valid || es[0].to != "PENDING" {
			chainBad = append(chainBad, fmt.Sprintf("%s: first event %+v, want NULL→PENDING", p.id, es))
			continue
		}
		for i := 1; i < len(es); i++ {
			from, to := es[i].from.String, es[i].to
			note := from == to
			if !es[i].from.Valid || from != es[i-1].to || (!note && !payment.CanTransition(payment.Status(from), payment.Status(to))) {
				chainBad = append(chainBad, fmt.Sprintf("%s: event %d %s→%s after →%s", p.id, i, from, to, es[i-1].to))
				break
			}
		}
		if last := es[len(es)-1].to; last != p.status {
			chainBad = append(chainBad, fmt.Sprintf("%s: events end in %s, payment is %s", p.id, last, p.status))
		}
	}
	for pid := range evs {
		if pays[pid] == nil {
			chainBad = append(chainBad, fmt.Sprintf("events for unknown payment %s", pid))
		}
	}
	reportViolations(t, "I4: audit chain", chainBad)

	// ---- sessions: lost, double-charged, outcome, open past expiry
	s.sessions = checkSessions(t, q, ledger, l, lateRefund)
	// ---- flows: lost, outcome, money conservation, one payment per
	// generation, payouts only after payins settled, ledger
	s.flows = checkFlows(t, q, ledger, l, lateRefund)
	return s
}

// faultKindOf names a client record's kind of payment, for messages.
func faultKindOf(r *faultClientRecord) string {
	if r == nil || r.kind == "" {
		return "-"
	}
	return r.kind
}

// faultCommitTS says whether the database keeps commit timestamps
// (track_commit_timestamp, on in the private PostgreSQL).
func faultCommitTS(db faultQuerier) bool {
	var v string
	return db.QueryRow(`SHOW track_commit_timestamp`).Scan(&v) == nil && v == "on"
}

// reportViolations fails the test with a count and the first few examples.
func reportViolations(t faultT, what string, items []string) {
	t.Helper()
	if len(items) == 0 {
		return
	}
	if vc, ok := t.(interface{ addViolations(int) }); ok {
		vc.addViolations(len(items) - 1) // Errorf below counts one
	}
	sort.Strings(items)
	shown := items
	if len(shown) > 10 {
		shown = shown[:10]
	}
	t.Errorf("%s: %d violation(s):\n  %s", what, len(items), strings.Join(shown, "\n  "))
}

// faultAttempt is one payment_attempts row, as the checker reads it.
type faultAttempt struct {
	n                        int
	status, key, class, code string
	inquiries                int
}

// faultDegraded says whether a payment's outcome is what a failing gateway
// may leave: FAILED without a charge after a transient or unknown last
// attempt (the retry policy ran out, or a fenced key), or after review (the
// inquiry schedule ran out during the outage, and a slow inquiry in review
// found nothing charged: not_found, which also fences the key), or
// REQUIRES_REVIEW (the inquiry schedule ran out) with at most one charge.
func faultDegraded(status string, charges int, atts []faultAttempt) bool {
	switch status {
	case "REQUIRES_REVIEW":
		return charges <= 1
	case "FAILED":
		if charges != 0 || len(atts) == 0 {
			return false
		}
		last := atts[len(atts)-1]
		switch last.class {
		case "transient", "unknown", "rate_limited":
			return true
		}
		return last.code == "not_found" && last.inquiries >= 1
	}
	return false
}
