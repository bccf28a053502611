package intake

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
	"github.com/payd/payd/webhook"
)

// Webhook endpoints: where a tenant's events are delivered (docs/events.md,
// "Webhooks"). The secret (whsec_…) is shown once, in the answer to the
// create and to a rotation, and kept sealed with PAYD_WEBHOOK_KEYS.

// webhookEventTypes are the event types an endpoint may subscribe to.
var webhookEventTypes = map[string]bool{
	"*": true, "webhook_endpoint.disabled": true,
	"payment.processing": true, "payment.requires_action": true, "payment.requires_review": true, "payment.sent": true,
	"payment.succeeded": true, "payment.failed": true, "payment.canceled": true, "payment.partially_refunded": true,
	"payment.refunded": true, "payment.returned": true,
	"payout.processing": true, "payout.requires_action": true, "payout.requires_review": true, "payout.sent": true,
	"payout.settled": true, "payout.failed": true, "payout.canceled": true, "payout.partially_refunded": true,
	"payout.returned":           true,
	"payment_session.completed": true, "payment_session.failed": true, "payment_session.expired": true,
	"payment_session.canceled": true,
	"payment_flow.processing":  true, "payment_flow.settled": true, "payment_flow.failed": true,
	"payment_flow.blocked": true, "payment_flow.canceled": true,
}

// maxEndpoints bounds a tenant's endpoints (each event fans out to all).
const maxEndpoints = 16

type endpointRequest struct {
	URL           *string  `json:"url"`
	EnabledEvents []string `json:"enabled_events"`
	Description   *string  `json:"description"`
	Disabled      *bool    `json:"disabled"`
}

type validEndpoint struct {
	URL           *string  `json:"url,omitempty"`
	EnabledEvents []string `json:"enabled_events,omitempty"`
	Description   *string  `json:"description,omitempty"`
	Disabled      *bool    `json:"disabled,omitempty"`
}

// createEndpointRequest and updateEndpointRequest share the checks; a
// create needs url and enabled_events. The URL's address is checked apart
// (checkEndpointURL): it needs a resolver.
type createEndpointRequest struct{ endpointRequest }

type updateEndpointRequest struct{ endpointRequest }

func (r *createEndpointRequest) valid(limits) (validEndpoint, map[string]string) {
	return r.endpointRequest.check(true)
}

func (r *updateEndpointRequest) valid(limits) (validEndpoint, map[string]string) {
	return r.endpointRequest.check(false)
}

func (r endpointRequest) check(create bool) (validEndpoint, map[string]string) {
	bad := map[string]string{}
	v := validEndpoint{URL: r.URL, Description: r.Description, Disabled: r.Disabled}
	if r.URL != nil || create {
		if code := checkText(r.URL, true, 2048); code != "" {
			bad["url"] = "url_" + code
		}
	}
	if r.EnabledEvents != nil || create {
		switch {
		case len(r.EnabledEvents) == 0:
			bad["enabled_events"] = "enabled_events_required"
		case len(r.EnabledEvents) > len(webhookEventTypes):
			bad["enabled_events"] = "enabled_events_too_many"
		default:
			seen := map[string]bool{}
			for _, e := range r.EnabledEvents {
				if !webhookEventTypes[e] {
					bad["enabled_events"] = "enabled_events_unknown"
				}
				seen[e] = true
			}
			for e := range seen {
				v.EnabledEvents = append(v.EnabledEvents, e)
			}
			sort.Strings(v.EnabledEvents)
		}
	}
	if code := checkText(r.Description, false, 500); code != "" {
		bad["description"] = "description_" + code
	}
	return v, bad
}

// checkEndpointURL is the registration check of a URL: https unless
// allowed, no private address unless allowed (resolved now; the delivery
// client checks the dialed address again).
func (s *Server) checkEndpointURL(ctx context.Context, u string) error {
	err := webhook.CheckURL(ctx, u, s.cfg.WebhookPolicy, nil)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, webhook.ErrHTTP):
		return validation(map[string]string{"url": "url_must_be_https"})
	case errors.Is(err, webhook.ErrPrivateURL):
		return validation(map[string]string{"url": "url_private_address"})
	case errors.Is(err, webhook.ErrURL):
		return validation(map[string]string{"url": "url_invalid"})
	}
	return validation(map[string]string{"url": "url_unresolvable"})
}

var errWebhooksOff = errf(http.StatusConflict, typeConflict, "webhooks_not_configured",
	"webhook endpoints need PAYD_WEBHOOK_KEYS on this deployment")

