package intake_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payd/payd/intake"
	"github.com/payd/payd/internal/testenv"
)

// syncBuffer collects every log line the harness writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSessionDataCanary (I7): session_data values carrying canaries (a
// bank account number, a card nonce) are submitted through both submit
// routes, with Idempotency-Keys, refused and accepted, replayed; then no
// piece of them appears in any log line, any column of any table, any
// Redis key or value, or any response. The session secret appears only in
// its one 201.
func TestSessionDataCanary(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	h := sessionHarness(t, testenv.Options{Log: logs})
	const (
		account = "73915502846621" // ACH account: settles (not a magic value)
		nonce   = "cnryQ7xZ2vWk9"
		badTail = "Zx81canaryTail"
	)
	canaries := []string{account, nonce, badTail, "sandbox:ach:021000021:" + account, "sandbox:pm_card_visa:" + nonce}
	var responses bytes.Buffer
	keep := func(r testenv.Response) testenv.Response {
		responses.Write(r.Body)
		for k, v := range r.Header {
			responses.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
		return r
	}
	var secrets []string
	var sessionIDs []string
	for i, sd := range []string{"sandbox:ach:021000021:" + account, "sandbox:pm_card_visa:" + nonce} {
		r := h.Do("POST", "/v1/payment-sessions", h.KeyA, sessionBody(nil), nil)
		s := jsonObj(t, r, 201) // the one answer that shows the secret: not searched
		id, token, secret := s["id"].(string), s["payment_session_token"].(string), s["payment_session_secret"].(string)
		secrets = append(secrets, secret)
		sessionIDs = append(sessionIDs, id)
		// refused first: a value the sandbox does not accept, then a bad amount
		keep(h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody(sd+badTail+"!", 1250), nil))
		keep(h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody(sd, 1), nil))
		keep(h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, []byte(`{"session_data":`+strings.Repeat(`"`, 1)+sd), nil))
		hdr := map[string]string{"Idempotency-Key": "canary-" + id}
		var r2 testenv.Response
		if i == 0 {
			r2 = keep(h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody(sd, 1250), hdr))
			// a replay, and a concurrent-looking second submit
			keep(h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody(sd, 1250), hdr))
			keep(h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody(sd, 1250), nil))
		} else {
			hdr[intake.SessionSecretHeader] = secret
			b, _ := json.Marshal(map[string]string{"session_data": sd})
			r2 = keep(h.Do("POST", "/pay/"+token+"/submit", "", b, hdr))
			keep(h.Do("POST", "/pay/"+token+"/submit", "", b, hdr))
			keep(h.Do("GET", "/pay/"+token+"/session", "", nil, hdr))
		}
		if r2.Status != 201 && r2.Status != 202 {
			t.Fatalf("submit %d: %s", r2.Status, r2.Body)
		}
		var out map[string]any
		_ = json.Unmarshal(r2.Body, &out)
		h.WaitFinal(out["id"].(string), 20*time.Second)
		keep(h.Do("GET", "/v1/payment-sessions/"+id, h.KeyA, nil, nil))
		keep(h.Do("GET", "/v1/payments/"+out["id"].(string)+"/timeline", h.KeyA, nil, nil))
	}
	// expiry and the sweeper also write what they write
	if _, err := h.Processor.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	db, err := sql.Open("postgres", h.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables []string
	rows, err := db.QueryContext(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
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
	var dump strings.Builder
	for _, tb := range tables {
		// row_to_json renders bytea as hex: search its text form too
		rs, err := db.QueryContext(ctx, `SELECT row_to_json(t)::text FROM "`+tb+`" t`)
		if err != nil {
			t.Fatal(err)
		}
		for rs.Next() {
			var s string
			if err := rs.Scan(&s); err != nil {
				t.Fatal(err)
			}
			dump.WriteString(s)
		}
		rs.Close()
	}
	var hexDump strings.Builder
	for _, tb := range tables {
		rs, err := db.QueryContext(ctx, `SELECT convert_from(decode(replace(m[1], '\\x', ''), 'hex'), 'SQL_ASCII')
			FROM "`+tb+`" t, regexp_matches(row_to_json(t)::text, '"(\\\\x[0-9a-f]*)"', 'g') AS m`)
		if err != nil {
			continue // no bytea columns, or not text-decodable: the JSON form was searched
		}
		for rs.Next() {
			var s sql.NullString
			if rs.Scan(&s) == nil {
				hexDump.WriteString(s.String)
			}
		}
		rs.Close()
	}
	var red strings.Builder
	keys, err := h.Redis.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		red.WriteString(k + "\n")
		switch h.Redis.Type(ctx, k).Val() {
		case "string":
			red.WriteString(h.Redis.Get(ctx, k).Val())
		case "hash":
			for f, v := range h.Redis.HGetAll(ctx, k).Val() {
				red.WriteString(f + "=" + v + "\n")
			}
		case "list":
			red.WriteString(strings.Join(h.Redis.LRange(ctx, k, 0, -1).Val(), "\n"))
		case "set":
			red.WriteString(strings.Join(h.Redis.SMembers(ctx, k).Val(), "\n"))
		case "zset":
			red.WriteString(strings.Join(h.Redis.ZRange(ctx, k, 0, -1).Val(), "\n"))
		}
	}
	if len(keys) == 0 || dump.Len() == 0 || logs.String() == "" || responses.Len() == 0 {
		t.Fatalf("nothing to search: %d keys, %d bytes of rows, %d of logs, %d of responses", len(keys), dump.Len(), len(logs.String()), responses.Len())
	}
	// the search does find what is there: the session ids are in all four
	for where, text := range map[string]string{"tables": dump.String(), "responses": responses.String()} {
		if !strings.Contains(text, sessionIDs[0]) {
			t.Fatalf("%s do not hold session %s: the search is broken", where, sessionIDs[0])
		}
	}
	places := map[string]string{"logs": logs.String(), "tables": dump.String() + hexDump.String(), "redis": red.String(),
		"responses": responses.String()}
	for where, text := range places {
		for _, c := range append(canaries, secrets...) {
			if strings.Contains(text, c) {
				t.Errorf("%q appears in %s", c, where)
			}
		}
	}
}
