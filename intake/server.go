// Package intake owns payd's public HTTP API: one file per resource, every
// route in routes.go, the request pipeline every route uses (request.go:
// handlers that return their error, decodeValid, writeList), and the shared
// machinery of authentication, the error envelope, idempotency, rate limits
// and strict decoding. Domain types and rules are payment's. It records each
// request in Postgres (through store) before answering and enqueues the next
// step after commit (through jobs). It must not import processor.
package intake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/metrics"
	"github.com/payd/payd/store"
	"github.com/payd/payd/webhook"
)

// Config tunes the API.
type Config struct {
	MaxBodyBytes   int64
	RateLimit      int           // requests per second per tenant; 0 disables
	RateBurst      int           // bucket size
	IdempotencyTTL time.Duration // how long Idempotency-Key answers are kept
	// TxTimeout bounds the database transaction of a POST; a request
	// still waiting then records nothing and answers 503.
	TxTimeout time.Duration
	// AuthCacheTTL bounds how long a key lookup is cached; a revoked key is
	// forgotten at once all the same, by the store's key watch. While the
	// watch is not listening, a lookup is trusted for AuthCacheFallbackTTL
	// only (authCache).
	AuthCacheTTL         time.Duration
	AuthCacheFallbackTTL time.Duration
	MaxAmountMinor       int64 // the largest amount accepted, in minor units
	// ListMaxOffset is the deepest offset GET /v1/payments pages to
	// (payments_list.go); deeper is 422 offset_too_deep, use the cursor.
	ListMaxOffset int
	// Gateway notifications (gateway_notifications.go): the shared secrets
	// that sign them (several during a rotation; none disables the route),
	// the gateway they come from, the clock tolerance of their timestamps,
	// and their body limit.
	NotifySecrets   []string
	NotifyGateway   string
	NotifyTolerance time.Duration
	NotifyMaxBody   int64
	// Payment sessions: PublicURL is where payd's public API is reachable
	// by a customer's browser (the hosted page is PublicURL/pay/{token});
	// SessionSubmitWait is how long a submit waits for its payment's
	// outcome before answering 202; SessionSubmitPoll is the first pause of
	// its fallback poll while the worker's wake-ups work (awaitOutcome).
	PublicURL         string
	SessionSubmitWait time.Duration
	SessionSubmitPoll time.Duration
	// WebhookPolicy is what webhook endpoint URLs may be (http, private
	// addresses: PAYD_WEBHOOK_ALLOW_HTTP, PAYD_WEBHOOK_ALLOW_PRIVATE).
	WebhookPolicy webhook.Policy
}

// Deps are what the handlers use.
type Deps struct {
	Store   *store.Store
	Enqueue *jobs.Enqueuer
	Redis   redis.UniversalClient
	Metrics *metrics.Metrics
	Log     *slog.Logger
	Config  Config
	// Tokenizer exchanges a payment session's session_data for a one-time
	// payment token (the gateway's); nil refuses every submit with 502.
	Tokenizer connector.Tokenizer
	// Keyring seals webhook endpoint secrets (PAYD_WEBHOOK_KEYS); nil
	// refuses endpoint creation with 409 webhooks_not_configured.
	Keyring *webhook.Keyring
	// NotificationParser authenticates and decodes the gateway's own
	// notifications (Stripe's webhooks) on POST /v1/gateway/notifications;
	// nil: payd's format under Config.NotifySecrets (the sandbox's).
	NotificationParser connector.NotificationParser
}

// Server is the HTTP API.
type Server struct {
	store   *store.Store
	enqueue *jobs.Enqueuer
	redis   redis.UniversalClient
	limiter *redis_rate.Limiter
	metrics *metrics.Metrics
	log     *slog.Logger
	cfg     Config
	tokens  connector.Tokenizer
	auth    *authCache
	// invoices caches invoice heads for the payment create path.
	invoices *invoiceHeads
	leases   rateLeases
	handler  http.Handler
	// notifySecrets are Config.NotifySecrets as keys; empty disables
	// gateway notifications.
	notifySecrets [][]byte
	notifyParser  connector.NotificationParser
	keyring       *webhook.Keyring
	// patterns are the routes registered, in order (Routes).
	patterns []string
}

