package sandbox

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

const maxBody = 64 << 10

var requestSeq atomic.Int64

// Handler serves the whole sandbox over HTTP: CustomerHandler's pages and
// OperatorHandler's gateway API and operator routes, on one mux. It is what
// `payd sandbox` serves on its own port (it is the gateway):
//
//	mux.Handle("/", s.Handler())
//
// Paths are relative to where it is mounted, and Config.PublicURL must name
// the mount of the challenge pages as a browser reaches it.
//
// Customer-facing (CustomerHandler), safe on a public port because every
// reference carries 128 random bits:
//
//	GET  /challenge/{reference}    HTML 3-D Secure page with two buttons
//	POST /challenge/{reference}?result=succeed|fail  CompleteAction → result
//	                               (409 challenge_completed, challenge_canceled)
//
// Operator and gateway API (OperatorHandler), never on a public port
// (docs/surfaces.md, "The sandbox gateway"): with the in-process sandbox payd
// serves it on the admin port, behind its basic auth.
//
//	POST /charges                  Charge → result
//	GET  /charges/{key}            Inquire (fences an unknown key) → result
//	POST /charges/{key}/void       Void (fences an unknown key) → result
//	GET  /settlements/{reference}  Settlement → result
//	POST /refunds                  Refund → result
//	POST /tokens       {"session_data", "session_id", "amount", "currency"} → {"token", "method", "type"};
//	                   422 session_data_invalid (the value is never echoed)
//	GET  /entries?from=&to=&cursor=&limit=  List (RFC 3339 times) → {"entries": [entry…], "next"}
//	GET  /ledger                   {"charges": [Charge…], "double_charged": [payment_id…]}
//	POST /notifications/flush      FlushNotifications → {"flushed": n}
//	GET  /faults                   Faults
//	PUT  /faults                   Faults → Faults (replaces every fault)
//
// Bodies are JSON with amounts in integer minor units:
//
//	charge  {"idempotency_key", "payment_id", "amount", "currency", "method", "payment_method_id"}
//	refund  {"idempotency_key", "payment_id", "gateway_reference", "amount", "currency"}
//	result  {"status", "reference", "failure_class", "code", "message", "action_url",
//	         "settle_at", "settled_at", "returned_at"}
//	entry   {"kind", "reference", "idempotency_key", "payment_id", "charge_reference",
//	         "amount", "currency", "status", "created_at"}
//	error   {"request_id", "error_type", "error_codes": [code], "message", "retryable"}
//
// Every gateway answer, declines and "not found" included, is a 200 with a
// result body; any other status is an error and never a result. Failures that
// the in-process sandbox returns as *connector.Error become real HTTP
// failures: a transient one (pm_card_flaky, FaultRate) is a 503 with its code
// (error_type "unavailable" when it was refused before processing, as
// Faults.VoidDown is), a refused List query a 400, and a lost response
// (pm_card_timeout_after_charge, pm_card_unknown) hijacks the connection and
// closes it without a byte of response.
func (s *Sandbox) Handler() http.Handler {
	mux := http.NewServeMux()
	s.customerRoutes(mux)
	s.operatorRoutes(mux)
	return mux
}

// CustomerHandler serves only what a customer's browser reaches: the 3-D
// Secure challenge pages. payd mounts it on intake's public port under
// /sandbox/ for the in-process sandbox; any other path is a 404.
func (s *Sandbox) CustomerHandler() http.Handler {
	mux := http.NewServeMux()
	s.customerRoutes(mux)
	return mux
}

// OperatorHandler serves the gateway API and the operator routes (ledger,
// entries, faults, notifications), everything but the challenge pages. It
// lets its caller read every tenant's charges, fence keys and refund behind
// payd's back: serve it only behind authentication (payd's admin port) or
// as the gateway itself (`payd sandbox`).
func (s *Sandbox) OperatorHandler() http.Handler {
	mux := http.NewServeMux()
	s.operatorRoutes(mux)
	return mux
}

func (s *Sandbox) customerRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /challenge/{reference}", s.handleChallengePage)
	mux.HandleFunc("POST /challenge/{reference}", s.handleChallenge)
}

func (s *Sandbox) operatorRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /tokens", s.handleTokenize)
	mux.HandleFunc("POST /charges", s.handleCharge)
	mux.HandleFunc("GET /charges/{key}", s.handleInquire)
	mux.HandleFunc("POST /charges/{key}/void", s.handleVoid)
	mux.HandleFunc("GET /settlements/{reference}", s.handleSettlement)
	mux.HandleFunc("POST /refunds", s.handleRefund)
	mux.HandleFunc("GET /entries", s.handleEntries)
	mux.HandleFunc("GET /ledger", s.handleLedger)
	mux.HandleFunc("POST /notifications/flush", s.handleFlushNotifications)
	mux.HandleFunc("GET /faults", s.handleGetFaults)
	mux.HandleFunc("PUT /faults", s.handlePutFaults)
}

func (s *Sandbox) handleCharge(w http.ResponseWriter, r *http.Request) {
	var body chargeBody
	if !decode(w, r, &body) {
		return
	}
	res, err := s.Charge(r.Context(), body.request())
	writeResult(w, r, res, err)
}

