package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
)

// benchEnv is a getenv for run: a fresh database (migrated as its owner,
// payd as the app role, derived from DATABASE_URL's user) and Redis DB.
func benchEnv(t *testing.T) func(string) string {
	owner, app := testenv.PostgresURLs(t)
	env := map[string]string{"DATABASE_URL": app, "PAYD_MIGRATE_DATABASE_URL": owner, "REDIS_URL": testenv.RedisURL(t)}
	return func(k string) string { return env[k] }
}

func TestBenchSpawn(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	getenv := benchEnv(t)
	err := run(context.Background(), []string{"payd", "bench", "--spawn", "-n", "200", "-c", "8", "-baselines=false"}, getenv, &buf)
	out := buf.String()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	for _, want := range []string{
		`(?m)^  PASS  accepted +200/200 requests accepted$`,
		`(?m)^  PASS  no lost payment +200/200 accepted payments final, 0 not final$`,
		`(?m)^  PASS  final status +200/200 final payments SUCCEEDED$`,
		`(?m)^  PASS  ledger +200 charges \(payd all's in-process sandbox at http://127\.0\.0\.1:\d+/sandbox\): 0 double-charged, 0 succeeded without a charge, 0 charged but not succeeded$`,
		`(?m)^RESULT PASS$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output does not match %s:\n%s", want, out)
		}
	}
	// Every payment paid the one invoice the bench created, which is now paid in full.
	db, err := sql.Open("postgres", getenv("DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var invoices, paid, due int64
	var status string
	if err := db.QueryRow(`SELECT count(*), max(amount_paid), max(amount_due), max(status) FROM invoices`).
		Scan(&invoices, &paid, &due, &status); err != nil {
		t.Fatal(err)
	}
	if invoices != 1 || paid != 200*1250 || due != 200*1250 || status != "PAID" {
		t.Errorf("invoices %d, paid %d of %d, status %s; want 1 invoice PAID with 250000 of 250000", invoices, paid, due, status)
	}
}

// TestBenchSpawnInvoices spreads the payments over several invoices.
func TestBenchSpawnInvoices(t *testing.T) {
	t.Parallel()
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	var buf bytes.Buffer
	err := run(context.Background(), []string{"payd", "bench", "--spawn", "-n", "50", "-c", "8", "-invoices", "7", "-baselines=false",
		"-json", jsonPath}, benchEnv(t), &buf)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, buf.String())
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Pass || len(rep.Invoices) != 7 || rep.Final.Statuses["SUCCEEDED"] != 50 {
		t.Errorf("pass %v, invoices %v, statuses %v; want a pass over 7 invoices with 50 SUCCEEDED", rep.Pass, rep.Invoices, rep.Final.Statuses)
	}
}

// TestBenchSpawnDetectsWrongStatus proves the checks can fail: declined
// cards never reach the SUCCEEDED the run is told to expect.
func TestBenchSpawnDetectsWrongStatus(t *testing.T) {
	t.Parallel()
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	var buf bytes.Buffer
	err := run(context.Background(), []string{"payd", "bench", "--spawn", "-n", "20", "-c", "4",
		"-pm", sandbox.CardDeclined, "-expect", "SUCCEEDED", "-json", jsonPath, "-baselines=false"}, benchEnv(t), &buf)
	out := buf.String()
	if err == nil || !strings.Contains(err.Error(), "FAIL") {
		t.Fatalf("bench: err = %v, want a FAIL\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^  FAIL  final status +0/20 final payments SUCCEEDED \[pay_`).MatchString(out) ||
		!strings.Contains(out, "RESULT FAIL") {
		t.Errorf("output does not report the wrong status:\n%s", out)
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Pass || rep.Intake.Accepted != 20 || rep.Final.Statuses["FAILED"] != 20 || rep.Ledger.Charges != 0 {
		t.Errorf("json report: pass %v, accepted %d, statuses %v, charges %d; want false, 20, FAILED 20, 0",
			rep.Pass, rep.Intake.Accepted, rep.Final.Statuses, rep.Ledger.Charges)
	}
}

func TestBenchFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{},
		{"-addr", "http://x"},
		{"--spawn", "-addr", "http://x", "-key", "k"},
		{"--spawn", "-n", "0"},
		{"--spawn", "extra"},
		{"--spawn", "-invoices", "0"},
		{"--spawn", "-n", "5", "-invoices", "6"},
		{"--spawn", "-n", "5000", "-invoices", "1001"},
		{"--spawn", "-rate", "-1"},
		{"--spawn", "-rate", "10", "-duration", "0s"},
		{"--spawn", "-rate", "10", "-backlog", "5"},
		{"-addr", "http://x", "-key", "k", "-seed-payments", "10"},
		{"-addr", "http://x", "-key", "k", "-backlog", "10"},
		{"--spawn", "-baseline-tasks", "0"},
	} {
		if _, err := parseBenchFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseBenchFlags(%q): no error", args)
		}
	}
	o, err := parseBenchFlags([]string{"-addr", "http://127.0.0.1:8080/", "-key", "sk_x"}, &bytes.Buffer{})
	if err != nil || o.addr != "http://127.0.0.1:8080" || o.n != 2000 || o.c != 16 || o.pm != "pm_card_visa" ||
		o.method != "CARD" || o.timeout != 120*time.Second || o.invoices != 1 || !o.baselines || o.rate != 0 {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	// open loop: -n follows from -rate × -duration; a backlog sets -n
	if o, err := parseBenchFlags([]string{"--spawn", "-rate", "25", "-duration", "2s"}, &bytes.Buffer{}); err != nil || o.n != 50 {
		t.Errorf("-rate 25 -duration 2s: n = %d, %v; want 50", o.n, err)
	}
	if o, err := parseBenchFlags([]string{"--spawn", "-backlog", "30"}, &bytes.Buffer{}); err != nil || o.n != 30 {
		t.Errorf("-backlog 30: n = %d, %v; want 30", o.n, err)
	}
}

