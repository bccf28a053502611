package store

// The webhook delivery's hot statements, batched across concurrent
// webhook:deliver tasks like the payments' (batch.go): loading a delivery
// with its endpoint and its event rendered, and recording a try that
// delivered. Most tries deliver, so a delivery costs a share of two or
// three statements instead of four reads and a transaction of its own.

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

// loadedDelivery is one LoadDeliveryEvent answer.
type loadedDelivery struct {
	d   Delivery
	ev  OutboxEvent
	err error
}

// LoadDeliveryEvent loads a delivery with its endpoint's URL, status and
// sealed secrets and its event as GET /v1/events/{id} shows
// it (GetEvent), in a statement shared with concurrent callers.
func (s *Store) LoadDeliveryEvent(ctx context.Context, id string) (Delivery, OutboxEvent, error) {
	r, err := one(ctx, s, s.deliveryLoads, (*Store).loadDeliveries, id)
	if err != nil {
		return Delivery{}, OutboxEvent{}, err
	}
	return r.d, r.ev, r.err
}

func (s *Store) loadDeliveries(ctx context.Context, ids []string) ([]loadedDelivery, error) {
	var ds []Delivery
	err := sqlx.SelectContext(ctx, s.q, &ds, `SELECT d.id, d.tenant_id, d.event_id, d.endpoint_id, d.status, d.attempts,
			d.step_seq, d.event_at, d.delivered_at, e.url, e.status AS endpoint_status,
			e.deleted_at IS NOT NULL AS endpoint_deleted, e.secret_sealed, COALESCE(e.previous_sealed, '') AS previous_sealed,
			e.previous_until
		FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id = ANY($1)`, pq.Array(ids))
	if err != nil {
		return nil, translate(fmt.Errorf("load deliveries: %w", err))
	}
	byID := make(map[string]Delivery, len(ds))
	evIDs := make([]string, 0, len(ds))
	for _, d := range ds {
		byID[d.ID] = d
		evIDs = append(evIDs, d.EventID)
	}
	var rows []outboxRow
	if err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT `+outboxColumns+` FROM events WHERE id = ANY($1)`, pq.Array(evIDs)); err != nil {
		return nil, translate(fmt.Errorf("load deliveries' events: %w", err))
	}
	evs, err := s.decodeEvents(ctx, rows)
	if err != nil {
		return nil, err
	}
	byEvent := make(map[string]OutboxEvent, len(evs))
	for _, e := range evs {
		byEvent[e.ID] = e
	}
	out := make([]loadedDelivery, len(ids))
	for i, id := range ids {
		d, ok := byID[id]
		if !ok {
			out[i].err = fmt.Errorf("load delivery %s: %w", id, payment.ErrNotFound)
			continue
		}
		ev, ok := byEvent[d.EventID]
		if !ok || ev.TenantID != d.TenantID {
			out[i].err = fmt.Errorf("load delivery %s's event %s: %w", id, d.EventID, payment.ErrNotFound)
			continue
		}
		out[i].d, out[i].ev = d, ev
	}
	return out, nil
}

// deliveredTry is one recordDelivereds answer: stale when the delivery was
// no longer pending at the try's sequence.
type deliveredTry struct {
	res   TryResult
	stale bool
}

// recordDelivered is RecordTry for a try that delivered (the hot path),
// guarded like the general case and batched: the delivery, its attempt row
// and the endpoint's failing clock stopped, in one statement.
func (s *Store) recordDelivered(ctx context.Context, t DeliveryTry) (TryResult, error) {
	r, err := one(ctx, s, s.deliveredTries, (*Store).recordDelivereds, t)
	if err != nil {
		return TryResult{}, err
	}
	if r.stale {
		return r.res, fmt.Errorf("delivery %s@%d: %w", t.DeliveryID, t.Seq, payment.ErrStale)
	}
	return r.res, nil
}

func (s *Store) recordDelivereds(ctx context.Context, ts []DeliveryTry) ([]deliveredTry, error) {
	now := s.now()
	n := len(ts)
	ids, seqs, codes, lats := strs(n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, t := range ts {
		ids[i], seqs[i], codes[i], lats[i] = t.DeliveryID, int64(t.Seq), int64(t.StatusCode), t.Latency.Milliseconds()
	}
	var rows []struct {
		ID       string    `db:"id"`
		Seq      int       `db:"step_seq"`
		Attempts int       `db:"attempts"`
		EventAt  time.Time `db:"event_at"`
	}
	// A delivery twice in one batch (two tasks of one try) joins twice but
	// is updated once: the first request gets the row, the other is stale.
	err := sqlx.SelectContext(ctx, s.q, &rows, `
		WITH r AS (SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[]) AS r(id, seq, code, latency_ms)),
		d AS (
			UPDATE webhook_deliveries w SET status = 'delivered', attempts = w.attempts + 1, next_at = NULL,
				step_seq = w.step_seq + 1, swept = false, last_status_code = r.code, last_error = '', delivered_at = $5
			FROM r WHERE w.id = r.id AND w.step_seq = r.seq AND w.status = 'pending'
			RETURNING w.id, w.step_seq, w.attempts, w.endpoint_id, w.tenant_id, w.event_id, w.event_at, r.code, r.latency_ms),
		a AS (
			INSERT INTO webhook_delivery_attempts (delivery_id, endpoint_id, tenant_id, event_id, attempt, status_code,
				latency_ms, error, next_at, created_at)
			SELECT id, endpoint_id, tenant_id, event_id, attempts, code, latency_ms, '', NULL, $5 FROM d),
		e AS (
			UPDATE webhook_endpoints SET failing_since = NULL
			WHERE id IN (SELECT endpoint_id FROM d) AND failing_since IS NOT NULL)
		SELECT id, step_seq, attempts, event_at FROM d`,
		pq.Array(ids), pq.Array(seqs), pq.Array(codes), pq.Array(lats), now)
	if err != nil {
		return nil, translate(fmt.Errorf("record delivered tries: %w", err))
	}
	out := make([]deliveredTry, n)
	taken := make(map[string]bool, len(rows))
	got := make(map[string]int, len(rows))
	for i, r := range rows {
		got[r.ID] = i
	}
	for i, t := range ts {
		j, ok := got[t.DeliveryID]
		if !ok || taken[t.DeliveryID] {
			out[i].stale = true
			continue
		}
		taken[t.DeliveryID] = true
		r := rows[j]
		out[i].res = TryResult{Seq: r.Seq, Attempt: r.Attempts, DeliveredLatency: now.Sub(r.EventAt)}
	}
	return out, nil
}
