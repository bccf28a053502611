package main

// The dashboard and the alerts, proven against a real Prometheus (Debian's
// prometheus package: /usr/bin/prometheus and promtool; scripts/test.sh
// installs it, and without it the test fails).
//
// TestPrometheusDashboardsAndAlerts runs payd as it is deployed — intake, a
// worker, the scheduler and the monitor as separate processes of the built
// binary (the fault tests' cluster), each serving /metrics on its own admin
// port behind basic auth — and a Prometheus on a free loopback port with
// the shipped deploy/prometheus/prometheus.yml and alerts.yaml. The test
// renders the shipped config with three changes only, and checks that
// nothing else differs: the scrape and evaluation intervals (1s), each
// job's dns_sd_configs (static_configs naming the job's process) and the
// basic_auth password_file (the test's password). It puts a short load
// through, then asks Prometheus (/api/v1/query) for every Grafana panel
// query and every alert expression and fails when one finds no series or
// names a metric Prometheus never scraped (/api/v1/label/__name__/values).
// TestPrometheusRules runs promtool on the shipped files.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/payd/payd/connector/sandbox"
)

// promJobProcs maps each job of the shipped config to the cluster's
// process it scrapes: every payd role.
var promJobProcs = map[string]string{
	"payd-intake": "intake", "payd-worker": "worker-1", "payd-scheduler": "scheduler", "payd-monitor": "monitor",
}

