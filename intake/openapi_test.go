package intake_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/payd/payd/intake"
	"github.com/payd/payd/internal/testenv"
)

// TestOpenAPIMatchesRoutes: the OpenAPI document describes exactly the
// routes the server registers: every route of routes.go is a path and
// method of the document, and every path and method of the document is a
// route. (The catch-all "/" is no operation: it answers 404.)
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	doc, err := openapi3.NewLoader().LoadFromData(intake.OpenAPIJSON())
	if err != nil {
		t.Fatalf("load the document: %v", err)
	}
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	var routes []string
	for _, p := range intake.NewServer(intake.Deps{}).Routes() {
		if p == "/" {
			continue
		}
		method, path, ok := strings.Cut(p, " ")
		if !ok || method == "" || !strings.HasPrefix(path, "/") {
			t.Errorf("route %q has no method: every route but the catch-all names one", p)
			continue
		}
		routes = append(routes, p)
	}
	if len(routes) < 40 {
		t.Fatalf("the server registers only %d routes: %v", len(routes), routes)
	}
	for _, r := range routes {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is missing from intake/openapi.yaml", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routes, d) {
			t.Errorf("intake/openapi.yaml has %s, which is no route of intake/routes.go", d)
		}
	}
}

// TestOpenAPIServed: GET /openapi.json answers, without a key, the
// document as JSON, and kin-openapi's loader loads it and validates it as
// OpenAPI 3.1.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(testenv.SpecCheck(t, intake.NewServer(intake.Deps{})))
	t.Cleanup(srv.Close)
	res, err := http.Get(srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d %s", res.StatusCode, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if !bytes.Equal(bytes.TrimSpace(body), bytes.TrimSpace(intake.OpenAPIJSON())) {
		t.Errorf("the served document differs from intake.OpenAPIJSON()")
	}
	ctx := context.Background()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(body)
	if err != nil {
		t.Fatalf("load /openapi.json: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() || !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("validate /openapi.json: %v", err)
	}
	// The whole document, every check kin-openapi has: patterns compile,
	// defaults and examples match their schemas.
	if err := doc.Validate(ctx, openapi3.EnableSchemaPatternValidation(), openapi3.EnableSchemaDefaultsValidation(),
		openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("validate /openapi.json strictly: %v", err)
	}
}
