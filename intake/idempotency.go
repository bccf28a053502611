package intake

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/payd/payd/store"
)

// idemKey reads and checks a POST's Idempotency-Key header. It returns nil
// for a request without one; with a bad one it answers 400 itself and
// returns ok false.
func (s *Server) idemKey(w http.ResponseWriter, r *http.Request, route string) (k *store.IdemKey, ok bool) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return nil, true
	}
	if !validIdemKey(key) {
		s.writeError(w, r, errf(http.StatusBadRequest, typeInvalidRequest, "idempotency_key_invalid",
			"Idempotency-Key must be 1 to 255 printable ASCII characters"))
		return nil, false
	}
	return &store.IdemKey{TenantID: principal(r.Context()).TenantID, Route: route, Key: idemScope(key)}, true
}

// replayed answers a request whose key already has a record: the stored
// answer (Idempotent-Replayed: true), 422 idempotency_key_reused for
// another body, 409 while it is in flight. It returns false when the key
// is free.
func (s *Server) replayed(w http.ResponseWriter, r *http.Request, k store.IdemKey, fp []byte) bool {
	rec, err := s.store.LookupIdempotent(r.Context(), k, fp)
	if err != nil {
		s.writeError(w, r, err)
		return true
	}
	switch rec.State {
	case store.IdemInFlight:
		s.writeError(w, r, errInFlight)
	case store.IdemMismatch:
		s.writeError(w, r, errKeyReused)
	case store.IdemReplay:
		s.metrics.IdempotentReplays.WithLabelValues(k.Route).Inc()
		w.Header().Set("Idempotent-Replayed", "true")
		writeRaw(w, rec.Code, rec.Body)
	default:
		return false
	}
	return true
}

// idempotent runs a POST under the Idempotency-Key rules of DESIGN.md §5:
// the key is scoped to (tenant, route, key) and stored with a fingerprint of
// the normalized request; a replay returns the stored status and body with
// Idempotent-Replayed: true; the same key with another body is 422
// idempotency_key_reused; a duplicate while the first is in flight is 409.
// fn runs in one transaction, which holds the key's lock and stores the
// answer, so effects and the stored answer commit together, or neither (see
// store.IdemWrite). after runs once the answer is sent (enqueue the next
// step): its failure cannot undo the recorded request.
func (s *Server) idempotent(w http.ResponseWriter, r *http.Request, route string, fp []byte,
	fn func(context.Context, *store.Store) (int, any, error), after func(context.Context, any)) {
	ctx := r.Context()
	k, ok := s.idemKey(w, r, route)
	if !ok || (k != nil && s.replayed(w, r, *k, fp)) {
		return
	}
	var (
		code int
		resp any
		body []byte
	)
	txCtx, cancel := context.WithTimeout(ctx, s.cfg.TxTimeout)
	defer cancel()
	err := s.store.InTx(txCtx, func(tx *store.Store) error {
		if k != nil {
			if err := tx.LockIdempotent(txCtx, *k); err != nil {
				return err
			}
		}
		var err error
		if code, resp, err = fn(txCtx, tx); err != nil {
			return err
		}
		if body, err = json.Marshal(resp); err != nil {
			return err
		}
		if k != nil {
			return tx.PutIdempotent(txCtx, store.IdemWrite{Key: *k, Fingerprint: fp, TTL: s.cfg.IdempotencyTTL, Code: code, Body: body})
		}
		return nil
	})
	if errors.Is(err, store.ErrIdemTaken) {
		// another request stored this key after the lookup: its answer wins
		if !s.replayed(w, r, *k, fp) {
			s.writeError(w, r, errInFlight)
		}
		return
	}
	if err != nil {
		var bk *businessKeyConflict
		if errors.As(err, &bk) {
			s.replayBusinessKey(w, r, route, bk)
			return
		}
		s.writeError(w, r, err)
		return
	}
	s.answer(w, r, code, body, resp, after)
}

// answer writes a recorded request's answer, then runs after.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, code int, body []byte, resp any, after func(context.Context, any)) {
	writeRaw(w, code, body)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if after != nil {
		after(r.Context(), resp)
	}
}

func validIdemKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}