// promGrafanaVars are the values the test gives Grafana's variables in
// panel queries. With a 1s scrape interval Grafana's $__rate_interval
// would be 4s; a minute covers the whole run, so a series that exists at
// all has the two samples rate() needs.
var promGrafanaVars = map[string]string{"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}

const (
	promShippedConfig = "../../deploy/prometheus/prometheus.yml"
	promShippedRules  = "../../deploy/prometheus/alerts.yaml"
)

// TestPrometheusRules: promtool finds the shipped rules and config valid,
// and every alert fires where it should on made-up series
// (deploy/prometheus/alerts_test.yaml, promtool's rule unit tests).
func TestPrometheusRules(t *testing.T) {
	t.Parallel()
	_, promtool := promBinaries(t)
	promtoolRun(t, promtool, "check", "rules", "--lint=all", promShippedRules)
	promtoolRun(t, promtool, "check", "config", "--lint=all", promShippedConfig)
	promtoolRun(t, promtool, "test", "rules", "../../deploy/prometheus/alerts_test.yaml")
}

func TestPrometheusDashboardsAndAlerts(t *testing.T) {
	t.Parallel()
	start := time.Now()
	promBin, promtool := promBinaries(t)
	const shippedConfig, shippedRules = promShippedConfig, promShippedRules

	password := promSecret(t)
	admin := map[string]string{} // process name → admin address
	bin := buildFaultPayd(t)
	c := startFaultClusterWith(t, bin, faultOpts{workers: 1,
		env: []string{"PAYD_ADMIN_PASSWORD=" + password},
		procEnv: func(name string) []string {
			admin[name] = faultFreeAddr(t)
			return []string{"PAYD_ADMIN_ADDR=" + admin[name]}
		}})
	monitor := c.start("monitor", "monitor")
	t.Logf("cluster up after %s", time.Since(start).Round(time.Millisecond))

	dir := t.TempDir()
	pwFile := filepath.Join(dir, "payd_admin_password")
	if err := os.WriteFile(pwFile, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	targets := map[string]string{}
	for job, proc := range promJobProcs {
		targets[job] = admin[proc]
	}
	cfg := promRender(t, shippedConfig, dir, targets, pwFile)
	promtoolRun(t, promtool, "check", "config", cfg)
	p := startPrometheus(t, promBin, cfg, filepath.Join(c.dir, "prometheus.log"))

	// every job scraped, basic auth accepted
	p.waitTargetsUp(t, promJobProcs)
	t.Logf("every target up after %s", time.Since(start).Round(time.Millisecond))

	promLoad(t, c)
	t.Logf("load done after %s", time.Since(start).Round(time.Millisecond))
	// a few scrapes after the load, so that every series it made has the
	// two samples rate() needs
	time.Sleep(4 * time.Second)

	names := p.metricNames(t)
	for _, want := range []string{"payd_payments_created_total", "payd_queue_tasks", "up"} {
		if !names[want] {
			t.Fatalf("Prometheus has no %s: scraping is broken (names: %v)", want, slices.Sorted(maps.Keys(names)))
		}
	}
	checkNames := func(what, expr string) {
		for _, n := range promMetricNames(expr) {
			if !names[n] {
				t.Errorf("%s: %q names %s, which payd does not export (not among the names Prometheus scraped)", what, expr, n)
			}
		}
	}

	// every panel query finds series
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	readJSON(t, "../../deploy/grafana/payd.json", &dash)
	queries := 0
	for _, pn := range dash.Panels {
		if len(pn.Targets) == 0 {
			t.Errorf("panel %q has no query", pn.Title)
		}
		for _, tg := range pn.Targets {
			expr := promGrafanaExpand(t, tg.Expr)
			what := fmt.Sprintf("panel %q", pn.Title)
			checkNames(what, expr)
			if n, err := p.series(expr); err != nil {
				t.Errorf("%s: %q: %v", what, expr, err)
			} else if n == 0 {
				t.Errorf("%s: %q finds no series", what, expr)
			}
			queries++
		}
	}

	// every alert's left-hand side finds series; on this healthy cluster
	// no alert's whole expression does
	alerts := promAlerts(t, shippedRules)
	for _, a := range alerts {
		what := "alert " + a.Alert
		checkNames(what, a.Expr)
		lhs, err := promLHS(a.Expr)
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if n, err := p.series(lhs); err != nil {
			t.Errorf("%s: %q: %v", what, lhs, err)
		} else if n == 0 {
			t.Errorf("%s: %q (of %q) finds no series: a metric it needs is missing", what, lhs, a.Expr)
		}
		if n, err := p.series(a.Expr); err != nil {
			t.Errorf("%s: %q: %v", what, a.Expr, err)
		} else if n != 0 {
			t.Errorf("%s: %q finds %d series on a healthy cluster: it would fire", what, a.Expr, n)
		}
	}
	// Prometheus loaded every rule and evaluates each without an error
	p.checkRules(t, alerts)

	// The stuck-payment gauges come from the monitor only: once it stops,
	// they vanish (no alert on them can fire) and PaydMonitorDown's
	// expression finds its series.
	monitor.stop()
	var down string
	for _, a := range alerts {
		if a.Alert == "PaydMonitorDown" {
			down = a.Expr
		}
	}
	if down == "" {
		t.Fatal("alerts.yaml has no PaydMonitorDown")
	}
	p.waitSeries(t, down, 30*time.Second)
	if n, err := p.series("payd_payments_overdue"); err != nil || n != 0 {
		t.Errorf("payd_payments_overdue with the monitor stopped: %d series (%v), want none (stale)", n, err)
	}
	t.Logf("%d panel queries, %d alerts checked in %s", queries, len(alerts), time.Since(start).Round(time.Millisecond))
}

// promBinaries finds Debian's prometheus and promtool; their absence fails
// the test (scripts/test.sh installs the package).
func promBinaries(t *testing.T) (prom, tool string) {
	t.Helper()
	for _, name := range []string{"prometheus", "promtool"} {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("%s not found (%v): install Debian's prometheus package (scripts/test.sh does)", name, err)
		}
		if name == "prometheus" {
			prom = p
		} else {
			tool = p
		}
	}
	return prom, tool
}

func promtoolRun(t *testing.T, promtool string, args ...string) {
	t.Helper()
	out, err := exec.Command(promtool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func promSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// promRender writes the shipped config into dir for this test, with the
// rule files it names beside it, and returns its path. Only three things
// change: the global scrape and evaluation intervals (1s), each job's
// service discovery (static_configs of targets[job]) and basic_auth's
// password_file. It fails when the shipped config lacks a job of
// promJobProcs or has another, when a job does not scrape /metrics with
// basic auth as admin from a password file, or when the rendering changed
// anything else.
func promRender(t *testing.T, shipped, dir string, targets map[string]string, pwFile string) string {
	t.Helper()
	raw, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	parse := func(b []byte) map[string]any {
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", shipped, err)
		}
		return m
	}
	cfg := parse(raw)
	global, _ := cfg["global"].(map[string]any)
	if global == nil {
		global = map[string]any{}
		cfg["global"] = global
	}
	global["scrape_interval"], global["evaluation_interval"] = "1s", "1s"
	jobs := map[string]bool{}
	scrapes, _ := cfg["scrape_configs"].([]any)
	for _, s := range scrapes {
		sc := s.(map[string]any)
		job, _ := sc["job_name"].(string)
		jobs[job] = true
		addr, ok := targets[job]
		if !ok {
			t.Errorf("%s: job %q scrapes no payd role the test knows (promJobProcs)", shipped, job)
			continue
		}
		if sc["metrics_path"] != "/metrics" {
			t.Errorf("%s: job %s: metrics_path %v, want /metrics (payd's admin port)", shipped, job, sc["metrics_path"])
		}
		auth, _ := sc["basic_auth"].(map[string]any)
		if auth == nil || auth["username"] != "admin" || auth["password_file"] == nil || auth["password"] != nil {
			t.Errorf("%s: job %s: basic_auth %v, want username admin and a password_file", shipped, job, auth)
			continue
		}
		auth["password_file"] = pwFile
		for k := range sc {
			if strings.HasSuffix(k, "_sd_configs") || k == "static_configs" {
				delete(sc, k)
			}
		}
		sc["static_configs"] = []any{map[string]any{"targets": []any{addr}}}
	}
	for job := range targets {
		if !jobs[job] {
			t.Errorf("%s has no job %s", shipped, job)
		}
	}
	rendered, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// what the rendering may change, taken out of both: the rest is equal
	strip := func(m map[string]any) map[string]any {
		if g, ok := m["global"].(map[string]any); ok {
			delete(g, "scrape_interval")
			delete(g, "evaluation_interval")
			if len(g) == 0 {
				delete(m, "global")
			}
		}
		ss, _ := m["scrape_configs"].([]any)
		for _, s := range ss {
			sc := s.(map[string]any)
			for k := range sc {
				if strings.HasSuffix(k, "_sd_configs") || k == "static_configs" {
					delete(sc, k)
				}
			}
			if auth, ok := sc["basic_auth"].(map[string]any); ok {
				delete(auth, "password_file")
			}
		}
		return m
	}
	if diff := cmp.Diff(strip(parse(raw)), strip(parse(rendered))); diff != "" {
		t.Fatalf("the test's rendering changed more than intervals, targets and password_file (-shipped +rendered):\n%s", diff)
	}
	rules, _ := cfg["rule_files"].([]any)
	if len(rules) == 0 {
		t.Fatalf("%s loads no rule_files", shipped)
	}
	for _, r := range rules {
		name, _ := r.(string)
		if name == "" || filepath.IsAbs(name) || strings.Contains(name, "*") {
			t.Fatalf("%s: rule_files entry %v: want a file next to the config", shipped, r)
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(shipped), name))
		if err != nil {
			t.Fatalf("%s names rule file %s: %v", shipped, name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, rendered, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// promGrafanaExpand gives a panel query's Grafana variables the test's
// values (promGrafanaVars); one it does not know fails the test.
func promGrafanaExpand(t *testing.T, expr string) string {
	t.Helper()
	keys := slices.Sorted(maps.Keys(promGrafanaVars))
	// longest first: $__range must not eat the start of a longer name
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		expr = strings.ReplaceAll(expr, k, promGrafanaVars[k])
	}
	if strings.Contains(expr, "$") {
		t.Errorf("panel query %q uses a Grafana variable the test does not give a value (promGrafanaVars)", expr)
	}
	return expr
}

type promAlert struct{ Alert, Expr string }

func promAlerts(t *testing.T, path string) []promAlert {
	t.Helper()
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Record, Expr string }
		}
	}
	if err := readYAML(t, path)[0].Decode(&rules); err != nil {
		t.Fatal(err)
	}
	var out []promAlert
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("%s: rule %+v lacks an alert name or expression", path, r)
				continue
			}
			out = append(out, promAlert{r.Alert, r.Expr})
		}
	}
	if len(out) < 10 {
		t.Fatalf("%s: only %d alerts", path, len(out))
	}
	return out
}

