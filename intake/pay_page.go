package intake

import (
	"context"
	"net/http"
	"net/url"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// The hosted payment page's JSON routes. They are authorized only by the
// session: the payment_session_token in the path and the
// payment_session_secret in the X-Payment-Session-Secret header (never an
// API key); a wrong secret and an unknown token are both 404, and a page
// can reach nothing but its own session. The page itself (GET
// /pay/{token}, HTML and assets) is served beside them. The secret exists
// only in the create's 201 (stored as a hash); a page learns it from its
// merchant, e.g. as the URL fragment of _links.redirect
// (/pay/{token}#<secret>), which browsers never send to a server and so
// never reaches a log.
//
//	GET  /pay/{token}/session  the session as the page shows it (pageSession)
//	POST /pay/{token}/submit   {"session_data"}: the amount is the session's;
//	                           answered as the merchant's submit is (submitSession)

// SessionSecretHeader carries the payment_session_secret on the page's calls.
const SessionSecretHeader = "X-Payment-Session-Secret"

type pageItem struct {
	Name        string `json:"name"`
	Quantity    int64  `json:"quantity"`
	UnitPrice   int64  `json:"unit_price"`
	TotalAmount int64  `json:"total_amount"`
}

type pageError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// pageSession is what the hosted page shows: amounts in minor units (the
// page formats them by the currency's exponent and the locale), the
// methods it may offer, whether a (new) submit is allowed now, the last
// payment's failure, and what the customer must do for a payment in
// flight (action redirect: a 3-D Secure challenge; poll: ask again).
type pageSession struct {
	ID             string        `json:"id"`
	Status         string        `json:"status"`
	Amount         int64         `json:"amount"`
	Currency       string        `json:"currency"`
	DisplayName    string        `json:"display_name"`
	Locale         string        `json:"locale"`
	Description    string        `json:"description"`
	Reference      string        `json:"reference"`
	Items          []pageItem    `json:"items"`
	EnabledMethods []string      `json:"enabled_methods"`
	PaymentID      *string       `json:"payment_id"`
	ExpiresOn      string        `json:"expires_on"`
	RetryAllowed   bool          `json:"retry_allowed"`
	LastError      *pageError    `json:"last_error"`
	SuccessURL     string        `json:"success_url"`
	FailureURL     string        `json:"failure_url"`
	Action         *submitAction `json:"action"`
}

// pageAuth resolves the session of a page request: token and secret, or
// 404. The tenant's rate limit applies.
func (s *Server) pageAuth(w http.ResponseWriter, r *http.Request) (payment.Session, bool, error) {
	token := r.PathValue("token")
	secret := r.Header.Get(SessionSecretHeader)
	if !validID(token) || secret == "" || len(secret) > 200 {
		return payment.Session{}, false, errNotFound
	}
	sess, err := s.store.SessionByToken(r.Context(), token, secret)
	if err != nil {
		return sess, false, err
	}
	if !s.allow(w, r, store.Principal{TenantID: sess.TenantID}) {
		return sess, false, nil // answered 429
	}
	return sess, true, nil
}

func (s *Server) handlePageSession(w http.ResponseWriter, r *http.Request) error {
	sess, ok, err := s.pageAuth(w, r)
	if !ok {
		return err
	}
	out, err := s.toPageSession(r.Context(), sess)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) toPageSession(ctx context.Context, sess payment.Session) (pageSession, error) {
	req := sessionEcho(sess)
	out := pageSession{ID: sess.ID, Status: s.shownStatus(sess), Amount: sess.Amount.Minor, Currency: sess.Amount.Currency,
		DisplayName: sess.DisplayName, Locale: sess.Locale, Description: sess.Description, Reference: sess.Reference,
		Items: []pageItem{}, EnabledMethods: sess.EnabledMethods, ExpiresOn: ts(sess.ExpiresOn),
		RetryAllowed: sess.RetryAllowed(s.store.Now()) && !sess.SubmitLocked, SuccessURL: sess.SuccessURL, FailureURL: sess.FailureURL}
	for _, it := range req.Items {
		pi := pageItem{Name: str(it.Name), Quantity: 1}
		if it.Quantity != nil {
			pi.Quantity = *it.Quantity
		}
		if it.UnitPrice != nil {
			pi.UnitPrice = *it.UnitPrice
		}
		if it.TotalAmount != nil {
			pi.TotalAmount = *it.TotalAmount
		} else {
			pi.TotalAmount = pi.UnitPrice * pi.Quantity
		}
		out.Items = append(out.Items, pi)
	}
	if sess.LastErrorCode != "" {
		out.LastError = &pageError{Code: sess.LastErrorCode, Message: sess.LastErrorMsg}
	}
	if sess.PaymentID != "" {
		out.PaymentID = &sess.PaymentID
		if sess.Status == payment.SessionProcessing {
			pay, err := s.store.PaymentHead(ctx, sess.PaymentID)
			if err != nil {
				return out, err
			}
			if pay.Status == payment.StatusRequiresAction && pay.ActionURL != "" {
				out.Action = &submitAction{Type: "redirect", URL: pay.ActionURL}
			} else {
				out.Action = &submitAction{Type: "poll", URL: s.pageURL(sess.Token) + "/session"}
			}
		}
	}
	return out, nil
}

// handlePageSubmit is the page's submit: session_data only, the amount is
// the session's.
func (s *Server) handlePageSubmit(w http.ResponseWriter, r *http.Request) error {
	sess, ok, err := s.pageAuth(w, r)
	if !ok {
		return err
	}
	v, err := decodeValid(s, w, r, &submitSessionRequest{page: true})
	if err != nil {
		return err
	}
	return s.submitSession(w, r, sess.TenantID, sess.ID, v, "POST /pay/{token}/submit "+url.PathEscape(sess.ID), "payment page")
}
