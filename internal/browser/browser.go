// Package browser drives a real headless Chromium (Debian's chromium) from
// tests with chromedp: one browser per test, a tab per journey, the page's
// JavaScript exceptions, console errors and Content-Security-Policy
// violations collected per tab, and screenshots saved under the git-ignored
// .run/screenshots/ of the repository. A test that needs the browser fails,
// never skips, when chromium is missing: scripts/test.sh installs it. It is
// a test helper: nothing payd runs imports it.
package browser

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ExecPath finds the browser: $PAYD_CHROMIUM, else chromium (Debian's
// package), chromium-browser or google-chrome on PATH.
func ExecPath() (string, error) {
	if p := os.Getenv("PAYD_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium on PATH: run the tests with scripts/test.sh (make test), which installs Debian's chromium, or apt-get install chromium, or set PAYD_CHROMIUM")
}

// Browser is one headless Chromium; it stops when the test ends.
type Browser struct {
	ctx context.Context
}

// Start launches Chromium for t, or fails t.
func Start(t testing.TB) *Browser {
	t.Helper()
	path, err := ExecPath()
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root in containers, where the sandbox cannot start
		chromedp.DisableGPU,
		chromedp.Flag("lang", "en-GB"),
		chromedp.WindowSize(1024, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	// The first Do binds the browser's life to bctx, so it gets no timeout
	// of its own; a browser that does not start fails the test's deadline.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return &Browser{ctx: bctx}
}

// Tab is one browser tab with what went wrong in its pages.
type Tab struct {
	t   testing.TB
	ctx context.Context

	mu       sync.Mutex
	messages []chromedp.ConsoleMessage
}

// Tab opens a new tab, closed when t ends. Tabs of one browser may be used
// from parallel subtests, each tab by one goroutine.
func (b *Browser) Tab(t testing.TB) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	tab := &Tab{t: t, ctx: ctx}
	// The first Do attaches the tab and binds it to the context it gets,
	// so that one has no timeout of its own (chromedp's docs, "Set a
	// timeout for one action").
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			tab.mu.Lock()
			tab.messages = append(tab.messages, m)
			tab.mu.Unlock()
		}
	}()
	return tab
}

// Context is the tab's context, for chromedp calls of one's own.
func (tab *Tab) Context() context.Context { return tab.ctx }

// Problems returns what went wrong in the tab's pages so far: uncaught
// JavaScript exceptions, console.error calls and the browser's own errors
// (every Content-Security-Policy violation among them), except the network
// errors of answers the page asked for and handles (a 404 for a session
// that does not exist).
func (tab *Tab) Problems() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	var out []string
	for _, m := range tab.messages {
		switch {
		case m.IsException():
		case m.Type == "error" && m.Source != "network":
		case m.Type == "assert":
		default:
			continue
		}
		p := string(m.Type) + ": " + m.Text
		if m.Source != "" {
			p = m.Source + " " + p
		}
		if m.URL != "" {
			p += " (" + m.URL + ")"
		}
		out = append(out, p)
	}
	return out
}

// Console returns every message of the tab's pages so far, as text.
func (tab *Tab) Console() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	var out []string
	for _, m := range tab.messages {
		out = append(out, m.Source+" "+string(m.Type)+": "+m.Text)
	}
	return out
}

// Do runs steps in the tab within timeout, or fails the test with where
// the page was and what it said.
func (tab *Tab) Do(timeout time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	if err := tab.Try(timeout, steps...); err != nil {
		tab.t.Fatalf("%s: %v (page %s; console %q)", what, err, tab.Location(), tab.Console())
	}
}

// Try is Do that returns the error.
func (tab *Tab) Try(timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(tab.ctx, timeout)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// Location is the tab's URL now ("" if it cannot be read).
func (tab *Tab) Location() string {
	ctx, cancel := context.WithTimeout(tab.ctx, 5*time.Second)
	defer cancel()
	u, _ := chromedp.Run(ctx, chromedp.Location())
	return u
}

// Get runs one action that returns a value, within timeout, or fails the
// test.
func Get[T any](tab *Tab, timeout time.Duration, what string, a chromedp.Action[T]) T {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tab.t.Fatalf("%s: %v (page %s; console %q)", what, err, tab.Location(), tab.Console())
	}
	return v
}

// Screenshot makes the viewport width × height CSS pixels (a phone: 375 ×
// 812), captures the whole page as PNG into ScreenshotDir()/name and returns
// the file's path.
func (tab *Tab) Screenshot(name string, width, height int64) string {
	tab.t.Helper()
	tab.Do(30*time.Second, "viewport for "+name, chromedp.EmulateViewport(width, height), chromedp.Sleep(100*time.Millisecond))
	png := Get(tab, 30*time.Second, "screenshot "+name, chromedp.FullScreenshot(100))
	dir, err := ScreenshotDir()
	if err != nil {
		tab.t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tab.t.Fatal(err)
	}
	return path
}

// ScreenshotDir is .run/screenshots/ at the repository's root (the folder
// of go.mod), created if needed; .run/ is git-ignored.
func ScreenshotDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("browser: no go.mod above the working directory")
		}
		dir = parent
	}
	out := filepath.Join(dir, ".run", "screenshots")
	return out, os.MkdirAll(out, 0o755)
}
