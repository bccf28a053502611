package intake_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/payd/payd/internal/browser"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
)

// TestBrowserJourneys pays payment sessions on the hosted page in a real
// headless Chromium, against the real intake, worker and in-process sandbox
// on PostgreSQL and Redis (the harness serves the sandbox's 3-D Secure
// pages on intake's address, as payd does): one browser, a tab per
// journey, the journeys in parallel. Each ends where the customer lands
// (the merchant's success_url or failure_url with session_id appended, on
// a local server) and checks the payment in the database.
func TestBrowserJourneys(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	h := testenv.Start(t, testenv.Options{Log: logs})
	b := browser.Start(t)
	merchant := merchantSite(t)
	// After every journey (a parent's cleanup runs after its subtests):
	// payd logged neither a session secret, which only ever travels in
	// the link's fragment and a header, nor the page's session_data.
	var (
		mu      sync.Mutex
		secrets []string
	)
	t.Cleanup(func() {
		out := logs.String()
		if !strings.Contains(out, `"route":"GET /pay/{token}/session"`) {
			t.Errorf("payd logged no page call at all: the check below proves nothing")
		}
		mu.Lock()
		defer mu.Unlock()
		for _, s := range append(secrets, "sandbox:pm_card", "sandbox:ach", "011000015") {
			if strings.Contains(out, s) {
				t.Errorf("payd's log holds %q", s)
			}
		}
	})

	// create makes a session of tenant A through the API and returns its id
	// and the hosted page's link (_links.redirect.href).
	create := func(t *testing.T, over map[string]any) (id, link string) {
		t.Helper()
		body := map[string]any{
			"amount": 2500, "currency": "GBP", "locale": "en-GB", "display_name": "Acme Books",
			"description": "Order 42", "reference": "ORD-42",
			"billing":     map[string]any{"address": map[string]any{"country": "GB", "city": "London"}},
			"success_url": merchant.URL + "/ok?order=42", "failure_url": merchant.URL + "/no",
			"items": []any{
				map[string]any{"name": "A book about ledgers", "quantity": 2, "unit_price": 1000, "total_amount": 2000},
				map[string]any{"name": "Gift wrap", "quantity": 1, "unit_price": 500, "total_amount": 500},
			},
		}
		for k, v := range over {
			body[k] = v
		}
		raw, _ := json.Marshal(body)
		s := jsonObj(t, h.Do("POST", "/v1/payment-sessions", h.KeyA, raw, nil), 201)
		link = s["_links"].(map[string]any)["redirect"].(map[string]any)["href"].(string)
		secret := s["payment_session_secret"].(string)
		mu.Lock()
		secrets = append(secrets, secret)
		mu.Unlock()
		if want := h.URL + "/pay/" + s["payment_session_token"].(string) + "#" + secret; link != want {
			t.Fatalf("_links.redirect.href = %s, want %s", link, want)
		}
		return s["id"].(string), link
	}
	open := func(t *testing.T, link string) *browser.Tab {
		t.Helper()
		tab := b.Tab(t)
		tab.Do(browserWait, "open the page", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("pay-button")))
		return tab
	}
	pay := func(tab *browser.Tab, card string) {
		tab.Do(browserWait, "pay with "+card, chromedp.Click(chromedp.ID(card)), chromedp.Click(chromedp.ID("pay-button")))
	}
	session := func(t *testing.T, id string) payment.Session {
		t.Helper()
		s, err := h.Store.GetSession(context.Background(), h.TenantA, id)
		if err != nil {
			t.Fatalf("session %s: %v", id, err)
		}
		return s
	}
	// landed waits for the browser at the merchant and checks the URL.
	landed := func(t *testing.T, tab *browser.Tab, want string) {
		t.Helper()
		if got := waitLocation(t, tab, merchant.URL, browserWait); got != want {
			t.Errorf("landed on %s, want %s", got, want)
		}
	}

	t.Run("card", func(t *testing.T) {
		t.Parallel()
		id, link := create(t, nil)
		tab := open(t, link)
		if got := text(t, tab, "amount"); got != "£25.00" {
			t.Errorf("amount %q", got)
		}
		if got := text(t, tab, "items"); !strings.Contains(got, "A book about ledgers") || !strings.Contains(got, "£10.00") {
			t.Errorf("items %q", got)
		}
		pay(tab, "card-visa")
		landed(t, tab, merchant.URL+"/ok?order=42&session_id="+id)
		if p := finalPayment(t, h, session(t, id).PaymentID, browserWait); p.Status != payment.StatusSucceeded {
			t.Errorf("payment %s", p.Status)
		}
		if s := session(t, id); s.Status != payment.SessionCompleted {
			t.Errorf("session %s", s.Status)
		}
		noProblems(t, tab)
	})

	for _, c := range []struct {
		name, button, land string
		status             payment.Status
		session            payment.SessionStatus
	}{
		{"3-D Secure approved", "succeed", "/ok?order=42&session_id=", payment.StatusSucceeded, payment.SessionCompleted},
		{"3-D Secure denied", "fail", "/no?session_id=", payment.StatusFailed, payment.SessionFailed},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			id, link := create(t, nil)
			tab := open(t, link)
			pay(tab, "card-3ds")
			waitLocation(t, tab, h.URL+"/sandbox/challenge/", browserWait)
			tab.Do(browserWait, "answer the challenge", chromedp.Click(chromedp.ID(c.button)))
			landed(t, tab, merchant.URL+c.land+id)
			if p := finalPayment(t, h, session(t, id).PaymentID, browserWait); p.Status != c.status {
				t.Errorf("payment %s, want %s", p.Status, c.status)
			}
			if s := session(t, id); s.Status != c.session {
				t.Errorf("session %s, want %s", s.Status, c.session)
			}
			noProblems(t, tab)
		})
	}

	t.Run("declined, then a retry", func(t *testing.T) {
		t.Parallel()
		id, link := create(t, map[string]any{"customer_retry": map[string]any{"max_attempts": 3}})
		tab := open(t, link)
		pay(tab, "card-declined")
		if got := text(t, tab, "form-error"); !strings.Contains(got, "declined") {
			t.Errorf("the decline shows %q", got)
		}
		t.Logf("screenshot: %s", tab.Screenshot("paypage-declined-375.png", 375, 812))
		first := session(t, id).PaymentID
		if p := finalPayment(t, h, first, browserWait); p.Status != payment.StatusFailed {
			t.Errorf("declined payment %s", p.Status)
		}
		pay(tab, "card-visa")
		landed(t, tab, merchant.URL+"/ok?order=42&session_id="+id)
		s := session(t, id)
		if s.PaymentID == first || s.Status != payment.SessionCompleted {
			t.Errorf("session %s with payment %s (first %s)", s.Status, s.PaymentID, first)
		}
		if p := finalPayment(t, h, s.PaymentID, browserWait); p.Status != payment.StatusSucceeded {
			t.Errorf("retry payment %s", p.Status)
		}
		noProblems(t, tab)
	})

	t.Run("bank account", func(t *testing.T) {
		t.Parallel()
		id, link := create(t, map[string]any{"currency": "USD", "locale": "en-US", "enabled_payment_methods": []string{"ach"}})
		tab := open(t, link)
		if got := text(t, tab, "amount"); got != "$25.00" {
			t.Errorf("amount %q", got)
		}
		tab.Do(browserWait, "fill the bank account", chromedp.SendKeys(chromedp.ID("ach-routing"), "011000015"),
			chromedp.SendKeys(chromedp.ID("ach-account"), "123456789"), chromedp.Click(chromedp.ID("pay-button")))
		landed(t, tab, merchant.URL+"/ok?order=42&session_id="+id)
		p := finalPayment(t, h, session(t, id).PaymentID, browserWait)
		if p.Status != payment.StatusSucceeded || p.Method != payment.MethodACH {
			t.Errorf("payment %s %s", p.Method, p.Status)
		}
		noProblems(t, tab)
	})

	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		id, link := create(t, map[string]any{"expires_on": time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339Nano)})
		waitFor(t, browserWait, "session expired", func() bool { return session(t, id).Status == payment.SessionExpired })
		tab := b.Tab(t)
		tab.Do(browserWait, "open the page", chromedp.Navigate(link))
		if got := text(t, tab, "message-title"); got != "This payment link has expired" {
			t.Errorf("message %q", got)
		}
		if visible(t, tab, "pay-form") {
			t.Error("an expired session shows a form")
		}
		noProblems(t, tab)
	})

	t.Run("canceled by the merchant", func(t *testing.T) {
		t.Parallel()
		id, link := create(t, nil)
		if r := h.Do("POST", "/v1/payment-sessions/"+id+"/cancel", h.KeyA, nil, nil); r.Status != 200 {
			t.Fatalf("cancel: %d %s", r.Status, r.Body)
		}
		tab := b.Tab(t)
		tab.Do(browserWait, "open the page", chromedp.Navigate(link))
		if got := text(t, tab, "message-title"); got != "This payment was canceled" {
			t.Errorf("message %q", got)
		}
		if visible(t, tab, "pay-form") {
			t.Error("a canceled session shows a form")
		}
		noProblems(t, tab)
	})

	t.Run("screenshot at 375 px", func(t *testing.T) {
		t.Parallel()
		_, link := create(t, map[string]any{"currency": "EUR", "locale": "de-DE", "amount": 123456,
			"enabled_payment_methods": []string{"card", "ach"},
			"items": []any{
				map[string]any{"name": "Ein Buch über Hauptbücher", "quantity": 2, "unit_price": 50000, "total_amount": 100000},
				map[string]any{"name": "Versand", "quantity": 1, "unit_price": 23456, "total_amount": 23456},
			}})
		tab := b.Tab(t)
		tab.Do(browserWait, "open at 375 px", chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile),
			chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("pay-button")))
		if got := text(t, tab, "amount"); got != "1.234,56\u00a0€" {
			t.Errorf("amount %q", got)
		}
		if w := browser.Get(tab, browserWait, "width", chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 375 {
			t.Errorf("the page is %d px wide at 375 px", w)
		}
		t.Logf("screenshot: %s", tab.Screenshot("paypage-375.png", 375, 812))
		noProblems(t, tab)
	})
}

// finalPayment is Harness.WaitFinal for a subtest: it fails t, not the
// test that started the harness.
func finalPayment(t *testing.T, h *testenv.Harness, id string, within time.Duration) payment.Payment {
	t.Helper()
	var p payment.Payment
	waitFor(t, within, "payment "+id+" final", func() bool {
		var err error
		p, err = h.Store.GetPayment(context.Background(), "", id)
		return err == nil && p.Status.Final() && p.NextStep == payment.StepNone
	})
	return p
}