func TestExpectedStatus(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		m    payment.Method
		pm   string
		want payment.Status
	}{
		{payment.MethodCard, "pm_card_visa", payment.StatusSucceeded},
		{payment.MethodCard, "pm_card_flaky", payment.StatusSucceeded},
		{payment.MethodCard, "pm_card_timeout_after_charge", payment.StatusSucceeded},
		{payment.MethodCard, "pm_card_declined", payment.StatusFailed},
		{payment.MethodCard, "pm_card_insufficient_funds", payment.StatusFailed},
		{payment.MethodACH, "ba_123456789", payment.StatusSucceeded},
		{payment.MethodACH, "10001", payment.StatusReturned},
		{payment.MethodACH, "ba_111111119", payment.StatusFailed},
		{payment.MethodOffline, "", payment.StatusSucceeded},
	} {
		if got, err := expectedStatus(c.m, c.pm); got != c.want || err != nil {
			t.Errorf("expectedStatus(%s, %s) = %s, %v; want %s", c.m, c.pm, got, err, c.want)
		}
	}
	if _, err := expectedStatus(payment.MethodCard, "pm_card_3ds"); err == nil {
		t.Error("pm_card_3ds: no error")
	}
}

func TestScenarioDone(t *testing.T) {
	t.Parallel()
	returned := scenario{Method: payment.MethodACH, Expect: payment.StatusReturned}
	succeeded := scenario{Method: payment.MethodCard, Expect: payment.StatusSucceeded}
	for _, c := range []struct {
		sc   scenario
		st   payment.Status
		want bool
	}{
		{succeeded, payment.StatusSucceeded, true},
		{succeeded, payment.StatusProcessing, false},
		{succeeded, payment.StatusFailed, true},
		{succeeded, payment.StatusRequiresReview, true},
		{returned, payment.StatusSent, false},
		{returned, payment.StatusSucceeded, false}, // settled; the return is still to come
		{returned, payment.StatusReturned, true},
		{returned, payment.StatusFailed, true},
	} {
		if got := c.sc.done(c.st); got != c.want {
			t.Errorf("expect %s, status %s: done = %v, want %v", c.sc.Expect, c.st, got, c.want)
		}
	}
}

