package intake

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// Submitting a payment session: the merchant's POST
// /v1/payment-sessions/{id}/submit and the hosted page's POST
// /pay/{token}/submit share submitSession.

// sessionSubmitLock bounds how long one submit holds a session while it
// exchanges session_data with the gateway; a second submit meanwhile is 429.
const sessionSubmitLock = 30 * time.Second

// tokenizeTimeout bounds the gateway's exchange of session_data.
const tokenizeTimeout = 10 * time.Second

// submitAction is what the customer or the client must do next (202).
type submitAction struct {
	Type string `json:"type"` // redirect (3-D Secure challenge) or poll
	URL  string `json:"url"`
}

// submitDone is the seed's 201: the payment finished; type is an array of
// payment method names, as the seed gives it.
type submitDone struct {
	ID     string   `json:"id"`
	Status string   `json:"status"`
	Type   []string `json:"type"`
}

// submitPending is the seed's 202: the customer must act (3-D Secure) or
// the outcome is not known yet; type is a string, as the seed gives it.
type submitPending struct {
	ID     string       `json:"id"`
	Status string       `json:"status"`
	Type   string       `json:"type"`
	Action submitAction `json:"action"`
}

var (
	errSessionBusy = &apiError{Status: http.StatusTooManyRequests, Type: typeRateLimited, Codes: []string{"payment_session_submit_in_flight"},
		Message: "a submit of this payment session is in flight; poll the session, or retry after Retry-After", Retryable: true, RetryAfter: 1}
	errSessionCompleted = errf(http.StatusUnprocessableEntity, typeValidation, "payment_session_completed",
		"the payment session is completed; it takes no more submits")
	errSessionExpired = errf(http.StatusUnprocessableEntity, typeValidation, "payment_session_expired",
		"the payment session has expired")
	errSessionCanceled = errf(http.StatusUnprocessableEntity, typeValidation, "payment_session_canceled",
		"the payment session was canceled by the merchant")
	errSessionRetries = errf(http.StatusUnprocessableEntity, typeValidation, "payment_session_retries_exhausted",
		"the payment session's payments failed as often as its customer_retry allows")
	errNoTokenizer = errf(http.StatusBadGateway, typeGateway, "gateway_unavailable", "the gateway cannot tokenize session_data")
)

// methodType is the payment method name a merchant sees.
func methodType(m payment.Method) string { return strings.ToLower(string(m)) }

