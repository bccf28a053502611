package intake

import "net/http"

type timelineEvent struct {
	From          *string `json:"from"`
	To            string  `json:"to"`
	Reason        string  `json:"reason"`
	AttemptNumber int     `json:"attempt_number"`
	Actor         string  `json:"actor"`
	CreatedAt     string  `json:"created_at"`
}

// sessionTimelineEvent is a transition of the payment session that
// recorded the payment (ACTIVE, PROCESSING, COMPLETED, FAILED, EXPIRED).
type sessionTimelineEvent struct {
	SessionID string  `json:"session_id"`
	PaymentID *string `json:"payment_id"`
	From      *string `json:"from"`
	To        string  `json:"to"`
	Reason    string  `json:"reason"`
	Actor     string  `json:"actor"`
	CreatedAt string  `json:"created_at"`
}

type timelineResponse struct {
	PaymentID string            `json:"payment_id"`
	Status    string            `json:"status"` // canonical
	Events    []timelineEvent   `json:"events"`
	Attempts  []attemptResponse `json:"attempts"`
	// SessionEvents: for a payment a payment session recorded, every
	// transition of that session (all its payments'), oldest first.
	SessionEvents []sessionTimelineEvent `json:"session_events,omitempty"`
}

// handleTimeline shows every transition of a payment, in the canonical
// vocabulary, with its reason and attempt, and every attempt.
func (s *Server) handleTimeline(w http.ResponseWriter, r *http.Request) error {
	p := principal(r.Context())
	pay, err := s.store.GetPayment(r.Context(), p.TenantID, r.PathValue("id"))
	if err != nil {
		return err
	}
	evs, err := s.store.Events(r.Context(), p.TenantID, pay.ID)
	if err != nil {
		return err
	}
	out := timelineResponse{PaymentID: pay.ID, Status: string(pay.Status), Events: make([]timelineEvent, len(evs)),
		Attempts: make([]attemptResponse, len(pay.Attempts))}
	for i, e := range evs {
		out.Events[i] = timelineEvent{From: strp(string(e.From)), To: string(e.To), Reason: e.Reason,
			AttemptNumber: e.AttemptNumber, Actor: e.Actor, CreatedAt: ts(e.CreatedAt)}
	}
	for i, a := range pay.Attempts {
		out.Attempts[i] = toAttemptResponse(a)
	}
	if pay.SessionID != "" {
		sevs, err := s.store.SessionEvents(r.Context(), p.TenantID, pay.SessionID)
		if err != nil {
			return err
		}
		out.SessionEvents = make([]sessionTimelineEvent, len(sevs))
		for i, e := range sevs {
			out.SessionEvents[i] = sessionTimelineEvent{SessionID: e.SessionID, PaymentID: strp(e.PaymentID), From: strp(string(e.From)),
				To: string(e.To), Reason: e.Reason, Actor: e.Actor, CreatedAt: ts(e.CreatedAt)}
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
