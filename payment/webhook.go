package payment

import "time"

// Outbound webhooks: a tenant's endpoints, one delivery per (event,
// endpoint), and every try of it.

// PrefixWebhookEndpoint and PrefixDelivery start their ids.
const (
	PrefixWebhookEndpoint = "we_"
	PrefixDelivery        = "whd_"
)

// WebhookEndpoint is where a tenant wants its events. Its secrets are
// never here: they stay sealed in the store until a delivery signs.
type WebhookEndpoint struct {
	ID             string
	TenantID       string
	URL            string
	Description    string
	EnabledEvents  []string // event types, or "*"
	Status         string   // enabled, disabled
	DisabledReason string
	PreviousUntil  *time.Time // a rotated-out secret signs until then
	FailingSince   *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// WebhookAttempt is one try of a delivery, as logged.
type WebhookAttempt struct {
	ID         int64
	DeliveryID string
	EndpointID string
	EventID    string
	Attempt    int
	StatusCode *int
	Latency    time.Duration
	Error      string
	NextAt     *time.Time
	CreatedAt  time.Time
}
