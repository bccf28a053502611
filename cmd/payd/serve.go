package main

import (
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/intake"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/metrics"
	"github.com/payd/payd/monitor"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/processor"
	"github.com/payd/payd/store"
	"github.com/payd/payd/webhook"
)

type role string

const (
	roleIntake    role = "intake"
	roleWorker    role = "worker"
	roleScheduler role = "scheduler"
	roleMonitor   role = "monitor"
)

// deps are built once per process and shared by its roles.
type deps struct {
	cfg       config
	log       *slog.Logger
	store     *store.Store
	redisConn jobs.RedisConn        // REDIS_URL: every Redis client of the process is built from it
	rdb       redis.UniversalClient // shared by intake (rate limits), the enqueuer, the probes
	client    *asynq.Client
	enqueue   *jobs.Enqueuer
	gateway   connector.Gateway
	sandbox   *sandbox.Sandbox // in-process sandbox, when PAYD_SANDBOX_URL is empty
	reg       *prometheus.Registry
	metrics   *metrics.Metrics
	// intakeLn, when set, is the listener intake serves on instead of
	// listening on cfg.Addr itself (slowclient_test.go binds a free port).
	intakeLn net.Listener
	// adminLn, likewise, is the admin port's listener when set (tests).
	adminLn net.Listener
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.logLevel()}))
}

func build(ctx context.Context, cfg config, stdout io.Writer) (*deps, error) {
	d := &deps{cfg: cfg, log: newLogger(cfg, stdout)}
	st, err := store.Open(ctx, store.Config{URL: cfg.DatabaseURL, MaxOpenConns: cfg.DBMaxConns, MaxIdleConns: cfg.DBMaxConns,
		Batch: store.Batch{MaxRows: cfg.DBBatchMax, Runners: cfg.DBBatchRunners, Timeout: cfg.TxTimeout}}, hostClock)
	if err != nil {
		return nil, err
	}
	d.store = st
	conn, err := cfg.redisConn()
	if err != nil {
		st.Close()
		return nil, err
	}
	d.redisConn = conn
	d.rdb = conn.WithPoolSize(max(cfg.WorkerConcurrency+16, 32)).NewClient()
	d.client = asynq.NewClientFromRedisClient(d.rdb)
	d.enqueue = &jobs.Enqueuer{Client: d.client, Inspector: asynq.NewInspectorFromRedisClient(d.rdb), Retention: cfg.TaskRetention,
		Now: st.Now}
	if d.gateway, err = gateways[cfg.Gateway](cfg, d); err != nil {
		d.client.Close()
		d.rdb.Close()
		st.Close()
		return nil, fmt.Errorf("PAYD_GATEWAY %s: %w", cfg.Gateway, err)
	}
	d.reg = prometheus.NewRegistry()
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.metrics = metrics.New(d.reg)
	var steps []string
	for _, s := range store.DueSteps() {
		steps = append(steps, string(s))
	}
	d.metrics.InitSteps(steps...)
	return d, nil
}

func newSandbox(cfg config) *sandbox.Sandbox {
	public := cfg.SandboxPublicURL
	if public == "" {
		public = "http://" + loopbackAddr(cfg.Addr) + "/sandbox"
	}
	return sandbox.New(sandbox.Config{SettleDelay: cfg.SandboxSettleDelay, PerRail: cfg.SandboxSettleDelay == 0,
		ReturnDelay: cfg.SandboxReturnDelay,
		Latency:     cfg.SandboxLatency, FaultRate: cfg.SandboxFaultRate, Seed: cfg.SandboxSeed, PublicURL: public,
		Notify: sandboxNotify(cfg)})
}

// sandboxNotify configures the sandbox's gateway notifications: on when a
// notification secret is set, posted by default to the intake of PAYD_ADDR.
func sandboxNotify(cfg config) sandbox.NotifyConfig {
	if len(cfg.NotifySecrets) == 0 || cfg.NotifySecrets[0] == "" {
		return sandbox.NotifyConfig{}
	}
	url := cfg.SandboxNotifyURL
	if url == "" {
		url = "http://" + loopbackAddr(cfg.Addr) + "/v1/gateway/notifications"
	}
	return sandbox.NotifyConfig{URL: url, Secret: cfg.NotifySecrets[0], Copies: cfg.SandboxNotifyCopies,
		Order: sandbox.NotifyOrder(cfg.SandboxNotifyOrder), Delay: cfg.SandboxNotifyDelay, Batch: cfg.SandboxNotifyBatch}
}

func loopbackAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func (d *deps) close() {
	if d.sandbox != nil {
		d.sandbox.Close() // stops its notification timers
	}
	d.client.Close()
	d.rdb.Close()
	d.store.Close()
}

func (d *deps) processor() *processor.Processor {
	c := d.cfg
	p := processor.New(processor.Deps{Store: d.store, Gateway: d.gateway, Enqueue: d.enqueue, Metrics: d.metrics, Log: d.log,
		Keyring: d.keyring(),
		Config: processor.Config{GatewayTimeout: c.GatewayTimeout, SettlePoll: c.SettlePoll, ReturnWindow: c.ReturnWindow,
			SweepGrace: c.SweepGrace, SweepLease: c.SweepLease, Policy: payment.DefaultRetryPolicy(c.RetryUnit),
			GatewayName: c.gatewayName(), ReconcileGrace: c.ReconcileGrace,
			WebhookPolicy: d.webhookPolicy(), WebhookTimeout: c.WebhookTimeout, WebhookUnit: c.RetryUnit}})
	// a delivery's body is the event as GET /v1/events/{id} shows it:
	// intake's rendering, built here for the worker (no route is served)
	p.RenderEvent = d.api().EventBody
	return p
}

// keyring is the webhook sealing keys (nil: webhooks off); the config
// checked them at start.
func (d *deps) keyring() *webhook.Keyring {
	if d.cfg.WebhookKeys == "" {
		return nil
	}
	k, _ := webhook.ParseKeyring(d.cfg.WebhookKeys)
	return k
}

func (d *deps) webhookPolicy() webhook.Policy {
	return webhook.Policy{AllowHTTP: d.cfg.WebhookAllowHTTP, AllowPrivate: d.cfg.WebhookAllowPrivate}
}

// api builds intake's server (its handler and its event rendering).
func (d *deps) api() *intake.Server {
	tok, _ := d.gateway.(connector.Tokenizer)             // both sandboxes tokenize; Stripe does not (its Elements tokenize in the browser)
	parser, _ := d.gateway.(connector.NotificationParser) // Stripe's webhooks; the sandbox's use payd's format
	public := d.cfg.PublicURL
	if public == "" {
		public = "http://" + loopbackAddr(d.cfg.Addr)
	}
	return intake.NewServer(intake.Deps{Store: d.store, Enqueue: d.enqueue, Redis: d.rdb, Metrics: d.metrics, Log: d.log,
		Tokenizer: tok, Keyring: d.keyring(), NotificationParser: parser,
		Config: intake.Config{MaxBodyBytes: d.cfg.MaxBodyBytes, RateLimit: d.cfg.RateLimit, RateBurst: d.cfg.RateBurst,
			IdempotencyTTL: d.cfg.IdempotencyTTL, TxTimeout: d.cfg.TxTimeout,
			NotifySecrets: d.cfg.NotifySecrets, NotifyTolerance: d.cfg.NotifyTolerance, NotifyGateway: d.cfg.gatewayName(),
			PublicURL: public, SessionSubmitWait: d.cfg.SessionSubmitWait,
			SessionSubmitPoll: d.cfg.SessionSubmitPoll, WebhookPolicy: d.webhookPolicy()}})
}

// serve runs the given roles until ctx ends, then shuts each down gracefully.
func serve(ctx context.Context, cfg config, stdout io.Writer, roles ...role) error {
	d, err := build(ctx, cfg, stdout)
	if err != nil {
		return err
	}
	defer d.close()
	return d.serve(ctx, roles...)
}

// serve runs the given roles on built deps until ctx ends; the caller closes d.
func (d *deps) serve(ctx context.Context, roles ...role) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, r := range roles {
		switch r {
		case roleIntake:
			g.Go(func() error { return d.runIntake(ctx) })
		case roleWorker:
			g.Go(func() error { return d.runWorker(ctx) })
		case roleScheduler:
			g.Go(func() error { return d.runScheduler(ctx) })
		}
	}
	monitor := slices.Contains(roles, roleMonitor)
	g.Go(func() error { return d.runAdmin(ctx, monitor) })
	if d.cfg.AdminPassword == "" {
		d.log.Warn("PAYD_ADMIN_PASSWORD is empty: the admin port serves only /healthz and /readyz (not /metrics, /monitor, the in-process sandbox's operator routes)")
	}
	go d.watchRedis(ctx)
	d.log.Info("payd started", "roles", fmt.Sprint(roles), "addr", d.cfg.Addr, "in_process_sandbox", d.sandbox != nil,
		"redis", d.redisConn.String())
	err := g.Wait()
	d.log.Info("payd stopped")
	return err
}

