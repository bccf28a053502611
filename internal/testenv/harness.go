package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/intake"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/metrics"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/processor"
	"github.com/payd/payd/store"
	"github.com/payd/payd/webhook"
)

// Options shape a Harness.
type Options struct {
	NoWorker bool // intake only: nothing processes tasks
	// Webhooks runs the webhook dispatcher beside the worker (as payd's
	// worker role does); off by default, so that the many parallel tests
	// that need none do not poll Postgres for deliveries.
	Webhooks  bool
	Gateway   connector.Gateway // default: the in-process sandbox
	Sandbox   sandbox.Config    // for the default sandbox
	RateLimit int               // per tenant per second; 0: off
	RateBurst int
	Intake    intake.Config
	Processor processor.Config
	Log       io.Writer // default: discarded
	// Now is the store's clock (nil: time.Now); the enqueuer schedules on it.
	Now func() time.Time
}

// Harness is payd in one process on real PostgreSQL and Redis, connected as
// the app role (AppRole) after migrating as the owner: intake on an
// httptest server (every request and answer checked against its OpenAPI
// document: SpecCheck), a worker serving every task type, the in-process
// sandbox gateway (its 3-D Secure pages served on intake's address under
// /sandbox/challenge/, as payd serves them), and two tenants with one key
// each.
type Harness struct {
	t         testing.TB
	URL       string
	Store     *store.Store
	DBURL     string // the database as its owner (migrations, test inspection)
	AppDBURL  string // the same database as AppRole: what Store connects as
	Redis     *redis.Client
	RedisOpt  *redis.Options
	Sandbox   *sandbox.Sandbox
	Processor *processor.Processor
	Enqueuer  *jobs.Enqueuer
	Worker    *asynq.Server
	KeyA      string // tenant A's secret key
	KeyB      string // tenant B's secret key
	TenantA   string
	TenantB   string
	Log       *slog.Logger
	webhooks  bool
}