// submitSession is the one submit of a payment session, shared by the
// merchant's route and the hosted page's (a stable entry point for the
// page). tenantID and sessionID name the session (the caller has
// authorized the request for it: by API key, or by token and secret);
// route scopes the Idempotency-Key; actor is audited.
//
// In order: the Idempotency-Key's stored answer is replayed; the session's
// submit lock is taken (429 while another submit holds it or its payment
// still runs; 422 payment_session_completed, _expired or
// _retries_exhausted); the amount must be the session's; session_data is
// exchanged with the gateway for a one-time token (422
// session_data_invalid) and then dropped: it is never logged, stored,
// enqueued or answered; a new payment tied to the session is recorded
// (store.StartSessionPayment) and its create step enqueued, the same jobs
// as every payment; then the request waits up to PAYD_SESSION_SUBMIT_WAIT
// for the outcome: 201 {id, status, type: [...]} when it finished, 202 {id,
// status, type, action} when the customer must complete 3-D Secure
// (action redirect) or the outcome is still pending (action poll). Each
// submit after a failure is a new payment of the same session.
func (s *Server) submitSession(w http.ResponseWriter, r *http.Request, tenantID, sessionID string, v validSubmit, route, actor string) error {
	start := time.Now()
	answer := "refused"
	defer func() { s.metrics.SessionSubmitLatency.WithLabelValues(answer).Observe(time.Since(start).Seconds()) }()
	ctx := r.Context()
	fp := fingerprint(route, v)
	var k *store.IdemKey
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if !validIdemKey(key) {
			// the session must exist before anything else is said about it
			if _, err := s.store.GetSession(ctx, tenantID, sessionID); err != nil {
				return err
			}
			return errf(http.StatusBadRequest, typeInvalidRequest, "idempotency_key_invalid",
				"Idempotency-Key must be 1 to 255 printable ASCII characters")
		}
		k = &store.IdemKey{TenantID: tenantID, Route: route, Key: idemScope(key)}
	}
	// One statement: the session (404 if it is not the tenant's), the
	// key's record, and the submit lock unless the key answers instead.
	until := s.store.Now().Add(sessionSubmitLock).UTC().Truncate(time.Microsecond)
	st, err := s.store.BeginSubmit(ctx, tenantID, sessionID, k, fp, until)
	if err != nil {
		return err
	}
	switch st.Idem.State {
	case store.IdemInFlight:
		return errInFlight
	case store.IdemMismatch:
		return errKeyReused
	case store.IdemReplay:
		s.metrics.IdempotentReplays.WithLabelValues(k.Route).Inc()
		w.Header().Set("Idempotent-Replayed", "true")
		writeRaw(w, st.Idem.Code, st.Idem.Body)
		return nil
	}
	if st.LapsedPayment != "" {
		// a submit under this key recorded its payment but never stored
		// its answer (it died, or its client left, before its wait ended):
		// the retry answers with that payment, never a second one
		return s.answerLapsedSubmit(ctx, w, tenantID, sessionID, st.LapsedPayment, *k, fp)
	}
	sess := st.Session
	switch st.Refusal {
	case store.SessionIsBusy:
		return errSessionBusy
	case store.SessionIsComplete:
		return errSessionCompleted
	case store.SessionIsExpired:
		return errSessionExpired
	case store.SessionNoRetries:
		return errSessionRetries
	case store.SessionIsCanceled:
		return errSessionCanceled
	}
	unlock := func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := s.store.UnlockSessionSubmit(uctx, sess.ID, until); err != nil {
			s.log.WarnContext(ctx, "release session submit lock", "session_id", sess.ID, "err", err)
		}
	}
	if v.Amount != nil && *v.Amount != sess.Amount.Minor {
		unlock()
		return validation(map[string]string{"amount": "amount_mismatch"})
	}
	if s.tokens == nil {
		unlock()
		return errNoTokenizer
	}
	tctx, cancel := context.WithTimeout(ctx, tokenizeTimeout)
	tok, err := s.tokens.Tokenize(tctx, connector.TokenizeRequest{SessionData: v.SessionData, SessionID: sess.ID, Amount: sess.Amount})
	cancel()
	v.SessionData = "" // exchanged: from here on only the token exists
	switch {
	case errors.Is(err, connector.ErrSessionDataInvalid):
		unlock()
		return validation(map[string]string{"session_data": "session_data_invalid"})
	case err != nil:
		unlock()
		// the gateway's error never carries session_data (connector.Tokenizer)
		s.log.WarnContext(ctx, "tokenize failed", "session_id", sess.ID, "err", err)
		return errf(http.StatusBadGateway, typeGateway, "gateway_error", "the gateway could not exchange session_data; retry")
	}
	mt := methodType(tok.Method)
	if !slices.Contains(sess.EnabledMethods, mt) {
		unlock()
		return validation(map[string]string{"session_data": "payment_method_not_enabled"})
	}
	if tok.Method.BankRail() && sess.Amount.Minor == 0 {
		unlock()
		return validation(map[string]string{"session_data": "card_verification_requires_card"})
	}
	sp := store.SessionPayment{Session: sess, LockUntil: until, Method: tok.Method, Token: tok.Token, Reference: v.Reference,
		Actor: actor}
	if k != nil {
		sp.Idem, sp.IdemFP, sp.IdemUntil = k, fp, s.store.Now().Add(s.cfg.SessionSubmitWait+s.cfg.TxTimeout)
	}
	pay, err := s.store.StartSessionPayment(ctx, sp)
	switch {
	case errors.Is(err, payment.ErrStale):
		// it expired, or another submit took it, between the lock and now
		return errSessionExpired
	case errors.Is(err, store.ErrIdemInFlight):
		unlock()
		return errInFlight
	case errors.Is(err, payment.ErrInvoiceOverApplied):
		unlock()
		return validation(map[string]string{"amount": "invoice_over_applied"})
	case err != nil:
		unlock()
		return err
	}
	s.metrics.PaymentsCreated.WithLabelValues(string(pay.Method), store.SurfaceSessions).Inc()
	// waiting starts before the payment can run: its outcome's wake-up cannot come first
	woken, stopWait, live := s.store.WaitPayment(pay.ID)
	s.enqueueStep(ctx, payment.StepCreate, pay.ID, 1)
	pay = s.awaitOutcome(ctx, pay, woken, live)
	stopWait()
	code, body, ans := s.submitAnswer(pay, sess)
	answer = ans
	if k != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		if err := s.store.CompleteIdempotent(cctx, store.IdemWrite{Key: *k, Fingerprint: fp, TTL: s.cfg.IdempotencyTTL,
			Code: code, Body: body}); err != nil {
			s.log.WarnContext(ctx, "store submit answer", "session_id", sess.ID, "err", err)
		}
		cancel()
	}
	writeRaw(w, code, body)
	return nil
}

// Without wake-ups (the listener is down) a submit polls: the first read
// after awaitFirstPoll, each later one after twice the previous pause, at
// most awaitMaxPoll apart. With them, a read follows each wake-up (the
// worker's commit of the payment's outcome, store.WaitPayment) and the poll
// is only the fallback for a wake-up that was lost: first after
// Config.SessionSubmitPoll, then doubling, so a lost notification costs
// latency, never the answer. The wait always ends with a read at its
// deadline.
const (
	awaitFirstPoll = 10 * time.Millisecond
	awaitMaxPoll   = 160 * time.Millisecond
)

