package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/payd/payd/intake"
)

// Probes. Every role that `serve` runs (intake, worker, scheduler, monitor,
// all) answers GET /healthz (liveness) and GET /readyz (readiness: Postgres
// answers; Redis is reported, never a reason to be unready) on its admin
// port without authentication, so that Kubernetes and compose can probe
// workers and the scheduler, which have no public port. `payd sandbox`
// answers GET /healthz on its own port. `payd healthcheck` is the probe
// for images without curl (compose's healthcheck).

func (d *deps) health() intake.Health {
	return intake.Health{Store: d.store, Redis: d.rdb, Metrics: d.metrics}
}

// redisCheckEvery is how often a process checks Redis for payd_redis_up
// when no probe asks.
const redisCheckEvery = 5 * time.Second

// watchRedis keeps payd_redis_up current until ctx ends.
func (d *deps) watchRedis(ctx context.Context) {
	h := d.health()
	t := time.NewTicker(redisCheckEvery)
	defer t.Stop()
	for {
		h.RedisUp(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// healthcheckTimeout bounds `payd healthcheck`: above the readiness
// check's own 2 s.
const healthcheckTimeout = 3 * time.Second

// runHealthcheck is `payd healthcheck [URL]`: GET URL (default this
// process's readiness, http://<PAYD_ADMIN_ADDR on loopback>/readyz), print
// the answer, and succeed only on a 200.
func runHealthcheck(ctx context.Context, cfg config, args []string, stdout io.Writer) error {
	target := "http://" + loopbackAddr(cfg.AdminAddr) + "/readyz"
	switch len(args) {
	case 0:
	case 1:
		target = args[0]
	default:
		return fmt.Errorf("healthcheck takes at most one URL: %w", errUsage)
	}
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("healthcheck %s: %w", target, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	fmt.Fprintln(stdout, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck %s: %s", target, resp.Status)
	}
	return nil
}

// sandboxHandler is what `payd sandbox` serves: the whole sandbox, and
// GET /healthz for its probes.
func sandboxHandler(sb http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`+"\n")
	})
	mux.Handle("/", sb)
	return mux
}

// challengeProxy forwards the customer-facing 3-D Secure pages of a remote
// sandbox (PAYD_SANDBOX_URL) from intake's public port: a browser sent to
// <PAYD_PUBLIC_URL>/sandbox/challenge/{ref} reaches `payd sandbox`'s
// /challenge/{ref} through intake, so that the sandbox's own port, which
// also serves its operator routes, stays private to the deployment. Only
// GET and POST of one challenge are forwarded, without the caller's
// credentials or cookies; `payd sandbox` must then be told where browsers
// see its pages (PAYD_SANDBOX_PUBLIC_URL=<PAYD_PUBLIC_URL>/sandbox).
func challengeProxy(sandboxURL string, log *slog.Logger) (http.Handler, error) {
	target, err := url.Parse(sandboxURL)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return nil, fmt.Errorf("PAYD_SANDBOX_URL %q: not an http(s) URL", sandboxURL)
	}
	rp := &httputil.ReverseProxy{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn), Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.URL.Path = strings.TrimSuffix(target.Path, "/") + "/challenge/" + url.PathEscape(r.In.PathValue("reference"))
		r.Out.URL.RawPath = ""
		for _, h := range []string{"Authorization", "Cookie", "X-Api-Key", "X-Payment-Session-Secret"} {
			r.Out.Header.Del(h)
		}
	}}
	mux := http.NewServeMux()
	mux.Handle("GET /sandbox/challenge/{reference}", rp)
	mux.Handle("POST /sandbox/challenge/{reference}", rp)
	return mux, nil
}
