package sandbox

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

func TestClientErrorMapping(t *testing.T) {
	t.Parallel()
	hijack := func(reset bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			if tcp, ok := conn.(*net.TCPConn); ok && reset {
				_ = tcp.SetLinger(0) // close with RST
			}
			conn.Close()
		}
	}
	jsonError := func(status int, code string, header map[string]string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			for k, v := range header {
				w.Header().Set(k, v)
			}
			writeJSON(w, status, errorBody{ErrorType: "x", ErrorCodes: []string{code}, Message: "stub"})
		}
	}
	tests := []struct {
		name           string
		handler        http.HandlerFunc
		clientTimeout  time.Duration
		class          payment.FailureClass
		code           string
		maybeProcessed bool
		retryAfter     time.Duration
	}{
		{name: "429 is rate limited, not processed", handler: jsonError(429, "rate_limited", map[string]string{"Retry-After": "3"}),
			class: payment.FailureRateLimited, code: "rate_limited", maybeProcessed: false, retryAfter: 3 * time.Second},
		{name: "429 without Retry-After waits a second", handler: jsonError(429, "slow_down", nil),
			class: payment.FailureRateLimited, code: "slow_down", maybeProcessed: false, retryAfter: time.Second},
		{name: "503 is transient, maybe processed", handler: jsonError(503, "gateway_503", nil),
			class: payment.FailureTransient, code: "gateway_503", maybeProcessed: true},
		{name: "503 unavailable was refused before processing",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 503, errorBody{ErrorType: errorTypeUnavailable, ErrorCodes: []string{"gateway_unavailable"}, Message: "stub"})
			},
			class: payment.FailureTransient, code: "gateway_unavailable", maybeProcessed: false},
		{name: "500 is unknown", handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) },
			class: payment.FailureUnknown, code: "http_500", maybeProcessed: true},
		{name: "502 is unknown", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(502) },
			class: payment.FailureUnknown, code: "http_502", maybeProcessed: true},
		{name: "400 was refused before processing", handler: jsonError(400, "malformed_json", nil),
			class: payment.FailureTransient, code: "malformed_json", maybeProcessed: false},
		{name: "404 (wrong mount) is an error, never a result", handler: http.NotFound,
			class: payment.FailureTransient, code: "http_404", maybeProcessed: false},
		{name: "garbage 200 is unknown", handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>") },
			class: payment.FailureUnknown, code: "bad_response", maybeProcessed: true},
		{name: "200 without a status is unknown", handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") },
			class: payment.FailureUnknown, code: "bad_response", maybeProcessed: true},
		{name: "closed without a response", handler: hijack(false),
			class: payment.FailureUnknown, code: "connection_lost", maybeProcessed: true},
		{name: "reset without a response", handler: hijack(true),
			class: payment.FailureUnknown, code: "connection_lost", maybeProcessed: true},
		{name: "client timeout after sending", clientTimeout: 50 * time.Millisecond,
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body) // the server notices a gone client only after the body
				<-r.Context().Done()
			},
			class: payment.FailureUnknown, code: "timeout", maybeProcessed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			t.Cleanup(srv.Close)
			hc := srv.Client()
			hc.Timeout = tt.clientTimeout
			gw := NewClient(srv.URL, hc)
			_, err := gw.Charge(context.Background(), card("pay_map", 1, CardVisa))
			ge := gatewayError(t, err)
			if ge.Class != tt.class || ge.Code != tt.code || ge.MaybeProcessed != tt.maybeProcessed || ge.RetryAfter != tt.retryAfter {
				t.Errorf("Charge error = %v (retry after %v), want class %s code %s maybe processed %t retry after %v",
					ge, ge.RetryAfter, tt.class, tt.code, tt.maybeProcessed, tt.retryAfter)
			}
		})
	}

	t.Run("closed server is not processed", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(New(Config{}).Handler())
		gw := NewClient(srv.URL, nil)
		srv.Close()
		for name, call := range map[string]func() error{
			"charge":  func() error { _, err := gw.Charge(context.Background(), card("pay_closed", 1, CardVisa)); return err },
			"inquire": func() error { _, err := gw.Inquire(context.Background(), "pay_closed:1"); return err },
		} {
			ge := gatewayError(t, call())
			if ge.Class != payment.FailureTransient || ge.MaybeProcessed {
				t.Errorf("%s on a closed server = %v, want transient, not processed", name, ge)
			}
		}
	})

	t.Run("context ended before sending is not processed", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(New(Config{}).Handler())
		t.Cleanup(srv.Close)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := NewClient(srv.URL, srv.Client()).Charge(ctx, card("pay_canceled", 1, CardVisa))
		if ge := gatewayError(t, err); ge.MaybeProcessed {
			t.Errorf("Charge with a canceled context = %v, want not processed", ge)
		}
	})

	t.Run("sandbox latency past the client deadline", func(t *testing.T) {
		t.Parallel()
		e := newOverHTTP(t, Config{Latency: 2 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := e.gw.Charge(ctx, card("pay_latency", 1, CardVisa))
		ge := gatewayError(t, err)
		if ge.Class != payment.FailureUnknown || ge.Code != "timeout" || !ge.MaybeProcessed {
			t.Errorf("Charge = %v, want unknown timeout maybe processed", ge)
		}
	})
}

// TestServerFailuresAreReal checks that the HTTP server turns the sandbox's
// errors into what a real gateway does on the wire.
func TestServerFailuresAreReal(t *testing.T) {
	t.Parallel()
	sb := New(Config{})
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	post := func(body string) (*http.Response, error) {
		return srv.Client().Post(srv.URL+"/charges", "application/json", strings.NewReader(body))
	}
	flaky := `{"idempotency_key":"pay_f:1","payment_id":"pay_f","amount":100,"currency":"USD","method":"CARD","payment_method_id":"pm_card_flaky"}`
	resp, err := post(flaky)
	if err != nil {
		t.Fatal(err)
	}
	var eb errorBody
	if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || len(eb.ErrorCodes) != 1 || eb.ErrorCodes[0] != "gateway_503" || eb.RequestID == "" {
		t.Errorf("pm_card_flaky = %d %+v, want 503 gateway_503 with a request id", resp.StatusCode, eb)
	}

	lost := `{"idempotency_key":"pay_l:1","payment_id":"pay_l","amount":100,"currency":"USD","method":"CARD","payment_method_id":"pm_card_timeout_after_charge"}`
	if resp, err := post(lost); err == nil {
		resp.Body.Close()
		t.Errorf("pm_card_timeout_after_charge answered %d, want the connection closed", resp.StatusCode)
	}
	if n := sb.ChargesFor("pay_l"); n != 1 {
		t.Errorf("ChargesFor(pay_l) = %d, want 1", n)
	}

	// pm_card_unknown: its charge, and then every inquiry and void of its
	// key, end with the connection closed unanswered
	unknown := `{"idempotency_key":"pay_u:1","payment_id":"pay_u","amount":100,"currency":"USD","method":"CARD","payment_method_id":"pm_card_unknown"}`
	if resp, err := post(unknown); err == nil {
		resp.Body.Close()
		t.Errorf("pm_card_unknown answered %d, want the connection closed", resp.StatusCode)
	}
	for _, call := range []struct{ method, path string }{{http.MethodGet, "/charges/pay_u:1"}, {http.MethodPost, "/charges/pay_u:1/void"}} {
		req, _ := http.NewRequest(call.method, srv.URL+call.path, nil)
		if resp, err := (&http.Client{}).Do(req); err == nil {
			resp.Body.Close()
			t.Errorf("%s %s of a pm_card_unknown key answered %d, want the connection closed", call.method, call.path, resp.StatusCode)
		}
	}
	// VoidDown: a 503 that says it was refused before processing
	sb.SetFaults(Faults{VoidDown: true})
	resp, err = srv.Client().Post(srv.URL+"/charges/pay_f:1/void", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	eb = errorBody{}
	if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || eb.ErrorType != errorTypeUnavailable || len(eb.ErrorCodes) != 1 ||
		eb.ErrorCodes[0] != "gateway_unavailable" || !eb.Retryable {
		t.Errorf("void while VoidDown = %d %+v, want 503 unavailable gateway_unavailable, retryable", resp.StatusCode, eb)
	}
	sb.SetFaults(Faults{})

	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{`, http.StatusBadRequest},
		{`{"idempotency_key":"k","surprise":1}`, http.StatusBadRequest},
		{`{"idempotency_key":"` + strings.Repeat("k", maxBody) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		resp, err := post(tc.body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("POST /charges %.20q… = %d, want %d", tc.body, resp.StatusCode, tc.status)
		}
	}
	if n := len(sb.Ledger()); n != 2 {
		t.Errorf("ledger has %d entries, want 2 (pm_card_timeout_after_charge, pm_card_unknown)", n)
	}
}

func TestLedgerOverHTTP(t *testing.T) {
	t.Parallel()
	e := newOverHTTP(t, Config{})
	ctx := context.Background()
	must(t)(e.gw.Charge(ctx, card("pay_l1", 1, CardVisa)))
	must(t)(e.gw.Charge(ctx, card("pay_l2", 1, CardDeclined)))
	must(t)(e.gw.Charge(ctx, bank("pay_l3", 1, payment.MethodACH, BankAccountSettles)))
	got, err := e.gw.(*Client).Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e.sb.Ledger(), got); diff != "" {
		t.Errorf("remote ledger (-local +remote):\n%s", diff)
	}
	if len(got) != 2 || len(DoubleCharged(got)) != 0 {
		t.Errorf("remote ledger = %+v, want 2 charges, none double", got)
	}
	resp, err := http.Get(e.baseURL + "/ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if string(raw["double_charged"]) != "[]" {
		t.Errorf("double_charged = %s, want []", raw["double_charged"])
	}
}

var formRE = regexp.MustCompile(`<form method="post" action="([^"]*)">(?:<input type="hidden" name="([^"]+)" value="([^"]*)">)?`)

// form is what a browser would submit for one of the page's buttons.
type form struct {
	target string
	values url.Values
}

func TestChallengePage(t *testing.T) {
	t.Parallel()
	e := newOverHTTP(t, Config{})
	ctx := context.Background()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// page fetches the challenge page like a browser and returns its two
	// forms, targets resolved against the page.
	page := func(t *testing.T, pageURL string) []form {
		t.Helper()
		resp, err := http.Get(pageURL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("GET %s = %d %s", pageURL, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		for _, external := range []string{"<script", "src=", "href=", "@import"} {
			if strings.Contains(string(body), external) {
				t.Errorf("challenge page contains %q; it must have no external assets", external)
			}
		}
		base, _ := url.Parse(pageURL)
		var forms []form
		for _, m := range formRE.FindAllStringSubmatch(string(body), -1) {
			ref, err := url.Parse(html.UnescapeString(m[1]))
			if err != nil {
				t.Fatal(err)
			}
			f := form{target: base.ResolveReference(ref).String(), values: url.Values{}}
			if m[2] != "" {
				f.values.Set(m[2], html.UnescapeString(m[3]))
			}
			forms = append(forms, f)
		}
		if len(forms) != 2 {
			t.Fatalf("challenge page has %d forms, want 2:\n%s", len(forms), body)
		}
		return forms
	}

	t.Run("succeed button", func(t *testing.T) {
		req := card("pay_page_ok", 1, Card3DS)
		res := must(t)(e.gw.Charge(ctx, req))
		forms := page(t, res.ActionURL)
		if want := res.ActionURL + "?result=succeed"; forms[0].target != want {
			t.Errorf("succeed form posts to %s, want %s", forms[0].target, want)
		}
		resp, err := http.PostForm(forms[0].target, forms[0].values)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Authentication succeeded") {
			t.Errorf("POST succeed = %d:\n%s", resp.StatusCode, body)
		}
		if got := must(t)(e.gw.Inquire(ctx, req.IdempotencyKey)); got.Status != connector.StatusSucceeded {
			t.Errorf("Inquire = %+v, want succeeded", got)
		}
	})

	t.Run("fail button with return_url", func(t *testing.T) {
		req := card("pay_page_fail", 1, Card3DS)
		res := must(t)(e.gw.Charge(ctx, req))
		back := "https://shop.test/back?session=ps_1"
		forms := page(t, res.ActionURL+"?return_url="+url.QueryEscape(back))
		if want := res.ActionURL + "?result=fail"; forms[1].target != want {
			t.Errorf("fail form posts to %s, want %s", forms[1].target, want)
		}
		resp, err := noRedirect.PostForm(forms[1].target, forms[1].values)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != back {
			t.Errorf("POST fail = %d Location %q, want 303 to %s", resp.StatusCode, resp.Header.Get("Location"), back)
		}
		got := must(t)(e.gw.Inquire(ctx, req.IdempotencyKey))
		if got.Code != "authentication_failed" {
			t.Errorf("Inquire = %+v, want authentication_failed", got)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		res := must(t)(e.gw.Charge(ctx, card("pay_page_bad", 1, Card3DS)))
		for _, tc := range []struct {
			method, url string
			status      int
		}{
			{http.MethodGet, e.baseURL + "/challenge/ch_404", http.StatusNotFound},
			{http.MethodPost, e.baseURL + "/challenge/ch_404?result=succeed", http.StatusNotFound},
			{http.MethodPost, res.ActionURL + "?result=maybe", http.StatusBadRequest},
		} {
			req, _ := http.NewRequest(tc.method, tc.url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("%s %s = %d, want %d", tc.method, tc.url, resp.StatusCode, tc.status)
			}
		}
		if n := e.sb.ChargesFor("pay_page_bad"); n != 0 {
			t.Errorf("ChargesFor = %d, want 0", n)
		}
	})
}

// TestVoidedChallengePage: once voided, the challenge page says the
// authentication was canceled and offers no button, and completing it is a
// 409 of its own: challenge_canceled for an API client, the page for a
// browser.
func TestVoidedChallengePage(t *testing.T) {
	t.Parallel()
	e := newOverHTTP(t, Config{})
	ctx := context.Background()
	req := card("pay_page_void", 1, Card3DS)
	res := must(t)(e.gw.Charge(ctx, req))
	if got := must(t)(e.gw.Void(ctx, req.IdempotencyKey)); got.Status != connector.StatusVoided {
		t.Fatalf("Void = %+v", got)
	}
	get, err := http.Get(res.ActionURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if get.StatusCode != http.StatusOK || !strings.Contains(string(page), "Authentication canceled") || strings.Contains(string(page), "<form") {
		t.Errorf("GET voided challenge = %d, want the canceled page without forms:\n%s", get.StatusCode, page)
	}

	api, err := http.Post(res.ActionURL+"?result=succeed", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var eb errorBody
	_ = json.NewDecoder(api.Body).Decode(&eb)
	api.Body.Close()
	if api.StatusCode != http.StatusConflict || len(eb.ErrorCodes) != 1 || eb.ErrorCodes[0] != "challenge_canceled" {
		t.Errorf("POST (API) voided challenge = %d %+v, want 409 challenge_canceled", api.StatusCode, eb)
	}

	browser, err := http.PostForm(res.ActionURL+"?result=succeed", url.Values{"return_url": {"https://shop.test/back"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(browser.Body)
	browser.Body.Close()
	if browser.StatusCode != http.StatusConflict || !strings.HasPrefix(browser.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(body), "Authentication canceled") {
		t.Errorf("POST (form) voided challenge = %d %s, want 409 and the canceled page:\n%s",
			browser.StatusCode, browser.Header.Get("Content-Type"), body)
	}
	if got := must(t)(e.gw.Inquire(ctx, req.IdempotencyKey)); got.Status != connector.StatusVoided {
		t.Errorf("Inquire = %+v, want still voided", got)
	}
	if n := e.sb.ChargesFor(req.PaymentID); n != 0 {
		t.Errorf("ChargesFor = %d, want 0", n)
	}
}

// TestEntriesWire: GET /entries's JSON field by field, and its refusals.
func TestEntriesWire(t *testing.T) {
	t.Parallel()
	e := newOverHTTP(t, Config{})
	ctx := context.Background()
	ch := must(t)(e.gw.Charge(ctx, card("pay_wire", 1, CardVisa)))
	e.clock.Advance(time.Second)
	re := must(t)(e.gw.Refund(ctx, connector.RefundRequest{IdempotencyKey: "re_wire", PaymentID: "pay_wire",
		GatewayReference: ch.Reference, Amount: payment.Money{Minor: 250, Currency: "USD"}}))

	get := func(query string) (int, []byte) {
		t.Helper()
		resp, err := http.Get(e.baseURL + "/entries" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	status, body := get("?from=" + url.QueryEscape(t0.Format(time.RFC3339)) + "&limit=10")
	if status != http.StatusOK {
		t.Fatalf("GET /entries = %d %s", status, body)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"entries": []any{
			map[string]any{"kind": "charge", "reference": ch.Reference, "idempotency_key": "pay_wire:1", "payment_id": "pay_wire",
				"amount": 1250.0, "currency": "USD", "status": "succeeded", "created_at": "2026-11-02T10:00:00Z"},
			map[string]any{"kind": "refund", "reference": re.Reference, "idempotency_key": "re_wire", "payment_id": "pay_wire",
				"charge_reference": ch.Reference, "amount": 250.0, "currency": "USD", "status": "succeeded",
				"created_at": "2026-11-02T10:00:01Z"},
		},
		"next": "",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET /entries (-want +got):\n%s", diff)
	}
	for _, c := range []struct{ query, code string }{
		{"?from=yesterday", "invalid_from"},
		{"?to=2026-11-02", "invalid_to"},
		{"?limit=ten", "invalid_limit"},
		{"?limit=-3", "invalid_limit"},
		{"?cursor=zzz", "invalid_cursor"},
		{"?from=2026-11-02T11:00:00Z&to=2026-11-02T10:00:00Z", "invalid_window"},
	} {
		status, body := get(c.query)
		var eb errorBody
		_ = json.Unmarshal(body, &eb)
		if status != http.StatusBadRequest || len(eb.ErrorCodes) != 1 || eb.ErrorCodes[0] != c.code || eb.RequestID == "" {
			t.Errorf("GET /entries%s = %d %s, want 400 %s", c.query, status, body, c.code)
		}
	}
}

// operatorRoutes are every route of OperatorHandler, with a body that would
// act if it were served.
var operatorRoutes = []struct{ method, path, body string }{
	{http.MethodPost, "/charges", `{"idempotency_key":"pay_probe:1","payment_id":"pay_probe","amount":100,"currency":"USD","method":"CARD","payment_method_id":"pm_card_visa"}`},
	{http.MethodGet, "/charges/pay_fence:1", ""},
	{http.MethodPost, "/charges/pay_fence:2/void", ""},
	{http.MethodGet, "/settlements/ch_0", ""},
	{http.MethodPost, "/refunds", `{"idempotency_key":"re_probe","payment_id":"pay_x","gateway_reference":"ch_0","amount":1,"currency":"USD"}`},
	{http.MethodGet, "/entries", ""},
	{http.MethodGet, "/ledger", ""},
	{http.MethodPost, "/notifications/flush", ""},
	{http.MethodGet, "/faults", ""},
	{http.MethodPut, "/faults", `{"fault_rate":1}`},
}

// TestHandlerSplit: CustomerHandler serves the challenge pages and nothing
// else, OperatorHandler everything else and no challenge page, Handler
// both.
func TestHandlerSplit(t *testing.T) {
	t.Parallel()
	sb := New(Config{PublicURL: "http://sandbox.test"})
	ctx := context.Background()
	pending := must(t)(sb.Charge(ctx, card("pay_split", 1, Card3DS)))
	customer := httptest.NewServer(sb.CustomerHandler())
	t.Cleanup(customer.Close)
	operator := httptest.NewServer(sb.OperatorHandler())
	t.Cleanup(operator.Close)
	whole := httptest.NewServer(sb.Handler())
	t.Cleanup(whole.Close)

	do := func(base, method, path, body string) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	challenge := "/challenge/" + pending.Reference
	for _, srv := range []*httptest.Server{customer, whole} {
		if code := do(srv.URL, http.MethodGet, challenge, ""); code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", challenge, code)
		}
	}
	if code := do(operator.URL, http.MethodGet, challenge, ""); code != http.StatusNotFound {
		t.Errorf("operator GET %s = %d, want 404", challenge, code)
	}
	for _, r := range operatorRoutes {
		if code := do(customer.URL, r.method, r.path, r.body); code != http.StatusNotFound {
			t.Errorf("customer %s %s = %d, want 404", r.method, r.path, code)
		}
	}
	// nothing the customer side was asked did anything
	if n := len(sb.Ledger()); n != 0 || sb.Faults() != (Faults{}) {
		t.Fatalf("after probing the customer handler: %d charges, faults %+v", n, sb.Faults())
	}
	if got := must(t)(sb.Charge(ctx, card("pay_fence", 1, CardVisa))); got.Status != connector.StatusSucceeded {
		t.Fatalf("a key probed on the customer handler was fenced: %+v", got)
	}
	for _, srv := range []*httptest.Server{operator, whole} {
		for _, r := range operatorRoutes {
			if code := do(srv.URL, r.method, r.path, r.body); code != http.StatusOK {
				t.Errorf("%s %s = %d, want 200", r.method, r.path, code)
			}
		}
		sb.SetFaults(Faults{})
	}
}
