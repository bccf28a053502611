package intake

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"path"
)

// The hosted payment page (issue 21): plain HTML, CSS and JavaScript
// embedded in the binary and served by intake, no external asset, no inline
// script or style, under a Content-Security-Policy that allows nothing
// else. The page reads and pays its session through the page routes with
// the session secret, which reaches it in the link's fragment and so never
// reaches a server, a log or a Referer (intake/page/pay.js says how).

//go:embed page/index.html page/pay.css page/pay.js
var pageFiles embed.FS

// pageCSP allows the page its own script, style and API calls and nothing
// else: no inline code, no other origin, no framing, no <base>, and forms
// that post only here.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// pageAsset is one embedded file with what its answer needs.
type pageAsset struct {
	body        []byte
	contentType string
	etag        string
}

var (
	pageHTML   = mustPageAsset("index.html", "text/html; charset=utf-8")
	pageAssets = map[string]pageAsset{
		"pay.css": mustPageAsset("pay.css", "text/css; charset=utf-8"),
		"pay.js":  mustPageAsset("pay.js", "text/javascript; charset=utf-8"),
	}
)

func mustPageAsset(name, contentType string) pageAsset {
	b, err := pageFiles.ReadFile(path.Join("page", name))
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(b)
	return pageAsset{body: b, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

// pageHeaders are the security headers of every page answer.
func pageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// handlePayPage serves the page for any token: it is the same static file
// for every session, so it reveals nothing about a token; the page's own
// call with the secret says whether the session exists.
func (s *Server) handlePayPage(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	pageHeaders(h)
	h.Set("Content-Type", pageHTML.contentType)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(pageHTML.body)
	}
	return nil
}

// handlePayAsset serves the page's CSS and JavaScript. They are not
// versioned in their names, so a browser revalidates them (no-cache) and
// gets a 304 while its copy's ETag still matches.
func (s *Server) handlePayAsset(w http.ResponseWriter, r *http.Request) error {
	a, ok := pageAssets[r.PathValue("file")]
	if !ok {
		return errf(http.StatusNotFound, typeNotFound, "route_not_found", "no such page asset")
	}
	h := w.Header()
	pageHeaders(h)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	h.Set("Content-Type", a.contentType)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(a.body)
	}
	return nil
}