// Start builds a Harness; everything stops when the test ends.
func Start(t testing.TB, o Options) *Harness {
	t.Helper()
	ctx := context.Background()
	h := &Harness{t: t, webhooks: o.Webhooks}
	h.DBURL, h.AppDBURL = PostgresURLs(t)
	if err := store.Migrate(ctx, h.DBURL, AppRole); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	// payd runs as the app role, which has no DDL rights, as in production.
	st, err := store.Open(ctx, store.Config{URL: h.AppDBURL, MaxOpenConns: 40, MaxIdleConns: 40}, o.Now)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	h.Store = st
	ropt, err := redis.ParseURL(RedisURL(t))
	if err != nil {
		t.Fatalf("redis url: %v", err)
	}
	ropt.PoolSize = 64
	h.RedisOpt = ropt
	h.Redis = redis.NewClient(ropt)
	t.Cleanup(func() { h.Redis.Close() })
	w := o.Log
	if w == nil {
		w = io.Discard
	}
	h.Log = slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	client := asynq.NewClientFromRedisClient(h.Redis)
	h.Enqueuer = &jobs.Enqueuer{Client: client, Inspector: asynq.NewInspectorFromRedisClient(h.Redis), Retention: time.Minute,
		Now: st.Now}
	// intake's address is known before anything is built: the sandbox's
	// 3-D Secure pages are served on it (as payd's public port serves
	// them), so a browser can follow an action URL.
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	h.URL = "http://" + srv.Listener.Addr().String()
	gw := o.Gateway
	if gw == nil {
		if o.Sandbox.PublicURL == "" {
			o.Sandbox.PublicURL = h.URL + "/sandbox"
		}
		if o.Sandbox.SettleDelay == 0 {
			o.Sandbox.SettleDelay = 200 * time.Millisecond
		}
		if o.Sandbox.ReturnDelay == 0 {
			o.Sandbox.ReturnDelay = 200 * time.Millisecond
		}
		h.Sandbox = sandbox.New(o.Sandbox)
		gw = h.Sandbox
	}
	m := metrics.Discard()
	pc := o.Processor
	if pc.Policy.Card == nil {
		pc.Policy = payment.DefaultRetryPolicy(10 * time.Millisecond)
	}
	if pc.SettlePoll == 0 {
		pc.SettlePoll = 100 * time.Millisecond
	}
	if pc.ReturnWindow == 0 {
		pc.ReturnWindow = time.Second
	}
	if pc.GatewayTimeout == 0 {
		pc.GatewayTimeout = 5 * time.Second
	}
	if pc.InquiryGrace == 0 {
		pc.InquiryGrace = time.Second
	}
	if pc.SweepGrace == 0 {
		pc.SweepGrace = 500 * time.Millisecond
	}
	// webhooks: a test key seals endpoint secrets; receivers are local
	// httptest servers, so http and loopback are allowed unless a test
	// sets its own policy
	ring, err := webhook.ParseKeyring("test:" + strings.Repeat("5a", 32))
	if err != nil {
		t.Fatal(err)
	}
	if pc.WebhookPolicy == (webhook.Policy{}) {
		pc.WebhookPolicy = webhook.Policy{AllowHTTP: true, AllowPrivate: true}
	}
	h.Processor = processor.New(processor.Deps{Store: st, Gateway: gw, Enqueue: h.Enqueuer, Metrics: m, Log: h.Log, Config: pc,
		Keyring: ring})
	ic := o.Intake
	ic.RateLimit, ic.RateBurst = o.RateLimit, o.RateBurst
	if ic.PublicURL == "" {
		ic.PublicURL = h.URL // the hosted page's links work in a browser
	}
	tok, _ := gw.(connector.Tokenizer)
	parser, _ := gw.(connector.NotificationParser) // Stripe's webhooks
	if ic.WebhookPolicy == (webhook.Policy{}) {
		ic.WebhookPolicy = webhook.Policy{AllowHTTP: true, AllowPrivate: true}
	}
	api := intake.NewServer(intake.Deps{Store: st, Enqueue: h.Enqueuer, Redis: h.Redis, Metrics: m, Log: h.Log, Config: ic,
		Tokenizer: tok, Keyring: ring, NotificationParser: parser})
	h.Processor.RenderEvent = api.EventBody
	if !o.NoWorker {
		h.StartWorker()
	}
	// every exchange with intake is held to its OpenAPI document
	checked := SpecCheck(t, api)
	srv.Config.Handler = checked
	if h.Sandbox != nil {
		mux := http.NewServeMux()
		mux.Handle("/sandbox/challenge/", http.StripPrefix("/sandbox", h.Sandbox.CustomerHandler()))
		mux.Handle("/", checked)
		srv.Config.Handler = mux
	}
	srv.Start()
	if h.Sandbox != nil {
		// a sandbox configured to notify posts to this intake
		h.Sandbox.SetNotifyURL(h.URL + "/v1/gateway/notifications")
		t.Cleanup(h.Sandbox.Close)
	}
	ta, err := st.CreateTenant(ctx, "tenant-a")
	if err != nil {
		t.Fatalf("tenant: %v", err)
	}
	tb, err := st.CreateTenant(ctx, "tenant-b")
	if err != nil {
		t.Fatalf("tenant: %v", err)
	}
	h.TenantA, h.TenantB = ta.ID, tb.ID
	if _, h.KeyA, err = st.CreateAPIKey(ctx, ta.ID); err != nil {
		t.Fatalf("key: %v", err)
	}
	if _, h.KeyB, err = st.CreateAPIKey(ctx, tb.ID); err != nil {
		t.Fatalf("key: %v", err)
	}
	// The invoice CreatePayment pays: written through the store, so that
	// starting a harness spends none of a rate-limited tenant's requests.
	if _, err := st.CreateInvoice(ctx, store.NewInvoice{TenantID: ta.ID, ExternalID: TestInvoice, Currency: "USD",
		AmountDue: TestInvoiceAmountDue}); err != nil {
		t.Fatalf("invoice %s: %v", TestInvoice, err)
	}
	return h
}

