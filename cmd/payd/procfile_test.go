package main

// TestProcfile runs the repository's Procfile for real, with Debian's
// foreman (ruby-foreman, which scripts/test.sh installs; without it the test
// fails), as an operator would on one host:
//
//	foreman run   -f Procfile -e deploy/foreman.env,test.env release
//	foreman start -f Procfile -e … -p B -m all=1,release=0,worker=0   (web, scheduler, monitor, sandbox)
//	foreman start -f Procfile -e … -p W1 worker                        (a worker)
//	foreman start -f Procfile -e … -p W2 worker                        (another)
//
// Each worker runs under a foreman of its own because foreman is not a
// supervisor: when one of its processes exits it stops all the others. So
// the test kills one worker process (kill -9 of that payd, found by the pid
// its foreman printed) in the middle of a load, sees its foreman end and
// everything else run on — the other worker keeps the queues moving — and
// then starts a replacement worker, as a platform's restart policy would.
//
// The load goes through web only: cards of every kind, 3-D Secure payments
// approved on the challenge page the way a browser does it (GET the
// payment's next_action.url, which is web's /sandbox/challenge/…, then POST
// the page's "Complete authentication" form), ACH payments that settle or
// are returned, and partial refunds. Afterwards the fault tests' checker
// (faultCluster.finish: every payment final, no double charge, the ledger
// accounted for after a reconciliation, audit chains, replays identical;
// checkRefunds) judges it. Every role's probes and /metrics are checked on
// its own port, and at the end every foreman is stopped with SIGTERM and
// every process it started must be gone.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
)

// foremanRun is one foreman process and what it printed.
type foremanRun struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done closes
}

var foremanStarted = regexp.MustCompile(`(?m)\s(\S+?)\s+\| started with pid (\d+)$`)

// pids is the pid of each process the foreman started, by its name (web.1).
func (f *foremanRun) pids() map[string]int {
	b, _ := os.ReadFile(f.log)
	out := map[string]int{}
	for _, m := range foremanStarted.FindAllStringSubmatch(string(b), -1) {
		n, _ := strconv.Atoi(m[2])
		out[m[1]] = n
	}
	return out
}

func (f *foremanRun) exited() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// stop asks foreman to stop (SIGTERM: it sends SIGTERM to its processes
// and waits for them) and reports whether it did so in time; then it kills
// foreman's process group, where its processes are too, whatever is left.
func (f *foremanRun) stop(wait time.Duration) bool {
	graceful := true
	if !f.exited() {
		_ = f.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-f.done:
		case <-time.After(wait):
			graceful = false
		}
	}
	_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
	}
	return graceful
}

// procfileRun is the deployment the test runs from the Procfile.
type procfileRun struct {
	t        *testing.T
	c        *faultCluster
	dir      string   // Procfile, bin/payd
	foreman  string   // the foreman binary
	envFiles string   // -e
	baseEnv  []string // foreman's own environment: no payd setting of the caller's
	mu       sync.Mutex
	runs     []*foremanRun
}

func (p *procfileRun) start(name string, args ...string) *foremanRun {
	p.t.Helper()
	logPath := filepath.Join(p.c.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		p.t.Fatal(err)
	}
	argv := append([]string{args[0], "-f", filepath.Join(p.dir, "Procfile"), "-e", p.envFiles}, args[1:]...)
	cmd := exec.Command(p.foreman, argv...)
	cmd.Dir = p.dir
	cmd.Env = p.baseEnv
	cmd.Stdout, cmd.Stderr = f, f
	// its own process group, which its processes share: the cleanup kills it whole
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("foreman %s: %v", strings.Join(argv, " "), err)
	}
	r := &foremanRun{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		f.Close()
		close(r.done)
	}()
	p.mu.Lock()
	p.runs = append(p.runs, r)
	p.mu.Unlock()
	p.t.Cleanup(func() { r.stop(15 * time.Second) })
	return r
}

// waitStarted waits until foreman printed the pids of the given processes.
func (p *procfileRun) waitStarted(r *foremanRun, names ...string) map[string]int {
	p.t.Helper()
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		pids := r.pids()
		all := true
		for _, n := range names {
			all = all && pids[n] > 0
		}
		if all {
			return pids
		}
		if r.exited() || time.Now().After(end) {
			b, _ := os.ReadFile(r.log)
			p.t.Fatalf("foreman %s did not start %v (exited %t):\n%s", r.name, names, r.exited(), logTail(b, 40))
		}
	}
}

