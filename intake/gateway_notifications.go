package intake

import (
	"errors"
	"net/http"
	"time"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/store"
)

// Gateway notifications: POST /v1/gateway/notifications.
//
// A gateway (the sandbox, later a real PSP or bank) pushes what happened to
// a charge: charge.succeeded, charge.failed, payment.settled,
// payment.returned. The route is authenticated by the gateway's HMAC
// signature, not by a tenant's API key. A notification is only a hint: it
// is recorded once per (gateway, id) and a worker then asks the gateway
// about the payment at once (gateway:notification); the gateway's answer,
// applied through the same guarded update as a polled one, decides. So a
// duplicated, late, reordered or lying notification cannot move a payment
// anywhere the gateway itself does not confirm.
//
// Every well-signed, well-formed notification gets the same 202, whether or
// not it names a payment payd knows: the answer reveals nothing.

// DefaultNotifyMaxBody bounds a notification body; they are small.
const DefaultNotifyMaxBody = 16 << 10

type gatewayNotificationRequest struct {
	ID               string  `json:"id"`
	Type             string  `json:"type"`
	IdempotencyKey   *string `json:"idempotency_key"`
	GatewayReference *string `json:"gateway_reference"`
	OccurredAt       string  `json:"occurred_at"`
}

// valid returns one error code per bad field.
func (r gatewayNotificationRequest) valid(limits) (gatewayNotificationRequest, map[string]string) {
	bad := map[string]string{}
	if code := checkToken(r.ID, true, 100); code != "" {
		bad["id"] = "id_" + code
	}
	if code := checkToken(r.Type, true, 64); code != "" {
		bad["type"] = "type_" + code
	}
	key, ref := str(r.IdempotencyKey), str(r.GatewayReference)
	if code := checkToken(key, false, 200); code != "" {
		bad["idempotency_key"] = "idempotency_key_" + code
	}
	if code := checkToken(ref, false, 200); code != "" {
		bad["gateway_reference"] = "gateway_reference_" + code
	}
	if key == "" && ref == "" {
		bad["idempotency_key"] = "idempotency_key_or_gateway_reference_required"
	}
	if r.OccurredAt == "" {
		bad["occurred_at"] = "occurred_at_required"
	} else if at, err := time.Parse(time.RFC3339Nano, r.OccurredAt); err != nil {
		bad["occurred_at"] = "occurred_at_invalid"
	} else if at.Year() < 2000 || at.Year() > 2999 {
		// within what Postgres stores, and what a gateway can mean
		bad["occurred_at"] = "occurred_at_out_of_range"
	}
	return r, bad
}

var (
	errSignatureMissing = errf(http.StatusUnauthorized, typeAuthentication, "signature_missing",
		"a valid "+connector.NotificationSignatureHeader+" header is required")
	errSignatureInvalid = errf(http.StatusUnauthorized, typeAuthentication, "signature_invalid",
		"the notification signature does not match")
	errSignatureExpired = errf(http.StatusUnauthorized, typeAuthentication, "signature_expired",
		"the notification signature timestamp is outside the tolerance")
)

type notificationAck struct {
	Received bool `json:"received"`
}

func (s *Server) handleGatewayNotification(w http.ResponseWriter, r *http.Request) error {
	if s.notifyParser != nil {
		return s.handleParsedNotification(w, r)
	}
	if len(s.notifySecrets) == 0 {
		// not configured: the route does not exist
		return s.handleNoRoute(w, r)
	}
	count := func(typ, outcome string) {
		s.metrics.GatewayNotifications.WithLabelValues(connector.NotificationTypeLabel(typ), outcome).Inc()
	}
	body, err := s.readBodyLimit(w, r, s.cfg.NotifyMaxBody)
	if err != nil {
		count("", "invalid")
		return err
	}
	// authenticate before parsing: an unsigned body gets no feedback on its shape
	err = connector.VerifyNotification(r.Header.Get(connector.NotificationSignatureHeader), body, s.notifySecrets,
		s.store.Now(), s.cfg.NotifyTolerance)
	switch {
	case errors.Is(err, connector.ErrSignatureExpired):
		count("", "stale_signature")
		return errSignatureExpired
	case errors.Is(err, connector.ErrSignatureInvalid):
		count("", "bad_signature")
		return errSignatureInvalid
	case err != nil:
		count("", "bad_signature")
		return errSignatureMissing
	}
	// a body refused by decode names no type; one refused by valid does
	req, err := checkBody(body, &gatewayNotificationRequest{}, s.limits())
	if err != nil {
		count(req.Type, "invalid")
		return err
	}
	return s.actOnNotification(w, r, req, count)
}

