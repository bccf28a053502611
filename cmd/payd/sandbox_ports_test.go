package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
)

// sandboxOperatorRoutes are the in-process sandbox's operator routes as the
// admin port mounts them, each with a body that would act if it were served
// (charge, fence a key, refund, turn faults on).
var sandboxOperatorRoutes = []struct{ method, path, body string }{
	{http.MethodGet, "/sandbox/ledger", ""},
	{http.MethodPost, "/sandbox/charges", `{"idempotency_key":"pay_probe:1","payment_id":"pay_probe","amount":100,"currency":"USD","method":"CARD","payment_method_id":"pm_card_visa"}`},
	{http.MethodGet, "/sandbox/charges/pay_fence:1", ""},
	{http.MethodPost, "/sandbox/charges/pay_fence:2/void", ""},
	{http.MethodGet, "/sandbox/settlements/ch_0", ""},
	{http.MethodPost, "/sandbox/refunds", `{"idempotency_key":"re_probe","payment_id":"pay_x","gateway_reference":"ch_0","amount":1,"currency":"USD"}`},
	{http.MethodGet, "/sandbox/entries", ""},
	{http.MethodGet, "/sandbox/entries?from=2026-01-01T00:00:00Z&limit=5", ""},
	{http.MethodPost, "/sandbox/notifications/flush", ""},
	{http.MethodGet, "/sandbox/faults", ""},
	{http.MethodPut, "/sandbox/faults", `{"fault_rate":1,"void_down":true}`},
}

