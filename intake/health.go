package intake

import (
	"context"
	"net/http"
	"time"
)

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// handleReadyz answers 503 when Postgres or Redis cannot be reached.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"postgres": "ok", "redis": "ok"}
	code := http.StatusOK
	if err := s.store.Ping(ctx); err != nil {
		checks["postgres"], code = "unreachable", http.StatusServiceUnavailable
	}
	if s.redis == nil || s.redis.Ping(ctx).Err() != nil {
		checks["redis"], code = "unreachable", http.StatusServiceUnavailable
	}
	status := "ready"
	if code != http.StatusOK {
		status = "not_ready"
	}
	writeJSON(w, code, map[string]any{"status": status, "checks": checks})
	return nil
}
