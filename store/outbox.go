package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

// Merchant events (migration 00015): the outbox the emit_event trigger
// writes in the transaction of every transition of a payment, payout,
// session or flow, and how it is read back. An event's data is the object's
// row as that transition left it (less its secrets); it is decoded here
// into the same row structs the live reads use, so each surface renders an
// event's object with its own response code. What is not in the row is
// read as it is now: see docs/events.md.

// Event object types (event_sources.object_type).
const (
	EventObjectPayment = "payment"
	EventObjectPayout  = "payout"
	EventObjectSession = "payment_session"
	EventObjectFlow    = "payment_flow"
	EventObjectWebhook = "webhook_endpoint"
)

// OutboxEvent is one row of events with its object decoded: Object is a
// payment.Payment, payment.Payout, payment.Session or payment.Flow (nil for
// an object type this release does not know).
type OutboxEvent struct {
	Seq        int64
	ID         string
	TenantID   string
	Type       string
	ObjectType string
	ObjectID   string
	CreatedAt  time.Time
	Object     any
}

type outboxRow struct {
	Seq        int64     `db:"seq"`
	ID         string    `db:"id"`
	TenantID   string    `db:"tenant_id"`
	Type       string    `db:"type"`
	ObjectType string    `db:"object_type"`
	ObjectID   string    `db:"object_id"`
	CreatedAt  time.Time `db:"created_at"`
}

const outboxColumns = `seq, id, tenant_id, type, object_type, object_id, created_at`

// EventFilter selects a page of a tenant's events, newest first.
type EventFilter struct {
	TenantID string
	Type     string // an event type; empty for all
	ObjectID string // the id of the payment, payout, session or flow; empty for all
	// created range, inclusive, compared to the millisecond the API shows
	CreatedGTE    *time.Time
	CreatedLTE    *time.Time
	Limit         int
	StartingAfter string // an event id; the page starts after it
}

