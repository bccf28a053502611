package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/store"
)

// TestSlowClients: the real intake server (newHTTPServer's limits, env
// defaults) under a slow-loris attack from loopback — 300 connections that
// send their headers one byte at a time, 40 that connect and send nothing,
// and 80 that declare a Content-Length and trickle the body — while normal
// clients post payments and read. Every slow connection is cut by the
// server's timeouts within their bound (plus slack for a loaded 2-core
// machine), an oversized header is 431, and every normal request succeeds
// with p99 ≤ 1 s.
func TestSlowClients(t *testing.T) {
	t.Parallel()
	const (
		slowHeaders = 300
		silent      = 40
		slowBodies  = 80
		trickle     = 250 * time.Millisecond // one byte per connection per tick
		slack       = 4 * time.Second        // scheduling on a loaded 2-core machine
		p99Bound    = time.Second
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	owner, app := testenv.PostgresURLs(t)
	env := map[string]string{"DATABASE_URL": app, "PAYD_MIGRATE_DATABASE_URL": owner, "PAYD_APP_DB_ROLE": testenv.AppRole,
		"REDIS_URL": testenv.RedisURL(t), "PAYD_DB_MAX_CONNS": "16"}
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = ln.Addr().String()
	cfg.AdminAddr = "127.0.0.1:0" // every role serves its probes on the admin port
	d, err := build(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	d.intakeLn = ln
	ten, err := d.store.CreateTenant(ctx, "slow")
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := d.store.CreateAPIKey(ctx, ten.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.store.CreateInvoice(ctx, store.NewInvoice{TenantID: ten.ID, ExternalID: "inv_slow", Currency: "USD",
		AmountDue: 1_000_000_000_00}); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	sctx, stop := context.WithCancel(ctx)
	go func() { served <- d.serve(sctx, roleIntake) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	addr := cfg.Addr
	base := "http://" + addr
	waitHealthy(t, base)

	// An oversized header is refused at once.
	if code := hugeHeader(t, addr); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 100 KiB header: status %d, want 431", code)
	}

	// The attackers. Each records how long the server kept its connection.
	type cut struct {
		kind string
		held time.Duration
		resp string // the status line the server sent, if any
	}
	cuts := make(chan cut, slowHeaders+silent+slowBodies)
	attack := func(kind, preamble string, body bool) {
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			cuts <- cut{kind: kind, held: -1, resp: "dial: " + err.Error()}
			return
		}
		defer conn.Close()
		start := time.Now()
		closed := make(chan string, 1)
		go func() { // the server's side: any response, then EOF or reset
			line, _ := bufio.NewReader(conn).ReadString('\n')
			_, _ = io.Copy(io.Discard, conn)
			closed <- strings.TrimSpace(line)
		}()
		if _, err := io.WriteString(conn, preamble); err != nil {
			cuts <- cut{kind: kind, held: time.Since(start), resp: "write: " + err.Error()}
			return
		}
		tick := time.NewTicker(trickle)
		defer tick.Stop()
		b := []byte("a")
		if body {
			b = []byte("{")
		}
		for {
			select {
			case line := <-closed:
				cuts <- cut{kind: kind, held: time.Since(start), resp: line}
				return
			case <-tick.C:
				if kind != "silent" {
					_, _ = conn.Write(b) // a write to a closed connection fails; the reader reports it
					b = []byte("a")
				}
			case <-time.After(time.Minute):
				cuts <- cut{kind: kind, held: time.Since(start), resp: "never closed"}
				return
			}
		}
	}
	var attackers sync.WaitGroup
	launch := func(n int, kind, preamble string, body bool) {
		for range n {
			attackers.Add(1)
			go func() { defer attackers.Done(); attack(kind, preamble, body) }()
		}
	}
	launch(slowHeaders, "header", "POST /v1/payments HTTP/1.1\r\nHost: payd\r\nX-Slow: ", false)
	launch(silent, "silent", "", false)
	launch(slowBodies, "body", "POST /v1/payments HTTP/1.1\r\nHost: payd\r\nx-api-key: "+key+
		"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", true)
	attackStart := time.Now()

	// The normal clients, for as long as the attack lasts.
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  []string
		seq       atomic.Int64
		attacking atomic.Bool
	)
	attacking.Store(true)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	var normal sync.WaitGroup
	for w := range 6 {
		normal.Add(1)
		go func() {
			defer normal.Done()
			for i := 0; attacking.Load(); i++ {
				var req *http.Request
				want := http.StatusOK
				switch (w + i) % 3 {
				case 0:
					req, _ = http.NewRequest("GET", base+"/healthz", nil)
				case 1:
					req, _ = http.NewRequest("GET", base+"/v1/payments?limit=5", nil)
				default:
					n := seq.Add(1)
					body := fmt.Sprintf(`{"amount":"1.00","currency":"USD","destination_id":"inv_slow","destination_type":"INVOICE",`+
						`"payment_method_type":"CARD","payment_method_id":"pm_card_visa","idempotency_key":"slow-%d"}`, n)
					req, _ = http.NewRequest("POST", base+"/v1/payments", bytes.NewReader([]byte(body)))
					req.Header.Set("Content-Type", "application/json")
					want = http.StatusCreated
				}
				req.Header.Set("x-api-key", key)
				t0 := time.Now()
				resp, err := client.Do(req)
				el := time.Since(t0)
				msg := ""
				if err != nil {
					msg = err.Error()
				} else {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != want {
						msg = fmt.Sprintf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, b)
					}
				}
				mu.Lock()
				latencies = append(latencies, el)
				if msg != "" {
					failures = append(failures, msg)
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	attackers.Wait()
	attacking.Store(false)
	normal.Wait()
	close(cuts)
	t.Logf("attack over after %s", time.Since(attackStart).Round(time.Millisecond))

	bounds := map[string][2]time.Duration{ // [earliest, latest] cut, measured from connect
		"header": {httpReadHeaderTimeout - time.Second, httpReadHeaderTimeout + slack},
		"silent": {httpReadHeaderTimeout - time.Second, httpReadHeaderTimeout + slack},
		"body":   {httpReadTimeout - time.Second, httpReadTimeout + slack},
	}
	held := map[string][]time.Duration{}
	responses := map[string]map[string]int{}
	for c := range cuts {
		b := bounds[c.kind]
		if c.held < b[0] || c.held > b[1] {
			t.Errorf("%s connection held %s (response %q), want between %s and %s", c.kind, c.held, c.resp, b[0], b[1])
		}
		held[c.kind] = append(held[c.kind], c.held)
		if responses[c.kind] == nil {
			responses[c.kind] = map[string]int{}
		}
		responses[c.kind][c.resp]++
	}
	for kind, hs := range held {
		slices.Sort(hs)
		t.Logf("%-6s %3d connections cut after %s … %s; server answered %v", kind, len(hs),
			hs[0].Round(time.Millisecond), hs[len(hs)-1].Round(time.Millisecond), responses[kind])
	}
	if n := len(held["header"]) + len(held["silent"]) + len(held["body"]); n != slowHeaders+silent+slowBodies {
		t.Errorf("%d slow connections reported, want %d", n, slowHeaders+silent+slowBodies)
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d normal requests failed, first: %s", len(failures), len(latencies), failures[0])
	}
	if len(latencies) < 100 {
		t.Fatalf("only %d normal requests completed during the attack", len(latencies))
	}
	slices.Sort(latencies)
	p50, p99, maxL := latencies[len(latencies)/2], latencies[len(latencies)*99/100], latencies[len(latencies)-1]
	t.Logf("normal clients: %d requests, p50 %s, p99 %s, max %s", len(latencies), p50.Round(time.Microsecond),
		p99.Round(time.Microsecond), maxL.Round(time.Microsecond))
	if p99 > p99Bound {
		t.Errorf("normal clients' p99 %s during the attack, want ≤ %s", p99, p99Bound)
	}
}

func waitHealthy(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("intake not healthy: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hugeHeader sends one request with a 100 KiB header and returns the status.
func hugeHeader(t *testing.T, addr string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		_, _ = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: payd\r\nX-Big: "+strings.Repeat("a", 100<<10)+"\r\n\r\n")
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("huge header: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