func (s *Server) handleCreateEndpoint(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/webhook-endpoints"
	p := principal(r.Context())
	if s.keyring == nil {
		return errWebhooksOff
	}
	v, err := decodeValid(s, w, r, &createEndpointRequest{})
	if err != nil {
		return err
	}
	if err := s.checkEndpointURL(r.Context(), *v.URL); err != nil {
		return err
	}
	return s.idempotent(w, r, route, fingerprint(route, v), func(ctx context.Context, tx *store.Store) (int, any, error) {
		existing, _, err := tx.ListEndpoints(ctx, p.TenantID, maxEndpoints, "")
		if err != nil {
			return 0, nil, err
		}
		if len(existing) >= maxEndpoints {
			return 0, nil, validation(map[string]string{"url": "webhook_endpoints_too_many"})
		}
		id := store.NewEndpointID()
		secret := webhook.NewSecret()
		sealed, err := s.keyring.Seal(secret, id)
		if err != nil {
			return 0, nil, err
		}
		e, err := tx.CreateEndpoint(ctx, payment.WebhookEndpoint{ID: id, TenantID: p.TenantID, URL: *v.URL,
			Description: str(v.Description), EnabledEvents: v.EnabledEvents}, sealed)
		if err != nil {
			return 0, nil, err
		}
		out := toEndpointResponse(e)
		out.Secret = &secret
		return http.StatusCreated, out, nil
	}, nil)
}

func (s *Server) handleGetEndpoint(w http.ResponseWriter, r *http.Request) error {
	e, err := s.store.GetEndpoint(r.Context(), principal(r.Context()).TenantID, r.PathValue("id"))
	return writeOne(w, e, err, toEndpointResponse)
}

func (s *Server) handleListEndpoints(w http.ResponseWriter, r *http.Request) error {
	p := principal(r.Context())
	q := parseListQuery(r)
	return writeList(w, r, q, func(ctx context.Context, id string) (bool, error) {
		return s.store.EndpointExists(ctx, p.TenantID, id)
	}, func(ctx context.Context) ([]payment.WebhookEndpoint, bool, error) {
		return s.store.ListEndpoints(ctx, p.TenantID, q.limit, q.after)
	}, toEndpointResponse)
}

func (s *Server) handleUpdateEndpoint(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/webhook-endpoints/{id}"
	p := principal(r.Context())
	id := r.PathValue("id")
	v, err := decodeValid(s, w, r, &updateEndpointRequest{})
	if err != nil {
		return err
	}
	if v.URL != nil {
		if err := s.checkEndpointURL(r.Context(), *v.URL); err != nil {
			return err
		}
	}
	var enabled *bool
	if v.Disabled != nil {
		e := !*v.Disabled
		enabled = &e
	}
	return s.idempotent(w, r, route, fingerprint(route, []any{id, v}), func(ctx context.Context, tx *store.Store) (int, any, error) {
		e, err := tx.UpdateEndpoint(ctx, p.TenantID, id, store.EndpointUpdate{URL: v.URL, Description: v.Description,
			EnabledEvents: v.EnabledEvents, Enabled: enabled})
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, toEndpointResponse(e), nil
	}, nil)
}

func (s *Server) handleDeleteEndpoint(w http.ResponseWriter, r *http.Request) error {
	p := principal(r.Context())
	id := r.PathValue("id")
	if err := s.store.DeleteEndpoint(r.Context(), p.TenantID, id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "webhook_endpoint", "deleted": true})
	return nil
}

type rotateRequest struct {
	// ExpiresIn is how long, in seconds, the current secret keeps signing
	// beside the new one: 0 to 7 days, default 24 h.
	ExpiresIn *int64 `json:"expires_in"`
}

type validRotate struct {
	ExpiresIn int64 `json:"expires_in"`
}

func (r *rotateRequest) valid(limits) (validRotate, map[string]string) {
	v := validRotate{ExpiresIn: 24 * 3600}
	bad := map[string]string{}
	if r.ExpiresIn != nil {
		if *r.ExpiresIn < 0 || *r.ExpiresIn > 7*24*3600 {
			bad["expires_in"] = "expires_in_out_of_range"
		}
		v.ExpiresIn = *r.ExpiresIn
	}
	return v, bad
}

func (s *Server) handleRotateSecret(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/webhook-endpoints/{id}/rotate-secret"
	p := principal(r.Context())
	id := r.PathValue("id")
	if s.keyring == nil {
		return errWebhooksOff
	}
	v, err := decodeValid(s, w, r, &rotateRequest{})
	if err != nil {
		return err
	}
	return s.idempotent(w, r, route, fingerprint(route, []any{id, v}), func(ctx context.Context, tx *store.Store) (int, any, error) {
		secret := webhook.NewSecret()
		sealed, err := s.keyring.Seal(secret, id)
		if err != nil {
			return 0, nil, err
		}
		e, err := tx.RotateSecret(ctx, p.TenantID, id, sealed, tx.Now().Add(time.Duration(v.ExpiresIn)*time.Second))
		if err != nil {
			return 0, nil, err
		}
		out := toEndpointResponse(e)
		out.Secret = &secret
		return http.StatusOK, out, nil
	}, nil)
}