func TestDistOf(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	want := dist{Count: 100, P50: 50, P95: 95, P99: 99, Max: 100}
	if diff := cmp.Diff(want, distOf(ds)); diff != "" {
		t.Errorf("distOf (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(dist{Count: 1, P50: 7, P95: 7, P99: 7, Max: 7}, distOf([]time.Duration{7 * time.Millisecond})); diff != "" {
		t.Errorf("distOf one (-want +got):\n%s", diff)
	}
	if got := distOf(nil); got != (dist{}) {
		t.Errorf("distOf(nil) = %+v", got)
	}
}

func TestCheckLedger(t *testing.T) {
	t.Parallel()
	sc := scenario{Method: payment.MethodCard, Expect: payment.StatusSucceeded}
	now := time.Now()
	subs := []submission{{id: "pay_ok"}, {id: "pay_double"}, {id: "pay_missing"}, {id: "pay_failed_charged"},
		{id: "pay_failed"}, {id: "pay_pending"}, {failure: "422"}}
	obs := map[string]observation{
		"pay_ok":             {payment.StatusSucceeded, now},
		"pay_double":         {payment.StatusSucceeded, now},
		"pay_missing":        {payment.StatusSucceeded, now},
		"pay_failed_charged": {payment.StatusFailed, now},
		"pay_failed":         {payment.StatusFailed, now},
		"pay_pending":        {payment.StatusProcessing, now},
	}
	ledger := []sandbox.Charge{{PaymentID: "pay_ok"}, {PaymentID: "pay_double"}, {PaymentID: "pay_double"},
		{PaymentID: "pay_failed_charged"}, {PaymentID: "pay_pending"}, {PaymentID: "pay_someone_else"}}
	rep := &benchReport{N: len(subs), Mix: []scenario{sc}}
	fillReport(rep, subs, 1, obs, []scenario{sc}, ledger, nil, "test")
	lg := rep.Ledger
	if diff := cmp.Diff([]string{"pay_double"}, lg.DoubleCharged); diff != "" {
		t.Errorf("double charged (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"pay_missing"}, lg.Missing); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"pay_failed_charged"}, lg.Unexpected); diff != "" {
		t.Errorf("unexpected (-want +got):\n%s", diff)
	}
	if lg.Charges != 5 {
		t.Errorf("charges = %d, want 5 (the bench's payments only)", lg.Charges)
	}
	got := map[string]string{}
	for _, c := range rep.Checks {
		got[c.Name] = c.Result
	}
	want := map[string]string{"accepted": "FAIL", "no lost payment": "FAIL", "final status": "FAIL", "ledger": "FAIL"}
	if diff := cmp.Diff(want, got); diff != "" || rep.Pass {
		t.Errorf("checks (-want +got):\n%s\npass = %v", diff, rep.Pass)
	}
}

// readReport decodes a -json report.
func readReport(t *testing.T, path string) benchReport {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestBenchSpawnFigures runs a short mixed run with every figure on: payd
// as a child process, the baselines, the ratios, the series and the chart.
// It asserts what was measured and that it is correct, never how fast.
func TestBenchSpawnFigures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	jsonPath, chartPath := filepath.Join(dir, "bench.json"), filepath.Join(dir, "bench.png")
	getenv := benchEnv(t)
	var buf bytes.Buffer
	err := run(context.Background(), []string{"payd", "bench", "--spawn", "-n", "40", "-c", "8",
		"-mix", "card=8,declined=1,ach=1", "-baseline-time", "500ms", "-baseline-tasks", "300", "-mem-tasks", "300",
		"-json", jsonPath, "-chart", chartPath, "-log", filepath.Join(dir, "payd.log")}, getenv, &buf)
	out := buf.String()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	rep := readReport(t, jsonPath)
	if !rep.Pass || rep.Intake.Accepted != 40 || rep.Final.Final != 40 || rep.Final.Statuses["SUCCEEDED"] != 36 ||
		rep.Final.Statuses["FAILED"] != 4 || rep.Ledger.Charges != 36 || len(rep.Ledger.DoubleCharged) != 0 {
		t.Errorf("pass %v, accepted %d, final %d, statuses %v, charges %d, double %v; want a pass with 36 SUCCEEDED, 4 FAILED, 36 charges\n%s",
			rep.Pass, rep.Intake.Accepted, rep.Final.Final, rep.Final.Statuses, rep.Ledger.Charges, rep.Ledger.DoubleCharged, out)
	}
	want := map[string][3]int{"card": {32, 32, 0}, "declined": {4, 4, 0}, "ach": {4, 4, 0}} // accepted, final, wrong
	for _, c := range rep.Classes {
		if w, ok := want[c.Name]; !ok || [3]int{c.Accepted, c.Final, c.Wrong} != w {
			t.Errorf("class %s: accepted %d, final %d, wrong %d; want %v", c.Name, c.Accepted, c.Final, c.Wrong, w)
		}
	}
	if len(rep.Classes) != 3 {
		t.Errorf("classes %+v, want 3", rep.Classes)
	}
	b := rep.Baselines
	if b == nil || b.Inserts == nil || b.Inserts.Inserts <= 0 || b.Inserts.PerSecond <= 0 || b.Asynq == nil ||
		b.Asynq.Tasks != 300 || b.Asynq.ProcessedPerSecond <= 0 || b.RedisMemory == nil || b.RedisMemory.BytesPerTask <= 0 || len(b.Errors) > 0 {
		t.Errorf("baselines = %+v", b)
	}
	if rep.Ratios.IntakeVsInserts <= 0 || rep.Ratios.TasksVsAsynq <= 0 {
		t.Errorf("ratios = %+v, want both measured", rep.Ratios)
	}
	// create (which makes the first attempt) at least, for every payment;
	// ACH also settles and declines may retry
	if rep.Tasks == nil || rep.Tasks.PerPayment < 1 || rep.Tasks.Total < 40 {
		t.Errorf("tasks = %+v, want ≥ 1 per payment", rep.Tasks)
	}
	if len(rep.Processes) != 1 || rep.Processes[0].Role != "all" || rep.Processes[0].CPUSeconds <= 0 || rep.Processes[0].PeakRSSMB <= 0 {
		t.Errorf("processes = %+v, want payd all with CPU and RSS", rep.Processes)
	}
	var acc, comp int
	for _, p := range rep.Series {
		acc += p.Accepted
		comp += p.Completed
	}
	if len(rep.Series) == 0 || acc != 40 || comp != 40 {
		t.Errorf("series: %d points, %d accepted, %d completed; want points summing to 40 and 40", len(rep.Series), acc, comp)
	}
	if rep.Machine.CPUs < 1 || rep.Machine.Postgres == "" || rep.Machine.Redis == "" {
		t.Errorf("machine = %+v", rep.Machine)
	}
	f, err := os.Open(chartPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("chart is not a PNG: %v", err)
	}
	if r := img.Bounds(); r.Dx() < 300 || r.Dy() < 200 {
		t.Errorf("chart is %v, want a readable size", r)
	}
	// -replot draws the same chart again from the JSON alone.
	replot := filepath.Join(dir, "replot.png")
	if err := run(context.Background(), []string{"payd", "bench", "-replot", jsonPath, "-chart", replot}, getenv, &buf); err != nil {
		t.Fatalf("-replot: %v", err)
	}
	if rf, err := os.Open(replot); err != nil {
		t.Error(err)
	} else {
		if _, err := png.Decode(rf); err != nil {
			t.Errorf("-replot chart is not a PNG: %v", err)
		}
		rf.Close()
	}
	// The baselines cleaned up after themselves.
	db, err := sql.Open("postgres", getenv("DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables int
	if err := db.QueryRow(`SELECT count(*) FROM pg_tables WHERE tablename LIKE 'bench_inserts_%'`).Scan(&tables); err != nil || tables != 0 {
		t.Errorf("scratch insert tables left: %d, %v", tables, err)
	}
	opt, err := redis.ParseURL(getenv("REDIS_URL"))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	queues, err := rdb.SMembers(context.Background(), "asynq:queues").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range queues {
		if strings.HasPrefix(q, "bench-") {
			t.Errorf("scratch queue %s left in Redis", q)
		}
	}
}

// TestBenchSpawnSeedRate seeds finished payments first, then posts open loop.
func TestBenchSpawnSeedRate(t *testing.T) {
	t.Parallel()
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	getenv := benchEnv(t)
	var buf bytes.Buffer
	err := run(context.Background(), []string{"payd", "bench", "--spawn", "-seed-payments", "200", "-rate", "20", "-duration", "1s",
		"-baselines=false", "-json", jsonPath}, getenv, &buf)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, buf.String())
	}
	rep := readReport(t, jsonPath)
	if !rep.Pass || rep.Intake.Accepted != 20 || rep.Rate != 20 || rep.Seed == nil || rep.Seed.Payments != 200 ||
		rep.Seed.Events != 600 || rep.Seed.Invoices != 1 {
		t.Errorf("pass %v, accepted %d, rate %v, seed %+v; want 20 accepted at 20/s after 200 seeded\n%s", rep.Pass,
			rep.Intake.Accepted, rep.Rate, rep.Seed, buf.String())
	}
	// The seeded rows are what payd would have written: finished, audited, paid.
	db, err := sql.Open("postgres", getenv("DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var pays, events, attempts int
	var invStatus string
	if err := db.QueryRow(`SELECT count(*),
			(SELECT count(*) FROM payment_events e WHERE e.tenant_id = p.tenant_id),
			(SELECT count(*) FROM payment_attempts a WHERE a.tenant_id = p.tenant_id AND a.status = 'SUCCEEDED'),
			(SELECT min(status) FROM invoices i WHERE i.tenant_id = p.tenant_id)
		FROM payments p JOIN tenants t ON t.id = p.tenant_id
		WHERE t.name = 'bench-seed' AND p.status = 'SUCCEEDED' AND p.next_step IS NULL
		GROUP BY p.tenant_id`).Scan(&pays, &events, &attempts, &invStatus); err != nil {
		t.Fatal(err)
	}
	if pays != 200 || events != 600 || attempts != 200 || invStatus != "PAID" {
		t.Errorf("seeded: %d payments, %d events, %d attempts, invoice %s; want 200, 600, 200, PAID", pays, events, attempts, invStatus)
	}
}

// TestBenchSpawnBacklog posts with only intake running, then starts the
// worker and scheduler processes and measures the drain.
func TestBenchSpawnBacklog(t *testing.T) {
	t.Parallel()
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	var buf bytes.Buffer
	err := run(context.Background(), []string{"payd", "bench", "--spawn", "-backlog", "20", "-c", "4", "-baselines=false",
		"-json", jsonPath}, benchEnv(t), &buf)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, buf.String())
	}
	rep := readReport(t, jsonPath)
	var roles []string
	for _, p := range rep.Processes {
		roles = append(roles, p.Role)
	}
	if !rep.Pass || rep.Mode != "spawn-backlog" || rep.Final.Statuses["SUCCEEDED"] != 20 || rep.Ledger.Charges != 20 ||
		rep.Backlog == nil || rep.Backlog.Payments != 20 || rep.Backlog.QueuedBefore < 20 || rep.Backlog.DrainSeconds <= 0 ||
		rep.Backlog.DrainPerSecond <= 0 {
		t.Errorf("pass %v, mode %s, statuses %v, charges %d, backlog %+v\n%s", rep.Pass, rep.Mode, rep.Final.Statuses,
			rep.Ledger.Charges, rep.Backlog, buf.String())
	}
	if diff := cmp.Diff([]string{"sandbox", "intake", "worker", "scheduler"}, roles); diff != "" {
		t.Errorf("processes (-want +got):\n%s", diff)
	}
}

func TestBenchMix(t *testing.T) {
	t.Parallel()
	cs, err := scenarios(benchOptions{mix: "card=3,declined=1"})
	if err != nil || len(cs) != 2 || cs[0].Expect != payment.StatusSucceeded || cs[1].Expect != payment.StatusFailed {
		t.Fatalf("scenarios = %+v, %v", cs, err)
	}
	var got []int
	for i := range 8 {
		got = append(got, classOf(cs, i))
	}
	if diff := cmp.Diff([]int{0, 0, 0, 1, 0, 0, 0, 1}, got); diff != "" {
		t.Errorf("classOf (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"card", "card=0", "nope=1", "card=1,card=2", "card=x"} {
		if _, err := scenarios(benchOptions{mix: bad}); err == nil {
			t.Errorf("scenarios(-mix %q): no error", bad)
		}
	}
}

func TestReadProc(t *testing.T) {
	t.Parallel()
	s, err := readProc(os.Getpid())
	if err != nil || s.PeakRSSKB <= 0 || s.RSSKB <= 0 || s.CPUSeconds < 0 {
		t.Errorf("readProc(self) = %+v, %v", s, err)
	}
}

func TestBuildSeries(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	acc := []timed{{at(100), 10 * time.Millisecond}, {at(900), 30 * time.Millisecond}, {at(2100), 20 * time.Millisecond},
		{time.Time{}, time.Second}} // an unset time is left out
	comp := []timed{{at(1500), 1500 * time.Millisecond}, {at(-5), time.Millisecond}} // before t0 counts in second 0
	want := []seriesPoint{
		{Second: 0, Accepted: 2, Completed: 1, IntakeP50: 10, IntakeP95: 30, IntakeP99: 30, FinalP50: 1, FinalP99: 1},
		{Second: 1, Completed: 1, FinalP50: 1500, FinalP99: 1500},
		{Second: 2, Accepted: 1, IntakeP50: 20, IntakeP95: 20, IntakeP99: 20},
	}
	if diff := cmp.Diff(want, buildSeries(t0, acc, comp)); diff != "" {
		t.Errorf("buildSeries (-want +got):\n%s", diff)
	}
	if got := buildSeries(time.Time{}, acc, comp); len(got) != 0 {
		t.Errorf("no start: %d points, want none", len(got))
	}
}
