package stripe

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	stripego "github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/payd/payd/connector"
)

// SignatureHeader is the header Stripe signs its webhooks in.
const SignatureHeader = "Stripe-Signature"

// DefaultWebhookTolerance is how old a webhook's signature may be.
const DefaultWebhookTolerance = 5 * time.Minute

// notifyTypes maps the Stripe events payd acts on to payd's notification
// types; any other event is recorded under its own type and ignored
// (charge.refunded among them: a refund payd made is recorded when Stripe
// answers it, and one made elsewhere is found by reconciliation).
var notifyTypes = map[string]string{
	"payment_intent.succeeded":      connector.NotifyChargeSucceeded,
	"payment_intent.payment_failed": connector.NotifyChargeFailed,
	"payment_intent.canceled":       connector.NotifyChargeFailed,
}

// ParseNotification implements connector.NotificationParser: the
// Stripe-Signature is checked by stripe-go's webhook.ConstructEventWithOptions
// under each webhook secret (two while one is rolled), with the tolerance;
// the event's API version is not required to match the library's, since
// payd reads only the object's id, metadata and payment_intent.
func (c *Connector) ParseNotification(h http.Header, body []byte) (connector.Notification, error) {
	sig := h.Get(SignatureHeader)
	if sig == "" || len(c.secrets) == 0 {
		return connector.Notification{}, connector.ErrSignatureMissing
	}
	tol := c.cfg.WebhookTolerance
	if tol <= 0 {
		tol = DefaultWebhookTolerance
	}
	var evt stripego.Event
	var err error
	for _, secret := range c.secrets {
		evt, err = webhook.ConstructEventWithOptions(body, sig, secret,
			webhook.ConstructEventOptions{Tolerance: tol, IgnoreAPIVersionMismatch: true})
		if err == nil || !errors.Is(err, webhook.ErrNoValidSignature) {
			break
		}
	}
	switch {
	case errors.Is(err, webhook.ErrTooOld):
		return connector.Notification{}, connector.ErrSignatureExpired
	case errors.Is(err, webhook.ErrNoValidSignature):
		return connector.Notification{}, connector.ErrSignatureInvalid
	case errors.Is(err, webhook.ErrNotSigned), errors.Is(err, webhook.ErrInvalidHeader):
		return connector.Notification{}, connector.ErrSignatureMissing
	case err != nil:
		return connector.Notification{}, fmt.Errorf("%w: %v", connector.ErrNotificationMalformed, err)
	}
	n := connector.Notification{ID: evt.ID, Type: string(evt.Type), OccurredAt: time.Unix(evt.Created, 0).UTC()}
	if t, ok := notifyTypes[n.Type]; ok {
		n.Type = t
	}
	if evt.Data == nil || len(evt.Data.Raw) == 0 {
		return n, nil
	}
	var obj struct {
		ID            string            `json:"id"`
		Object        string            `json:"object"`
		Metadata      map[string]string `json:"metadata"`
		PaymentIntent json.RawMessage   `json:"payment_intent"`
	}
	if err := json.Unmarshal(evt.Data.Raw, &obj); err != nil {
		return connector.Notification{}, fmt.Errorf("%w: data.object: %v", connector.ErrNotificationMalformed, err)
	}
	n.IdempotencyKey = obj.Metadata[MetaAttemptKey]
	switch obj.Object {
	case "payment_intent":
		n.GatewayReference = obj.ID
	default:
		// a charge or a refund names its PaymentIntent (an id, or expanded)
		var id string
		if json.Unmarshal(obj.PaymentIntent, &id) != nil {
			var x struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(obj.PaymentIntent, &x)
			id = x.ID
		}
		n.GatewayReference = id
	}
	return n, nil
}
