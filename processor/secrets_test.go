package processor_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payd/payd/internal/testenv"
)

// lockedBuffer collects every log line the harness writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSecretsCanary (I7): API key secrets appear in no log line, no table
// row, no Redis key or value and no response. Both tenants' keys are
// planted, used for every kind of request (including failing ones), and
// then searched for everywhere payd writes.
func TestSecretsCanary(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	h := testenv.Start(t, testenv.Options{Log: logs})
	secrets := []string{h.KeyA, h.KeyB}
	var responses bytes.Buffer
	keep := func(r testenv.Response) { responses.Write(r.Body); responses.WriteString(r.Header.Get("X-Request-Id")) }
	ids := []string{h.CreatePayment("CARD", "pm_card_visa", "5"), h.CreatePayment("CARD", "pm_card_declined", "5"),
		h.CreatePayment("CARD", "pm_card_timeout_after_charge", "5"), h.CreatePayment("ACH", "ba_10001", "5")}
	for _, id := range ids {
		h.WaitFinal(id, 20*time.Second)
		keep(h.Do("GET", "/v1/payments/"+id, h.KeyA, nil, nil))
		keep(h.Do("GET", "/v1/payments/"+id+"/timeline", h.KeyA, nil, nil))
		keep(h.Do("GET", "/v1/payments/"+id, h.KeyB, nil, nil)) // another tenant: 404
	}
	keep(h.Do("POST", "/v1/payments/"+ids[0]+"/refunds", h.KeyA, []byte(`{"amount":"1"}`), map[string]string{"Idempotency-Key": "canary-r"}))
	keep(h.Do("POST", "/v1/payments", h.KeyA, []byte(`{"amount":`), nil))                                     // malformed
	keep(h.Do("POST", "/v1/payments", h.KeyA+"x", []byte(`{}`), nil))                                         // a wrong key, close to a real one
	keep(h.Do("GET", "/v1/payments", "", nil, map[string]string{"Authorization": "Bearer " + h.KeyB + "zz"})) // likewise
	keep(h.Do("GET", "/v1/payments?limit=100", h.KeyA, nil, nil))

	ctx := context.Background()
	// every row of every table, as text
	var tables []string
	rows, err := h.Store.DB().QueryContext(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	if len(tables) < 8 {
		t.Fatalf("found only %d tables", len(tables))
	}
	var db strings.Builder
	for _, tb := range tables {
		rs, err := h.Store.DB().QueryContext(ctx, `SELECT row_to_json(t)::text FROM "`+tb+`" t`)
		if err != nil {
			t.Fatal(err)
		}
		for rs.Next() {
			var s string
			if err := rs.Scan(&s); err != nil {
				t.Fatal(err)
			}
			db.WriteString(s)
		}
		rs.Close()
	}
	// every Redis key and value of our DB
	var red strings.Builder
	keys, err := h.Redis.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		red.WriteString(k)
		if v, err := h.Redis.Dump(ctx, k).Result(); err == nil {
			red.WriteString(v)
		}
	}
	if len(keys) == 0 || db.Len() == 0 || logs.String() == "" || responses.Len() == 0 {
		t.Fatalf("nothing to search: %d keys, %d bytes of rows, %d of logs, %d of responses", len(keys), db.Len(), len(logs.String()), responses.Len())
	}
	for _, sec := range secrets {
		for where, text := range map[string]string{"logs": logs.String(), "tables": db.String(), "redis": red.String(), "responses": responses.String()} {
			// the secret, and any 12-character run of it, must not appear
			for i := 0; i+12 <= len(sec); i += 6 {
				if strings.Contains(text, sec[i:i+12]) {
					t.Errorf("a piece of an API key secret (%q…) appears in %s", sec[i:i+4], where)
				}
			}
		}
	}
}
