package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/payd/payd/bench"
	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/internal/testenv"
)

// paydDir holds the payd executable the tests build (paydExe) for --spawn
// to start.
var (
	paydDir  string
	paydOnce sync.Once
	paydPath string
	paydErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if paydDir != "" {
		os.RemoveAll(paydDir)
	}
	os.Exit(code)
}

// paydExe builds payd once per test binary (testenv.BuildPayd) and
// returns its path.
func paydExe(t *testing.T) string {
	t.Helper()
	paydOnce.Do(func() {
		if paydDir, paydErr = os.MkdirTemp("", "paydbench-test-"); paydErr == nil {
			paydPath, paydErr = testenv.BuildPayd(paydDir)
		}
	})
	if paydErr != nil {
		t.Fatal(paydErr)
	}
	return paydPath
}

// spawnArgs is a paydbench command line with --spawn of the payd paydExe
// built, and args.
func spawnArgs(t *testing.T, args ...string) []string {
	return append([]string{"paydbench", "--spawn", "-payd", paydExe(t)}, args...)
}

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
	err := run(context.Background(), spawnArgs(t, "-n", "200", "-c", "8", "-baselines=false"), getenv, &buf)
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
	// Without -currencies and -amounts the report is what it was before them.
	if regexp.MustCompile(`\bcurrenc(y|ies)\b|\bamounts?\b`).MatchString(out) {
		t.Errorf("a USD run of small amounts reports currencies or amounts:\n%s", out)
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
	err := run(context.Background(), spawnArgs(t, "-n", "50", "-c", "8", "-invoices", "7", "-baselines=false",
		"-json", jsonPath), benchEnv(t), &buf)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, buf.String())
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
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
	err := run(context.Background(), spawnArgs(t, "-n", "20", "-c", "4",
		"-pm", sandbox.CardDeclined, "-expect", "SUCCEEDED", "-json", jsonPath, "-baselines=false"), benchEnv(t), &buf)
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
	var rep bench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Pass || rep.Intake.Accepted != 20 || rep.Final.Statuses["FAILED"] != 20 || rep.Ledger.Charges != 0 {
		t.Errorf("json report: pass %v, accepted %d, statuses %v, charges %d; want false, 20, FAILED 20, 0",
			rep.Pass, rep.Intake.Accepted, rep.Final.Statuses, rep.Ledger.Charges)
	}
}