// NewServer builds the API handler with defaults filled in.
func NewServer(d Deps) *Server {
	c := d.Config
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.IdempotencyTTL <= 0 {
		c.IdempotencyTTL = 24 * time.Hour
	}
	if c.TxTimeout <= 0 {
		c.TxTimeout = 15 * time.Second
	}
	if c.AuthCacheTTL <= 0 {
		c.AuthCacheTTL = 30 * time.Second
	}
	if c.AuthCacheFallbackTTL <= 0 {
		c.AuthCacheFallbackTTL = 500 * time.Millisecond
	}
	if c.MaxAmountMinor <= 0 {
		c.MaxAmountMinor = 1_000_000_000_000_00 // 1e14 minor units: a trillion dollars
	}
	if c.NotifyGateway == "" {
		c.NotifyGateway = "sandbox"
	}
	if c.ListMaxOffset <= 0 {
		c.ListMaxOffset = DefaultListMaxOffset
	}
	if c.NotifyTolerance <= 0 {
		c.NotifyTolerance = 5 * time.Minute
	}
	if c.NotifyMaxBody <= 0 {
		c.NotifyMaxBody = DefaultNotifyMaxBody
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://127.0.0.1:8080"
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.SessionSubmitWait <= 0 {
		c.SessionSubmitWait = DefaultSessionSubmitWait
	}
	if c.SessionSubmitPoll <= 0 {
		c.SessionSubmitPoll = DefaultSessionSubmitPoll
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Metrics == nil {
		d.Metrics = metrics.Discard()
	}
	s := &Server{store: d.Store, enqueue: d.Enqueue, redis: d.Redis, metrics: d.Metrics, log: d.Log, cfg: c, tokens: d.Tokenizer,
		notifyParser: d.NotificationParser,
		auth:         newAuthCache(c.AuthCacheTTL, c.AuthCacheFallbackTTL, nil), invoices: newInvoiceHeads(), keyring: d.Keyring}
	for _, secret := range c.NotifySecrets {
		if secret != "" {
			s.notifySecrets = append(s.notifySecrets, []byte(secret))
		}
	}
	if d.Redis != nil && c.RateLimit > 0 {
		s.limiter = redis_rate.NewLimiter(d.Redis)
	}
	if d.Store != nil {
		s.auth.dbNow = d.Store.Now
		// revoked keys leave the cache at once (authCache)
		d.Store.WatchAPIKeys(s.auth)
	}
	s.handler = s.routes()
	OpenAPIJSON() // converted at start: GET /openapi.json only writes it
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyPrincipal
)

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(keyRequestID).(string)
	return id
}

func principal(ctx context.Context) store.Principal {
	p, _ := ctx.Value(keyPrincipal).(store.Principal)
	return p
}

// statusWriter remembers the status code for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// observe wraps every route: request id, panic recovery (a 500 in the
// envelope, never a stack trace), a log line, metrics by route pattern.
func (s *Server) observe(pattern string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			b := make([]byte, 12)
			_, _ = rand.Read(b)
			id = "req_" + hex.EncodeToString(b)
		}
		ctx := context.WithValue(r.Context(), keyRequestID, id)
		r = r.WithContext(ctx)
		w.Header().Set("X-Request-Id", id)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(ctx, "panic in handler", "request_id", id, "route", pattern, "panic", v)
				if sw.code == 0 {
					s.writeError(sw, r, errInternal)
				}
			}
			s.metrics.HTTPRequests.WithLabelValues(pattern, strconv.Itoa(sw.code)).Inc()
			s.metrics.HTTPLatency.WithLabelValues(pattern).Observe(time.Since(start).Seconds())
			if s.log.Enabled(ctx, slog.LevelDebug) || sw.code >= 500 {
				s.log.LogAttrs(ctx, slog.LevelInfo, "http", slog.String("request_id", id), slog.String("route", pattern),
					slog.Int("status", sw.code), slog.Duration("duration", time.Since(start)))
			}
		}()
		h.ServeHTTP(sw, r)
	})
}

func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error_type":"internal_error","error_codes":["internal_error"],"message":"encoding failed","retryable":true,` +
			`"success":false,"error":{"message":"encoding failed","internal_error":"internal_error: internal_error"}}`)
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	_, _ = w.Write([]byte("\n"))
}