// listenAndServe runs an HTTP server until ctx ends, then drains it.
func (d *deps) listenAndServe(ctx context.Context, name, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s listen: %w", name, err)
	}
	return d.serveHTTP(ctx, name, ln, h)
}

// Limits of every payd HTTP server (intake, admin, sandbox) against slow
// and hostile clients; README "HTTP limits" documents them and
// TestSlowClients holds the intake server to them. A connection that has
// not sent its request line and headers within httpReadHeaderTimeout, or
// its whole request (body included) within httpReadTimeout, is closed; no
// handler runs for the first, and a handler still reading the body of the
// second gets a read error (400 body_unreadable). Handlers read the body
// before they touch Postgres, so a slow body holds a goroutine and a socket,
// never a database connection or an idempotency key.
const (
	httpReadHeaderTimeout = 5 * time.Second
	httpReadTimeout       = 15 * time.Second
	httpWriteTimeout      = 30 * time.Second
	httpIdleTimeout       = 120 * time.Second
	httpMaxHeaderBytes    = 64 << 10 // larger headers: 431
)

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: httpReadHeaderTimeout, ReadTimeout: httpReadTimeout,
		WriteTimeout: httpWriteTimeout, IdleTimeout: httpIdleTimeout, MaxHeaderBytes: httpMaxHeaderBytes,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
}

// serveHTTP runs an HTTP server on ln until ctx ends, then drains it.
func (d *deps) serveHTTP(ctx context.Context, name string, ln net.Listener, h http.Handler) error {
	srv := newHTTPServer(h, d.log)
	d.log.Info("listening", "server", name, "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", name, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("%s shutdown: %w", name, err)
	}
	return nil
}

func (d *deps) runIntake(ctx context.Context) error {
	h, err := d.intakeHandler(d.api())
	if err != nil {
		return err
	}
	if d.intakeLn != nil {
		return d.serveHTTP(ctx, "intake", d.intakeLn, h)
	}
	return d.listenAndServe(ctx, "intake", d.cfg.Addr, h)
}