// ListEvents returns up to Limit events of a tenant, newest first (by
// seq), and whether more follow.
func (s *Store) ListEvents(ctx context.Context, f EventFilter) ([]OutboxEvent, bool, error) {
	args := []any{f.TenantID, f.Limit + 1}
	where := []string{"tenant_id = $1"}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Type != "" {
		add("type = $%d", f.Type)
	}
	if f.ObjectID != "" {
		add("object_id = $%d", f.ObjectID)
	}
	if f.CreatedGTE != nil {
		add("date_trunc('milliseconds', created_at) >= $%d", *f.CreatedGTE)
	}
	if f.CreatedLTE != nil {
		add("date_trunc('milliseconds', created_at) <= $%d", *f.CreatedLTE)
	}
	if f.StartingAfter != "" {
		add("seq < (SELECT seq FROM events WHERE id = $%d AND tenant_id = $1)", f.StartingAfter)
	}
	var rows []outboxRow
	err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT `+outboxColumns+` FROM events WHERE `+
		strings.Join(where, " AND ")+` ORDER BY seq DESC LIMIT $2`, args...)
	if err != nil {
		return nil, false, translate(fmt.Errorf("list events: %w", err))
	}
	more := len(rows) > f.Limit
	if more {
		rows = rows[:f.Limit]
	}
	out, err := s.decodeEvents(ctx, rows)
	return out, more, err
}

// GetEvent loads one event of a tenant; another tenant's is
// payment.ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, tenantID, id string) (OutboxEvent, error) {
	var r outboxRow
	err := sqlx.GetContext(ctx, s.q, &r, `SELECT `+outboxColumns+` FROM events WHERE id = $1`, id)
	if err == nil && (tenantID == "" || r.TenantID != tenantID) {
		err = sql.ErrNoRows
	}
	if err != nil {
		return OutboxEvent{}, translate(fmt.Errorf("load event %s: %w", id, err))
	}
	out, err := s.decodeEvents(ctx, []outboxRow{r})
	if err != nil {
		return OutboxEvent{}, err
	}
	return out[0], nil
}

// EventExists reports whether the tenant has an event with this id (a list cursor).
func (s *Store) EventExists(ctx context.Context, tenantID, id string) (bool, error) {
	var ok bool
	err := s.q.QueryRowxContext(ctx, `SELECT COALESCE((SELECT tenant_id = $2 FROM events WHERE id = $1), false)`, id, tenantID).Scan(&ok)
	return ok, translate(err)
}

// snapshotOf turns the events named by seq = ANY($1) into rows of table,
// as the subquery alias the live reads' column lists expect. Redacted
// columns the row structs read as NOT NULL text come back empty.
func snapshotOf(table string) string {
	return `(SELECT e.seq AS event_seq, r.* FROM events e,
		LATERAL jsonb_populate_record(NULL::` + table + `, '{"payment_method_id": "", "token": ""}'::jsonb || e.data) r
		WHERE e.seq = ANY($1))`
}

// decodeEvents decodes the snapshots of rows, one query per object type
// present, and keeps the rows' order.
func (s *Store) decodeEvents(ctx context.Context, rows []outboxRow) ([]OutboxEvent, error) {
	out := make([]OutboxEvent, len(rows))
	byType := map[string][]int64{}
	for i, r := range rows {
		out[i] = OutboxEvent{Seq: r.Seq, ID: r.ID, TenantID: r.TenantID, Type: r.Type, ObjectType: r.ObjectType,
			ObjectID: r.ObjectID, CreatedAt: r.CreatedAt.UTC()}
		byType[r.ObjectType] = append(byType[r.ObjectType], r.Seq)
	}
	objects := map[int64]any{}
	for typ, seqs := range byType {
		var err error
		switch typ {
		case EventObjectPayment, EventObjectPayout:
			err = s.paymentSnapshots(ctx, seqs, typ == EventObjectPayout, objects)
		case EventObjectSession:
			err = s.sessionSnapshots(ctx, seqs, objects)
		case EventObjectFlow:
			err = s.flowSnapshots(ctx, seqs, objects)
		case EventObjectWebhook:
			err = s.endpointSnapshots(ctx, seqs, objects)
		}
		if err != nil {
			return nil, err
		}
	}
	for i := range out {
		out[i].Object = objects[out[i].Seq]
	}
	return out, nil
}

// paymentSnapshots decodes payment rows; their attempts (and a payout's
// details and lines) are read as they are now.
func (s *Store) paymentSnapshots(ctx context.Context, seqs []int64, payouts bool, objects map[int64]any) error {
	var rows []struct {
		EventSeq int64 `db:"event_seq"`
		paymentRow
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT p.event_seq, `+paymentColumns+` FROM `+snapshotOf("payments")+
		` p LEFT JOIN invoices i ON i.id = p.invoice_id`, pq.Array(seqs))
	if err != nil {
		return translate(fmt.Errorf("decode payment events: %w", err))
	}
	pays := make([]payment.Payment, len(rows))
	ids := make([]string, len(rows))
	for i, r := range rows {
		pays[i] = r.toPayment()
		ids[i] = r.ID
	}
	atts, err := s.attempts(ctx, ids)
	if err != nil {
		return err
	}
	for i := range pays {
		pays[i].Attempts = atts[pays[i].ID]
	}
	if !payouts {
		for i, r := range rows {
			objects[r.EventSeq] = pays[i]
		}
		return nil
	}
	// completePayouts keeps the order of what it is given (one entry per
	// event, an object's several snapshots included) and drops only
	// payments that are not payouts
	pos, err := s.completePayouts(ctx, pays)
	if err != nil {
		return err
	}
	j := 0
	for i, r := range rows {
		if j < len(pos) && pos[j].Payment.ID == pays[i].ID && pos[j].Payment.UpdatedAt.Equal(pays[i].UpdatedAt) &&
			pos[j].Payment.Status == pays[i].Status {
			objects[r.EventSeq] = pos[j]
			j++
		}
	}
	return nil
}

func (s *Store) sessionSnapshots(ctx context.Context, seqs []int64, objects map[int64]any) error {
	var rows []struct {
		EventSeq int64 `db:"event_seq"`
		sessionRow
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT event_seq, `+sessionColumns+` FROM `+snapshotOf("payment_sessions")+` ps`,
		pq.Array(seqs))
	if err != nil {
		return translate(fmt.Errorf("decode session events: %w", err))
	}
	for _, r := range rows {
		objects[r.EventSeq] = r.toSession()
	}
	return nil
}

// flowSnapshots decodes flow rows with the plan of the snapshot's own
// plan_version (plans are immutable once stored, and the recompute stores
// the plan before it moves the flow's status).
func (s *Store) flowSnapshots(ctx context.Context, seqs []int64, objects map[int64]any) error {
	var rows []struct {
		EventSeq int64 `db:"event_seq"`
		flowRow
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT f.event_seq, `+flowColumns+` FROM `+snapshotOf("payment_flows")+
		` f JOIN invoices i ON i.id = f.invoice_id
		LEFT JOIN payment_flow_plans pl ON pl.flow_id = f.id AND pl.version = f.plan_version`, pq.Array(seqs))
	if err != nil {
		return translate(fmt.Errorf("decode flow events: %w", err))
	}
	for _, r := range rows {
		objects[r.EventSeq] = r.toFlow()
	}
	return nil
}