// ---------------------------------------------------------------- PromQL

var (
	promStringLit = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promRange     = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent     = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promKeywords  = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true,
		"without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
)

// promMetricNames returns the metric names a PromQL expression selects:
// with string literals, label matchers, ranges and grouping label lists
// taken out, every identifier that is not a keyword, not part of a number
// or duration, and not a function or aggregation (followed by "(").
func promMetricNames(expr string) []string {
	s := promStringLit.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRange.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	var out []string
	for _, m := range promIdent.FindAllStringIndex(s, -1) {
		name := s[m[0]:m[1]]
		if m[0] > 0 && strings.ContainsRune("0123456789.", rune(s[m[0]-1])) {
			continue // 1e3, 5m
		}
		if promKeywords[strings.ToLower(name)] || strings.HasPrefix(strings.TrimSpace(s[m[1]:]), "(") {
			continue
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// promTopLevel returns expr with everything inside parentheses, brackets,
// braces and string literals blanked out (same length), so that what is
// left are the operators at the top of the expression.
func promTopLevel(expr string) string {
	b := []byte(expr)
	depth := 0
	var quote byte
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case quote != 0:
			if c == '\\' && quote != '`' && i+1 < len(b) {
				b[i] = ' '
				i++
			} else if c == quote {
				quote = 0
			}
			b[i] = ' '
			continue
		case c == '"' || c == '\'' || c == '`':
			quote = c
			b[i] = ' '
			continue
		case c == '(' || c == '[' || c == '{':
			depth++
			b[i] = ' '
			continue
		case c == ')' || c == ']' || c == '}':
			depth--
			b[i] = ' '
			continue
		}
		if depth > 0 {
			b[i] = ' '
		}
	}
	return string(b)
}

var (
	promComparison = regexp.MustCompile(`==|!=|>=|<=|>|<`)
	promSetOp      = regexp.MustCompile(`\b(?:and|or|unless)\b`)
	promScalar     = regexp.MustCompile(`^(?:bool\s+)?[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|Inf|NaN)$`)
	promAbsent     = regexp.MustCompile(`^absent(?:_over_time)?\s*\(`)
)

// promLHS is what of an alert expression must find series whenever the
// metrics it needs exist, firing or not:
//
//   - `X > 0` (any comparison with a number on its right, also with bool):
//     X. The comparison filters out the series that do not fire, so the
//     whole expression finds none on a healthy system; X finds them all.
//   - `absent(X)`, `absent_over_time(X[…])`: X as it stands. absent()
//     finds a series only when X finds none: X is what a healthy
//     deployment has (for `absent(up{job="payd-monitor"} == 1)`: the
//     monitor scraped and up).
//   - anything else: the expression itself.
//
// An expression with and/or/unless at its top, or a comparison with a
// non-number on its right, is refused: say here how to read it first.
func promLHS(expr string) (string, error) {
	e := strings.TrimSpace(expr)
	if loc := promAbsent.FindStringIndex(e); loc != nil {
		top := promTopLevel(e)
		if strings.TrimSpace(top[loc[1]-1:]) != "" || !strings.HasSuffix(e, ")") {
			return "", fmt.Errorf("%q: absent() with more after it: say in promLHS how to read it", expr)
		}
		inner := strings.TrimSpace(e[loc[1] : len(e)-1])
		if strings.HasPrefix(e, "absent_over_time") {
			inner = strings.TrimSpace(promRangeSuffix.ReplaceAllString(inner, ""))
		}
		return inner, nil
	}
	top := promTopLevel(e)
	if promSetOp.MatchString(top) {
		return "", fmt.Errorf("%q: and/or/unless at the top: say in promLHS how to read it", expr)
	}
	ops := promComparison.FindAllStringIndex(top, -1)
	if len(ops) == 0 {
		return e, nil
	}
	if len(ops) > 1 {
		return "", fmt.Errorf("%q: more than one comparison at the top: say in promLHS how to read it", expr)
	}
	op := ops[0]
	lhs, rhs := strings.TrimSpace(e[:op[0]]), strings.TrimSpace(e[op[1]:])
	if !promScalar.MatchString(rhs) {
		return "", fmt.Errorf("%q: compared with %q, not a number: say in promLHS how to read it", expr, rhs)
	}
	return lhs, nil
}

var promRangeSuffix = regexp.MustCompile(`\[[^\]]*\]\s*$`)

// TestPromQLHelpers: the metric-name and left-hand-side readings the
// Prometheus test relies on.
func TestPromQLHelpers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		expr  string
		names []string
		lhs   string
		err   bool
	}{
		{expr: `payd_payments_overdue > 0`, names: []string{"payd_payments_overdue"}, lhs: `payd_payments_overdue`},
		{expr: `absent(up{job="payd-monitor"} == 1)`, names: []string{"up"}, lhs: `up{job="payd-monitor"} == 1`},
		{expr: `absent_over_time(up{job="x"}[5m])`, names: []string{"up"}, lhs: `up{job="x"}`},
		{expr: `sum by (queue) (delta(payd_queue_tasks{state="archived"}[30m])) > 0`, names: []string{"payd_queue_tasks"},
			lhs: `sum by (queue) (delta(payd_queue_tasks{state="archived"}[30m]))`},
		{expr: `(sum(rate(payd_http_requests_total{code=~"5.."}[5m])) or vector(0)) / sum(rate(payd_http_requests_total[5m])) > 0.01`,
			names: []string{"payd_http_requests_total"},
			lhs:   `(sum(rate(payd_http_requests_total{code=~"5.."}[5m])) or vector(0)) / sum(rate(payd_http_requests_total[5m]))`},
		{expr: `histogram_quantile(0.99, sum by (le, route) (rate(payd_http_request_duration_seconds_bucket[1m])))`,
			names: []string{"payd_http_request_duration_seconds_bucket"},
			lhs:   `histogram_quantile(0.99, sum by (le, route) (rate(payd_http_request_duration_seconds_bucket[1m])))`},
		{expr: `min by (source) (payd_monitor_source_up) == bool 0`, names: []string{"payd_monitor_source_up"},
			lhs: `min by (source) (payd_monitor_source_up)`},
		{expr: `a_total offset 5m > 1e3`, names: []string{"a_total"}, lhs: `a_total offset 5m`},
		{expr: `x{l=">"} / ignoring(l) group_left y > 2`, names: []string{"x", "y"}, lhs: `x{l=">"} / ignoring(l) group_left y`},
		{expr: `a > 0 and b > 0`, names: []string{"a", "b"}, err: true},
		{expr: `a > b`, names: []string{"a", "b"}, err: true},
		{expr: `absent(a) or b`, names: []string{"a", "b"}, err: true},
	} {
		if diff := cmp.Diff(c.names, promMetricNames(c.expr)); diff != "" {
			t.Errorf("promMetricNames(%q) (-want +got):\n%s", c.expr, diff)
		}
		lhs, err := promLHS(c.expr)
		if (err != nil) != c.err || lhs != c.lhs {
			t.Errorf("promLHS(%q) = %q, %v; want %q, error %v", c.expr, lhs, err, c.lhs, c.err)
		}
	}
}

