package intake

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/payd/payd/store"
)

// idempotent runs a POST under the Idempotency-Key rules of DESIGN.md §5:
// the key is scoped to (tenant, route, key) and stored with a fingerprint of
// the normalized request; a replay returns the stored status and body with
// Idempotent-Replayed: true; the same key with another body is 422
// idempotency_key_reused; a duplicate while the first is in flight is 409.
// fn runs in one transaction, which also stores the response, so effects and
// the stored answer commit together. after runs once the answer is sent
// (enqueue the next step): its failure cannot undo the recorded request.
func (s *Server) idempotent(w http.ResponseWriter, r *http.Request, route string, fp []byte,
	fn func(context.Context, *store.Store) (int, any, error), after func(context.Context, any)) {
	ctx := r.Context()
	key := r.Header.Get("Idempotency-Key")
	var (
		k     store.IdemKey
		owner string
	)
	if key != "" {
		if !validIdemKey(key) {
			s.writeError(w, r, errf(http.StatusBadRequest, typeInvalidRequest, "idempotency_key_invalid",
				"Idempotency-Key must be 1 to 255 printable ASCII characters"))
			return
		}
		k = store.IdemKey{TenantID: principal(ctx).TenantID, Route: route, Key: key}
		rec, err := s.store.BeginIdempotent(ctx, k, fp, s.cfg.IdempotencyLease, s.cfg.IdempotencyTTL)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		switch rec.State {
		case store.IdemInFlight:
			s.writeError(w, r, errInFlight)
			return
		case store.IdemMismatch:
			s.writeError(w, r, errKeyReused)
			return
		case store.IdemReplay:
			s.metrics.IdempotentReplays.WithLabelValues(route).Inc()
			w.Header().Set("Idempotent-Replayed", "true")
			writeRaw(w, rec.Code, rec.Body)
			return
		}
		owner = rec.Owner
	}
	var (
		code int
		resp any
		body []byte
	)
	txCtx := ctx
	if key != "" {
		// The key is ours only for its lease: after that a retry may take it
		// over and run the request again. Give up (roll back) well before
		// then, so a stalled request and its retry can never both commit.
		var cancel context.CancelFunc
		txCtx, cancel = context.WithTimeout(ctx, s.cfg.IdempotencyLease/2)
		defer cancel()
	}
	err := s.store.InTx(txCtx, func(tx *store.Store) error {
		var err error
		if code, resp, err = fn(txCtx, tx); err != nil {
			return err
		}
		if body, err = json.Marshal(resp); err != nil {
			return err
		}
		if key != "" {
			return tx.CompleteIdempotent(txCtx, k, owner, code, body)
		}
		return nil
	})
	if err != nil {
		if key != "" {
			// Nothing was recorded: free the key so the client's retry runs.
			if rerr := s.store.ReleaseIdempotent(context.WithoutCancel(ctx), k, owner); rerr != nil {
				s.log.WarnContext(ctx, "release idempotency key", "err", rerr)
			}
		}
		var bk *businessKeyConflict
		if errors.As(err, &bk) {
			s.replayBusinessKey(w, r, route, bk)
			return
		}
		s.writeError(w, r, err)
		return
	}
	writeRaw(w, code, body)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if after != nil {
		after(ctx, resp)
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
