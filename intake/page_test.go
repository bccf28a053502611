package intake_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/payd/payd/intake"
	"github.com/payd/payd/internal/browser"
	"github.com/payd/payd/payment"
)

// browserWait bounds every wait of the browser tests: generous, because
// the whole suite shares the machine with them; a passing step takes well
// under a second.
const browserWait = 30 * time.Second

const wantPageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// TestPayPageServed: the page and its assets are served with their
// security headers; the HTML has no inline script or style and nothing of
// another origin; the page is the same for every token.
func TestPayPageServed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(intake.NewServer(intake.Deps{}))
	t.Cleanup(srv.Close)
	get := func(path string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	res, html := get("/pay/pst_abc", nil)
	if res.StatusCode != 200 {
		t.Fatalf("GET /pay/pst_abc: %d", res.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
		"Content-Security-Policy": wantPageCSP, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("page %s = %q, want %q", k, got, want)
		}
	}
	if _, other := get("/pay/another", nil); other != html {
		t.Error("the page differs between tokens")
	}
	for _, re := range []string{`<script(?:\s[^>]*)?>[^<]`, `<script(?:(?!src=)[^>])*>`, `<style`, `\sstyle=`, `\son[a-z]+=`, `https?://`, `javascript:`} {
		if strings.Contains(re, "(?!") {
			// Go's regexp has no lookahead: every script tag must have a src
			for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(html, -1) {
				if !strings.Contains(tag, ` src="/pay-assets/`) {
					t.Errorf("page has a script that is not one of its assets: %s", tag)
				}
			}
			continue
		}
		if m := regexp.MustCompile(re).FindString(html); m != "" {
			t.Errorf("page has %q (matching %s)", m, re)
		}
	}
	for file, ctype := range map[string]string{"pay.js": "text/javascript; charset=utf-8", "pay.css": "text/css; charset=utf-8"} {
		res, body := get("/pay-assets/"+file, nil)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != ctype || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET /pay-assets/%s: %d %q", file, res.StatusCode, res.Header.Get("Content-Type"))
		}
		if regexp.MustCompile(`https?://|@import|url\(`).MatchString(body) {
			t.Errorf("%s loads something of its own: %s", file, regexp.MustCompile(`https?://\S*|@import|url\(`).FindString(body))
		}
		etag := res.Header.Get("ETag")
		if res, _ := get("/pay-assets/"+file, map[string]string{"If-None-Match": etag}); etag == "" || res.StatusCode != http.StatusNotModified {
			t.Errorf("GET /pay-assets/%s with its ETag %s: %d, want 304", file, etag, res.StatusCode)
		}
	}
	for _, path := range []string{"/pay-assets/index.html", "/pay-assets/nope.js", "/pay-assets/..%2fpage.go"} {
		if res, _ := get(path, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}
}

// stubSessions answers the page routes as the sessions core does, from
// sessions held in memory: the page alone, in a real browser, without
// Postgres. TestBrowserJourneys runs the same page against the real core.
type stubSessions struct {
	mu       sync.Mutex
	sessions map[string]map[string]any // by token
	secrets  map[string]string
	submits  map[string][]string // session_data by token
	polls    map[string]int      // GETs a PROCESSING session without a challenge answers before it completes
}

func (st *stubSessions) add(token, secret string, s map[string]any) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sessions[token], st.secrets[token] = s, secret
}

func (st *stubSessions) session(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	tok := r.PathValue("token")
	s, ok := st.sessions[tok]
	if !ok || r.Header.Get("X-Payment-Session-Secret") != st.secrets[tok] {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error_type":"not_found","error_codes":["resource_not_found"]}`)
		return nil, false
	}
	return s, true
}

