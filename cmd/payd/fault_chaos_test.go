package main

// Issue 5's fault schedule: every fault on its own (TestFault/<fault>) and
// all of them in one run under a seeded mixed load (TestFault/mixed).
//
//	kill_worker_before_commit   kill -9 of a worker whose transaction waits, before the attempt commit, on a payment row the test holds locked
//	kill_worker_in_gateway_call kill -9 of a worker while the sandbox sleeps before charging (attempt STARTED, nothing charged)
//	kill_worker_after_charge    kill -9 of a worker while the sandbox holds back the answer of a charge it booked
//	kill_intake                 kill -9 of intake mid-request; clients retry with the same Idempotency-Key
//	redis_flushall              FLUSHALL twice on the private Redis
//	redis_restart               the private Redis killed and started again, empty
//	redis_sigstop               the private Redis frozen (SIGSTOP) for 20 s, then SIGCONT
//	pg_restart                  pg_ctl restart -m immediate of the private PostgreSQL
//	gateway_5xx                 30 % of gateway calls answer 503
//	gateway_slow                5 % of gateway calls take 3 s more (p99 of seconds)
//	gateway_down                the TCP proxy in front of the sandbox closed: connection refused (default 12 s; PAYD_CHAOS_GATEWAY_DOWN)
//	gateway_notifications       signed gateway notifications on, duplicated, shuffled or reversed, batched and delayed; forged, tampered and replayed ones posted (fault_notify_test.go)
//	clock_jump                  host clock of a worker, the scheduler and intake +1h, back, -1h; then FLUSHALL with a worker and intake an hour ahead (fault_clock_test.go)
//
// and, in the mixed run only:
//
//	gateway_void_down           every void refused before processing for 40 s (longer than a void's retry schedule, 26 s), while clients cancel 3-D Secure payments and complete their challenges
//	gateway_answer_unknown      the sandbox answers the calls about pm_card_unknown keys for 10 s (otherwise they time out)
//
// The seeded load (chaosMix) mixes cards of every magic kind in USD, JPY and
// BHD, 3-D Secure payments whose client completes the challenge, cancels
// it, does both at once or lets it expire (fault_action_test.go),
// pm_card_unknown payments, large amounts (up to 1e14 minor units, each
// paying an invoice of its own), ACH payments and payouts, OFFLINE
// payments and refunds, and, in the mixed run, payment sessions submitted
// with the sandbox's session_data test values or abandoned
// (fault_session_test.go), and payment flows: users, an invoice with payers
// and payees, the flow, some canceled by their merchant (fault_flow_test.go).
// The mixed run also delivers every event to two webhook endpoints on a
// receiver that refuses some first tries; its checker (fault_webhook_test.go)
// wants every event delivered to each subscribed endpoint, and events one to
// one with the audited transitions.
//
// Each run ends with the checker (I1–I5 and I8 after a reconciliation,
// refunds and invoice balances, which window each worker kill hit) and a
// table line: faults injected, payments accepted, terminal, stuck, lost,
// double-charged, unaccounted charges, invariant violations and the time
// from the last fault healed to the last payment final.
//
// By hand (PAYD_CHAOS_SEED picks the mix; it is printed):
//
//	PAYD_CHAOS_N=10000 PAYD_CHAOS_GATEWAY_DOWN=60s go test -count=1 -run 'TestFault$/mixed$' -timeout 60m ./cmd/payd/ -v

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/payment"
)

const (
	chaosBaseLatency = 30 * time.Millisecond
	// chaosGatewayTimeout leaves room for the sandbox delays that place a
	// worker kill in a window (2 s) without the live workers' calls timing out.
	chaosGatewayTimeout = 5 * time.Second
	chaosWindowDelay    = 2 * time.Second
	chaosRedisStopFor   = 20 * time.Second
	// chaosRefundPatience: how long a refunding client waits for its payment
	// to succeed before it gives up on the refund.
	chaosRefundPatience = 3 * time.Minute
)

// chaosFault is one fault: what infrastructure it needs and how it is done.
type chaosFault struct {
	name    string
	needs   faultOpts
	gateway bool // fails the gateway: payments may end degraded
	// alone is the load's length when the fault runs on its own (it is
	// injected at +2 s); 0 means 6 s
	alone time.Duration
	run   func(r *chaosRun)
	// mixedOnly: injected in the mixed run only (no scenario of its own)
	mixedOnly bool
}

func chaosFaults() []chaosFault {
	return []chaosFault{
		{name: "kill_worker_before_commit", run: chaosKillBeforeCommit},
		{name: "kill_worker_in_gateway_call", run: chaosKillInGatewayCall},
		{name: "kill_worker_after_charge", run: chaosKillAfterCharge},
		{name: "kill_intake", run: chaosKillIntake},
		{name: "redis_flushall", needs: faultOpts{privateRedis: true}, run: chaosRedisFlushAll},
		{name: "redis_restart", needs: faultOpts{privateRedis: true}, run: chaosRedisRestart},
		{name: "redis_sigstop", needs: faultOpts{privateRedis: true}, run: chaosRedisStop},
		{name: "pg_restart", needs: faultOpts{privatePG: true}, run: chaosPGRestart},
		{name: "gateway_5xx", gateway: true, run: chaosGateway5xx},
		{name: "gateway_slow", gateway: true, run: chaosGatewaySlow},
		{name: "gateway_down", needs: faultOpts{gatewayProxy: true}, gateway: true, run: chaosGatewayDown},
		{name: "gateway_notifications", needs: faultOpts{notify: true}, alone: 12 * time.Second, run: chaosGatewayNotifications},
		// a private PostgreSQL for its commit timestamps: the checker's
		// times must not come from the clocks it jumps
		{name: "clock_jump", needs: faultOpts{privateRedis: true, privatePG: true, clocks: true},
			alone: 16 * time.Second, run: chaosClockJump},
		{name: "gateway_void_down", mixedOnly: true, run: chaosVoidDown},
		{name: "gateway_answer_unknown", mixedOnly: true, run: chaosAnswerUnknown},
	}
}

