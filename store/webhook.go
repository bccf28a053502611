package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

// Outbound webhooks (migration 00016): endpoints, deliveries (written by a
// trigger on events), the log of every try, and the guarded update that
// records a try.

type endpointRow struct {
	ID             string         `db:"id"`
	TenantID       string         `db:"tenant_id"`
	URL            string         `db:"url"`
	Description    string         `db:"description"`
	EnabledEvents  pq.StringArray `db:"enabled_events"`
	Status         string         `db:"status"`
	DisabledReason string         `db:"disabled_reason"`
	PreviousUntil  sql.NullTime   `db:"previous_until"`
	FailingSince   sql.NullTime   `db:"failing_since"`
	CreatedAt      time.Time      `db:"created_at"`
	UpdatedAt      time.Time      `db:"updated_at"`
}

const endpointColumns = `id, tenant_id, url, description, enabled_events, status, disabled_reason, previous_until,
	failing_since, created_at, updated_at`

func (r endpointRow) toEndpoint() payment.WebhookEndpoint {
	return payment.WebhookEndpoint{ID: r.ID, TenantID: r.TenantID, URL: r.URL, Description: r.Description,
		EnabledEvents: append([]string{}, r.EnabledEvents...), Status: r.Status, DisabledReason: r.DisabledReason,
		PreviousUntil: tp(r.PreviousUntil), FailingSince: tp(r.FailingSince), CreatedAt: r.CreatedAt.UTC(),
		UpdatedAt: r.UpdatedAt.UTC()}
}

// NewEndpointID is the id of an endpoint about to be created: its secret
// is sealed bound to it before the row exists.
func NewEndpointID() string { return NewID(payment.PrefixWebhookEndpoint) }

// CreateEndpoint records an enabled endpoint with its sealed secret.
func (s *Store) CreateEndpoint(ctx context.Context, e payment.WebhookEndpoint, sealed string) (payment.WebhookEndpoint, error) {
	var r endpointRow
	now := s.now()
	err := sqlx.GetContext(ctx, s.q, &r, `INSERT INTO webhook_endpoints (id, tenant_id, url, description, enabled_events,
			status, secret_sealed, created_at, updated_at)
		VALUES ($1,$2,$3,$4,$5,'enabled',$6,$7,$7) RETURNING `+endpointColumns,
		e.ID, e.TenantID, e.URL, e.Description, pq.Array(e.EnabledEvents), sealed, now)
	if err != nil {
		return payment.WebhookEndpoint{}, translate(fmt.Errorf("create endpoint: %w", err))
	}
	return r.toEndpoint(), nil
}

// GetEndpoint loads a tenant's endpoint (deleted ones are gone).
func (s *Store) GetEndpoint(ctx context.Context, tenantID, id string) (payment.WebhookEndpoint, error) {
	var r endpointRow
	err := sqlx.GetContext(ctx, s.q, &r, `SELECT `+endpointColumns+` FROM webhook_endpoints
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`, tenantID, id)
	if err != nil {
		return payment.WebhookEndpoint{}, translate(fmt.Errorf("load endpoint: %w", err))
	}
	return r.toEndpoint(), nil
}

// EndpointExists reports whether a tenant has this endpoint (a list cursor).
func (s *Store) EndpointExists(ctx context.Context, tenantID, id string) (bool, error) {
	var ok bool
	err := s.q.QueryRowxContext(ctx, `SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2
		AND deleted_at IS NULL)`, tenantID, id).Scan(&ok)
	return ok, translate(err)
}

