package intake

import (
	"net/http"
	"strings"
)

// routes lists every route of the public API. Each is described in
// openapi.yaml (TestOpenAPIMatchesRoutes holds the two together).
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h handler, auth bool) {
		s.patterns = append(s.patterns, pattern)
		hh := s.serve(h)
		if strings.Contains(pattern, "{id}") {
			hh = s.checkID(hh)
		}
		if auth {
			hh = s.authenticate(hh)
		}
		mux.Handle(pattern, s.observe(pattern, hh))
	}
	handle("GET /healthz", s.handleHealthz, false)
	handle("GET /readyz", s.handleReadyz, false)
	// this API's OpenAPI 3.1 document (openapi.go, openapi.yaml)
	handle("GET /openapi.json", s.handleOpenAPI, false)

	// payments that collect an invoice (seed 001)
	handle("POST /v1/payments", s.handleCreatePayment, true)
	handle("GET /v1/payments", s.handleListPayments, true)
	handle("GET /v1/payments/{id}", s.handleGetPayment, true)
	handle("PUT /v1/payments/{id}", s.handleUpdatePayment, true)
	handle("DELETE /v1/payments/{id}", s.handleDeletePayment, true)
	handle("POST /v1/payments/{id}/process", s.handleProcessPayment, true)
	handle("POST /v1/payments/{id}/cancel", s.handleCancelPayment, true)
	handle("POST /v1/payments/{id}/refunds", s.handleCreateRefund, true)
	handle("GET /v1/payments/{id}/timeline", s.handleTimeline, true)

	// payouts over bank rails (seed 002)
	handle("POST /v1/payouts", s.handleCreatePayout, true)
	handle("GET /v1/payouts", s.handleListPayouts, true)
	handle("GET /v1/payouts/{id}", s.handleGetPayout, true)
	handle("PUT /v1/payouts/{id}/lines", s.handleReplacePayoutLines, true)
	handle("POST /v1/payouts/{id}/cancel", s.handleCancelPayout, true)

	// payment sessions (seed 003) and the hosted page's JSON routes,
	// authorized by the session's token and secret only (pay_page.go)
	handle("POST /v1/payment-sessions", s.handleCreateSession, true)
	handle("GET /v1/payment-sessions/{id}", s.handleGetSession, true)
	handle("POST /v1/payment-sessions/{id}/submit", s.handleSubmitSession, true)
	handle("POST /v1/payment-sessions/{id}/cancel", s.handleCancelSession, true)
	handle("GET /pay/{token}/session", s.handlePageSession, false)
	handle("POST /pay/{token}/submit", s.handlePageSubmit, false)
	// the hosted page itself: the same static files for every token (page.go)
	handle("GET /pay/{token}", s.handlePayPage, false)
	handle("GET /pay-assets/{file}", s.handlePayAsset, false)

	// invoices and users: {ref} is an id or an external id (validRef, not checkID)
	handle("POST /v1/invoices", s.handleCreateInvoice, true)
	handle("GET /v1/invoices", s.handleListInvoices, true)
	handle("GET /v1/invoices/{ref}", s.handleGetInvoice, true)
	handle("POST /v1/users", s.handleCreateUser, true)
	handle("GET /v1/users/{ref}", s.handleGetUser, true)
	handle("PATCH /v1/users/{ref}", s.handleUpdateUser, true)

	// payment flows (seed 000): an invoice settled by a plan of payins, then payouts
	handle("POST /v1/payment-flows", s.handleCreateFlow, true)
	handle("GET /v1/payment-flows", s.handleListFlows, true)
	handle("GET /v1/payment-flows/{id}", s.handleGetFlow, true)
	handle("GET /v1/payment-flows/{id}/plans", s.handleFlowPlans, true)
	handle("POST /v1/payment-flows/{id}/cancel", s.handleCancelFlow, true)

	// merchant events: the outbox every transition writes (events.go, docs/events.md)
	handle("GET /v1/events", s.handleListEvents, true)
	handle("GET /v1/events/{id}", s.handleGetEvent, true)
	handle("POST /v1/events/{id}/redeliver", s.handleRedeliver, true)

	// webhook endpoints: where events are delivered, signed (webhook_endpoints.go)
	handle("POST /v1/webhook-endpoints", s.handleCreateEndpoint, true)
	handle("GET /v1/webhook-endpoints", s.handleListEndpoints, true)
	handle("GET /v1/webhook-endpoints/{id}", s.handleGetEndpoint, true)
	handle("POST /v1/webhook-endpoints/{id}", s.handleUpdateEndpoint, true)
	handle("DELETE /v1/webhook-endpoints/{id}", s.handleDeleteEndpoint, true)
	handle("POST /v1/webhook-endpoints/{id}/rotate-secret", s.handleRotateSecret, true)
	handle("GET /v1/webhook-endpoints/{id}/deliveries", s.handleListDeliveries, true)

	// gateway notifications: signed by the gateway, not by a tenant's key
	handle("POST /v1/gateway/notifications", s.handleGatewayNotification, false)

	// anything else: the error envelope, never the mux's plain text
	handle("/", s.handleNoRoute, false)
	return mux
}

func (s *Server) handleNoRoute(w http.ResponseWriter, r *http.Request) error {
	return errf(http.StatusNotFound, typeNotFound, "route_not_found", "no such route: "+r.Method+" "+truncate(r.URL.Path, 100))
}

// checkID answers 404 for a path id that no object can have, before any
// query: Postgres refuses NUL and invalid UTF-8 in text parameters, and that
// driver error must not become a 500.
func (s *Server) checkID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !validID(r.PathValue("id")) {
			s.writeError(w, r, errNotFound)
			return
		}
		h.ServeHTTP(w, r)
	})
}
