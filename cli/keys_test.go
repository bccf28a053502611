package cli_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/payd/payd/cli"
	"github.com/payd/payd/intake"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/store"
)

// secondIntake is another intake process on the harness's database: its
// own store (pool, clock, key watch) and its own key cache.
func secondIntake(t *testing.T, h *testenv.Harness) string {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{URL: h.AppDBURL, MaxOpenConns: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	api := intake.NewServer(intake.Deps{Store: st, Enqueue: h.Enqueuer, Redis: h.Redis, Log: h.Log})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return srv.URL
}

// status is the answer of an authenticated read on an intake server.
func status(t *testing.T, base, key string) int {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/v1/payments?limit=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// refusedWithin polls every server until each refuses key, and returns
// how long the slowest took from start.
func refusedWithin(t *testing.T, start time.Time, key string, servers ...string) time.Duration {
	t.Helper()
	var slowest time.Duration
	for _, s := range servers {
		for status(t, s, key) != http.StatusUnauthorized {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("%s still accepts the key after %s", s, time.Since(start))
			}
			time.Sleep(5 * time.Millisecond)
		}
		slowest = max(slowest, time.Since(start))
	}
	return slowest
}

// TestKeyRevokedWithinASecond: two intake processes share the database,
// both with a warm 30 s key cache; `payd keys revoke` makes both refuse
// the key within a second (measured), leaves the tenant's other keys
// alone, and is audited. A rotation prints the new secret as stdout's last
// line; the old key keeps working through its grace and is refused within
// a second of its end. keys list never shows a secret or hash.
func TestKeyRevokedWithinASecond(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true}) // AuthCacheTTL: the default 30 s
	ctx := context.Background()
	other := secondIntake(t, h)
	servers := []string{h.URL, other}
	keyID, secret, err := h.Store.CreateAPIKey(ctx, h.TenantA)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		for _, k := range []string{secret, h.KeyA} {
			if code := status(t, s, k); code != http.StatusOK { // warms the cache
				t.Fatalf("%s: %d before the revocation", s, code)
			}
		}
	}
	time.Sleep(300 * time.Millisecond) // both key watches are listening by now

	start := time.Now()
	out, code := payd(t, h, "keys", "revoke", keyID, "--operator", "alice", "--reason", "leaked in a log", "--json")
	if code != cli.ExitOK {
		t.Fatalf("keys revoke: exit %d\n%s", code, out)
	}
	took := refusedWithin(t, start, secret, servers...)
	t.Logf("revoked key refused by both intake processes %s after the command started", took)
	if took >= time.Second {
		t.Errorf("revoked key refused after %s, want < 1s", took)
	}
	var rk struct {
		ID        string     `json:"id"`
		Status    string     `json:"status"`
		RevokedAt *time.Time `json:"revoked_at"`
	}
	if err := json.Unmarshal([]byte(out), &rk); err != nil || rk.ID != keyID || rk.Status != "revoked" || rk.RevokedAt == nil {
		t.Errorf("revoke --json: %v %+v\n%s", err, rk, out)
	}
	for _, s := range servers {
		if code := status(t, s, h.KeyA); code != http.StatusOK {
			t.Errorf("%s refuses the tenant's other key: %d", s, code)
		}
	}
	var actor, reason string
	if err := h.Store.DB().QueryRowContext(ctx, `SELECT actor, reason FROM api_key_events WHERE key_id = $1 AND action = 'revoked'`,
		keyID).Scan(&actor, &reason); err != nil || actor != "operator:alice" || reason != "leaked in a log" {
		t.Errorf("audit row: %q %q %v", actor, reason, err)
	}
	if out, code := payd(t, h, "keys", "revoke", keyID, "--operator", "alice"); code != cli.ExitNotFound {
		t.Errorf("second revoke: exit %d\n%s", code, out)
	}

	// rotation with a grace: the old key works until it ends
	oldID, oldSecret, err := h.Store.CreateAPIKey(ctx, h.TenantA)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		if code := status(t, s, oldSecret); code != http.StatusOK {
			t.Fatalf("%s: %d before the rotation", s, code)
		}
	}
	const grace = 2 * time.Second
	out, code = payd(t, h, "keys", "rotate", oldID, "--operator", "bob", "--reason", "yearly", "--grace", grace.String())
	rotated := time.Now()
	if code != cli.ExitOK {
		t.Fatalf("keys rotate: exit %d\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	newSecret := lines[len(lines)-1]
	if !strings.HasPrefix(newSecret, store.KeyPrefix) || newSecret == oldSecret {
		t.Fatalf("rotate's last line %q is not a new secret\n%s", newSecret, out)
	}
	for _, s := range servers {
		if code := status(t, s, newSecret); code != http.StatusOK {
			t.Errorf("%s refuses the new key: %d", s, code)
		}
		if code := status(t, s, oldSecret); code != http.StatusOK && time.Since(rotated) < grace-200*time.Millisecond {
			t.Errorf("%s refuses the old key within its grace: %d", s, code)
		}
	}
	took = refusedWithin(t, rotated, oldSecret, servers...)
	t.Logf("rotated key refused %s after the rotation (grace %s)", took, grace)
	if took < grace-200*time.Millisecond || took >= grace+time.Second {
		t.Errorf("old key refused %s after the rotation, want within a second after its %s grace", took, grace)
	}

	out, code = payd(t, h, "keys", "list", "--tenant", "tenant-a", "--json")
	if code != cli.ExitOK {
		t.Fatalf("keys list: exit %d\n%s", code, out)
	}
	for _, s := range []string{secret, oldSecret, newSecret, h.KeyA} {
		if strings.Contains(out, s) || strings.Contains(out, s[:len(s)-4]) {
			t.Fatalf("keys list shows a secret\n%s", out)
		}
	}
	var keys []struct {
		ID         string `json:"id"`
		TenantID   string `json:"tenant_id"`
		Hint       string `json:"hint"`
		Status     string `json:"status"`
		ReplacedBy string `json:"replaced_by"`
	}
	if err := json.Unmarshal([]byte(out), &keys); err != nil {
		t.Fatalf("keys list --json: %v\n%s", err, out)
	}
	byStatus := map[string]int{}
	for _, k := range keys {
		byStatus[k.Status]++
		if k.TenantID != h.TenantA || len(k.Hint) != 4 {
			t.Errorf("key %+v", k)
		}
		if k.ID == oldID && (k.ReplacedBy == "" || k.Status != "revoked") {
			t.Errorf("rotated key %+v", k)
		}
	}
	if len(keys) != 4 || byStatus["active"] != 2 || byStatus["revoked"] != 2 {
		t.Errorf("keys list: %+v", keys)
	}
	if out, code := payd(t, h, "keys", "list"); code != 0 || !strings.Contains(out, "tenant-b") || !strings.Contains(out, "REVOKED AT") {
		t.Errorf("keys list table: exit %d\n%s", code, out)
	}
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"keys", "revoke", "key_nope", "--operator", "x"}, cli.ExitNotFound},
		{[]string{"keys", "revoke", h.TenantA}, cli.ExitUsage},
		{[]string{"keys", "rotate", oldID, "--operator", "x"}, cli.ExitNotFound},
		{[]string{"keys", "rotate", "key_nope", "--operator", "x", "--grace", "-1s"}, cli.ExitUsage},
		{[]string{"keys", "list", "--tenant", "nobody"}, cli.ExitNotFound},
	} {
		if out, code := payd(t, h, c.args...); code != c.want {
			t.Errorf("payd %s: exit %d, want %d\n%s", strings.Join(c.args, " "), code, c.want, out)
		}
	}
	// rotate --json parses and carries the secret, shown once
	active := ""
	for _, k := range keys {
		if k.Status == "active" && k.ID != "" {
			active = k.ID
		}
	}
	out, code = payd(t, h, "keys", "rotate", active, "--operator", "carol", "--json")
	var rot struct {
		NewKeyID string `json:"new_key_id"`
		Secret   string `json:"secret"`
		Old      struct {
			Status string `json:"status"`
		} `json:"old_key"`
	}
	if err := json.Unmarshal([]byte(out), &rot); code != 0 || err != nil || !strings.HasPrefix(rot.Secret, store.KeyPrefix) ||
		rot.Old.Status != "revoked" {
		t.Errorf("rotate --json: exit %d %v %+v\n%s", code, err, rot, out)
	}
}