// procfileFreeBase picks a foreman base port B whose B+offset ports are
// all free (foreman gives the Procfile's i-th line B + 100·i).
func procfileFreeBase(t *testing.T, offsets ...int) int {
	t.Helper()
	for try := 0; try < 200; try++ {
		base := 20000 + int(time.Now().UnixNano()/1000%30000)
		free := true
		for _, off := range offsets {
			ln, err := net.Listen("tcp", ":"+strconv.Itoa(base+off))
			if err != nil {
				free = false
				break
			}
			ln.Close()
		}
		if free {
			return base
		}
	}
	t.Fatal("no free foreman base port")
	return 0
}

func TestProcfile(t *testing.T) {
	began := time.Now()
	foreman, err := exec.LookPath("foreman")
	if err != nil {
		t.Fatalf("foreman not found (Debian's ruby-foreman; scripts/test.sh installs it): %v", err)
	}
	bin := buildFaultPayd(t)
	dir := t.TempDir()
	procfile, err := os.ReadFile("../../Procfile")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Procfile"), procfile, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(dir, "bin", "payd")); err != nil {
		t.Fatal(err)
	}
	shipped, err := filepath.Abs("../../deploy/foreman.env")
	if err != nil {
		t.Fatal(err)
	}

	// the roles' ports: web's API is B (the Procfile's first line), the
	// scheduler's and the monitor's admin ports B+200 and B+300; each
	// worker's foreman has a base of its own, its admin port base+100
	base := procfileFreeBase(t, 0, 200, 300)
	webAdmin, sandboxAddr := faultFreeAddr(t), faultFreeAddr(t)
	owner, app := testenv.PostgresURLs(t)
	redisURL := testenv.RedisURL(t)
	password := "procfile-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	public := fmt.Sprintf("http://127.0.0.1:%d", base)
	c := &faultCluster{t: t, chk: t, finalBound: faultFinalBound, bin: bin, dir: t.TempDir(), started: time.Now(),
		sandboxURL: "http://" + sandboxAddr, intakeURL: public}
	if keep := os.Getenv("PAYD_FAULT_LOG_DIR"); keep != "" {
		c.dir = filepath.Join(keep, "TestProcfile-"+strconv.FormatInt(time.Now().Unix(), 10))
		if err := os.MkdirAll(c.dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c.env = []string{
		"DATABASE_URL=" + app, "PAYD_MIGRATE_DATABASE_URL=" + owner, "PAYD_APP_DB_ROLE=" + testenv.AppRole, "REDIS_URL=" + redisURL,
		"PAYD_LOG_LEVEL=info", "PAYD_ADMIN_ADDR=" + webAdmin, "PAYD_ADMIN_PASSWORD=" + password,
		"PAYD_SANDBOX_ADDR=" + sandboxAddr, "PAYD_SANDBOX_URL=" + c.sandboxURL,
		"PAYD_PUBLIC_URL=" + public, "PAYD_SANDBOX_PUBLIC_URL=" + public + "/sandbox",
		"PAYD_SHUTDOWN_TIMEOUT=2s", "PAYD_SANDBOX_LATENCY=30ms", "PAYD_SANDBOX_SETTLE_DELAY=1s", "PAYD_SANDBOX_RETURN_DELAY=1s",
		"PAYD_RETRY_UNIT=20ms", "PAYD_SWEEP_INTERVAL=1s", "PAYD_SWEEP_GRACE=1s", "PAYD_SWEEP_LEASE=5s", "PAYD_GATEWAY_TIMEOUT=2s",
		"PAYD_TX_TIMEOUT=5s", "PAYD_SETTLE_POLL=200ms", "PAYD_RETURN_WINDOW=2s", "PAYD_RECONCILE_INTERVAL=0",
	}
	envFile := filepath.Join(dir, "test.env")
	if err := os.WriteFile(envFile, []byte(strings.Join(c.env, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Registered before any process starts, so it runs after they are
	// stopped: it fails the test on a data race or panic in any log.
	t.Cleanup(c.report)
	var baseEnv []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PAYD_") && !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "REDIS_URL=") &&
			!strings.HasPrefix(kv, "PORT=") {
			baseEnv = append(baseEnv, kv)
		}
	}
	p := &procfileRun{t: t, c: c, dir: dir, foreman: foreman, envFiles: shipped + "," + envFile, baseEnv: baseEnv}

	// release first, to completion
	rel := p.start("foreman-release", "run", "release")
	select {
	case <-rel.done:
	case <-time.After(2 * time.Minute):
		t.Fatal("foreman run release did not finish in 2 minutes")
	}
	if b, _ := os.ReadFile(rel.log); rel.err != nil {
		t.Fatalf("foreman run release: %v\n%s", rel.err, logTail(b, 30))
	}
	out := c.runOnce("keys", "keys", "create", "--tenant", "procfile")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	c.apiKey = strings.TrimSpace(lines[len(lines)-1])

	// then the roles: web, scheduler, monitor and sandbox under one foreman,
	// each worker under its own
	core := p.start("foreman-core", "start", "-p", strconv.Itoa(base), "-t", "10", "-m", "all=1,release=0,worker=0")
	corePids := p.waitStarted(core, "web.1", "scheduler.1", "monitor.1", "sandbox.1")
	workerBase := func() int { return faultFreePort(t) - 100 }
	w1Base, w2Base := workerBase(), workerBase()
	w1 := p.start("foreman-worker-1", "start", "worker", "-p", strconv.Itoa(w1Base), "-t", "10")
	w2 := p.start("foreman-worker-2", "start", "worker", "-p", strconv.Itoa(w2Base), "-t", "10")
	victim := p.waitStarted(w1, "worker.1")["worker.1"]
	p.waitStarted(w2, "worker.1")
	c.waitHTTP("web", public+"/readyz")

	db, err := sql.Open("postgres", owner) // lib/pq, registered by store
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(4)
	t.Cleanup(func() { db.Close() })
	c.db = db
	c.commitTS = faultCommitTS(db)
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	c.rdb = redis.NewClient(opt)
	t.Cleanup(func() { c.rdb.Close() })

	// every role's probes and metrics, each on its own port
	admins := map[string]string{"web": "http://" + webAdmin, "scheduler": fmt.Sprintf("http://127.0.0.1:%d", base+200),
		"monitor": fmt.Sprintf("http://127.0.0.1:%d", base+300), "worker-1": fmt.Sprintf("http://127.0.0.1:%d", w1Base+100),
		"worker-2": fmt.Sprintf("http://127.0.0.1:%d", w2Base+100)}
	for role, admin := range admins {
		p.checkAdmin(role, admin, password, role == "monitor")
	}
	c.waitHTTP("sandbox", c.sandboxURL+"/healthz")
	if out := c.runOnce("healthcheck", "healthcheck"); !strings.Contains(out, `"status":"ready"`) {
		t.Errorf("payd healthcheck (web's admin port) printed %q", out)
	}
	// the gateway's operator routes are not on web's public port: only its
	// challenge pages are forwarded
	if code, body := p.get(public+"/sandbox/ledger", "", ""); code != http.StatusNotFound || !bytes.Contains(body, []byte("route_not_found")) {
		t.Errorf("GET %s/sandbox/ledger = %d %s, want payd's 404 route_not_found", public, code, body)
	}

	c.createInvoices()
	r := &chaosRun{t: t, c: c}
	refundq := make(chan *faultClientRecord, 400)
	loadSet := make(chan struct{})
	var refunders, browsers sync.WaitGroup
	refunders.Add(2)
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	var challengesDone, challengesBad sync.Map
	spec := faultLoadSpec{n: 300, clients: 8, spread: 6 * time.Second, build: procfileMix,
		created: func(rec *faultClientRecord) {
			if rec.kind == "3ds_page" {
				browsers.Add(1)
				go func() {
					defer browsers.Done()
					if err := p.approveChallenge(hc, rec); err != nil {
						challengesBad.Store(rec.key, err.Error())
					} else {
						challengesDone.Store(rec.key, true)
					}
				}()
			}
			if rec.refund > 0 {
				refundq <- rec
			}
		},
		drained: func() { browsers.Wait(); close(refundq); refunders.Wait() },
	}
	r.l = c.startLoad(spec)
	close(loadSet)
	for range 2 {
		go func() { defer refunders.Done(); <-loadSet; r.refundLoop(refundq) }()
	}

	// kill -9 the first worker's payd while it is busy
	faultSleepUntil(r.l.start.Add(2 * time.Second))
	inflight, active := 0, 0
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		if inflight, active = c.inFlightAttempts(), c.activeTasks(); inflight > 0 && active >= 4 {
			break
		}
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", victim))
	if got := strings.ReplaceAll(string(cmdline), "\x00", " "); !strings.HasSuffix(strings.TrimSpace(got), "payd worker") {
		t.Fatalf("pid %d that foreman-worker-1 started is %q, not payd worker", victim, got)
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 worker %d: %v", victim, err)
	}
	lastFault := time.Now()
	t.Logf("kill -9 of payd worker (pid %d) at +%s with %d attempts in flight and %d tasks active", victim,
		lastFault.Sub(r.l.start).Round(time.Millisecond), inflight, active)
	if inflight == 0 {
		t.Errorf("no attempt was in flight when the worker was killed")
	}
	select {
	case <-w1.done: // foreman stops when one of its processes exits
	case <-time.After(20 * time.Second):
		t.Errorf("foreman-worker-1 still runs 20 s after its worker died")
	}
	// only the worker died: the other foremen and their processes run on
	for _, f := range []*foremanRun{core, w2} {
		if f.exited() {
			b, _ := os.ReadFile(f.log)
			t.Fatalf("%s exited when another foreman's worker was killed:\n%s", f.name, logTail(b, 30))
		}
	}
	for name, pid := range corePids {
		if syscall.Kill(pid, 0) != nil {
			t.Errorf("%s (pid %d) died with the worker", name, pid)
		}
	}
	time.Sleep(3 * time.Second)
	w3Base := workerBase()
	w3 := p.start("foreman-worker-3", "start", "worker", "-p", strconv.Itoa(w3Base), "-t", "10")
	p.waitStarted(w3, "worker.1")
	t.Logf("replacement worker (its own foreman) started at +%s", time.Since(r.l.start).Round(time.Millisecond))
	p.checkAdmin("worker-3", fmt.Sprintf("http://127.0.0.1:%d", w3Base+100), password, false)

	r.l.wait()
	var bad []string
	challengesBad.Range(func(k, v any) bool { bad = append(bad, fmt.Sprintf("%s: %s", k, v)); return true })
	reportViolations(t, "3-D Secure challenge through web's public port", bad)
	approved := 0
	challengesDone.Range(func(any, any) bool { approved++; return true })
	s := c.finish("procfile", r.l, lastFault)
	refunds := r.checkRefunds()
	if s.statuses["PARTIALLY_REFUNDED"] == 0 || s.statuses["RETURNED"] == 0 || approved == 0 {
		t.Errorf("the load missed a kind: statuses %v, %d challenges approved", s.statuses, approved)
	}

	// stop everything as an operator would (SIGTERM to each foreman): every
	// process it started must be gone
	var started []int
	p.mu.Lock()
	runs := append([]*foremanRun(nil), p.runs...)
	p.mu.Unlock()
	for _, f := range runs {
		for _, pid := range f.pids() {
			started = append(started, pid)
		}
		if !f.stop(20 * time.Second) {
			t.Errorf("%s did not stop within 20 s of SIGTERM", f.name)
		}
	}
	for _, pid := range started {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("pid %d still runs after its foreman stopped", pid)
		}
	}
	t.Logf("PROCFILE: %d payments (%d 3-D Secure approved on the challenge page through web, %d refunds), statuses %v; "+
		"processes started by foreman %d, all stopped; wall time %s",
		s.payments, approved, refunds, s.statuses, len(started), time.Since(began).Round(time.Second))
}

// procfileMix is the load: faultMix's cards and ACH, with every 25th
// payment a 3-D Secure card approved on its challenge page and every 25th
// (another) a card refunded in part once it succeeded.
func procfileMix(i int, key string) *faultClientRecord {
	method, pm := faultMix(i)
	kind := ""
	var refund int64
	minor := int64(1+i%97)*100 + int64(i%100)
	switch i % 25 {
	case 7:
		method, pm, kind = "CARD", sandbox.Card3DS, "3ds_page"
	case 3:
		method, pm, kind, refund = "CARD", sandbox.CardVisa, "refunded", minor/2
	}
	body, _ := json.Marshal(map[string]any{
		"amount": payment.FormatMajor(minor, "USD"), "currency": "USD",
		"destination_id": faultInvoiceExt("USD", i), "destination_type": "INVOICE",
		"payment_method_type": method, "payment_method_id": pm,
		"metadata": map[string]string{"fault_key": key},
	})
	return &faultClientRecord{key: key, method: method, pm: pm, body: body, kind: kind, currency: "USD", minor: minor, refund: refund}
}

var challengeForm = regexp.MustCompile(`<form method="post" action="([^"]*result=succeed[^"]*)">`)

// approveChallenge is the customer's browser on a 3-D Secure payment: it
// follows the payment's next_action.url (web's public port), reads the
// challenge page and posts its "Complete authentication" form. The payment
// must then succeed (rec.want).
func (p *procfileRun) approveChallenge(hc *http.Client, rec *faultClientRecord) error {
	c := p.c
	var actionURL string
	for end := time.Now().Add(60 * time.Second); actionURL == ""; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			return fmt.Errorf("payment %s never asked for its challenge", rec.id)
		}
		code, b := p.get(c.intakeURL+"/v1/payments/"+rec.id, "Bearer "+c.apiKey, "")
		var v struct {
			NextAction *struct {
				URL string `json:"url"`
			} `json:"next_action"`
		}
		if code == http.StatusOK && json.Unmarshal(b, &v) == nil && v.NextAction != nil {
			actionURL = v.NextAction.URL
		}
	}
	if !strings.HasPrefix(actionURL, c.intakeURL+"/sandbox/challenge/") {
		return fmt.Errorf("next_action.url %s is not on web's public port %s", actionURL, c.intakeURL)
	}
	code, page := p.get(actionURL, "", "text/html")
	m := challengeForm.FindSubmatch(page)
	if code != http.StatusOK || m == nil {
		return fmt.Errorf("GET %s = %d without the approve form: %.300s", actionURL, code, page)
	}
	base, _ := url.Parse(actionURL)
	action, err := base.Parse(html.UnescapeString(string(m[1])))
	if err != nil {
		return err
	}
	req, _ := http.NewRequest(http.MethodPost, action.String(), strings.NewReader(""))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", action, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte("Authentication succeeded")) {
		return fmt.Errorf("POST %s = %d: %.300s", action, resp.StatusCode, b)
	}
	rec.want, rec.actions = []string{"SUCCEEDED"}, "approved the challenge on its page through web"
	return nil
}

