package intake

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// apiError is every error answer: seed 003's envelope, used on all surfaces.
type apiError struct {
	Status     int
	Type       string
	Codes      []string
	Message    string
	Retryable  bool
	Fields     map[string]string // field → error code, for 422
	RetryAfter int               // seconds, for 409, 429 and 503
}

func (e *apiError) Error() string { return e.Type + ": " + strings.Join(e.Codes, ",") }

type errorBody struct {
	RequestID  string            `json:"request_id"`
	ErrorType  string            `json:"error_type"`
	ErrorCodes []string          `json:"error_codes"`
	Message    string            `json:"message"`
	Retryable  bool              `json:"retryable"`
	Fields     map[string]string `json:"fields,omitempty"`
	// Success and Error repeat the answer in the seed-001 vendor's error
	// shape ({"success": false, "error": {"message", "internal_error"}}):
	// its official client reads the message its callers see from
	// error.message, and an error member of any other shape would make it
	// fail to parse the answer instead of surfacing it.
	Success bool        `json:"success"`
	Error   errorDetail `json:"error"`
}

// errorDetail is the vendor's error member: message is the envelope's
// message, internal_error its type and codes ("validation_error:
// amount_invalid,currency_invalid").
type errorDetail struct {
	Message       string `json:"message"`
	InternalError string `json:"internal_error"`
}

// The error types, one per status code.
const (
	typeInvalidRequest = "invalid_request"
	typeAuthentication = "authentication_error"
	typeNotFound       = "not_found"
	typeMethod         = "method_not_allowed"
	typeConflict       = "conflict"
	typeTooLarge       = "request_too_large"
	typeMediaType      = "unsupported_media_type"
	typeValidation     = "validation_error"
	typeRateLimited    = "rate_limited"
	typeInternal       = "internal_error"
	typeGateway        = "gateway_error"
	typeUnavailable    = "service_unavailable"
)

func errf(status int, typ, code, msg string) *apiError {
	return &apiError{Status: status, Type: typ, Codes: []string{code}, Message: msg}
}

// validation builds a 422 with one error code per bad field.
func validation(fields map[string]string) *apiError {
	codes := make([]string, 0, len(fields))
	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	sort.Strings(names)
	seen := map[string]bool{}
	var msg []string
	for _, f := range names {
		c := fields[f]
		if !seen[c] {
			codes = append(codes, c)
			seen[c] = true
		}
		msg = append(msg, f+": "+c)
	}
	return &apiError{Status: http.StatusUnprocessableEntity, Type: typeValidation, Codes: codes, Fields: fields,
		Message: "invalid data: " + strings.Join(msg, "; ")}
}

var (
	errNotFound     = errf(http.StatusNotFound, typeNotFound, "resource_not_found", "no such object")
	errUnauthorized = errf(http.StatusUnauthorized, typeAuthentication, "api_key_invalid",
		"a valid API key is required in the Authorization: Bearer or x-api-key header")
	errInFlight = &apiError{Status: http.StatusConflict, Type: typeConflict, Codes: []string{"idempotent_request_in_flight"},
		Message: "a request with this Idempotency-Key is still being processed", Retryable: true, RetryAfter: 1}
	errKeyReused = errf(http.StatusUnprocessableEntity, typeValidation, "idempotency_key_reused",
		"this idempotency key was already used with a different request body")
	errUnavailable = &apiError{Status: http.StatusServiceUnavailable, Type: typeUnavailable, Codes: []string{"dependency_unavailable"},
		Message: "a dependency is unavailable; retry with the same Idempotency-Key", Retryable: true, RetryAfter: 1}
	errInternal = &apiError{Status: http.StatusInternalServerError, Type: typeInternal, Codes: []string{"internal_error"},
		Message: "internal error; retry with the same Idempotency-Key", Retryable: true}
)

// asAPIError maps any error to its answer. Domain and store errors are
// translated here, once; anything unknown is a 500 whose details stay in
// the log.
func asAPIError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, payment.ErrNotFound):
		return errNotFound
	case errors.Is(err, store.ErrIdemInFlight):
		return errInFlight
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return errUnavailable
	case errors.Is(err, payment.ErrInvalidState):
		return errf(http.StatusConflict, typeConflict, "invalid_state", "the object is not in a state that allows this operation")
	case errors.Is(err, payment.ErrRefundTooLarge):
		return validation(map[string]string{"amount": "refund_exceeds_refundable"})
	}
	return errInternal
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := asAPIError(err)
	if ae.Status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "err", err, "status", ae.Status)
	}
	if ae.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ae.RetryAfter))
	}
	retryable := ae.Retryable || ae.Status == http.StatusTooManyRequests || ae.Status >= 500
	writeJSON(w, ae.Status, errorBody{RequestID: requestID(r.Context()), ErrorType: ae.Type, ErrorCodes: ae.Codes,
		Message: ae.Message, Retryable: retryable, Fields: ae.Fields,
		Error: errorDetail{Message: ae.Message, InternalError: ae.Error()}})
}