func (st *stubSessions) handler(page http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pay/{token}/session", func(w http.ResponseWriter, r *http.Request) {
		st.mu.Lock()
		defer st.mu.Unlock()
		if s, ok := st.session(w, r); ok {
			tok := r.PathValue("token")
			if s["status"] == "PROCESSING" && s["action"].(map[string]any)["type"] == "poll" {
				if st.polls[tok]--; st.polls[tok] <= 0 {
					s["status"], s["action"] = "COMPLETED", nil
				}
			}
			_ = json.NewEncoder(w).Encode(s)
		}
	})
	// a 3-D Secure challenge as the sandbox's: two buttons that post
	// back, then 303 to return_url
	mux.HandleFunc("GET /challenge/{token}", func(w http.ResponseWriter, r *http.Request) {
		ret := r.URL.Query().Get("return_url")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><title>challenge</title>`+
			`<form method="post" action="?result=succeed"><input type="hidden" name="return_url" value="`+html.EscapeString(ret)+`"><button id="succeed">ok</button></form>`+
			`<form method="post" action="?result=fail"><input type="hidden" name="return_url" value="`+html.EscapeString(ret)+`"><button id="fail">no</button></form>`)
	})
	mux.HandleFunc("POST /challenge/{token}", func(w http.ResponseWriter, r *http.Request) {
		st.mu.Lock()
		s := st.sessions[r.PathValue("token")]
		if r.FormValue("result") == "succeed" {
			s["status"], s["action"] = "COMPLETED", nil
		} else {
			s["status"], s["action"], s["retry_allowed"] = "FAILED", nil, true
			s["last_error"] = map[string]string{"code": "authentication_failed", "message": "3-D Secure failed"}
		}
		st.mu.Unlock()
		http.Redirect(w, r, r.FormValue("return_url"), http.StatusSeeOther)
	})
	mux.HandleFunc("POST /pay/{token}/submit", func(w http.ResponseWriter, r *http.Request) {
		st.mu.Lock()
		defer st.mu.Unlock()
		s, ok := st.session(w, r)
		if !ok {
			return
		}
		var body struct {
			SessionData string `json:"session_data"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		st.submits[r.PathValue("token")] = append(st.submits[r.PathValue("token")], body.SessionData)
		switch tok := r.PathValue("token"); {
		case body.SessionData == "sandbox:pm_card_3ds":
			action := map[string]any{"type": "redirect", "url": "http://" + r.Host + "/challenge/" + tok}
			s["status"], s["action"] = "PROCESSING", action
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(map[string]any{"id": "pay_1", "status": "Pending", "type": "card", "action": action})
			return
		case body.SessionData == "sandbox:pm_card_insufficient_funds": // stands for a slow outcome here
			action := map[string]any{"type": "poll", "url": "http://" + r.Host + "/pay/" + tok + "/session"}
			s["status"], s["action"], st.polls[tok] = "PROCESSING", action, 3
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(map[string]any{"id": "pay_1", "status": "Pending", "type": "card", "action": action})
			return
		case body.SessionData == "sandbox:pm_card_declined":
			s["status"], s["retry_allowed"] = "FAILED", true
			s["last_error"] = map[string]string{"code": "card_declined", "message": "the card was declined"}
		case body.SessionData == "sandbox:pm_card_visa" || strings.HasPrefix(body.SessionData, "sandbox:ach:"):
			s["status"], s["last_error"] = "COMPLETED", nil
		default:
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = io.WriteString(w, `{"error_type":"invalid_request","error_codes":["session_data_invalid"]}`)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "pay_1", "status": "Authorized", "type": []string{"card"}})
	})
	mux.Handle("/", page)
	return mux
}

// stubSession is a session as the page reads it, with the display fields
// the page shows.
func stubSession(id, status, currency, locale string, amount int64, methods []string, merchant string) map[string]any {
	return map[string]any{
		"id": id, "status": status, "amount": amount, "currency": currency, "locale": locale,
		"display_amount": payment.DisplayAmount(amount, currency, locale), "display_name": "Acme Books",
		"description": "Order 42", "reference": "ORD-42", "enabled_methods": methods, "retry_allowed": status == "ACTIVE",
		"expires_on": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "payment_id": nil, "last_error": nil,
		"success_url": merchant + "/done?order=42", "failure_url": merchant + "/failed", "action": nil,
		"items": []map[string]any{
			{"name": "A book about ledgers", "quantity": 2, "unit_price": amount / 4, "total_amount": amount / 2,
				"display_unit_price": payment.DisplayAmount(amount/4, currency, locale), "display_total_amount": payment.DisplayAmount(amount/2, currency, locale)},
			{"name": "Gift wrap", "quantity": 1, "unit_price": amount - amount/2, "total_amount": amount - amount/2,
				"display_unit_price": payment.DisplayAmount(amount-amount/2, currency, locale), "display_total_amount": payment.DisplayAmount(amount-amount/2, currency, locale)},
		},
	}
}

