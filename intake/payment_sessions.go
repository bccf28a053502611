package intake

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// Payment sessions (seed 003's surface): POST /v1/payment-sessions,
// GET /v1/payment-sessions/{id}, POST /v1/payment-sessions/{id}/submit
// (payment_session_submit.go) and the hosted page's JSON routes
// (pay_page.go). See docs/surfaces.md, "Payment sessions".

// DefaultSessionSubmitWait is how long a submit waits for its payment's
// outcome (PAYD_SESSION_SUBMIT_WAIT).
const DefaultSessionSubmitWait = 3 * time.Second

// DefaultSessionSubmitPoll is the first pause of a submit's fallback poll
// while wake-ups work (a lost wake-up costs at most about this much).
const DefaultSessionSubmitPoll = 250 * time.Millisecond

type sessionLink struct {
	Href string `json:"href"`
}

type sessionLinks struct {
	Self     sessionLink `json:"self"`
	Redirect sessionLink `json:"redirect"`
}

// sessionProduct is a line item as the response's products show it.
type sessionProduct = sessionItem

// sessionResponse is the seed's payment session (201 and GET). The secret
// is shown once, in the 201 of the create: payd keeps only its hash, so
// GET and an Idempotency-Key replay of the create answer without it.
type sessionResponse struct {
	ID                   string           `json:"id"`
	Status               string           `json:"status"`
	PaymentID            string           `json:"payment_id,omitempty"`
	Amount               int64            `json:"amount"`
	Currency             string           `json:"currency"`
	Reference            string           `json:"reference,omitempty"`
	Description          string           `json:"description,omitempty"`
	ExpiresOn            string           `json:"expires_on"`
	Customer             *sessionCustomer `json:"customer,omitempty"`
	Billing              *sessionBilling  `json:"billing,omitempty"`
	Products             []sessionProduct `json:"products"`
	PaymentSessionToken  string           `json:"payment_session_token"`
	PaymentSessionSecret string           `json:"payment_session_secret,omitempty"`
	InvoiceID            string           `json:"invoice_id,omitempty"`
	Links                sessionLinks     `json:"_links"`
}

// sessionEcho reads the stored request for the fields a response echoes.
func sessionEcho(sess payment.Session) createSessionRequest {
	var req createSessionRequest
	_ = json.Unmarshal(sess.Request, &req)
	return req
}

// shownStatus is a session's status as answered: one that takes no more
// submits because expires_on passed is EXPIRED at once, before its expiry
// task has run (a session whose payment is still running stays
// PROCESSING: its payment decides).
func (s *Server) shownStatus(sess payment.Session) string {
	if (sess.Status == payment.SessionActive || sess.Status == payment.SessionFailed) && !s.store.Now().Before(sess.ExpiresOn) {
		return string(payment.SessionExpired)
	}
	return string(sess.Status)
}

func (s *Server) toSessionResponse(sess payment.Session) sessionResponse {
	req := sessionEcho(sess)
	out := sessionResponse{ID: sess.ID, Status: s.shownStatus(sess), PaymentID: sess.PaymentID, Amount: sess.Amount.Minor,
		Currency: sess.Amount.Currency, Reference: sess.Reference, Description: sess.Description, ExpiresOn: ts(sess.ExpiresOn),
		Customer: req.Customer, Billing: req.Billing, Products: req.Items, PaymentSessionToken: sess.Token,
		InvoiceID: sess.InvoiceID, Links: sessionLinks{
			Self:     sessionLink{Href: s.cfg.PublicURL + "/v1/payment-sessions/" + url.PathEscape(sess.ID)},
			Redirect: sessionLink{Href: s.pageURL(sess.Token)},
		}}
	if out.Products == nil {
		out.Products = []sessionProduct{}
	}
	return out
}

// pageURL is the hosted payment page of a session token.
func (s *Server) pageURL(token string) string {
	return s.cfg.PublicURL + "/pay/" + url.PathEscape(token)
}