// handleParsedNotification is the route for a gateway with its own
// notification format (Stripe): its parser authenticates the request
// before anything is read, then the notification is checked, recorded and
// acted on exactly as payd's own format is.
func (s *Server) handleParsedNotification(w http.ResponseWriter, r *http.Request) error {
	count := func(typ, outcome string) {
		s.metrics.GatewayNotifications.WithLabelValues(connector.NotificationTypeLabel(typ), outcome).Inc()
	}
	body, err := s.readBodyLimit(w, r, s.cfg.NotifyMaxBody)
	if err != nil {
		count("", "invalid")
		return err
	}
	n, err := s.notifyParser.ParseNotification(r.Header, body)
	switch {
	case errors.Is(err, connector.ErrSignatureExpired):
		count("", "stale_signature")
		return errSignatureExpired
	case errors.Is(err, connector.ErrSignatureInvalid):
		count("", "bad_signature")
		return errSignatureInvalid
	case errors.Is(err, connector.ErrNotificationMalformed):
		count("", "invalid")
		return validation(map[string]string{"body": "notification_malformed"})
	case err != nil:
		count("", "bad_signature")
		return errSignatureMissing
	}
	req := gatewayNotificationRequest{ID: n.ID, Type: n.Type, OccurredAt: n.OccurredAt.UTC().Format(time.RFC3339Nano)}
	if n.IdempotencyKey != "" {
		req.IdempotencyKey = &n.IdempotencyKey
	}
	if n.GatewayReference != "" {
		req.GatewayReference = &n.GatewayReference
	}
	if _, bad := req.valid(s.limits()); len(bad) > 0 {
		count(req.Type, "invalid")
		return validation(bad)
	}
	return s.actOnNotification(w, r, req, count)
}

// actOnNotification records a verified, valid notification once per
// (gateway, id) and enqueues its check; 202 for every one.
func (s *Server) actOnNotification(w http.ResponseWriter, r *http.Request, req gatewayNotificationRequest,
	count func(typ, outcome string)) error {
	occurred, _ := time.Parse(time.RFC3339Nano, req.OccurredAt)
	n, fresh, err := s.store.RecordNotification(r.Context(), store.Notification{Gateway: s.cfg.NotifyGateway,
		ID: req.ID, Type: req.Type, IdempotencyKey: str(req.IdempotencyKey), Reference: str(req.GatewayReference),
		OccurredAt: occurred})
	if err != nil {
		count(req.Type, "unavailable")
		return err
	}
	outcome := "accepted"
	if !fresh {
		outcome = "duplicate"
	}
	switch {
	case n.ProcessedAt != nil:
		// acted on already: nothing more to do
	case connector.NotificationTypeLabel(n.Type) == "other":
		// recorded for operators; nothing to ask the gateway about
		if err := s.store.FinishNotification(r.Context(), n.Gateway, n.ID, "", "ignored_type"); err != nil && fresh {
			s.log.WarnContext(r.Context(), "finish notification", "err", err)
		}
	default:
		// a duplicate of one not yet acted on enqueues again: the TaskID
		// de-duplicates, and a lost enqueue is recovered by the redelivery
		// that a 503 asks the gateway for
		if err := s.enqueue.Notification(r.Context(), n.Gateway, n.ID, n.Seq); err != nil {
			count(req.Type, "unavailable")
			s.log.WarnContext(r.Context(), "enqueue gateway notification failed", "err", err)
			return errUnavailable
		}
	}
	count(req.Type, outcome)
	writeJSON(w, http.StatusAccepted, notificationAck{Received: true})
	return nil
}
