package sandbox

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// challengePage is the 3-D Secure page a customer reaches through ActionURL,
// optionally with ?return_url=… to be sent back to after a button. Plain
// HTML, no script, no external assets. The forms post to the page's own path
// ("?result=…" is resolved against it), so it works wherever Handler is
// mounted.
var challengePage = template.Must(template.New("challenge").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sandbox 3-D Secure challenge</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem; color: #222; }
form { display: inline-block; margin: 0 .5rem .5rem 0; }
button { font-size: 1rem; padding: .6rem 1.2rem; cursor: pointer; }
code { background: #f3f3f3; padding: 0 .25rem; }
</style>
</head>
<body>
<h1>3-D Secure challenge</h1>
<p>payd sandbox bank. Charge <code id="reference">{{.Reference}}</code> of
<span id="amount">{{.Amount}}</span> {{.Currency}} (minor units).</p>
{{if .Pending}}
<p>Approve or refuse the authentication.</p>
<form method="post" action="?result=succeed">{{with .ReturnURL}}<input type="hidden" name="return_url" value="{{.}}">{{end}}<button type="submit" id="succeed">Complete authentication</button></form>
<form method="post" action="?result=fail">{{with .ReturnURL}}<input type="hidden" name="return_url" value="{{.}}">{{end}}<button type="submit" id="fail">Fail authentication</button></form>
{{else if .Canceled}}
<p id="status">Authentication canceled: the merchant canceled this payment and nothing was charged.</p>
{{else}}
<p id="status">Authentication {{.Status}}.</p>
{{end}}
</body>
</html>
`))

type challengeView struct {
	Reference string
	Amount    int64
	Currency  string
	Pending   bool
	Canceled  bool // voided before the customer completed it
	Status    connector.ResultStatus
	ReturnURL string // where the browser goes after a button, if anywhere
}

// challenge reports a pm_card_3ds charge by reference.
func (s *Sandbox) challenge(reference string) (challengeView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.byRef[reference]
	if !ok || !rec.challenge {
		return challengeView{}, false
	}
	return challengeView{
		Reference: reference,
		Amount:    rec.req.Amount.Minor,
		Currency:  rec.req.Amount.Currency,
		Pending:   rec.result.Status == connector.StatusRequiresAction,
		Canceled:  rec.result.Status == connector.StatusVoided,
		Status:    rec.result.Status,
	}, true
}

func (s *Sandbox) handleChallengePage(w http.ResponseWriter, r *http.Request) {
	v, ok := s.challenge(r.PathValue("reference"))
	if !ok {
		http.Error(w, "no 3-D Secure challenge with this reference", http.StatusNotFound)
		return
	}
	v.ReturnURL = returnURL(r)
	renderChallenge(w, http.StatusOK, v)
}

// handleChallenge completes a challenge. A browser form post (optionally with
// return_url) gets HTML or a 303 to return_url; an API client gets the
// charge's new result as JSON.
func (s *Sandbox) handleChallenge(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("reference")
	var succeed bool
	switch r.FormValue("result") {
	case "succeed":
		succeed = true
	case "fail":
	default:
		writeError(w, r, http.StatusBadRequest, "invalid_request", "invalid_result", "result must be succeed or fail", false)
		return
	}
	if err := s.CompleteAction(ref, succeed); err != nil {
		switch {
		case errors.Is(err, payment.ErrNotFound):
			writeError(w, r, http.StatusNotFound, "not_found", "challenge_not_found", err.Error(), false)
		case errors.Is(err, ErrAuthenticationCanceled):
			if wantsHTML(r) {
				v, _ := s.challenge(ref)
				renderChallenge(w, http.StatusConflict, v)
				return
			}
			writeError(w, r, http.StatusConflict, "conflict", "challenge_canceled", err.Error(), false)
		default:
			writeError(w, r, http.StatusConflict, "conflict", "challenge_completed", err.Error(), false)
		}
		return
	}
	v, _ := s.challenge(ref)
	if ret := returnURL(r); ret != "" {
		http.Redirect(w, r, ret, http.StatusSeeOther)
		return
	}
	if wantsHTML(r) {
		renderChallenge(w, http.StatusOK, v)
		return
	}
	s.mu.Lock()
	res := s.byRef[ref].result
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resultBodyOf(res))
}

// returnURL is the absolute http(s) URL a browser goes back to, or "": the
// page takes it as a query parameter and hands it to its forms.
func returnURL(r *http.Request) string {
	raw := r.FormValue("return_url")
	u, err := url.Parse(raw)
	if raw == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return u.String()
}

func wantsHTML(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/x-www-form-urlencoded") ||
		strings.HasPrefix(ct, "multipart/form-data") ||
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

func renderChallenge(w http.ResponseWriter, status int, v challengeView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(status)
	_ = challengePage.Execute(w, v)
}