// ListEndpoints returns a page of a tenant's endpoints, newest first.
func (s *Store) ListEndpoints(ctx context.Context, tenantID string, limit int, after string) ([]payment.WebhookEndpoint, bool, error) {
	var rows []endpointRow
	err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT `+endpointColumns+` FROM webhook_endpoints
		WHERE tenant_id = $1 AND deleted_at IS NULL
		  AND ($3 = '' OR (created_at, id) < (SELECT created_at, id FROM webhook_endpoints WHERE id = $3 AND tenant_id = $1))
		ORDER BY created_at DESC, id DESC LIMIT $2`, tenantID, limit+1, after)
	if err != nil {
		return nil, false, translate(fmt.Errorf("list endpoints: %w", err))
	}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	out := make([]payment.WebhookEndpoint, len(rows))
	for i, r := range rows {
		out[i] = r.toEndpoint()
	}
	return out, more, nil
}

// EndpointUpdate changes an endpoint: nil fields stay.
type EndpointUpdate struct {
	URL           *string
	Description   *string
	EnabledEvents []string // nil: as is
	Enabled       *bool    // re-enabling clears the disabled reason and the failing clock
}

// UpdateEndpoint applies an update to a tenant's endpoint.
func (s *Store) UpdateEndpoint(ctx context.Context, tenantID, id string, u EndpointUpdate) (payment.WebhookEndpoint, error) {
	var events any
	if u.EnabledEvents != nil {
		events = pq.Array(u.EnabledEvents)
	}
	var status any
	if u.Enabled != nil {
		status = map[bool]string{true: "enabled", false: "disabled"}[*u.Enabled]
	}
	var r endpointRow
	err := sqlx.GetContext(ctx, s.q, &r, `UPDATE webhook_endpoints SET url = COALESCE($3, url),
			description = COALESCE($4, description), enabled_events = COALESCE($5::text[], enabled_events),
			status = COALESCE($6, status),
			disabled_reason = CASE WHEN $6 = 'enabled' THEN '' WHEN $6 = 'disabled' THEN 'by the merchant' ELSE disabled_reason END,
			failing_since = CASE WHEN $6 = 'enabled' THEN NULL ELSE failing_since END,
			updated_at = $7
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING `+endpointColumns,
		tenantID, id, u.URL, u.Description, events, status, s.now())
	if err != nil {
		return payment.WebhookEndpoint{}, translate(fmt.Errorf("update endpoint: %w", err))
	}
	return r.toEndpoint(), nil
}

// DeleteEndpoint removes a tenant's endpoint: its pending deliveries fail
// ("endpoint deleted") and no new ones are made.
func (s *Store) DeleteEndpoint(ctx context.Context, tenantID, id string) error {
	return s.InTx(ctx, func(tx *Store) error {
		now := tx.now()
		res, err := tx.q.ExecContext(ctx, `UPDATE webhook_endpoints SET deleted_at = $3, status = 'disabled',
			disabled_reason = 'deleted', updated_at = $3 WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`, tenantID, id, now)
		if err != nil {
			return translate(fmt.Errorf("delete endpoint: %w", err))
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("endpoint %s: %w", id, payment.ErrNotFound)
		}
		_, err = tx.q.ExecContext(ctx, `UPDATE webhook_deliveries SET status = 'failed', next_at = NULL,
			last_error = 'endpoint deleted' WHERE endpoint_id = $1 AND status = 'pending'`, id)
		return translate(err)
	})
}

// EndpointSecrets are an endpoint's sealed secrets: the current one, and
// the previous one while it still signs.
type EndpointSecrets struct {
	Current       string
	Previous      string
	PreviousUntil *time.Time
}

// RotateSecret makes sealed the endpoint's secret; the current one keeps
// signing beside it until until.
func (s *Store) RotateSecret(ctx context.Context, tenantID, id, sealed string, until time.Time) (payment.WebhookEndpoint, error) {
	var r endpointRow
	err := sqlx.GetContext(ctx, s.q, &r, `UPDATE webhook_endpoints SET previous_sealed = secret_sealed,
			previous_until = $4, secret_sealed = $3, updated_at = $5
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING `+endpointColumns,
		tenantID, id, sealed, until, s.now())
	if err != nil {
		return payment.WebhookEndpoint{}, translate(fmt.Errorf("rotate secret: %w", err))
	}
	return r.toEndpoint(), nil
}

// Delivery is one delivery with what its try needs.
type Delivery struct {
	ID          string       `db:"id"`
	TenantID    string       `db:"tenant_id"`
	EventID     string       `db:"event_id"`
	EndpointID  string       `db:"endpoint_id"`
	Status      string       `db:"status"`
	Attempts    int          `db:"attempts"`
	Seq         int          `db:"step_seq"`
	EventAt     time.Time    `db:"event_at"`
	DeliveredAt sql.NullTime `db:"delivered_at"`
	// the endpoint
	URL             string       `db:"url"`
	EndpointStatus  string       `db:"endpoint_status"`
	EndpointDeleted bool         `db:"endpoint_deleted"`
	SecretSealed    string       `db:"secret_sealed"`
	PreviousSealed  string       `db:"previous_sealed"`
	PreviousUntil   sql.NullTime `db:"previous_until"`
}

// DeliveryTry is the outcome of one try, recorded by RecordTry.
type DeliveryTry struct {
	DeliveryID string
	Seq        int
	StatusCode int // 0: no answer
	Latency    time.Duration
	Error      string
	Delivered  bool
	// NextAt is the next try; nil with Delivered false means the delivery
	// failed for good (its retries ran out, or its endpoint is gone).
	NextAt *time.Time
	// DisableAfter: an endpoint whose every try has failed for this long
	// is disabled (0: never).
	DisableAfter time.Duration
	// Exhausted: this failed try was the last of the delivery's retry
	// window. If no try to the endpoint succeeded since this delivery's
	// first try, the endpoint has failed for the whole window (longer than
	// DisableAfter on the schedule) and is disabled whatever the wall clock
	// says: a compressed schedule or a late worker must not leave it enabled.
	Exhausted bool
}

// TryResult is what RecordTry did.
type TryResult struct {
	Seq              int  // the delivery's step sequence for its next try
	Disabled         bool // this try disabled the endpoint (and wrote webhook_endpoint.disabled)
	Attempt          int
	DeliveredLatency time.Duration // event to delivery, for a delivered try
}

// RecordTry records a try, guarded on the delivery's step sequence and
// pending status (payment.ErrStale otherwise): the attempt row, the
// delivery's status and schedule, and the endpoint's failing clock — a
// success stops it; a failure starts it, and one that has run DisableAfter
// disables the endpoint, with the webhook_endpoint.disabled event, and
// fails its pending deliveries.
func (s *Store) RecordTry(ctx context.Context, t DeliveryTry) (TryResult, error) {
	if t.Delivered {
		return s.recordDelivered(ctx, t)
	}
	var res TryResult
	err := s.InTx(ctx, func(tx *Store) error {
		now := tx.now()
		status := payment.DeliveryPending // a failed try: tried again at NextAt, or failed for good
		if t.NextAt == nil {
			status = payment.DeliveryFailed
		}
		var code any
		if t.StatusCode > 0 {
			code = t.StatusCode
		}
		var row struct {
			Seq        int    `db:"step_seq"`
			Attempts   int    `db:"attempts"`
			EndpointID string `db:"endpoint_id"`
			TenantID   string `db:"tenant_id"`
			EventID    string `db:"event_id"`
		}
		err := sqlx.GetContext(ctx, tx.q, &row, `UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1,
				next_at = $4, step_seq = step_seq + 1, swept = false, last_status_code = $5, last_error = $6
			WHERE id = $1 AND step_seq = $2 AND status = 'pending'
			RETURNING step_seq, attempts, endpoint_id, tenant_id, event_id`,
			t.DeliveryID, t.Seq, status, t.NextAt, code, truncate(t.Error, 500))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("delivery %s@%d: %w", t.DeliveryID, t.Seq, payment.ErrStale)
		}
		if err != nil {
			return translate(fmt.Errorf("record try: %w", err))
		}
		res.Seq, res.Attempt = row.Seq, row.Attempts
		if _, err := tx.q.ExecContext(ctx, `INSERT INTO webhook_delivery_attempts (delivery_id, endpoint_id, tenant_id, event_id,
				attempt, status_code, latency_ms, error, next_at, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
			t.DeliveryID, row.EndpointID, row.TenantID, row.EventID, row.Attempts, code, t.Latency.Milliseconds(),
			truncate(t.Error, 500), t.NextAt, now); err != nil {
			return translate(fmt.Errorf("log try: %w", err))
		}
		var since time.Time
		if err := tx.q.QueryRowxContext(ctx, `UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2)
			WHERE id = $1 RETURNING failing_since`, row.EndpointID, now).Scan(&since); err != nil {
			return translate(fmt.Errorf("endpoint failing: %w", err))
		}
		disable := t.DisableAfter > 0 && now.Sub(since) >= t.DisableAfter
		if !disable && t.Exhausted && t.DisableAfter > 0 {
			var first time.Time
			if err := tx.q.QueryRowxContext(ctx, `SELECT min(created_at) FROM webhook_delivery_attempts WHERE delivery_id = $1`,
				t.DeliveryID).Scan(&first); err != nil {
				return translate(fmt.Errorf("first try: %w", err))
			}
			disable = !since.After(first)
		}
		if !disable {
			return nil
		}
		var disabled bool
		err = tx.q.QueryRowxContext(ctx, `
			WITH e AS (
				UPDATE webhook_endpoints SET status = 'disabled', updated_at = $2,
					disabled_reason = 'every delivery failed since ' || to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
				WHERE id = $1 AND status = 'enabled' AND deleted_at IS NULL
				RETURNING id, tenant_id, url, description, enabled_events, status, disabled_reason, failing_since, created_at, updated_at),
			ev AS (
				INSERT INTO events (id, tenant_id, type, object_type, object_id, data, created_at)
				SELECT 'evt_' || replace(gen_random_uuid()::text, '-', ''), tenant_id, 'webhook_endpoint.disabled',
					'webhook_endpoint', id, to_jsonb(e), $2 FROM e),
			f AS (
				UPDATE webhook_deliveries SET status = 'failed', next_at = NULL, last_error = 'endpoint disabled'
				WHERE endpoint_id = $1 AND status = 'pending' AND EXISTS (SELECT 1 FROM e))
			SELECT EXISTS (SELECT 1 FROM e)`, row.EndpointID, now).Scan(&disabled)
		if err != nil {
			return translate(fmt.Errorf("disable endpoint: %w", err))
		}
		res.Disabled = disabled
		return nil
	})
	return res, err
}