// ---------------------------------------------------------------- server

type promServer struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{}
	hc   *http.Client
}

// startPrometheus runs prometheus on a free loopback port with the config
// at cfg (its TSDB in a temporary directory) until the test ends.
func startPrometheus(t *testing.T, bin, cfg, logPath string) *promServer {
	t.Helper()
	addr := faultFreeAddr(t)
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(t.TempDir(), "data"),
		"--web.listen-address="+addr, "--storage.tsdb.retention.time=1d")
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start prometheus: %v", err)
	}
	p := &promServer{url: "http://" + addr, cmd: cmd, done: make(chan struct{}), hc: &http.Client{Timeout: 10 * time.Second}}
	go func() {
		cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := p.hc.Get(p.url + "/-/ready")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("prometheus exited: %v\n%s", cmd.ProcessState, logTail(b, 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready at %s after 60s (last error %v)", p.url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// api GETs /api/v1/<path> and decodes its data.
func (p *promServer) api(path string, q url.Values, data any) error {
	u := p.url + "/api/v1/" + path
	if q != nil {
		u += "?" + q.Encode()
	}
	resp, err := p.hc.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	if env.Status != "success" {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

// series is how many series an instant query finds now.
func (p *promServer) series(expr string) (int, error) {
	var d struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	}
	if err := p.api("query", url.Values{"query": {expr}}, &d); err != nil {
		return 0, err
	}
	switch d.ResultType {
	case "vector", "matrix":
		return len(d.Result), nil
	}
	return 1, nil // a scalar or a string
}

func (p *promServer) waitSeries(t *testing.T, expr string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		n, err := p.series(expr)
		if err == nil && n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q found no series within %s (%v)", expr, limit, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (p *promServer) metricNames(t *testing.T) map[string]bool {
	t.Helper()
	var names []string
	if err := p.api("label/__name__/values", nil, &names); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, n := range names {
		out[n] = true
	}
	return out
}

// waitTargetsUp waits until every job has exactly one target and it is up:
// its /metrics answered Prometheus's basic auth with a scrape.
func (p *promServer) waitTargetsUp(t *testing.T, jobs map[string]string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var d struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				ScrapeURL string            `json:"scrapeUrl"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		}
		var problems []string
		if err := p.api("targets", url.Values{"state": {"active"}}, &d); err != nil {
			problems = append(problems, err.Error())
		}
		up := map[string]int{}
		for _, tg := range d.ActiveTargets {
			job := tg.Labels["job"]
			if _, ok := jobs[job]; !ok {
				problems = append(problems, "unexpected job "+job)
			}
			if tg.Health == "up" {
				up[job]++
			} else {
				problems = append(problems, fmt.Sprintf("%s %s: %s %s", job, tg.ScrapeURL, tg.Health, tg.LastError))
			}
		}
		for job := range jobs {
			if up[job] != 1 {
				problems = append(problems, fmt.Sprintf("job %s: %d targets up, want 1", job, up[job]))
			}
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			sort.Strings(problems)
			t.Fatalf("targets not all up after 60s:\n%s", strings.Join(problems, "\n"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkRules: Prometheus loaded every alert of the file and has evaluated
// each at least once without an error.
func (p *promServer) checkRules(t *testing.T, alerts []promAlert) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var d struct {
			Groups []struct {
				Rules []struct {
					Name           string `json:"name"`
					Health         string `json:"health"`
					LastError      string `json:"lastError"`
					LastEvaluation string `json:"lastEvaluation"`
				} `json:"rules"`
			} `json:"groups"`
		}
		var problems []string
		if err := p.api("rules", url.Values{"type": {"alert"}}, &d); err != nil {
			problems = append(problems, err.Error())
		}
		loaded := map[string]bool{}
		for _, g := range d.Groups {
			for _, r := range g.Rules {
				loaded[r.Name] = true
				if r.Health != "ok" {
					problems = append(problems, fmt.Sprintf("%s: health %q %s (last evaluated %s)", r.Name, r.Health, r.LastError, r.LastEvaluation))
				}
			}
		}
		for _, a := range alerts {
			if !loaded[a.Alert] {
				problems = append(problems, a.Alert+" not loaded")
			}
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("alert rules in Prometheus:\n%s", strings.Join(problems, "\n"))
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// ---------------------------------------------------------------- load

// promLoad puts through what gives every panel's series a value: card
// payments (one replayed with its Idempotency-Key, one declined), an ACH
// payment that settles, a refund, and two 3-D Secure payments: one left
// waiting for its customer (it expires and is voided), one canceled (voided
// at once).
func promLoad(t *testing.T, c *faultCluster) {
	t.Helper()
	hc := &http.Client{Timeout: 15 * time.Second}
	defer hc.CloseIdleConnections()
	post := func(path, key string, body []byte, want ...int) ([]byte, http.Header) {
		t.Helper()
		var code int
		var b []byte
		var hdr http.Header
		var err error
		for try := 0; try < 20; try++ {
			code, b, hdr, err = c.post(hc, path, key, body)
			if err == nil && code != http.StatusConflict && code != http.StatusTooManyRequests && code < 500 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil || !slices.Contains(want, code) {
			t.Fatalf("POST %s (%s): %d %v %s", path, key, code, err, b)
		}
		return b, hdr
	}
	payBody := func(method, pm string) []byte {
		b, _ := json.Marshal(map[string]any{"amount": "10.00", "currency": "USD", "destination_id": "inv_fault_0",
			"destination_type": "INVOICE", "payment_method_type": method, "payment_method_id": pm})
		return b
	}
	pay := func(key, method, pm string) string {
		t.Helper()
		var v struct{ ID string }
		b, _ := post("", key, payBody(method, pm), http.StatusCreated)
		if err := json.Unmarshal(b, &v); err != nil || v.ID == "" {
			t.Fatalf("payment %s: no id (%v)", key, err)
		}
		return v.ID
	}
	visa := pay("prom-visa-1", "CARD", sandbox.CardVisa)
	if b, hdr := post("", "prom-visa-1", payBody("CARD", sandbox.CardVisa), http.StatusCreated); hdr.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the repeat of prom-visa-1 was not answered from its stored answer: %s", b)
	}
	pay("prom-visa-2", "CARD", sandbox.CardVisa)
	declined := pay("prom-declined", "CARD", sandbox.CardDeclined)
	ach := pay("prom-ach", "ACH", "ba_"+sandbox.BankAccountSettles)
	pay("prom-3ds-pending", "CARD", sandbox.Card3DS)
	tds := pay("prom-3ds-cancel", "CARD", sandbox.Card3DS)

	promWaitStatus(t, c, visa, "SUCCEEDED")
	post("/v1/payments/"+visa+"/refunds", "prom-refund", []byte(`{}`), http.StatusCreated)
	promWaitStatus(t, c, tds, "REQUIRES_ACTION")
	post("/v1/payments/"+tds+"/cancel", "prom-cancel", nil, http.StatusAccepted)
	promWaitStatus(t, c, tds, "CANCELED")
	promWaitStatus(t, c, declined, "FAILED")
	promWaitStatus(t, c, ach, "SUCCEEDED")
	promWaitStatus(t, c, visa, "REFUNDED")
}

func promWaitStatus(t *testing.T, c *faultCluster, id, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var got string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.db.QueryRowContext(ctx, `SELECT status FROM payments WHERE id = $1`, id).Scan(&got)
		cancel()
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment %s: status %q (%v) after 60s, want %s", id, got, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
