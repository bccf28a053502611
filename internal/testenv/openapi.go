package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/payd/payd/intake"
)

// SpecCheck wraps intake's handler so that every exchange a test causes is
// held to intake's OpenAPI document (intake/openapi.yaml, as GET
// /openapi.json serves it), with kin-openapi's openapi3filter:
//
//   - every answer: its status is documented for its route, its documented
//     headers are present and well-formed, and its body matches the schema
//     of its content type;
//   - every request answered 2xx: its path, query and header parameters,
//     its credentials (the scheme's header is present) and its body match
//     the operation. A request answered 4xx may be anything: the bad-input
//     tests send invalid requests on purpose, and what they get back is
//     held to the document like every answer.
//
// A request for a path or method the document does not have must be
// answered 404 in the error envelope (the catch-all route, or a route
// switched off). A mismatch fails t with the method, path, status and the
// validator's message. The Harness wraps its intake with SpecCheck, so it
// is on for every test that uses one.
//
// The request body checked is what the handler read of it (a route that
// reads no body, e.g. a cancel, has none to check); a body sent without a
// Content-Type is checked as JSON, which is how intake reads it.
func SpecCheck(t testing.TB, next http.Handler) http.Handler {
	t.Helper()
	sp, err := loadSpec()
	if err != nil {
		t.Fatalf("testenv: intake's OpenAPI document: %v", err)
	}
	c := &specCheck{spec: sp, next: next, t: t}
	if _, fuzz := t.(*testing.F); fuzz {
		// f.Errorf may not be called inside the fuzz function: keep the
		// mismatches for the end.
		c.deferred = true
		t.Cleanup(c.flush)
	}
	return c
}

type spec struct {
	doc    *openapi3.T
	router routers.Router
	// errorSchema is the 404 answer of a route the document does not have.
	errorSchema *openapi3.Schema
}

var loadSpec = sync.OnceValues(func() (*spec, error) {
	ctx := context.Background()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(intake.OpenAPIJSON())
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	nf := doc.Components.Schemas["ErrorNotFound"]
	if nf == nil || nf.Value == nil {
		return nil, fmt.Errorf("no components.schemas.ErrorNotFound")
	}
	// The page's assets are text; kin-openapi decodes only a few types.
	for _, ct := range []string{"text/html", "text/css", "text/javascript"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
	}
	return &spec{doc: doc, router: router, errorSchema: nf.Value}, nil
})

type specCheck struct {
	spec     *spec
	next     http.Handler
	t        testing.TB
	deferred bool
	mu       sync.Mutex
	kept     []string
}

func (c *specCheck) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !c.deferred {
		c.t.Errorf("%s", msg)
		return
	}
	c.mu.Lock()
	c.kept = append(c.kept, msg)
	c.mu.Unlock()
}

func (c *specCheck) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.kept {
		c.t.Errorf("%s", m)
	}
	c.kept = nil
}

func (c *specCheck) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var reqBody bytes.Buffer
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &teeBody{ReadCloser: r.Body, copy: &reqBody}
	}
	// The request as it arrived: a handler may change r's context, never
	// its method, URL or headers, but the check must not depend on it.
	orig := r.Clone(context.Background())
	rec := &recorder{ResponseWriter: w}
	c.next.ServeHTTP(rec, r)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	c.check(orig, reqBody.Bytes(), rec)
}

// check validates one exchange and fails the test on each mismatch.
func (c *specCheck) check(r *http.Request, reqBody []byte, rec *recorder) {
	for _, m := range c.spec.mismatches(r, reqBody, rec.code, rec.Header().Clone(), rec.body.Bytes()) {
		c.fail("%s", m)
	}
}

