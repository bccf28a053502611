package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/store"
	"github.com/payd/payd/webhook"
)

// config is every setting payd reads, all from the environment. The README's
// configuration table lists the same names, defaults and meanings.
type config struct {
	DatabaseURL string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/payd?sslmode=disable"`
	// MigrateDatabaseURL connects as the schema's owner, for migrations;
	// empty: DATABASE_URL (one role for both, as before the role split).
	MigrateDatabaseURL string `env:"PAYD_MIGRATE_DATABASE_URL"`
	// AppDBRole is granted the app's rights by every migrate; empty: the
	// user of DATABASE_URL when it differs from the migrate URL's.
	AppDBRole string `env:"PAYD_APP_DB_ROLE"`
	// RedisURL: one server, Sentinel or Cluster (jobs.ParseRedisURL)
	RedisURL      string `env:"REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	Addr          string `env:"PAYD_ADDR" envDefault:":8080"`
	AdminAddr     string `env:"PAYD_ADMIN_ADDR" envDefault:":8081"`
	AdminPassword string `env:"PAYD_ADMIN_PASSWORD"`
	LogLevel      string `env:"PAYD_LOG_LEVEL" envDefault:"info"`

	DBMaxConns        int           `env:"PAYD_DB_MAX_CONNS" envDefault:"40"`
	DBBatchMax        int           `env:"PAYD_DB_BATCH_MAX" envDefault:"64"`
	DBBatchRunners    int           `env:"PAYD_DB_BATCH_RUNNERS" envDefault:"1"`
	WorkerConcurrency int           `env:"PAYD_WORKER_CONCURRENCY" envDefault:"32"`
	TaskCheck         time.Duration `env:"PAYD_TASK_CHECK_INTERVAL" envDefault:"20ms"`
	DelayedTaskCheck  time.Duration `env:"PAYD_DELAYED_TASK_CHECK_INTERVAL" envDefault:"250ms"`
	TaskRetention     time.Duration `env:"PAYD_TASK_RETENTION" envDefault:"2m"`
	SweepInterval     time.Duration `env:"PAYD_SWEEP_INTERVAL" envDefault:"15s"`
	SweepGrace        time.Duration `env:"PAYD_SWEEP_GRACE" envDefault:"5s"`
	SweepLease        time.Duration `env:"PAYD_SWEEP_LEASE" envDefault:"30s"`
	ShutdownTimeout   time.Duration `env:"PAYD_SHUTDOWN_TIMEOUT" envDefault:"25s"`

	GatewayTimeout time.Duration `env:"PAYD_GATEWAY_TIMEOUT" envDefault:"20s"`
	RetryUnit      time.Duration `env:"PAYD_RETRY_UNIT" envDefault:"1s"`
	SettlePoll     time.Duration `env:"PAYD_SETTLE_POLL" envDefault:"1m"`
	ReturnWindow   time.Duration `env:"PAYD_RETURN_WINDOW" envDefault:"72h"`
	// reconciliation with the gateway: how often the scheduler runs it (0:
	// never), and how recent a charge must be to be left to the engine
	ReconcileInterval time.Duration `env:"PAYD_RECONCILE_INTERVAL" envDefault:"10m"`
	ReconcileGrace    time.Duration `env:"PAYD_RECONCILE_GRACE" envDefault:"2m"`

	RateLimit      int           `env:"PAYD_RATE_LIMIT" envDefault:"2000"`
	RateBurst      int           `env:"PAYD_RATE_BURST" envDefault:"4000"`
	MaxBodyBytes   int64         `env:"PAYD_MAX_BODY_BYTES" envDefault:"65536"`
	IdempotencyTTL time.Duration `env:"PAYD_IDEMPOTENCY_TTL" envDefault:"24h"`
	TxTimeout      time.Duration `env:"PAYD_TX_TIMEOUT" envDefault:"15s"`
	// payment sessions: where browsers reach the public API (the hosted
	// page's links; empty: http:// and PAYD_ADDR on loopback), and how long
	// a submit waits for its payment's outcome before answering 202, and
	// the first pause of its fallback poll while the worker's wake-ups work
	PublicURL         string        `env:"PAYD_PUBLIC_URL"`
	SessionSubmitWait time.Duration `env:"PAYD_SESSION_SUBMIT_WAIT" envDefault:"3s"`
	SessionSubmitPoll time.Duration `env:"PAYD_SESSION_SUBMIT_POLL" envDefault:"250ms"`
	// outbound webhooks: the keys that seal endpoint secrets ("id:key,…",
	// the first seals; empty turns webhook endpoints off), what URLs may
	// be, one try's timeout and how often the worker dispatches new
	// deliveries
	WebhookKeys             string        `env:"PAYD_WEBHOOK_KEYS"`
	WebhookAllowHTTP        bool          `env:"PAYD_WEBHOOK_ALLOW_HTTP" envDefault:"false"`
	WebhookAllowPrivate     bool          `env:"PAYD_WEBHOOK_ALLOW_PRIVATE" envDefault:"false"`
	WebhookTimeout          time.Duration `env:"PAYD_WEBHOOK_TIMEOUT" envDefault:"10s"`
	WebhookDispatchInterval time.Duration `env:"PAYD_WEBHOOK_DISPATCH_INTERVAL" envDefault:"200ms"`

	// Gateway is the connector payd charges through: a name of the
	// gateways registry (gateways.go).
	Gateway                string        `env:"PAYD_GATEWAY" envDefault:"sandbox"`
	StripeAPIKey           string        `env:"STRIPE_API_KEY"` // secret: only in the client's Authorization header
	StripeAPIBase          string        `env:"STRIPE_API_BASE"`
	StripeReturnURL        string        `env:"STRIPE_RETURN_URL"`
	StripeWebhookSecrets   []string      `env:"STRIPE_WEBHOOK_SECRET" envSeparator:","`
	StripeWebhookTolerance time.Duration `env:"STRIPE_WEBHOOK_TOLERANCE" envDefault:"5m"`
	SandboxURL             string        `env:"PAYD_SANDBOX_URL"`
	SandboxAddr            string        `env:"PAYD_SANDBOX_ADDR" envDefault:":8090"`
	SandboxPublicURL       string        `env:"PAYD_SANDBOX_PUBLIC_URL"`
	SandboxSettleDelay     time.Duration `env:"PAYD_SANDBOX_SETTLE_DELAY"` // empty: each rail's real schedule
	SandboxReturnDelay     time.Duration `env:"PAYD_SANDBOX_RETURN_DELAY" envDefault:"30s"`
	SandboxLatency         time.Duration `env:"PAYD_SANDBOX_LATENCY" envDefault:"0s"`
	SandboxFaultRate       float64       `env:"PAYD_SANDBOX_FAULT_RATE" envDefault:"0"`
	SandboxSeed            int64         `env:"PAYD_SANDBOX_SEED" envDefault:"1"`

	// gateway notifications: the shared secret(s) signing them (comma-separated
	// during a rotation; the sandbox signs with the first), never logged
	NotifySecrets       []string      `env:"PAYD_GATEWAY_NOTIFY_SECRET" envSeparator:","`
	NotifyTolerance     time.Duration `env:"PAYD_GATEWAY_NOTIFY_TOLERANCE" envDefault:"5m"`
	SandboxNotifyURL    string        `env:"PAYD_SANDBOX_NOTIFY_URL"`
	SandboxNotifyCopies int           `env:"PAYD_SANDBOX_NOTIFY_COPIES" envDefault:"1"`
	SandboxNotifyOrder  string        `env:"PAYD_SANDBOX_NOTIFY_ORDER"`
	SandboxNotifyDelay  time.Duration `env:"PAYD_SANDBOX_NOTIFY_DELAY" envDefault:"0s"`
	SandboxNotifyBatch  time.Duration `env:"PAYD_SANDBOX_NOTIFY_BATCH" envDefault:"0s"`
}

func loadConfig(getenv func(string) string) (config, error) {
	envs := map[string]string{}
	var c config
	// caarlos0/env reads a map; build it from getenv for the names we use.
	for _, name := range envNames() {
		if v := getenv(name); v != "" {
			envs[name] = v
		}
	}
	if err := env.ParseWithOptions(&c, env.Options{Environment: envs}); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if c.SandboxFaultRate < 0 || c.SandboxFaultRate > 1 {
		return c, fmt.Errorf("config: PAYD_SANDBOX_FAULT_RATE must be between 0 and 1")
	}
	switch sandbox.NotifyOrder(c.SandboxNotifyOrder) {
	case sandbox.NotifyInOrder, sandbox.NotifyReversed, sandbox.NotifyShuffled:
	default:
		return c, fmt.Errorf("config: PAYD_SANDBOX_NOTIFY_ORDER must be empty, reversed or shuffled")
	}
	if c.SandboxNotifyCopies < 1 || c.SandboxNotifyCopies > 100 || c.NotifyTolerance <= 0 {
		return c, fmt.Errorf("config: PAYD_SANDBOX_NOTIFY_COPIES must be 1..100 and PAYD_GATEWAY_NOTIFY_TOLERANCE positive")
	}
	if c.ReconcileInterval < 0 || c.ReconcileGrace < 0 {
		return c, fmt.Errorf("config: PAYD_RECONCILE_INTERVAL and PAYD_RECONCILE_GRACE must not be negative")
	}
	if c.WebhookKeys != "" {
		if _, err := webhook.ParseKeyring(c.WebhookKeys); err != nil {
			return c, fmt.Errorf("config: PAYD_WEBHOOK_KEYS: %w", err)
		}
	}
	if c.WebhookTimeout <= 0 || c.WebhookDispatchInterval <= 0 {
		return c, fmt.Errorf("config: PAYD_WEBHOOK_TIMEOUT and PAYD_WEBHOOK_DISPATCH_INTERVAL must be positive")
	}
	if _, err := c.redisConn(); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if _, ok := gateways[c.Gateway]; !ok {
		return c, fmt.Errorf("config: PAYD_GATEWAY %q is not one of %s", c.Gateway, strings.Join(gatewayNames(), ", "))
	}
	if c.Gateway == "stripe" && c.StripeAPIKey == "" {
		return c, fmt.Errorf("config: PAYD_GATEWAY=stripe needs STRIPE_API_KEY")
	}
	if c.StripeWebhookTolerance <= 0 {
		return c, fmt.Errorf("config: STRIPE_WEBHOOK_TOLERANCE must be positive")
	}
	if c.GatewayTimeout <= 0 || c.WorkerConcurrency <= 0 {
		return c, fmt.Errorf("config: PAYD_GATEWAY_TIMEOUT and PAYD_WORKER_CONCURRENCY must be positive")
	}
	return c, nil
}

func envNames() []string {
	return []string{"DATABASE_URL", "PAYD_MIGRATE_DATABASE_URL", "PAYD_APP_DB_ROLE", "REDIS_URL", "PAYD_ADDR", "PAYD_ADMIN_ADDR", "PAYD_ADMIN_PASSWORD", "PAYD_LOG_LEVEL",
		"PAYD_DB_MAX_CONNS", "PAYD_DB_BATCH_MAX", "PAYD_DB_BATCH_RUNNERS", "PAYD_WORKER_CONCURRENCY", "PAYD_TASK_CHECK_INTERVAL", "PAYD_DELAYED_TASK_CHECK_INTERVAL",
		"PAYD_TASK_RETENTION", "PAYD_SWEEP_INTERVAL", "PAYD_SWEEP_GRACE", "PAYD_SWEEP_LEASE", "PAYD_SHUTDOWN_TIMEOUT", "PAYD_GATEWAY_TIMEOUT",
		"PAYD_RETRY_UNIT", "PAYD_SETTLE_POLL", "PAYD_RETURN_WINDOW", "PAYD_RECONCILE_INTERVAL", "PAYD_RECONCILE_GRACE", "PAYD_RATE_LIMIT", "PAYD_RATE_BURST",
		"PAYD_MAX_BODY_BYTES", "PAYD_IDEMPOTENCY_TTL", "PAYD_TX_TIMEOUT", "PAYD_PUBLIC_URL", "PAYD_SESSION_SUBMIT_WAIT", "PAYD_SESSION_SUBMIT_POLL",
		"PAYD_WEBHOOK_KEYS", "PAYD_WEBHOOK_ALLOW_HTTP", "PAYD_WEBHOOK_ALLOW_PRIVATE", "PAYD_WEBHOOK_TIMEOUT", "PAYD_WEBHOOK_DISPATCH_INTERVAL", "PAYD_GATEWAY", "STRIPE_API_KEY", "STRIPE_API_BASE", "STRIPE_RETURN_URL", "STRIPE_WEBHOOK_SECRET", "STRIPE_WEBHOOK_TOLERANCE",
		"PAYD_SANDBOX_URL", "PAYD_SANDBOX_ADDR", "PAYD_SANDBOX_PUBLIC_URL",
		"PAYD_SANDBOX_SETTLE_DELAY", "PAYD_SANDBOX_RETURN_DELAY", "PAYD_SANDBOX_LATENCY", "PAYD_SANDBOX_FAULT_RATE",
		"PAYD_SANDBOX_SEED", "PAYD_GATEWAY_NOTIFY_SECRET", "PAYD_GATEWAY_NOTIFY_TOLERANCE", "PAYD_SANDBOX_NOTIFY_URL",
		"PAYD_SANDBOX_NOTIFY_COPIES", "PAYD_SANDBOX_NOTIFY_ORDER", "PAYD_SANDBOX_NOTIFY_DELAY", "PAYD_SANDBOX_NOTIFY_BATCH"}
}

// redisConn is REDIS_URL read: where every Redis client of this process
// connects (one server, a Sentinel-watched primary, or a Cluster).
func (c config) redisConn() (jobs.RedisConn, error) {
	conn, err := jobs.ParseRedisURL(c.RedisURL)
	if err != nil {
		return conn, fmt.Errorf("REDIS_URL: %w", err)
	}
	return conn, nil
}

// gatewayName names the gateway payd charges through (PAYD_GATEWAY), in
// reconciliation findings and as the gateway of recorded notifications.
func (c config) gatewayName() string { return c.Gateway }

// migrateURL is the URL migrations run on: the owner's.
func (c config) migrateURL() string {
	if c.MigrateDatabaseURL != "" {
		return c.MigrateDatabaseURL
	}
	return c.DatabaseURL
}

// appRoles names the role migrate grants the app's rights to: PAYD_APP_DB_ROLE,
// else DATABASE_URL's user when migrations run as another user.
func (c config) appRoles() []string {
	if c.AppDBRole != "" {
		return []string{c.AppDBRole}
	}
	app, owner := urlUser(c.DatabaseURL), urlUser(c.migrateURL())
	if app != "" && app != owner {
		return []string{app}
	}
	return nil
}

// migrate applies the migrations as the owner and grants the app role.
func (c config) migrate(ctx context.Context) error {
	return store.Migrate(ctx, c.migrateURL(), c.appRoles()...)
}

// urlUser is the user a postgres:// URL or a key=value DSN connects as.
func urlUser(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if u.User != nil {
			return u.User.Username()
		}
		return u.Query().Get("user")
	}
	for _, f := range strings.Fields(dsn) {
		if k, v, ok := strings.Cut(f, "="); ok && k == "user" {
			return strings.Trim(v, "'")
		}
	}
	return ""
}

func (c config) logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return slog.LevelInfo
	}
	return l
}