// awaitOutcome waits for the payment to finish, await the customer, or for
// the submit wait to be over (or the client to go away): it reads the
// payment when woken and at each poll.
func (s *Server) awaitOutcome(ctx context.Context, pay payment.Payment, woken <-chan struct{}, live bool) payment.Payment {
	deadline := time.NewTimer(s.cfg.SessionSubmitWait)
	defer deadline.Stop()
	pause, maxPause := awaitFirstPoll, awaitMaxPoll
	if live {
		pause, maxPause = s.cfg.SessionSubmitPoll, max(s.cfg.SessionSubmitPoll, 4*s.cfg.SessionSubmitPoll)
	}
	tick := time.NewTimer(pause)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return pay
		case <-deadline.C:
			// one last read: the pause before it may have been long
			if p, err := s.store.PaymentHead(ctx, pay.ID); err == nil {
				pay = p
			}
			return pay
		case <-woken:
			woken = nil // one wake-up per wait (the channel is closed)
			s.metrics.SessionSubmitWakeups.WithLabelValues("notified").Inc()
		case <-tick.C:
			pause = min(2*pause, maxPause)
			tick.Reset(pause)
			if live {
				s.metrics.SessionSubmitWakeups.WithLabelValues("polled").Inc()
			}
		}
		p, err := s.store.PaymentHead(ctx, pay.ID)
		if err != nil {
			continue
		}
		pay = p
		if settled(pay) {
			return pay
		}
	}
}

// settled reports a payment whose submit answer is known: finished,
// awaiting the customer, or on a bank rail.
func settled(p payment.Payment) bool {
	switch p.Status {
	case payment.StatusSucceeded, payment.StatusFailed, payment.StatusCanceled, payment.StatusRequiresAction, payment.StatusSent:
		return true
	}
	return false
}

// submitAnswer is the seed's answer for the payment as it is now
// (sessionSubmitOutcomes), with the metrics label of the answer.
func (s *Server) submitAnswer(pay payment.Payment, sess payment.Session) (int, []byte, string) {
	mt := methodType(pay.Method)
	o, ok := sessionSubmitOutcomes[pay.Status]
	if !ok {
		o = submitOutcome{http.StatusAccepted, "Pending", "poll"}
	}
	if o.code == http.StatusCreated {
		st := o.status
		if st == "Captured" && pay.Amount.Minor == 0 {
			st = "Card Verified"
		}
		return o.code, mustJSON(submitDone{ID: pay.ID, Status: st, Type: []string{mt}}), "done"
	}
	act, label := submitAction{Type: "poll", URL: s.cfg.PublicURL + "/v1/payment-sessions/" + url.PathEscape(sess.ID)}, "pending"
	if o.action == "redirect" && pay.ActionURL != "" {
		act, label = submitAction{Type: "redirect", URL: pay.ActionURL}, "action"
	}
	return o.code, mustJSON(submitPending{ID: pay.ID, Status: o.status, Type: mt, Action: act}), label
}

// handleSubmitSession is the merchant's submit: POST
// /v1/payment-sessions/{id}/submit, authorized by the tenant's API key.
func (s *Server) handleSubmitSession(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/payment-sessions/{id}/submit"
	v, err := decodeValid(s, w, r, &submitSessionRequest{})
	if err != nil {
		return err
	}
	p := principal(r.Context())
	// the session must exist for this tenant before anything else is said
	// about it: submitSession's first statement answers 404 if it does not;
	// the Idempotency-Key is scoped to the session as well as the tenant and route
	return s.submitSession(w, r, p.TenantID, r.PathValue("id"), v, route+" "+r.PathValue("id"), p.KeyID)
}

// answerLapsedSubmit answers a retried submit whose first try recorded
// payID and stored no answer: the payment as it is now, stored as the
// key's answer when it is final (a 202 leaves the key to be asked again).
func (s *Server) answerLapsedSubmit(ctx context.Context, w http.ResponseWriter, tenantID, sessionID, payID string,
	k store.IdemKey, fp []byte) error {
	sess, err := s.store.GetSession(ctx, tenantID, sessionID)
	if err != nil {
		return err
	}
	pay, err := s.store.PaymentHead(ctx, payID)
	if err != nil {
		return err
	}
	code, body, _ := s.submitAnswer(pay, sess)
	if code == http.StatusCreated {
		if err := s.store.CompleteIdempotent(ctx, store.IdemWrite{Key: k, Fingerprint: fp, TTL: s.cfg.IdempotencyTTL,
			Code: code, Body: body}); err != nil {
			s.log.WarnContext(ctx, "store submit answer", "session_id", sessionID, "err", err)
		}
	}
	s.metrics.IdempotentReplays.WithLabelValues(k.Route).Inc()
	w.Header().Set("Idempotent-Replayed", "true")
	writeRaw(w, code, body)
	return nil
}