// mismatches is what is wrong with one exchange, as SpecCheck says: the
// request r (with the body the handler read) answered status, header and
// body.
func (sp *spec) mismatches(r *http.Request, reqBody []byte, status int, header http.Header, body []byte) []string {
	ctx := context.Background()
	what := fmt.Sprintf("OpenAPI: %s %s answered %d", r.Method, r.URL.RequestURI(), status)
	var out []string
	fail := func(format string, args ...any) { out = append(out, what+": "+fmt.Sprintf(format, args...)) }

	req := r.Clone(ctx)
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	req.ContentLength = int64(len(reqBody))
	if len(reqBody) > 0 && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json") // intake reads it as JSON
	}
	head := req.Method == http.MethodHead
	if head {
		req.Method = http.MethodGet // a GET route answers HEAD too, with no body to check
	}
	route, params, err := sp.router.FindRoute(req)
	if err != nil {
		// Only the catch-all (or a route switched off) answers a request
		// the document has no operation for: 404 in the envelope.
		if status != http.StatusNotFound {
			fail("the document has no operation for it (%v); body %s", err, truncate(body))
			return out
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			fail("the 404 is not JSON: %v; body %s", err, truncate(body))
			return out
		}
		if err := sp.errorSchema.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
			fail("the 404 is not the error envelope: %v; body %s", compact(err), truncate(body))
		}
		return out
	}
	// kin-openapi's gorillamux router matches the escaped path and hands
	// the path parameters on still percent-encoded; intake sees them
	// decoded (PathValue), and so must their schemas.
	for k, v := range params {
		if d, err := url.PathUnescape(v); err == nil {
			params[k] = d
		}
	}
	opts := &openapi3filter.Options{
		IncludeResponseStatus: true,
		SkipSettingDefaults:   true,
		MultiError:            true,
		AuthenticationFunc:    checkCredentials,
	}
	opts.WithCustomSchemaErrorFunc(schemaErrorMessage)
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	resp := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: opts}
	resp.SetBodyBytes(body)
	if !head {
		if err := openapi3filter.ValidateResponse(ctx, resp); err != nil {
			fail("the answer does not match the document: %v\nbody %s", compact(err), truncate(body))
		}
	}
	if status >= 200 && status < 300 {
		// The request body is not printed: it may hold what must never
		// reach a log (a payment session's session_data).
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			fail("the request does not match the document: %v", compact(err))
		}
	}
	return out
}

// checkCredentials is the check of a security scheme: its header is there
// (whether the key is good is intake's to say, and a 2xx says it was).
func checkCredentials(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header
	s := in.SecurityScheme
	switch {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		if a := h.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") && strings.TrimSpace(a[7:]) != "" {
			return nil
		}
	case s.Type == "apiKey" && s.In == "header":
		if strings.TrimSpace(h.Get(s.Name)) != "" {
			return nil
		}
	default:
		return fmt.Errorf("security scheme %q: type %q in %q is not checked here", in.SecuritySchemeName, s.Type, s.In)
	}
	return fmt.Errorf("no credentials for %q", in.SecuritySchemeName)
}

// schemaErrorMessage names the failing value by its JSON pointer and the
// rule, leaving out the schema and the value kin-openapi would print (long,
// and a request's value may be a secret).
func schemaErrorMessage(err *openapi3.SchemaError) string {
	msg := "/" + strings.Join(err.JSONPointer(), "/") + ": "
	if err.Reason != "" {
		msg += err.Reason
	} else {
		msg += "does not match " + err.SchemaField
	}
	if err.Origin != nil {
		msg += " (" + err.Origin.Error() + ")"
	}
	return msg
}

// compact keeps a validator's message readable in a test log.
func compact(err error) string {
	s := err.Error()
	if len(s) > 4000 {
		s = s[:4000] + "…"
	}
	return s
}

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

// teeBody keeps a copy of what the handler reads of the request body.
type teeBody struct {
	io.ReadCloser
	copy *bytes.Buffer
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.copy.Write(p[:n])
	return n, err
}

// recorder passes an answer through to the client as it is written (flushes
// included), keeping its status and a copy of its body.
type recorder struct {
	http.ResponseWriter
	code int
	body bytes.Buffer
}

func (w *recorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