// handleListDeliveries answers an endpoint's delivery tries, newest first:
// each with its event, attempt number, status code, latency, error and
// next try. starting_after is a try's id.
func (s *Server) handleListDeliveries(w http.ResponseWriter, r *http.Request) error {
	p := principal(r.Context())
	id := r.PathValue("id")
	q := parseListQuery(r)
	var after int64
	if q.after != "" {
		n, err := strconv.ParseInt(q.after, 10, 64)
		if err != nil || n <= 0 {
			q.bad["starting_after"] = "starting_after_invalid"
		}
		after = n
	}
	if len(q.bad) > 0 {
		return validation(q.bad)
	}
	if _, err := s.store.GetEndpoint(r.Context(), p.TenantID, id); err != nil {
		return err
	}
	tries, more, err := s.store.ListAttempts(r.Context(), p.TenantID, id, q.limit, after)
	if err != nil {
		return err
	}
	out := make([]deliveryTryResponse, len(tries))
	for i, a := range tries {
		out[i] = deliveryTryResponse{ID: strconv.FormatInt(a.ID, 10), DeliveryID: a.DeliveryID, EventID: a.EventID,
			Attempt: a.Attempt, StatusCode: a.StatusCode, LatencyMS: a.Latency.Milliseconds(), Error: strp(a.Error),
			NextAttemptAt: tsp(a.NextAt), Created: ts(a.CreatedAt)}
	}
	writeJSON(w, http.StatusOK, listResponse{Object: "list", Data: out, HasMore: more})
	return nil
}

type redeliverRequest struct {
	EndpointID *string `json:"endpoint_id"`
}

type validRedeliver struct {
	EndpointID string `json:"endpoint_id"`
}

func (r *redeliverRequest) valid(limits) (validRedeliver, map[string]string) {
	bad := map[string]string{}
	if code := checkText(r.EndpointID, false, 100); code != "" {
		bad["endpoint_id"] = "endpoint_id_" + code
	}
	return validRedeliver{EndpointID: str(r.EndpointID)}, bad
}

// handleRedeliver replays an event to one endpoint (endpoint_id) or to
// every enabled endpoint subscribed to it: each delivery becomes pending
// again under a new step, with the same event id.
func (s *Server) handleRedeliver(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/events/{id}/redeliver"
	p := principal(r.Context())
	id := r.PathValue("id")
	v, err := decodeValid(s, w, r, &redeliverRequest{})
	if err != nil {
		return err
	}
	var refs []store.DeliveryRef
	return s.idempotent(w, r, route, fingerprint(route, []any{id, v}), func(ctx context.Context, tx *store.Store) (int, any, error) {
		rs, err := tx.Redeliver(ctx, p.TenantID, id, v.EndpointID)
		if errors.Is(err, payment.ErrNotFound) && v.EndpointID != "" {
			if _, gerr := tx.GetEvent(ctx, p.TenantID, id); gerr == nil {
				return 0, nil, validation(map[string]string{"endpoint_id": "endpoint_not_found"})
			}
		}
		if err != nil {
			return 0, nil, err
		}
		refs = rs
		ids := make([]string, len(rs))
		for i, d := range rs {
			ids[i] = d.ID
		}
		slices.Sort(ids)
		return http.StatusAccepted, map[string]any{"event_id": id, "deliveries": ids}, nil
	}, func(ctx context.Context, _ any) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		for _, d := range refs {
			if err := s.enqueue.Deliver(ctx, d.ID, d.Seq, time.Time{}); err != nil {
				s.log.WarnContext(ctx, "enqueue redelivery failed; the dispatcher will enqueue it", "delivery_id", d.ID, "err", err)
			}
		}
	})
}

type endpointResponse struct {
	ID             string   `json:"id"`
	Object         string   `json:"object"`
	URL            string   `json:"url"`
	Description    *string  `json:"description"`
	EnabledEvents  []string `json:"enabled_events"`
	Status         string   `json:"status"`
	DisabledReason *string  `json:"disabled_reason"`
	// Secret is shown in the answer to the create and to a rotation only.
	Secret                *string `json:"secret,omitempty"`
	PreviousSecretExpires *string `json:"previous_secret_expires_at"`
	Created               string  `json:"created"`
	Updated               string  `json:"updated"`
}

type deliveryTryResponse struct {
	ID            string  `json:"id"`
	DeliveryID    string  `json:"delivery_id"`
	EventID       string  `json:"event_id"`
	Attempt       int     `json:"attempt"`
	StatusCode    *int    `json:"status_code"`
	LatencyMS     int64   `json:"latency_ms"`
	Error         *string `json:"error"`
	NextAttemptAt *string `json:"next_attempt_at"`
	Created       string  `json:"created"`
}

func toEndpointResponse(e payment.WebhookEndpoint) endpointResponse {
	return endpointResponse{ID: e.ID, Object: "webhook_endpoint", URL: e.URL, Description: strp(e.Description),
		EnabledEvents: e.EnabledEvents, Status: e.Status, DisabledReason: strp(e.DisabledReason),
		PreviousSecretExpires: tsp(e.PreviousUntil), Created: ts(e.CreatedAt), Updated: ts(e.UpdatedAt)}
}

// EventBody is what a webhook delivers for an event: the JSON GET
// /v1/events/{id} answers — {id, type, created, object_type, object_id,
// sequence, data: {object}} — with the object in its surface's shape.
// cmd/payd hands it to the processor, which cannot import intake.
func (s *Server) EventBody(_ context.Context, e store.OutboxEvent) ([]byte, error) {
	return json.Marshal(s.toEventResponse(e))
}
