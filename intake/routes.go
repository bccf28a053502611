package intake

import "net/http"

// routes lists every route of the public API.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc, auth bool) {
		var hh http.Handler = h
		if auth {
			hh = s.authenticate(hh)
		}
		mux.Handle(pattern, s.observe(pattern, hh))
	}
	handle("GET /healthz", s.handleHealthz, false)
	handle("GET /readyz", s.handleReadyz, false)

	// seed 001: payments against invoices
	handle("POST /v1/payments", s.handleCreatePayment, true)
	handle("GET /v1/payments", s.handleListPayments, true)
	handle("GET /v1/payments/{id}", s.handleGetPayment, true)
	handle("POST /v1/payments/{id}/cancel", s.handleCancelPayment, true)
	handle("POST /v1/payments/{id}/refunds", s.handleCreateRefund, true)
	handle("GET /v1/payments/{id}/timeline", s.handleTimeline, true)

	// anything else: the error envelope, never the mux's plain text
	handle("/", s.handleNoRoute, false)
	return mux
}

func (s *Server) handleNoRoute(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, errf(http.StatusNotFound, typeNotFound, "route_not_found", "no such route: "+r.Method+" "+truncate(r.URL.Path, 100)))
}