// handleCreateSession records an ACTIVE session and, after commit, enqueues
// its expiry step at expires_on (the sweeper enqueues it if that fails). It
// runs under the Idempotency-Key like every POST, with one difference: the
// stored answer leaves out payment_session_secret, which is kept nowhere
// but as a hash, so a replay answers the session without it. As a card
// payment's create, the session, its audit row and the key's answer are one
// statement shared with concurrent creates (store.CreateSessionWith); a key
// already used is looked up only when that statement finds it.
func (s *Server) handleCreateSession(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/payment-sessions"
	ctx := r.Context()
	p := principal(ctx)
	v, err := decodeValid(s, w, r, &createSessionRequest{})
	if err != nil {
		return err
	}
	fp := fingerprint(route, v)
	k, err := s.idemKey(r, route)
	if err != nil {
		return err
	}
	refuse := func(err error) error {
		// a key already used answers as such, whatever else is wrong
		if k != nil {
			if done, rerr := s.replayed(w, r, *k, fp); done || rerr != nil {
				return rerr
			}
		}
		return err
	}
	if v.ExpiresOn != nil {
		if code := expiresOnRefusal(*v.ExpiresOn, s.store.Now()); code != "" {
			return refuse(validation(map[string]string{"expires_on": code}))
		}
	}
	var invoiceID string
	if v.InvoiceRef != "" {
		inv, err := s.store.InvoiceHead(ctx, p.TenantID, v.InvoiceRef)
		switch {
		case errors.Is(err, payment.ErrNotFound):
			return refuse(validation(map[string]string{"invoice_id": "invoice_not_found"}))
		case err != nil:
			return refuse(err)
		case inv.Status == invoiceVoid:
			return refuse(validation(map[string]string{"invoice_id": "invoice_void"}))
		case inv.Currency != v.Amount.Currency:
			return refuse(validation(map[string]string{"currency": "currency_mismatch"}))
		}
		invoiceID = inv.ID
	}
	expires := s.store.Now().Add(DefaultSessionLifetime).UTC().Truncate(time.Microsecond)
	if v.ExpiresOn != nil {
		expires = *v.ExpiresOn
	}
	// The answer and the key's stored answer are one response, made once:
	// its status is read off the clock (an ACTIVE session past expires_on
	// shows EXPIRED), and two readings could straddle a clock step, so that
	// a replay said otherwise than the first answer (the chaos run's I5).
	var stored *sessionResponse
	sc := store.SessionCreate{
		NewSession: store.NewSession{TenantID: p.TenantID, Amount: v.Amount,
			Reference: v.Reference, Description: v.Description, DisplayName: v.DisplayName, Locale: v.Locale,
			SuccessURL: v.SuccessURL, FailureURL: v.FailureURL, EnabledMethods: v.EnabledMethods, Request: v.Request,
			InvoiceID: invoiceID, ExpiresOn: expires, RetryLimit: v.RetryLimit, Actor: p.KeyID},
		Respond: func(sess payment.Session) (int, []byte, error) {
			resp := s.toSessionResponse(sess)
			stored = &resp
			b, err := json.Marshal(resp) // without the secret
			return http.StatusCreated, b, err
		},
	}
	if k != nil {
		sc.Idem = &store.IdemWrite{Key: *k, Fingerprint: fp, TTL: s.cfg.IdempotencyTTL}
	}
	var res store.SessionCreateResult
	for try := 0; ; try++ {
		if res, err = s.store.CreateSessionWith(ctx, sc); err != nil {
			return err
		}
		if res.Outcome != store.KeyUsed {
			break
		}
		if done, err := s.replayed(w, r, *k, fp); done || err != nil {
			return err
		}
		// an expired record: forget it and run the request once more
		if err := s.store.ForgetIdempotent(ctx, *k); err != nil || try > 0 {
			return errInFlight
		}
	}
	switch res.Outcome {
	case store.KeyInFlight:
		return errInFlight
	case store.InvoiceRefused:
		return validation(map[string]string{"invoice_id": "invoice_not_found"})
	}
	sess := res.Session
	s.metrics.SessionsCreated.Inc()
	shown := *stored // CreateSessionWith made it (Respond) before recording the session
	shown.PaymentSessionSecret = res.Secret
	// The hosted page's link carries the secret in its fragment, which a
	// browser never sends: the page reads it there (intake/page/pay.js).
	// Only this first answer has it; a replay has neither.
	shown.Links.Redirect.Href += "#" + url.PathEscape(res.Secret)
	s.answer(w, r, http.StatusCreated, mustJSON(shown), nil, func(ctx context.Context, _ any) {
		s.enqueueSessionExpiry(ctx, sess.ID, sess.StepSeq, sess.ExpiresOn)
	})
	return nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // response types always encode
	}
	return b
}

func (s *Server) enqueueSessionExpiry(ctx context.Context, id string, seq int, at time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	res := "ok"
	if err := s.enqueue.SessionExpire(ctx, id, seq, at); err != nil {
		res = "error"
		s.log.WarnContext(ctx, "enqueue failed; the sweeper will enqueue it", "session_id", id, "step", "session", "err", err)
	}
	s.metrics.Enqueues.WithLabelValues("session", res).Inc()
}

// handleGetSession answers the seed's session with its current status;
// another tenant's session is 404.
func (s *Server) handleGetSession(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.store.GetSession(r.Context(), principal(r.Context()).TenantID, r.PathValue("id"))
	return writeOne(w, sess, err, s.toSessionResponse)
}

// handleCancelSession is the merchant's cancel of a session (payd's
// addition to seed 003's routes: a checkout the merchant abandons). An
// ACTIVE or FAILED session becomes CANCELED, 200; one whose payment awaits
// 3-D Secure becomes CANCELED and its payment is voided at the gateway
// first (the void step, as POST /v1/payments/{id}/cancel does: a charge
// that lands anyway is refunded), 202. A session that is finished, past its
// expires_on or whose payment is running is 409
// payment_session_not_cancelable; a canceled session takes no submit (422
// payment_session_canceled). Idempotency-Key works as on every POST.
func (s *Server) handleCancelSession(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/payment-sessions/{id}/cancel"
	p := principal(r.Context())
	id := r.PathValue("id")
	if _, err := s.store.GetSession(r.Context(), p.TenantID, id); err != nil {
		return err
	}
	var res store.ExpireResult
	return s.idempotent(w, r, route, fingerprint(route, id), func(ctx context.Context, tx *store.Store) (int, any, error) {
		out, refusal, err := tx.CancelSession(ctx, p.TenantID, id, p.KeyID)
		switch {
		case err != nil:
			return 0, nil, err
		case refusal == store.SessionIsBusy:
			return 0, nil, errSessionBusy
		case refusal != store.SessionOK:
			return 0, nil, errf(http.StatusConflict, typeConflict, "payment_session_not_cancelable",
				"the payment session is finished, expired, or its payment is running; fetch it")
		}
		res = out
		sess, err := tx.GetSession(ctx, p.TenantID, id)
		if err != nil {
			return 0, nil, err
		}
		code := http.StatusOK
		if out.Outcome == store.ExpireVoid {
			code = http.StatusAccepted
		}
		return code, s.toSessionResponse(sess), nil
	}, func(ctx context.Context, _ any) {
		s.metrics.SessionsFinished.WithLabelValues("canceled").Inc()
		if res.Outcome == store.ExpireVoid {
			s.enqueueStep(ctx, payment.StepVoid, res.PaymentID, res.VoidSeq)
		}
	})
}