// TestSandboxPublicAndAdminPorts: with the in-process sandbox, intake's
// public port serves the 3-D Secure challenge pages and nothing else of the
// sandbox — every operator route, with any method, with or without an API
// key, is payd's 404 route_not_found and does nothing — while the admin port
// serves the operator routes behind its basic auth only (docs/surfaces.md,
// "The sandbox gateway").
func TestSandboxPublicAndAdminPorts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, app := testenv.PostgresURLs(t)
	env := map[string]string{"DATABASE_URL": app, "PAYD_MIGRATE_DATABASE_URL": owner, "PAYD_APP_DB_ROLE": testenv.AppRole,
		"REDIS_URL": testenv.RedisURL(t), "PAYD_DB_MAX_CONNS": "4", "PAYD_ADMIN_PASSWORD": "admin-secret"}
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
	if d.sandbox == nil {
		t.Fatal("no in-process sandbox")
	}
	d.intakeLn, d.adminLn = intakeLn, adminLn
	ten, err := d.store.CreateTenant(ctx, "ports")
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := d.store.CreateAPIKey(ctx, ten.ID)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- d.serve(sctx, roleIntake) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	public, admin := "http://"+cfg.Addr, "http://"+cfg.AdminAddr
	waitHealthy(t, public)

	type answer struct {
		status int
		ctype  string
		body   []byte
	}
	do := func(method, url, body string, header map[string]string, user, pass string) answer {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Header.Get("Content-Type"), b}
	}

	// The public port: payd's own 404 for every operator route.
	for _, r := range sandboxOperatorRoutes {
		methods := []string{r.method}
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut} {
			if !slices.Contains(methods, m) {
				methods = append(methods, m)
			}
		}
		for _, m := range methods {
			for _, hdr := range []map[string]string{nil, {"x-api-key": key, "Idempotency-Key": "probe-" + m + r.path}} {
				a := do(m, public+r.path, r.body, hdr, "", "")
				var env struct {
					RequestID  string   `json:"request_id"`
					ErrorType  string   `json:"error_type"`
					ErrorCodes []string `json:"error_codes"`
					Message    string   `json:"message"`
					Retryable  *bool    `json:"retryable"`
				}
				if err := json.Unmarshal(a.body, &env); err != nil || a.status != http.StatusNotFound ||
					!strings.HasPrefix(a.ctype, "application/json") || env.RequestID == "" || env.ErrorType != "not_found" ||
					!slices.Equal(env.ErrorCodes, []string{"route_not_found"}) || env.Message == "" || env.Retryable == nil {
					t.Errorf("public %s %s (api key %t) = %d %s %s, want payd's 404 route_not_found envelope",
						m, r.path, hdr != nil, a.status, a.ctype, a.body)
				}
			}
		}
	}
	// … and none of them did anything.
	if l := d.sandbox.Ledger(); len(l) != 0 {
		t.Errorf("the public probes charged: %+v", l)
	}
	if f := d.sandbox.Faults(); f.FaultRate != 0 || f.VoidDown {
		t.Errorf("the public probes set faults: %+v", f)
	}
	for _, k := range []string{"pay_fence:1", "pay_fence:2"} {
		res, err := d.sandbox.Charge(ctx, connector.ChargeRequest{IdempotencyKey: k, PaymentID: strings.ReplaceAll(k, ":", "_"),
			Amount: payment.Money{Minor: 100, Currency: "USD"}, Method: payment.MethodCard, PaymentMethodID: sandbox.CardVisa})
		if err != nil || res.Status != connector.StatusSucceeded {
			t.Errorf("Charge %s after the public probes = %+v %v: the key was fenced", k, res, err)
		}
	}

	// The challenge page is on the public port, under an unguessable reference.
	pending, err := d.sandbox.Charge(ctx, connector.ChargeRequest{IdempotencyKey: "pay_3ds:1", PaymentID: "pay_3ds",
		Amount: payment.Money{Minor: 1250, Currency: "USD"}, Method: payment.MethodCard, PaymentMethodID: sandbox.Card3DS})
	if err != nil || pending.Status != connector.StatusRequiresAction {
		t.Fatalf("3-D Secure charge: %+v %v", pending, err)
	}
	if want := regexp.MustCompile(`^` + regexp.QuoteMeta(public) + `/sandbox/challenge/ch_[0-9a-f]{32}$`); !want.MatchString(pending.ActionURL) {
		t.Fatalf("ActionURL %s, want %s", pending.ActionURL, want)
	}
	if a := do(http.MethodGet, pending.ActionURL, "", nil, "", ""); a.status != http.StatusOK || !strings.HasPrefix(a.ctype, "text/html") ||
		!strings.Contains(string(a.body), pending.Reference) {
		t.Errorf("public GET challenge = %d %s", a.status, a.ctype)
	}
	if a := do(http.MethodGet, public+"/sandbox/challenge/ch_1", "", nil, "", ""); a.status != http.StatusNotFound {
		t.Errorf("public GET a guessed challenge = %d, want 404", a.status)
	}
	if a := do(http.MethodGet, admin+"/sandbox/challenge/"+pending.Reference, "", nil, "admin", "admin-secret"); a.status != http.StatusNotFound {
		t.Errorf("admin GET challenge = %d, want 404: the admin port is not the customer's", a.status)
	}
	if a := do(http.MethodPost, pending.ActionURL+"?result=succeed", "", nil, "", ""); a.status != http.StatusOK {
		t.Errorf("public POST challenge = %d %s", a.status, a.body)
	}
	if n := d.sandbox.ChargesFor("pay_3ds"); n != 1 {
		t.Errorf("ChargesFor(pay_3ds) = %d after the challenge, want 1", n)
	}

	// The admin port: only with its password.
	for _, r := range sandboxOperatorRoutes {
		for _, cred := range [][2]string{{"", ""}, {"admin", "wrong"}, {"payd", "admin-secret"}} {
			if a := do(r.method, admin+r.path, r.body, nil, cred[0], cred[1]); a.status != http.StatusUnauthorized {
				t.Errorf("admin %s %s as %q = %d, want 401", r.method, r.path, cred[0], a.status)
			}
		}
		if a := do(r.method, admin+r.path, r.body, nil, "admin", "admin-secret"); a.status != http.StatusOK {
			t.Errorf("admin %s %s with auth = %d %s, want 200", r.method, r.path, a.status, a.body)
		}
	}
	if f := d.sandbox.Faults(); f.FaultRate != 1 || !f.VoidDown {
		t.Errorf("PUT /sandbox/faults on the admin port did not apply: %+v", f)
	}
	var ledger struct {
		Charges []sandbox.Charge `json:"charges"`
	}
	d.sandbox.SetFaults(sandbox.Faults{})
	a := do(http.MethodGet, admin+"/sandbox/ledger", "", nil, "admin", "admin-secret")
	if err := json.Unmarshal(a.body, &ledger); err != nil || len(ledger.Charges) != 4 {
		// pay_fence:1, pay_fence:2, pay_3ds and the admin's pay_probe
		t.Errorf("admin ledger = %s, want 4 charges", a.body)
	}
}