func readReport(t *testing.T, path string) bench.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
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
	err := run(context.Background(), spawnArgs(t, "-n", "40", "-c", "8",
		"-mix", "card=8,declined=1,ach=1", "-baseline-time", "500ms", "-baseline-tasks", "300", "-mem-tasks", "300",
		"-json", jsonPath, "-chart", chartPath, "-log", filepath.Join(dir, "payd.log")), getenv, &buf)
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
	if err := run(context.Background(), []string{"paydbench", "-replot", jsonPath, "-chart", replot}, getenv, &buf); err != nil {
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
	err := run(context.Background(), spawnArgs(t, "-seed-payments", "200", "-rate", "20", "-duration", "1s",
		"-baselines=false", "-json", jsonPath), getenv, &buf)
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
	err := run(context.Background(), spawnArgs(t, "-backlog", "20", "-c", "4", "-baselines=false",
		"-json", jsonPath), benchEnv(t), &buf)
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

// TestBenchSpawnCurrencies deals payments of three currencies, small and
// large, over two invoices each: every currency is reported on its own, its
// charges are of the amounts posted, and its invoices hold what its
// succeeded payments paid.
func TestBenchSpawnCurrencies(t *testing.T) {
	t.Parallel()
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	getenv := benchEnv(t)
	var buf bytes.Buffer
	err := run(context.Background(), spawnArgs(t, "-n", "36", "-c", "6", "-invoices", "2", "-mix", "card=2,declined=1",
		"-currencies", "USD,JPY,BHD", "-amounts", "mixed", "-baselines=false", "-json", jsonPath), getenv, &buf)
	out := buf.String()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	rep := readReport(t, jsonPath)
	if !rep.Pass || rep.Final.Statuses["SUCCEEDED"] != 24 || rep.Final.Statuses["FAILED"] != 12 || len(rep.Invoices) != 6 {
		t.Errorf("pass %v, statuses %v, invoices %d; want a pass with 24 SUCCEEDED, 12 FAILED over 6 invoices\n%s",
			rep.Pass, rep.Final.Statuses, len(rep.Invoices), out)
	}
	// 12 payments per currency, 6 per invoice: a large payment leaves room for 6 small ones
	const large = 100_000_000_000_000/6 - 1250
	paid := map[string]int64{}
	for _, c := range rep.Currencies {
		if c.Accepted != 12 || c.Final != 12 || c.Wrong != 0 || c.MinAmount != 1250 || c.MaxAmount != large ||
			c.Charges != 8 || c.WrongAmount != 0 || c.AmountCharged <= large {
			t.Errorf("currency %+v", c)
		}
		paid[c.Currency] = c.AmountCharged
	}
	if len(paid) != 3 {
		t.Errorf("currencies %+v, want USD, JPY and BHD", rep.Currencies)
	}
	for _, want := range []string{
		`(?m)^payd bench \(spawn .*; currencies USD, JPY, BHD; amounts mixed \(1250 and 16666666665416 minor units\)$`,
		`(?m)^  currency JPY +accepted +12 `,
		`(?m)^  currency BHD +final +12 `,
		`(?m)^amounts BHD: 12 accepted of 1\.250 to 16666666665\.416, \d+\.\d{3} in all; 0 wrong status; 8 charges of \d+\.\d{3} in all, 0 of another amount or currency$`,
		`(?m)^  PASS  ledger .*, 0 charged another amount or currency$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output does not match %s:\n%s", want, out)
		}
	}
	db, err := sql.Open("postgres", getenv("DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT currency, sum(amount_paid), max(amount_due) FROM invoices GROUP BY currency`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var cur string
		var sum, due int64
		if err := rows.Scan(&cur, &sum, &due); err != nil {
			t.Fatal(err)
		}
		if sum != paid[cur] || due > 100_000_000_000_000 {
			t.Errorf("%s invoices: paid %d (charged %d), largest due %d", cur, sum, paid[cur], due)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestBenchSpawnMaxAmount: one payment per invoice, each of the API's
// maximum amount, in a currency without minor units and one with three.
func TestBenchSpawnMaxAmount(t *testing.T) {
	t.Parallel()
	getenv := benchEnv(t)
	var buf bytes.Buffer
	err := run(context.Background(), spawnArgs(t, "-n", "4", "-c", "2", "-invoices", "2", "-currencies", "JPY,BHD",
		"-amounts", "large", "-baselines=false"), getenv, &buf)
	out := buf.String()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	for _, want := range []string{
		"amounts JPY: 2 accepted of 100000000000000 to 100000000000000, 200000000000000 in all; 0 wrong status; 2 charges of 200000000000000 in all, 0 of another amount or currency\n",
		"amounts BHD: 2 accepted of 100000000000.000 to 100000000000.000, 200000000000.000 in all; 0 wrong status; 2 charges of 200000000000.000 in all, 0 of another amount or currency\n",
		"RESULT PASS\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	db, err := sql.Open("postgres", getenv("DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM invoices WHERE status = 'PAID' AND amount_paid = 100000000000000`).Scan(&n); err != nil || n != 4 {
		t.Errorf("%d invoices PAID with 1e14, %v; want 4", n, err)
	}
}

func TestRunFlags(t *testing.T) {
	t.Parallel()
	none := func(string) string { return "" }
	var buf bytes.Buffer
	if err := run(context.Background(), []string{"paydbench", "-h"}, none, &buf); err != nil || !strings.Contains(buf.String(), "-currencies") {
		t.Errorf("-h: %v\n%s", err, buf.String())
	}
	for _, args := range [][]string{{"paydbench"}, {"paydbench", "--spawn", "-n", "0"}, {"paydbench", "-amounts", "huge", "--spawn"}} {
		if err := run(context.Background(), args, none, &buf); !errors.Is(err, bench.ErrUsage) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
	// payd's defaults, and the owner's URL is DATABASE_URL's without PAYD_MIGRATE_DATABASE_URL
	if cfg, err := loadConfig(none, nil); err != nil || cfg.OwnerDatabaseURL != "postgres://postgres@127.0.0.1:5432/payd?sslmode=disable" ||
		cfg.WorkerConcurrency != 32 || cfg.ShutdownTimeout != 25*time.Second {
		t.Errorf("loadConfig defaults: %+v, %v", cfg, err)
	}
}

// TestPaydDefaults: paydbench reads payd's settings with payd's defaults.
func TestPaydDefaults(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../payd/config.go")
	if err != nil {
		t.Fatal(err)
	}
	payd := map[string]string{}
	for _, m := range regexp.MustCompile(`env:"([A-Z_]+)"(?: envDefault:"([^"]*)")?`).FindAllStringSubmatch(string(src), -1) {
		payd[m[1]] = m[2]
	}
	typ := reflect.TypeFor[config]()
	for i := range typ.NumField() {
		tag := typ.Field(i).Tag
		name := tag.Get("env")
		if def, ok := payd[name]; !ok || def != tag.Get("envDefault") {
			t.Errorf("%s: paydbench default %q, payd's %q (known to payd: %v)", name, tag.Get("envDefault"), def, ok)
		}
	}
}

func TestChildEnv(t *testing.T) {
	t.Parallel()
	environ := []string{"PATH=/bin", "DATABASE_URL=postgres://dev", "PAYD_LOG_LEVEL=debug", "PAYD_TEST_DATABASE_URL=x", "HOME=/root"}
	set := map[string]string{"DATABASE_URL": "postgres://test", "PAYD_LOG_LEVEL": "debug", "REDIS_URL": "redis://test"}
	got := childEnv(environ, func(k string) string { return set[k] })
	want := []string{"PATH=/bin", "HOME=/root", "DATABASE_URL=postgres://test", "PAYD_LOG_LEVEL=debug", "REDIS_URL=redis://test"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("childEnv (-want +got):\n%s", diff)
	}
	// with os.Getenv as getenv, the children get paydbench's environment
	lookup := func(k string) string {
		for _, kv := range environ {
			if n, v, _ := strings.Cut(kv, "="); n == k {
				return v
			}
		}
		return ""
	}
	got = childEnv(environ, lookup)
	slices.Sort(got)
	sorted := slices.Sorted(slices.Values(environ))
	if diff := cmp.Diff(sorted, got); diff != "" {
		t.Errorf("childEnv with the process's own getenv (-want +got):\n%s", diff)
	}
}

// TestBenchSpawnSessions runs the sessions mode beside card payments in one
// invocation: every session created, submitted with sandbox:pm_card_visa,
// COMPLETED with one charge, and both rates in the report.
func TestBenchSpawnSessions(t *testing.T) {
	t.Parallel()
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	var buf bytes.Buffer
	err := run(context.Background(), spawnArgs(t, "-n", "40", "-c", "8", "-sessions", "40", "-baselines=false",
		"-json", jsonPath), benchEnv(t), &buf)
	out := buf.String()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	for _, want := range []string{
		`(?m)^sessions: 40 created and submitted \(session_data sandbox:pm_card_visa\) at concurrency 8: 40 completed in [0-9.]+ s = [0-9.]+/s; card payments of this run [0-9.]+/s; sessions ÷ card payments = [0-9.]+ \(target ≥ 0\.70\)$`,
		`(?m)^  PASS  sessions +40/40 sessions completed \(payment SUCCEEDED, session COMPLETED\); 40 charges: 0 double-charged, 0 completed without a charge, 0 of another amount or currency$`,
		`(?m)^  PASS  ledger +40 charges`,
		`(?m)^RESULT PASS$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output does not match %s:\n%s", want, out)
		}
	}
	rep := readReport(t, jsonPath)
	if s := rep.Sessions; s == nil || s.Completed != 40 || s.PerSecond <= 0 || s.VsCard <= 0 || s.TasksPerSession < 1 ||
		rep.Final.Final != 40 || rep.Tasks == nil || rep.Tasks.PerPayment < 1 {
		t.Errorf("sessions %+v, card payments final %d, tasks %+v", s, rep.Final.Final, rep.Tasks)
	}
}

func TestBenchSpawnWebhooks(t *testing.T) {
	t.Parallel()
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	var buf bytes.Buffer
	err := run(context.Background(), spawnArgs(t, "-n", "40", "-c", "8", "-webhooks", "-webhook-duration", "2s", "-baselines=false",
		"-json", jsonPath), benchEnv(t), &buf)
	out := buf.String()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	for _, want := range []string{
		`(?m)^  card payments completed/s: [0-9.]+ without webhooks, [0-9.]+ with \([0-9.]+×\), 40 payments at -c 8 each$`,
		`(?m)^  at the maximum rate: 40 payments, 80 events, 80 delivered \(0 duplicates, 0 missing\), [0-9.]+ deliveries/s; event→delivery p50 [0-9]+ ms, p99 [0-9]+ ms, max [0-9]+ ms$`,
		`(?m)^  PASS  webhooks +[0-9]+/[0-9]+ events of the webhook phases delivered to the endpoint on \*, 0 bad deliveries$`,
		`(?m)^RESULT PASS$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output does not match %s:\n%s", want, out)
		}
	}
	rep := readReport(t, jsonPath)
	h := rep.Webhooks
	if h == nil || h.CardPerSecondWith <= 0 || h.CardPerSecondWithout <= 0 || h.HalfRate <= 0 || h.HalfPhase.Events != 2*h.HalfPhase.Payments ||
		h.HalfPhase.Delivered != h.HalfPhase.Events || h.MaxPhase.Latency.Count != 80 || h.HalfPhase.Latency.P99 <= 0 {
		t.Errorf("webhooks report %+v", h)
	}
}