// ListAttempts returns a page of an endpoint's delivery tries, newest first
// (after: an attempt id as text; empty for the first page).
func (s *Store) ListAttempts(ctx context.Context, tenantID, endpointID string, limit int, after int64) ([]payment.WebhookAttempt, bool, error) {
	var rows []struct {
		ID         int64         `db:"id"`
		DeliveryID string        `db:"delivery_id"`
		EndpointID string        `db:"endpoint_id"`
		EventID    string        `db:"event_id"`
		Attempt    int           `db:"attempt"`
		StatusCode sql.NullInt64 `db:"status_code"`
		LatencyMS  int64         `db:"latency_ms"`
		Error      string        `db:"error"`
		NextAt     sql.NullTime  `db:"next_at"`
		CreatedAt  time.Time     `db:"created_at"`
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT id, delivery_id, endpoint_id, event_id, attempt, status_code,
			latency_ms, error, next_at, created_at
		FROM webhook_delivery_attempts WHERE tenant_id = $1 AND endpoint_id = $2 AND ($4 = 0 OR id < $4)
		ORDER BY id DESC LIMIT $3`, tenantID, endpointID, limit+1, after)
	if err != nil {
		return nil, false, translate(fmt.Errorf("list tries: %w", err))
	}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	out := make([]payment.WebhookAttempt, len(rows))
	for i, r := range rows {
		a := payment.WebhookAttempt{ID: r.ID, DeliveryID: r.DeliveryID, EndpointID: r.EndpointID, EventID: r.EventID,
			Attempt: r.Attempt, Latency: time.Duration(r.LatencyMS) * time.Millisecond, Error: r.Error,
			NextAt: tp(r.NextAt), CreatedAt: r.CreatedAt.UTC()}
		if r.StatusCode.Valid {
			c := int(r.StatusCode.Int64)
			a.StatusCode = &c
		}
		out[i] = a
	}
	return out, more, nil
}

// DeliveryRef names a delivery's try to enqueue.
type DeliveryRef struct {
	ID  string `db:"id"`
	Seq int    `db:"step_seq"`
}

// Redeliver makes an event due again to one of the tenant's endpoints
// (endpointID) or to every enabled endpoint subscribed to its type (""):
// a delivered or failed delivery becomes pending under a new step
// sequence, a missing one is created. It returns the deliveries to
// enqueue; payment.ErrNotFound for an unknown event or endpoint.
func (s *Store) Redeliver(ctx context.Context, tenantID, eventID, endpointID string) ([]DeliveryRef, error) {
	var out []DeliveryRef
	err := s.InTx(ctx, func(tx *Store) error {
		var eventAt time.Time
		var typ string
		if err := tx.q.QueryRowxContext(ctx, `SELECT created_at, type FROM events WHERE tenant_id = $1 AND id = $2`,
			tenantID, eventID).Scan(&eventAt, &typ); err != nil {
			return translate(fmt.Errorf("load event: %w", err))
		}
		if endpointID != "" {
			if ok, err := tx.EndpointExists(ctx, tenantID, endpointID); err != nil || !ok {
				if err == nil {
					err = fmt.Errorf("endpoint %s: %w", endpointID, payment.ErrNotFound)
				}
				return err
			}
		}
		now := tx.now()
		err := sqlx.SelectContext(ctx, tx.q, &out, `
			INSERT INTO webhook_deliveries AS d (id, tenant_id, event_id, endpoint_id, status, next_at, event_at, created_at)
			SELECT 'whd_' || replace(gen_random_uuid()::text, '-', ''), $1, $2, e.id, 'pending', $5, $6, $5
			FROM webhook_endpoints e
			WHERE e.tenant_id = $1 AND e.deleted_at IS NULL
			  AND (e.id = $3 OR ($3 = '' AND e.status = 'enabled' AND ($4 = ANY (e.enabled_events) OR '*' = ANY (e.enabled_events))))
			ON CONFLICT (event_id, endpoint_id) DO UPDATE SET status = 'pending', next_at = $5,
				step_seq = d.step_seq + 1, swept = false
			RETURNING d.id, d.step_seq`, tenantID, eventID, endpointID, typ, now, eventAt)
		return translate(err)
	})
	return out, err
}

// PendingDeliveries counts deliveries not yet delivered nor failed: the
// outbox backlog the monitor reports.
func (s *Store) PendingDeliveries(ctx context.Context) (int, error) {
	var n int
	err := s.q.QueryRowxContext(ctx, `SELECT count(*) FROM webhook_deliveries WHERE next_at IS NOT NULL`).Scan(&n)
	return n, translate(err)
}

// endpointSnapshots decodes webhook endpoints as an event recorded them
// (webhook_endpoint.disabled): the row less its sealed secrets.
func (s *Store) endpointSnapshots(ctx context.Context, seqs []int64, objects map[int64]any) error {
	var rows []struct {
		Seq  int64  `db:"seq"`
		Data []byte `db:"data"`
	}
	if err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT seq, data FROM events WHERE seq = ANY ($1)`, pq.Array(seqs)); err != nil {
		return translate(fmt.Errorf("load endpoint snapshots: %w", err))
	}
	for _, r := range rows {
		var e struct {
			ID             string     `json:"id"`
			TenantID       string     `json:"tenant_id"`
			URL            string     `json:"url"`
			Description    string     `json:"description"`
			EnabledEvents  []string   `json:"enabled_events"`
			Status         string     `json:"status"`
			DisabledReason string     `json:"disabled_reason"`
			FailingSince   *time.Time `json:"failing_since"`
			CreatedAt      time.Time  `json:"created_at"`
			UpdatedAt      time.Time  `json:"updated_at"`
		}
		if err := json.Unmarshal(r.Data, &e); err != nil {
			return fmt.Errorf("decode endpoint snapshot %d: %w", r.Seq, err)
		}
		objects[r.Seq] = payment.WebhookEndpoint{ID: e.ID, TenantID: e.TenantID, URL: e.URL, Description: e.Description,
			EnabledEvents: e.EnabledEvents, Status: e.Status, DisabledReason: e.DisabledReason, FailingSince: e.FailingSince,
			CreatedAt: e.CreatedAt.UTC(), UpdatedAt: e.UpdatedAt.UTC()}
	}
	return nil
}
