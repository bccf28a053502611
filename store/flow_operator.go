package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/payd/payd/payment"
)

// Payment flows as an operator sees them (`payd flows show`): by id, in
// whichever tenant the flow is. A flow id is unique across tenants.

// FlowByID loads a flow by id alone, with its latest plan; a flow that
// does not exist is payment.ErrNotFound.
func (s *Store) FlowByID(ctx context.Context, id string) (payment.Flow, error) {
	var r flowRow
	err := sqlx.GetContext(ctx, s.q, &r, `SELECT `+flowColumns+flowFrom+` WHERE f.id = $1`, id)
	if err != nil {
		return payment.Flow{}, translate(fmt.Errorf("load flow: %w", err))
	}
	return r.toFlow(), nil
}

// FlowPlansByID returns every plan version of a flow, oldest first, by the
// flow's id alone (none for a flow that does not exist).
func (s *Store) FlowPlansByID(ctx context.Context, id string) ([]payment.Plan, error) {
	var raws [][]byte
	err := sqlx.SelectContext(ctx, s.q, &raws, `SELECT plan FROM payment_flow_plans WHERE flow_id = $1 ORDER BY version`, id)
	if err != nil {
		return nil, translate(fmt.Errorf("load flow plans: %w", err))
	}
	out := make([]payment.Plan, len(raws))
	for i, b := range raws {
		if err := json.Unmarshal(b, &out[i]); err != nil {
			return nil, fmt.Errorf("decode plan %d of %s: %w", i+1, id, err)
		}
	}
	return out, nil
}

// CountOpenFlows counts the flows that are not settled or canceled, by
// status (pending, processing, failed): the monitor's gauge. Settled and
// canceled flows are not counted, so a scrape never scans the history.
func (s *Store) CountOpenFlows(ctx context.Context) (map[string]int, error) {
	var rows []struct {
		Status string `db:"status"`
		N      int    `db:"n"`
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT status, count(*) AS n FROM payment_flows
		WHERE status IN ('pending','processing','failed') GROUP BY status`)
	if err != nil {
		return nil, translate(fmt.Errorf("count flows: %w", err))
	}
	out := map[string]int{"pending": 0, "processing": 0, "failed": 0}
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out, nil
}
