package main

import (
	"context"
	"io"
	"net/http"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/cli"
	"github.com/payd/payd/connector"
	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/metrics"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/processor"
	"github.com/payd/payd/store"
)

// operatorEnv opens what the operator commands (package cli) work with:
// the store, the gateway as this process can reach it, the processor's
// reconciliation (its late-charge refunds enqueued on Redis) and retry
// policy, and asynq's client and inspector on the Redis the roles use.
func operatorEnv(cfg config) cli.Opener {
	return func(ctx context.Context) (*cli.Env, func(), error) {
		st, err := store.Open(ctx, store.Config{URL: cfg.DatabaseURL, MaxOpenConns: 4, MaxIdleConns: 4}, hostClock)
		if err != nil {
			return nil, nil, err
		}
		conn, err := cfg.redisConn()
		if err != nil {
			st.Close()
			return nil, nil, err
		}
		rdb := conn.WithPoolSize(4).NewClient()
		client := asynq.NewClientFromRedisClient(rdb)
		inspector := asynq.NewInspectorFromRedisClient(rdb)
		enq := &jobs.Enqueuer{Client: client, Inspector: inspector, Retention: cfg.TaskRetention, Now: st.Now}
		gw := operatorGateway(cfg)
		policy := payment.DefaultRetryPolicy(cfg.RetryUnit)
		p := processor.New(processor.Deps{Store: st, Gateway: gw, Log: newLogger(cfg, io.Discard), Metrics: metrics.Discard(),
			Enqueue: enq, Config: processor.Config{GatewayTimeout: cfg.GatewayTimeout, Policy: policy,
				GatewayName: cfg.gatewayName(), ReconcileGrace: cfg.ReconcileGrace}})
		env := &cli.Env{Store: st, Gateway: gw, Reconcile: p.Reconcile, ReconcileWindow: p.ReconcileWindow, Migrate: cfg.migrate,
			Policy: policy, Enqueue: enq, Inspector: inspector}
		return env, func() { client.Close(); rdb.Close(); st.Close() }, nil
	}
}

// operatorGateway is the gateway as an operator's process reaches it: the
// standalone sandbox at PAYD_SANDBOX_URL, else the in-process sandbox of
// the running payd through its admin port (/sandbox/, basic auth).
func operatorGateway(cfg config) connector.Gateway {
	hc := &http.Client{Timeout: cfg.GatewayTimeout}
	if cfg.Gateway == "stripe" {
		if gw, err := newStripe(cfg, hc); err == nil {
			return gw
		}
	}
	if cfg.SandboxURL != "" {
		return sandbox.NewClient(cfg.SandboxURL, hc)
	}
	hc.Transport = adminAuth{password: cfg.AdminPassword, next: http.DefaultTransport}
	return sandbox.NewClient("http://"+loopbackAddr(cfg.AdminAddr)+"/sandbox", hc)
}

// adminAuth adds the admin port's basic auth to every request.
type adminAuth struct {
	password string
	next     http.RoundTripper
}

func (a adminAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth("admin", a.password)
	return a.next.RoundTrip(r)
}