// chaosScenarios returns the mixed run and one scenario per fault, longest
// first.
func chaosScenarios(bin string) []faultScenario {
	all := chaosFaults()
	byName := map[string]chaosFault{}
	for _, f := range all {
		byName[f.name] = f
	}
	scenarios := []faultScenario{{"mixed", func(t *testing.T) {
		n := chaosEnvInt(t, "PAYD_CHAOS_N", 500)
		// the schedule below takes about 20 s + max(35 s, 20 s + gateway down)
		// (the third track, ≈ 28 s, fits in the first)
		sched := 20*time.Second + max(35*time.Second, 20*time.Second+chaosDownFor(t))
		spread := max(sched+5*time.Second, time.Duration(n)*time.Second/60)
		runChaos(t, bin, "mixed", all, n, spread, func(r *chaosRun) {
			faultSleepUntil(r.l.start.Add(2 * time.Second))
			// the worker kills one after the other, so that each lands in its
			// own window
			for _, name := range []string{"kill_worker_before_commit", "kill_worker_in_gateway_call", "kill_worker_after_charge"} {
				r.inject(byName[name])
				time.Sleep(1500 * time.Millisecond)
			}
			// then infrastructure, gateway, and notification and clock
			// faults side by side (clock_jump's FLUSHALL waits while
			// another track holds Redis stopped or restarting)
			var wg sync.WaitGroup
			for _, track := range [][]string{
				{"kill_intake", "redis_flushall", "redis_restart", "pg_restart", "redis_sigstop"},
				{"gateway_5xx", "gateway_slow", "gateway_down"},
				{"gateway_notifications", "clock_jump"},
				{"gateway_void_down", "gateway_answer_unknown"},
			} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, name := range track {
						r.inject(byName[name])
						time.Sleep(2 * time.Second)
					}
				}()
			}
			wg.Wait()
		})
	}}}
	for _, name := range []string{"redis_sigstop", "clock_jump", "pg_restart", "gateway_down", "gateway_notifications",
		"kill_worker_after_charge", "kill_worker_in_gateway_call", "kill_worker_before_commit", "gateway_slow",
		"redis_flushall", "redis_restart", "kill_intake", "gateway_5xx"} {
		f := byName[name]
		spread := f.alone
		if spread == 0 {
			spread = 6 * time.Second
		}
		n := int(spread / time.Second * 25) // 150 payments over the usual 6 s
		if f.alone != 0 {
			n = int(spread / time.Second * 20) // a longer load, a little lighter
		}
		if f.mixedOnly {
			panic("chaosScenarios: " + name + " runs in the mixed run only")
		}
		scenarios = append(scenarios, faultScenario{name, func(t *testing.T) {
			runChaos(t, bin, f.name, []chaosFault{f}, n, spread, func(r *chaosRun) {
				faultSleepUntil(r.l.start.Add(2 * time.Second))
				r.inject(f)
			})
		}})
	}
	mixedOnly := 0
	for _, f := range all {
		if f.mixedOnly {
			mixedOnly++
		}
	}
	if len(scenarios) != len(all)-mixedOnly+1 {
		panic("chaosScenarios: a fault is missing from the order")
	}
	return scenarios
}

// chaosRun is one scenario under way.
type chaosRun struct {
	t    *testing.T
	c    *faultCluster
	l    *faultLoad
	seed int64

	mu      sync.Mutex
	events  []chaosEvent
	refunds []*faultClientRecord
	windows chaosWindows
	workerN int
	forged  chaosForged // what gateway_notifications posted

	// the sandbox's faults, PUT as one (PUT /faults replaces them all):
	// gw by the gateway faults, nf by the notification fault, voidDown and
	// answerUnknown by the faults of those names
	fmu           sync.Mutex
	gw            sandbox.Faults
	nf            sandbox.NotifyFaults
	nfEnv         sandbox.NotifyFaults // the delivery the sandbox was started with
	voidDown      bool
	answerUnknown bool
	// what the 3-D Secure clients did (fault_action_test.go)
	actions chaosActions
	// what the payment sessions' clients did (fault_session_test.go)
	sessions *chaosSessions
	// what the payment flows' clients did (fault_flow_test.go)
	flows *chaosSessions
	// the webhook receiver of the mixed run (fault_webhook_test.go)
	hooks *faultHooks
	// degradedOK: the run fails the gateway (faultLoadSpec.degradedOK)
	degradedOK bool
	// redisMu is held by a fault while it has Redis wiped, restarting or
	// stopped, so that another track's FLUSHALL does not run into it
	redisMu sync.Mutex
}

type chaosEvent struct {
	name        string
	at, healed  time.Time
	detail      string
	startOffset time.Duration
}

// chaosWindows is what the worker kills saw at the moment of the kill, to
// tell afterwards which window each hit.
type chaosWindows struct {
	lockedBlocked int      // (a) the victim's transactions waiting on a locked payment row
	lockedIDs     []string // (a) the payments locked
	inGateway     []string // (b) attempt keys STARTED and not charged at the kill
	afterCharge   []string // (c) attempt keys STARTED and charged at the kill
}

func runChaos(t *testing.T, bin, name string, faults []chaosFault, n int, spread time.Duration, schedule func(r *chaosRun)) {
	began := time.Now()
	seed := chaosSeed(t)
	o := faultOpts{env: []string{"PAYD_GATEWAY_TIMEOUT=" + chaosGatewayTimeout.String()}}
	gateway := false
	for _, f := range faults {
		o.privateRedis = o.privateRedis || f.needs.privateRedis
		o.privatePG = o.privatePG || f.needs.privatePG
		o.gatewayProxy = o.gatewayProxy || f.needs.gatewayProxy
		o.notify = o.notify || f.needs.notify
		o.clocks = o.clocks || f.needs.clocks
		gateway = gateway || f.gateway
	}
	c := startFaultClusterWith(t, bin, o)
	counter := &faultCounter{t: t}
	c.chk = counter
	r := &chaosRun{t: t, c: c, seed: seed, workerN: 2, gw: chaosNormal, degradedOK: gateway, sessions: newChaosSessions(), flows: newChaosSessions()}
	if o.notify {
		// notifications are dropped until the gateway_notifications fault
		r.nfEnv = r.readNotifyEnv()
		r.setNotify(sandbox.NotifyFaults{Drop: true})
	}
	if len(faults) > 1 {
		// the mixed run delivers every event to two endpoints, under every fault
		r.hooks = startFaultHooks(t, c)
	}
	refundq := make(chan *faultClientRecord, n)
	loadSet := make(chan struct{})
	var refunders sync.WaitGroup
	refunders.Add(4) // started once r.l is set, which they read
	actHC := &http.Client{Timeout: 10 * time.Second}
	defer actHC.CloseIdleConnections()
	spec := faultLoadSpec{n: n, clients: 16, spread: spread, degradedOK: gateway,
		build: chaosMix(seed, c.invoiceIDs, len(faults) > 1),
		created: func(rec *faultClientRecord) {
			if strings.HasPrefix(rec.kind, "3ds") {
				// its customer and merchant act on it, on their own
				r.actions.wg.Add(1)
				go func() { defer r.actions.wg.Done(); r.act(actHC, rec) }()
			}
			if rec.path == faultSessionsPath {
				// its customer submits it (or walks away), on its own
				r.actions.wg.Add(1)
				go func() { defer r.actions.wg.Done(); <-loadSet; r.sessionClient(actHC, rec) }()
			}
			if rec.path == faultFlowsPath {
				// its merchant waits for it (or cancels it), on its own
				r.actions.wg.Add(1)
				go func() { defer r.actions.wg.Done(); <-loadSet; r.flowClient(actHC, rec) }()
			}
			if rec.refund > 0 {
				refundq <- rec
			}
		},
		drained: func() { close(refundq); refunders.Wait(); r.actions.wg.Wait() },
	}
	t.Logf("chaos %s: seed %d (rerun with PAYD_CHAOS_SEED=%d), %d payments over %s", name, seed, seed, n, spread)
	r.l = c.startLoad(spec)
	close(loadSet) // the session clients post through r.l
	for range 4 {
		go func() { defer refunders.Done(); r.refundLoop(refundq) }()
	}
	schedule(r)
	r.l.wait()
	lastFault := r.lastHealed()
	s := c.finish(name, r.l, lastFault)
	refundsOK := r.checkRefunds()
	ms := s.money // checked by finish
	hits := r.checkWindows(faults)
	var extra []string
	if o.notify {
		n := r.checkNotifications()
		r.mu.Lock()
		extra = append(extra, n.String(r.forged))
		r.mu.Unlock()
	}
	if o.clocks {
		ahead, behind := clockSkewedRows(c)
		extra = append(extra, fmt.Sprintf("audit rows stamped > 10 min off their commit time (written under a jumped clock): %d ahead, %d behind", ahead, behind))
	}
	if r.hooks != nil {
		c.waitDeliveries(time.Now().Add(c.finalBound))
		snap := c.snapshot()
		extra = append(extra, "webhooks: "+r.hooks.check(c.chk, snap).String())
		_ = snap.Rollback()
	}
	if a := r.actions.String(); a != "" {
		extra = append(extra, "3-D Secure clients: "+a)
	}
	if s.sessions.sessions > 0 {
		extra = append(extra, "payment sessions: "+s.sessions.String()+"; their clients: "+r.sessions.String())
	}
	if s.flows.flows > 0 {
		extra = append(extra, "payment flows: "+s.flows.String()+"; their clients: "+r.flows.String())
	}
	r.table(name, s, ms, refundsOK, hits, counter.n.Load(), lastFault, time.Since(began), extra)
}

