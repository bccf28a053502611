package intake

import (
	"net/http"
	"time"
)

// The request pipeline, which every route uses:
//
//   - a route is a handler: it writes its answer, or returns the error to
//     answer with, which serve writes once, in the envelope (errors.go);
//   - a body is read, decoded strictly and checked by decodeValid into its
//     request type's normalized form, or refused with 400, 413, 415, or 422
//     with one error code per bad field;
//   - a POST runs its effects under its Idempotency-Key with s.idempotent;
//   - a GET of one object answers with writeOne, a list with writeList
//     (list.go).
//
// A create route, whole:
//
//	func (s *Server) handleCreateThing(w http.ResponseWriter, r *http.Request) error {
//		const route = "POST /v1/things"
//		v, err := decodeValid(s, w, r, &createThingRequest{})
//		if err != nil {
//			return err
//		}
//		p := principal(r.Context())
//		return s.idempotent(w, r, route, fingerprint(route, v), func(ctx context.Context, tx *store.Store) (int, any, error) {
//			t, err := tx.CreateThing(ctx, p.TenantID, v.Name)
//			return http.StatusCreated, toThingResponse(t), err
//		}, nil)
//	}

// handler is a route: it writes its answer, or returns the error to answer
// with (asAPIError maps anything but an *apiError).
type handler func(w http.ResponseWriter, r *http.Request) error

// serve makes h an http.Handler that answers the error h returns.
func (s *Server) serve(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// writeOne answers a GET of one object: 200 with show(v), or the error
// that loading v met.
func writeOne[T, R any](w http.ResponseWriter, v T, err error, show func(T) R) error {
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, show(v))
	return nil
}

// limits are what a body is checked against besides itself.
type limits struct {
	now       func() time.Time // the store's clock
	maxAmount int64            // the largest amount accepted, in minor units
}

func (s *Server) limits() limits { return limits{now: s.store.Now, maxAmount: s.cfg.MaxAmountMinor} }

// request is a body type. valid checks every field under lim and returns
// the request normalized (what its fingerprint covers) with one error code
// per bad field. A request checked against an object (a refund against its
// payment) carries the object in unexported fields, set before decoding.
type request[V any] interface {
	valid(lim limits) (V, map[string]string)
}

// decodeValid reads r's body (readBody), decodes it strictly into req
// (decode) and checks it (req.valid): the request normalized, or the error
// to answer with.
func decodeValid[V any](s *Server, w http.ResponseWriter, r *http.Request, req request[V]) (V, error) {
	body, err := s.readBody(w, r)
	if err != nil {
		var zero V
		return zero, err
	}
	return checkBody(body, req, s.limits())
}

// checkBody is decodeValid on a body already read. On a refusal by valid it
// also returns what valid made of the request.
func checkBody[V any](body []byte, req request[V], lim limits) (V, error) {
	if err := decode(body, req); err != nil {
		var zero V
		return zero, err
	}
	v, bad := req.valid(lim)
	if len(bad) > 0 {
		return v, validation(bad)
	}
	return v, nil
}