func (s *Sandbox) handleTokenize(w http.ResponseWriter, r *http.Request) {
	var body tokenizeBody
	if !decode(w, r, &body) {
		return
	}
	tok, err := s.Tokenize(r.Context(), connector.TokenizeRequest{SessionData: body.SessionData, SessionID: body.SessionID,
		Amount: payment.Money{Minor: body.Amount, Currency: body.Currency}})
	if errors.Is(err, connector.ErrSessionDataInvalid) {
		writeError(w, r, http.StatusUnprocessableEntity, "validation_error", "session_data_invalid",
			"session_data is not a value the sandbox accepts", false)
		return
	}
	if err != nil {
		writeResult(w, r, connector.Result{}, err)
		return
	}
	writeJSON(w, http.StatusOK, tokenBody{Token: tok.Token, Method: tok.Method, Type: tok.Type})
}

func (s *Sandbox) handleInquire(w http.ResponseWriter, r *http.Request) {
	res, err := s.Inquire(r.Context(), r.PathValue("key"))
	writeResult(w, r, res, err)
}

func (s *Sandbox) handleVoid(w http.ResponseWriter, r *http.Request) {
	res, err := s.Void(r.Context(), r.PathValue("key"))
	writeResult(w, r, res, err)
}

// handleEntries answers List: from and to are RFC 3339 times (either may be
// absent), cursor the next of the previous page, limit a count.
func (s *Sandbox) handleEntries(w http.ResponseWriter, r *http.Request) {
	var q connector.ListQuery
	qs := r.URL.Query()
	for _, f := range []struct {
		name string
		to   *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if v := qs.Get(f.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				writeError(w, r, http.StatusBadRequest, "invalid_request", "invalid_"+f.name, f.name+" must be an RFC 3339 time", false)
				return
			}
			*f.to = t.UTC()
		}
	}
	if v := qs.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, r, http.StatusBadRequest, "invalid_request", "invalid_limit", "limit must be a count ≥ 0", false)
			return
		}
		q.Limit = n
	}
	q.Cursor = qs.Get("cursor")
	page, err := s.List(r.Context(), q)
	if err != nil {
		writeResult(w, r, connector.Result{}, err)
		return
	}
	body := listBody{Entries: make([]entryBody, 0, len(page.Entries)), Next: page.Next}
	for _, e := range page.Entries {
		body.Entries = append(body.Entries, entryBodyOf(e))
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Sandbox) handleSettlement(w http.ResponseWriter, r *http.Request) {
	res, err := s.Settlement(r.Context(), r.PathValue("reference"))
	writeResult(w, r, res, err)
}

func (s *Sandbox) handleRefund(w http.ResponseWriter, r *http.Request) {
	var body refundBody
	if !decode(w, r, &body) {
		return
	}
	res, err := s.Refund(r.Context(), body.request())
	writeResult(w, r, res, err)
}

func (s *Sandbox) handleLedger(w http.ResponseWriter, r *http.Request) {
	charges := s.Ledger()
	writeJSON(w, http.StatusOK, ledgerBody{Charges: charges, DoubleCharged: nonNil(DoubleCharged(charges))})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// decode reads a JSON body, answering 400 or 413 itself when it cannot.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body := http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// Reading to EOF lets the server notice a client that goes away
		// during Latency, so the charge is then not processed.
		_, err = io.Copy(io.Discard, body)
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, r, http.StatusRequestEntityTooLarge, "invalid_request", "body_too_large", err.Error(), false)
			return false
		}
		writeError(w, r, http.StatusBadRequest, "invalid_request", "malformed_json", err.Error(), false)
		return false
	}
	return true
}

// writeResult answers a gateway call: a result is a 200, a *connector.Error
// becomes the HTTP failure a real gateway would produce.
func writeResult(w http.ResponseWriter, r *http.Request, res connector.Result, err error) {
	if err == nil {
		writeJSON(w, http.StatusOK, resultBodyOf(res))
		return
	}
	if errors.Is(err, errResponseLost) {
		loseResponse(w)
		return
	}
	ge := connector.AsError(err)
	switch {
	case errors.Is(err, errBadQuery):
		writeError(w, r, http.StatusBadRequest, "invalid_request", ge.Code, ge.Error(), false)
		return
	case ge.Class == payment.FailureTransient && !ge.MaybeProcessed:
		writeError(w, r, http.StatusServiceUnavailable, errorTypeUnavailable, ge.Code, ge.Error(), true)
		return
	}
	switch ge.Class {
	case payment.FailureTransient:
		writeError(w, r, http.StatusServiceUnavailable, "gateway_error", ge.Code, ge.Error(), true)
	case payment.FailureRateLimited:
		if ge.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ge.RetryAfter.Seconds()))))
		}
		writeError(w, r, http.StatusTooManyRequests, "rate_limited", ge.Code, ge.Error(), true)
	default:
		writeError(w, r, http.StatusGatewayTimeout, "gateway_error", ge.Code, ge.Error(), true)
	}
}

// loseResponse closes the connection without answering, as when a gateway
// charges and then its response never arrives.
func loseResponse(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 or a wrapped writer: abort the response instead.
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

func writeError(w http.ResponseWriter, r *http.Request, status int, typ, code, msg string, retryable bool) {
	id := r.Header.Get("X-Request-Id")
	if id == "" {
		id = "sbx_req_" + strconv.FormatInt(requestSeq.Add(1), 10)
	}
	writeJSON(w, status, errorBody{RequestID: id, ErrorType: typ, ErrorCodes: []string{code}, Message: msg, Retryable: retryable})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