// ---------------------------------------------------------------- load

// chaosMix returns the seeded mix: cards of every magic kind in USD, JPY
// and BHD, 3-D Secure payments (their clients complete the challenge,
// cancel it, do both at once, or let it expire: fault_action_test.go),
// pm_card_unknown payments, large amounts (1e10 to 1e14 minor units, each
// paying an invoice of its own the client creates first, some refunded in
// part or in whole), ACH that settles or is returned, OFFLINE payments,
// ACH payouts (seed 002) paying an invoice, a share of visa payments
// the client refunds (in part or in whole) once they succeed, and payment
// sessions (seed 003) that their clients submit or abandon
// (fault_session_test.go).
//
// slow says whether the mix has the kinds that take long to end by design
// (a 3-D Secure action expires after 18 s, a pm_card_unknown payment goes
// to review after 26 s, sessions expire after 10 to 30 s): the mixed run
// has them; a fault's own scenario
// makes them visa payments, which keeps the package's CI time (its
// scenarios would otherwise wait ≈ 25 s more each).
func chaosMix(seed int64, invoices []string, slow bool) func(i int, key string) *faultClientRecord {
	return func(i int, key string) *faultClientRecord {
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(i)))
		// cards are in USD, JPY or BHD; bank rails and payouts in USD
		currency := "USD"
		switch c := rng.IntN(10); {
		case c < 2:
			currency = "JPY"
		case c < 4:
			currency = "BHD"
		}
		minor := int64(100 + rng.IntN(9900))
		if slow && rng.IntN(100) < chaosSessionShare {
			// a payment session and its client (fault_session_test.go)
			return chaosSession(rng, key, currency, minor, faultInvoiceExt(currency, i))
		}
		if slow && rng.IntN(100) < chaosFlowShare {
			// a payment flow with its users and invoice (fault_flow_test.go)
			return chaosFlow(rng, key)
		}
		inv := i % len(invoices)
		r := &faultClientRecord{key: key}
		var method, pm, kind string
		refund := func(x, partial, full int) {
			switch {
			case x < partial:
				r.refund = minor / 2
			case x < full:
				r.refund = minor
			}
		}
		switch x := rng.IntN(100); {
		case x < 30:
			method, pm, kind = "CARD", sandbox.CardVisa, "visa"
			refund(x, 3, 6)
		case x < 34:
			method, pm, kind = "CARD", sandbox.CardDeclined, "declined"
		case x < 37:
			method, pm, kind = "CARD", sandbox.CardInsufficientFunds, "insufficient_funds"
		case x < 41:
			method, pm, kind = "CARD", sandbox.CardFlaky, "flaky"
		case x < 47:
			method, pm, kind = "CARD", sandbox.CardTimeoutAfterCharge, "timeout_after_charge"
		case x < 52:
			method, pm, kind = "CARD", sandbox.Card3DS, "3ds_complete"
		case x < 56:
			method, pm, kind = "CARD", sandbox.Card3DS, "3ds_cancel"
		case x < 60:
			method, pm, kind = "CARD", sandbox.Card3DS, "3ds_race"
		case x < 63:
			method, pm, kind = "CARD", sandbox.Card3DS, "3ds_expire"
		case x < 67:
			method, pm, kind = "CARD", sandbox.CardUnknown, "unknown"
		case x < 73:
			// a large amount from 1e10 to 1e14 minor units, as many of each
			// order of magnitude (one in eight exactly 1e14, the largest payd
			// takes), paying an invoice of its own for exactly that amount
			method, pm, kind = "CARD", sandbox.CardVisa, "large"
			e := int64(1)
			for range 10 + rng.IntN(4) {
				e *= 10
			}
			minor = e + rng.Int64N(9*e)
			if rng.IntN(8) == 0 {
				minor = chaosMaxMinor
			}
			refund(x-67, 1, 2)
		case x < 82:
			currency, method, pm, kind = "USD", "ACH", "ba_"+sandbox.BankAccountSettles, "ach"
		case x < 87:
			currency, method, pm, kind = "USD", "ACH", "ba_"+sandbox.BankAccountReturnedR01, "ach_returned"
		case x < 93:
			method, pm, kind = "OFFLINE", "", "offline"
		default:
			// a seed-002 payout over ACH that pays one invoice
			amount := payment.FormatMajor(minor, "USD")
			r.method, r.pm, r.path, r.kind, r.currency, r.minor = "ACH", "123456789", "/v1/payouts", "payout", "USD", minor
			r.body, _ = json.Marshal(map[string]any{
				"external_payment_id": key, "external_source": "chaos", "method": "ACH",
				"total_amount": amount, "currency": "USD", "beneficiary_name": "Chaos Supplier LLC",
				"beneficiary_account": "123456789", "beneficiary_routing": "021000021",
				"beneficiary_bank_country": "US",
				"lines":                    []map[string]string{{"invoice_token": invoices[inv], "applied_amount": amount}},
			})
			return r
		}
		if !slow && (pm == sandbox.Card3DS || pm == sandbox.CardUnknown) {
			pm, kind = sandbox.CardVisa, "visa"
		}
		r.method, r.pm, r.kind, r.currency, r.minor = method, pm, kind, currency, minor
		amount := payment.FormatMajor(minor, currency)
		dest := faultInvoiceExt(currency, i)
		if kind == "large" {
			dest = "inv_large_" + key
			r.invoice, _ = json.Marshal(map[string]string{"external_id": dest, "currency": currency, "amount_due": amount})
		}
		req := map[string]any{
			"amount": amount, "currency": currency,
			"destination_id": dest, "destination_type": "INVOICE",
			"payment_method_type": method, "metadata": map[string]string{"fault_key": key},
		}
		// OFFLINE is recorded paid without a gateway when processed
		// (process_payment true, the default): nothing stays unprocessed
		if method != "OFFLINE" {
			req["payment_method_id"] = pm
		}
		r.body, _ = json.Marshal(req)
		return r
	}
}

