package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// IdemState is what BeginIdempotent found.
type IdemState int

const (
	IdemNew      IdemState = iota // this request owns the key now
	IdemInFlight                  // another request with this key is running
	IdemReplay                    // a completed response is stored
	IdemMismatch                  // the key was used with another body
)

// IdemRecord is a stored response.
type IdemRecord struct {
	State IdemState
	Code  int
	Body  []byte
	// Owner is the token of a request that got IdemNew: it must present it
	// to complete or release the key, so that a request that lost the key
	// (its lease ran out and a retry took over) cannot commit as well.
	Owner string
}

// IdemKey scopes an Idempotency-Key.
type IdemKey struct {
	TenantID string
	Route    string
	Key      string
}

// BeginIdempotent claims an idempotency key for one request, committing the
// in-flight marker at once so that concurrent duplicates see it. A marker
// whose lease ran out (its request died before completing) is taken over: the
// request's own transaction never committed, so nothing was recorded. ttl 0
// means the key never expires (business keys).
func (s *Store) BeginIdempotent(ctx context.Context, k IdemKey, fingerprint []byte, lease, ttl time.Duration) (IdemRecord, error) {
	now := s.now()
	var expires any
	if ttl > 0 {
		expires = now.Add(ttl)
	}
	owner := randomHex(12)
	for try := 0; try < 3; try++ {
		res, err := s.q.ExecContext(ctx, `
			INSERT INTO idempotency_keys (tenant_id, route, key, fingerprint, state, owner, locked_until, expires_at, created_at)
			VALUES ($1,$2,$3,$4,'in_flight',$8,$5,$6,$7)
			ON CONFLICT (tenant_id, route, key) DO UPDATE SET
				fingerprint = EXCLUDED.fingerprint, state = 'in_flight', response_code = NULL, response_body = NULL,
				owner = EXCLUDED.owner, locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at,
				created_at = EXCLUDED.created_at
			WHERE (idempotency_keys.expires_at IS NOT NULL AND idempotency_keys.expires_at < $7)
			   OR (idempotency_keys.state = 'in_flight' AND idempotency_keys.locked_until < $7
			       AND idempotency_keys.fingerprint = EXCLUDED.fingerprint)`,
			k.TenantID, k.Route, k.Key, fingerprint, now.Add(lease), expires, now, owner)
		if err != nil {
			return IdemRecord{}, translate(fmt.Errorf("begin idempotent request: %w", err))
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return IdemRecord{State: IdemNew, Owner: owner}, nil
		}
		var row struct {
			Fingerprint []byte        `db:"fingerprint"`
			State       string        `db:"state"`
			Code        sql.NullInt64 `db:"response_code"`
			Body        []byte        `db:"response_body"`
		}
		err = s.q.QueryRowxContext(ctx, `SELECT fingerprint, state, response_code, response_body FROM idempotency_keys
			WHERE tenant_id = $1 AND route = $2 AND key = $3`, k.TenantID, k.Route, k.Key).StructScan(&row)
		if errors.Is(err, sql.ErrNoRows) {
			continue // deleted between the two statements: try again
		}
		if err != nil {
			return IdemRecord{}, translate(fmt.Errorf("read idempotency key: %w", err))
		}
		switch {
		case !bytes.Equal(row.Fingerprint, fingerprint):
			return IdemRecord{State: IdemMismatch}, nil
		case row.State == "in_flight":
			return IdemRecord{State: IdemInFlight}, nil
		default:
			return IdemRecord{State: IdemReplay, Code: int(row.Code.Int64), Body: row.Body}, nil
		}
	}
	return IdemRecord{State: IdemInFlight}, nil
}

// ErrIdemLost means the request's lease on its key ran out and another
// request took the key over: this one must not commit.
var ErrIdemLost = errors.New("idempotency key taken over by a retry")

// CompleteIdempotent stores the response of the request that owns the key.
// Call it inside the transaction that records the request's effects, so the
// effects and the stored response commit together. The row lock it takes
// also makes a concurrent takeover wait for this transaction's outcome.
func (s *Store) CompleteIdempotent(ctx context.Context, k IdemKey, owner string, code int, body []byte) error {
	res, err := s.q.ExecContext(ctx, `UPDATE idempotency_keys SET state = 'done', response_code = $5, response_body = $6
		WHERE tenant_id = $1 AND route = $2 AND key = $3 AND state = 'in_flight' AND owner = $4`,
		k.TenantID, k.Route, k.Key, owner, code, body)
	if err != nil {
		return translate(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrIdemLost
	}
	return nil
}

// ReleaseIdempotent forgets an in-flight key whose request failed without
// effects (a 5xx or 503), so that the client may retry with the same key.
func (s *Store) ReleaseIdempotent(ctx context.Context, k IdemKey, owner string) error {
	_, err := s.q.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE tenant_id = $1 AND route = $2 AND key = $3
		AND state = 'in_flight' AND owner = $4`, k.TenantID, k.Route, k.Key, owner)
	return translate(err)
}
