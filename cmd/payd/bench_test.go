package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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
	err := run(context.Background(), []string{"payd", "bench", "--spawn", "-n", "200", "-c", "8"}, getenv, &buf)
	out := buf.String()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	for _, want := range []string{
		`(?m)^  PASS  accepted +200/200 requests accepted$`,
		`(?m)^  PASS  no lost payment +200/200 accepted payments final, 0 not final$`,
		`(?m)^  PASS  final status +200/200 final payments SUCCEEDED$`,
		`(?m)^  PASS  ledger +200 charges \(in-process sandbox\): 0 double-charged, 0 succeeded without a charge, 0 charged but not succeeded$`,
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
	err := run(context.Background(), []string{"payd", "bench", "--spawn", "-n", "50", "-c", "8", "-invoices", "7",
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
		"-pm", sandbox.CardDeclined, "-expect", "SUCCEEDED", "-json", jsonPath}, benchEnv(t), &buf)
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
	} {
		if _, err := parseBenchFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseBenchFlags(%q): no error", args)
		}
	}
	o, err := parseBenchFlags([]string{"-addr", "http://127.0.0.1:8080/", "-key", "sk_x"}, &bytes.Buffer{})
	if err != nil || o.addr != "http://127.0.0.1:8080" || o.n != 2000 || o.c != 16 || o.pm != "pm_card_visa" ||
		o.method != "CARD" || o.timeout != 120*time.Second || o.invoices != 1 {
		t.Errorf("defaults: %+v, %v", o, err)
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
	rep := &benchReport{N: len(subs), Scenario: sc}
	fillReport(rep, subs, 1, obs, sc, ledger, nil, "test")
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