// chaosMaxMinor is the largest amount payd accepts, in minor units (1e14:
// a trillion dollars, a hundred billion dinars).
const chaosMaxMinor = 100_000_000_000_000

// refundLoop refunds each payment it is given once the payment succeeded,
// retrying with the same Idempotency-Key like the payment clients.
func (r *chaosRun) refundLoop(q <-chan *faultClientRecord) {
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	for p := range q {
		if !r.waitSucceeded(hc, p.id) {
			continue // FAILED (a gateway fault outlasted the retries) or never final: nothing to refund
		}
		body, _ := json.Marshal(map[string]string{"amount": payment.FormatMajor(p.refund, p.currency)})
		rec := &faultClientRecord{path: "/v1/payments/" + p.id + "/refunds", key: p.key + "-refund", body: body,
			method: "REFUND", pm: p.id, refund: p.refund, currency: p.currency, kind: "refund of " + p.kind}
		r.c.create(hc, r.l, rec)
		r.mu.Lock()
		r.refunds = append(r.refunds, rec)
		r.mu.Unlock()
	}
}

func (r *chaosRun) waitSucceeded(hc *http.Client, id string) bool {
	deadline := time.Now().Add(chaosRefundPatience)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, r.c.intakeURL+"/v1/payments/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+r.c.apiKey)
		if resp, err := hc.Do(req); err == nil {
			var v struct {
				Status string `json:"payment_status"`
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && json.Unmarshal(b, &v) == nil {
				switch v.Status {
				case "SUCCEEDED":
					return true
				case "FAILED", "REFUNDED", "PARTIALLY_REFUNDED":
					return false
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// ---------------------------------------------------------------- faults

// inject runs one fault to its end (healed) and records it.
func (r *chaosRun) inject(f chaosFault) {
	r.t.Helper()
	at := time.Now()
	r.mu.Lock()
	i := len(r.events)
	r.events = append(r.events, chaosEvent{name: f.name, at: at, startOffset: at.Sub(r.l.start)})
	r.mu.Unlock()
	f.run(r)
	r.mu.Lock()
	r.events[i].healed = time.Now()
	e := r.events[i]
	r.mu.Unlock()
	r.t.Logf("fault %s at +%s, healed after %s: %s", e.name, e.startOffset.Round(time.Millisecond),
		e.healed.Sub(e.at).Round(time.Millisecond), e.detail)
}

func (r *chaosRun) note(name, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if r.events[i].name == name {
			r.events[i].detail = fmt.Sprintf(format, args...)
			return
		}
	}
}

func (r *chaosRun) lastHealed() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var last time.Time
	for _, e := range r.events {
		if e.healed.After(last) {
			last = e.healed
		}
	}
	return last
}

// aliveWorkers lists the worker processes still running.
func (r *chaosRun) aliveWorkers() []*faultProc {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	var ws []*faultProc
	for _, w := range r.c.workers {
		if !w.exited() {
			ws = append(ws, w)
		}
	}
	return ws
}

// replaceWorker starts a new worker a second after a kill, as an orchestrator would.
func (r *chaosRun) replaceWorker() {
	time.Sleep(time.Second)
	r.mu.Lock()
	r.workerN++
	name := fmt.Sprintf("worker-%d", r.workerN)
	r.mu.Unlock()
	r.c.startWorker(name)
}

// setFaults sets the sandbox's gateway faults, keeping its notification
// delivery as the notification fault left it.
func (r *chaosRun) setFaults(f sandbox.Faults) {
	r.t.Helper()
	r.fmu.Lock()
	defer r.fmu.Unlock()
	r.gw = f
	r.putFaultsLocked()
}

// putFaultsLocked PUTs gw with nf as the sandbox's faults; fmu is held.
func (r *chaosRun) putFaultsLocked() {
	r.t.Helper()
	f := r.gw
	f.Notify = r.nf
	f.VoidDown, f.AnswerUnknown = r.voidDown, r.answerUnknown
	b, _ := json.Marshal(f)
	req, _ := http.NewRequest(http.MethodPut, r.c.sandboxURL+"/faults", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("PUT sandbox /faults: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		r.t.Fatalf("PUT sandbox /faults: %d", resp.StatusCode)
	}
}

var chaosNormal = sandbox.Faults{Latency: chaosBaseLatency}

// (a) kill -9 before the attempt commit: the test locks payment rows that
// are about to be worked on; a worker's claim transaction then waits on the
// lock, and the worker dies in it. Which worker waits is read from
// pg_stat_activity (client_port) and the worker's own sockets (/proc).
func chaosKillBeforeCommit(r *chaosRun) {
	c := r.c
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := c.db.Conn(ctx)
	if err != nil {
		r.t.Fatalf("conn: %v", err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		r.t.Fatalf("begin: %v", err)
	}
	defer tx.Rollback()
	locked := map[string]bool{}
	var victim *faultProc
	blocked := 0
	for end := time.Now().Add(15 * time.Second); victim == nil && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		rows, err := tx.QueryContext(ctx, `SELECT id FROM payments WHERE status = 'PENDING' AND attempt_count = 0
			AND next_step IS NOT NULL ORDER BY created_at DESC LIMIT 20 FOR UPDATE SKIP LOCKED`)
		if err != nil {
			r.t.Fatalf("lock pending payments: %v", err)
		}
		for rows.Next() {
			var id string
			_ = rows.Scan(&id)
			locked[id] = true
		}
		rows.Close()
		waiting := map[int]bool{}
		rows, err = c.db.QueryContext(ctx, `SELECT client_port FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND client_port IS NOT NULL`)
		if err != nil {
			r.t.Fatalf("pg_stat_activity: %v", err)
		}
		for rows.Next() {
			var p int
			_ = rows.Scan(&p)
			waiting[p] = true
		}
		rows.Close()
		for _, w := range r.aliveWorkers() {
			ports, err := faultLocalPorts(w.cmd.Process.Pid)
			if err != nil {
				continue
			}
			n := 0
			for p := range ports {
				if waiting[p] {
					n++
				}
			}
			if n > 0 {
				victim, blocked = w, n
				break
			}
		}
	}
	if victim == nil {
		r.note("kill_worker_before_commit", "no worker waited on the %d locked payments in 15 s: not injected", len(locked))
		r.t.Errorf("kill_worker_before_commit: no worker transaction waited on a locked payment row")
		return
	}
	victim.kill9(r.t)
	time.Sleep(200 * time.Millisecond)
	_ = tx.Rollback()
	ids := make([]string, 0, len(locked))
	for id := range locked {
		ids = append(ids, id)
	}
	r.mu.Lock()
	r.windows.lockedBlocked += blocked
	r.windows.lockedIDs = append(r.windows.lockedIDs, ids...)
	r.mu.Unlock()
	r.note("kill_worker_before_commit", "kill -9 %s with %d of its transactions waiting on %d locked payment rows (before the attempt commit)",
		victim.name, blocked, len(ids))
	r.replaceWorker()
}

// startedAttempts returns the keys of attempts whose outcome is not recorded.
func (r *chaosRun) startedAttempts() []string {
	// not the cards whose answers the sandbox loses or refuses on its own
	// (their attempts sit STARTED without a kill), nor 3-D Secure ones
	// (their challenge books the charge later)
	rows, err := r.c.db.Query(`SELECT a.idempotency_key FROM payment_attempts a JOIN payments p ON p.id = a.payment_id
		WHERE a.status = 'STARTED' AND p.payment_method_id NOT IN ($1, $2, $3, $4)`,
		sandbox.CardFlaky, sandbox.CardTimeoutAfterCharge, sandbox.CardUnknown, sandbox.Card3DS)
	if err != nil {
		r.t.Fatalf("started attempts: %v", err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		_ = rows.Scan(&k)
		keys = append(keys, k)
	}
	return keys
}

func (r *chaosRun) ledgerKeys() map[string]bool {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ledger, err := sandbox.NewClient(r.c.sandboxURL, nil).(*sandbox.Client).Ledger(ctx)
	if err != nil {
		r.t.Fatalf("ledger: %v", err)
	}
	keys := map[string]bool{}
	for _, ch := range ledger {
		keys[ch.Key] = true
	}
	return keys
}

// killInWindow slows the sandbox with f, waits until attempts sit in the
// window (charged or not, as want says), kills a worker and restores the
// sandbox. It returns the keys in the window at the kill.
func (r *chaosRun) killInWindow(name string, f sandbox.Faults, charged bool) []string {
	r.setFaults(f)
	defer r.setFaults(chaosNormal)
	set := time.Now()
	var keys []string
	for end := set.Add(15 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if time.Since(set) < chaosWindowDelay/2 {
			continue
		}
		started, ledger := r.startedAttempts(), r.ledgerKeys()
		keys = keys[:0]
		for _, k := range started {
			if ledger[k] == charged {
				keys = append(keys, k)
			}
		}
		if len(keys) >= 4 {
			break
		}
	}
	ws := r.aliveWorkers()
	victim := ws[0]
	victim.kill9(r.t)
	r.note(name, "kill -9 %s with %d attempts STARTED and %s (all workers)", victim.name, len(keys),
		map[bool]string{false: "not yet charged: the sandbox sleeps before charging", true: "already charged: the sandbox holds the answer back"}[charged])
	go r.replaceWorker()
	return keys
}

// (b) kill -9 during the gateway call, before anything is charged.
func chaosKillInGatewayCall(r *chaosRun) {
	keys := r.killInWindow("kill_worker_in_gateway_call", sandbox.Faults{Latency: chaosWindowDelay}, false)
	r.mu.Lock()
	r.windows.inGateway = append(r.windows.inGateway, keys...)
	r.mu.Unlock()
}

// (c) kill -9 after the gateway charged, before the result is recorded.
func chaosKillAfterCharge(r *chaosRun) {
	keys := r.killInWindow("kill_worker_after_charge", sandbox.Faults{Latency: chaosBaseLatency, ResponseDelay: chaosWindowDelay}, true)
	r.mu.Lock()
	r.windows.afterCharge = append(r.windows.afterCharge, keys...)
	r.mu.Unlock()
}

func chaosKillIntake(r *chaosRun) {
	sent := r.l.requests.Load()
	r.c.intake.kill9(r.t)
	time.Sleep(time.Second)
	r.c.mu.Lock()
	r.c.intake = nil
	r.c.mu.Unlock()
	p := r.c.start(fmt.Sprintf("intake-%d", time.Now().UnixMilli()), "intake")
	r.c.mu.Lock()
	r.c.intake = p
	r.c.mu.Unlock()
	r.c.waitReady()
	r.note("kill_intake", "kill -9 intake after %d requests; restarted 1 s later", sent)
}

func chaosRedisFlushAll(r *chaosRun) {
	r.redisMu.Lock()
	defer r.redisMu.Unlock()
	for i := range 2 {
		if err := r.c.rdb.FlushAll(context.Background()).Err(); err != nil {
			r.t.Fatalf("FLUSHALL: %v", err)
		}
		if i == 0 {
			time.Sleep(1500 * time.Millisecond)
		}
	}
	r.note("redis_flushall", "FLUSHALL twice, 1.5 s apart")
}

func chaosRedisRestart(r *chaosRun) {
	r.redisMu.Lock()
	defer r.redisMu.Unlock()
	r.c.redisSrv.restart()
	r.note("redis_restart", "redis-server kill -9, started again empty on port %d", r.c.redisSrv.port)
}

func chaosRedisStop(r *chaosRun) {
	r.redisMu.Lock()
	defer r.redisMu.Unlock()
	r.c.redisSrv.signal(syscall.SIGSTOP)
	time.Sleep(chaosRedisStopFor)
	r.c.redisSrv.signal(syscall.SIGCONT)
	r.note("redis_sigstop", "redis-server SIGSTOP for %s, then SIGCONT", chaosRedisStopFor)
}

func chaosPGRestart(r *chaosRun) {
	start := time.Now()
	r.c.pg.restartImmediate()
	r.note("pg_restart", "pg_ctl restart -m immediate; accepting connections again after %s", time.Since(start).Round(time.Millisecond))
}

func chaosGateway5xx(r *chaosRun) {
	r.setFaults(sandbox.Faults{Latency: chaosBaseLatency, FaultRate: 0.3})
	time.Sleep(5 * time.Second)
	r.setFaults(chaosNormal)
	r.note("gateway_5xx", "30%% of gateway calls answered 503 for 5 s")
}

func chaosGatewaySlow(r *chaosRun) {
	r.setFaults(sandbox.Faults{Latency: chaosBaseLatency, SlowRate: 0.05, SlowLatency: 3 * time.Second})
	time.Sleep(8 * time.Second)
	r.setFaults(chaosNormal)
	r.note("gateway_slow", "5%% of gateway calls 3 s slower (p99 ≈ 3 s) for 8 s")
}

func chaosGatewayDown(r *chaosRun) {
	d := chaosDownFor(r.t)
	r.c.proxy.down()
	time.Sleep(d)
	r.c.proxy.up()
	r.note("gateway_down", "gateway unreachable (connection refused, live connections reset) for %s", d)
}

// ---------------------------------------------------------------- checks

// faultCounter forwards the checker's findings to the test and counts them.
type faultCounter struct {
	t *testing.T
	n atomic.Int64
}

func (f *faultCounter) Helper()                      {}
func (f *faultCounter) Logf(format string, a ...any) { f.t.Logf(format, a...) }
func (f *faultCounter) Fatalf(format string, a ...any) {
	f.t.Helper()
	f.t.Fatalf(format, a...)
}
func (f *faultCounter) Errorf(format string, a ...any) {
	f.t.Helper()
	f.n.Add(1)
	f.t.Errorf(format, a...)
}

// addViolations counts the items of one reported finding beyond the first.
func (f *faultCounter) addViolations(n int) { f.n.Add(int64(n)) }

// checkRefunds: every refund a client was told about exists, the replay of
// each is identical, and no refund exists that no client asked for.
func (r *chaosRun) checkRefunds() int {
	c := r.c
	t := c.chk
	r.mu.Lock()
	recs := append([]*faultClientRecord(nil), r.refunds...)
	r.mu.Unlock()
	told := map[string]bool{}
	var bad []string
	for _, rec := range recs {
		switch {
		case rec.id != "":
			told[rec.id] = true
		case rec.rejected:
			bad = append(bad, fmt.Sprintf("refund %s of %s refused: %s", rec.key, rec.pm, rec.lastErr))
		default:
			bad = append(bad, fmt.Sprintf("refund %s of %s never got a 2xx: %s", rec.key, rec.pm, rec.lastErr))
		}
	}
	reportViolations(t, "refund request not accepted", bad)
	// refunds run on their own tasks: wait for them like for payments
	start := time.Now()
	for {
		var pending int
		if err := c.db.QueryRow(`SELECT count(*) FROM refunds WHERE status = 'PENDING'`).Scan(&pending); err != nil {
			t.Fatalf("count pending refunds: %v", err)
		}
		if pending == 0 || time.Since(start) > c.finalBound {
			if pending > 0 {
				t.Errorf("I2: %d refunds still PENDING %s after the payments were final", pending, c.finalBound)
			} else if d := time.Since(start); d > time.Second {
				t.Logf("refunds final %s after the payments", d.Round(100*time.Millisecond))
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	rows, err := c.db.Query(`SELECT r.id, r.payment_id, r.amount, r.status, r.reason,
		COALESCE((SELECT k.key FROM idempotency_keys k WHERE k.route = 'POST /v1/payments/{id}/refunds'
			AND k.state = 'done' AND convert_from(k.response_body, 'UTF8')::jsonb->>'id' = r.id LIMIT 1), '')
		FROM refunds r`)
	if err != nil {
		t.Fatalf("load refunds: %v", err)
	}
	var orphan, pending []string
	rows2, late := 0, 0
	for rows.Next() {
		var id, pid, status, reason, key string
		var amount int64
		if err := rows.Scan(&id, &pid, &amount, &status, &reason, &key); err != nil {
			t.Fatalf("scan refund: %v", err)
		}
		rows2++
		if reason == payment.RefundReasonChargeAfterCancel {
			// payd's own: the refund of a late charge (accounted by I8)
			late++
		} else if !told[id] && key == "" {
			orphan = append(orphan, fmt.Sprintf("refund %s of %s (%d, %s): no client was told of it and no idempotency record names it", id, pid, amount, status))
		}
		if status == "PENDING" {
			pending = append(pending, fmt.Sprintf("refund %s of %s still PENDING", id, pid))
		}
		delete(told, id)
	}
	rows.Close()
	var lost []string
	for id := range told {
		lost = append(lost, "refund "+id+" was accepted and does not exist")
	}
	reportViolations(t, "I2: refund no client asked for", orphan)
	reportViolations(t, "I2: refund not final", pending)
	reportViolations(t, "I2: accepted refund missing", lost)
	replayed := c.checkReplays(&faultLoad{recs: recs})
	t.Logf("refunds: %d requested, %d rows (%d of them late charges'), %d replays identical", len(recs), rows2, late, replayed)
	return rows2
}

// chaosMoney is what checkMoney counted.
type chaosMoney struct {
	refundedPayments, lines                           int
	invoices, invoicesJPY, invoicesBHD, invoicesLarge int
	refunded                                          map[string]int64 // by currency, minor units
}

// refundedString is m.refunded in major units, by currency.
func (m chaosMoney) refundedString() string {
	var out []string
	for _, cur := range []string{"USD", "JPY", "BHD"} {
		if n, ok := m.refunded[cur]; ok {
			out = append(out, payment.FormatMajor(n, cur)+" "+cur)
		}
	}
	return strings.Join(out, ", ")
}

// checkMoney checks I3: a payment's lines never exceed its amount; refunds
// never exceed what was captured, add up to refunded_amount, agree with the
// status and with the sandbox ledger; invoices are never over-applied and
// their balances are exactly the sums of their lines.
func checkMoney(t faultT, db faultQuerier, ledger []sandbox.Charge) chaosMoney {
	t.Helper()
	var m chaosMoney
	q := func(what, sql string, args ...any) []string {
		rows, err := db.Query(sql, args...)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			out = append(out, s)
		}
		return out
	}
	reportViolations(t, "I3: lines exceed the payment", q("lines", `
		SELECT p.id || ' amount ' || p.amount || ' lines ' || sum(a.payment_amount)
		FROM payments p JOIN payment_applications a ON a.payment_id = p.id
		GROUP BY p.id, p.amount HAVING sum(a.payment_amount) > p.amount`))
	// a canceled or failed payment holds no refund but that of a late
	// charge (charge_after_cancel: the whole amount, given back); no other
	// payment holds one of those
	reportViolations(t, "I3: refunds exceed or disagree with the payment", q("refunds", `
		SELECT p.id || ' ' || p.status || ' ' || p.currency || ' amount ' || p.amount || ' refunded ' || p.refunded_amount ||
			' pending ' || p.refund_pending_amount || ' succeeded refunds ' || COALESCE(r.ok, 0) ||
			' of late charges ' || COALESCE(r.late, 0)
		FROM payments p LEFT JOIN (SELECT payment_id, sum(amount) FILTER (WHERE status = 'SUCCEEDED') AS ok,
				sum(amount) FILTER (WHERE status = 'SUCCEEDED' AND reason = $1) AS late
			FROM refunds GROUP BY payment_id) r ON r.payment_id = p.id
		WHERE p.refunded_amount + p.refund_pending_amount > p.amount OR p.refunded_amount <> COALESCE(r.ok, 0)
			OR p.refund_pending_amount <> 0
			OR (p.status = 'REFUNDED' AND p.refunded_amount <> p.amount)
			OR (p.status = 'PARTIALLY_REFUNDED' AND NOT (p.refunded_amount > 0 AND p.refunded_amount < p.amount))
			OR (p.status IN ('SUCCEEDED','PENDING','PROCESSING','SENT','REQUIRES_ACTION','REQUIRES_REVIEW') AND p.refunded_amount <> 0)
			OR (p.status IN ('FAILED','CANCELED') AND (p.refunded_amount NOT IN (0, p.amount) OR p.refunded_amount <> COALESCE(r.late, 0)))
			OR (p.status NOT IN ('FAILED','CANCELED') AND COALESCE(r.late, 0) <> 0)`, payment.RefundReasonChargeAfterCancel))
	// invoices in every currency (JPY, USD, BHD), large amounts included:
	// minor units throughout, sums in numeric
	reportViolations(t, "I3: invoice over-applied", q("over-applied", `
		SELECT i.id || ' ' || i.currency || ' due ' || i.amount_due || ' reserved ' || i.amount_reserved || ' paid ' || i.amount_paid ||
			' lines ' || COALESCE(a.reserved, 0)
		FROM invoices i LEFT JOIN (SELECT invoice_id, sum(applied_amount - released_amount) AS reserved
			FROM payment_applications GROUP BY invoice_id) a ON a.invoice_id = i.id
		WHERE COALESCE(a.reserved, 0) > i.amount_due OR i.amount_reserved > i.amount_due OR i.amount_paid > i.amount_due`))
	reportViolations(t, "I3: invoice balances differ from its lines", q("invoices", `
		SELECT i.id || ' ' || i.currency || ' due ' || i.amount_due || ' reserved ' || i.amount_reserved || ' paid ' || i.amount_paid ||
			' lines reserved ' || COALESCE(a.reserved, 0) || ' lines applied ' || COALESCE(a.applied, 0)
		FROM invoices i LEFT JOIN (SELECT invoice_id,
				sum(applied_amount - released_amount) AS reserved,
				sum(applied_amount - released_amount) FILTER (WHERE state = 'applied') AS applied
			FROM payment_applications GROUP BY invoice_id) a ON a.invoice_id = i.id
		WHERE NOT (0 <= i.amount_paid AND i.amount_paid <= i.amount_reserved AND i.amount_reserved <= i.amount_due)
			OR i.amount_reserved <> COALESCE(a.reserved, 0) OR i.amount_paid <> COALESCE(a.applied, 0)`))
	reportViolations(t, "I3: lines of a payment that failed still hold the invoice", q("released", `
		SELECT p.id || ' ' || p.status || ' line ' || a.id || ' ' || a.state || ' applied ' || a.applied_amount || ' released ' || a.released_amount
		FROM payments p JOIN payment_applications a ON a.payment_id = p.id
		WHERE (p.status IN ('FAILED','CANCELED','RETURNED','REFUNDED') AND a.released_amount <> a.applied_amount)
			OR (p.status = 'SUCCEEDED' AND (a.state <> 'applied' OR a.released_amount <> 0))`))
	_ = db.QueryRow(`SELECT count(*) FILTER (WHERE refunded_amount > 0) FROM payments`).Scan(&m.refundedPayments)
	m.refunded = map[string]int64{}
	rows, err := db.Query(`SELECT currency, sum(refunded_amount)::int8 FROM payments WHERE refunded_amount > 0 GROUP BY currency`)
	if err != nil {
		t.Fatalf("refunded: %v", err)
	}
	for rows.Next() {
		var cur string
		var n int64
		if err := rows.Scan(&cur, &n); err != nil {
			t.Fatalf("refunded: %v", err)
		}
		m.refunded[cur] = n
	}
	rows.Close()
	_ = db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE currency = 'JPY'), count(*) FILTER (WHERE currency = 'BHD'),
		count(*) FILTER (WHERE amount_due >= 10000000000) FROM invoices`).Scan(&m.invoices, &m.invoicesJPY, &m.invoicesBHD, &m.invoicesLarge)
	_ = db.QueryRow(`SELECT count(*) FROM payment_applications`).Scan(&m.lines)

	// the gateway's side of refunds
	refunded := map[string]int64{}
	rows, err = db.Query(`SELECT id, refunded_amount FROM payments WHERE refunded_amount > 0 OR method NOT IN ('OFFLINE','CREDITS')`)
	if err != nil {
		t.Fatalf("load refunded: %v", err)
	}
	for rows.Next() {
		var id string
		var n int64
		_ = rows.Scan(&id, &n)
		refunded[id] = n
	}
	rows.Close()
	// per payment: what the gateway gave back of all its charges (a late
	// charge is one; a second charge, I1's, another)
	atGateway := map[string]int64{}
	for _, ch := range ledger {
		atGateway[ch.PaymentID] += ch.Refunded
	}
	var bad []string
	for pid, n := range atGateway {
		if want, ok := refunded[pid]; ok && n != want {
			bad = append(bad, fmt.Sprintf("%s: the gateway refunded %d, payd recorded %d", pid, n, want))
		}
	}
	reportViolations(t, "I3: refunds at the gateway differ from payd's", bad)
	return m
}

// checkWindows tells which window each worker kill hit, from the database
// and the ledger after the run: an attempt the dead worker held is resolved
// by the inquiry (inquiry_count ≥ 1) instead of by its worker.
func (r *chaosRun) checkWindows(faults []chaosFault) map[string]string {
	c := r.c
	hits := map[string]string{}
	ledger := r.ledgerKeys()
	type att struct {
		status    string
		inquiries int
		pid       string
		n         int
		attempts  int
	}
	load := func(keys []string) map[string]att {
		out := map[string]att{}
		for _, k := range keys {
			var a att
			err := c.db.QueryRow(`SELECT a.status, a.inquiry_count, a.payment_id, a.attempt_number, p.attempt_count
				FROM payment_attempts a JOIN payments p ON p.id = a.payment_id WHERE a.idempotency_key = $1`, k).
				Scan(&a.status, &a.inquiries, &a.pid, &a.n, &a.attempts)
			if err == nil {
				out[k] = a
			}
		}
		return out
	}
	want := map[string]bool{}
	for _, f := range faults {
		want[f.name] = true
	}
	r.mu.Lock()
	w := r.windows
	r.mu.Unlock()
	if want["kill_worker_before_commit"] {
		// the locked payments' first attempts: none was lost or doubled by the kill
		retried := 0
		for _, id := range w.lockedIDs {
			var n int
			_ = c.db.QueryRow(`SELECT count(*) FROM payment_attempts WHERE payment_id = $1 AND attempt_number > 1`, id).Scan(&n)
			if n > 0 {
				retried++
			}
		}
		hits["a"] = fmt.Sprintf("%d victim txns blocked pre-commit on %d locked payments (%d of them later retried)", w.lockedBlocked, len(w.lockedIDs), retried)
		if w.lockedBlocked == 0 {
			c.chk.Errorf("window (a): the kill hit no transaction before its attempt commit")
		}
	}
	if want["kill_worker_in_gateway_call"] {
		hit := 0
		for k, a := range load(w.inGateway) {
			if a.inquiries >= 1 && !ledger[k] && a.status != "SUCCEEDED" {
				hit++ // the dead worker's call: never charged, fenced by the inquiry
			}
		}
		hits["b"] = fmt.Sprintf("%d of %d uncharged STARTED attempts were the victim's: inquiry found nothing and fenced the key", hit, len(w.inGateway))
		if hit == 0 {
			c.chk.Errorf("window (b): no attempt of the killed worker was in its gateway call (%d candidates)", len(w.inGateway))
		}
	}
	if want["kill_worker_after_charge"] {
		hit, review := 0, 0
		for k, a := range load(w.afterCharge) {
			switch {
			case a.inquiries >= 1 && ledger[k] && a.status == "SUCCEEDED":
				hit++ // charged, its worker dead: the inquiry found the charge
			case a.inquiries >= 1 && ledger[k] && a.status == "UNKNOWN":
				// charged, its worker dead, and every inquiry met a gateway
				// fault (a long outage): left for review, never charged again
				hit++
				review++
			}
		}
		hits["c"] = fmt.Sprintf("%d of %d charged STARTED attempts were the victim's: inquiry found the charge (%d: the gateway answered no inquiry, left for review)",
			hit, len(w.afterCharge), review)
		if hit == 0 {
			c.chk.Errorf("window (c): no attempt of the killed worker was charged and unrecorded (%d candidates)", len(w.afterCharge))
		}
	}
	return hits
}

// table logs the run's figures as a markdown table row (docs/RELIABILITY.md).
func (r *chaosRun) table(name string, s faultSummary, m chaosMoney, refunds int, hits map[string]string, violations int64,
	lastFault time.Time, took time.Duration, extra []string) {
	r.mu.Lock()
	var names []string
	for _, e := range r.events {
		names = append(names, e.name)
	}
	r.mu.Unlock()
	// Time to terminal after the last fault: for the payments accepted
	// before it healed, from then to their last transition that is not a
	// refund (refunds are asked for by clients later), a note (from = to) or
	// the resolution of a review (REQUIRES_REVIEW is final). Payments accepted
	// after it are measured from their own acceptance. Where the database
	// keeps commit timestamps, a transition's time is when it committed and
	// a payment's acceptance when its first audit row (written with the
	// payment) committed: a process whose clock was jumped stamped its rows
	// with that clock, and the figure must not be off by an hour.
	toFinal, after := "— (not all final)", "—"
	if s.final == s.payments {
		var before, since sql.NullFloat64
		q := `SELECT
				EXTRACT(EPOCH FROM max(e.created_at) FILTER (WHERE p.created_at <= $1) - $1::timestamptz),
				EXTRACT(EPOCH FROM max(e.created_at - p.created_at) FILTER (WHERE p.created_at > $1))
			FROM payment_events e JOIN payments p ON p.id = e.payment_id
			WHERE e.to_status NOT IN ('PARTIALLY_REFUNDED', 'REFUNDED') AND e.from_status IS DISTINCT FROM e.to_status
				AND e.from_status IS DISTINCT FROM 'REQUIRES_REVIEW'`
		if r.c.commitTS {
			q = `WITH ev AS (SELECT payment_id, from_status, to_status,
					COALESCE(pg_xact_commit_timestamp(xmin), created_at) AS at FROM payment_events),
				acc AS (SELECT payment_id, min(at) FILTER (WHERE from_status IS NULL) AS at FROM ev GROUP BY payment_id)
			SELECT
				EXTRACT(EPOCH FROM max(ev.at) FILTER (WHERE acc.at <= $1) - $1::timestamptz),
				EXTRACT(EPOCH FROM max(ev.at - acc.at) FILTER (WHERE acc.at > $1))
			FROM ev JOIN acc USING (payment_id)
			WHERE ev.to_status NOT IN ('PARTIALLY_REFUNDED', 'REFUNDED') AND ev.from_status IS DISTINCT FROM ev.to_status
				AND ev.from_status IS DISTINCT FROM 'REQUIRES_REVIEW'`
		}
		err := r.c.db.QueryRow(q, lastFault).Scan(&before, &since)
		if err != nil {
			r.t.Errorf("time to terminal: %v", err)
		}
		secs := func(f sql.NullFloat64) string {
			if !f.Valid {
				return "—"
			}
			return max(0, time.Duration(f.Float64*float64(time.Second))).Round(100 * time.Millisecond).String()
		}
		toFinal, after = secs(before), secs(since)
	}
	var hk []string
	for k := range hits {
		hk = append(hk, k)
	}
	sort.Strings(hk)
	var windows []string
	for _, k := range hk {
		windows = append(windows, "("+k+") "+hits[k])
	}
	var kinds []string
	byKind := map[string]int{}
	for _, rec := range r.l.recs {
		byKind[rec.kind+" "+rec.currency]++
	}
	for k, n := range byKind {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	var sources []string
	for src, n := range r.c.lateChargeSources() {
		sources = append(sources, fmt.Sprintf("found by %s %d", src, n))
	}
	sort.Strings(sources)
	r.t.Logf("\n| run | seed | faults injected | payments accepted | terminal | stuck | lost | double-charged | unaccounted charges | in review | late charges refunded | invariant violations | max time-to-terminal after last fault | duration |\n"+
		"| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"+
		"| %s | %d | %d: %s | %d | %d | %d | %d | %d | %d | %d (%d at quiescence, before reconciliation) | %d (%s) | %d | %s | %s (load %s) |\n"+
		"also: accepted after the last fault, max accept-to-terminal %s; degraded by gateway faults %d (FAILED after retries / REQUIRES_REVIEW), unacknowledged-but-committed %d, "+
		"lost answers resolved by inquiry %d/%d, refunds %d (%d payments refunded, %s), invoices %d (JPY %d, BHD %d, due ≥ 1e10 minor units %d) with %d lines; "+
		"I8 at quiescence: %s (pm_card_unknown payments then: %v); reconciliation: %s; I8 after: %s; "+
		"statuses %v; mix: %s; windows: %s%s",
		name, r.seed, len(names), strings.Join(names, ", "), s.accepted, s.final, s.stuck, s.lost, s.doubleCharged,
		len(s.i8.unaccounted), s.review, s.reviewBefore, s.lateCharges, strings.Join(sources, ", "), violations, toFinal,
		took.Round(time.Second), r.l.end.Sub(r.l.start).Round(time.Second),
		after, s.degraded, s.unacknowledged, s.timeoutsByInquiry, s.timeouts, refunds, m.refundedPayments,
		m.refundedString(), m.invoices, m.invoicesJPY, m.invoicesBHD, m.invoicesLarge, m.lines,
		s.i8Before, s.unknownBefore, s.reconcile, s.i8,
		s.statuses, strings.Join(kinds, ", "), strings.Join(windows, "; "),
		strings.Join(append([]string{""}, extra...), "; "))
}

// ---------------------------------------------------------------- config

func chaosSeed(t *testing.T) int64 {
	if v := os.Getenv("PAYD_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("PAYD_CHAOS_SEED=%q: %v", v, err)
		}
		return n
	}
	return time.Now().UnixNano() % 1_000_000_007
}

func chaosEnvInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// chaosDownFor is how long gateway_down lasts: 12 s by default, a full
// minute (or any duration) with PAYD_CHAOS_GATEWAY_DOWN.
func chaosDownFor(t testing.TB) time.Duration {
	if v := os.Getenv("PAYD_CHAOS_GATEWAY_DOWN"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("PAYD_CHAOS_GATEWAY_DOWN=%q: want a duration", v)
		}
		return d
	}
	return 12 * time.Second
}
