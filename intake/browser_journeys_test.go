package intake_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/payd/payd/intake"
	"github.com/payd/payd/internal/browser"
	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/processor"
)

// TestBrowserJourneys pays payment sessions on the hosted page in a real
// headless Chromium, against the real intake, worker and in-process sandbox
// on PostgreSQL and Redis (the harness serves the sandbox's 3-D Secure
// pages on intake's address, as payd does): one browser, a tab per
// journey, the journeys in parallel, one harness (and a second one, with a
// slow sandbox, for the journey whose outcome takes a while). A journey
// that pays ends where the customer lands (the merchant's success_url or
// failure_url with session_id appended, on a local server) and checks the
// payment in the database; the others check the message the page shows
// for a session that cannot be paid (expired, completed, failed for good,
// canceled, a wrong or missing secret). Every tab fails its journey on a
// JavaScript exception, a console error or a Content-Security-Policy
// violation (noProblems).
func TestBrowserJourneys(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	// a 3-D Secure challenge waits long enough for a customer who goes
	// Back first (the default policy's 900 units are 9 s here)
	policy := payment.DefaultRetryPolicy(10 * time.Millisecond)
	policy.ActionTimeout = 2 * time.Minute
	h := testenv.Start(t, testenv.Options{Log: logs, Processor: processor.Config{Policy: policy}})
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
		for _, s := range append(secrets, "sandbox:pm_card", "sandbox:ach", "011000015", "000123456789") {
			if strings.Contains(out, s) {
				t.Errorf("payd's log holds %q", s)
			}
		}
	})

	// createOn makes a session of tenant A through h's API and returns its
	// id and the hosted page's link (_links.redirect.href); create does
	// it on the journeys' harness.
	createOn := func(t *testing.T, h *testenv.Harness, over map[string]any) (id, link string) {
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
	create := func(t *testing.T, over map[string]any) (id, link string) {
		t.Helper()
		return createOn(t, h, over)
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
	sessionOn := func(t *testing.T, h *testenv.Harness, id string) payment.Session {
		t.Helper()
		s, err := h.Store.GetSession(context.Background(), h.TenantA, id)
		if err != nil {
			t.Fatalf("session %s: %v", id, err)
		}
		return s
	}
	session := func(t *testing.T, id string) payment.Session {
		t.Helper()
		return sessionOn(t, h, id)
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

	t.Run("paid by keyboard alone", func(t *testing.T) {
		t.Parallel()
		id, link := create(t, map[string]any{"amount": 123456, "enabled_payment_methods": []string{"card", "ach"},
			"items": []any{
				map[string]any{"name": "A book about ledgers", "quantity": 2, "unit_price": 30864, "total_amount": 61728},
				map[string]any{"name": "Gift wrap", "quantity": 1, "unit_price": 61728, "total_amount": 61728},
			}})
		secret := link[strings.Index(link, "#")+1:]
		tab := b.Tab(t)
		calls := recordPageCalls(t, tab, link)
		tab.Do(browserWait, "open the page", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("pay-button")))
		if got := text(t, tab, "amount"); got != "£1,234.56" {
			t.Errorf("amount shows %q", got)
		}
		if got := text(t, tab, "merchant"); got != "Acme Books" {
			t.Errorf("merchant shows %q", got)
		}
		if got := text(t, tab, "items"); !strings.Contains(got, "A book about ledgers") || !strings.Contains(got, "£308.64") || !strings.Contains(got, "£617.28") {
			t.Errorf("items show %q", got)
		}
		if u := tab.Location(); strings.Contains(u, "#") || strings.Contains(u, secret) {
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
		landed(t, tab, merchant.URL+"/ok?order=42&session_id="+id)
		if s := calls.submits(); len(s) != 1 || s[0] != "sandbox:pm_card_visa" {
			t.Errorf("the page submitted %q", s)
		}
		s := session(t, id)
		if p := finalPayment(t, h, s.PaymentID, browserWait); p.Status != payment.StatusSucceeded || p.Method != payment.MethodCard {
			t.Errorf("payment %s %s", p.Method, p.Status)
		}
		if s.Status != payment.SessionCompleted || sessionPayments(t, h, id) != 1 {
			t.Errorf("session %s with %d payments", s.Status, sessionPayments(t, h, id))
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
			at := waitLocation(t, tab, h.URL+"/sandbox/challenge/", browserWait)
			// the bank's page, told to send the customer back to the page
			pending, err := h.Store.GetPayment(context.Background(), h.TenantA, session(t, id).PaymentID)
			if err != nil {
				t.Fatal(err)
			}
			if want := pending.ActionURL + "?return_url=" + url.QueryEscape(h.URL+"/pay/"+pageToken(link)); at != want {
				t.Errorf("challenge at %s, want %s", at, want)
			}
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

	t.Run("3-D Secure, back without answering", func(t *testing.T) {
		t.Parallel()
		id, link := create(t, nil)
		tab := open(t, link)
		pay(tab, "card-3ds")
		waitLocation(t, tab, h.URL+"/sandbox/challenge/", browserWait)
		// Back as a customer presses it: the page may come from the
		// back-forward cache, with no load event
		tab.Do(browserWait, "back", chromedp.Evaluate[chromedp.Void](`history.back()`))
		waitLocation(t, tab, h.URL+"/pay/"+pageToken(link), browserWait)
		// the page waits, then offers the way back to the bank. (chromedp's
		// DOM queries can miss a document restored from the back-forward
		// cache, so this looks through the page's own script.)
		waitJS(t, tab, `document.getElementById("resume-link").getClientRects().length > 0 && `+
			`document.getElementById("resume-link").textContent === "Continue to your bank"`)
		if s := session(t, id); s.Status != payment.SessionProcessing {
			t.Errorf("session %s while the challenge waits", s.Status)
		}
		tab.Do(browserWait, "resume", chromedp.Evaluate[chromedp.Void](`document.getElementById("resume-link").click()`))
		waitLocation(t, tab, h.URL+"/sandbox/challenge/", browserWait)
		tab.Do(browserWait, "answer", chromedp.Click(chromedp.ID("succeed")))
		landed(t, tab, merchant.URL+"/ok?order=42&session_id="+id)
		if p := finalPayment(t, h, session(t, id).PaymentID, browserWait); p.Status != payment.StatusSucceeded {
			t.Errorf("payment %s", p.Status)
		}
		if s := session(t, id); s.Status != payment.SessionCompleted || sessionPayments(t, h, id) != 1 {
			t.Errorf("session %s with %d payments", s.Status, sessionPayments(t, h, id))
		}
		noProblems(t, tab)
	})

	t.Run("declined, then a retry", func(t *testing.T) {
		t.Parallel()
		id, link := create(t, map[string]any{"customer_retry": map[string]any{"max_attempts": 3},
			"amount": 4999, "currency": "EUR", "locale": "de-DE", "enabled_payment_methods": []string{"card"},
			"items": []any{map[string]any{"name": "Ein Buch über Hauptbücher", "quantity": 1, "unit_price": 4999, "total_amount": 4999}}})
		tab := b.Tab(t)
		calls := recordPageCalls(t, tab, link)
		tab.Do(browserWait, "open the page", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("pay-button")))
		if got := text(t, tab, "amount"); got != "49,99\u00a0€" {
			t.Errorf("amount shows %q", got)
		}
		if visible(t, tab, "method-choice") || visible(t, tab, "ach-fields") {
			t.Error("a card-only session shows a method choice or the bank account form")
		}
		pay(tab, "card-declined")
		if got := text(t, tab, "form-error"); !strings.Contains(got, "declined") || !strings.Contains(got, "try again") {
			t.Errorf("the decline shows %q", got)
		}
		t.Logf("screenshot: %s", tab.Screenshot("paypage-declined-375.png", 375, 812))
		first := session(t, id).PaymentID
		if p := finalPayment(t, h, first, browserWait); p.Status != payment.StatusFailed {
			t.Errorf("declined payment %s", p.Status)
		}
		pay(tab, "card-visa")
		landed(t, tab, merchant.URL+"/ok?order=42&session_id="+id)
		if s := calls.submits(); strings.Join(s, ",") != "sandbox:pm_card_declined,sandbox:pm_card_visa" {
			t.Errorf("the page submitted %q", s)
		}
		s := session(t, id)
		if s.PaymentID == first || s.Status != payment.SessionCompleted {
			t.Errorf("session %s with payment %s (first %s)", s.Status, s.PaymentID, first)
		}
		if p := finalPayment(t, h, s.PaymentID, browserWait); p.Status != payment.StatusSucceeded {
			t.Errorf("retry payment %s", p.Status)
		}
		noProblems(t, tab)
	})

	// The submit waits SessionSubmitWait for its payment's outcome; a
	// sandbox slower than that makes it answer 202 with a poll action, and
	// the page must poll the session until the payment finishes. The
	// latency is the sandbox's, so this journey has a harness of its own.
	t.Run("an outcome that takes a while", func(t *testing.T) {
		t.Parallel()
		const wait, latency = 200 * time.Millisecond, 1500 * time.Millisecond
		slow := testenv.Start(t, testenv.Options{Log: logs, Sandbox: sandboxLatency(latency),
			Intake: intake.Config{SessionSubmitWait: wait}})
		id, link := createOn(t, slow, map[string]any{"currency": "USD", "locale": "en-US"})
		tab := b.Tab(t)
		calls := recordPageCalls(t, tab, link)
		tab.Do(browserWait, "open the page", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("pay-button")))
		pay(tab, "card-visa")
		// the submit's answer: still pending, poll
		waitFor(t, browserWait, "the submit's answer", func() bool { return calls.answered("POST", "/submit") })
		if st := calls.status("POST", "/submit"); st != 202 {
			t.Errorf("the submit was answered %d, want 202 (a sandbox slower than the submit wait)", st)
		}
		state := browser.Get(tab, browserWait, "the page while it waits", chromedp.Evaluate[[]any](
			`[document.getElementById("status").textContent, document.getElementById("pay-button").disabled]`))
		if len(state) != 2 || state[0] != "Processing your payment…" || state[1] != true {
			t.Errorf("while the payment runs the page shows %v, want the status and a pay button that takes no click", state)
		}
		landed(t, tab, merchant.URL+"/ok?order=42&session_id="+id)
		if n := calls.after("POST", "/submit", "GET", "/session"); n < 1 {
			t.Errorf("the page read the session %d times after the submit's 202: it did not poll", n)
		}
		if p := finalPayment(t, slow, sessionOn(t, slow, id).PaymentID, browserWait); p.Status != payment.StatusSucceeded {
			t.Errorf("payment %s", p.Status)
		}
		noProblems(t, tab)
	})

	t.Run("bank account", func(t *testing.T) {
		t.Parallel()
		id, link := create(t, map[string]any{"currency": "USD", "locale": "en-US", "enabled_payment_methods": []string{"ach"},
			"amount": 250000, "items": []any{map[string]any{"name": "A year of ledgers", "quantity": 1, "unit_price": 250000, "total_amount": 250000}}})
		tab := b.Tab(t)
		calls := recordPageCalls(t, tab, link)
		tab.Do(browserWait, "open the page", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("pay-button")))
		if got := text(t, tab, "amount"); got != "$2,500.00" {
			t.Errorf("amount %q", got)
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
		if s := calls.submits(); len(s) != 0 {
			t.Errorf("an invalid form was submitted: %q", s)
		}
		if s := session(t, id); s.PaymentID != "" || s.Status != payment.SessionActive {
			t.Errorf("after an invalid form: session %s with payment %q", s.Status, s.PaymentID)
		}
		tab.Do(browserWait, "a good account", clearField("ach-routing"),
			chromedp.SendKeys(chromedp.ID("ach-routing"), "011000015"), chromedp.SendKeys(chromedp.ID("ach-account"), "000123456789"),
			chromedp.Click(chromedp.ID("pay-button")))
		landed(t, tab, merchant.URL+"/ok?order=42&session_id="+id)
		if s := calls.submits(); len(s) != 1 || s[0] != "sandbox:ach:011000015:000123456789" {
			t.Errorf("the page submitted %q", s)
		}
		p := finalPayment(t, h, session(t, id).PaymentID, browserWait)
		if p.Status != payment.StatusSucceeded || p.Method != payment.MethodACH || p.Amount.Minor != 250000 {
			t.Errorf("payment %s %s %d", p.Method, p.Status, p.Amount.Minor)
		}
		noProblems(t, tab)
	})

	// What the page shows, and that it shows no form, for a session that
	// cannot be paid and for a link that is not whole.
	submitVia := func(t *testing.T, id, sessionData string, want payment.SessionStatus) {
		t.Helper()
		if r := h.Do("POST", "/v1/payment-sessions/"+id+"/submit", h.KeyA, submitBody(sessionData, 2500), nil); r.Status >= 500 {
			t.Fatalf("submit: %d %s", r.Status, r.Body)
		}
		waitFor(t, browserWait, "session "+string(want), func() bool { return session(t, id).Status == want })
	}
	for _, m := range []struct {
		name string
		over func() map[string]any
		prep func(t *testing.T, id string)
		link func(string) string // nil: the link as created
		want string              // the message's title
		text string              // in its text, if not ""
	}{
		{name: "expired", want: "This payment link has expired",
			over: func() map[string]any {
				return map[string]any{"expires_on": time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339Nano)}
			},
			prep: func(t *testing.T, id string) {
				waitFor(t, browserWait, "session expired", func() bool { return session(t, id).Status == payment.SessionExpired })
			}},
		{name: "completed, opened again", want: "This payment is complete",
			prep: func(t *testing.T, id string) { submitVia(t, id, "sandbox:pm_card_visa", payment.SessionCompleted) }},
		{name: "failed for good", want: "This payment could not be completed", text: "declined",
			over: func() map[string]any { return map[string]any{"customer_retry": map[string]any{"max_attempts": 1}} },
			prep: func(t *testing.T, id string) { submitVia(t, id, "sandbox:pm_card_declined", payment.SessionFailed) }},
		{name: "canceled by the merchant", want: "This payment was canceled",
			prep: func(t *testing.T, id string) {
				if r := h.Do("POST", "/v1/payment-sessions/"+id+"/cancel", h.KeyA, nil, nil); r.Status != 200 {
					t.Fatalf("cancel: %d %s", r.Status, r.Body)
				}
			}},
		{name: "wrong secret", want: "This payment link is not valid",
			link: func(l string) string { return l[:strings.Index(l, "#")] + "#pss_not_the_secret" }},
		{name: "no secret", want: "This payment link is incomplete",
			link: func(l string) string { return l[:strings.Index(l, "#")] }},
	} {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			var over map[string]any
			if m.over != nil {
				over = m.over()
			}
			id, link := create(t, over)
			if m.prep != nil {
				m.prep(t, id)
			}
			if m.link != nil {
				link = m.link(link)
			}
			tab := b.Tab(t)
			tab.Do(browserWait, "open the page", chromedp.Navigate(link))
			if got := text(t, tab, "message-title"); got != m.want {
				t.Errorf("message %q, want %q", got, m.want)
			}
			if got := text(t, tab, "message-text"); !strings.Contains(got, m.text) {
				t.Errorf("message text %q, want it to say %q", got, m.text)
			}
			if visible(t, tab, "pay-form") {
				t.Error("a form is shown")
			}
			if s := session(t, id); m.link != nil && (s.Status != payment.SessionActive || s.PaymentID != "") {
				t.Errorf("a link that is not whole changed the session: %s, payment %q", s.Status, s.PaymentID)
			}
			noProblems(t, tab)
		})
	}

	for _, c := range []struct {
		locale, shot string
		amount       int64
		want         string
		items        []any
	}{
		{"de-DE", "paypage-375.png", 123456, "1.234,56\u00a0€", []any{
			map[string]any{"name": "Ein Buch über Hauptbücher", "quantity": 2, "unit_price": 50000, "total_amount": 100000},
			map[string]any{"name": "Versand", "quantity": 1, "unit_price": 23456, "total_amount": 23456},
		}},
		{"fr-FR", "paypage-fr-375.png", 1234567, "12\u202f345,67\u00a0€", []any{
			map[string]any{"name": "Un livre sur les grands livres", "quantity": 2, "unit_price": 308642, "total_amount": 617284},
			map[string]any{"name": "Paquet cadeau", "quantity": 1, "unit_price": 617283, "total_amount": 617283},
		}},
	} {
		t.Run("screenshot at 375 px, "+c.locale, func(t *testing.T) {
			t.Parallel()
			_, link := create(t, map[string]any{"currency": "EUR", "locale": c.locale, "amount": c.amount,
				"enabled_payment_methods": []string{"card", "ach"}, "items": c.items})
			tab := b.Tab(t)
			tab.Do(browserWait, "open at 375 px", chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile),
				chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("pay-button")))
			if got := text(t, tab, "amount"); got != c.want {
				t.Errorf("amount %q, want %q", got, c.want)
			}
			if w := browser.Get(tab, browserWait, "width", chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 375 {
				t.Errorf("the page is %d px wide at 375 px: it scrolls sideways", w)
			}
			t.Logf("screenshot: %s", tab.Screenshot(c.shot, 375, 812))
			noProblems(t, tab)
		})
	}
}

