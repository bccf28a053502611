// Package stripefake is a small local Stripe for tests: an httptest server
// answering the PaymentIntent, search and Refund requests payd makes with
// Stripe-shaped bodies (the fields of Stripe's API reference that payd reads; see the
// stripe package's tests), for the outcomes stateless stripe-mock cannot
// produce: declines, 3-D Secure, lost responses, idempotent replays, a
// search that finds the intent, a cancel. It keeps idempotency keys the way
// Stripe does (same key, same answer; never a second object), and counts
// the PaymentIntents it created per attempt key. Imported by tests only.
package stripefake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Outcome is what the fake does with a confirmed create, chosen by its
// payment_method.
type Outcome struct {
	Status      string // succeeded, requires_action, requires_payment_method
	Code        string // card error code, for requires_payment_method
	DeclineCode string
	// LoseResponse: the request is processed, then the connection is
	// closed without an answer (the first time the key is seen).
	LoseResponse bool
	// LoseRequest: the first request under the key is dropped before
	// anything is processed (the connection is closed).
	LoseRequest bool
}

// Fake is the local Stripe.
type Fake struct {
	URL string
	// Outcomes by payment_method; an unlisted one succeeds.
	Outcomes map[string]Outcome
	// SearchLag: the search answers nothing (the index has not caught up).
	SearchLag bool

	mu      sync.Mutex
	intents map[string]map[string]any // by id
	byKey   map[string]string         // idempotency key → intent id (create)
	keyResp map[string][]byte         // idempotency key → stored response (create, cancel, refund)
	keyCode map[string]int
	seen    map[string]bool // keys whose first request was dropped
	creates map[string]int  // attempt key → PaymentIntents created
	refunds []map[string]any
	Calls   []string // "METHOD path status", in order
	seq     int
}

