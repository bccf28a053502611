package intake_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/payd/payd/intake"
	"github.com/payd/payd/internal/browser"
	"github.com/payd/payd/internal/testenv"
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
	srv := httptest.NewServer(testenv.SpecCheck(t, intake.NewServer(intake.Deps{})))
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
