package intake

import (
	"context"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/payd/payd/metrics"
	"github.com/payd/payd/store"
)

// Health answers the probes of a payd process: intake's public port uses
// it, and cmd/payd serves the same on every role's admin port.
//
// Liveness (/healthz) is the process answering HTTP at all: restarting it
// cures nothing a dependency does. Readiness (/readyz) is Postgres, the
// source of truth, answering: without it nothing can be accepted or
// advanced. Redis is reported but never makes a process unready: intake
// accepts without it (the sweeper enqueues what it could not) and a
// worker resumes once it is back, so taking every pod out of its load
// balancer for a Redis outage would only turn a slower queue into an
// outage of the API. The report shows it, and so does payd_redis_up.
type Health struct {
	Store   *store.Store
	Redis   redis.UniversalClient // nil: reported unreachable
	Metrics *metrics.Metrics      // nil: no gauge
}

// healthTimeout bounds each dependency's check (both run at once). A pool
// busy under load may make the Postgres check wait for a connection: the
// probes that call it allow 3 s (deploy/kubernetes).
const healthTimeout = 2 * time.Second

// Readiness is one check's outcome, the body of /readyz.
type Readiness struct {
	// Status is ready, degraded (ready, but Redis is unreachable) or
	// not_ready (Postgres is unreachable: 503).
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"` // postgres, redis: ok or unreachable
}

// Ready reports whether the process can do its work (Postgres answers)
// and what Redis answered, setting payd_redis_up.
func (h Health) Ready(ctx context.Context) (bool, Readiness) {
	r := Readiness{Status: "ready", Checks: map[string]string{"postgres": "ok", "redis": "ok"}}
	redisUp := make(chan bool, 1)
	go func() { redisUp <- h.RedisUp(ctx) }()
	pctx, cancel := context.WithTimeout(ctx, healthTimeout)
	pgErr := h.Store.Ping(pctx)
	cancel()
	if !<-redisUp {
		r.Status, r.Checks["redis"] = "degraded", "unreachable"
	}
	if pgErr != nil {
		r.Status, r.Checks["postgres"] = "not_ready", "unreachable"
		return false, r
	}
	return true, r
}

// RedisUp pings Redis and records the answer in payd_redis_up.
func (h Health) RedisUp(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	up := h.Redis != nil && h.Redis.Ping(ctx).Err() == nil
	if h.Metrics != nil {
		v := 0.0
		if up {
			v = 1
		}
		h.Metrics.RedisUp.Set(v)
	}
	return up
}

// ServeHealthz answers liveness: 200 while the process serves HTTP.
func (h Health) ServeHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// ServeReadyz answers readiness: 200 while Postgres answers (the body says
// whether Redis does), 503 when it does not.
func (h Health) ServeReadyz(w http.ResponseWriter, r *http.Request) {
	ok, rep := h.Ready(r.Context())
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, rep)
}

func (s *Server) health() Health {
	return Health{Store: s.store, Redis: s.redis, Metrics: s.metrics}
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) error {
	s.health().ServeHealthz(w, r)
	return nil
}

// handleReadyz answers 503 only when Postgres cannot be reached (Health).
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) error {
	s.health().ServeReadyz(w, r)
	return nil
}