// New starts a Fake; it stops with the test.
func New(t testing.TB) *Fake {
	f := &Fake{Outcomes: map[string]Outcome{}, intents: map[string]map[string]any{}, byKey: map[string]string{},
		keyResp: map[string][]byte{}, keyCode: map[string]int{}, seen: map[string]bool{}, creates: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// Creates is how many PaymentIntents the fake created for an attempt key.
func (f *Fake) Creates(attemptKey string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.creates[attemptKey]
}

// Status answers the stored PaymentIntent's status by id.
func (f *Fake) Status(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pi, ok := f.intents[id]; ok {
		return pi["status"].(string)
	}
	return ""
}

// IntentFor answers the id of the PaymentIntent created under an
// idempotency key ("" for none).
func (f *Fake) IntentFor(key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byKey[key]
}

// SetStatus moves a stored PaymentIntent (a customer completing 3-D Secure).
func (f *Fake) SetStatus(id, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pi, ok := f.intents[id]; ok {
		pi["status"] = status
		pi["next_action"] = nil
		if status == "succeeded" {
			pi["amount_received"] = pi["amount"]
		}
	}
}

// CallsOf answers the calls whose "METHOD path" starts with prefix.
func (f *Fake) CallsOf(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.Calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func (f *Fake) record(r *http.Request, code int) {
	f.Calls = append(f.Calls, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, code))
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer sk_test_") {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}`))
		return
	}
	_ = r.ParseForm()
	f.mu.Lock()
	defer f.mu.Unlock()
	key := r.Header.Get("Idempotency-Key")
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && path == "/v1/payment_intents":
		f.create(w, r, key)
	case r.Method == http.MethodGet && path == "/v1/payment_intents/search":
		f.search(w, r)
	case r.Method == http.MethodGet && path == "/v1/payment_intents":
		f.list(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/payment_intents/"):
		id := strings.TrimPrefix(path, "/v1/payment_intents/")
		pi, ok := f.intents[id]
		if !ok {
			f.fail(w, r, http.StatusNotFound, "invalid_request_error", "resource_missing", "", nil)
			return
		}
		f.json(w, r, http.StatusOK, pi)
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/cancel"):
		f.cancel(w, r, key, strings.TrimSuffix(strings.TrimPrefix(path, "/v1/payment_intents/"), "/cancel"))
	case r.Method == http.MethodPost && path == "/v1/refunds":
		f.refund(w, r, key)
	case r.Method == http.MethodGet && path == "/v1/refunds":
		data := []any{}
		for _, re := range f.refunds {
			data = append(data, re)
		}
		f.json(w, r, http.StatusOK, map[string]any{"object": "list", "url": "/v1/refunds", "has_more": false, "data": data})
	default:
		f.fail(w, r, http.StatusNotFound, "invalid_request_error", "resource_missing", "", nil)
	}
}

// replayed answers a stored response under key, as Stripe does.
func (f *Fake) replayed(w http.ResponseWriter, r *http.Request, key string) bool {
	b, ok := f.keyResp[key]
	if key == "" || !ok {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(f.keyCode[key])
	_, _ = w.Write(b)
	f.record(r, f.keyCode[key])
	return true
}

func (f *Fake) create(w http.ResponseWriter, r *http.Request, key string) {
	if f.replayed(w, r, key) {
		return
	}
	pm := r.Form.Get("payment_method")
	out, ok := f.Outcomes[pm]
	if !ok {
		out = Outcome{Status: "succeeded"}
	}
	if out.LoseRequest && !f.seen[key] {
		f.seen[key] = true
		f.record(r, 0)
		hijackClose(w)
		return
	}
	amount, _ := strconv.ParseInt(r.Form.Get("amount"), 10, 64)
	f.seq++
	id := fmt.Sprintf("pi_fake%06d", f.seq)
	meta := map[string]any{}
	for k, v := range r.Form {
		if strings.HasPrefix(k, "metadata[") && strings.HasSuffix(k, "]") {
			meta[k[len("metadata["):len(k)-1]] = v[0]
		}
	}
	pi := map[string]any{"id": id, "object": "payment_intent", "amount": amount, "amount_received": 0,
		"currency": r.Form.Get("currency"), "status": out.Status, "capture_method": r.Form.Get("capture_method"),
		"confirmation_method": "automatic", "created": time.Now().Unix(), "livemode": false, "metadata": meta,
		"payment_method": pm, "payment_method_types": []string{"card"}, "client_secret": id + "_secret_x",
		"next_action": nil, "last_payment_error": nil}
	if ak, _ := meta["payd_attempt_key"].(string); ak != "" {
		f.creates[ak]++
	}
	code := http.StatusOK
	var body any = pi
	switch out.Status {
	case "succeeded":
		pi["amount_received"] = amount
	case "requires_action":
		pi["next_action"] = map[string]any{"type": "redirect_to_url", "redirect_to_url": map[string]any{
			"url": "https://hooks.stripe.com/3d_secure_2/hosted?merchant=acct_x&payment_intent=" + id, "return_url": r.Form.Get("return_url")}}
	case "requires_payment_method":
		lpe := map[string]any{"type": "card_error", "code": out.Code, "decline_code": out.DeclineCode,
			"message": "Your card was declined.", "payment_method": map[string]any{"id": pm, "object": "payment_method"}}
		pi["last_payment_error"] = lpe
		code = http.StatusPaymentRequired
		e := map[string]any{}
		for k, v := range lpe {
			e[k] = v
		}
		e["payment_intent"] = pi
		body = map[string]any{"error": e}
	}
	f.intents[id] = pi
	b, _ := json.Marshal(body)
	if key != "" {
		f.byKey[key], f.keyResp[key], f.keyCode[key] = id, b, code
	}
	if out.LoseResponse && !f.seen[key] {
		f.seen[key] = true
		f.record(r, 0)
		hijackClose(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
	f.record(r, code)
}

func (f *Fake) search(w http.ResponseWriter, r *http.Request) {
	q := r.Form.Get("query")
	data := []any{}
	if !f.SearchLag {
		const pre = "metadata['payd_attempt_key']:'"
		if strings.HasPrefix(q, pre) && strings.HasSuffix(q, "'") {
			want := strings.ReplaceAll(q[len(pre):len(q)-1], `\'`, "'")
			for _, pi := range f.intents {
				if m, _ := pi["metadata"].(map[string]any); m["payd_attempt_key"] == want {
					data = append(data, pi)
				}
			}
		}
	}
	f.json(w, r, http.StatusOK, map[string]any{"object": "search_result", "url": "/v1/payment_intents/search",
		"has_more": false, "next_page": nil, "data": data})
}

func (f *Fake) list(w http.ResponseWriter, r *http.Request) {
	gte, _ := strconv.ParseInt(r.Form.Get("created[gte]"), 10, 64)
	lt, _ := strconv.ParseInt(r.Form.Get("created[lt]"), 10, 64)
	data := []any{}
	for _, pi := range f.intents {
		c := pi["created"].(int64)
		if c >= gte && (lt == 0 || c < lt) {
			data = append(data, pi)
		}
	}
	f.json(w, r, http.StatusOK, map[string]any{"object": "list", "url": "/v1/payment_intents", "has_more": false, "data": data})
}

func (f *Fake) cancel(w http.ResponseWriter, r *http.Request, key, id string) {
	if f.replayed(w, r, key) {
		return
	}
	pi, ok := f.intents[id]
	if !ok {
		f.fail(w, r, http.StatusNotFound, "invalid_request_error", "resource_missing", "", nil)
		return
	}
	switch pi["status"] {
	case "succeeded", "canceled":
		f.fail(w, r, http.StatusBadRequest, "invalid_request_error", "payment_intent_unexpected_state", "", pi)
		return
	}
	pi["status"], pi["next_action"] = "canceled", nil
	pi["cancellation_reason"] = r.Form.Get("cancellation_reason")
	b, _ := json.Marshal(pi)
	if key != "" {
		f.keyResp[key], f.keyCode[key] = b, http.StatusOK
	}
	f.json(w, r, http.StatusOK, pi)
}

func (f *Fake) refund(w http.ResponseWriter, r *http.Request, key string) {
	if f.replayed(w, r, key) {
		return
	}
	amount, _ := strconv.ParseInt(r.Form.Get("amount"), 10, 64)
	f.seq++
	re := map[string]any{"id": fmt.Sprintf("re_fake%06d", f.seq), "object": "refund", "amount": amount, "currency": "usd",
		"payment_intent": r.Form.Get("payment_intent"), "status": "succeeded", "created": time.Now().Unix(),
		"metadata": map[string]any{"payd_refund_id": r.Form.Get("metadata[payd_refund_id]")}}
	f.refunds = append(f.refunds, re)
	b, _ := json.Marshal(re)
	if key != "" {
		f.keyResp[key], f.keyCode[key] = b, http.StatusOK
	}
	f.json(w, r, http.StatusOK, re)
}

func (f *Fake) fail(w http.ResponseWriter, r *http.Request, code int, typ, ecode, decline string, pi any) {
	e := map[string]any{"type": typ, "code": ecode, "message": ecode}
	if decline != "" {
		e["decline_code"] = decline
	}
	if pi != nil {
		e["payment_intent"] = pi
	}
	f.json(w, r, code, map[string]any{"error": e})
}

func (f *Fake) json(w http.ResponseWriter, r *http.Request, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
	f.record(r, code)
}

// hijackClose closes the connection without an answer.
func hijackClose(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			_ = c.Close()
		}
	}
}
