package intake

import (
	"context"
	"net/http"
	"regexp"
	"time"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// Merchant events: GET /v1/events and GET /v1/events/{id}. The triggers of
// migration 00015 write an event in the transaction of every transition of
// a payment, payout, session or flow; its object is the row that
// transition left, shown here in its own surface's shape. See
// docs/events.md.

// eventResponse is one event.
type eventResponse struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Created    string    `json:"created"`
	ObjectType string    `json:"object_type"`
	ObjectID   string    `json:"object_id"`
	Sequence   int64     `json:"sequence"`
	Data       eventData `json:"data"`
}

type eventData struct {
	Object any `json:"object"`
}

// eventSessionObject is a session as GET /v1/payment-sessions/{id} shows it,
// less what opens its payment page: an event names no token and no link to
// the page (the snapshot does not hold the token).
type eventSessionObject struct {
	sessionResponse
	PaymentSessionToken *string           `json:"payment_session_token,omitempty"`
	Links               eventSessionLinks `json:"_links"`
}

type eventSessionLinks struct {
	Self sessionLink `json:"self"`
}

func (s *Server) toEventResponse(e store.OutboxEvent) eventResponse {
	out := eventResponse{ID: e.ID, Type: e.Type, Created: ts(e.CreatedAt), ObjectType: e.ObjectType, ObjectID: e.ObjectID,
		Sequence: e.Seq}
	switch o := e.Object.(type) {
	case payment.Payment:
		out.Data.Object = toPaymentResponse(o)
	case payment.Payout:
		out.Data.Object = toPayoutResponse(o)
	case payment.Session:
		sr := s.toSessionResponse(o)
		sr.Status = string(o.Status) // the status the transition left, not as shown now
		out.Data.Object = eventSessionObject{sessionResponse: sr, Links: eventSessionLinks{Self: sr.Links.Self}}
	case payment.Flow:
		out.Data.Object = toFlowResponse(o)
	case payment.WebhookEndpoint:
		out.Data.Object = toEndpointResponse(o)
	}
	return out
}

func (s *Server) handleGetEvent(w http.ResponseWriter, r *http.Request) error {
	e, err := s.store.GetEvent(r.Context(), principal(r.Context()).TenantID, r.PathValue("id"))
	return writeOne(w, e, err, s.toEventResponse)
}

// eventTypePattern is what an event type can look like (payment.succeeded);
// a well-formed type no event has lists nothing.
var eventTypePattern = regexp.MustCompile(`^[a-z_]{1,40}\.[a-z_]{1,40}$`)

// handleListEvents lists the tenant's events, newest first. Filters: type,
// object_id, created[gte] and created[lte] (RFC 3339, inclusive).
func (s *Server) handleListEvents(w http.ResponseWriter, r *http.Request) error {
	p := principal(r.Context())
	q := parseListQuery(r)
	f := store.EventFilter{TenantID: p.TenantID, Limit: q.limit, StartingAfter: q.after}
	if t := q.Get("type"); t != "" {
		if !eventTypePattern.MatchString(t) {
			q.bad["type"] = "type_invalid"
		}
		f.Type = t
	}
	if id := q.Get("object_id"); id != "" {
		if !validID(id) {
			q.bad["object_id"] = "object_id_invalid"
		}
		f.ObjectID = id
	}
	for _, b := range []struct {
		param string
		into  **time.Time
	}{{"created[gte]", &f.CreatedGTE}, {"created[lte]", &f.CreatedLTE}} {
		if v := q.Get(b.param); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				q.bad[b.param] = "created_invalid"
				continue
			}
			*b.into = &t
		}
	}
	return writeList(w, r, q, func(ctx context.Context, id string) (bool, error) {
		return s.store.EventExists(ctx, p.TenantID, id)
	}, func(ctx context.Context) ([]store.OutboxEvent, bool, error) {
		return s.store.ListEvents(ctx, f)
	}, s.toEventResponse)
}