// pageToken is the payment_session_token of a page link.
func pageToken(link string) string {
	_, rest, _ := strings.Cut(link, "/pay/")
	tok, _, _ := strings.Cut(rest, "#")
	return tok
}

// sessionPayments counts the payments a session's submits recorded.
func sessionPayments(t *testing.T, h *testenv.Harness, id string) int {
	t.Helper()
	var n int
	if err := h.Store.DB().QueryRowContext(context.Background(),
		`SELECT count(*) FROM payments WHERE session_id = $1`, id).Scan(&n); err != nil {
		t.Fatalf("count the payments of %s: %v", id, err)
	}
	return n
}

// pageCalls are the calls a tab made to one session's page routes (GET
// /pay/{token}/session, POST /pay/{token}/submit), in the order the browser
// sent them, with what it sent and the status it got back, read from
// Chromium's Network domain (which chromedp enables on every tab): what
// the page submitted, and whether it polled.
type pageCalls struct {
	mu    sync.Mutex
	calls []*pageCall
	byID  map[network.RequestID]*pageCall
}

type pageCall struct {
	method, route string // route: "/session" or "/submit"
	body          string
	status        int64 // 0 until answered
}

// recordPageCalls records the calls of tab to the routes of link's token,
// from now on: call it before the tab opens the page.
func recordPageCalls(t *testing.T, tab *browser.Tab, link string) *pageCalls {
	t.Helper()
	pc := &pageCalls{byID: map[network.RequestID]*pageCall{}}
	prefix := "/pay/" + pageToken(link) + "/"
	err := chromedp.Listen(tab.Context(), func(ev any) {
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			u, err := url.Parse(e.Request.URL)
			if err != nil || !strings.HasPrefix(u.Path, prefix) {
				return
			}
			c := &pageCall{method: e.Request.Method, route: "/" + strings.TrimPrefix(u.Path, prefix)}
			for _, d := range e.Request.PostDataEntries {
				c.body += string(d.Bytes)
			}
			pc.mu.Lock()
			pc.calls = append(pc.calls, c)
			pc.byID[e.RequestID] = c
			pc.mu.Unlock()
		case *network.EventResponseReceived:
			pc.mu.Lock()
			if c := pc.byID[e.RequestID]; c != nil && e.Response != nil {
				c.status = e.Response.Status
			}
			pc.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("listen to the tab's network: %v", err)
	}
	return pc
}

// submits are the session_data of the page's submits, in order.
func (pc *pageCalls) submits() []string {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var out []string
	for _, c := range pc.calls {
		if c.method == "POST" && c.route == "/submit" {
			var b struct {
				SessionData string `json:"session_data"`
			}
			if err := json.Unmarshal([]byte(c.body), &b); err != nil {
				out = append(out, "undecodable body "+c.body)
				continue
			}
			out = append(out, b.SessionData)
		}
	}
	return out
}

// status is the answer's status of the first call of method to route, 0
// while none was answered.
func (pc *pageCalls) status(method, route string) int64 {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, c := range pc.calls {
		if c.method == method && c.route == route {
			return c.status
		}
	}
	return 0
}

func (pc *pageCalls) answered(method, route string) bool { return pc.status(method, route) != 0 }

// after counts the calls of method to route sent after the first call to
// the first method and route.
func (pc *pageCalls) after(firstMethod, firstRoute, method, route string) int {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	n, seen := 0, false
	for _, c := range pc.calls {
		switch {
		case !seen && c.method == firstMethod && c.route == firstRoute:
			seen = true
		case seen && c.method == method && c.route == route:
			n++
		}
	}
	return n
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