// merchantSite is the success and failure target: it records where the
// browser landed.
func merchantSite(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><title>merchant</title><p id="landed">`+r.URL.Path+`</p>`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// waitLocation waits until the tab's URL starts with prefix and returns it.
func waitLocation(t *testing.T, tab *browser.Tab, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		u := tab.Location()
		if strings.HasPrefix(u, prefix) {
			return u
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page is at %s, not at %s… after %s; console %q", u, prefix, timeout, tab.Console())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func text(t *testing.T, tab *browser.Tab, id string) string {
	t.Helper()
	tab.Do(browserWait, "wait for #"+id, chromedp.WaitVisible(chromedp.ID(id)))
	return browser.Get(tab, browserWait, "text of #"+id, chromedp.Text(chromedp.ID(id)))
}

func visible(t *testing.T, tab *browser.Tab, id string) bool {
	t.Helper()
	return browser.Get(tab, browserWait, "visibility of #"+id, chromedp.Evaluate[bool](
		`(function(){var e=document.getElementById(`+jsString(id)+`);return !!e && e.getClientRects().length>0})()`))
}

// waitJS waits until the expression is true in the tab's page.
func waitJS(t *testing.T, tab *browser.Tab, expr string) {
	t.Helper()
	deadline := time.Now().Add(browserWait)
	for {
		ctx, cancel := context.WithTimeout(tab.Context(), 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never held (page %s, last error %v; console %q)", expr, tab.Location(), err, tab.Console())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clearField empties an input as a select-all and delete would.
func clearField(id string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`document.getElementById(` + jsString(id) + `).value = ""`)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// noProblems fails t when the tab's pages threw, logged an error or broke
// their Content-Security-Policy.
func noProblems(t *testing.T, tab *browser.Tab) {
	t.Helper()
	if p := tab.Problems(); len(p) > 0 {
		t.Errorf("the page had problems: %q", p)
	}
}

// TestPayPageInBrowser runs the page in headless Chromium against stub
// page routes: what it shows for each kind of session, the decline and the
// retry, the bank account form's checks, a payment made by keyboard alone,
// and a screenshot at phone width (375 px).
func TestPayPageInBrowser(t *testing.T) {
	t.Parallel()
	b := browser.Start(t)
	merchant := merchantSite(t)
	st := &stubSessions{sessions: map[string]map[string]any{}, secrets: map[string]string{}, submits: map[string][]string{},
		polls: map[string]int{}}
	srv := httptest.NewServer(st.handler(intake.NewServer(intake.Deps{})))
	t.Cleanup(srv.Close)
	open := func(t *testing.T, token, secret string) *browser.Tab {
		tab := b.Tab(t)
		link := srv.URL + "/pay/" + token
		if secret != "" {
			link += "#" + secret
		}
		tab.Do(browserWait, "open "+link, chromedp.Navigate(link))
		return tab
	}

	t.Run("paid by keyboard alone", func(t *testing.T) {
		t.Parallel()
		st.add("pst_kbd", "sec_kbd", stubSession("ps_kbd", "ACTIVE", "GBP", "en-GB", 123456, []string{"card", "ach"}, merchant.URL))
		tab := open(t, "pst_kbd", "sec_kbd")
		if got := text(t, tab, "amount"); got != "£1,234.56" {
			t.Errorf("amount shows %q", got)
		}
		if got := text(t, tab, "merchant"); got != "Acme Books" {
			t.Errorf("merchant shows %q", got)
		}
		if got := text(t, tab, "items"); !strings.Contains(got, "A book about ledgers") || !strings.Contains(got, "£308.64") || !strings.Contains(got, "£617.28") {
			t.Errorf("items show %q", got)
		}
		if u := tab.Location(); strings.Contains(u, "#") || strings.Contains(u, "sec_kbd") {
			t.Errorf("the secret stayed in the address bar: %s", u)
		}
		// every control has a label (a button its text), every group a legend
		unlabeled := browser.Get(tab, browserWait, "labels", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("input, select, textarea, button"))
			.filter(e => !(e.labels && e.labels.length) && !(e.tagName === "BUTTON" && e.textContent.trim()) && !e.getAttribute("aria-label"))
			.map(e => e.id || e.name).concat(Array.from(document.querySelectorAll("fieldset")).filter(f => !f.querySelector("legend")).map(f => f.id))`))
		if len(unlabeled) > 0 {
			t.Errorf("controls without a label: %q", unlabeled)
		}
		// Tab from the top: every control is reached, in order
		var order []string
		for range 8 {
			tab.Do(browserWait, "tab", chromedp.KeyEvent(kb.Tab))
			id := browser.Get(tab, browserWait, "focus", chromedp.Evaluate[string](`document.activeElement.id`))
			order = append(order, id)
			if id == "pay-button" {
				break
			}
		}
		if want := []string{"method-card", "card-visa", "pay-button"}; strings.Join(order, ",") != strings.Join(want, ",") {
			t.Errorf("tab order %v, want %v", order, want)
		}
		// back to the cards, arrows move the choice, Enter pays
		tab.Do(browserWait, "shift-tab", chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(kb.ModifierShift)))
		tab.Do(browserWait, "arrows", chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.ArrowUp))
		if got := browser.Get(tab, browserWait, "card", chromedp.Evaluate[string](`document.querySelector('input[name=card]:checked').value`)); got != "pm_card_visa" {
			t.Errorf("after ArrowDown, ArrowUp the card is %q", got)
		}
		tab.Do(browserWait, "tab to pay", chromedp.KeyEvent(kb.Tab))
		tab.Do(browserWait, "enter", chromedp.KeyEvent(kb.Enter))
		got := waitLocation(t, tab, merchant.URL, browserWait)
		if want := merchant.URL + "/done?order=42&session_id=ps_kbd"; got != want {
			t.Errorf("landed on %s, want %s", got, want)
		}
		if s := st.submits["pst_kbd"]; len(s) != 1 || s[0] != "sandbox:pm_card_visa" {
			t.Errorf("submits %q", s)
		}
		noProblems(t, tab)
	})

	t.Run("declined, then paid", func(t *testing.T) {
		t.Parallel()
		st.add("pst_dec", "sec_dec", stubSession("ps_dec", "ACTIVE", "EUR", "de-DE", 4999, []string{"card"}, merchant.URL))
		tab := open(t, "pst_dec", "sec_dec")
		if got := text(t, tab, "amount"); got != "49,99\u00a0€" {
			t.Errorf("amount shows %q", got)
		}
		if visible(t, tab, "method-choice") || visible(t, tab, "ach-fields") {
			t.Error("a card-only session shows a method choice or the bank account form")
		}
		tab.Do(browserWait, "pay with the declined card", chromedp.Click(chromedp.ID("card-declined")), chromedp.Click(chromedp.ID("pay-button")))
		if got := text(t, tab, "form-error"); !strings.Contains(got, "declined") || !strings.Contains(got, "try again") {
			t.Errorf("the decline shows %q", got)
		}
		tab.Do(browserWait, "retry with visa", chromedp.Click(chromedp.ID("card-visa")), chromedp.Click(chromedp.ID("pay-button")))
		got := waitLocation(t, tab, merchant.URL, browserWait)
		if want := merchant.URL + "/done?order=42&session_id=ps_dec"; got != want {
			t.Errorf("landed on %s, want %s", got, want)
		}
		noProblems(t, tab)
	})

	for _, c := range []struct{ button, land string }{{"succeed", "/done?order=42&session_id="}, {"fail", "/failed?session_id="}} {
		t.Run("3-D Secure "+c.button, func(t *testing.T) {
			t.Parallel()
			tok := "pst_3ds_" + c.button
			st.add(tok, "sec_"+tok, stubSession("ps_"+tok, "ACTIVE", "USD", "en-US", 999, []string{"card"}, merchant.URL))
			tab := open(t, tok, "sec_"+tok)
			tab.Do(browserWait, "pay", chromedp.Click(chromedp.ID("card-3ds")), chromedp.Click(chromedp.ID("pay-button")))
			at := waitLocation(t, tab, srv.URL+"/challenge/"+tok+"?return_url=", browserWait)
			if want := srv.URL + "/challenge/" + tok + "?return_url=" + url.QueryEscape(srv.URL+"/pay/"+tok); at != want {
				t.Errorf("challenge at %s, want %s", at, want)
			}
			tab.Do(browserWait, "answer", chromedp.Click(chromedp.ID(c.button)))
			if got := waitLocation(t, tab, merchant.URL, browserWait); got != merchant.URL+c.land+"ps_"+tok {
				t.Errorf("landed on %s", got)
			}
			noProblems(t, tab)
		})
	}

	t.Run("3-D Secure, back without answering", func(t *testing.T) {
		t.Parallel()
		tok := "pst_3ds_back"
		st.add(tok, "sec_"+tok, stubSession("ps_"+tok, "ACTIVE", "USD", "en-US", 999, []string{"card"}, merchant.URL))
		tab := open(t, tok, "sec_"+tok)
		tab.Do(browserWait, "pay", chromedp.Click(chromedp.ID("card-3ds")), chromedp.Click(chromedp.ID("pay-button")))
		waitLocation(t, tab, srv.URL+"/challenge/"+tok, browserWait)
		// Back as a customer presses it: the page may come from the
		// back-forward cache, with no load event
		tab.Do(browserWait, "back", chromedp.Evaluate[chromedp.Void](`history.back()`))
		waitLocation(t, tab, srv.URL+"/pay/"+tok, browserWait)
		// the page waits, then offers the way back to the bank. (chromedp's
		// DOM queries can miss a document restored from the back-forward
		// cache, so this looks through the page's own script.)
		waitJS(t, tab, `document.getElementById("resume-link").getClientRects().length > 0 && `+
			`document.getElementById("resume-link").textContent === "Continue to your bank"`)
		tab.Do(browserWait, "resume", chromedp.Evaluate[chromedp.Void](`document.getElementById("resume-link").click()`))
		waitLocation(t, tab, srv.URL+"/challenge/"+tok, browserWait)
		tab.Do(browserWait, "answer", chromedp.Click(chromedp.ID("succeed")))
		if got := waitLocation(t, tab, merchant.URL, browserWait); got != merchant.URL+"/done?order=42&session_id=ps_"+tok {
			t.Errorf("landed on %s", got)
		}
		noProblems(t, tab)
	})

	t.Run("an outcome that takes a while", func(t *testing.T) {
		t.Parallel()
		st.add("pst_slow", "sec_slow", stubSession("ps_slow", "ACTIVE", "USD", "en-US", 999, []string{"card"}, merchant.URL))
		tab := open(t, "pst_slow", "sec_slow")
		tab.Do(browserWait, "pay", chromedp.Click(chromedp.ID("card-insufficient")), chromedp.Click(chromedp.ID("pay-button")))
		if got := text(t, tab, "status"); got != "Processing your payment…" {
			t.Errorf("status %q", got)
		}
		if enabled := browser.Get(tab, browserWait, "button", chromedp.Evaluate[bool](`!document.getElementById("pay-button").disabled`)); enabled {
			t.Error("the pay button takes clicks while the payment runs")
		}
		waitLocation(t, tab, merchant.URL+"/done?order=42&session_id=ps_slow", browserWait)
		noProblems(t, tab)
	})

	t.Run("bank account", func(t *testing.T) {
		t.Parallel()
		st.add("pst_ach", "sec_ach", stubSession("ps_ach", "ACTIVE", "USD", "en-US", 250000, []string{"ach"}, merchant.URL))
		tab := open(t, "pst_ach", "sec_ach")
		if got := text(t, tab, "amount"); got != "$2,500.00" {
			t.Errorf("amount shows %q", got)
		}
		if visible(t, tab, "card-fields") || visible(t, tab, "method-choice") {
			t.Error("an ACH-only session shows cards or a method choice")
		}
		tab.Do(browserWait, "a short routing number", chromedp.SendKeys(chromedp.ID("ach-routing"), "12345"),
			chromedp.Click(chromedp.ID("pay-button")))
		if got := text(t, tab, "ach-routing-error"); got != "Enter the 9-digit routing number." {
			t.Errorf("routing error %q", got)
		}
		if got := text(t, tab, "ach-account-error"); !strings.Contains(got, "4 to 17 digits") {
			t.Errorf("account error %q", got)
		}
		if got := browser.Get(tab, browserWait, "focus", chromedp.Evaluate[string](`document.activeElement.id`)); got != "ach-routing" {
			t.Errorf("focus is on %q, want the first field to correct", got)
		}
		tab.Do(browserWait, "a routing number that fails its checksum", clearField("ach-routing"),
			chromedp.SendKeys(chromedp.ID("ach-routing"), "011000016"), chromedp.Click(chromedp.ID("pay-button")))
		if got := text(t, tab, "ach-routing-error"); !strings.Contains(got, "not valid") {
			t.Errorf("checksum error %q", got)
		}
		if len(st.submits["pst_ach"]) != 0 {
			t.Errorf("an invalid form was submitted: %q", st.submits["pst_ach"])
		}
		tab.Do(browserWait, "a good account", clearField("ach-routing"),
			chromedp.SendKeys(chromedp.ID("ach-routing"), "011000015"), chromedp.SendKeys(chromedp.ID("ach-account"), "000123456789"),
			chromedp.Click(chromedp.ID("pay-button")))
		waitLocation(t, tab, merchant.URL+"/done", browserWait)
		if s := st.submits["pst_ach"]; len(s) != 1 || s[0] != "sandbox:ach:011000015:000123456789" {
			t.Errorf("submits %q", s)
		}
		noProblems(t, tab)
	})

	messages := []struct {
		name, token, secret, status string
		want                        string
	}{
		{"expired", "pst_exp", "sec_exp", "EXPIRED", "This payment link has expired"},
		{"completed, opened again", "pst_done", "sec_done", "COMPLETED", "This payment is complete"},
		{"failed for good", "pst_fail", "sec_fail", "FAILED", "This payment could not be completed"},
		{"wrong secret", "pst_wrong", "", "ACTIVE", "This payment link is not valid"},
		{"no secret", "pst_nosecret", "-", "ACTIVE", "This payment link is incomplete"},
	}
	for _, m := range messages {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			s := stubSession("ps_"+m.token, m.status, "JPY", "ja-JP", 5000, []string{"card"}, merchant.URL)
			st.add(m.token, "right_"+m.token, s)
			secret := m.secret
			switch secret {
			case "":
				secret = "wrong"
			case "-":
				secret = ""
			default:
				secret = "right_" + m.token
			}
			tab := open(t, m.token, secret)
			if got := text(t, tab, "message-title"); got != m.want {
				t.Errorf("message %q, want %q", got, m.want)
			}
			if visible(t, tab, "pay-form") {
				t.Error("a form is shown")
			}
			noProblems(t, tab)
		})
	}

	t.Run("screenshot at 375 px", func(t *testing.T) {
		t.Parallel()
		s := stubSession("ps_shot", "ACTIVE", "EUR", "fr-FR", 1234567, []string{"card", "ach"}, merchant.URL)
		st.add("pst_shot", "sec_shot", s)
		tab := b.Tab(t)
		tab.Do(browserWait, "open at 375 px", chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile),
			chromedp.Navigate(srv.URL+"/pay/pst_shot#sec_shot"), chromedp.WaitVisible(chromedp.ID("pay-button")))
		wide := browser.Get(tab, browserWait, "page width", chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		if wide > 375 {
			t.Errorf("the page is %d px wide at a 375 px viewport: it scrolls sideways", wide)
		}
		path := tab.Screenshot("paypage-stub-375.png", 375, 812)
		t.Logf("screenshot: %s", path)
		noProblems(t, tab)
	})
}
