package intake

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/payd/payd/store"
)

// fingerprint identifies a request for its Idempotency-Key and business
// key: the route and the JSON form of the request, normalized.
func fingerprint(route string, v any) []byte {
	b, _ := json.Marshal(v)
	h := sha256.New()
	h.Write([]byte(route))
	h.Write([]byte{0})
	h.Write(b)
	return h.Sum(nil)
}

// idemKey reads and checks a POST's Idempotency-Key header: nil for a
// request without one, a 400 for a bad one.
func (s *Server) idemKey(r *http.Request, route string) (*store.IdemKey, error) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return nil, nil
	}
	if !validIdemKey(key) {
		return nil, errf(http.StatusBadRequest, typeInvalidRequest, "idempotency_key_invalid",
			"Idempotency-Key must be 1 to 255 printable ASCII characters")
	}
	return &store.IdemKey{TenantID: principal(r.Context()).TenantID, Route: route, Key: idemScope(key)}, nil
}

// replayed answers a request whose key already has a record: it writes the
// stored answer (Idempotent-Replayed: true) and reports true, or returns
// the refusal — 422 idempotency_key_reused for another body, 409 while the
// first is in flight. false and nil: the key is free.
func (s *Server) replayed(w http.ResponseWriter, r *http.Request, k store.IdemKey, fp []byte) (bool, error) {
	rec, err := s.store.LookupIdempotent(r.Context(), k, fp)
	if err != nil {
		return false, err
	}
	switch rec.State {
	case store.IdemInFlight:
		return false, errInFlight
	case store.IdemMismatch:
		return false, errKeyReused
	case store.IdemReplay:
		s.metrics.IdempotentReplays.WithLabelValues(k.Route).Inc()
		w.Header().Set("Idempotent-Replayed", "true")
		writeRaw(w, rec.Code, rec.Body)
		return true, nil
	}
	return false, nil
}

// idempotent runs a POST under the Idempotency-Key rules (docs/surfaces.md,
// "Idempotency"):
// the key is scoped to (tenant, route, key) and stored with a fingerprint of
// the normalized request; a replay returns the stored status and body with
// Idempotent-Replayed: true; the same key with another body is 422
// idempotency_key_reused; a duplicate while the first is in flight is 409.
// fn runs in one transaction, which holds the key's lock and stores the
// answer, so effects and the stored answer commit together, or neither (see
// store.IdemWrite). after runs once the answer is sent (enqueue the next
// step): its failure cannot undo the recorded request. It returns the error
// to answer with, when it did not answer.
func (s *Server) idempotent(w http.ResponseWriter, r *http.Request, route string, fp []byte,
	fn func(context.Context, *store.Store) (int, any, error), after func(context.Context, any)) error {
	ctx := r.Context()
	k, err := s.idemKey(r, route)
	if err != nil {
		return err
	}
	if k != nil {
		if done, err := s.replayed(w, r, *k, fp); done || err != nil {
			return err
		}
	}
	var (
		code int
		resp any
		body []byte
	)
	txCtx, cancel := context.WithTimeout(ctx, s.cfg.TxTimeout)
	defer cancel()
	err = s.store.InTx(txCtx, func(tx *store.Store) error {
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
		if done, err := s.replayed(w, r, *k, fp); done || err != nil {
			return err
		}
		return errInFlight
	}
	if err != nil {
		var bk *businessKeyConflict
		if errors.As(err, &bk) {
			return s.replayBusinessKey(w, r, route, bk)
		}
		return err
	}
	s.answer(w, r, code, body, resp, after)
	return nil
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

// replayWriter marks a 2xx answer as a replay when the handler found the
// request's business key already recorded by the same request. The flag is
// set inside the transaction and read only when the answer is written, so a
// transaction that fails to commit never answers as a replay.
type replayWriter struct {
	http.ResponseWriter
	replayed bool
}

func (w *replayWriter) WriteHeader(code int) {
	if w.replayed && code >= 200 && code < 300 {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *replayWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *replayWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countReplay is the after of a request answered through rw: it counts the
// answer as a replay when it was one.
func (s *Server) countReplay(rw *replayWriter, route string) func(context.Context, any) {
	return func(context.Context, any) {
		if rw.replayed {
			s.metrics.IdempotentReplays.WithLabelValues(route).Inc()
		}
	}
}

func validIdemKey(k string) bool { return len(k) <= 255 && printable(k) }
