package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/payment"
)

// fakeSessions is a payd that knows only the three payment-session routes,
// as seed 003 answers them: every session's payment succeeds.
type fakeSessions struct {
	mu       sync.Mutex
	n        int
	payments map[string]string // payment id → session id
	data     map[string]int    // session_data values submitted
	keys     map[string]bool   // Idempotency-Keys seen
}

func (f *fakeSessions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("x-api-key") != "sk_test" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodPost {
		f.keys[r.URL.Path+" "+r.Header.Get("Idempotency-Key")] = true
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/payment-sessions":
		var req struct {
			Amount   *int64 `json:"amount"`
			Currency string `json:"currency"`
			Billing  any    `json:"billing"`
		}
		if json.NewDecoder(r.Body).Decode(&req) != nil || req.Amount == nil || req.Currency != "USD" || req.Billing == nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		f.n++
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"ps_%04d","status":"ACTIVE"}`, f.n)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/submit"):
		var req struct {
			SessionData string `json:"session_data"`
			Amount      int64  `json:"amount"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		f.data[req.SessionData]++
		id := "pay_" + strings.TrimPrefix(strings.Split(r.URL.Path, "/")[3], "ps_")
		f.payments[id] = strings.Split(r.URL.Path, "/")[3]
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":%q,"status":"Authorized","type":["card"]}`, id)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/payment-sessions/"):
		fmt.Fprint(w, `{"status":"COMPLETED"}`)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// succeeded observes every payment as SUCCEEDED a moment ago.
type succeeded struct{}

func (succeeded) observe(_ context.Context, ids []string) (map[string]observation, error) {
	out := map[string]observation{}
	for _, id := range ids {
		out[id] = observation{payment.StatusSucceeded, time.Now()}
	}
	return out, nil
}

// TestSessionsMode runs the -sessions phase against a fake payd: every
// session is created and submitted once with sandbox:pm_card_visa under
// its own Idempotency-Keys, and the figures and the check follow from the
// payments and the ledger.
func TestSessionsMode(t *testing.T) {
	t.Parallel()
	f := &fakeSessions{payments: map[string]string{}, data: map[string]int{}, keys: map[string]bool{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	o, err := ParseFlags([]string{"-addr", srv.URL, "-key", "sk_test", "-n", "10", "-sessions", "12", "-c", "3"}, &bytes.Buffer{})
	if err != nil || o.sessionC != 3 {
		t.Fatalf("flags: session-c %d, %v", o.sessionC, err)
	}
	tg := &target{base: srv.URL, key: "sk_test", observe: succeeded{}}
	runs, obs, err := runSessions(context.Background(), o, tg, srv.Client(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"sandbox:pm_card_visa": 12}, f.data); diff != "" {
		t.Errorf("session_data submitted (-want +got):\n%s", diff)
	}
	if len(f.keys) != 24 {
		t.Errorf("%d distinct Idempotency-Keys, want 24 (a create and a submit per session)", len(f.keys))
	}
	var ledger []sandbox.Charge
	for id := range f.payments {
		ledger = append(ledger, sandbox.Charge{PaymentID: id, Amount: smallAmount, Currency: "USD"})
	}
	rep := &Report{}
	rep.Final.PerSecond = 100
	rep.Pass = true
	fillSessions(rep, o, runs, obs, ledger, nil)
	s := rep.Sessions
	if s.Completed != 12 || s.Created != 12 || s.Submitted != 12 || s.Charges != 12 || !rep.Pass || s.PerSecond <= 0 ||
		s.VsCard != s.PerSecond/100 || s.Answered["201 Authorized"] != 12 || s.Statuses["COMPLETED"] != 12 {
		t.Errorf("sessions report %+v, pass %v", s, rep.Pass)
	}
	var out bytes.Buffer
	printReport(&out, rep)
	if !strings.Contains(out.String(), "  PASS  sessions         12/12 sessions completed") ||
		!strings.Contains(out.String(), "sessions: 12 created and submitted (session_data sandbox:pm_card_visa) at concurrency 3: 12 completed") {
		t.Errorf("report:\n%s", out.String())
	}

	// a charge missing, one doubled: the check fails
	ledger = append(ledger[1:], ledger[1])
	rep = &Report{Pass: true}
	fillSessions(rep, o, runs, obs, ledger, nil)
	if rep.Pass || len(rep.Sessions.Missing) != 1 || len(rep.Sessions.DoubleCharged) != 1 {
		t.Errorf("pass %v, missing %v, double %v; want a failed check with one of each", rep.Pass, rep.Sessions.Missing, rep.Sessions.DoubleCharged)
	}
}

func TestSessionFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--spawn", "-sessions", "-1"},
		{"--spawn", "-sessions", "5", "-session-c", "-2"},
		{"--spawn", "-sessions", "5", "-backlog", "5"},
	} {
		if _, err := ParseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("ParseFlags(%q): no error", args)
		}
	}
	o, err := ParseFlags([]string{"--spawn", "-sessions", "5", "-c", "4", "-session-c", "32"}, &bytes.Buffer{})
	if err != nil || o.sessions != 5 || o.sessionC != 32 {
		t.Errorf("sessions %d, session-c %d, %v", o.sessions, o.sessionC, err)
	}
}