// get is a GET with an optional Authorization and Accept header.
func (p *procfileRun) get(u, auth, accept string) (int, []byte) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 0, []byte(err.Error())
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// checkAdmin checks one role's admin port: probes without a password,
// /metrics only with it (payd_redis_up 1, and the queue gauges on the
// monitor's).
func (p *procfileRun) checkAdmin(role, admin, password string, monitor bool) {
	t := p.t
	t.Helper()
	p.c.waitHTTP(role, admin+"/readyz")
	if code, b := p.get(admin+"/healthz", "", ""); code != http.StatusOK {
		t.Errorf("%s: GET /healthz = %d %s", role, code, b)
	}
	if code, b := p.get(admin+"/readyz", "", ""); code != http.StatusOK || !bytes.Contains(b, []byte(`"status":"ready"`)) {
		t.Errorf("%s: GET /readyz = %d %s", role, code, b)
	}
	if code, _ := p.get(admin+"/metrics", "", ""); code != http.StatusUnauthorized {
		t.Errorf("%s: GET /metrics without the password = %d, want 401", role, code)
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+password))
	code, b := p.get(admin+"/metrics", basic, "")
	if code != http.StatusOK || !bytes.Contains(b, []byte("\npayd_redis_up 1\n")) {
		t.Errorf("%s: GET /metrics = %d without payd_redis_up 1", role, code)
	}
	if monitor && !bytes.Contains(b, []byte("payd_queue_tasks{")) {
		t.Errorf("%s: /metrics has no queue gauges", role)
	}
}
