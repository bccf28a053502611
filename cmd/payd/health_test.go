package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// TestReadinessFollowsPostgresNotRedis: intake, a worker and the scheduler
// in one process, on a Redis of their own and on Postgres through a TCP
// proxy. With Redis stopped (the real redis-server killed) the process stays
// ready on intake's public port and on the admin port — the body says
// "degraded" and redis "unreachable", payd_redis_up is 0 — and intake still
// accepts a payment, which completes once Redis is back (the sweeper). With
// Postgres unreachable both readiness checks answer 503 while liveness stays
// 200. The probes need no password; /metrics does.
func TestReadinessFollowsPostgresNotRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, app := testenv.PostgresURLs(t)
	rds := startFaultRedis(t)
	appURL, err := url.Parse(app)
	if err != nil {
		t.Fatal(err)
	}
	pgProxy := startFaultProxy(t, appURL.Host)
	appURL.Host = pgProxy.addr
	env := map[string]string{"DATABASE_URL": appURL.String(), "PAYD_MIGRATE_DATABASE_URL": owner, "PAYD_APP_DB_ROLE": testenv.AppRole,
		"REDIS_URL": rds.URL(), "PAYD_DB_MAX_CONNS": "6", "PAYD_ADMIN_PASSWORD": "admin-secret",
		"PAYD_SWEEP_INTERVAL": "1s", "PAYD_SWEEP_GRACE": "1s", "PAYD_SWEEP_LEASE": "2s", "PAYD_RECONCILE_INTERVAL": "0",
		"PAYD_SHUTDOWN_TIMEOUT": "2s"}
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.migrate(ctx); err != nil {
		t.Fatal(err)
	}
	intakeLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr, cfg.AdminAddr = intakeLn.Addr().String(), adminLn.Addr().String()
	d, err := build(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	d.intakeLn, d.adminLn = intakeLn, adminLn
	ten, err := d.store.CreateTenant(ctx, "ready")
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := d.store.CreateAPIKey(ctx, ten.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.store.CreateInvoice(ctx, store.NewInvoice{TenantID: ten.ID, ExternalID: "inv_ready", Currency: "USD",
		AmountDue: 100_000}); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- d.serve(sctx, roleIntake, roleWorker, roleScheduler) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	public, admin := "http://"+cfg.Addr, "http://"+cfg.AdminAddr
	waitHealthy(t, public)
	waitHealthy(t, admin)

	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	get := func(u, user, pass string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	// ready checks /readyz on both ports: its status code and body
	ready := func(when string, wantCode int, want string, postgres, redis string) {
		t.Helper()
		for _, base := range []string{public, admin} {
			code, b := get(base+"/readyz", "", "")
			var v struct {
				Status string            `json:"status"`
				Checks map[string]string `json:"checks"`
			}
			if err := json.Unmarshal(b, &v); err != nil || code != wantCode || v.Status != want ||
				v.Checks["postgres"] != postgres || v.Checks["redis"] != redis {
				t.Errorf("%s: GET %s/readyz = %d %s, want %d status %s postgres %s redis %s", when, base, code, b, wantCode, want, postgres, redis)
			}
		}
	}
	redisUp := func() string {
		t.Helper()
		code, b := get(admin+"/metrics", "admin", "admin-secret")
		if code != http.StatusOK {
			t.Fatalf("GET /metrics with the password = %d", code)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "payd_redis_up ") {
				return strings.TrimPrefix(l, "payd_redis_up ")
			}
		}
		t.Fatalf("/metrics has no payd_redis_up:\n%s", b)
		return ""
	}
	// waitFor polls cond for up to 20 s
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(20 * time.Second); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%s: not within 20 s", what)
			}
		}
	}

	ready("all up", http.StatusOK, "ready", "ok", "ok")
	var out bytes.Buffer
	if err := runHealthcheck(ctx, cfg, nil, &out); err != nil || !strings.Contains(out.String(), `"status":"ready"`) {
		t.Errorf("payd healthcheck (this process's /readyz) = %v, printed %q", err, out.String())
	}
	if v := redisUp(); v != "1" {
		t.Errorf("payd_redis_up = %s with Redis up, want 1", v)
	}
	if code, _ := get(admin+"/healthz", "", ""); code != http.StatusOK {
		t.Errorf("admin /healthz without a password = %d, want 200", code)
	}
	if code, _ := get(admin+"/metrics", "", ""); code != http.StatusUnauthorized {
		t.Errorf("admin /metrics without the password = %d, want 401", code)
	}

	// Redis stopped: ready, degraded, and intake accepts.
	rds.kill()
	ready("redis stopped", http.StatusOK, "degraded", "ok", "unreachable")
	if v := redisUp(); v != "0" {
		t.Errorf("payd_redis_up = %s with Redis stopped, want 0", v)
	}
	body := `{"amount":"12.50","currency":"USD","destination_id":"inv_ready","destination_type":"INVOICE",` +
		`"payment_method_type":"CARD","payment_method_id":"pm_card_visa"}`
	req, _ := http.NewRequest(http.MethodPost, public+"/v1/payments", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Idempotency-Key", "ready-1")
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var pay struct {
		ID string `json:"id"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &pay) != nil || pay.ID == "" {
		t.Fatalf("POST /v1/payments with Redis stopped = %d %s, want 201", resp.StatusCode, b)
	}

	// Redis back (empty): ready again, and the payment completes.
	rds.restart()
	waitFor("readyz reports redis ok", func() bool {
		code, b := get(admin+"/readyz", "", "")
		return code == http.StatusOK && bytes.Contains(b, []byte(`"redis":"ok"`))
	})
	ready("redis back", http.StatusOK, "ready", "ok", "ok")
	if v := redisUp(); v != "1" {
		t.Errorf("payd_redis_up = %s with Redis back, want 1", v)
	}
	waitFor("the payment accepted without Redis succeeds", func() bool {
		p, err := d.store.GetPayment(ctx, ten.ID, pay.ID)
		return err == nil && p.Status == payment.StatusSucceeded
	})

	// Postgres unreachable: not ready on either port, still alive.
	pgProxy.down()
	ready("postgres unreachable", http.StatusServiceUnavailable, "not_ready", "unreachable", "ok")
	if err := runHealthcheck(ctx, cfg, nil, io.Discard); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("payd healthcheck with Postgres unreachable = %v, want a failure naming the 503", err)
	}
	if err := runHealthcheck(ctx, cfg, []string{admin + "/healthz"}, io.Discard); err != nil {
		t.Errorf("payd healthcheck %s/healthz with Postgres unreachable = %v, want success (liveness)", admin, err)
	}
	for _, base := range []string{public, admin} {
		if code, _ := get(base+"/healthz", "", ""); code != http.StatusOK {
			t.Errorf("GET %s/healthz with Postgres unreachable = %d, want 200 (liveness)", base, code)
		}
	}
	pgProxy.up()
	waitFor("readyz after Postgres is reachable again", func() bool {
		code, _ := get(public+"/readyz", "", "")
		return code == http.StatusOK
	})
	ready("postgres back", http.StatusOK, "ready", "ok", "ok")
}