// intakeHandler is intake's public mux: the API and, with the in-process
// sandbox, only its customer-facing pages (3-D Secure challenges) under
// /sandbox/challenge/. Every other /sandbox/ path falls through to the API's
// 404 route_not_found: the sandbox's operator routes (ledger, charges,
// refunds, faults) are on the admin port (docs/surfaces.md, "The sandbox
// gateway").
//
// With a remote sandbox (PAYD_SANDBOX_URL) the same path forwards to its
// challenge pages (challengeProxy), so that a multi-process deployment's
// browsers reach them through intake too.
func (d *deps) intakeHandler(api http.Handler) (http.Handler, error) {
	var challenges http.Handler
	switch {
	case d.sandbox != nil:
		challenges = http.StripPrefix("/sandbox", d.sandbox.CustomerHandler())
	case d.cfg.SandboxURL != "":
		p, err := challengeProxy(d.cfg.SandboxURL, d.log)
		if err != nil {
			return nil, err
		}
		challenges = p
	default:
		return api, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/sandbox/challenge/", challenges)
	mux.Handle("/", api)
	return mux, nil
}

func (d *deps) runWorker(ctx context.Context) error {
	p := d.processor()
	// asynq's server and scheduler get connections of their own: built from
	// a shared client they complain at shutdown that they cannot close it.
	srv := asynq.NewServer(d.redisOpt(), asynq.Config{
		Concurrency: d.cfg.WorkerConcurrency, Queues: jobs.Queues,
		RetryDelayFunc: processor.RetryDelay, IsFailure: processor.IsFailure,
		TaskCheckInterval: d.cfg.TaskCheck, DelayedTaskCheckInterval: d.cfg.DelayedTaskCheck,
		ShutdownTimeout: d.cfg.ShutdownTimeout, LogLevel: asynq.WarnLevel,
		BaseContext: func() context.Context { return context.WithoutCancel(ctx) },
	})
	if err := srv.Start(p.Mux()); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	// The webhook dispatcher enqueues every delivery the events trigger
	// wrote (and any retry whose task was lost), every
	// PAYD_WEBHOOK_DISPATCH_INTERVAL; several workers split the rows.
	go p.RunDispatcher(ctx, d.cfg.WebhookDispatchInterval)
	// A worker that starts sweeps at once: after a Redis wipe or a crash,
	// overdue steps are back on the queue without waiting for the scheduler.
	go func() {
		if n, err := p.Sweep(ctx); err != nil {
			d.log.Warn("start-up sweep failed", "err", err)
		} else {
			d.log.Info("start-up sweep", "reenqueued", n)
		}
	}()
	<-ctx.Done()
	srv.Shutdown()
	return nil
}

func (d *deps) runScheduler(ctx context.Context) error {
	s := asynq.NewScheduler(d.redisOpt(), &asynq.SchedulerOpts{LogLevel: asynq.WarnLevel})
	t, err := jobs.NewSweepTask()
	if err != nil {
		return err
	}
	if _, err := s.Register(fmt.Sprintf("@every %s", d.cfg.SweepInterval), t); err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	if d.cfg.ReconcileInterval > 0 {
		// each run reconciles from where the last one ended
		rt, err := jobs.NewReconcileTask(jobs.ReconcilePayload{})
		if err != nil {
			return err
		}
		if _, err := s.Register(fmt.Sprintf("@every %s", d.cfg.ReconcileInterval), rt); err != nil {
			return fmt.Errorf("scheduler: %w", err)
		}
	}
	if err := s.Start(); err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	<-ctx.Done()
	s.Shutdown()
	return nil
}

// runAdmin serves the admin port of every role: the probes GET /healthz
// and GET /readyz without authentication (health.go), and, behind basic
// auth when PAYD_ADMIN_PASSWORD is set, /metrics of this process; with the
// monitor role the asynq monitor at /monitor (read-only, payloads
// redacted) and the queue and overdue-step gauges. The in-process
// sandbox's operator routes (ledger, entries, charges, refunds, faults)
// are served there too, under /sandbox/, behind the same auth. Without a
// password only the probes are served.
func (d *deps) runAdmin(ctx context.Context, withMonitor bool) error {
	health := d.health()
	public := http.NewServeMux()
	public.HandleFunc("GET /healthz", health.ServeHealthz)
	public.HandleFunc("GET /readyz", health.ServeReadyz)
	if d.cfg.AdminPassword != "" {
		private, closeMonitor, err := d.adminPrivate(withMonitor)
		if err != nil {
			return err
		}
		defer closeMonitor()
		public.Handle("/", basicAuth(d.cfg.AdminPassword, private))
	}
	if d.adminLn != nil {
		return d.serveHTTP(ctx, "admin", d.adminLn, public)
	}
	return d.listenAndServe(ctx, "admin", d.cfg.AdminAddr, public)
}

// adminPrivate is the admin port's mux behind basic auth, and what closes
// the monitor's Redis connections.
func (d *deps) adminPrivate(withMonitor bool) (http.Handler, func(), error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	if d.sandbox != nil {
		mux.Handle("/sandbox/", http.StripPrefix("/sandbox", d.sandbox.OperatorHandler()))
	}
	// profiles of this process, for operators chasing latency (behind the same auth)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if !withMonitor {
		return mux, func() {}, nil
	}
	opt := d.redisOpt()
	insp := asynq.NewInspector(opt)
	d.reg.MustRegister(monitor.NewCollector(insp, d.store))
	// asynqmon gets its own Redis connection: its Close closes it.
	mon := asynqmon.New(asynqmon.Options{RootPath: "/monitor", RedisConnOpt: opt, ReadOnly: true,
		PayloadFormatter: asynqmon.PayloadFormatterFunc(func(string, []byte) string { return "(redacted)" }),
		ResultFormatter:  asynqmon.ResultFormatterFunc(func(string, []byte) string { return "(redacted)" })})
	mux.Handle("/monitor/", mon)
	return mux, func() { mon.Close(); insp.Close() }, nil
}

// redisOpt is what asynq's server, scheduler and inspector and asynqmon
// build their own connections from: the same Redis as d.rdb, by the same
// RedisConn (one server, Sentinel or Cluster).
func (d *deps) redisOpt() asynq.RedisConnOpt {
	return d.redisConn.WithPoolSize(d.cfg.WorkerConcurrency + 8)
}

func basicAuth(password string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(user), []byte("admin"))&subtle.ConstantTimeCompare([]byte(pass), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="payd admin"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func runSandbox(ctx context.Context, cfg config, stdout io.Writer) error {
	d := &deps{cfg: cfg, log: newLogger(cfg, stdout)}
	if cfg.SandboxPublicURL == "" {
		cfg.SandboxPublicURL = "http://" + loopbackAddr(cfg.SandboxAddr)
	}
	sb := newSandbox(cfg)
	defer sb.Close()
	// `payd sandbox` is the gateway: every route on its own port, and its probe
	return d.listenAndServe(ctx, "sandbox", cfg.SandboxAddr, sandboxHandler(sb.Handler()))
}