const (
	// TestInvoice is tenant A's USD invoice that CreatePayment pays; every
	// Harness has it.
	TestInvoice = "inv_test"
	// TestInvoiceAmountDue is its amount due in minor units: the largest amount
	// the API accepts, so that no test runs out of it.
	TestInvoiceAmountDue = 1_000_000_000_000_00
)

// StartWorker starts (or restarts) the asynq worker.
func (h *Harness) StartWorker() {
	h.t.Helper()
	srv := asynq.NewServerFromRedisClient(h.Redis, asynq.Config{
		Concurrency: 16, Queues: jobs.Queues, RetryDelayFunc: processor.RetryDelay, IsFailure: processor.IsFailure,
		TaskCheckInterval: 10 * time.Millisecond, DelayedTaskCheckInterval: 50 * time.Millisecond,
		ShutdownTimeout: 2 * time.Second, LogLevel: asynq.FatalLevel,
	})
	if err := srv.Start(h.Processor.Mux()); err != nil {
		h.t.Fatalf("start worker: %v", err)
	}
	h.Worker = srv
	h.t.Cleanup(srv.Shutdown)
	if !h.webhooks {
		return
	}
	// the webhook dispatcher runs beside the worker, as in payd's worker role
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Processor.RunDispatcher(ctx, 50*time.Millisecond) }()
	h.t.Cleanup(func() { cancel(); <-done })
}

// Response is a decoded HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (r Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("decode %d body %q: %v", r.Status, r.Body, err)
	}
	return m
}

// Do sends a request with a key (empty: none) and optional headers.
func (h *Harness) Do(method, path, key string, body []byte, hdr map[string]string) Response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.URL+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatalf("request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("x-api-key", key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("read body: %v", err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// CreateInvoice creates an invoice of tenant A through POST /v1/invoices
// and returns its id. amountDue is a decimal in major units ("100.00"), sent
// as a JSON string. Creating the same invoice again returns the same id.
func (h *Harness) CreateInvoice(externalID, currency, amountDue string) string {
	h.t.Helper()
	return h.CreateInvoiceWithKey(h.KeyA, externalID, currency, amountDue)
}

// CreateInvoiceWithKey is CreateInvoice for the tenant of an API key.
func (h *Harness) CreateInvoiceWithKey(key, externalID, currency, amountDue string) string {
	h.t.Helper()
	body, _ := json.Marshal(map[string]string{"external_id": externalID, "currency": currency, "amount_due": amountDue})
	r := h.Do("POST", "/v1/invoices", key, body, nil)
	if r.Status != http.StatusCreated && r.Status != http.StatusOK {
		h.t.Fatalf("create invoice %q: %d %s", externalID, r.Status, r.Body)
	}
	id, _ := r.JSON(h.t)["id"].(string)
	if id == "" {
		h.t.Fatalf("create invoice %q: no id in %s", externalID, r.Body)
	}
	return id
}

// CreatePayment posts a seed-001 payment of USD for tenant A against
// TestInvoice and returns its id. amount is raw JSON (12.5 or "12.50").
func (h *Harness) CreatePayment(method, pm, amount string) string {
	h.t.Helper()
	body := `{"amount":` + amount + `,"currency":"USD","destination_id":"` + TestInvoice + `","destination_type":"INVOICE",` +
		`"payment_method_type":"` + method + `","payment_method_id":"` + pm + `"}`
	r := h.Do("POST", "/v1/payments", h.KeyA, []byte(body), nil)
	if r.Status != http.StatusCreated {
		h.t.Fatalf("create payment: %d %s", r.Status, r.Body)
	}
	return r.JSON(h.t)["id"].(string)
}

// WaitFinal waits until the payment reaches a final status (and, for a bank
// payment, until nothing more is scheduled), and returns it.
func (h *Harness) WaitFinal(id string, within time.Duration) payment.Payment {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		p, err := h.Store.GetPayment(context.Background(), "", id)
		if err != nil {
			h.t.Fatalf("load %s: %v", id, err)
		}
		if p.Status.Final() && p.NextStep == payment.StepNone {
			return p
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("payment %s not final after %s: %s next=%s at %v", id, within, p.Status, p.NextStep, p.NextStepAt)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
